// fp4_plan.h: the FP4 scope check and the split of the weight scales.
#include "cuda/fp4_plan.h"

#include "host/status.h"

namespace flashinfer_moe {
namespace cuda {
namespace {

Status not_yet(const char* field, const char* what) {
  return make_status(StatusCode::NotImplemented,
                     "run_cuda: %s: %s is not implemented on CUDA yet (the CPU executor runs it)",
                     field, what);
}

// One FP4 weight stack: packed codes run along K, and a block scale that varies along K must
// cover whole 16-deep mma steps.
Status check_fp4_weight(const char* name, const QuantTensor& w, int64_t rows, int64_t k) {
  char field[48];
  if (!is_fp4_format(w.format)) {
    std::snprintf(field, sizeof(field), "%s.format", name);
    return not_yet(field, "mixing 4-bit weights with another weight format");
  }
  const bool packed = w.format == ElemFormat::E2M1Packed || w.format == ElemFormat::Int4Packed;
  if (packed && w.data.strides[2] != 1) {
    std::snprintf(field, sizeof(field), "%s.data", name);
    return not_yet(field, "packed 4-bit codes whose K bytes are not contiguous");
  }
  const WeightScales s = weight_scales_view(w, true, rows, k);
  if (s.data != nullptr && s.block_cols < k && s.block_cols % 16 != 0) {
    std::snprintf(field, sizeof(field), "%s.block_cols", name);
    return not_yet(field, "e2m1 weight blocks along K that are not a multiple of 16");
  }
  return ok_status();
}

// A GEMM input quantization the widening kernels run (act_widen.cuh).
bool widenable(ActQuant m) {
  return m == ActQuant::None || m == ActQuant::Fp8Static || m == ActQuant::MxFp8 ||
         m == ActQuant::NvFp4;
}

// A pre-quantized input (E4M3 or NVFP4 codes): its scale must be exact in bf16 per element
// (e4m3 / ue8m0) or span the row (then it joins the row factor).
Status check_quantized_input(const MoeProblem& p) {
  if (p.input.format == ElemFormat::E2M1Unpacked) {
    return not_yet("input.format", "one e2m1 code per byte as the input");
  }
  if (p.input_quant.mode != ActQuant::None) {
    return not_yet("input_quant.mode", "requantizing a quantized input");
  }
  const WeightScales s = weight_scales_view(p.input, false, p.num_tokens, p.hidden_size);
  if (s.data != nullptr && s.format == static_cast<int32_t>(ScaleFormat::Float) &&
      s.block_cols < p.hidden_size) {
    return not_yet("input.scale", "float block scales along K with e2m1 weights");
  }
  return ok_status();
}

}  // namespace

Status check_fp4_scope(const MoeProblem& p) {
  const int64_t H = p.hidden_size, I = p.intermediate_size;
  const int64_t M1 = is_gated(p.activation) ? 2 * I : I;
  FIMOE_RETURN_IF_ERROR(check_fp4_weight("w1", p.w1, M1, H));
  FIMOE_RETURN_IF_ERROR(check_fp4_weight("w2", p.w2, H, I));
  if (p.input.format != ElemFormat::Float) {
    FIMOE_RETURN_IF_ERROR(check_quantized_input(p));
  } else if (!widenable(p.input_quant.mode)) {
    return not_yet("input_quant.mode", "per-token or per-group FP8 activations with e2m1 weights");
  }
  if (!widenable(p.inter_quant.mode)) {
    return not_yet("inter_quant.mode", "per-token or per-group FP8 activations with e2m1 weights");
  }
  // The compute dtype rounds only the GEMM inputs that stay unquantized.
  const bool rounds = !widens_gemm1_input(p) || !widens_gemm2_input(p);
  if (rounds && p.compute_dtype != DType::BF16 && p.compute_dtype != DType::F16) {
    return not_yet("compute_dtype", "float32 activations with e2m1 weights");
  }
  return ok_status();
}

void plan_fp4(const MoeProblem& p, const CudaWorkspaceLayout& ws, Fp4Plan* plan) {
  const int64_t H = p.hidden_size, I = p.intermediate_size;
  const int64_t M1 = is_gated(p.activation) ? 2 * I : I;
  // One (K-constant) scale per row: absent for a rounded input, the widened row factor else.
  ActScales row1, row2;
  row1.group = H;
  row2.group = I;
  const bool widen1 = widens_gemm1_input(p), widen2 = widens_gemm2_input(p);
  if (widen1) row1.data = ws.gemm1_input_scales, row1.ld = 1;
  if (widen2) row2.data = ws.gemm2_input_scales, row2.ld = 1;
  plan->gemm1 =
      split_gemm_scales(row1, weight_scales_view(p.w1, true, M1, H), p.w1.global_scale, H);
  plan->gemm2 = split_gemm_scales(row2, weight_scales_view(p.w2, true, H, I), p.w2.global_scale, I);
  plan->gemm1_dtype = widen1 ? DType::BF16 : p.compute_dtype;
  plan->gemm2_dtype = widen2 ? DType::BF16 : p.compute_dtype;
}

}  // namespace cuda
}  // namespace flashinfer_moe
