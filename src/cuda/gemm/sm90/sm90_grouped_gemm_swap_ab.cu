// Hopper grouped GEMM, Config::SwapAB (bf16): memory-bound, 1-64 rows per expert.
//
// Per expert it solves the transposed problem D'[n, rows] = W_e[n, k] * X_e[rows, k]^T:
// - the weights are CUTLASS's A (M = n, K-major, row stride b_stride_n) and fill the 128-row
//   M tile; the expert's rows are CUTLASS's B (N = rows, K-major, row stride lda) on a 64-wide
//   N tile. A prefill tile would pad a 16-row expert to 128 rows; here the padding is at most
//   63 columns of a tile that is memory-bound anyway (TMA zero-fills rows past the expert).
// - D' is column-major with leading dimension ldc: element (i, j) at c + j * ldc + i, which is
//   C[row j, col i] of the row-major C the contract asks for. Stores past `rows` are clipped.
// - K = 128 per stage: two 128-byte swizzle atoms per row, 48 KB per stage (32 KB weights), so
//   each TMA load is large and the producer issues half as many barrier round-trips as K = 64.
// - Cooperative (two consumer warpgroups split the 128 weight rows, 64 x 64 each: 32 fp32
//   accumulators per thread); the fp32 epilogue of a 128 x 64 tile (32 KB) is small against
//   the tile's K * 256 bytes of weights. Cluster 1 x 1: with one N tile per expert there is no
//   second CTA to multicast to.
// - Tiles raster along N, so the CTAs of one weight tile (experts with > 64 rows) run together
//   and the weight tile comes from L2 for all but the first.
// Measured on H200 (weights streamed / 4.8 TB/s; a 2 GiB device copy reaches 0.89): 1-64 rows
// per expert: 0.72-0.82 at E=8 N=28672 K=4096, 0.75-0.82 at E=128 N=1536 K=2048, 0.83-0.92 at
// E=256 N=4096 K=7168, i.e. 1.3-1.7x faster than Prefill there. Past 64 rows the 64-wide N tile
// re-reads weights per 64 rows and SwapABWide wins.
#include "cuda/gemm/sm90/sm90_config_unit.h"
#include "cuda/gemm/sm90/sm90_grouped_gemm_variants.h"

#if defined(FLASHINFER_MOE_WITH_CUTLASS)
#include "cuda/gemm/sm90/sm90_swap_ab_gemm.cuh"

namespace flashinfer_moe::cuda::sm90 {
namespace {

using TileGemm = SwapABGemm<128, 64, 128>;

}  // namespace
}  // namespace flashinfer_moe::cuda::sm90
#endif

FIMOE_SM90_CONFIG_UNIT(sm90, swap_ab_bf16, detail::scratch_bytes, detail::launch_typed,
                       TileGemm)
