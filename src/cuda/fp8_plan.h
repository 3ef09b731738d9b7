// How run_cuda executes an FP8 problem (e4m3 weights): which kernel applies each scale.
//
// Host-only. From the validated problem and its workspace this builds the device views of
// fp8_operands.h for the four places scales meet data:
//   gather      quantizes GEMM1's input (or copies an e4m3 input) into codes + fp32 scales;
//   GEMM1/2     apply the scales that vary along K (activation groups, weight blocks narrower
//               than K) per K slice;
//   activation  applies GEMM1's K-constant scales, then quantizes GEMM2's input;
//   finalize    applies GEMM2's K-constant scales.
// The split is decided once here, so the GEMM families and the surrounding kernels never
// disagree about who multiplies what.
#pragma once

#include <cstdint>

#include "cuda/cuda_workspace.h"
#include "cuda/fp8_operands.h"
#include "flashinfer_moe/moe.h"

namespace flashinfer_moe {
namespace cuda {

struct Fp8GemmPlan {
  ActScales a_kscale;    // data null: A's scale is K-constant (in dequant.row_scale instead)
  WeightScales b_kscale;  // data null: B's scale is K-constant (in dequant.weight) or absent
  GemmDequant dequant;   // applied by the kernel reading the GEMM's output
};

struct Fp8Plan {
  // GEMM1's input: how the gather writes it.
  ActQuantOut gemm1_input;
  int32_t input_format = 0;  // ElemFormat of the caller's input: Float or E4M3
  WeightScales input_scale;  // an E4M3 input's scale view (expert index unused)
  const float* input_global = nullptr;
  Fp8GemmPlan gemm1, gemm2;
  ActQuantOut gemm2_input;  // how the activation kernel writes GEMM2's input
};

// Shared with the FP4 plan (fp4_plan.h):
// An F32 scalar-or-[E_local] tensor as (pointer, stride): stride 0 for one value.
const float* scalar_or_per_expert(const TensorView& v, int64_t* stride);
// The block scales of `q` (rows x cols per matrix; weights have an expert index) as a device
// view, with "whole dimension" blocks resolved.
WeightScales weight_scales_view(const QuantTensor& q, bool weights, int64_t rows, int64_t cols);
// One GEMM's split: the activation scales `a` (group a.group of K columns) and the weight scales
// `w` go into the GEMM when they vary along K, else into the dequant of its output; `global`
// (the weights' per-expert multiplier) always into the dequant.
Fp8GemmPlan split_gemm_scales(const ActScales& a, const WeightScales& w, const TensorView& global,
                              int64_t k);

// Whether run_cuda's FP8 path covers `p` (e4m3 weights); NotImplemented naming the field if not.
Status check_fp8_scope(const MoeProblem& p);

// Fills `plan` for a problem that passed check_fp8_scope, with its workspace carved. Activation
// scales are stored row-major (ActScales): every GEMM family reads that order (CUTLASS's grouped
// blockwise kernel included, see sm90_fp8_grouped_gemm.h).
void plan_fp8(const MoeProblem& p, const CudaWorkspaceLayout& ws, Fp8Plan* plan);

}  // namespace cuda
}  // namespace flashinfer_moe
