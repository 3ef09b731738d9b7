// Activation (re)quantization on the CPU: fp8 (static, per token, per group, MX) and NVFP4.
// Every division and product below is the fp32 operation the contract names, in its order.
#include "cpu/act_quant.h"

#include <algorithm>
#include <cmath>

#include "common/formats.h"
#include "host/tensor_access.h"

namespace flashinfer_moe {
namespace cpu {
namespace {

using formats::kE2M1Max;
using formats::kE4M3Max;

float abs_max(const float* x, int64_t n) {
  float m = 0.0f;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

// value = decode(sat_e4m3(x / s)) * s over x[0, n).
void fp8_with_scale(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] = formats::round_to_e4m3(x[i] / s) * s;
}

// s = amax / 448, or 1 when amax == 0.
float fp8_dynamic_scale(const float* x, int64_t n) {
  const float amax = abs_max(x, n);
  return amax == 0.0f ? 1.0f : amax / kE4M3Max;
}

// s = 2^e with e the smallest integer such that 2^e >= amax / 448, e clamped to [-127, 127].
float mxfp8_scale(const float* x, int64_t n) {
  const float amax = abs_max(x, n);
  if (amax == 0.0f) return 1.0f;
  const float ratio = amax / kE4M3Max;
  if (!std::isfinite(ratio)) return std::ldexp(1.0f, 127);
  int e2;
  const float m = std::frexp(ratio, &e2);  // ratio = m * 2^e2, m in [0.5, 1)
  int e = (m == 0.5f) ? e2 - 1 : e2;       // an exact power of two needs no rounding up
  e = std::min(127, std::max(-127, e));
  return std::ldexp(1.0f, e);
}

// NVFP4 over one group of up to 16 values with global dequant scale g.
void nvfp4_group(float* x, int64_t n, float g) {
  const float amax = abs_max(x, n);
  const float sf = formats::round_to_e4m3(amax / kE2M1Max / g);
  if (sf == 0.0f) {
    for (int64_t i = 0; i < n; ++i) x[i] = 0.0f;
    return;
  }
  const float denom = sf * g;
  for (int64_t i = 0; i < n; ++i) x[i] = formats::round_to_e2m1(x[i] / denom) * sf * g;
}

}  // namespace

void quantize_row(ActQuant mode, int64_t group_size, float static_scale, DType compute_dtype,
                  float* row, int64_t K) {
  switch (mode) {
    case ActQuant::None:
      if (compute_dtype != DType::F32) {
        for (int64_t i = 0; i < K; ++i) row[i] = round_to_dtype(row[i], compute_dtype);
      }
      break;
    case ActQuant::Fp8Static:
      fp8_with_scale(row, K, static_scale);
      break;
    case ActQuant::Fp8PerToken:
      fp8_with_scale(row, K, fp8_dynamic_scale(row, K));
      break;
    case ActQuant::Fp8PerGroup:
      for (int64_t c = 0; c < K; c += group_size) {
        const int64_t n = std::min(group_size, K - c);
        fp8_with_scale(row + c, n, fp8_dynamic_scale(row + c, n));
      }
      break;
    case ActQuant::MxFp8:
      for (int64_t c = 0; c < K; c += 32) {
        const int64_t n = std::min<int64_t>(32, K - c);
        fp8_with_scale(row + c, n, mxfp8_scale(row + c, n));
      }
      break;
    case ActQuant::NvFp4:
      for (int64_t c = 0; c < K; c += 16)
        nvfp4_group(row + c, std::min<int64_t>(16, K - c), static_scale);
      break;
  }
}

}  // namespace cpu
}  // namespace flashinfer_moe
