// FP8 (e4m3 x e4m3 -> fp32) configurations of the Hopper grouped GEMM family (GemmTactic::Sm90
// with GroupedGemmArgs::fp8): CUTLASS sm90 TMA + WGMMA pointer-array kernels, K-major A and B.
//
// Same contract and launch machinery as the bf16 configurations (sm90_grouped_gemm.h): a prepare
// kernel writes each expert's problem shape and pointers from `row_offsets` into `scratch`, then
// a persistent CUTLASS kernel runs with no host problem shapes (no host sync, graph capturable).
//
// Two kinds of problem (grouped_gemm.h, "FP8 operands"):
//   * per-tensor: no scale varies along K (a_kscale.data == b_kscale.data == nullptr). C is the
//     plain fp32 sum of code products; the caller applies the K-constant scales (GemmDequant).
//   * blockwise (DeepSeek-V3): activation scales per row and 128 columns, weight scales per
//     128 x 128 block, both fp32, applied to each 128-wide K slice's partial sum inside the
//     mainloop (CUTLASS's FP8 blockwise-scaled accumulation).
//
// Scale layouts the blockwise configs read in place (CUTLASS 4.2's grouped blockwise mainloop
// derives each group's scale layout from the group's shape, ignoring any layout argument, so
// these are the only layouts it can read without a copy):
//   a_kscale: row-major (rows_fastest == false), group 128, ld == ceil(k / 128): the scales of
//             permuted row r are a_kscale.data[r * ld + s] (CUTLASS's K-major SFA/SFB);
//   b_kscale: ScaleFormat::Float, DType::F32, ScaleLayout::Linear, 128 x 128 blocks, stride_c
//             == 1 and stride_r == ceil(k / 128) (a [E, ceil(n/128), ceil(k/128)] tensor whose
//             inner two dims are packed; stride_e is free).
// supports() rejects anything else with a reason; the sm80 family covers the rest.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cuda/gemm/grouped_gemm.h"

namespace flashinfer_moe {
namespace cuda {
namespace sm90_fp8 {

enum class Config {
  // Per-tensor, prefill: D[rows, n] = A_e * B_e^T over 128 x 128 x 128 tiles (rows, n, k),
  // cooperative, cluster 2 x 1 (the weight tile is multicast to both CTAs). Not bf16's 128 x 256:
  // FP8 promotion doubles the accumulator registers (sm90_fp8_grouped_gemm_prefill.cu).
  PerTensorPrefill,
  // Per-tensor, decode: swap-AB (weights on CUTLASS's M side, an expert's rows on N) over
  // 128 x 64 x 128 tiles, cooperative, cluster 1 x 1: an expert of <= 64 rows is one N tile and
  // each weight tile streams once. Picked when rows per expert <= 256 (see config_for).
  PerTensorSwapAB,
  // Blockwise 1x128 / 128x128 scales, swap-AB over 128 x 64 x 128 tiles (the K tile is the
  // scale block), cooperative, cluster 1 x 1: the weight-bandwidth-bound decode case.
  Blockwise,
  // Blockwise, same scales and layouts, prefill: rows on M, weights on N, 128 x 128 x 128
  // tiles, cooperative, cluster 1 x 1 (sm90_fp8_grouped_gemm_blockwise_prefill.cu says why).
  BlockwisePrefill,
};

// The config the dispatcher runs for `args` (args.fp8), by rows per expert (max_rows /
// num_experts): when any K-varying scale is given, Blockwise for <= 64 rows, else
// BlockwisePrefill; otherwise PerTensorSwapAB for <= 256 rows, else PerTensorPrefill.
// Blockwise, measured on H200 (check_sm90_fp8_grouped_gemm.cu), swap-AB vs prefill, us:
//   rows/expert:              64            128           192           256
//   E=256 N=4096 K=7168:  1955 / 2207   2500 / 2200   3496 / 3495   4479 / 3616
//   E=256 N=7168 K=2048:  1037 / 1239   1542 / 1276   2131 / 2094   2713 / 2178
//   E=128 N=1536 K=2048:   130 / 149     186 / 161     257 / 253     338 / 262
//   E=128 N=2048 K=768:     88 / 109     130 / 116     177 / 184     227 / 204
//   routed 0..256 rows (mean 128), E=256: N=4096 K=7168 3184 / 2887, N=7168 K=2048 1877 / 1661;
//   E=8 x 2048 rows, N=4096 K=7168: prefill 1208 TFLOP/s, swap-AB 891.
// Both pad an expert's rows to their row tile (64 swapped, 128 not): from 65 rows on both pad
// to 128 and the bigger tile wins. Per-tensor, measured on H200 at E=8 N=4096 K=7168:
//   8 rows/expert: swap-AB 71 us (0.78 of a D2D copy's bandwidth), prefill 152 us;
//   128: swap-AB 84 us, prefill 139 us;  256: prefill 121 us, swap-AB 136 us;
//   2048: prefill 1203 TFLOP/s, swap-AB 1007 TFLOP/s.
// The per-tensor crossover is shape-dependent: end to end on an H100, the Mixtral-8x7B FP8 preset
// (N=28672 K=4096, N=4096 K=14336) at 256 rows/expert (T=1024) took 1362 us with swap-AB vs 1520
// with prefill, and at 512 rows 2298 vs 2278; Mixtral-like shapes are the per-tensor FP8 users,
// so the cutoff is 256.
Config config_for(const GroupedGemmArgs& args);

// Scratch bytes for up to `num_experts` experts (independent of max_rows, see sm90).
size_t workspace_size(Config config, int32_t num_experts, int64_t max_rows);
size_t workspace_size(int32_t num_experts, int64_t max_rows);  // the largest config

// Whether `config` can run `args` on compute capability `sm`; when not, `why` says why.
bool supports(Config config, const GroupedGemmArgs& args, int sm, const char** why);

// Enqueues the prepare kernel and the GEMM on `stream`; returns a cudaError_t (0 = success),
// cudaErrorInvalidValue when supports() says no or scratch is too small.
int launch(Config config, const GroupedGemmArgs& args, void* stream);

const char* config_name(Config config);

}  // namespace sm90_fp8
}  // namespace cuda
}  // namespace flashinfer_moe
