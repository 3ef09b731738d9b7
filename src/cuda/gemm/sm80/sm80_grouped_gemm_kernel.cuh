// Device code of the portable grouped GEMM (sm80_grouped_gemm.h): the tile configurations, the
// schedule kernel that turns device-side row ranges into work items, and the mma.sync GEMM kernel.
//
// Orientation: inside the kernel the weights are the MMA's M operand (16 weight rows = 16 output
// columns per mma) and the activation rows are its N operand (8 rows per mma). For decode that
// is the "swap AB" trick (a handful of rows fills an n8 slot instead of wasting 15/16 of an m16);
// for prefill the MMA is symmetric, so the same code serves both and only the tile shape differs.
//
// Fusions: A rows may come through an index (the gather fused into GEMM1), and the epilogue may
// apply GEMM1's bias + activation and write the compute-dtype GEMM2 input (Epilogue below).
//
// Shared memory holds each operand tile as rows of 16-byte chunks with an XOR swizzle, so the
// 8 row addresses of one ldmatrix phase (same logical chunk, 8 consecutive rows) land in 8
// different bank groups, and cp.async writes stay conflict-free too.
#pragma once

#include <cstdint>

#include "cuda/epilogue/sm80_activation_epilogue.cuh"
#include "cuda/gemm/sm80/sm80_accumulators.cuh"
#include "cuda/gemm/sm80/sm80_mma_primitives.cuh"
#include "cuda/gemm/sm80/sm80_schedule.cuh"
#include "cuda/sm80_pdl.cuh"

namespace flashinfer_moe {
namespace cuda {
namespace sm80 {

// One CTA computes a kBW (weight rows = output columns) x kBT (activation rows) tile.
template <int BW, int BT, int BK, int STAGES, int WARPS_W, int WARPS_T, int MIN_BLOCKS>
struct TileConfig {
  static constexpr int kBW = BW, kBT = BT, kBK = BK, kStages = STAGES;
  static constexpr int kWarpsW = WARPS_W, kWarpsT = WARPS_T, kMinBlocks = MIN_BLOCKS;
  static constexpr int kThreads = 32 * WARPS_W * WARPS_T;
  static constexpr int kWarpW = BW / WARPS_W, kWarpT = BT / WARPS_T;  // per-warp sub-tile
  static constexpr int kMmaW = kWarpW / 16, kMmaT = kWarpT / 8;       // mma tiles per warp
  static constexpr int kWeightTileBytes = BW * BK * 2, kRowTileBytes = BT * BK * 2;
  static constexpr int kStageBytes = kWeightTileBytes + kRowTileBytes;
  static constexpr int kSmemBytes = STAGES * kStageBytes;
  static_assert(BW % (16 * WARPS_W) == 0, "warp weight sub-tile must be a multiple of 16");
  static_assert(BT % (16 * WARPS_T) == 0, "warp row sub-tile must be pairs of n8 mma tiles");
  static_assert(BK % 16 == 0 && BK >= 16, "BK must be a multiple of the mma K (16)");
  static_assert(STAGES >= 2, "the cp.async pipeline needs at least two stages");
};

// Tile shapes, picked by measurement on an H200 (one run, bf16, L2 flushed; alternatives tried:
// decode 128x16x64/4 stages, 32x16x128/4 stages; prefill 256x128x32/3 stages, 8 warps of 64x64).
// Decode, K-major B: 64 x 16 x 64, 6 stages (60 KB smem, three CTAs per SM, 5 stages = 40 KB of
// weights in flight per CTA): 4.0-4.1 TB/s on E8 N28672 K4096 T=4..16 vs 3.7 for 64x16x128 x4.
// FLASHINFER_MOE_SM80_DECODE_STAGES overrides the 6 for A/B runs of the standalone check only
// (H100, GEMM alone, L2 flushed: 7 stages was within +-2% of 6 except +7% on E256 N4096 K7168 T=1).
// Also measured there and dropped: a deeper pipeline for grids of fewer than 3 CTAs per SM (10
// stages at 2 per SM: no change; 20 stages at 1 per SM: 28% slower on E8 N4096 K14336 T=1), so
// small decode grids are not short of bytes in flight.
#ifndef FLASHINFER_MOE_SM80_DECODE_STAGES
#define FLASHINFER_MOE_SM80_DECODE_STAGES 6
#endif
using DecodeTileKMajorB = TileConfig<64, 16, 64, FLASHINFER_MOE_SM80_DECODE_STAGES, 4, 1, 3>;
// Decode, N-major B (the seed form's transposed W_out): 64 x 16 x 128, 4 stages (80 KB, two CTAs
// per SM). A weight smem row is only 64 n = 128 bytes here, and the deeper K tile won:
// 3.8 TB/s vs 3.1 for the 64-deep, 6-stage shape (E8 N4096 K14336 T=16).
using DecodeTileNMajorB = TileConfig<64, 16, 128, 4, 4, 1, 2>;
static_assert(DecodeTileKMajorB::kBW == DecodeTileNMajorB::kBW &&
                  DecodeTileKMajorB::kBT == DecodeTileNMajorB::kBT,
              "both decode shapes share one schedule (row tile) and one grid (column tile)");
// Prefill: 128 x 128 x 32, 4 stages (64 KB smem), 8 warps each 64 x 32 (16 mma tiles, 64 fp32
// accumulators a thread), two CTAs per SM: 273 TFLOP/s on E8 N28672 K4096 with 4096 rows.
using PrefillTile = TileConfig<128, 128, 32, 4, 2, 4, 2>;

// What the GEMM kernel needs besides the tile configuration.
struct GemmParams {
  const uint16_t* a;  // bf16 / fp16 bits
  int64_t lda;
  const uint16_t* b;
  int64_t b_stride_e, b_stride_n, b_stride_k;
  float* c;
  int64_t ldc;
  int64_t n, k;
  const void* schedule;        // scratch written by build_schedule_kernel
  bool a_vec16;                // A rows can be copied in aligned 16-byte chunks
  bool b_vec16;                // B's contiguous lines can be copied in aligned 16-byte chunks
  const int32_t* a_row_index;  // null: A row r is row r; else a_row_index[r] / a_row_index_div
  int32_t a_row_index_div;
  ActivationParams act;  // the fused GEMM1 epilogue's parameters (Epilogue != StoreF32)
  int64_t split_stride;  // split K (gridDim.z > 1, StoreF32): split z writes c + z * split_stride
};

// What the GEMM writes: fp32 C (the contract), or GEMM1's activated compute-dtype output,
// from a weight tile of BW output columns (Activation) or BW/2 up + BW/2 gate rows (Gated).
enum class Epilogue { StoreF32, Activation, GatedActivation };

// Offset, in 16-byte chunks, of chunk `chunk` of row `row` in a swizzled [ROWS][COLS] b16 tile.
template <int COLS>
__device__ __forceinline__ int swizzled_chunk(int row, int chunk) {
  constexpr int kChunks = COLS / 8;
  static_assert(COLS % 8 == 0 && (kChunks % 8 == 0 || (8 % kChunks == 0)),
                "a tile row must be a power-of-two number of chunks below 8, or a multiple of 8");
  if constexpr (kChunks >= 8) {
    return row * kChunks + (chunk ^ (row & 7));
  } else {
    return row * kChunks + (chunk ^ ((row / (8 / kChunks)) % kChunks));
  }
}

// Copies a [ROWS][COLS] tile whose element (r, c) sits at row_start(r)[c] into swizzled smem.
// Rows >= row_limit and columns >= col_limit become zeros (and are not read; `base` is any
// valid address for the zero-size copies). vec16: 16-byte cp.async with a partial source size
// for the last chunk of a line; otherwise element loads (any alignment).
template <int ROWS, int COLS, int THREADS, class RowStart>
__device__ __forceinline__ void load_tile(char* smem_tile, const uint16_t* base, RowStart row_start,
                                          int64_t row_limit, int64_t col_limit, bool vec16) {
  constexpr int kChunks = COLS / 8;
  constexpr int kTotal = ROWS * kChunks;
  const uint32_t smem_base = ptx::smem_address(smem_tile);
#pragma unroll
  for (int it = 0; it < (kTotal + THREADS - 1) / THREADS; ++it) {
    const int i = it * THREADS + static_cast<int>(threadIdx.x);
    if (kTotal % THREADS != 0 && i >= kTotal) break;
    const int row = i / kChunks, chunk = i % kChunks;
    const int64_t col = int64_t{chunk} * 8;
    int64_t valid = row < row_limit ? col_limit - col : 0;
    valid = valid < 0 ? 0 : (valid > 8 ? 8 : valid);
    const uint16_t* src = row_start(row) + col;
    const int dst_chunk = swizzled_chunk<COLS>(row, chunk);
    if (vec16) {
      ptx::cp_async_16_zfill(smem_base + dst_chunk * 16, valid > 0 ? src : base,
                             static_cast<int>(valid) * 2);
    } else {
      uint16_t v[8];
#pragma unroll
      for (int j = 0; j < 8; ++j) v[j] = j < valid ? src[j] : uint16_t{0};
      uint4 packed;
      packed.x = v[0] | (uint32_t{v[1]} << 16);
      packed.y = v[2] | (uint32_t{v[3]} << 16);
      packed.z = v[4] | (uint32_t{v[5]} << 16);
      packed.w = v[6] | (uint32_t{v[7]} << 16);
      *reinterpret_cast<uint4*>(smem_tile + dst_chunk * 16) = packed;
    }
  }
}

// The grouped GEMM. grid = (schedule capacity, n tiles); blockIdx.x picks the work item, so CTAs
// launched together share a weight tile in L2 (prefill) and surplus item slots exit at once.
// kKMajorB: weights stored with K contiguous (tile [kBW][kBK], plain ldmatrix); otherwise N
// contiguous (tile [kBK][kBW], ldmatrix.trans). kEpi: what the CTA writes (Epilogue).
template <class Cfg, bool kBf16, bool kKMajorB, Epilogue kEpi>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks)
    grouped_gemm_kernel(const GemmParams p) {
  static_assert(kKMajorB || kEpi == Epilogue::StoreF32, "fused epilogues need K-major weights");
  constexpr bool kGated = kEpi == Epilogue::GatedActivation;
  // Output columns per CTA: a gated CTA spends half its weight rows on the matching gate rows.
  constexpr int kOutCols = kGated ? Cfg::kBW / 2 : Cfg::kBW;
  pdl::pdl_wait();  // the schedule, A and the row index come from earlier kernels
  WorkItem item;
  if (!cta_work_item(p.schedule, &item)) return;
  const int64_t n0 = int64_t{blockIdx.y} * kOutCols;  // first output column of this CTA

  extern __shared__ __align__(128) char smem[];
  // Element offset of each of the tile's A rows: resolved once here, so the gathered path costs
  // no dependent global load per pipeline stage. Rows past item.rows are never read.
  __shared__ int64_t a_row_start[Cfg::kBT];
  for (int r = threadIdx.x; r < Cfg::kBT; r += Cfg::kThreads) {
    int64_t src = item.row_begin + r;
    if (p.a_row_index != nullptr) {
      src = r < item.rows ? p.a_row_index[item.row_begin + r] / p.a_row_index_div : 0;
    }
    a_row_start[r] = src * p.lda;
  }
  __syncthreads();
  const uint16_t* b_expert = p.b + item.expert * p.b_stride_e;

  auto load_stage = [&](int stage, int64_t k0) {
    char* w_smem = smem + stage * Cfg::kStageBytes;
    char* r_smem = w_smem + Cfg::kWeightTileBytes;
    if constexpr (kGated) {
      // Up rows [n0, n0 + BW/2) then gate rows [I + n0, ...): two half tiles, same swizzle as
      // one full tile because BW/2 is a multiple of the swizzle period (8 rows).
      constexpr int kHalf = Cfg::kBW / 2;
      const int64_t inter = p.n / 2;
      const uint16_t* up = b_expert + n0 * p.b_stride_n + k0;
      const uint16_t* gate = up + inter * p.b_stride_n;
      auto up_row = [&](int r) { return up + r * p.b_stride_n; };
      auto gate_row = [&](int r) { return gate + r * p.b_stride_n; };
      load_tile<kHalf, Cfg::kBK, Cfg::kThreads>(w_smem, up, up_row, inter - n0, p.k - k0,
                                                p.b_vec16);
      load_tile<kHalf, Cfg::kBK, Cfg::kThreads>(w_smem + kHalf * Cfg::kBK * 2, gate, gate_row,
                                                inter - n0, p.k - k0, p.b_vec16);
    } else if constexpr (kKMajorB) {
      const uint16_t* w0 = b_expert + n0 * p.b_stride_n + k0;
      auto w_row = [&](int r) { return w0 + r * p.b_stride_n; };
      load_tile<Cfg::kBW, Cfg::kBK, Cfg::kThreads>(w_smem, w0, w_row, p.n - n0, p.k - k0,
                                                   p.b_vec16);
    } else {
      const uint16_t* w0 = b_expert + k0 * p.b_stride_k + n0;
      auto k_row = [&](int r) { return w0 + r * p.b_stride_k; };
      load_tile<Cfg::kBK, Cfg::kBW, Cfg::kThreads>(w_smem, w0, k_row, p.k - k0, p.n - n0,
                                                   p.b_vec16);
    }
    auto a_row = [&](int r) { return p.a + a_row_start[r] + k0; };
    load_tile<Cfg::kBT, Cfg::kBK, Cfg::kThreads>(r_smem, p.a, a_row, item.rows, p.k - k0,
                                                 p.a_vec16);
  };

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warp_w0 = (warp % Cfg::kWarpsW) * Cfg::kWarpW;  // first weight row of this warp
  const int warp_t0 = (warp / Cfg::kWarpsW) * Cfg::kWarpT;  // first activation row
  float acc[Cfg::kMmaW][Cfg::kMmaT][4] = {};

  // This CTA's K tiles: all of them, or grid split blockIdx.z's share (its partial sums go to
  // its own C slab).
  const KTileRange k_range = split_k_tiles(p.k, Cfg::kBK);
  const int64_t kt_begin = k_range.begin, k_tiles = k_range.count;
#pragma unroll
  for (int s = 0; s < Cfg::kStages - 1; ++s) {
    if (s < k_tiles) load_stage(s, (kt_begin + s) * Cfg::kBK);
    ptx::cp_async_commit();  // empty groups keep the wait count uniform
  }

  for (int64_t i = 0; i < k_tiles; ++i) {
    ptx::cp_async_wait<Cfg::kStages - 2>();
    __syncthreads();  // stage i is visible to all; stage i-1 is free for the prefetch below
    const int64_t next = i + Cfg::kStages - 1;
    if (next < k_tiles) {
      load_stage(static_cast<int>(next % Cfg::kStages), (kt_begin + next) * Cfg::kBK);
    }
    ptx::cp_async_commit();

    const char* w_smem = smem + static_cast<int>(i % Cfg::kStages) * Cfg::kStageBytes;
    const uint32_t w_base = ptx::smem_address(w_smem);
    const uint32_t r_base = w_base + Cfg::kWeightTileBytes;
#pragma unroll
    for (int ks = 0; ks < Cfg::kBK / 16; ++ks) {
      uint32_t wf[Cfg::kMmaW][4];
      uint32_t rf[Cfg::kMmaT][2];
      const int mat = lane >> 3, mrow = lane & 7;  // ldmatrix: which 8x8 matrix, which row
#pragma unroll
      for (int mw = 0; mw < Cfg::kMmaW; ++mw) {
        const int w0 = warp_w0 + mw * 16;
        if constexpr (kKMajorB) {
          // matrices: (w 0-7, k 0-7), (w 8-15, k 0-7), (w 0-7, k 8-15), (w 8-15, k 8-15)
          const int row = w0 + mrow + 8 * (mat & 1);
          const int chunk = ks * 2 + (mat >> 1);
          ptx::ldmatrix_x4(wf[mw], w_base + swizzled_chunk<Cfg::kBK>(row, chunk) * 16);
        } else {
          // stored [k][w]: same four matrices, each read transposed from 8 k-rows
          const int row = ks * 16 + mrow + 8 * (mat >> 1);
          const int chunk = w0 / 8 + (mat & 1);
          ptx::ldmatrix_x4_trans(wf[mw], w_base + swizzled_chunk<Cfg::kBW>(row, chunk) * 16);
        }
      }
#pragma unroll
      for (int pt = 0; pt < Cfg::kMmaT / 2; ++pt) {
        // matrices: (t 0-7, k 0-7), (t 0-7, k 8-15), (t 8-15, k 0-7), (t 8-15, k 8-15)
        const int row = warp_t0 + pt * 16 + mrow + 8 * (mat >> 1);
        const int chunk = ks * 2 + (mat & 1);
        uint32_t r[4];
        ptx::ldmatrix_x4(r, r_base + swizzled_chunk<Cfg::kBK>(row, chunk) * 16);
        rf[2 * pt][0] = r[0];
        rf[2 * pt][1] = r[1];
        rf[2 * pt + 1][0] = r[2];
        rf[2 * pt + 1][1] = r[3];
      }
#pragma unroll
      for (int mw = 0; mw < Cfg::kMmaW; ++mw) {
#pragma unroll
        for (int mt = 0; mt < Cfg::kMmaT; ++mt) {
          ptx::mma_m16n8k16<kBf16>(acc[mw][mt], wf[mw], rf[mt][0], rf[mt][1]);
        }
      }
    }
  }
  ptx::cp_async_wait<0>();  // no copy may outlive the CTA's shared memory
  pdl::pdl_trigger();       // only the epilogue is left: let the next kernel's CTAs queue up

  // For one accumulator register the 8 lanes with equal t write 32 contiguous bytes of C.
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
