// The fp32 activation math of the GEMM1 epilogue, shared by the activation kernel
// (activation_kernel.cu) and the sm80 grouped GEMM's fused epilogue (sm80_grouped_gemm_kernel.cuh)
// so that both paths evaluate exactly the same formulas (those of src/cpu/activation.h).
//
// nvcc contracts a * b + c into one fused multiply-add by default, which rounds once where the
// CPU (built with -ffp-contract=off) rounds twice; the places where the formulas have that shape
// use __fmul_rn / __fadd_rn, which are never contracted.
#pragma once

#include <cstdint>

#include "common/formats.h"
#include "cuda/activation_kernel.h"
#include "flashinfer_moe/types.h"

namespace flashinfer_moe {
namespace cuda {
namespace act_math {

__device__ __forceinline__ float load_any_float(const void* base, int32_t dtype, int64_t offset) {
  switch (static_cast<DType>(dtype)) {
    case DType::F16:
      return formats::fp16_to_float(static_cast<const uint16_t*>(base)[offset]);
    case DType::BF16:
      return formats::bf16_to_float(static_cast<const uint16_t*>(base)[offset]);
    default:
      return static_cast<const float*>(base)[offset];
  }
}

// ---- fp32 activation formulas of src/cpu/activation.h ----

__device__ __forceinline__ float act_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float act_silu(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ float act_gelu(float x) {
  return 0.5f * x * (1.0f + erff(x / 1.41421356237309504880f));
}
__device__ __forceinline__ float act_gelu_tanh(float x) {
  const float sqrt_2_over_pi = 0.79788456080286535588f;
  const float cube = __fmul_rn(__fmul_rn(__fmul_rn(0.044715f, x), x), x);
  return 0.5f * x * (1.0f + tanhf(sqrt_2_over_pi * __fadd_rn(x, cube)));
}
__device__ __forceinline__ float act_relu(float x) { return x > 0.0f ? x : 0.0f; }
// std::min / std::max semantics (the first argument wins unless the second compares smaller /
// larger), which differ from fminf / fmaxf when an argument is NaN.
__device__ __forceinline__ float std_min(float a, float b) { return b < a ? b : a; }
__device__ __forceinline__ float std_max(float a, float b) { return a < b ? b : a; }

struct ExpertParams {
  float alpha, beta, limit;
};

__device__ __forceinline__ float activate(Activation a, float x) {
  switch (a) {
    case Activation::Gelu:
      return act_gelu(x);
    case Activation::Relu:
      return act_relu(x);
    case Activation::Silu:
      return act_silu(x);
    case Activation::Relu2: {
      const float r = act_relu(x);
      return r * r;
    }
    default:
      return x;  // Identity
  }
}

__device__ __forceinline__ float activate_gated(Activation a, float gate, float up,
                                                const ExpertParams& prm) {
  switch (a) {
    case Activation::Geglu:
      return act_gelu(gate) * up;
    case Activation::GegluTanh:
      return act_gelu_tanh(gate) * up;
    case Activation::SwigluBias: {
      const float g = std_min(gate, prm.limit);
      const float u = std_min(std_max(up, -prm.limit), prm.limit);
      return g * act_sigmoid(prm.alpha * g) * (u + prm.beta);
    }
    case Activation::SwigluStep: {
      const float u = std_min(std_max(up, -prm.limit), prm.limit);
      return std_min(act_silu(gate), prm.limit) * u;
    }
    default:
      return act_silu(gate) * up;  // Swiglu
  }
}

// GEMM1 accumulator column m of row r after the routing weight and the bias (semantics step 3).
__device__ __forceinline__ float pre_activation(const ActivationParams& p, float acc, float w,
                                                int32_t e, int64_t m) {
  if (p.weight_on_input) acc = __fmul_rn(acc, w);
  if (p.bias != nullptr) {
    acc = __fadd_rn(
        acc, load_any_float(p.bias, p.bias_dtype, e * p.bias_stride_e + m * p.bias_stride_m));
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
