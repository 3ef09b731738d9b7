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
    return not_yet(field, "mixing e2m1 weights with another weight format");
  }
  if (w.format == ElemFormat::E2M1Packed && w.data.strides[2] != 1) {
    std::snprintf(field, sizeof(field), "%s.data", name);
    return not_yet(field, "packed e2m1 codes whose K bytes are not contiguous");
  }
  const WeightScales s = weight_scales_view(w, true, rows, k);
  if (s.data != nullptr && s.block_cols < k && s.block_cols % 16 != 0) {
    std::snprintf(field, sizeof(field), "%s.block_cols", name);
    return not_yet(field, "e2m1 weight blocks along K that are not a multiple of 16");
  }
  return ok_status();
}

}  // namespace

Status check_fp4_scope(const MoeProblem& p) {
  const int64_t H = p.hidden_size, I = p.intermediate_size;
  const int64_t M1 = is_gated(p.activation) ? 2 * I : I;
  FIMOE_RETURN_IF_ERROR(check_fp4_weight("w1", p.w1, M1, H));
  FIMOE_RETURN_IF_ERROR(check_fp4_weight("w2", p.w2, H, I));
  if (p.compute_dtype != DType::BF16 && p.compute_dtype != DType::F16) {
    return not_yet("compute_dtype", "float32 activations with e2m1 weights");
  }
  if (p.input.format != ElemFormat::Float) {
    return not_yet("input.format", "quantized activations with e2m1 weights (W4A8 / W4A4)");
  }
  if (p.input_quant.mode != ActQuant::None) {
    return not_yet("input_quant.mode", "quantized activations with e2m1 weights (W4A8 / W4A4)");
  }
  if (p.inter_quant.mode != ActQuant::None) {
    return not_yet("inter_quant.mode", "a quantized intermediate with e2m1 weights");
  }
  return ok_status();
}

void plan_fp4(const MoeProblem& p, Fp4Plan* plan) {
  const int64_t H = p.hidden_size, I = p.intermediate_size;
  const int64_t M1 = is_gated(p.activation) ? 2 * I : I;
  ActScales none1, none2;  // unquantized activations: one (absent) scale per row
  none1.group = H;
  none2.group = I;
  plan->gemm1 =
      split_gemm_scales(none1, weight_scales_view(p.w1, true, M1, H), p.w1.global_scale, H);
  plan->gemm2 =
      split_gemm_scales(none2, weight_scales_view(p.w2, true, H, I), p.w2.global_scale, I);
}

}  // namespace cuda
}  // namespace flashinfer_moe
