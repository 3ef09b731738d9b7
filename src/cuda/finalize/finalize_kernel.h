// The last phase on the GPU: the weighted combine and the optional outputs.
//
//   finalize:        out[t, n] = sum over j = 0..k-1 (in that order) of w * (C2[r] + b2[e])[n],
//                    r = expanded_to_permuted[t, j] (skipped when -1), w = 1 with
//                    routing_weight_on_input; fp32, rounded once to the output dtype. A token
//                    with no kept slot gets zeros.
//   permuted output: permuted_output[r, n] = (C2[r] + b2[e])[n] for kept rows, 0 beyond them.
//   routing outputs: topk_ids_out, topk_weights_out, expanded_to_permuted_out (any strides).
// Each token's sum runs in one thread per column, so the order is fixed and results are
// bitwise reproducible.
//
// Split K: each C2 value is first summed from GEMM2's partials, in split order (fp32).
// FP8: with rows.dequant.active, C2 holds GEMM2's code products and every value is first
// dequantized, C2[r, n] * dequant_factor(dequant, r, e, n), then the bias is added (one rounding
// each, as above) before it enters the weighted sum or the permuted output.
#pragma once

#include <cstdint>

#include "cuda/fp8_operands.h"

namespace flashinfer_moe {
namespace cuda {

// GEMM2's output rows and the bias that finalize and the permuted output both add.
struct Gemm2Rows {
  const float* c2 = nullptr;  // [max_rows, ldc2] fp32, rows 16-byte aligned
  int64_t ldc2 = 0;           // multiple of 4
  // GEMM2 split K (grouped_gemm.h): C2 is the sum of `splits` partials, split s at
  // c2 + s * split_stride, added in split order before anything else.
  int32_t splits = 1;
  int64_t split_stride = 0;  // multiple of 4
  int64_t hidden = 0;         // H
  const int32_t* row_expert = nullptr;
  const void* bias = nullptr;  // optional [E_local, H], any float dtype
  int32_t bias_dtype = 0;
  int64_t bias_stride_e = 0, bias_stride_n = 0;
  GemmDequant dequant;  // K-constant part of GEMM2's dequantization (inactive: C2 is values)
};

struct FinalizeParams {
  Gemm2Rows rows;
  int64_t num_tokens = 0;
  int32_t top_k = 0;
  const int32_t* expanded_to_permuted = nullptr;  // [T * k]
  const float* topk_weights = nullptr;            // [T * k]
  bool weight_on_input = false;
  void* out = nullptr;    // [T, H]
  int32_t out_dtype = 0;  // DType: F32, F16 or BF16
  int64_t out_stride_t = 0, out_stride_n = 0;
  bool pdl = false;  // launch programmatically dependent on GEMM2 (sm80_pdl.cuh; sm_90+)
};

struct PermutedOutputParams {
  Gemm2Rows rows;
  int64_t num_rows = 0;                // T * k rows of the output
  const int64_t* row_count = nullptr;  // device scalar: kept rows
  float* out = nullptr;
  int64_t out_stride_r = 0, out_stride_n = 0;
};

struct RoutingOutputsParams {
  int64_t num_tokens = 0;
  int32_t top_k = 0;
  const int32_t* topk_ids = nullptr;              // [T * k]
  const float* topk_weights = nullptr;            // [T * k]
  const int32_t* expanded_to_permuted = nullptr;  // [T * k]
  int32_t* ids_out = nullptr;                     // each optional (null: not written)
  int64_t ids_stride_t = 0, ids_stride_k = 0;
  float* weights_out = nullptr;
  int64_t weights_stride_t = 0, weights_stride_k = 0;
  int32_t* permutation_out = nullptr;
  int64_t permutation_stride_t = 0, permutation_stride_k = 0;
};

// Each enqueues one kernel on `stream` (a cudaStream_t) and returns a cudaError_t as int.
int launch_finalize(const FinalizeParams& params, void* stream);
int launch_permuted_output(const PermutedOutputParams& params, void* stream);
int launch_routing_outputs(const RoutingOutputsParams& params, void* stream);

}  // namespace cuda
}  // namespace flashinfer_moe
