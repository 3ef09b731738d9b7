// Decoding one row of a (possibly quantized) tensor to fp32, for every format and layout.
#include "cpu/dequant.h"

#include <algorithm>

#include "common/formats.h"
#include "host/tensor_access.h"

namespace flashinfer_moe {
namespace cpu {

QuantRowDecoder::QuantRowDecoder(const QuantTensor& q, bool has_expert_dim, int64_t rows,
                                 int64_t cols)
    : q_(q), has_expert_dim_(has_expert_dim), cols_(cols) {
  block_rows_ = q.block_rows > 0 ? q.block_rows : std::max<int64_t>(1, rows);
  block_cols_ = q.block_cols > 0 ? q.block_cols : std::max<int64_t>(1, cols);
  const int64_t scale_rows = (rows + block_rows_ - 1) / block_rows_;
  swizzle_cols_ = (cols + block_cols_ - 1) / block_cols_;
  swizzle_matrix_ = formats::swizzled_matrix_bytes(scale_rows, swizzle_cols_);
}

void QuantRowDecoder::decode_elements(int64_t e, int64_t r, float* out) const {
  const TensorView& d = q_.data;
  const int64_t row_off = has_expert_dim_ ? offset_of(d, e, r, 0) : offset_of(d, r, 0);
  const int64_t cs = d.strides[d.ndim - 1];
  switch (q_.format) {
    case ElemFormat::Float:
      if (d.dtype == DType::F32) {
        const float* p = static_cast<const float*>(d.data) + row_off;
        for (int64_t c = 0; c < cols_; ++c) out[c] = p[c * cs];
      } else {
        const uint16_t* p = static_cast<const uint16_t*>(d.data) + row_off;
        if (d.dtype == DType::BF16) {
          for (int64_t c = 0; c < cols_; ++c) out[c] = formats::bf16_to_float(p[c * cs]);
        } else {
          for (int64_t c = 0; c < cols_; ++c) out[c] = formats::fp16_to_float(p[c * cs]);
        }
      }
      break;
    case ElemFormat::E4M3: {
      const uint8_t* p = static_cast<const uint8_t*>(d.data) + row_off;
      for (int64_t c = 0; c < cols_; ++c) out[c] = formats::e4m3_to_float(p[c * cs]);
      break;
    }
    case ElemFormat::E2M1Packed: {
      // Low nibble = even element.
      const uint8_t* p = static_cast<const uint8_t*>(d.data) + row_off;
      for (int64_t c = 0; c < cols_; ++c) {
        const uint8_t byte = p[(c / 2) * cs];
        out[c] = formats::e2m1_to_float((c & 1) ? (byte >> 4) : (byte & 0xF));
      }
      break;
    }
    case ElemFormat::E2M1Unpacked: {
      const uint8_t* p = static_cast<const uint8_t*>(d.data) + row_off;
      for (int64_t c = 0; c < cols_; ++c) out[c] = formats::e2m1_to_float(p[c * cs] & 0xF);
      break;
    }
    case ElemFormat::Int4Packed: {
      // Low nibble = even element, each a two's complement int4 (-8..7).
      const uint8_t* p = static_cast<const uint8_t*>(d.data) + row_off;
      for (int64_t c = 0; c < cols_; ++c) {
        const uint8_t byte = p[(c / 2) * cs];
        out[c] = formats::int4_to_float((c & 1) ? (byte >> 4) : byte);
      }
      break;
    }
  }
}

float QuantRowDecoder::scale_at(int64_t e, int64_t row_block, int64_t col_block) const {
  const TensorView& s = q_.scale;
  if (q_.scale_layout == ScaleLayout::Swizzled128x4) {
    const int64_t matrix = has_expert_dim_ ? e : 0;
    const uint8_t b = static_cast<const uint8_t*>(
        s.data)[matrix * swizzle_matrix_ +
                formats::swizzled_128x4_offset(row_block, col_block, swizzle_cols_)];
    return q_.scale_format == ScaleFormat::UE8M0 ? formats::ue8m0_to_float(b)
                                                 : formats::e4m3_to_float(b);
  }
  const int64_t off =
      has_expert_dim_ ? offset_of(s, e, row_block, col_block) : offset_of(s, row_block, col_block);
  switch (q_.scale_format) {
    case ScaleFormat::E4M3:
      return formats::e4m3_to_float(load_u8(s, off));
    case ScaleFormat::UE8M0:
      return formats::ue8m0_to_float(load_u8(s, off));
    default:
      return load_f32(s, off);
  }
}

void QuantRowDecoder::decode_row(int64_t e, int64_t r, float* out) const {
  decode_elements(e, r, out);
  if (q_.scale.present()) {
    const int64_t row_block = r / block_rows_;
    for (int64_t c0 = 0; c0 < cols_; c0 += block_cols_) {
      const float s = scale_at(e, row_block, c0 / block_cols_);
      const int64_t c1 = std::min(cols_, c0 + block_cols_);
      for (int64_t c = c0; c < c1; ++c) out[c] = out[c] * s;
    }
  }
  if (q_.global_scale.present()) {
    const float g = load_scalar_or_per_expert(q_.global_scale, has_expert_dim_ ? e : 0, 1.0f);
    for (int64_t c = 0; c < cols_; ++c) out[c] = out[c] * g;
  }
}

}  // namespace cpu
}  // namespace flashinfer_moe
