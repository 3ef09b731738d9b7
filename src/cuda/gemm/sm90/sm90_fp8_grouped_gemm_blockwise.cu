// FP8 Hopper grouped GEMM, Config::Blockwise: DeepSeek-V3 block scales (activations 1 x 128,
// weights 128 x 128, fp32) applied per 128-wide K slice inside the mainloop.
//
// CUTLASS's blockwise-scaled pointer-array mainloop, swap-AB (weights on M, an expert's rows on
// N; sm90_fp8_grouped_gemm_kernels.cuh says why K-major scale layouts). 128 x 64 x 128 tiles:
// - K tile 128 = the scale block: every K tile's WGMMA result is scaled and added once.
// - 64 rows per N tile: decode experts (a few rows) pad to 64, not 128, columns; at 128 columns
//   the tensor-core time of a weight tile would approach its HBM time (the blockwise mainloop
//   waits for each K tile's WGMMAs before scaling), turning decode compute-bound.
// - Cooperative, cluster 1 x 1, tiles raster along N (a weight tile's CTAs run together).
// Measured on H200, N=4096 K=7168: 1-64 rows per expert 0.72-0.78 of a D2D copy's bandwidth at
// E=8, 0.91-0.98 at E=64 (within 1-8% of the per-tensor swap-AB); 8 x 2048 rows 892 TFLOP/s.
#include "cuda/gemm/sm90/sm90_config_unit.h"
#include "cuda/gemm/sm90/sm90_fp8_grouped_gemm_variants.h"

#if defined(FLASHINFER_MOE_WITH_CUTLASS)
#include "cuda/gemm/sm90/sm90_fp8_grouped_gemm_kernels.cuh"

namespace flashinfer_moe::cuda::sm90_fp8 {
namespace {

using TileGemm = Fp8BlockwiseSwapABGemm<128, 64>;

}  // namespace
}  // namespace flashinfer_moe::cuda::sm90_fp8
#endif

FIMOE_SM90_CONFIG_UNIT(sm90_fp8, blockwise, detail::blockwise_scratch_bytes, detail::launch_blockwise,
                       TileGemm)
