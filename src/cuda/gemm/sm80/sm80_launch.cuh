// What every kernel launch of the portable grouped GEMM family shares across its translation
// units (sm80_grouped_gemm.cu for bf16 / fp16 and FP8, sm80_w4a16_*.cu for FP4 weights): the
// operand alignment tests that pick the 16-byte copy paths, and the grid, one CTA per
// (schedule work item, column tile, K split).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/gemm/grouped_gemm.h"
#include "cuda/sm80_pdl.cuh"

namespace flashinfer_moe {
namespace cuda {
namespace sm80 {

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// 4-bit weight codes for the W4A16 kernels: e2m1 (FP4) or MXINT4's int4.
inline bool b_is_fp4(const GroupedGemmArgs& a) {
  return a.b_format == ElemFormat::E2M1Packed || a.b_format == ElemFormat::E2M1Unpacked ||
         a.b_format == ElemFormat::Int4Packed;
}

// B's stride units per 16 bytes: 16 e4m3 codes, 16 bytes of e2m1 codes or 8 bf16 / fp16 values.
inline int64_t elems_per_16_bytes(const GroupedGemmArgs& a) {
  return a.fp8 || b_is_fp4(a) ? 16 : 8;
}

// Whether B's contiguous lines (K-major rows, or N-major k rows) start on 16-byte boundaries
// (the expert stride matters only when there is more than one expert).
inline bool b_lines_aligned16(const GroupedGemmArgs& a) {
  const int64_t line_stride = a.b_stride_k == 1 ? a.b_stride_n : a.b_stride_k;
  const int64_t v = elems_per_16_bytes(a);
  return aligned16(a.b) && line_stride % v == 0 && (a.num_experts <= 1 || a.b_stride_e % v == 0);
}

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
