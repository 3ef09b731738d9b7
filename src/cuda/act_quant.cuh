// FP8 (e4m3) quantization of activation rows on the GPU: the scale rules of docs/semantics.md
// ("Activation (re)quantization") and a block-per-row engine that the gather (GEMM1's input) and
// the activation kernel (GEMM2's input) both run, each with its own source of fp32 values.
//
// The scale math is host + device (FIMOE_HOST_DEVICE) and follows src/cpu/act_quant.cpp step by
// step, so that codes and scales are bitwise those of the CPU executor given the same fp32 row:
// amax ignores NaN like std::max(m, |x|), s = amax / 448 as a true fp32 division (never a
// reciprocal multiply), s = 1 when amax == 0, MxFp8's power of two from frexpf, q = sat_e4m3(x / s)
// through formats.h's encoder.
//
// Reduction shapes (RowQuantPlan, chosen on the host): each thread owns `vec` consecutive columns
// (a chunk) per pass over the row, so a group is `chunks_per_group` chunks:
//   Static  no amax (the scale is given);
//   Lanes   chunks_per_group divides 32: the group lives inside one warp, aligned to its lanes, so
//           a few xor shuffles give every lane its group's amax and the row goes out in one pass
//           with no shared memory (per-group 128 and MxFp8's 32 take this path);
//   Block   anything else (per token, long or odd groups): pass 1 reduces into a shared amax per
//           group, pass 2 quantizes. Values of the first kCachePasses passes stay in registers;
//           later passes are loaded (recomputed) again rather than spilled.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/formats.h"
#include "cuda/fp8_operands.h"
#include "flashinfer_moe/types.h"

namespace flashinfer_moe {
namespace cuda {
namespace act_quant {

// ---- scale rules (host and device) ----------------------------------------------------------

// a / b rounded once: the CPU divides, so must we (nvcc may otherwise use a reciprocal under
// fast-math flags; __fdiv_rn is immune to them).
FIMOE_HOST_DEVICE inline float div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

// Running amax, NaN ignored exactly as the CPU's std::max(m, |x|) ignores it.
FIMOE_HOST_DEVICE inline float amax_step(float m, float x) {
  const float a = fabsf(x);
  return m < a ? a : m;
}

// Fp8PerToken / Fp8PerGroup: s = amax / 448, 1 when amax == 0.
FIMOE_HOST_DEVICE inline float fp8_scale_from_amax(float amax) {
  return amax == 0.0f ? 1.0f : div_rn(amax, formats::kE4M3Max);
}

// 2^e as an fp32 bit pattern for e in [-127, 127] (2^-127 is the subnormal 0x00400000).
FIMOE_HOST_DEVICE inline float power_of_two(int e) {
  return formats::bits_float(e >= -126 ? static_cast<uint32_t>(e + 127) << 23 : 0x00400000u);
}

// MxFp8: the smallest power of two >= amax / 448, exponent clamped to [-127, 127]; 1 when
// amax == 0. Mirrors the CPU's frexp reading, including its ratio == 0 corner (amax so small
// that amax / 448 underflows: frexp gives exponent 0, so s = 1).
FIMOE_HOST_DEVICE inline float mxfp8_scale_from_amax(float amax) {
  if (amax == 0.0f) return 1.0f;
  const float ratio = div_rn(amax, formats::kE4M3Max);
  if ((formats::float_bits(ratio) & 0x7f800000u) == 0x7f800000u) return power_of_two(127);
  int e2;
  const float m = frexpf(ratio, &e2);  // ratio = m * 2^e2, m in [0.5, 1)
  int e = (m == 0.5f) ? e2 - 1 : e2;   // an exact power of two needs no rounding up
  e = e < -127 ? -127 : (e > 127 ? 127 : e);
  return power_of_two(e);
}

FIMOE_HOST_DEVICE inline float scale_from_amax(bool mx, float amax) {
  return mx ? mxfp8_scale_from_amax(amax) : fp8_scale_from_amax(amax);
}

// sat_e4m3(x): on sm_89+ one hardware conversion (round to nearest even, satfinite clamps to
// +-448 as formats.h does, infinity included), an order of magnitude fewer instructions than the
// portable encoder, which the quantizing kernels are bound by. The hardware NaN is 0x7F whatever
// the sign; the CPU keeps the sign, so a NaN is re-signed.
FIMOE_HOST_DEVICE inline uint8_t encode_e4m3(float x) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  uint16_t pair;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(pair) : "f"(0.0f), "f"(x));
  if (x != x) return static_cast<uint8_t>(((formats::float_bits(x) >> 24) & 0x80u) | 0x7Fu);
  return static_cast<uint8_t>(pair & 0xFFu);
#else
  return formats::float_to_e4m3(x);
#endif
}

// q = sat_e4m3(x / s). A NaN operand gives NaN with that operand's sign, as the host's division
// propagates it (the device's returns the positive canonical NaN).
FIMOE_HOST_DEVICE inline uint8_t quantize_e4m3(float x, float s) {
  if (x != x) return encode_e4m3(x);
  if (s != s) return encode_e4m3(s);
  return encode_e4m3(div_rn(x, s));
}

// ---- row plan (host) --------------------------------------------------------------------------

enum class Reduce : int32_t { Static = 0, Lanes = 1, Block = 2 };

struct RowQuantPlan {
  Reduce reduce = Reduce::Static;
  bool mx = false;     // MxFp8's power-of-two scale
  int32_t vec = 1;     // columns per chunk (8 or 4 on vector paths, else 1)
  int64_t group = 0;   // columns per scale (the row width for Static / PerToken)
  int64_t groups = 0;  // ceil(cols / group)
  int32_t chunks_per_group = 0;
  bool warp_in_one_group = false;  // Block: all 32 chunks of a warp share a group
};

// The plan for quantizing rows of `cols` columns under `quant`, with `vec` columns per chunk
// when the caller's loads allow it (the plan falls back to 1 when a group is not a multiple).
// Returns false for a mode that is not FP8.
inline bool plan_row_quant(const ActQuantOut& quant, int64_t cols, int32_t vec, RowQuantPlan* out) {
  RowQuantPlan p;
  switch (static_cast<ActQuant>(quant.mode)) {
    case ActQuant::Fp8Static:
      p.reduce = Reduce::Static;
      p.group = cols;
      break;
    case ActQuant::Fp8PerToken:
      p.group = cols;
      break;
    case ActQuant::Fp8PerGroup:
      p.group = quant.scales.group > 0 && quant.scales.group < cols ? quant.scales.group : cols;
      break;
    case ActQuant::MxFp8:
      p.mx = true;
      p.group = cols < 32 ? cols : 32;
      break;
    default:
      return false;
  }
  p.groups = (cols + p.group - 1) / p.group;
  // A chunk must not straddle two groups: the last group may be short, the others are full.
  p.vec = (vec > 1 && p.group % vec == 0 && cols % vec == 0) ? vec : 1;
  const int64_t cpg = p.group / p.vec;
  p.chunks_per_group = cpg > (1 << 30) ? (1 << 30) : static_cast<int32_t>(cpg);
  if (static_cast<ActQuant>(quant.mode) != ActQuant::Fp8Static) {
    const bool divides_warp = cpg <= 32 && (32 % cpg) == 0;
    p.reduce = divides_warp ? Reduce::Lanes : Reduce::Block;
    p.warp_in_one_group = p.groups == 1 || cpg % 32 == 0;
  }
  *out = p;
  return true;
}

// Dynamic shared memory bytes the row engine needs under `plan`.
inline int64_t row_quant_smem_bytes(const RowQuantPlan& plan) {
  return plan.reduce == Reduce::Block ? plan.groups * static_cast<int64_t>(sizeof(float)) : 0;
}

// Threads per block for a block-per-row launch: enough that Block's passes fit the register
// cache, more for few rows (decode) so that a row's latency is spread over more warps; never
// more warps than the row has chunks (a multiple of 32, at most 512).
inline int row_quant_threads(const RowQuantPlan& plan, int64_t cols, int64_t max_rows,
                             int cache_passes) {
  const int64_t chunks = (cols + plan.vec - 1) / plan.vec;
  int threads = 128;
  if (plan.reduce == Reduce::Block) {
    while (threads < 512 && chunks > static_cast<int64_t>(threads) * cache_passes) threads *= 2;
  }
  if (max_rows < 1024) threads = 512;
  const int64_t needed = (chunks + 31) / 32 * 32;
  if (needed < threads) threads = static_cast<int>(needed < 32 ? 32 : needed);
  return threads;
}

#if defined(__CUDACC__)

// ---- the row engine (device) ------------------------------------------------------------------

// Stores the scale of group g of row r (when the caller keeps scales).
__device__ __forceinline__ void store_scale(const ActScales& s, int64_t r, int64_t g, float v) {
  if (s.data != nullptr) s.data[act_scale_index(s, r, g)] = v;
}

// Writes kVec codes at columns [col, col + count) of a codes row (16-byte aligned rows, so a
// full chunk at a multiple of kVec is aligned to its own size).
template <int kVec>
__device__ __forceinline__ void store_codes(uint8_t* row, int64_t col, int count,
                                            const uint8_t q[kVec]) {
  if constexpr (kVec == 8) {
    if (count == 8) {
      uint2 packed;
      packed.x = q[0] | (q[1] << 8) | (q[2] << 16) | (static_cast<uint32_t>(q[3]) << 24);
      packed.y = q[4] | (q[5] << 8) | (q[6] << 16) | (static_cast<uint32_t>(q[7]) << 24);
      *reinterpret_cast<uint2*>(row + col) = packed;
      return;
    }
  } else if constexpr (kVec == 4) {
    if (count == 4) {
      *reinterpret_cast<uint32_t*>(row + col) =
          q[0] | (q[1] << 8) | (q[2] << 16) | (static_cast<uint32_t>(q[3]) << 24);
      return;
    }
  }
#pragma unroll
  for (int i = 0; i < kVec; ++i) {
    if (i < count) row[col + i] = q[i];
  }
}

template <int kVec>
__device__ __forceinline__ float chunk_amax(const float v[kVec], int count) {
  float m = 0.0f;
#pragma unroll
  for (int i = 0; i < kVec; ++i) {
    if (i < count) m = amax_step(m, v[i]);
  }
  return m;
}

template <int kVec>
__device__ __forceinline__ void quantize_chunk(const float v[kVec], float s, uint8_t q[kVec]) {
#pragma unroll
  for (int i = 0; i < kVec; ++i) q[i] = quantize_e4m3(v[i], s);
}

// Quantizes row r (cols columns) with the whole block: codes to `codes_row`, scales to
// `scales`. `source.load(col, v, count)` yields the fp32 values of columns [col, col + count)
// (count <= kVec; v[i >= count] must be finite, e.g. 0). `static_s` is the Fp8Static scale.
// `smem_amax` holds plan.groups floats (Block only). Every thread of the block must call this
// (Block synchronizes; Lanes shuffles with full warps).
template <Reduce kReduce, int kVec, int kCachePasses, class Source>
__device__ __forceinline__ void quantize_row_block(const Source& source, int64_t cols,
                                                   const RowQuantPlan& plan, float static_s,
                                                   uint8_t* codes_row, const ActScales& scales,
                                                   int64_t r, float* smem_amax) {
  const int64_t threads = blockDim.x;
  const int64_t chunks = (cols + kVec - 1) / kVec;
  const int64_t passes = (chunks + threads - 1) / threads;
  if constexpr (kReduce == Reduce::Static) {
    for (int64_t pass = 0; pass < passes; ++pass) {
      const int64_t c = pass * threads + threadIdx.x;
      if (c >= chunks) break;
      const int64_t col = c * kVec;
      const int count = static_cast<int>(cols - col < kVec ? cols - col : kVec);
      float v[kVec];
      source.load(col, v, count);
      uint8_t q[kVec];
      quantize_chunk<kVec>(v, static_s, q);
      store_codes<kVec>(codes_row, col, count, q);
    }
    if (threadIdx.x == 0) store_scale(scales, r, 0, static_s);
  } else if constexpr (kReduce == Reduce::Lanes) {
    // Every lane runs every pass (inactive chunks contribute 0) so the shuffles see full warps.
    const int cpg = plan.chunks_per_group;
    for (int64_t pass = 0; pass < passes; ++pass) {
      const int64_t c = pass * threads + threadIdx.x;
      const int64_t col = c * kVec;
      const int count = c < chunks ? static_cast<int>(cols - col < kVec ? cols - col : kVec) : 0;
      float v[kVec];
      if (count > 0) {
        source.load(col, v, count);
      } else {
#pragma unroll
        for (int i = 0; i < kVec; ++i) v[i] = 0.0f;
      }
      float m = chunk_amax<kVec>(v, count);
      for (int offset = cpg >> 1; offset > 0; offset >>= 1) {
        m = amax_step(m, __shfl_xor_sync(0xffffffffu, m, offset));
      }
      if (count > 0) {
        const float s = scale_from_amax(plan.mx, m);
        uint8_t q[kVec];
        quantize_chunk<kVec>(v, s, q);
        store_codes<kVec>(codes_row, col, count, q);
        if (c % cpg == 0) store_scale(scales, r, c / cpg, s);
      }
    }
  } else {
    for (int64_t g = threadIdx.x; g < plan.groups; g += threads) smem_amax[g] = 0.0f;
    __syncthreads();
    float cache[kCachePasses][kVec];
    const int cpg = plan.chunks_per_group;
    // Pass 1: amax per group into shared memory (nonnegative, NaN-free floats order like their
    // bit patterns, so an unsigned atomicMax is a float max).
    auto reduce_chunk = [&](int64_t c, const float v[kVec], int count) {
      float m = chunk_amax<kVec>(v, count);
      if (plan.warp_in_one_group) {
#pragma unroll
        for (int offset = 16; offset > 0; offset >>= 1) {
          m = amax_step(m, __shfl_xor_sync(0xffffffffu, m, offset));
        }
        // Lane 0's chunk may be past the row when the whole warp is: nothing to record then.
        const int64_t first = c - (threadIdx.x & 31);
        if ((threadIdx.x & 31) == 0 && first < chunks) {
          atomicMax(reinterpret_cast<unsigned int*>(smem_amax + first / cpg), __float_as_uint(m));
        }
      } else if (count > 0) {
        atomicMax(reinterpret_cast<unsigned int*>(smem_amax + c / cpg), __float_as_uint(m));
      }
    };
#pragma unroll
    for (int pass = 0; pass < kCachePasses; ++pass) {
      if (pass < passes) {  // uniform across the block
        const int64_t c = pass * threads + threadIdx.x;
        const int64_t col = c * kVec;
        const int count = c < chunks ? static_cast<int>(cols - col < kVec ? cols - col : kVec) : 0;
        if (count > 0) {
          source.load(col, cache[pass], count);
        } else {
#pragma unroll
          for (int i = 0; i < kVec; ++i) cache[pass][i] = 0.0f;
        }
        reduce_chunk(c, cache[pass], count);
      }
    }
    for (int64_t pass = kCachePasses; pass < passes; ++pass) {
      const int64_t c = pass * threads + threadIdx.x;
      const int64_t col = c * kVec;
      const int count = c < chunks ? static_cast<int>(cols - col < kVec ? cols - col : kVec) : 0;
      float v[kVec];
      if (count > 0) {
        source.load(col, v, count);
      } else {
#pragma unroll
        for (int i = 0; i < kVec; ++i) v[i] = 0.0f;
      }
      reduce_chunk(c, v, count);
    }
    __syncthreads();
    // Pass 2: scales and codes.
    for (int64_t g = threadIdx.x; g < plan.groups; g += threads) {
      store_scale(scales, r, g, scale_from_amax(plan.mx, smem_amax[g]));
    }
    auto emit_chunk = [&](int64_t c, const float v[kVec], int count) {
      const float s = scale_from_amax(plan.mx, smem_amax[c / cpg]);
      uint8_t q[kVec];
      quantize_chunk<kVec>(v, s, q);
      store_codes<kVec>(codes_row, c * kVec, count, q);
    };
#pragma unroll
    for (int pass = 0; pass < kCachePasses; ++pass) {
      const int64_t c = pass * threads + threadIdx.x;
      if (pass < passes && c < chunks) {
        const int64_t col = c * kVec;
        emit_chunk(c, cache[pass], static_cast<int>(cols - col < kVec ? cols - col : kVec));
      }
    }
    for (int64_t pass = kCachePasses; pass < passes; ++pass) {
      const int64_t c = pass * threads + threadIdx.x;
      if (c >= chunks) break;
      const int64_t col = c * kVec;
      const int count = static_cast<int>(cols - col < kVec ? cols - col : kVec);
      float v[kVec];
      source.load(col, v, count);
      emit_chunk(c, v, count);
    }
    __syncthreads();  // smem_amax is reset for the block's next row
  }
}

#endif  // __CUDACC__

}  // namespace act_quant
}  // namespace cuda
}  // namespace flashinfer_moe
