// The portable grouped GEMM family: mma.sync + cp.async, sm_80 and newer (the same source builds
// for sm_80, sm_90a and sm_100a). Implements the contract of grouped_gemm.h:
//     C[r, n] = sum_k A[r, k] * B_e[n, k]   for the rows r of each local expert e,
// bf16 or fp16 inputs, fp32 accumulation and output, B K-major (b_stride_k == 1) or N-major
// (b_stride_n == 1), any n and k.
// FP8 (GroupedGemmArgs::fp8): e4m3 codes widened to fp16 in registers for the same mma.sync
// (exact; sm80_fp8_grouped_gemm_kernel.cuh), both tiles, both B layouts, any n and k, with the
// optional K-slice scales a_kscale / b_kscale (slice a multiple of 16 or all of K, equal when
// both are given). With the activation fusion it requantizes GEMM2's input in the epilogue
// (sm80_activation_epilogue.cuh); it never takes the a_row_index fusion.
//
// A launch is two kernels on the caller's stream (one when the permutation prebuilt the schedule):
// a one-CTA schedule kernel reads the device-side row ranges and writes the list of (expert,
// row tile) work items into args.scratch (sm80_schedule.cuh); the GEMM
// grid, sized on the host from max_rows and num_experts, then has one CTA per (work item, n tile)
// and CTAs past the device-side item count exit at once. No host sync, no allocation, every
// output element written by exactly one CTA with a fixed K order: capturable and deterministic.
// Fusions (grouped_gemm.h): rows gathered through a_row_index, and the GEMM1 activation epilogue
// (a CTA computing up rows [c0, c0 + BW/2) and gate rows [I + c0, I + c0 + BW/2) together).
#pragma once

#include <cstddef>
#include <cstdint>

#include "cuda/gemm/grouped_gemm.h"

namespace flashinfer_moe {
namespace cuda {
namespace sm80 {

// Decode: 16 rows x 64 columns per CTA with a deep K pipeline, weights as the MMA's M operand
// ("swap AB"): few rows per expert, bound by streaming the expert weights.
// Prefill: 128 rows x 128 columns per CTA, 8 warps: many rows per expert, bound by the MMAs.
enum class Tile { Decode, Prefill };

// Scratch bytes `launch` needs in args.scratch for up to `max_rows` rows over `num_experts`.
size_t workspace_size(Tile tile, int32_t num_experts, int64_t max_rows);

// Whether this family can run `args` on a device of compute capability `sm` (e.g. 90); when not,
// `why` (if given) points at a one-line reason (a static string).
bool supports(Tile tile, const GroupedGemmArgs& args, int sm, const char** why);

// The schedule's row tile and item capacity (sm80_schedule.cuh), for the permutation to build it
// ahead (GroupedGemmArgs::schedule_prebuilt). Returns false for an unknown tile.
bool schedule_layout(Tile tile, int32_t num_experts, int64_t max_rows, int32_t* row_tile,
                     int64_t* capacity);

// The launch's grid per K split (grouped_gemm.h GridSize).
GridSize grid_size(Tile tile, const GroupedGemmArgs& args);

// Enqueues the GEMM on `stream` (a cudaStream_t). Returns a cudaError_t as int (0 = success);
// arguments that supports() rejects give cudaErrorInvalidValue.
int launch(Tile tile, const GroupedGemmArgs& args, void* stream);

}  // namespace sm80
}  // namespace cuda
}  // namespace flashinfer_moe
