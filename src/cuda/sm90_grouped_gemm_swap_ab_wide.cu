// Hopper grouped GEMM, Config::SwapABWide (bf16): swap-AB for ~64-256 rows per expert.
//
// The same transposed problem as Config::SwapAB (sm90_grouped_gemm_swap_ab.cu: weights on
// CUTLASS's M side, the expert's rows on N, D' column-major == C row-major), with a 128-wide N
// tile: an expert with 65-128 rows reads each weight tile once instead of twice (from HBM once,
// then L2), and the tensor cores get twice the work per weight byte, which the middle rows
// (where swap-AB approaches the compute roofline) need.
// - 128 x 128 x 64: 32 KB per stage; cooperative, 64 x 128 per consumer warpgroup = 64 fp32
//   accumulators per thread. Cluster 1 x 1 (an expert with <= 128 rows has a single N tile, so
//   a cluster along N would leave its second CTA idle).
// - Tiles raster along N (see sm90_grouped_gemm_launch.cuh).
// Measured on H200: best of all configs at 96-128 rows per expert (0.67-0.77 of 4.8 TB/s,
// 1.2-1.3x faster than Prefill); at 192 rows (two N tiles, the second half empty) it is 1.2-1.5x
// slower than at 256 rows for reasons not yet understood, so leave > 128 rows to Prefill.
// Without NDEBUG CuTe's device asserts serialize the wgmma pipeline (see sm90_grouped_gemm.cu).
#ifndef NDEBUG
#define NDEBUG
#endif

#include <cuda_runtime_api.h>

#include "cuda/sm90_grouped_gemm_variants.h"

#if defined(FLASHINFER_MOE_WITH_CUTLASS)
#include "cuda/sm90_swap_ab_gemm.cuh"

namespace flashinfer_moe {
namespace cuda {
namespace sm90 {
namespace {

using TileGemm = SwapABGemm<128, 128, 64>;

}  // namespace

namespace variants {

size_t swap_ab_wide_bf16_scratch_bytes(int32_t groups) {
  return detail::scratch_bytes<TileGemm>(groups);
}

int swap_ab_wide_bf16_launch(const GroupedGemmArgs& args, void* stream, int device, int sm_count) {
  return detail::launch_typed<TileGemm>(args, static_cast<cudaStream_t>(stream), device, sm_count);
}

}  // namespace variants
}  // namespace sm90
}  // namespace cuda
}  // namespace flashinfer_moe

#else  // !FLASHINFER_MOE_WITH_CUTLASS

namespace flashinfer_moe {
namespace cuda {
namespace sm90 {
namespace variants {

size_t swap_ab_wide_bf16_scratch_bytes(int32_t) { return 0; }
int swap_ab_wide_bf16_launch(const GroupedGemmArgs&, void*, int, int) {
  return static_cast<int>(cudaErrorNotSupported);
}

}  // namespace variants
}  // namespace sm90
}  // namespace cuda
}  // namespace flashinfer_moe

#endif  // FLASHINFER_MOE_WITH_CUTLASS
