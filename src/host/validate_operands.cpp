// Validation of single operands: shape and dtype checks with readable messages, and the checks
// of one QuantTensor (data, block scales in either layout, global scale) or one ActQuantSpec.
// Used by validate.cpp; never touches tensor data.
#include "host/validate_operands.h"

#include <cstdio>
#include <string>

#include "common/formats.h"
#include "host/status.h"
#include "host/tensor_access.h"

namespace flashinfer_moe {
namespace validation {
namespace {

std::string shape_string(const TensorView& v) {
  std::string s = "[";
  for (int i = 0; i < v.ndim; ++i) {
    if (i) s += ", ";
    s += std::to_string(v.shape[i]);
  }
  return s + "]";
}

std::string dims_string(std::initializer_list<int64_t> dims) {
  std::string s = "[";
  bool first = true;
  for (int64_t d : dims) {
    if (!first) s += ", ";
    s += std::to_string(d);
    first = false;
  }
  return s + "]";
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Number of blocks of size `block` along a dimension of `n` (block 0 = the whole dimension).
int64_t num_blocks(int64_t n, int64_t block) { return block == 0 ? 1 : ceil_div(n, block); }

bool is_row_major_contiguous(const TensorView& v) {
  int64_t expected = 1;
  for (int d = v.ndim - 1; d >= 0; --d) {
    if (v.shape[d] != 1 && v.strides[d] != expected) return false;
    expected *= v.shape[d];
  }
  return true;
}

// One quantized operand. Weights: data [E, rows, cols(/2)], scale [E, rb, cb]; activations:
// data [rows, cols(/2)], scale [rb, cb]. `labels` name rows and cols ("M1", "H").

}  // namespace

Status check_shape(const std::string& name, const TensorView& v,
                   std::initializer_list<int64_t> dims, const char* labels) {
  bool match = v.ndim == static_cast<int32_t>(dims.size());
  int i = 0;
  for (int64_t d : dims) {
    if (match && v.shape[i] != d) match = false;
    ++i;
  }
  if (!match) {
    return make_status(StatusCode::InvalidValue, "%s: expected shape %s %s, got %s", name.c_str(),
                       dims_string(dims).c_str(), labels, shape_string(v).c_str());
  }
  if (v.data == nullptr && v.numel() > 0) {
    return make_status(StatusCode::InvalidValue, "%s: data pointer is null", name.c_str());
  }
  return ok_status();
}

Status check_float_dtype(const std::string& name, const TensorView& v) {
  if (!is_float_dtype(v.dtype)) {
    return make_status(StatusCode::InvalidType, "%s: expected dtype F32, F16 or BF16, got %s",
                       name.c_str(), dtype_name(v.dtype));
  }
  return ok_status();
}

Status check_dtype(const std::string& name, const TensorView& v, DType want, const char* why) {
  if (v.dtype != want) {
    return make_status(StatusCode::InvalidType, "%s: expected dtype %s%s, got %s", name.c_str(),
                       dtype_name(want), why, dtype_name(v.dtype));
  }
  return ok_status();
}

// F32 with 1 element, or `n` elements when n > 0 (a per-expert vector, any shape).
Status check_f32_scalar_or(const std::string& name, const TensorView& v, int64_t n,
                           const char* n_label) {
  FIMOE_RETURN_IF_ERROR(check_dtype(name, v, DType::F32, ""));
  const int64_t numel = v.numel();
  if (numel != 1 && !(n > 0 && numel == n)) {
    if (n > 0) {
      return make_status(StatusCode::InvalidValue, "%s: expected 1 or %s=%lld elements, got %lld",
                         name.c_str(), n_label, static_cast<long long>(n),
                         static_cast<long long>(numel));
    }
    return make_status(StatusCode::InvalidValue, "%s: expected 1 element, got %lld", name.c_str(),
                       static_cast<long long>(numel));
  }
  if (v.data == nullptr) {
    return make_status(StatusCode::InvalidValue, "%s: data pointer is null", name.c_str());
  }
  return ok_status();
}

Status check_quant(const std::string& prefix, const QuantTensor& q, bool weights, int64_t E,
                   int64_t rows, int64_t cols, const char* row_label, const char* col_label) {
  const std::string data = prefix + ".data";
  const int fmt = static_cast<int>(q.format);
  if (fmt < 0 || fmt > static_cast<int>(ElemFormat::Int4Packed)) {
    return make_status(StatusCode::InvalidValue, "%s.format: invalid ElemFormat value %d",
                       prefix.c_str(), fmt);
  }
  if (!q.data.present()) {
    return make_status(StatusCode::InvalidValue, "%s: is required", data.c_str());
  }
  const bool packed = q.format == ElemFormat::E2M1Packed || q.format == ElemFormat::Int4Packed;
  if (packed && cols % 2 != 0) {
    return make_status(StatusCode::InvalidValue, "%s: %s needs an even %s, got %s=%lld",
                       data.c_str(),
                       q.format == ElemFormat::Int4Packed ? "Int4Packed" : "E2M1Packed", col_label,
                       col_label, static_cast<long long>(cols));
  }
  const int64_t stored_cols = packed ? cols / 2 : cols;
  const std::string labels =
      weights ? std::string("(E_local, ") + row_label + ", " + col_label + (packed ? "/2)" : ")")
              : std::string("(") + row_label + ", " + col_label + (packed ? "/2)" : ")");
  if (weights) {
    FIMOE_RETURN_IF_ERROR(check_shape(data, q.data, {E, rows, stored_cols}, labels.c_str()));
  } else {
    FIMOE_RETURN_IF_ERROR(check_shape(data, q.data, {rows, stored_cols}, labels.c_str()));
  }
  if (q.format == ElemFormat::Float) {
    FIMOE_RETURN_IF_ERROR(check_float_dtype(data, q.data));
  } else {
    FIMOE_RETURN_IF_ERROR(check_dtype(data, q.data, DType::U8, " for a quantized format"));
  }

  if (q.scale.present()) {
    const std::string scale = prefix + ".scale";
    const int sf = static_cast<int>(q.scale_format);
    const int sl = static_cast<int>(q.scale_layout);
    if (sf < 0 || sf > static_cast<int>(ScaleFormat::UE8M0)) {
      return make_status(StatusCode::InvalidValue, "%s.scale_format: invalid value %d",
                         prefix.c_str(), sf);
    }
    if (sl < 0 || sl > static_cast<int>(ScaleLayout::Swizzled128x4)) {
      return make_status(StatusCode::InvalidValue, "%s.scale_layout: invalid value %d",
                         prefix.c_str(), sl);
    }
    if (q.block_rows < 0 || q.block_cols < 0) {
      return make_status(StatusCode::InvalidValue,
                         "%s: block_rows and block_cols must be >= 0, got %lld and %lld",
                         prefix.c_str(), static_cast<long long>(q.block_rows),
                         static_cast<long long>(q.block_cols));
    }
    if (q.scale_format == ScaleFormat::Float) {
      FIMOE_RETURN_IF_ERROR(check_float_dtype(scale, q.scale));
    } else {
      FIMOE_RETURN_IF_ERROR(check_dtype(scale, q.scale, DType::U8, " for E4M3 / UE8M0 scales"));
    }
    const int64_t rb = num_blocks(rows, q.block_rows);
    const int64_t cb = num_blocks(cols, q.block_cols);
    if (q.scale_layout == ScaleLayout::Linear) {
      const std::string sl_labels = std::string("(") + (weights ? "E_local, " : "") + "ceil(" +
                                    row_label + "/block_rows), ceil(" + col_label + "/block_cols))";
      if (weights) {
        FIMOE_RETURN_IF_ERROR(check_shape(scale, q.scale, {E, rb, cb}, sl_labels.c_str()));
      } else {
        FIMOE_RETURN_IF_ERROR(check_shape(scale, q.scale, {rb, cb}, sl_labels.c_str()));
      }
    } else {
      if (q.scale.dtype != DType::U8) {
        return make_status(StatusCode::InvalidType,
                           "%s: the Swizzled128x4 layout needs U8 (E4M3 / UE8M0) scales, got %s",
                           scale.c_str(), dtype_name(q.scale.dtype));
      }
      if (!is_row_major_contiguous(q.scale)) {
        return make_status(StatusCode::InvalidValue,
                           "%s: a Swizzled128x4 scale buffer must be contiguous", scale.c_str());
      }
      const int64_t need = (weights ? E : 1) * formats::swizzled_matrix_bytes(rb, cb);
      if (q.scale.numel() < need || q.scale.data == nullptr) {
        return make_status(StatusCode::InvalidValue,
                           "%s: Swizzled128x4 buffer needs at least %lld bytes "
                           "(%s%lld x %lld scales padded to 128x4 tiles), got %lld",
                           scale.c_str(), static_cast<long long>(need), weights ? "E_local x " : "",
                           static_cast<long long>(rb), static_cast<long long>(cb),
                           static_cast<long long>(q.scale.numel()));
      }
    }
  }
  if (q.global_scale.present()) {
    FIMOE_RETURN_IF_ERROR(
        check_f32_scalar_or(prefix + ".global_scale", q.global_scale, weights ? E : 0, "E_local"));
  }
  return ok_status();
}

Status check_act_quant(const std::string& name, const ActQuantSpec& a, int64_t E_local) {
  const int mode = static_cast<int>(a.mode);
  if (mode < 0 || mode > static_cast<int>(ActQuant::NvFp4)) {
    return make_status(StatusCode::InvalidValue, "%s.mode: invalid ActQuant value %d", name.c_str(),
                       mode);
  }
  if (a.mode == ActQuant::Fp8PerGroup && a.group_size < 1) {
    return make_status(StatusCode::InvalidValue, "%s.group_size: must be >= 1, got %lld",
                       name.c_str(), static_cast<long long>(a.group_size));
  }
  const bool needs_static = a.mode == ActQuant::Fp8Static || a.mode == ActQuant::NvFp4;
  if (needs_static && !a.static_scale.present()) {
    return make_status(StatusCode::InvalidValue, "%s.static_scale: required for mode %s",
                       name.c_str(), a.mode == ActQuant::NvFp4 ? "NvFp4" : "Fp8Static");
  }
  if (a.static_scale.present() && a.mode != ActQuant::None) {
    FIMOE_RETURN_IF_ERROR(
        check_f32_scalar_or(name + ".static_scale", a.static_scale, E_local, "E_local"));
  }
  return ok_status();
}

}  // namespace validation
}  // namespace flashinfer_moe
