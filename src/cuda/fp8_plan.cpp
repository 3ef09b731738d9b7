// fp8_plan.h: the FP8 scope check and the split of scales between the GEMMs and their neighbours.
#include "cuda/fp8_plan.h"

#include <algorithm>
#include <numeric>

#include "host/status.h"

namespace flashinfer_moe {
namespace cuda {

const float* scalar_or_per_expert(const TensorView& v, int64_t* stride) {
  if (!v.present()) {
    *stride = 0;
    return nullptr;
  }
  *stride = v.numel() == 1 ? 0 : v.strides[0];
  return static_cast<const float*>(v.data);
}

WeightScales weight_scales_view(const QuantTensor& q, bool weights, int64_t rows, int64_t cols) {
  WeightScales s;
  if (!q.scale.present()) return s;
  s.data = q.scale.data;
  s.format = static_cast<int32_t>(q.scale_format);
  s.dtype = static_cast<int32_t>(q.scale.dtype);
  s.layout = static_cast<int32_t>(q.scale_layout);
  s.block_rows = q.block_rows > 0 ? q.block_rows : std::max<int64_t>(rows, 1);
  s.block_cols = q.block_cols > 0 ? q.block_cols : std::max<int64_t>(cols, 1);
  s.swizzle_rows = (rows + s.block_rows - 1) / s.block_rows;
  s.swizzle_cols = (cols + s.block_cols - 1) / s.block_cols;
  if (q.scale_layout == ScaleLayout::Linear) {
    const int d = weights ? 1 : 0;
    s.stride_e = weights ? q.scale.strides[0] : 0;
    s.stride_r = q.scale.strides[d];
    s.stride_c = q.scale.strides[d + 1];
  }
  return s;
}

Fp8GemmPlan split_gemm_scales(const ActScales& a, const WeightScales& w, const TensorView& global,
                              int64_t k) {
  Fp8GemmPlan g;
  g.dequant.active = true;
  if (a.group < k) {
    g.a_kscale = a;
  } else {
    g.dequant.row_scale = a.data;
    g.dequant.row_scale_ld = a.ld;
  }
  if (w.data != nullptr && w.block_cols < k) {
    g.b_kscale = w;
  } else {
    g.dequant.weight = w;
  }
  g.dequant.global = scalar_or_per_expert(global, &g.dequant.global_stride);
  return g;
}

namespace {

Status not_yet(const char* field, const char* what) {
  return make_status(StatusCode::NotImplemented,
                     "run_cuda: %s: %s is not implemented on CUDA yet (the CPU executor runs it)",
                     field, what);
}

ActQuantOut quant_out(const ActQuantSpec& q, void* codes, int64_t ld_codes, float* scales,
                      int64_t group, int64_t k) {
  ActQuantOut o;
  o.mode = static_cast<int32_t>(q.mode);
  o.static_scale = scalar_or_per_expert(q.static_scale, &o.static_stride);
  o.codes = static_cast<uint8_t*>(codes);
  o.ld_codes = ld_codes;
  o.scales.data = scales;
  o.scales.group = group;
  o.scales.ld = (k + group - 1) / group;
  return o;
}

Status check_act_quant(const char* field, ActQuant m) {
  if (is_fp8_act_quant(m)) return ok_status();
  return not_yet(field, m == ActQuant::None
                            ? "unquantized activations with e4m3 weights (W8A16)"
                            : "this activation format with e4m3 weights");
}

Status check_k_slices(const char* field, const WeightScales& w, int64_t group, int64_t k) {
  if (w.data == nullptr || w.block_cols >= k || group >= k || w.block_cols == group) {
    return ok_status();
  }
  if (std::gcd(w.block_cols, group) % 16 == 0) return ok_status();
  return not_yet(field,
                 "weight blocks along K whose gcd with the activation groups is not a multiple "
                 "of 16");
}

}  // namespace

Status check_fp8_scope(const MoeProblem& p) {
  if (p.w1.format != ElemFormat::E4M3) return not_yet("w1.format", "mixing with e4m3 w2");
  if (p.w2.format != ElemFormat::E4M3) return not_yet("w2.format", "mixing with e4m3 w1");
  if (p.input.format == ElemFormat::E4M3) {
    if (p.input_quant.mode != ActQuant::None) {
      return not_yet("input_quant.mode", "requantizing an e4m3 input");
    }
  } else if (p.input.format != ElemFormat::Float) {
    return not_yet("input.format", "fp4 activations with e4m3 weights");
  } else {
    FIMOE_RETURN_IF_ERROR(check_act_quant("input_quant.mode", p.input_quant.mode));
  }
  FIMOE_RETURN_IF_ERROR(check_act_quant("inter_quant.mode", p.inter_quant.mode));
  // The GEMMs take one K slice for both operands' K-varying scales.
  const int64_t M1 = is_gated(p.activation) ? 2 * p.intermediate_size : p.intermediate_size;
  const WeightScales w1 = weight_scales_view(p.w1, true, M1, p.hidden_size);
  const WeightScales w2 = weight_scales_view(p.w2, true, p.hidden_size, p.intermediate_size);
  const int64_t g1 = fp8_gemm1_group(p), g2 = fp8_input_group(p.inter_quant, p.intermediate_size);
  // Weight blocks and activation groups that differ along K meet in slices of their gcd, which
  // the sm80 family applies when it is a multiple of the mma K (16).
  FIMOE_RETURN_IF_ERROR(check_k_slices("w1.block_cols", w1, g1, p.hidden_size));
  FIMOE_RETURN_IF_ERROR(check_k_slices("w2.block_cols", w2, g2, p.intermediate_size));
  return ok_status();
}

void plan_fp8(const MoeProblem& p, const CudaWorkspaceLayout& ws, Fp8Plan* plan) {
  const int64_t H = p.hidden_size, I = p.intermediate_size;
  const int64_t M1 = is_gated(p.activation) ? 2 * I : I;
  Fp8Plan& f = *plan;
  f.gemm1_input = quant_out(p.input_quant, ws.gemm1_input, ws.ld_gemm1_input,
                            ws.gemm1_input_scales, fp8_gemm1_group(p), H);
  f.input_format = static_cast<int32_t>(p.input.format);
  if (p.input.format == ElemFormat::E4M3) {
    // Codes copied as they are, one scale per group of the input's block columns.
    f.gemm1_input.mode = static_cast<int32_t>(ActQuant::Fp8PerGroup);
    f.input_scale = weight_scales_view(p.input, false, p.num_tokens, H);
    int64_t unused = 0;
    f.input_global = scalar_or_per_expert(p.input.global_scale, &unused);
  }
  f.gemm2_input = quant_out(p.inter_quant, ws.gemm2_input, ws.ld_gemm2_input,
                            ws.gemm2_input_scales, fp8_input_group(p.inter_quant, I), I);
  f.gemm1 = split_gemm_scales(f.gemm1_input.scales, weight_scales_view(p.w1, true, M1, H),
                              p.w1.global_scale, H);
  f.gemm2 = split_gemm_scales(f.gemm2_input.scales, weight_scales_view(p.w2, true, H, I),
                              p.w2.global_scale, I);
}

}  // namespace cuda
}  // namespace flashinfer_moe
