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
#include "cuda/gemm/sm90/sm90_config_unit.h"
#include "cuda/gemm/sm90/sm90_grouped_gemm_variants.h"

#if defined(FLASHINFER_MOE_WITH_CUTLASS)
#include "cuda/gemm/sm90/sm90_swap_ab_gemm.cuh"

namespace flashinfer_moe::cuda::sm90 {
namespace {

using TileGemm = SwapABGemm<128, 128, 64>;

}  // namespace
}  // namespace flashinfer_moe::cuda::sm90
#endif

FIMOE_SM90_CONFIG_UNIT(sm90, swap_ab_wide_bf16, detail::scratch_bytes, detail::launch_typed,
                       TileGemm)
