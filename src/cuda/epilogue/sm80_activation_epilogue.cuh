// The GEMM1 epilogue of the portable grouped GEMM family, shared by its bf16 / fp16 kernel
// (sm80_grouped_gemm_kernel.cuh) and its FP8 kernel (sm80_fp8_grouped_gemm_kernel.cuh).
//
// Both kernels first stage their fp32 accumulator tile in shared memory, so that one thread
// sees an intermediate column's up and gate values together, then call:
//   activate_staged_tile   dequantization (FP8), routing weight, bias, (gated) activation, per
//                          element with activation_kernel.cuh's formulas: the same bits as the
//                          separate activation kernel;
//   quantize_staged_tile   (FP8) GEMM2's input as e4m3 codes + fp32 scales with act_quant.cuh's
//                          scale rules, when every quantization group of a row lies inside the
//                          CTA's columns (fp8_epilogue_fits): a static scale, or groups that
//                          divide the tile (MXFP8's 32), or a row no wider than the tile.
//                          Per-token and 1x128 groups wider than the tile span CTAs and keep the
//                          separate activation kernel.
#pragma once

#include <cstdint>

#include "cuda/act_quant.cuh"
#include "cuda/epilogue/activation_kernel.cuh"
#include "cuda/gemm/sm80/sm80_schedule.cuh"

namespace flashinfer_moe {
namespace cuda {
namespace sm80 {

// The smallest quantization group the fused FP8 epilogue takes (bounds its scale table).
constexpr int64_t kFusedQuantMinGroup = 8;

// How the fused FP8 epilogue quantizes (resolved on the host from ActQuantOut).
struct FusedQuant {
  bool is_static = true;  // one given scale; else an amax per group
  bool mx = false;        // MXFP8's power-of-two scale
  int64_t group = 0;      // columns per scale (the row width for per token)
};

// Whether a CTA covering `tile_cols` intermediate columns (starting at a multiple of tile_cols)
// holds whole quantization groups of an `inter`-wide row under `q`.
FIMOE_HOST_DEVICE inline bool fp8_epilogue_fits(const FusedQuant& q, int64_t tile_cols,
                                                int64_t inter) {
  if (q.is_static) return true;
  if (q.group < kFusedQuantMinGroup && q.group < inter) return false;
  return tile_cols % q.group == 0 || inter <= tile_cols;
}

// Applies GEMM1's epilogue math to the staged tile: staged[row * kLd + c] holds C1 column n0 + c
// (and, gated, staged[row * kLd + kOutCols + c] holds column inter + n0 + c) of permuted row
// item.row_begin + row. emit(row, c, r, col, v) receives the activated value v of intermediate
// column col = n0 + c of permuted row r, for every in-range element, each by one thread.
template <bool kGated, int kBT, int kOutCols, int kLd, int kThreads, class Emit>
__device__ __forceinline__ void activate_staged_tile(const ActivationParams& ap,
                                                     const float* staged, const WorkItem& item,
                                                     int64_t n0, Emit emit) {
  const Activation act = static_cast<Activation>(ap.activation);
  const int32_t e = item.expert;
  const act_math::ExpertParams prm = act_math::expert_params(ap, e);
  for (int idx = threadIdx.x; idx < kBT * kOutCols; idx += kThreads) {
    const int row = idx / kOutCols, c = idx % kOutCols;
    const int64_t col = n0 + c;
    if (row >= item.rows || col >= ap.inter) continue;
    const int64_t r = item.row_begin + row;
    const float w = ap.weight_on_input ? ap.topk_weights[ap.permuted_to_expanded[r]] : 1.0f;
    const float up = act_math::dequantized(ap, staged[row * kLd + c], r, e, col);
    const float u = act_math::pre_activation(ap, up, w, e, col);
    float v;
    if constexpr (kGated) {
      const int64_t m = ap.inter + col;
      const float gate = act_math::dequantized(ap, staged[row * kLd + kOutCols + c], r, e, m);
      v = act_math::activate_gated(act, act_math::pre_activation(ap, gate, w, e, m), u, prm);
    } else {
      v = act_math::activate(act, u);
    }
    emit(row, c, r, col, v);
  }
}

// Quantizes the activated tile h[row * kLd + c] (intermediate column n0 + c) into ap.quant's
// codes and scales. `tile_scale` is block-shared scratch of kBT * (kOutCols / kFusedQuantMinGroup)
// floats. Every thread of the block must call this (it synchronizes).
template <int kBT, int kOutCols, int kLd, int kThreads>
__device__ __forceinline__ void quantize_staged_tile(const ActivationParams& ap,
                                                     const FusedQuant& fq, const float* h,
                                                     float* tile_scale, const WorkItem& item,
                                                     int64_t n0) {
  constexpr int kMaxGroups = kOutCols / kFusedQuantMinGroup;
  const ActQuantOut& q = ap.quant;
  const int64_t cols = ap.inter - n0 < kOutCols ? ap.inter - n0 : kOutCols;
  const int64_t group = fq.group < cols ? fq.group : cols;  // the last group may be short
  const int64_t first_group = n0 / (fq.group > 0 ? fq.group : 1);
  float static_s = 1.0f;
  if (fq.is_static) {
    if (q.static_scale != nullptr) static_s = q.static_scale[item.expert * q.static_stride];
    // One scale per row; the CTA of the first column tile records it.
    if (blockIdx.y == 0) {
      for (int row = threadIdx.x; row < item.rows; row += kThreads) {
        act_quant::store_scale(q.scales, item.row_begin + row, 0, static_s);
      }
    }
  } else {
    // A warp per (row, group): lanes stride over the group's columns, then an xor-shuffle amax.
    const int groups = static_cast<int>((cols + group - 1) / group);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int pair = warp; pair < item.rows * groups; pair += kThreads / 32) {
      const int row = pair / groups, gi = pair % groups;
      const int64_t end = (gi + 1) * group < cols ? (gi + 1) * group : cols;
      float m = 0.0f;
      for (int64_t c = gi * group + lane; c < end; c += 32) {
        m = act_quant::amax_step(m, h[row * kLd + c]);
      }
#pragma unroll
      for (int offset = 16; offset > 0; offset >>= 1) {
        m = act_quant::amax_step(m, __shfl_xor_sync(0xffffffffu, m, offset));
      }
      if (lane == 0) {
        const float s = act_quant::scale_from_amax(fq.mx, m);
        tile_scale[row * kMaxGroups + gi] = s;
        act_quant::store_scale(q.scales, item.row_begin + row, first_group + gi, s);
      }
    }
    __syncthreads();
  }
  for (int idx = threadIdx.x; idx < kBT * kOutCols; idx += kThreads) {
    const int row = idx / kOutCols, c = idx % kOutCols;
    if (row >= item.rows || c >= cols) continue;
    const float s = fq.is_static ? static_s : tile_scale[row * kMaxGroups + c / group];
    q.codes[(item.row_begin + row) * q.ld_codes + n0 + c] =
        act_quant::quantize_e4m3(h[row * kLd + c], s);
  }
}

}  // namespace sm80
}  // namespace cuda
}  // namespace flashinfer_moe
