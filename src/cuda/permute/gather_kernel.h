// GEMM1's input rows on the GPU: A1[r, :] = round_to_compute_dtype(input[token(r), :]).
//
// Permuted row r belongs to token permuted_to_expanded[r] / k. The input may be F32 / F16 / BF16
// with any strides; A1 is the contiguous compute-dtype (BF16 / F16) buffer of the workspace, so
// GEMM1 reads one dense matrix whatever the caller's layout. Rows at or past the kept row count
// (read on the device) are left untouched.
//
// FP8 (quant.mode an FP8 ActQuant): the float input row is quantized for the row's expert as
// docs/semantics.md says ("Activation (re)quantization"), writing e4m3 codes and fp32 scales
// (fp8_operands.h ActQuantOut) instead of `a`. An input already in e4m3 (input_format E4M3) is
// copied code for code, and each group's scale is its block scale times the optional global.
#pragma once

#include <cstdint>

#include "cuda/fp8_operands.h"

namespace flashinfer_moe {
namespace cuda {

struct GatherParams {
  const void* input = nullptr;  // [T, H]
  int32_t input_dtype = 0;      // DType: F32, F16 or BF16
  int64_t input_stride_t = 0, input_stride_h = 0;
  int64_t hidden = 0;  // H
  int32_t top_k = 0;
  const int32_t* permuted_to_expanded = nullptr;  // [max_rows]
  const int64_t* row_count = nullptr;             // device scalar (row_offsets[E_local])
  int64_t max_rows = 0;
  void* a = nullptr;    // [max_rows, lda] compute dtype, rows 16-byte aligned
  int32_t a_dtype = 0;  // DType: BF16 or F16
  int64_t lda = 0;      // multiple of 8

  // FP8 output (mode None: the compute-dtype `a` above). One block per row; see gather_kernel.cu.
  ActQuantOut quant;
  const int32_t* row_expert = nullptr;  // [max_rows] local expert per row; Fp8Static per expert
  // The input's element format (ElemFormat): Float (F32 / F16 / BF16, quantized per `quant`) or
  // E4M3 (U8 codes, copied; `quant` must be an FP8 mode and quant.scales.group the block width).
  int32_t input_format = 0;
  // E4M3 input's scale view: expert index unused (e = 0), block_rows 1, block_cols = the group;
  // data null = 1. Scale of (token t, group g) = weight_scale(input_scale, 0, t, g * group).
  WeightScales input_scale;
  const float* input_global = nullptr;  // optional scalar multiplier of an E4M3 input

  // FP4 weights with quantized activations (W4A8 / W4A4, act_widen.cuh): `a` (BF16) receives
  // the widened values and widen_row_scale[r] the row's constant factor. A Float input is
  // quantized per quant.mode (Fp8Static, MxFp8 or NvFp4 with quant.static_scale); an E4M3 or
  // E2M1Packed input (input_format) is decoded with input_scale (e4m3 / ue8m0 scales per
  // element; a float scale must span the row and joins the factor) and input_global.
  float* widen_row_scale = nullptr;  // [max_rows]
};

// Enqueues the gather on `stream` (a cudaStream_t). Returns a cudaError_t as int.
int launch_gather(const GatherParams& params, void* stream);

// The widened variant (widen_row_scale set): gather_widened_kernel.cu.
int launch_gather_widened(const GatherParams& params, void* stream);

}  // namespace cuda
}  // namespace flashinfer_moe
