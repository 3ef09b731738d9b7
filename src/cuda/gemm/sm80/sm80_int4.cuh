// Two's-complement int4 codes (MXINT4 weights) to bf16 / fp16 pairs for mma.sync fragments,
// exactly, in a few integer ops and one subtraction.
//
// Four codes arrive as a 16-bit selector (nibble i = code i), as in sm80_e2m1.cuh. Flipping a
// code's sign bit gives u = code + 8 in 0..15; placed in the low mantissa bits of 128 (bf16
// 0x4300, whose ulp is 1) or 1024 (fp16 0x6400, likewise) it reads as 128 + u or 1024 + u, and
// subtracting 136 or 1032 leaves the code's value, -8..7: every step is exact.
//   lo = (code 0, code 1), hi = (code 2, code 3), the lower code in the lower half.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace flashinfer_moe {
namespace cuda {
namespace sm80 {

template <bool kBf16>
__device__ __forceinline__ void int4x4_to_b16x4(uint32_t sel, uint32_t& lo, uint32_t& hi) {
  constexpr uint32_t kBase = kBf16 ? 0x43004300u : 0x64006400u;    // 128 or 1024, twice
  constexpr uint32_t kOffset = kBf16 ? 0x43084308u : 0x64086408u;  // 136 or 1032, twice
  const uint32_t u = sel ^ 0x8888u;
  const uint32_t l = (u & 0x000Fu) | ((u << 12) & 0x000F0000u) | kBase;
  const uint32_t h = ((u >> 8) & 0x000Fu) | ((u << 4) & 0x000F0000u) | kBase;
  const uint32_t off = kOffset;
  if constexpr (kBf16) {
    const __nv_bfloat162 o = *reinterpret_cast<const __nv_bfloat162*>(&off);
    const __nv_bfloat162 a = __hsub2(*reinterpret_cast<const __nv_bfloat162*>(&l), o);
    const __nv_bfloat162 b = __hsub2(*reinterpret_cast<const __nv_bfloat162*>(&h), o);
    lo = *reinterpret_cast<const uint32_t*>(&a);
    hi = *reinterpret_cast<const uint32_t*>(&b);
  } else {
    const __half2 o = *reinterpret_cast<const __half2*>(&off);
    const __half2 a = __hsub2(*reinterpret_cast<const __half2*>(&l), o);
    const __half2 b = __hsub2(*reinterpret_cast<const __half2*>(&h), o);
    lo = *reinterpret_cast<const uint32_t*>(&a);
    hi = *reinterpret_cast<const uint32_t*>(&b);
  }
}

}  // namespace sm80
}  // namespace cuda
}  // namespace flashinfer_moe
