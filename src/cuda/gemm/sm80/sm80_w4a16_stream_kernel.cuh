// W4A16 decode with no shared-memory staging: FP4 weight codes go from global memory straight
// into mma.sync fragments. It is the family's second W4A16 decode design. The first,
// sm80_w4a16_grouped_gemm_kernel.cuh, stages codes and activation rows through smem with
// cp.async, and ncu found it bound by instruction issue at 70% of the cycles: about ten thread
// instructions per weight code, for smem addressing, fragment loads and the widening.
//
// K order. Inside a 128-code chunk of a weight row, thread t of a quad owns codes
// [32t, 32t + 32): one 16-byte load. Those codes feed 8 consecutive m16n8k16 K steps:
//   K step j (0..7), fragment K slots 2t, 2t+1, 2t+8, 2t+9  <->  chunk codes 32t + 4j + 0..3
// (any bijection of K is a valid GEMM as long as both operands follow it). The activations
// follow the same order: thread (g, t) loads token row g's 32 values at those codes (64 bytes)
// and step j takes words 2j, 2j+1 as its B fragment. A thread's 32 codes of a row share one
// MXFP4 scale (two NVFP4 scales), loaded with the codes. What a code costs is then its widening
// (sm80_e2m1.cuh, exact), the folded scale multiply (exact, as in the staged kernel) and an
// eighth of an mma: no smem traffic and no per-tile copy addressing.
//
// Work. A CTA takes one schedule item (an expert and up to 16 token rows, the decode tile's
// schedule) and 64 weight rows (gated: 32 up rows with their 32 gate rows, as the staged kernel
// pairs them). Its warps split the rows into groups (W4StreamTile: two groups of 32) and each
// group's warps take every other chunk of K (two warps: 128 contiguous bytes of each row at a
// time). The next chunk's codes, scales and activations are loaded into registers while the
// current one is multiplied. The K warps' partial sums meet in smem and are added in warp order
// (deterministic), then the family's epilogues run: fp32 C (with split K), or GEMM1's fused
// activation (sm80_activation_epilogue.cuh).
//
// Runs packed K-major codes with folded scales (NVFP4 e4m3 per 16, MXFP4 ue8m0 per 32 with
// bf16), 16-byte aligned weight and activation rows; sm80_w4a16_grouped_gemm.h decides.
#pragma once

#include <cstdint>

#include "cuda/gemm/sm80/sm80_accumulators.cuh"
#include "cuda/gemm/sm80/sm80_e2m1.cuh"
#include "cuda/gemm/sm80/sm80_w4a16_grouped_gemm_kernel.cuh"

namespace flashinfer_moe {
namespace cuda {
namespace sm80 {

// WARPS_W groups of warps split the CTA's 64 weight rows; the WARPS_K warps of a group take
// every WARPS_K-th chunk of K. MMA_T m8 tiles of token rows (2: the work item's 16; 1: items of
// at most 8 rows, which halves the activation registers).
template <int WARPS_W, int WARPS_K, int MIN_BLOCKS, int MMA_T = 2>
struct W4StreamTileConfig {
  static constexpr int kBW = 64;  // weight rows per CTA: the decode tile's column tile
  static constexpr int kBT = 16;  // token rows per work item: the decode tile's row tile
  static constexpr int kWarpsW = WARPS_W, kWarpsK = WARPS_K, kWarps = WARPS_W * WARPS_K;
  static constexpr int kThreads = 32 * kWarps, kMinBlocks = MIN_BLOCKS;
  static constexpr int kChunk = 128;  // codes of a weight row per warp step (32 per thread)
  static constexpr int kWarpW = kBW / WARPS_W;
  static constexpr int kMmaW = kWarpW / 16, kMmaT = MMA_T;
  static constexpr int kRows = 8 * MMA_T;  // token rows the CTA computes (of an item's kBT)
  static constexpr int kLd = kBW + 4;      // staged row stride in floats (bank-conflict pad)
  static constexpr int kSmemBytes = 0;     // static smem only (launch_tiles sets the dynamic size)
  static_assert(kBW % (16 * WARPS_W) == 0, "whole m16 tiles per warp");
  static_assert(MMA_T == 1 || MMA_T == 2, "an item has at most 16 rows");
};
// Each warp 32 rows (2 m16 tiles), 2 warps along K, 3 CTAs per SM (12 warps; about 165
// registers a thread). On an H100 it beat 64 rows a warp x 4 along K (2 CTAs per SM, 255
// registers), 16 rows x 2 along K (8 warps a CTA, 2 CTAs per SM) and 16 rows x all of K (4 CTAs
// per SM) at every T measured (docs/bench/2026-12-07-h100-fp4-w4a16-ab.md).
using W4StreamTile = W4StreamTileConfig<2, 2, 3>;
// Items of at most 8 rows (every item when T * k <= 8: T = 1, 2): one m8 token tile (128
// registers) and twice the warps, 4 along K. At T = 1 the grid has fewer CTAs than resident
// slots (gpt-oss: 4 items x 90 column tiles on 132 SMs), and ncu saw about 10 active warps per
// SM at 7 cycles per issued instruction with DRAM at 26%: more warps is what helps. On an H100
// it took Qwen3-235B NVFP4 at T = 1 from 89.0 to 77.1 us and gpt-oss MXFP4 from 65.3 to 62.9
// (T = 2: 99.0 -> 94.0); a deeper pipeline instead (one m8 tile, three chunk buffers, 3 CTAs
// of 4 warps) measured the same as the 16-row tile (docs/bench/2026-12-07-h100-fp4-w4a16-ab.md).
using W4StreamTileSmallT = W4StreamTileConfig<2, 4, 2, 1>;
static_assert(W4StreamTile::kBT == DecodeTileKMajorB::kBT &&
                  W4StreamTile::kBW == DecodeTileKMajorB::kBW &&
                  W4StreamTileSmallT::kBT == DecodeTileKMajorB::kBT &&
                  W4StreamTileSmallT::kBW == DecodeTileKMajorB::kBW,
              "the stream kernel runs on the decode tile's schedule and grid");

// One chunk's operands of one thread, in registers.
template <class Cfg>
struct W4StreamChunk {
  uint4 w[Cfg::kMmaW][2];     // 32 codes of weight rows mw * 16 + g (0) and + 8 (1)
  uint4 a[Cfg::kMmaT][4];     // 32 values of token row mt * 8 + g
  uint32_t s[Cfg::kMmaW][2];  // the rows' scale bytes (NVFP4: two, the first low)
};

__device__ __forceinline__ uint32_t uint4_word(const uint4& v, int i) {
  return i == 0 ? v.x : (i == 1 ? v.y : (i == 2 ? v.z : v.w));
}

// 16 streamed bytes, read once: kept out of L1 so the activation rows stay there.
__device__ __forceinline__ uint4 load_streamed_16(const uint8_t* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// The first `bytes` (< 16) bytes at p, the rest zero (the slice that crosses the end of K).
__device__ __forceinline__ uint4 load_partial_bytes(const uint8_t* p, int64_t bytes) {
  uint32_t word[4] = {0u, 0u, 0u, 0u};
#pragma unroll
  for (int i = 0; i < 16; ++i) {
    if (i < bytes) word[i / 4] |= uint32_t{p[i]} << (8 * (i % 4));
  }
  return make_uint4(word[0], word[1], word[2], word[3]);
}

template <class Cfg, bool kBf16, W4Scales kScales, Epilogue kEpi>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks)
    w4a16_stream_kernel(const W4GemmParams p) {
  using Chunk = W4StreamChunk<Cfg>;
  static_assert(kScales == W4Scales::Folded16 || kScales == W4Scales::Folded32,
                "the stream kernel folds NVFP4 / MXFP4 byte scales");
  constexpr bool kGated = kEpi == Epilogue::GatedActivation;
  constexpr int kHalf = Cfg::kBW / 2;
  constexpr int kOutCols = kGated ? kHalf : Cfg::kBW;
  constexpr int kScaleCodes = kScales == W4Scales::Folded32 ? 32 : 16;
  pdl::pdl_wait();
  WorkItem item;
  if (!cta_work_item(p.schedule, &item)) return;
  const int64_t n0 = int64_t{blockIdx.y} * kOutCols;
  const TileWeightRows<kGated, kHalf> weight_rows{n0, p.n};

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int warp_w0 = (warp % Cfg::kWarpsW) * Cfg::kWarpW, warp_k = warp / Cfg::kWarpsW;
  // This thread's weight rows (null: past n) and their scale rows; its token rows' first bytes
  // (-1: past the item; the gathered path reads the caller's input through a_row_index).
  const uint8_t* w_row[Cfg::kMmaW][2];
  int64_t s_row[Cfg::kMmaW][2];
#pragma unroll
  for (int mw = 0; mw < Cfg::kMmaW; ++mw) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int w = warp_w0 + mw * 16 + g + 8 * j;
      const bool valid = weight_rows.valid(w);
      w_row[mw][j] =
          valid ? p.b + item.expert * p.b_stride_e + weight_rows.row(w) * p.b_stride_n : nullptr;
      s_row[mw][j] =
          valid ? weight_scale_row_offset(p.b_scale, item.expert, weight_rows.row(w)) : 0;
    }
  }
  int64_t a_start[Cfg::kMmaT];
#pragma unroll
  for (int mt = 0; mt < Cfg::kMmaT; ++mt) {
    const int r = mt * 8 + g;
    int64_t src = item.row_begin + r;
    if (p.a_row_index != nullptr && r < item.rows) {
      src = p.a_row_index[item.row_begin + r] / p.a_row_index_div;
    }
    a_start[mt] = r < item.rows ? src * p.lda * 2 : -1;
  }
  const uint8_t* a_bytes = reinterpret_cast<const uint8_t*>(p.a);
  const uint8_t* scale_bytes = static_cast<const uint8_t*>(p.b_scale.data);
  // NVFP4: a thread's two scale bytes (columns k0 / 16 and + 1, k0 a multiple of 32) are one
  // aligned 16-bit word when the layout keeps them adjacent at even offsets: always in the 128x4
  // swizzle, for linear scales with contiguous, even-strided columns.
  const bool scale_pairs =
      kScales == W4Scales::Folded16 && reinterpret_cast<uintptr_t>(scale_bytes) % 2 == 0 &&
      (p.b_scale.layout != static_cast<int32_t>(ScaleLayout::Linear) ||
       (p.b_scale.stride_c == 1 && p.b_scale.stride_e % 2 == 0 && p.b_scale.stride_r % 2 == 0));

  auto load_chunk = [&](int64_t chunk, Chunk& d) {
    const int64_t k0 = chunk * Cfg::kChunk + 32 * t;  // this thread's first code
    const int64_t left = p.k - k0;                    // codes of K from there; even
    const int64_t scale_col = k0 / kScaleCodes;
    const int64_t col_off = left > 0 ? weight_scale_col_offset(p.b_scale, scale_col) : 0;
    const int64_t col_off2 = kScales == W4Scales::Folded16 && left > 16
                                 ? weight_scale_col_offset(p.b_scale, scale_col + 1)
                                 : 0;
#pragma unroll
    for (int mw = 0; mw < Cfg::kMmaW; ++mw) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        d.w[mw][j] = make_uint4(0u, 0u, 0u, 0u);
        d.s[mw][j] = 0u;
        if (w_row[mw][j] == nullptr || left <= 0) continue;
        const uint8_t* src = w_row[mw][j] + k0 / 2;
        d.w[mw][j] = left >= 32 ? load_streamed_16(src) : load_partial_bytes(src, left / 2);
        if (kScales == W4Scales::Folded16 && left > 16 && scale_pairs) {
          d.s[mw][j] = *reinterpret_cast<const uint16_t*>(scale_bytes + s_row[mw][j] + col_off);
        } else {
          d.s[mw][j] = scale_bytes[s_row[mw][j] + col_off];
          if (kScales == W4Scales::Folded16 && left > 16) {
            d.s[mw][j] |= uint32_t{scale_bytes[s_row[mw][j] + col_off2]} << 8;
          }
        }
      }
    }
#pragma unroll
    for (int mt = 0; mt < Cfg::kMmaT; ++mt) {
#pragma unroll
      for (int q = 0; q < 4; ++q) d.a[mt][q] = make_uint4(0u, 0u, 0u, 0u);
      if (a_start[mt] < 0 || left <= 0) continue;
      const uint8_t* src = a_bytes + a_start[mt] + 2 * k0;
      if (left >= 32) {
#pragma unroll
        for (int q = 0; q < 4; ++q) d.a[mt][q] = __ldg(reinterpret_cast<const uint4*>(src) + q);
      } else {
#pragma unroll
        for (int q = 0; q < 4; ++q)
          d.a[mt][q] = load_partial_bytes(src + 16 * q, 2 * left - 16 * q);
      }
    }
  };

  float acc[Cfg::kMmaW][Cfg::kMmaT][4] = {};
  const bool second_tile = item.rows > 8;  // token rows 8..15 exist (uniform per CTA)
  auto multiply_chunk = [&](const Chunk& d) {
    constexpr int kScalesPerSlice = 32 / kScaleCodes;
    uint32_t fold[Cfg::kMmaW][2][kScalesPerSlice];
#pragma unroll
    for (int mw = 0; mw < Cfg::kMmaW; ++mw) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
#pragma unroll
        for (int h = 0; h < kScalesPerSlice; ++h) {
          fold[mw][j][h] = folded_scale_b16x2<kBf16, kScales>((d.s[mw][j] >> (8 * h)) & 0xFFu);
        }
      }
    }
#pragma unroll
    for (int step = 0; step < 8; ++step) {
      uint32_t bf[Cfg::kMmaT][2];
#pragma unroll
      for (int mt = 0; mt < Cfg::kMmaT; ++mt) {
        bf[mt][0] = uint4_word(d.a[mt][step >> 1], 2 * (step & 1));
        bf[mt][1] = uint4_word(d.a[mt][step >> 1], 2 * (step & 1) + 1);
      }
      const int h = step / (8 / kScalesPerSlice);
#pragma unroll
      for (int mw = 0; mw < Cfg::kMmaW; ++mw) {
        // Codes 4 * step .. + 3 of each row: 16 bits of word step / 2 (e2m1x4_to_b16x4 reads
        // the low 16 bits of its selector).
        const int shift = 16 * (step & 1);
        uint32_t wf[4];  // a0..a3: (row g, slots 2t..), (g + 8, 2t..), (g, 2t+8..), (g + 8, 2t+8..)
        e2m1x4_to_b16x4<kBf16>(uint4_word(d.w[mw][0], step >> 1) >> shift, wf[0], wf[2]);
        e2m1x4_to_b16x4<kBf16>(uint4_word(d.w[mw][1], step >> 1) >> shift, wf[1], wf[3]);
        wf[0] = mul_b16x2<kBf16>(wf[0], fold[mw][0][h]);
        wf[2] = mul_b16x2<kBf16>(wf[2], fold[mw][0][h]);
        wf[1] = mul_b16x2<kBf16>(wf[1], fold[mw][1][h]);
        wf[3] = mul_b16x2<kBf16>(wf[3], fold[mw][1][h]);
        ptx::mma_m16n8k16<kBf16>(acc[mw][0], wf, bf[0][0], bf[0][1]);
        if (Cfg::kMmaT > 1 && second_tile) {
          ptx::mma_m16n8k16<kBf16>(acc[mw][Cfg::kMmaT - 1], wf, bf[Cfg::kMmaT - 1][0],
                                   bf[Cfg::kMmaT - 1][1]);
        }
      }
    }
  };

  const KTileRange chunks = split_k_tiles(p.k, Cfg::kChunk);
  const int64_t end = chunks.begin + chunks.count;
  Chunk cur, next;
  int64_t chunk = chunks.begin + warp_k;
  if (chunk < end) load_chunk(chunk, cur);
#pragma unroll 1
  for (; chunk < end; chunk += Cfg::kWarpsK) {
    if (chunk + Cfg::kWarpsK < end) load_chunk(chunk + Cfg::kWarpsK, next);
    multiply_chunk(cur);
    cur = next;
  }
  pdl::pdl_trigger();

  // The K warps' partial sums, added in warp order (rows past kRows are never computed).
  __shared__ float partial[Cfg::kWarpsK][Cfg::kRows * Cfg::kLd];
  for_each_accumulator(acc, warp_w0, 0, lane,
                       [&](int w, int row, float v) { partial[warp_k][row * Cfg::kLd + w] = v; });
  __syncthreads();
  float* staged = partial[0];  // [kRows][kLd], weight row fastest
  for (int idx = threadIdx.x; idx < Cfg::kRows * Cfg::kBW; idx += Cfg::kThreads) {
    const int at = (idx / Cfg::kBW) * Cfg::kLd + idx % Cfg::kBW;
    float v = partial[0][at];
#pragma unroll
    for (int q = 1; q < Cfg::kWarpsK; ++q) v += partial[q][at];
    staged[at] = v;
  }
  __syncthreads();

  if constexpr (kEpi == Epilogue::StoreF32) {
    float* c_rows = p.c + blockIdx.z * p.split_stride + item.row_begin * p.ldc;
    for (int idx = threadIdx.x; idx < Cfg::kRows * Cfg::kBW; idx += Cfg::kThreads) {
      const int row = idx / Cfg::kBW, w = idx % Cfg::kBW;
      if (row < item.rows && n0 + w < p.n)
        c_rows[row * p.ldc + n0 + w] = staged[row * Cfg::kLd + w];
    }
  } else {
    uint16_t* a2 = static_cast<uint16_t*>(p.act.a2);
    const int64_t lda2 = p.act.lda2;
    activate_staged_tile<kGated, Cfg::kRows, kOutCols, Cfg::kLd, Cfg::kThreads>(
        p.act, staged, item, n0, [&](int, int, int64_t r, int64_t col, float v) {
          a2[r * lda2 + col] = kBf16 ? formats::float_to_bf16(v) : formats::float_to_fp16(v);
        });
  }
}

}  // namespace sm80
}  // namespace cuda
}  // namespace flashinfer_moe
