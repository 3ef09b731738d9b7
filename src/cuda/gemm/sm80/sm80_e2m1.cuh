// e2m1 (FP4) codes to bf16 / fp16 pairs for mma.sync fragments, exactly, in a few integer ops.
//
// Every e2m1 value (0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives) is a bf16 and an fp16
// value, so the widening rounds nothing. Four codes arrive as one 16-bit selector (nibble i =
// code i; bit 3 of a nibble is the sign). One byte permute per output byte plane looks the
// magnitudes up in an 8-entry table held in two immediates (the selector's low 3 bits pick the
// byte), the signs are moved to bit 7 of their byte, and two more permutes interleave the byte
// planes into the two b16x2 registers an m16n8k16 fragment takes:
//   lo = (code 0, code 1), hi = (code 2, code 3), the lower code in the lower half.
// fp16 values of e2m1 magnitudes all have a zero low byte, so fp16 needs one table, bf16 two.
#pragma once

#include <cstdint>

namespace flashinfer_moe {
namespace cuda {
namespace sm80 {

// Four one-byte codes (low nibbles, high nibbles ignored) as a 16-bit selector.
__device__ __forceinline__ uint32_t e2m1_bytes_to_selector(uint32_t bytes) {
  const uint32_t v = bytes & 0x0F0F0F0Fu;
  // Nibbles of bytes 0, 1 into byte 0 and of bytes 2, 3 into byte 2, then bytes 0, 2 together.
  return __byte_perm(v | (v >> 4), 0u, 0x4420);
}

// The sign bits of the four codes of `sel`, each moved to bit 7 of byte i.
__device__ __forceinline__ uint32_t e2m1_sign_bytes(uint32_t sel) {
  const uint32_t even = (sel & 0x0808u) << 4;  // codes 0, 2: bits 3, 11 -> 7, 15
  const uint32_t odd = sel & 0x8080u;          // codes 1, 3: already at bits 7, 15
  return __byte_perm(even, odd, 0x5140);
}

// Codes 0..3 of `sel` as (lo, hi) b16x2 registers of bf16 (kBf16) or fp16 values.
template <bool kBf16>
__device__ __forceinline__ void e2m1x4_to_b16x4(uint32_t sel, uint32_t& lo, uint32_t& hi) {
  const uint32_t mag = sel & 0x7777u;
  if constexpr (kBf16) {
    // bf16 of 0, 0.5, 1, 1.5, 2, 3, 4, 6: 0000 3F00 3F80 3FC0 4000 4040 4080 40C0.
    const uint32_t high = __byte_perm(0x3F3F3F00u, 0x40404040u, mag) | e2m1_sign_bytes(sel);
    const uint32_t low = __byte_perm(0xC0800000u, 0xC0804000u, mag);
    lo = __byte_perm(low, high, 0x5140);
    hi = __byte_perm(low, high, 0x7362);
  } else {
    // fp16 of the same values: 0000 3800 3C00 3E00 4000 4200 4400 4600.
    const uint32_t high = __byte_perm(0x3E3C3800u, 0x46444240u, mag) | e2m1_sign_bytes(sel);
    lo = __byte_perm(high, 0u, 0x1404);
    hi = __byte_perm(high, 0u, 0x3424);
  }
}

}  // namespace sm80
}  // namespace cuda
}  // namespace flashinfer_moe
