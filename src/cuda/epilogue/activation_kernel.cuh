// The GEMM1 epilogue math on the device, shared by the activation kernel (activation_kernel.cu)
// and the sm80 grouped GEMM's fused epilogue (sm80_grouped_gemm_kernel.cuh) so that both paths
// give the same bits. The activation formulas themselves are common/activation_math.h (also the
// CPU's); this adds the routing weight, the bias and the per-expert parameters. nvcc would
// contract a * b + c into one fused multiply-add: such places use __fmul_rn / __fadd_rn.
#pragma once

#include <cstdint>

#include "common/activation_math.h"
#include "common/formats.h"
#include "cuda/epilogue/activation_kernel.h"
#include "flashinfer_moe/types.h"

namespace flashinfer_moe {
namespace cuda {
namespace act_math {

using activation_math::activate;
using activation_math::activate_gated;
using activation_math::ExpertParams;

// GEMM1 output C1[r, m] as a value: times the K-constant dequantization factor when C1 holds
// FP8 code products (fp8_operands.h GemmDequant), unchanged otherwise.
__device__ __forceinline__ float dequantized(const ActivationParams& p, float c, int64_t r,
                                             int32_t e, int64_t m) {
  return p.dequant.active ? __fmul_rn(c, dequant_factor(p.dequant, r, e, m)) : c;
}

// GEMM1 accumulator column m of row r after the routing weight and the bias (semantics step 3).
__device__ __forceinline__ float pre_activation(const ActivationParams& p, float acc, float w,
                                                int32_t e, int64_t m) {
  if (p.weight_on_input) acc = __fmul_rn(acc, w);
  if (p.bias != nullptr) {
    acc = __fadd_rn(acc, formats::load_any_float(p.bias, p.bias_dtype,
                                                 e * p.bias_stride_e + m * p.bias_stride_m));
  }
  return acc;
}

// Expert e's SwigluBias / SwigluStep parameters (the defaults where a tensor is absent).
__device__ __forceinline__ ExpertParams expert_params(const ActivationParams& p, int32_t e) {
  ExpertParams prm;
  prm.alpha = p.alpha ? p.alpha[e * p.alpha_stride] : 1.0f;
  prm.beta = p.beta ? p.beta[e * p.beta_stride] : 0.0f;
  prm.limit = p.limit ? p.limit[e * p.limit_stride] : p.default_limit;
  return prm;
}

}  // namespace act_math
}  // namespace cuda
}  // namespace flashinfer_moe
