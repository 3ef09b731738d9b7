// Scalar codecs for the element and scale formats of docs/semantics.md ("Element codes",
// "Swizzled 128x4 scale layout"). Header-only so that the CPU executor and the CUDA kernels use
// the very same bit-level definitions: a mismatch between the two would show up as a numeric
// difference that no tolerance explains.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "flashinfer_moe/types.h"

#if defined(__CUDACC__)
#define FIMOE_HOST_DEVICE __host__ __device__
#else
#define FIMOE_HOST_DEVICE
#endif

namespace flashinfer_moe {
namespace formats {

FIMOE_HOST_DEVICE inline uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof(u));
  return u;
}

FIMOE_HOST_DEVICE inline float bits_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof(f));
  return f;
}

FIMOE_HOST_DEVICE inline float quiet_nan() { return bits_float(0x7fc00000u); }

// ---- e4m3 (float8_e4m3fn): bias 7, subnormals, no infinity, 0x7F / 0xFF are NaN ------------

constexpr float kE4M3Max = 448.0f;

FIMOE_HOST_DEVICE inline float e4m3_to_float(uint8_t code) {
  const uint32_t exp = (code >> 3) & 0xF;
  const uint32_t mant = code & 0x7;
  float mag;
  if (exp == 15 && mant == 7) {
    mag = quiet_nan();
  } else if (exp == 0) {
    mag = ldexpf(static_cast<float>(mant), -9);  // subnormal: mant/8 * 2^-6
  } else {
    mag = ldexpf(static_cast<float>(8 + mant), static_cast<int>(exp) - 10);
  }
  return (code & 0x80) ? -mag : mag;
}

// Round to nearest even, saturate to +-448 (infinity included), NaN stays NaN.
FIMOE_HOST_DEVICE inline uint8_t float_to_e4m3(float x) {
  const uint8_t sign = (float_bits(x) & 0x80000000u) ? 0x80 : 0x00;
  if (x != x) return static_cast<uint8_t>(sign | 0x7F);
  const float a = fabsf(x);
  if (a >= kE4M3Max) return static_cast<uint8_t>(sign | 0x7E);
  uint32_t code;
  if (a < 0.015625f) {
    // Subnormal range (below 2^-6): quantum 2^-9; a * 2^9 is exact, rintf rounds half to even.
    // q == 8 carries into the smallest normal, whose code is also 8.
    code = static_cast<uint32_t>(rintf(a * 512.0f));
  } else {
    int e2;
    frexpf(a, &e2);  // a = m * 2^e2, m in [0.5, 1): unbiased exponent e2 - 1
    const int unbiased = e2 - 1;
    // Mantissa with the implicit bit in [8, 16]; 16 carries into the next exponent.
    const uint32_t q = static_cast<uint32_t>(rintf(ldexpf(a, 3 - unbiased)));
    code = (static_cast<uint32_t>(unbiased + 7) << 3) + (q - 8);
  }
  return static_cast<uint8_t>(sign | code);
}

// ---- e2m1: bit 3 sign, bits 0-2 index {0, 0.5, 1, 1.5, 2, 3, 4, 6} -------------------------

constexpr float kE2M1Max = 6.0f;

FIMOE_HOST_DEVICE inline float e2m1_to_float(uint8_t code) {
  const uint32_t idx = code & 0x7;
  // Doubled magnitudes keep this a small integer table usable on the device without a global.
  const uint32_t twice = idx < 4 ? idx : (idx == 4 ? 4u : idx == 5 ? 6u : idx == 6 ? 8u : 12u);
  const float mag = 0.5f * static_cast<float>(twice);
  return (code & 0x8) ? -mag : mag;
}

// A signed int4 code (two's complement in the low nibble; the high nibble is ignored): -8..7.
FIMOE_HOST_DEVICE inline float int4_to_float(uint8_t code) {
  const int32_t v = static_cast<int32_t>(code & 0xF);
  return static_cast<float>(v < 8 ? v : v - 16);
}

// Round to nearest, ties to the even code, saturating at 6. Midpoints between codes i and i+1
// go to the even one: 0.25->0, 0.75->1, 1.25->1, 1.75->2, 2.5->2, 3.5->4, 5->4.
FIMOE_HOST_DEVICE inline uint8_t float_to_e2m1(float x) {
  const uint8_t sign = (float_bits(x) & 0x80000000u) ? 0x8 : 0x0;
  const float a = fabsf(x);
  uint8_t idx;
  if (a <= 0.25f)
    idx = 0;
  else if (a < 0.75f)
    idx = 1;
  else if (a <= 1.25f)
    idx = 2;
  else if (a < 1.75f)
    idx = 3;
  else if (a <= 2.5f)
    idx = 4;
  else if (a < 3.5f)
    idx = 5;
  else if (a <= 5.0f)
    idx = 6;
  else
    idx = 7;  // also NaN: e2m1 has no NaN code, saturate
  return static_cast<uint8_t>(sign | idx);
}

// ---- ue8m0 scale byte: 2^(b - 127), 255 is NaN ---------------------------------------------

FIMOE_HOST_DEVICE inline float ue8m0_to_float(uint8_t b) {
  if (b == 255) return quiet_nan();
  return ldexpf(1.0f, static_cast<int>(b) - 127);
}

// ---- bf16 / fp16 <-> fp32, round to nearest even ---------------------------------------------

FIMOE_HOST_DEVICE inline float bf16_to_float(uint16_t h) {
  return bits_float(static_cast<uint32_t>(h) << 16);
}

FIMOE_HOST_DEVICE inline uint16_t float_to_bf16(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  const uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>((u + rounding) >> 16);
}

FIMOE_HOST_DEVICE inline float fp16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ff;
  if (exp == 0) {
    const float mag = ldexpf(static_cast<float>(mant), -24);
    return sign ? -mag : mag;
  }
  if (exp == 31) return bits_float(sign | 0x7f800000u | (mant << 13));
  return bits_float(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

FIMOE_HOST_DEVICE inline uint16_t float_to_fp16(float f) {
  const uint32_t u = float_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) return static_cast<uint16_t>(sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (a < 0x38800000u) {
    // Below the smallest normal 2^-14: quantum 2^-24, scaling is exact; q == 1024 carries into
    // the smallest normal, whose bits are also 1024.
    const uint32_t q = static_cast<uint32_t>(rintf(bits_float(a) * 16777216.0f));
    return static_cast<uint16_t>(sign | q);
  }
  const uint32_t mant = a & 0x7fffffu;
  uint32_t h = ((((a >> 23) - 127 + 15)) << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry may produce inf: correct
  return static_cast<uint16_t>(sign | h);
}

FIMOE_HOST_DEVICE inline float round_to_bf16(float f) { return bf16_to_float(float_to_bf16(f)); }
FIMOE_HOST_DEVICE inline float round_to_fp16(float f) { return fp16_to_float(float_to_fp16(f)); }
FIMOE_HOST_DEVICE inline float round_to_e4m3(float f) { return e4m3_to_float(float_to_e4m3(f)); }
FIMOE_HOST_DEVICE inline float round_to_e2m1(float f) { return e2m1_to_float(float_to_e2m1(f)); }

// ---- swizzled 128x4 scale layout ---------------------------------------------------------------

FIMOE_HOST_DEVICE inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Bytes one matrix of `rows` x `cols` scales occupies in the swizzled layout (Rp * Cp).
FIMOE_HOST_DEVICE inline int64_t swizzled_matrix_bytes(int64_t rows, int64_t cols) {
  return round_up(rows, 128) * round_up(cols, 4);
}

// Offset of scale (r, c) inside one matrix with `cols` scale columns: 128x4 tiles, row-major
// over tiles; inside a tile the 32 row groups are interleaved so that one 16-byte load holds
// rows r, r+32, r+64, r+96 for 4 consecutive columns.
FIMOE_HOST_DEVICE inline int64_t swizzled_128x4_offset(int64_t r, int64_t c, int64_t cols) {
  const int64_t col_tiles = round_up(cols, 4) / 4;
  return ((r / 128) * col_tiles + c / 4) * 512 + (r % 32) * 16 + ((r % 128) / 32) * 4 + c % 4;
}

// Element `offset` of a float buffer stored as F16, BF16 or (anything else) F32, as fp32.
// `dtype` is a DType value; used for optional per-expert tensors (biases) of any float type.
FIMOE_HOST_DEVICE inline float load_any_float(const void* base, int32_t dtype, int64_t offset) {
  switch (static_cast<DType>(dtype)) {
    case DType::F16:
      return fp16_to_float(static_cast<const uint16_t*>(base)[offset]);
    case DType::BF16:
      return bf16_to_float(static_cast<const uint16_t*>(base)[offset]);
    default:
      return static_cast<const float*>(base)[offset];
  }
}

}  // namespace formats
}  // namespace flashinfer_moe
