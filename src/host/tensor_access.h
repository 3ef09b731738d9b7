// Typed element access through non-owning strided TensorViews (host side).
//
// The executors read every float input as fp32 whatever its storage dtype, and write outputs
// rounded once to their dtype. Offsets are in elements and always int64: T * k * H can pass 2^31.
#pragma once

#include <cstdint>
#include <cstring>

#include "common/formats.h"
#include "flashinfer_moe/types.h"

namespace flashinfer_moe {

inline int64_t dtype_bytes(DType t) {
  switch (t) {
    case DType::F64:
    case DType::I64:
      return 8;
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::F16:
    case DType::BF16:
    case DType::I16:
      return 2;
    case DType::U8:
    case DType::I8:
      return 1;
    default:
      return 0;
  }
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::F64:
      return "F64";
    case DType::I32:
      return "I32";
    case DType::I64:
      return "I64";
    case DType::I16:
      return "I16";
    case DType::U8:
      return "U8";
    case DType::I8:
      return "I8";
    default:
      return "Invalid";
  }
}

inline bool is_float_dtype(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16;
}

// Element offset of a 1-, 2- or 3-index position.
inline int64_t offset_of(const TensorView& v, int64_t i0) { return i0 * v.strides[0]; }
inline int64_t offset_of(const TensorView& v, int64_t i0, int64_t i1) {
  return i0 * v.strides[0] + i1 * v.strides[1];
}
inline int64_t offset_of(const TensorView& v, int64_t i0, int64_t i1, int64_t i2) {
  return i0 * v.strides[0] + i1 * v.strides[1] + i2 * v.strides[2];
}

// Element offset of the `linear`-th element in row-major logical order (any ndim).
inline int64_t flat_offset(const TensorView& v, int64_t linear) {
  int64_t off = 0;
  for (int d = v.ndim - 1; d >= 0; --d) {
    const int64_t extent = v.shape[d] > 0 ? v.shape[d] : 1;
    off += (linear % extent) * v.strides[d];
    linear /= extent;
  }
  return off;
}

// Reads a F32 / F16 / BF16 element as fp32 (exact).
inline float load_f32(const void* base, DType t, int64_t offset) {
  switch (t) {
    case DType::F32:
      return static_cast<const float*>(base)[offset];
    case DType::F16:
      return formats::fp16_to_float(static_cast<const uint16_t*>(base)[offset]);
    case DType::BF16:
      return formats::bf16_to_float(static_cast<const uint16_t*>(base)[offset]);
    default:
      return 0.0f;  // unreachable after validation
  }
}

inline float load_f32(const TensorView& v, int64_t offset) {
  return load_f32(v.data, v.dtype, offset);
}

// Writes fp32 rounded (to nearest even) to a F32 / F16 / BF16 element.
inline void store_f32(const TensorView& v, int64_t offset, float value) {
  switch (v.dtype) {
    case DType::F32:
      static_cast<float*>(v.data)[offset] = value;
      break;
    case DType::F16:
      static_cast<uint16_t*>(v.data)[offset] = formats::float_to_fp16(value);
      break;
    case DType::BF16:
      static_cast<uint16_t*>(v.data)[offset] = formats::float_to_bf16(value);
      break;
    default:
      break;  // unreachable after validation
  }
}

inline uint8_t load_u8(const TensorView& v, int64_t offset) {
  return static_cast<const uint8_t*>(v.data)[offset];
}

inline int32_t load_i32(const TensorView& v, int64_t offset) {
  return static_cast<const int32_t*>(v.data)[offset];
}

inline void store_i32(const TensorView& v, int64_t offset, int32_t value) {
  static_cast<int32_t*>(v.data)[offset] = value;
}

// A float tensor holding either one value or one value per local expert ([E_local], any shape
// of that many elements); absent means `fallback`.
inline float load_scalar_or_per_expert(const TensorView& v, int64_t e, float fallback) {
  if (!v.present()) return fallback;
  const int64_t i = v.numel() == 1 ? 0 : e;
  return load_f32(v, flat_offset(v, i));
}

// Rounds fp32 to the precision of `t` (F32: unchanged).
inline float round_to_dtype(float x, DType t) {
  switch (t) {
    case DType::BF16:
      return formats::round_to_bf16(x);
    case DType::F16:
      return formats::round_to_fp16(x);
    default:
      return x;
  }
}

}  // namespace flashinfer_moe
