// FP8 Hopper grouped GEMM, Config::PerTensorPrefill: e4m3 x e4m3 -> fp32, compute-bound prefill.
//
// 128 x 128 tiles over (rows, n), K tile 128 e4m3 = 128 bytes (one 128-byte swizzle atom per
// row, 32 KB per stage), cooperative (two consumer warpgroups of 64 x 128), cluster 2 x 1 so the
// weight tile is multicast to the two CTAs of neighbouring row tiles.
// Why not bf16's 128 x 256: CUTLASS's FP8 mainloop keeps a second fp32 copy of the accumulators
// for the promotion (sm90_fp8_grouped_gemm_kernels.cuh), so a 64 x 256 warpgroup tile needs
// 2 x 128 accumulator registers per thread and spills (ptxas: 1008 bytes of spill stores): on
// H200 at 8 experts x 2048 rows, N=4096, K=7168 it ran at 462 TFLOP/s; this tile: 1203 TFLOP/s
// (swap-AB 128 x 64: 1007). Faster than swap-AB from ~256 rows per expert (991 vs 885 TFLOP/s).
#include "cuda/gemm/sm90/sm90_config_unit.h"
#include "cuda/gemm/sm90/sm90_fp8_grouped_gemm_variants.h"

#if defined(FLASHINFER_MOE_WITH_CUTLASS)
#include "cuda/gemm/sm90/sm90_fp8_grouped_gemm_kernels.cuh"

namespace flashinfer_moe::cuda::sm90_fp8 {
namespace {

using TileGemm = Fp8PerTensorGemm<128, 128, 128, 2, /*kSwap=*/false>;

}  // namespace
}  // namespace flashinfer_moe::cuda::sm90_fp8
#endif

FIMOE_SM90_CONFIG_UNIT(sm90_fp8, prefill, sm90::detail::scratch_bytes, sm90::detail::launch_typed,
                       TileGemm)
