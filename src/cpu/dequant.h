// Decoding rows of a QuantTensor to fp32 (docs/semantics.md "Dequantized tensors").
#pragma once

#include <cstdint>

#include "flashinfer_moe/types.h"

namespace flashinfer_moe {
namespace cpu {

// Reads rows of a weight stack [E, rows, cols] (has_expert_dim) or an activation matrix
// [rows, cols] in any element format, scale format and scale layout, with any data strides.
// `cols` is the logical K (twice the stored width for E2M1Packed).
class QuantRowDecoder {
 public:
  QuantRowDecoder(const QuantTensor& q, bool has_expert_dim, int64_t rows, int64_t cols);

  // out[c] = (decode(data[e, r, c]) * scale[e, r / br, c / bc]) * global[e], c in [0, cols).
  // `e` is ignored for activations.
  void decode_row(int64_t e, int64_t r, float* out) const;

 private:
  void decode_elements(int64_t e, int64_t r, float* out) const;
  float scale_at(int64_t e, int64_t row_block, int64_t col_block) const;

  const QuantTensor& q_;
  bool has_expert_dim_;
  int64_t cols_;
  int64_t block_rows_, block_cols_;        // effective (0 replaced by the whole dimension)
  int64_t swizzle_cols_, swizzle_matrix_;  // scale columns, bytes per matrix (swizzled only)
};

}  // namespace cpu
}  // namespace flashinfer_moe
