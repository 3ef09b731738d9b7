// Activation functions of the MoE layer in fp32 (docs/semantics.md "Activations").
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "flashinfer_moe/types.h"

namespace flashinfer_moe {
namespace cpu {

// Per-expert parameters of SwigluBias / SwigluStep, already resolved to their defaults.
struct ActivationParams {
  float alpha = 1.0f;
  float beta = 0.0f;
  float limit = std::numeric_limits<float>::infinity();
};

inline float act_sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
inline float act_silu(float x) { return x / (1.0f + std::exp(-x)); }
inline float act_gelu(float x) { return 0.5f * x * (1.0f + std::erf(x / 1.41421356237309504880f)); }
inline float act_gelu_tanh(float x) {
  const float sqrt_2_over_pi = 0.79788456080286535588f;
  return 0.5f * x * (1.0f + std::tanh(sqrt_2_over_pi * (x + 0.044715f * x * x * x)));
}
inline float act_relu(float x) { return x > 0.0f ? x : 0.0f; }

// Non-gated activation of one value.
inline float activate(Activation a, float x) {
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

// Gated activation of one (gate, up) pair.
inline float activate_gated(Activation a, float gate, float up, const ActivationParams& prm) {
  switch (a) {
    case Activation::Swiglu:
      return act_silu(gate) * up;
    case Activation::Geglu:
      return act_gelu(gate) * up;
    case Activation::GegluTanh:
      return act_gelu_tanh(gate) * up;
    case Activation::SwigluBias: {
      const float g = std::min(gate, prm.limit);
      const float u = std::min(std::max(up, -prm.limit), prm.limit);
      return g * act_sigmoid(prm.alpha * g) * (u + prm.beta);
    }
    case Activation::SwigluStep: {
      const float u = std::min(std::max(up, -prm.limit), prm.limit);
      return std::min(act_silu(gate), prm.limit) * u;
    }
    default:
      return act_silu(gate) * up;  // unreachable after validation
  }
}

// h[0, I) from the GEMM1 row acc[0, M1): gated rows are [up ; gate] with M1 = 2I.
inline void activate_row(Activation a, const float* acc, int64_t I, const ActivationParams& prm,
                         float* h) {
  if (is_gated(a)) {
    for (int64_t i = 0; i < I; ++i) h[i] = activate_gated(a, acc[I + i], acc[i], prm);
  } else {
    for (int64_t i = 0; i < I; ++i) h[i] = activate(a, acc[i]);
  }
}

}  // namespace cpu
}  // namespace flashinfer_moe
