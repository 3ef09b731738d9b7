// The grouped GEMM contract shared by the CUDA pipeline and every GEMM family.
//
// One launch computes, for every local expert e and every permuted row r of that expert
// (r in [row_offsets[e], row_offsets[e + 1])):
//     C[r, n] = sum_k A[r, k] * B_e[n, k]        (fp32 accumulation, fp32 output)
// The row ranges live in device memory (the permutation kernel writes them), so the host never
// learns how many rows an expert got: kernels size their grids from `max_rows` and read the real
// ranges on the device. That keeps every launch free of host syncs and CUDA-graph capturable.
//
// Families (GemmTactic): sm80_grouped_gemm.cu (portable mma.sync + cp.async, any stride / odd
// sizes, decode and prefill tiles) and sm90_grouped_gemm.cu (CUTLASS TMA + WGMMA, K-major B,
// 16-byte aligned rows). Each family says whether it can run a given problem.
//
// Optional fusions (sm80 family only; the others reject them in grouped_gemm_supports; FP4
// weights take the gather and activation fusions only with K-slice scales):
//   a_row_index   GEMM1 reads A row a_row_index[r] / a_row_index_div straight from the caller's
//                 input instead of a gathered copy (saves the gather launch and its traffic);
//   activation    the epilogue applies bias + (gated) activation and writes the compute-dtype
//                 GEMM2 input instead of fp32 C (saves the activation launch and C's traffic);
//                 with fp8, it also applies GEMM1's K-constant dequantization and writes GEMM2's
//                 e4m3 input and scales (activation->quant) when each quantization group lies
//                 inside one CTA's columns (a static scale, MXFP8's 32);
//   schedule_prebuilt  the permutation already wrote the family's schedule into `scratch`
//                 (grouped_gemm_schedule_layout), so the GEMM launches no schedule kernel.
//   k_splits      split K: the launch writes k_splits partial sums of C (below), which the
//                 consumer adds in split order (finalize_kernel.h); decode grids too small to
//                 keep every SM streaming weights get more CTAs this way.
#pragma once

#include <cstdint>

#include "cuda/epilogue/activation_kernel.h"
#include "cuda/fp8_operands.h"
#include "flashinfer_moe/types.h"

namespace flashinfer_moe {
namespace cuda {

struct GroupedGemmArgs {
  // A: [max_rows, k] row-major with row stride lda (elements); BF16 or F16, same as B.
  const void* a = nullptr;
  int64_t lda = 0;
  DType dtype = DType::BF16;
  // B: expert e's [n, k] matrix; element (n, k) of expert e at
  //   b + e * b_stride_e + n * b_stride_n + k * b_stride_k   (elements).
  // K-major when b_stride_k == 1 (flashinfer's layout); the seed form's transposed W_out has
  // b_stride_n == 1 instead.
  const void* b = nullptr;
  int64_t b_stride_e = 0, b_stride_n = 0, b_stride_k = 0;
  // C: [max_rows, n] fp32 row-major with row stride ldc.
  float* c = nullptr;
  int64_t ldc = 0;
  int64_t n = 0, k = 0;
  int32_t num_experts = 0;               // local experts
  const int64_t* row_offsets = nullptr;  // device, [num_experts + 1], row_offsets[0] == 0
  int64_t max_rows = 0;                  // host upper bound of row_offsets[num_experts]
  // Scratch for the family's device-side schedule (tile lists, CUTLASS pointer arrays);
  // size from grouped_gemm_workspace_size().
  void* scratch = nullptr;
  size_t scratch_bytes = 0;

  // Fusions (see the top of the file); the defaults mean none.
  // Source row of A for permuted row r: a_row_index[r] / a_row_index_div (device, [max_rows];
  // e.g. the expanded slot t * k + j divided by k gives the token). A rows must be 16-byte
  // aligned (a and lda * 2 bytes).
  const int32_t* a_row_index = nullptr;
  int32_t a_row_index_div = 1;
  // GEMM1 epilogue: with n == 2 * inter (gated, rows [up ; gate]) or n == inter, writes
  // activation->a2 (fp8: activation->quant's codes and scales) as activation_kernel.h describes
  // (its c1, ldc1, row_expert, row_count and max_rows are unused) and leaves c untouched. Needs
  // K-major B.
  const ActivationParams* activation = nullptr;
  bool schedule_prebuilt = false;
  // Split K (fp32 C only, no activation fusion): split s sums K tiles [s * T, (s + 1) * T) of
  // the family's K tile, T = ceil(tiles / k_splits), into C + s * split_stride; the splits
  // together add up to C. A split with no K tile writes zeros.
  int32_t k_splits = 1;
  int64_t split_stride = 0;

  // FP8 operands (fp8_operands.h). A and B then hold e4m3 codes, one byte each (lda and the b
  // strides still count elements) and `dtype` is unused. C is the fp32 sum of code products,
  // times the scales that vary along K, per K slice s:
  //   C[r, n] = sum_s (sum_{k in s} A[r, k] B_e[n, k]) * a_kscale(r, s) * b_kscale(e, n, s)
  // a_kscale.data == nullptr means A's scale is constant along K and is not applied here (the
  // consumer applies it, GemmDequant); likewise b_kscale. When both are present their slices
  // are equal: a_kscale.group == b_kscale.block_cols.
  bool fp8 = false;
  ActScales a_kscale;
  WeightScales b_kscale;
  // FP4 weights (W4A16, sm80 family only): b_format E2M1Packed or E2M1Unpacked means B holds
  // e2m1 codes (sm80_w4a16_grouped_gemm_kernel.cuh) while A stays in `dtype`. The b strides then
  // count bytes; packed codes need b_stride_k == 1 and an even k, byte (n, k / 2) holding k (low
  // nibble) and k + 1. C is the fp32 sum of code x A products, each K slice's partial sum times
  // b_kscale (a_kscale unused): C[r, n] = sum_s (sum_{k in s} A[r, k] B_e[n, k]) b_kscale(e, n, s)
  // with slices of b_kscale.block_cols (a multiple of 16); null b_kscale.data: no scale here.
  ElemFormat b_format = ElemFormat::Float;
  // May launch programmatically dependent on the previous kernel (sm80 family, sm_90+; see
  // sm80_pdl.cuh); the other families launch normally whatever it says.
  bool pdl = false;
};

// Row tile and item capacity of the schedule `tactic` builds for (num_experts, max_rows), for a
// builder outside the family (the permutation); false when the family has no such schedule.
bool grouped_gemm_schedule_layout(GemmTactic tactic, int32_t num_experts, int64_t max_rows,
                                  int32_t* row_tile, int64_t* capacity);

// Scratch bytes a family needs for problems up to these sizes (0 is fine).
size_t grouped_gemm_workspace_size(GemmTactic tactic, int32_t num_experts, int64_t max_rows);

// Whether the family was compiled into this build and can run `args` on a device of compute
// capability `sm` (e.g. 90); when not, `why` (if given) says why in one line.
bool grouped_gemm_supports(GemmTactic tactic, const GroupedGemmArgs& args, int sm,
                           const char** why);

// The family's grid for `args` per K split: its CTAs (work-item slots x column tiles, an upper
// bound of those that find work) and how many of them an SM holds at once (for the tile without
// the fused activation). Zeros for a family that sizes its grid otherwise (sm90's persistent
// grid).
struct GridSize {
  int64_t ctas = 0;
  int ctas_per_sm = 0;
};
GridSize grouped_gemm_grid_size(GemmTactic tactic, const GroupedGemmArgs& args);

// Launches on `stream` (a cudaStream_t). Returns a CUDA error code (0 = success).
int launch_grouped_gemm(GemmTactic tactic, const GroupedGemmArgs& args, void* stream);

}  // namespace cuda
}  // namespace flashinfer_moe
