// FP4 weights x bf16 / fp16 activations (W4A16) in the portable grouped GEMM
// (GroupedGemmArgs::b_format E2M1Packed / E2M1Unpacked, sm80_grouped_gemm.h).
//
// The weights stay e2m1 codes until the mma fragments: cp.async copies the code bytes (two
// codes per byte packed, or one per byte) into smem, and each thread widens the 4 codes it needs
// per 16-deep K step into bf16 / fp16 pairs (sm80_e2m1.cuh, exact: every e2m1 value is a bf16
// and an fp16 value). The activation rows stay in the compute dtype and the bf16 / fp16
// mma.sync accumulates in fp32, so each product code x activation is exact and only the fp32
// sums round.
//
// Weight scales (NVFP4: e4m3 per 16 K columns and a per-expert fp32 global; MXFP4: ue8m0 per
// 32; any block of the seed forms): a scale constant along K is left to the kernel reading C
// (GemmDequant); a scale that varies along K is applied here in one of two ways (W4Scales,
// sm80_w4a16_grouped_gemm.h):
//   Folded   NVFP4 / MXFP4 byte scales: each widened code is multiplied by its scale in the
//            compute dtype (exact), and the mmas accumulate scaled products. A K tile's scale
//            bytes are loaded one tile ahead into registers (each lane of a quad loads and
//            converts a quarter of them; a step takes its value with a shuffle), so no load
//            waits in the K loop and the per-step cost is two shuffles and four multiplies;
//   Sliced   anything else: each K slice's partial sum is multiplied by its scale in fp32 (as in
//            the FP8 kernel), the scales loaded one slice ahead as raw storage words.
//
// Data path and k order follow sm80_fp8_grouped_gemm_kernel.cuh: byte tiles with padded rows
// (N-major weight tiles XOR-swizzled), and thread t of a fragment takes the 4 consecutive
// codes 4t..4t+3 of a K step for both operands (an activation row's 4 values are one 8-byte smem
// load). GEMM1's rows may come straight from the caller's input through a_row_index (the gather
// fused), and the fused epilogue writes GEMM1's activated compute-dtype output (no fp32 C).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "cuda/fp8_operands.h"
#include "cuda/gemm/sm80/sm80_accumulators.cuh"
#include "cuda/gemm/sm80/sm80_e2m1.cuh"
#include "cuda/gemm/sm80/sm80_fp8_grouped_gemm_kernel.cuh"
#include "cuda/gemm/sm80/sm80_int4.cuh"
#include "cuda/gemm/sm80/sm80_w4a16_grouped_gemm.h"

namespace flashinfer_moe {
namespace cuda {
namespace sm80 {

// One CTA computes a kBW (weight rows) x kBT (activation rows) tile over K tiles of kBK codes.
// Packed K-major weight rows are kBK / 2 bytes, unpacked kBK; activation rows 2 * kBK bytes.
template <int BW, int BT, int BK, int STAGES, int WARPS_W, int WARPS_T, int MIN_BLOCKS, bool PACKED,
          bool KMAJOR_B>
struct W4TileConfig {
  static constexpr int kBW = BW, kBT = BT, kBK = BK, kStages = STAGES;
  static constexpr int kWarpsW = WARPS_W, kWarpsT = WARPS_T, kMinBlocks = MIN_BLOCKS;
  static constexpr int kWarps = WARPS_W * WARPS_T, kThreads = 32 * kWarps;
  static constexpr int kWarpW = BW / WARPS_W, kWarpT = BT / WARPS_T;
  static constexpr int kMmaW = kWarpW / 16, kMmaT = kWarpT / 8;
  static constexpr int kWeightRowBytes = PACKED ? BK / 2 : BK;  // K-major weight tile rows
  static constexpr int kActRowBytes = 2 * BK;
  static constexpr int kWeightTileBytes = KMAJOR_B ? BW * (kWeightRowBytes + 16) : BK * BW;
  static constexpr int kRowTileBytes = BT * (kActRowBytes + 16);
  static constexpr int kStageBytes = kWeightTileBytes + kRowTileBytes;
  static constexpr int kSmemBytes = STAGES * kStageBytes;
  static_assert(KMAJOR_B || !PACKED, "packed codes run along K: packed weights are K-major");
  static_assert(BW % (16 * WARPS_W) == 0 && BT % (8 * WARPS_T) == 0, "warp sub-tiles");
  static_assert(kWeightRowBytes % 32 == 0 && BW % 32 == 0, "byte tiles of 16-byte chunks");
  static_assert(STAGES >= 2, "the cp.async pipeline needs at least two stages");
};

// Decode: the bf16 decode tile's 64 weight rows x 16 activation rows, 256 codes deep (128 bytes
// of a packed weight row per stage), 3 stages (53 KB with packed codes: four CTAs per SM), a
// warp per 16 weight rows. The kernel is latency-bound (each code goes smem -> decode ->
// multiply -> mma), so more resident warps beat a deeper pipeline: on an H100 (gpt-oss-120b
// MXFP4, T = 1..256) 4 stages and two CTAs per SM streamed 0.6-0.9 TB/s.
template <bool PACKED, bool KMAJOR_B>
using W4DecodeTile = W4TileConfig<64, 16, 256, 3, 4, 1, 4, PACKED, KMAJOR_B>;
// Prefill: the bf16 prefill tile's 128 x 128, 64 codes deep, 3 stages, 8 warps of 32 weight
// rows x 64 activation rows: each widened weight fragment feeds 8 mmas (the decode work per
// mma is what bounds this kernel; 64 x 32 warps fed 4).
template <bool PACKED, bool KMAJOR_B>
using W4PrefillTile = W4TileConfig<128, 128, 64, 3, 4, 2, 1, PACKED, KMAJOR_B>;
static_assert(W4DecodeTile<true, true>::kBT == DecodeTileKMajorB::kBT &&
                  W4DecodeTile<true, true>::kBW == DecodeTileKMajorB::kBW &&
                  W4PrefillTile<true, true>::kBT == PrefillTile::kBT &&
                  W4PrefillTile<true, true>::kBW == PrefillTile::kBW,
              "W4A16 tiles share the family's schedule (row tile) and grid (column tile)");

// A weight scale as its raw storage bits (1, 2 or 4 bytes), and their value: loading raw lets
// the load's latency run until the value is needed.
__device__ __forceinline__ uint32_t weight_scale_raw(const WeightScales& s, int64_t offset) {
  if (s.format != static_cast<int32_t>(ScaleFormat::Float)) {
    return static_cast<const uint8_t*>(s.data)[offset];
  }
  if (s.dtype == static_cast<int32_t>(DType::F32)) {
    return static_cast<const uint32_t*>(s.data)[offset];
  }
  return static_cast<const uint16_t*>(s.data)[offset];
}

__device__ __forceinline__ float weight_scale_value(const WeightScales& s, uint32_t raw) {
  switch (static_cast<ScaleFormat>(s.format)) {
    case ScaleFormat::E4M3:
      return formats::e4m3_to_float(static_cast<uint8_t>(raw));
    case ScaleFormat::UE8M0:
      return formats::ue8m0_to_float(static_cast<uint8_t>(raw));
    default:
      break;
  }
  switch (static_cast<DType>(s.dtype)) {
    case DType::F16:
      return formats::fp16_to_float(static_cast<uint16_t>(raw));
    case DType::BF16:
      return formats::bf16_to_float(static_cast<uint16_t>(raw));
    default:
      return formats::bits_float(raw);
  }
}

// A folded scale byte as a b16x2 register holding its value twice, exactly: an e4m3 scale
// (Folded16) in bf16 or fp16, a ue8m0 scale (Folded32) in bf16. Branch-free integer and
// conversion instructions: a K tile converts every scale of its rows.
template <bool kBf16, W4Scales kScales>
__device__ __forceinline__ uint32_t folded_scale_b16x2(uint32_t byte) {
  if constexpr (kScales == W4Scales::Folded32) {  // 2^(b - 127): the bf16 exponent field is b
    uint32_t h = byte << 7;
    h = byte == 0 ? 0x0040u : h;    // 2^-127, a bf16 subnormal
    h = byte == 255 ? 0x7FC0u : h;  // the NaN code
    return __byte_perm(h, 0u, 0x1010);
  } else {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    uint32_t f16x2;  // the code twice, widened in one instruction (every e4m3 is an fp16 normal)
    asm("{\n.reg .b16 lo, hi;\nmov.b32 {lo, hi}, %1;\ncvt.rn.f16x2.e4m3x2 %0, lo;\n}\n"
        : "=r"(f16x2)
        : "r"(byte * 0x0101u));
    if constexpr (!kBf16) return f16x2;
    const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&f16x2));
    const __nv_bfloat162 b = __floats2bfloat162_rn(f.x, f.y);  // exact: 4 significant bits
    return *reinterpret_cast<const uint32_t*>(&b);
#else
    const float v = formats::e4m3_to_float(static_cast<uint8_t>(byte));
    const uint32_t h = kBf16 ? formats::float_to_bf16(v) : formats::float_to_fp16(v);
    return h | (h << 16);
#endif
  }
}

// a * b for b16x2 registers of bf16 (kBf16) or fp16 values.
template <bool kBf16>
__device__ __forceinline__ uint32_t mul_b16x2(uint32_t a, uint32_t b) {
  uint32_t r;
  if constexpr (kBf16) {
    const __nv_bfloat162 p = __hmul2(*reinterpret_cast<const __nv_bfloat162*>(&a),
                                     *reinterpret_cast<const __nv_bfloat162*>(&b));
    r = *reinterpret_cast<const uint32_t*>(&p);
  } else {
    const __half2 p =
        __hmul2(*reinterpret_cast<const __half2*>(&a), *reinterpret_cast<const __half2*>(&b));
    r = *reinterpret_cast<const uint32_t*>(&p);
  }
  return r;
}

// What the W4A16 kernel needs besides the tile configuration.
struct W4GemmParams {
  const uint16_t* a;  // bf16 / fp16 bits
  int64_t lda;
  const uint8_t* b;  // e2m1 codes; packed: byte (n, k / 2) holds k (low nibble) and k + 1
  int64_t b_stride_e, b_stride_n, b_stride_k;  // bytes
  float* c;
  int64_t ldc;
  int64_t n, k;
  const void* schedule;
  bool a_vec16, b_vec16;
  const int32_t* a_row_index;  // null: A row r is row r; else a_row_index[r] / a_row_index_div
  int32_t a_row_index_div;
  WeightScales b_scale;  // K-varying weight scales (kScales != None)
  int64_t slice;         // K columns per scale slice, a multiple of 16 (kScales != None)
  ActivationParams act;  // the fused GEMM1 epilogue (kEpi != StoreF32)
  int64_t split_stride;  // split K: split z writes c + z * split_stride
};

// kInt4: the packed codes are MXINT4's two's-complement int4 (sm80_int4.cuh), not e2m1; their
// bf16 scales are Sliced (a code times a bf16 scale is not always a bf16 value).
template <class Cfg, bool kBf16, bool kPacked, bool kKMajorB, W4Scales kScales, Epilogue kEpi,
          bool kInt4 = false>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks)
    w4a16_grouped_gemm_kernel(const W4GemmParams p) {
  static_assert(kKMajorB || kEpi == Epilogue::StoreF32, "fused epilogues need K-major weights");
  constexpr bool kGated = kEpi == Epilogue::GatedActivation;
  constexpr int kHalf = Cfg::kBW / 2;
  constexpr int kOutCols = kGated ? kHalf : Cfg::kBW;
  constexpr int kCodeBytesNum = kPacked ? 1 : 2;  // bytes per code = num / 2
  constexpr bool kScaled = kScales == W4Scales::Sliced;
  constexpr bool kFolded = kScales == W4Scales::Folded16 || kScales == W4Scales::Folded32;
  static_assert(!kFolded || kPacked, "folded scales are compiled for packed codes");
  static_assert(!kInt4 || (kPacked && !kFolded && kEpi == Epilogue::StoreF32),
                "int4 codes are compiled packed, with sliced or no scales, into fp32 C");
  pdl::pdl_wait();
  WorkItem item;
  if (!cta_work_item(p.schedule, &item)) return;
  const int64_t n0 = int64_t{blockIdx.y} * kOutCols;
  const int64_t inter = p.n / 2;
  const TileWeightRows<kGated, kHalf> weight_rows{n0, p.n};

  extern __shared__ __align__(128) char smem[];
  // Byte offset of each A row of the tile, resolved once (the gathered path reads the caller's
  // input through a_row_index). Rows past item.rows are never read.
  __shared__ int64_t a_row_start[Cfg::kBT];
  for (int r = threadIdx.x; r < Cfg::kBT; r += Cfg::kThreads) {
    int64_t src = item.row_begin + r;
    if (p.a_row_index != nullptr) {
      src = r < item.rows ? p.a_row_index[item.row_begin + r] / p.a_row_index_div : 0;
    }
    a_row_start[r] = src * p.lda * 2;
  }
  __syncthreads();

  using RowSwz = PaddedRows<Cfg::kActRowBytes>;
  using WSwz = typename std::conditional<kKMajorB, PaddedRows<Cfg::kWeightRowBytes>,
                                         KColSwizzle<Cfg::kBW>>::type;
  const uint8_t* b_expert = p.b + item.expert * p.b_stride_e;
  const uint8_t* a_bytes = reinterpret_cast<const uint8_t*>(p.a);

  auto load_stage = [&](int stage, int64_t k0) {
    char* w_smem = smem + stage * Cfg::kStageBytes;
    char* r_smem = w_smem + Cfg::kWeightTileBytes;
    const int64_t kb0 = k0 * kCodeBytesNum / 2;               // first byte of the K tile
    const int64_t kb_limit = (p.k - k0) * kCodeBytesNum / 2;  // valid bytes from there (k even)
    if constexpr (kGated) {
      const uint8_t* up = b_expert + n0 * p.b_stride_n + kb0;
      const uint8_t* gate = up + inter * p.b_stride_n;
      auto up_row = [&](int r) { return up + r * p.b_stride_n; };
      auto gate_row = [&](int r) { return gate + r * p.b_stride_n; };
      load_byte_tile<kHalf, Cfg::kWeightRowBytes, WSwz, Cfg::kThreads>(
          w_smem, up, up_row, inter - n0, kb_limit, p.b_vec16);
      load_byte_tile<kHalf, Cfg::kWeightRowBytes, WSwz, Cfg::kThreads>(
          w_smem + kHalf * (Cfg::kWeightRowBytes + 16), gate, gate_row, inter - n0, kb_limit,
          p.b_vec16);
    } else if constexpr (kKMajorB) {
      const uint8_t* w0 = b_expert + n0 * p.b_stride_n + kb0;
      auto w_row = [&](int r) { return w0 + r * p.b_stride_n; };
      load_byte_tile<Cfg::kBW, Cfg::kWeightRowBytes, WSwz, Cfg::kThreads>(
          w_smem, w0, w_row, p.n - n0, kb_limit, p.b_vec16);
    } else {
      const uint8_t* w0 = b_expert + k0 * p.b_stride_k + n0;
      auto k_row = [&](int r) { return w0 + r * p.b_stride_k; };
      load_byte_tile<Cfg::kBK, Cfg::kBW, WSwz, Cfg::kThreads>(w_smem, w0, k_row, p.k - k0, p.n - n0,
                                                              p.b_vec16);
    }
    auto a_row = [&](int r) { return a_bytes + a_row_start[r] + 2 * k0; };
    load_byte_tile<Cfg::kBT, Cfg::kActRowBytes, RowSwz, Cfg::kThreads>(
        r_smem, a_bytes, a_row, item.rows, 2 * (p.k - k0), p.a_vec16);
  };

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int warp_w0 = (warp % Cfg::kWarpsW) * Cfg::kWarpW;
  const int warp_t0 = (warp / Cfg::kWarpsW) * Cfg::kWarpT;
  float acc[Cfg::kMmaW][Cfg::kMmaT][4] = {};

  // K-slice weight scales of this thread's weight rows warp_w0 + mw * 16 + g + 8j: the offset
  // of each row's scales (-1: a row past n, scale 1), the raw words of the slice being summed
  // (cur) and of the next one (next, in flight).
  constexpr int kPartW = kScaled ? Cfg::kMmaW : 1, kPartT = kScaled ? Cfg::kMmaT : 1;
  constexpr int kOffW = kScaled || kFolded ? Cfg::kMmaW : 1;
  float part[kPartW][kPartT][4] = {};
  int64_t b_off[kOffW][2];
  uint32_t cur[kPartW][2], next[kPartW][2];
  if constexpr (kScaled || kFolded) {
#pragma unroll
    for (int mw = 0; mw < kOffW; ++mw) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int w = warp_w0 + mw * 16 + g + 8 * j;
        b_off[mw][j] = weight_rows.valid(w)
                           ? weight_scale_row_offset(p.b_scale, item.expert, weight_rows.row(w))
                           : -1;
      }
    }
  }
  auto load_raw = [&](int64_t s, uint32_t (&dst)[kPartW][2]) {
    const bool in_k = s * p.slice < p.k;
    const int64_t col =
        in_k ? weight_scale_col_offset(p.b_scale, s * p.slice / p.b_scale.block_cols) : 0;
#pragma unroll
    for (int mw = 0; mw < kPartW; ++mw) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        dst[mw][j] =
            in_k && b_off[mw][j] >= 0 ? weight_scale_raw(p.b_scale, b_off[mw][j] + col) : 0u;
      }
    }
  };
  auto flush_partial = [&]() {
#pragma unroll
    for (int mw = 0; mw < kPartW; ++mw) {
      float s[2];
#pragma unroll
      for (int j = 0; j < 2; ++j)
        s[j] = b_off[mw][j] >= 0 ? weight_scale_value(p.b_scale, cur[mw][j]) : 1.0f;
#pragma unroll
      for (int mt = 0; mt < kPartT; ++mt) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          acc[mw][mt][i] += part[mw][mt][i] * s[i >> 1];
          part[mw][mt][i] = 0.0f;
        }
      }
    }
  };
  int64_t slice = -1, slice_end = 0;

  // Folded scales: the scale bytes of one K tile, loaded a tile ahead into `raw`, and this
  // tile's as b16x2 multipliers in `fold`. The four lanes of a quad (equal g) need the same
  // weight rows' scales, so each loads and converts a quarter of the tile's slices (slice
  // 4q + t in entry q of lane t) and a step takes its slice's value from the owning lane with a
  // shuffle: a quarter of the loads and conversions for two shuffles per step.
  constexpr int kSliceSteps = kScales == W4Scales::Folded32 ? 2 : 1;
  constexpr int kTileSlices = kFolded ? Cfg::kBK / 16 / kSliceSteps : 1;
  constexpr int kQuadSlices = (kTileSlices + 3) / 4;  // entries per lane
  constexpr int kFoldW = kFolded ? Cfg::kMmaW : 1;
  uint32_t raw[kFoldW][2][kQuadSlices] = {}, fold[kFoldW][2][kQuadSlices] = {};
  const uint8_t* scale_bytes = static_cast<const uint8_t*>(p.b_scale.data);
  // A tile wholly inside K with contiguous scale columns (linear, stride_c == 1: the layout of
  // checkpoints) or whole 4-column groups of the 128x4 swizzle reads each row's bytes at fixed
  // offsets from one pointer; any other tile computes each byte's offset.
  const bool scales_contiguous = p.b_scale.layout == static_cast<int32_t>(ScaleLayout::Linear)
                                     ? p.b_scale.stride_c == 1
                                     : kTileSlices % 4 == 0;
  const bool scales_swizzled = p.b_scale.layout != static_cast<int32_t>(ScaleLayout::Linear);
  auto load_tile_scales = [&](int64_t kt) {
    const int64_t col0 = kt * kTileSlices;
    if (scales_contiguous && (col0 + kTileSlices) * (16 * kSliceSteps) <= p.k) {
      const int64_t col_off = weight_scale_col_offset(p.b_scale, col0);
#pragma unroll
      for (int mw = 0; mw < kFoldW; ++mw) {
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const uint8_t* row = scale_bytes + b_off[mw][j] + col_off + t;
          const bool valid = b_off[mw][j] >= 0;
#pragma unroll
          for (int q = 0; q < kQuadSlices; ++q) {
            const bool mine = valid && 4 * q + t < kTileSlices;
            raw[mw][j][q] = mine ? row[scales_swizzled ? 512 * q : 4 * q] : 0u;
          }
        }
      }
      return;
    }
#pragma unroll
    for (int q = 0; q < kQuadSlices; ++q) {
      const int64_t col = col0 + 4 * q + t;
      const bool in_k = 4 * q + t < kTileSlices && col * (16 * kSliceSteps) < p.k;
      const int64_t col_off = in_k ? weight_scale_col_offset(p.b_scale, col) : 0;
#pragma unroll
      for (int mw = 0; mw < kFoldW; ++mw) {
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          raw[mw][j][q] = in_k && b_off[mw][j] >= 0 ? scale_bytes[b_off[mw][j] + col_off] : 0u;
        }
      }
    }
  };
  // This lane's multiplier for slice sl of weight row j of mw (from the quad lane that owns it).
  auto folded = [&](int mw, int j, int sl) {
    return __shfl_sync(0xffffffffu, fold[mw][j][sl >> 2], (lane & ~3) | (sl & 3));
  };

  const KTileRange k_range = split_k_tiles(p.k, Cfg::kBK);
  const int64_t kt_begin = k_range.begin, k_tiles = k_range.count;
#pragma unroll
  for (int s = 0; s < Cfg::kStages - 1; ++s) {
    if (s < k_tiles) load_stage(s, (kt_begin + s) * Cfg::kBK);
    ptx::cp_async_commit();
  }
  if constexpr (kFolded) {
    if (k_tiles > 0) load_tile_scales(kt_begin);
  }

  for (int64_t i = 0; i < k_tiles; ++i) {
    ptx::cp_async_wait<Cfg::kStages - 2>();
    __syncthreads();
    const int64_t nxt = i + Cfg::kStages - 1;
    if (nxt < k_tiles)
      load_stage(static_cast<int>(nxt % Cfg::kStages), (kt_begin + nxt) * Cfg::kBK);
    ptx::cp_async_commit();
    const int64_t kt = kt_begin + i;
    if constexpr (kFolded) {  // this tile's scales (loaded a tile ago), then the next tile's
#pragma unroll
      for (int mw = 0; mw < kFoldW; ++mw) {
#pragma unroll
        for (int j = 0; j < 2; ++j) {
#pragma unroll
          for (int q = 0; q < kQuadSlices; ++q) {
            fold[mw][j][q] = folded_scale_b16x2<kBf16, kScales>(raw[mw][j][q]);
          }
        }
      }
      if (i + 1 < k_tiles) load_tile_scales(kt + 1);
    }

    const char* w_smem = smem + static_cast<int>(i % Cfg::kStages) * Cfg::kStageBytes;
    const char* r_smem = w_smem + Cfg::kWeightTileBytes;
#pragma unroll
    for (int ks = 0; ks < Cfg::kBK / 16; ++ks) {
      if constexpr (kScaled) {
        const int64_t step_k0 = kt * Cfg::kBK + ks * 16;
        if (step_k0 >= p.k) break;  // zeros past K: no slice to add them to
        if (step_k0 >= slice_end) {
          if (slice >= 0) flush_partial();
          const int64_t entered = step_k0 / p.slice;
          if (entered == slice + 1 && slice >= 0) {
#pragma unroll
            for (int mw = 0; mw < kPartW; ++mw) cur[mw][0] = next[mw][0], cur[mw][1] = next[mw][1];
          } else {
            load_raw(entered, cur);  // the first slice of this CTA's K range
          }
          slice = entered;
          slice_end = (slice + 1) * p.slice;
          load_raw(slice + 1, next);
        }
      }
      uint32_t wf[Cfg::kMmaW][4];
      uint32_t rf[Cfg::kMmaT][2];
#pragma unroll
      for (int mw = 0; mw < Cfg::kMmaW; ++mw) {
        const int w = warp_w0 + mw * 16 + g;
        uint32_t sel_lo, sel_hi;  // codes 4t..4t+3 of weight rows w and w + 8, as selectors
        if constexpr (kPacked) {
          sel_lo = *reinterpret_cast<const uint16_t*>(w_smem + WSwz::byte(w, ks * 8 + 2 * t));
          sel_hi = *reinterpret_cast<const uint16_t*>(w_smem + WSwz::byte(w + 8, ks * 8 + 2 * t));
        } else if constexpr (kKMajorB) {
          sel_lo = e2m1_bytes_to_selector(
              *reinterpret_cast<const uint32_t*>(w_smem + WSwz::byte(w, ks * 16 + 4 * t)));
          sel_hi = e2m1_bytes_to_selector(
              *reinterpret_cast<const uint32_t*>(w_smem + WSwz::byte(w + 8, ks * 16 + 4 * t)));
        } else {
          const uint8_t* wb = reinterpret_cast<const uint8_t*>(w_smem);
          uint32_t lo = 0, hi = 0;
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const int kr = ks * 16 + 4 * t + j;
            lo |= uint32_t{wb[WSwz::byte(kr, w)]} << (8 * j);
            hi |= uint32_t{wb[WSwz::byte(kr, w + 8)]} << (8 * j);
          }
          sel_lo = e2m1_bytes_to_selector(lo);
          sel_hi = e2m1_bytes_to_selector(hi);
        }
        // a0..a3: (row g, slots 2t..), (row g+8, 2t..), (row g, 2t+8..), (row g+8, 2t+8..)
        if constexpr (kInt4) {
          int4x4_to_b16x4<kBf16>(sel_lo, wf[mw][0], wf[mw][2]);
          int4x4_to_b16x4<kBf16>(sel_hi, wf[mw][1], wf[mw][3]);
        } else {
          e2m1x4_to_b16x4<kBf16>(sel_lo, wf[mw][0], wf[mw][2]);
          e2m1x4_to_b16x4<kBf16>(sel_hi, wf[mw][1], wf[mw][3]);
        }
        if constexpr (kFolded) {  // rows g (registers 0, 2) and g + 8 (1, 3)
          const int sl = ks / kSliceSteps;
          const uint32_t s_lo = folded(mw, 0, sl), s_hi = folded(mw, 1, sl);
          wf[mw][0] = mul_b16x2<kBf16>(wf[mw][0], s_lo);
          wf[mw][2] = mul_b16x2<kBf16>(wf[mw][2], s_lo);
          wf[mw][1] = mul_b16x2<kBf16>(wf[mw][1], s_hi);
          wf[mw][3] = mul_b16x2<kBf16>(wf[mw][3], s_hi);
        }
      }
#pragma unroll
      for (int mt = 0; mt < Cfg::kMmaT; ++mt) {
        const uint2 v = *reinterpret_cast<const uint2*>(
            r_smem + RowSwz::byte(warp_t0 + mt * 8 + g, 2 * (ks * 16 + 4 * t)));
        rf[mt][0] = v.x;  // slots 2t, 2t+1 <- values 4t, 4t+1
        rf[mt][1] = v.y;  // slots 2t+8, 2t+9 <- values 4t+2, 4t+3
      }
#pragma unroll
      for (int mw = 0; mw < Cfg::kMmaW; ++mw) {
#pragma unroll
        for (int mt = 0; mt < Cfg::kMmaT; ++mt) {
          if constexpr (kScaled) {
            ptx::mma_m16n8k16<kBf16>(part[mw][mt], wf[mw], rf[mt][0], rf[mt][1]);
          } else {
            ptx::mma_m16n8k16<kBf16>(acc[mw][mt], wf[mw], rf[mt][0], rf[mt][1]);
          }
        }
      }
    }
  }
  if constexpr (kScaled) {
    if (slice >= 0) flush_partial();
  }
  ptx::cp_async_wait<0>();
  pdl::pdl_trigger();

  if constexpr (kEpi == Epilogue::StoreF32) {
    store_accumulators(acc, p.c + blockIdx.z * p.split_stride, p.ldc, p.n, item, n0, warp_w0,
                       warp_t0, lane);
  } else {
    activate_accumulators<Cfg, kGated, kBf16, kOutCols>(acc, smem, p.act, item, n0, warp_w0,
                                                        warp_t0, lane);
  }
}

}  // namespace sm80
}  // namespace cuda
}  // namespace flashinfer_moe
