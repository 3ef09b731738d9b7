// What the portable family's bf16 / fp16 and W4A16 kernels do with their fp32 accumulators once
// the K loop is done: store them as fp32 C, or stage them and apply GEMM1's fused activation
// into the compute-dtype GEMM2 input.
//
// A warp's accumulator acc[mw][mt][i] of lane (g = lane / 4, t = lane % 4) holds weight row
// (output column) warp_w0 + mw * 16 + g + 8 * (i >> 1) and activation row
// warp_t0 + mt * 8 + 2 * t + (i & 1) of the CTA tile: the m16n8k16 output fragment with the
// weights as the M operand.
#pragma once

#include <cstdint>

#include "cuda/epilogue/sm80_activation_epilogue.cuh"

namespace flashinfer_moe {
namespace cuda {
namespace sm80 {

// fn(weight row, activation row, value) for every accumulator of this lane.
template <int kMmaW, int kMmaT, class Fn>
__device__ __forceinline__ void for_each_accumulator(const float (&acc)[kMmaW][kMmaT][4],
                                                     int warp_w0, int warp_t0, int lane, Fn fn) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int mw = 0; mw < kMmaW; ++mw) {
#pragma unroll
    for (int mt = 0; mt < kMmaT; ++mt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        fn(warp_w0 + mw * 16 + g + 8 * (i >> 1), warp_t0 + mt * 8 + 2 * t + (i & 1),
           acc[mw][mt][i]);
      }
    }
  }
}

// The fp32 C contract (grouped_gemm.h): in-range elements of the tile at column n0, rows of
// `item`, into `c` (this K split's slab) with row stride ldc.
template <int kMmaW, int kMmaT>
__device__ __forceinline__ void store_accumulators(const float (&acc)[kMmaW][kMmaT][4], float* c,
                                                   int64_t ldc, int64_t n, const WorkItem& item,
                                                   int64_t n0, int warp_w0, int warp_t0, int lane) {
  float* c_rows = c + item.row_begin * ldc;
  for_each_accumulator(acc, warp_w0, warp_t0, lane, [&](int w, int row, float v) {
    const int64_t col = n0 + w;
    if (col < n && row < item.rows) c_rows[row * ldc + col] = v;
  });
}

// GEMM1's fused epilogue into the compute dtype (bf16 / fp16 GEMM2 input): the CTA's fp32 tile
// is staged in the (now idle) pipeline smem, so one thread sees a column's up and gate values
// together, then activation_kernel.cu's formulas run element by element (GEMM1's K-constant
// dequantization first). A 4-float row pad, where it fits, keeps the staging stores free of
// bank conflicts. Every thread of the block must call this (it synchronizes).
template <class Cfg, bool kGated, bool kBf16, int kOutCols>
__device__ __forceinline__ void activate_accumulators(const float (&acc)[Cfg::kMmaW][Cfg::kMmaT][4],
                                                      char* smem, const ActivationParams& act,
                                                      const WorkItem& item, int64_t n0, int warp_w0,
                                                      int warp_t0, int lane) {
  constexpr int kLd = Cfg::kBT * (Cfg::kBW + 4) * 4 <= Cfg::kSmemBytes ? Cfg::kBW + 4 : Cfg::kBW;
  static_assert(Cfg::kBT * kLd * 4 <= Cfg::kSmemBytes, "the staged tile must fit the smem");
  float* staged = reinterpret_cast<float*>(smem);  // [kBT][kLd], weight row fastest
  __syncthreads();  // every warp is done reading the last pipeline stage
  for_each_accumulator(acc, warp_w0, warp_t0, lane,
                       [&](int w, int row, float v) { staged[row * kLd + w] = v; });
  __syncthreads();
  uint16_t* a2 = static_cast<uint16_t*>(act.a2);
  const int64_t lda2 = act.lda2;
  activate_staged_tile<kGated, Cfg::kBT, kOutCols, kLd, Cfg::kThreads>(
      act, staged, item, n0, [&](int, int, int64_t r, int64_t col, float v) {
        a2[r * lda2 + col] = kBf16 ? formats::float_to_bf16(v) : formats::float_to_fp16(v);
      });
}

}  // namespace sm80
}  // namespace cuda
}  // namespace flashinfer_moe
