// The grid every kernel of the portable grouped GEMM family launches over, shared by its
// translation units (sm80_grouped_gemm.cu for bf16 / fp16 and FP8, sm80_w4a16_*.cu for FP4
// weights): one CTA per (schedule work item, column tile, K split).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/gemm/grouped_gemm.h"
#include "cuda/sm80_pdl.cuh"

namespace flashinfer_moe {
namespace cuda {
namespace sm80 {

// Intermediate columns a CTA of `bw` weight rows covers under the fused activation: a gated CTA
// spends half its rows on the matching gate rows.
inline int64_t fused_cols_per_cta(const ActivationParams& act, int64_t bw) {
  return is_gated(static_cast<Activation>(act.activation)) ? bw / 2 : bw;
}

// Grid columns of a launch with `bw` weight rows per CTA: column tiles of C, or with the fused
// activation tiles of intermediate columns.
inline int64_t column_tiles(const GroupedGemmArgs& a, int64_t bw) {
  if (a.activation == nullptr) return (a.n + bw - 1) / bw;
  const int64_t per_cta = fused_cols_per_cta(*a.activation, bw);
  return (a.activation->inter + per_cta - 1) / per_cta;
}

// Launches `kernel` (any family kernel of tile configuration Cfg) over (work items, column
// tiles, K splits).
template <class Cfg, class Params>
cudaError_t launch_tiles(void (*kernel)(Params), const Params& params, const GroupedGemmArgs& a,
                         int64_t capacity, cudaStream_t stream) {
  // Host-only attribute call (allowed during stream capture); needed past 48 KB of smem.
  cudaError_t err =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes);
  if (err != cudaSuccess) return err;
  const dim3 grid(static_cast<unsigned>(capacity), static_cast<unsigned>(column_tiles(a, Cfg::kBW)),
                  static_cast<unsigned>(a.k_splits));
  return pdl::launch_kernel(kernel, grid, dim3(Cfg::kThreads), Cfg::kSmemBytes, stream, a.pdl,
                            params);
}

}  // namespace sm80
}  // namespace cuda
}  // namespace flashinfer_moe
