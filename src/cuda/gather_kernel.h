// GEMM1's input rows on the GPU: A1[r, :] = round_to_compute_dtype(input[token(r), :]).
//
// Permuted row r belongs to token permuted_to_expanded[r] / k. The input may be F32 / F16 / BF16
// with any strides; A1 is the contiguous compute-dtype (BF16 / F16) buffer of the workspace, so
// GEMM1 reads one dense matrix whatever the caller's layout. Rows at or past the kept row count
// (read on the device) are left untouched.
#pragma once

#include <cstdint>

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
};

// Enqueues the gather on `stream` (a cudaStream_t). Returns a cudaError_t as int.
int launch_gather(const GatherParams& params, void* stream);

}  // namespace cuda
}  // namespace flashinfer_moe
