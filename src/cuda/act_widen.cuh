// Quantized activations for the FP4-weight GEMMs (W4A8, W4A4), widened exactly into bf16.
//
// Hopper has no FP4 tensor cores and the W4A16 kernel multiplies bf16 by e2m1 widened in
// registers, so a quantized GEMM input is handed to it as bf16 values: each element is its code
// times the scale that varies along K (an MXFP8 power of two, an NVFP4 e4m3 scale), which is
// exact in bf16 (at most 4 x 4 significant bits; the exponent range is fp32's). The factor that
// is constant along the row (a static FP8 scale, an NVFP4 global scale, a pre-quantized input's
// global) is not multiplied in: it goes to one fp32 per row that the kernel reading the GEMM's
// output applies (GemmDequant::row_scale), so the values stay exact whatever the factor is.
//
// The scale math is docs/semantics.md's, step by step as src/cpu/act_quant.cpp evaluates it
// (true fp32 divisions, NaN-ignoring amax, formats.h's encoders), so that GEMM1's widened input
// is meant to be the CPU's quantized value divided by its row factor, bit for bit (the tests
// compare outputs within the error budget). Device code for the gather and activation kernels.
#pragma once

#include <cstdint>

#include "common/formats.h"
#include "cuda/act_quant.cuh"
#include "flashinfer_moe/types.h"

namespace flashinfer_moe {
namespace cuda {
namespace act_widen {

// Columns one thread quantizes at a time: a whole NVFP4 (16) or MXFP8 (32) group; static
// scales have no groups and take 16.
FIMOE_HOST_DEVICE inline int group_columns(ActQuant mode) {
  return mode == ActQuant::MxFp8 ? 32 : 16;
}

#if defined(__CUDACC__)

// v[0, n) (n <= kMax) replaced by the widened values of `mode`; returns nothing because the
// row factor does not depend on the values (static_s for Fp8Static, the global g for NvFp4).
template <int kMax>
__device__ __forceinline__ void widen_group(ActQuant mode, float static_s, float v[kMax], int n) {
  if (mode == ActQuant::Fp8Static) {
    for (int i = 0; i < n; ++i) {
      v[i] = formats::e4m3_to_float(act_quant::quantize_e4m3(v[i], static_s));
    }
    return;
  }
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) amax = act_quant::amax_step(amax, v[i]);
  if (mode == ActQuant::MxFp8) {
    const float s = act_quant::mxfp8_scale_from_amax(amax);
    for (int i = 0; i < n; ++i) {
      v[i] = __fmul_rn(formats::e4m3_to_float(act_quant::quantize_e4m3(v[i], s)), s);
    }
    return;
  }
  // NvFp4 with global g: sf = e4m3(amax / 6 / g); q = e2m1(x / (sf * g)); value q * sf * g.
  const float g = static_s;
  const float sf =
      formats::round_to_e4m3(act_quant::div_rn(act_quant::div_rn(amax, formats::kE2M1Max), g));
  if (sf == 0.0f) {
    for (int i = 0; i < n; ++i) v[i] = 0.0f;
    return;
  }
  const float denom = __fmul_rn(sf, g);
  for (int i = 0; i < n; ++i) {
    v[i] = __fmul_rn(formats::round_to_e2m1(act_quant::div_rn(v[i], denom)), sf);
  }
}

// Stores v[0, n) as bf16 at row + col: two 16-byte stores for a full 16-column chunk at a
// 16-column offset of a 16-byte aligned row, element stores otherwise.
template <int kMax>
__device__ __forceinline__ void store_bf16(uint16_t* row, int64_t col, const float v[kMax], int n) {
  if (n % 8 == 0) {
    for (int i = 0; i < n; i += 8) {
      uint4 packed;
      uint16_t* h = reinterpret_cast<uint16_t*>(&packed);
#pragma unroll
      for (int j = 0; j < 8; ++j) h[j] = formats::float_to_bf16(v[i + j]);
      *reinterpret_cast<uint4*>(row + col + i) = packed;
    }
    return;
  }
  for (int i = 0; i < n; ++i) row[col + i] = formats::float_to_bf16(v[i]);
}

#endif  // __CUDACC__

}  // namespace act_widen
}  // namespace cuda
}  // namespace flashinfer_moe
