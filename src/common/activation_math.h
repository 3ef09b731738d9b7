// The fp32 activation formulas of docs/semantics.md ("Activations"), written once for the CPU
// executor (src/cpu/activation.h) and the CUDA activation kernel and fused GEMM1 epilogue
// (src/cuda/epilogue/activation_kernel.cuh).
//
// Where a formula has the shape a * b + c, it goes through routing_math::mul / add: nvcc would
// otherwise contract it into one fused multiply-add (one rounding where the CPU, built with
// -ffp-contract=off, rounds twice). expf / erff / tanhf are the platform's; they may differ by
// an ulp between host and device, which the tests' error budgets cover.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/formats.h"
#include "common/routing_math.h"
#include "flashinfer_moe/types.h"

namespace flashinfer_moe {
namespace activation_math {

// Per-expert parameters of SwigluBias / SwigluStep / Situ, already resolved to their defaults
// (default_params). For Situ, alpha is the gate's tanh cap and beta the linear half's.
struct ExpertParams {
  float alpha = 1.0f;
  float beta = 0.0f;
  float limit = INFINITY;
};

// flashinfer's DEFAULT_SITU_BETA / DEFAULT_SITU_LINEAR_BETA (the cutlass_fused_moe defaults).
constexpr float kSituGateCap = 4.0f;
constexpr float kSituLinearCap = 25.0f;
constexpr float kSwigluStepLimit = 7.0f;

// The parameters an absent per-expert tensor stands for (moe.h MoeProblem::act_alpha ...).
FIMOE_HOST_DEVICE inline ExpertParams default_params(Activation a) {
  ExpertParams prm;
  if (a == Activation::SwigluStep) prm.limit = kSwigluStepLimit;
  if (a == Activation::Situ) {
    prm.alpha = kSituGateCap;
    prm.beta = kSituLinearCap;
  }
  return prm;
}

FIMOE_HOST_DEVICE inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
FIMOE_HOST_DEVICE inline float silu(float x) { return x / (1.0f + expf(-x)); }
FIMOE_HOST_DEVICE inline float gelu(float x) {
  return 0.5f * x * (1.0f + erff(x / 1.41421356237309504880f));
}
FIMOE_HOST_DEVICE inline float gelu_tanh(float x) {
  const float sqrt_2_over_pi = 0.79788456080286535588f;
  const float cube = routing_math::mul(routing_math::mul(routing_math::mul(0.044715f, x), x), x);
  return 0.5f * x * (1.0f + tanhf(sqrt_2_over_pi * routing_math::add(x, cube)));
}
FIMOE_HOST_DEVICE inline float relu(float x) { return x > 0.0f ? x : 0.0f; }
// c * tanh(x / c): x squashed into (-|c|, |c|); an infinite cap leaves x unchanged (the limit).
FIMOE_HOST_DEVICE inline float tanh_cap(float x, float c) {
  return fabsf(c) == INFINITY ? x : c * tanhf(x / c);
}
// std::min / std::max semantics (the first argument wins unless the second compares smaller /
// larger), which differ from fminf / fmaxf when an argument is NaN.
FIMOE_HOST_DEVICE inline float std_min(float a, float b) { return b < a ? b : a; }
FIMOE_HOST_DEVICE inline float std_max(float a, float b) { return a < b ? b : a; }

// Non-gated activation of one value.
FIMOE_HOST_DEVICE inline float activate(Activation a, float x) {
  switch (a) {
    case Activation::Gelu:
      return gelu(x);
    case Activation::Relu:
      return relu(x);
    case Activation::Silu:
      return silu(x);
    case Activation::Relu2: {
      const float r = relu(x);
      return r * r;
    }
    default:
      return x;  // Identity
  }
}

// Gated activation of one (gate, up) pair.
FIMOE_HOST_DEVICE inline float activate_gated(Activation a, float gate, float up,
                                              const ExpertParams& prm) {
  switch (a) {
    case Activation::Geglu:
      return gelu(gate) * up;
    case Activation::GegluTanh:
      return gelu_tanh(gate) * up;
    case Activation::SwigluBias: {
      const float g = std_min(gate, prm.limit);
      const float u = std_min(std_max(up, -prm.limit), prm.limit);
      return g * sigmoid(prm.alpha * g) * (u + prm.beta);
    }
    case Activation::SwigluStep: {
      const float u = std_min(std_max(up, -prm.limit), prm.limit);
      return std_min(silu(gate), prm.limit) * u;
    }
    case Activation::Situ: {
      const float g = std_min(gate, prm.limit);
      const float u = std_min(std_max(up, -prm.limit), prm.limit);
      return (tanh_cap(g, prm.alpha) * sigmoid(g)) * tanh_cap(u, prm.beta);
    }
    default:
      return silu(gate) * up;  // Swiglu
  }
}

}  // namespace activation_math
}  // namespace flashinfer_moe
