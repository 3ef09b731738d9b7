// Activation of one GEMM1 row on the CPU; the formulas are in common/activation_math.h.
#pragma once

#include <cstdint>

#include "common/activation_math.h"
#include "flashinfer_moe/types.h"

namespace flashinfer_moe {
namespace cpu {

using ActivationParams = activation_math::ExpertParams;
using activation_math::activate;
using activation_math::activate_gated;

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
