// FP8 Hopper grouped GEMM, Config::BlockwisePrefill: DeepSeek-V3 block scales (activations
// 1 x 128, weights 128 x 128, fp32, the same in-place layouts as Config::Blockwise) for many
// rows per expert, where the GEMM is compute-bound.
//
// Not swapped: an expert's rows on CUTLASS's M (one scale per row), the weights on N (one scale
// per 128 x 128 block), D row-major. K tile 128 = the scale block. The swap-AB decode tile
// (128 x 64) reloads every weight tile once per 64 rows and gives each warpgroup a 64 x 64
// WGMMA per scaling step; a 128 x 128 tile halves the operand traffic per FLOP and doubles the
// MMA work between the mainloop's waits (it waits for each K tile's WGMMAs before scaling).
//
// Config: 128 x 128 x 128, cooperative, cluster 1 x 1 (candidate 1 below). Candidates, all
// measured on H200 (tests/cuda/check_sm90_fp8_grouped_gemm.cu, "bw_prefill" mode); this file
// compiles one, -DFLASHINFER_MOE_FP8_BLOCKWISE_PREFILL_CANDIDATE=i another (to re-measure):
//   0: 128 x 128, cooperative, cluster 2 x 1 (weight tile multicast to two row tiles): as fast
//      as 1 from 256 rows per expert (E=8 x 2048, N=4096 K=7168: 1200 vs 1208 TFLOP/s), but a
//      cluster pads each expert to 256 rows: E=256 x 128 rows, N=4096 K=7168: 3791 vs 2200 us.
//   1: 128 x 128, cooperative, cluster 1 x 1: the pick.
//   2:  64 x 128, pingpong, cluster 1 x 1: best near 192 rows per expert (E=256 N=4096 K=7168:
//       3313 vs 3495 us) but 900 TFLOP/s at 2048 rows (the 64-row tile halves the weight reuse).
//   3:  64 x 128, pingpong, cluster 2 x 1: slower than 2 up to 512 rows per expert (a cluster
//       pads each expert to 128 rows), within 6% of it above.
// Not 128 x 256 or a 128 x 128 pingpong: a warpgroup would hold 128 accumulators plus 128 for
// the scaled sum, and spill (as the per-tensor 128 x 256 did, sm90_fp8_grouped_gemm_prefill.cu).
#include "cuda/gemm/sm90/sm90_config_unit.h"
#include "cuda/gemm/sm90/sm90_fp8_grouped_gemm_variants.h"

#ifndef FLASHINFER_MOE_FP8_BLOCKWISE_PREFILL_CANDIDATE
#define FLASHINFER_MOE_FP8_BLOCKWISE_PREFILL_CANDIDATE 1
#endif

#if defined(FLASHINFER_MOE_WITH_CUTLASS)
#include "cuda/gemm/sm90/sm90_fp8_grouped_gemm_kernels.cuh"

namespace flashinfer_moe::cuda::sm90_fp8 {
namespace {

#if FLASHINFER_MOE_FP8_BLOCKWISE_PREFILL_CANDIDATE == 0
using TileGemm = Fp8BlockwiseGemm<128, 128, 2, /*kSwap=*/false, /*kPingpong=*/false>;
#elif FLASHINFER_MOE_FP8_BLOCKWISE_PREFILL_CANDIDATE == 1
using TileGemm = Fp8BlockwiseGemm<128, 128, 1, /*kSwap=*/false, /*kPingpong=*/false>;
#elif FLASHINFER_MOE_FP8_BLOCKWISE_PREFILL_CANDIDATE == 2
using TileGemm = Fp8BlockwiseGemm<64, 128, 1, /*kSwap=*/false, /*kPingpong=*/true>;
#elif FLASHINFER_MOE_FP8_BLOCKWISE_PREFILL_CANDIDATE == 3
using TileGemm = Fp8BlockwiseGemm<64, 128, 2, /*kSwap=*/false, /*kPingpong=*/true>;
#else
#error "FLASHINFER_MOE_FP8_BLOCKWISE_PREFILL_CANDIDATE must be 0..3"
#endif

}  // namespace
}  // namespace flashinfer_moe::cuda::sm90_fp8
#endif

FIMOE_SM90_CONFIG_UNIT(sm90_fp8, blockwise_prefill, detail::blockwise_scratch_bytes, detail::launch_blockwise,
                       TileGemm)
