// FP8 Hopper grouped GEMM, Config::PerTensorSwapAB: e4m3 x e4m3 -> fp32, memory-bound decode
// (<= 64 rows per expert).
//
// The bf16 SwapAB idea (sm90_grouped_gemm_swap_ab.cu): per expert D'[n, rows] = W_e * X_e^T, the
// weights fill CUTLASS's 128-row M tile and the expert's rows a 64-wide N tile, so a small expert
// is padded to 64 columns instead of 128 rows and each weight tile streams from HBM once; tiles
// raster along N. 128 x 64 x 128: K tile 128 because the FP8 mainloop promotes to fp32 once per
// 4 MMAs (sm90_fp8_grouped_gemm_kernels.cuh); 24 KB per stage, so the auto stage count keeps
// many weight tiles in flight, which is what a bandwidth-bound kernel needs.
// Measured on H200 (weights streamed / a 2 GiB D2D copy's 4.25 TB/s), N=4096 K=7168: 1-64 rows
// per expert 0.77-0.79 at E=8, 0.92-0.99 at E=64; 128 rows 0.66 (717 TFLOP/s).
#include "cuda/gemm/sm90/sm90_config_unit.h"
#include "cuda/gemm/sm90/sm90_fp8_grouped_gemm_variants.h"

#if defined(FLASHINFER_MOE_WITH_CUTLASS)
#include "cuda/gemm/sm90/sm90_fp8_grouped_gemm_kernels.cuh"

namespace flashinfer_moe::cuda::sm90_fp8 {
namespace {

using TileGemm = Fp8PerTensorGemm<128, 64, 128, 1, /*kSwap=*/true>;

}  // namespace
}  // namespace flashinfer_moe::cuda::sm90_fp8
#endif

FIMOE_SM90_CONFIG_UNIT(sm90_fp8, swap_ab, sm90::detail::scratch_bytes, sm90::detail::launch_typed,
                       TileGemm)
