// FP8 GEMM1 with its gated epilogue on Hopper: one kernel that computes, per permuted row, the
// up and gate halves of GEMM1 with FP8 WGMMA, applies the activation (activation_kernel.cuh's
// formulas) and writes GEMM2's e4m3 input and scales (act_quant.cuh's rules). It replaces the
// CUTLASS GEMM1 + activation kernel pair of the sm90 FP8 path (GemmTactic::Sm90 with
// GroupedGemmArgs::activation set) and never writes the fp32 [rows, 2I] intermediate.
//
// Why a kernel of our own: an activation needs an intermediate column's up and gate values in
// one thread, i.e. weight rows c and I + c in one accumulator tile. CUTLASS's grouped collectives
// load B as one contiguous N range per tile; this kernel issues two TMA loads per stage (up rows
// [128 j, 128 j + 128) and gate rows [I + 128 j, ...)) into one CTA, and each consumer thread
// accumulates both, so it holds matching up and gate elements (the same fragment index).
//
// Tile: 128 rows x 128 intermediate columns, K 128 per stage (A 16 KB + two 16 KB weight
// tiles), 4 stages; a persistent grid (one CTA per SM) walks the tiles expert by expert. One
// producer warp issues the TMA loads; two consumer warpgroups each own 64 rows and run, per
// stage, an m64n128k32 e4m3 WGMMA chain for the up half and then for the gate half (their
// 192 accumulator floats per thread need setmaxnreg: the producer's warpgroup gives registers
// back). Every 128-wide K slice is accumulated on its own and added to the fp32 accumulator
// times its scales, acc += slice * (a_kscale(r, s) * b_kscale(e, n, s)): the arithmetic of
// CUTLASS's FP8 mainloops (blockwise scaling, and per-tensor promotion every four MMAs), so the
// fused and unfused paths give the same bits (tests/test_gpu_fp8.py checks it). The epilogue
// stages the fp32 tile in shared memory (over the stage buffers) and runs the activation and
// quantization a row per warp, four columns per lane.
//
// Where it is used (host/heuristics.h): it does not overlap its epilogue with its MMAs, so on an
// H100 it beats CUTLASS + the activation kernel only for long K and a few to 64 rows per expert
// (DeepSeek-V3 T = 256 / 1024, Mixtral-8x7B T = 256) and loses at 128+ rows per expert and for
// K = 2048 (docs/bench/2026-11-26-h100-sm90-fused-ab.md).
//
// Scope (supports() says why otherwise): sm_90a; gated activation with I a multiple of 128;
// FP8 quantization of GEMM2's input whose groups divide the 128-column tile (static, 1x128,
// MXFP8's 32, per token when I == 128); K-major weights with 16-byte aligned TMA strides;
// K-varying scales, if any, in 128-wide K slices with weight blocks of whole 128-row groups.
#pragma once

#include <cstdint>

#include "cuda/gemm/grouped_gemm.h"

namespace flashinfer_moe {
namespace cuda {
namespace sm90_fp8_gated {

// Whether the kernel can run `args` (GEMM1 with args.activation) on compute capability `sm`;
// when not, `why` says why in one line.
bool supports(const GroupedGemmArgs& args, int sm, const char** why);

// Enqueues the kernel on `stream`; returns a cudaError_t (0 = success), cudaErrorInvalidValue
// when supports() says no.
int launch(const GroupedGemmArgs& args, void* stream);

}  // namespace sm90_fp8_gated
}  // namespace cuda
}  // namespace flashinfer_moe
