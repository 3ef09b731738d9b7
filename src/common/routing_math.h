// The fp32 routing math shared by the CPU executor and the CUDA routing kernel.
//
// Routing results must be bit-identical on the CPU and the GPU (a test checks it), so every
// floating-point step of docs/semantics.md "Routing" is written down here once, as host+device
// functions built only from IEEE-754 basic operations (+, *, /, rint, ldexp), which round the
// same on both sides. Two library functions are deliberately NOT used:
//   * expf: CUDA's expf and glibc's expf disagree in the last bit on about 7% of the fp32 inputs
//     (measured on an H200: 159,897,096 of the 2,239,889,408 floats in (-104, 89)), so a
//     polynomial of our own (routing_expf, max error about 1 ulp) replaces both;
//   * implicit fma contraction: nvcc fuses a * b + c by default, which changes the rounding, so
//     the device side spells every product and sum with __fmul_rn / __fadd_rn (never fused).
//     The host build must not contract either (no -ffp-contract=fast together with -mfma).
// This header has no CUDA types: host C++ (src/cpu) includes it too.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/formats.h"  // FIMOE_HOST_DEVICE, float_bits

namespace flashinfer_moe {
namespace routing_math {

#if defined(__CUDA_ARCH__)
FIMOE_HOST_DEVICE inline float mul(float a, float b) { return __fmul_rn(a, b); }
FIMOE_HOST_DEVICE inline float add(float a, float b) { return __fadd_rn(a, b); }
FIMOE_HOST_DEVICE inline float sub(float a, float b) { return __fsub_rn(a, b); }
FIMOE_HOST_DEVICE inline float div(float a, float b) { return __fdiv_rn(a, b); }
FIMOE_HOST_DEVICE inline float round_to_int(float a) { return rintf(a); }
FIMOE_HOST_DEVICE inline float scale_by_pow2(float a, int e) { return ldexpf(a, e); }
#else
inline float mul(float a, float b) { return a * b; }
inline float add(float a, float b) { return a + b; }
inline float sub(float a, float b) { return a - b; }
inline float div(float a, float b) { return a / b; }
inline float round_to_int(float a) { return std::nearbyint(a); }  // ties to even (default mode)
inline float scale_by_pow2(float a, int e) { return std::ldexp(a, e); }
#endif

// e^x in fp32 from basic operations only (so host and device agree bit for bit):
// x = n ln2 + r with a two-part ln2 (n * kLn2Hi is exact for |n| <= 150), |r| <= ln2 / 2,
// e^r by its degree-7 Taylor polynomial (truncation < 1e-8 relative), times 2^n.
FIMOE_HOST_DEVICE inline float routing_expf(float x) {
  if (x != x) return x;                  // NaN
  if (x > 88.7228394f) return INFINITY;  // e^x > FLT_MAX
  if (x < -103.972084f) return 0.0f;     // below half the smallest subnormal
  const float kLog2e = 1.44269504f;
  const float kLn2Hi = 0.693145751953125f;  // 16 significant bits: n * kLn2Hi is exact
  const float kLn2Lo = 1.42860677e-06f;     // ln2 - kLn2Hi
  const float n = round_to_int(mul(x, kLog2e));
  const float r = sub(sub(x, mul(n, kLn2Hi)), mul(n, kLn2Lo));
  float p = 1.0f / 5040.0f;
  p = add(mul(p, r), 1.0f / 720.0f);
  p = add(mul(p, r), 1.0f / 120.0f);
  p = add(mul(p, r), 1.0f / 24.0f);
  p = add(mul(p, r), 1.0f / 6.0f);
  p = add(mul(p, r), 0.5f);
  p = add(mul(p, r), 1.0f);
  p = add(mul(p, r), 1.0f);
  return scale_by_pow2(p, static_cast<int>(n));
}

// sigmoid(x) = 1 / (1 + e^-x).
FIMOE_HOST_DEVICE inline float routing_sigmoid(float x) {
  return div(1.0f, add(1.0f, routing_expf(-x)));
}

// Top-k order as one unsigned integer: larger key = selected first. The high half maps the fp32
// score monotonically to uint32 (-0 counts as +0, so equal scores compare equal; every NaN ranks
// last, below -inf, as on the CPU); the low half prefers the lower expert index on equal scores.
// Key 0 is below every real key and marks "excluded / already taken".
FIMOE_HOST_DEVICE inline uint64_t topk_key(float score, int32_t expert) {
  uint32_t bits = formats::float_bits(score == 0.0f ? 0.0f : score);
  bits = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);  // -inf -> 0x007FFFFF
  if (score != score) bits = 0;                                // NaN: below -inf
  return (static_cast<uint64_t>(bits) << 32) | (0xFFFFFFFFu - static_cast<uint32_t>(expert));
}
FIMOE_HOST_DEVICE inline int32_t topk_key_expert(uint64_t key) {
  return static_cast<int32_t>(0xFFFFFFFFu - static_cast<uint32_t>(key & 0xFFFFFFFFu));
}
constexpr uint64_t kExcludedKey = 0;

// The same order in 32 bits, for one-instruction warp reductions (__reduce_max_sync): the score
// half of topk_key with NaN moved up to 1, so that 0 stays free for "excluded / already taken".
// (Mapped values below -inf's 0x007FFFFF only come from NaN bit patterns, which map to 1 here.)
// Equal keys mean equal scores; the lower expert index then wins, as with topk_key.
FIMOE_HOST_DEVICE inline uint32_t topk_score_key(float score) {
  if (score != score) return 1u;
  uint32_t bits = formats::float_bits(score == 0.0f ? 0.0f : score);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}
constexpr uint32_t kExcludedScoreKey = 0;

// Routing sums run as a fixed tree over the 32 lanes of a warp (the CUDA kernel's butterfly of
// __shfl_xor_sync steps 16, 8, 4, 2, 1), never in one lane: this is the host mirror. Lane l
// first sums its own terms (experts l, l + 32, l + 64, ... in that order, or slot l alone), then
// step d adds lane l + d into lane l for l < d. fp32 addition is commutative bit for bit, so
// every lane of the butterfly ends with lane 0's value and the two sides agree exactly.
constexpr int kRoutingSumLanes = 32;
inline float lane_tree_sum(float (&lane_value)[kRoutingSumLanes]) {
  for (int d = kRoutingSumLanes / 2; d > 0; d /= 2) {
    for (int l = 0; l < d; ++l) lane_value[l] = add(lane_value[l], lane_value[l + d]);
  }
  return lane_value[0];
}

}  // namespace routing_math

}  // namespace flashinfer_moe
