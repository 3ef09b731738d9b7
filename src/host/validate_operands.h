// Operand-level checks shared by the validation of a MoeProblem (host/validate.cpp). Each returns
// a Status whose message starts with the field path `name` and says expected vs got.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "flashinfer_moe/moe.h"

namespace flashinfer_moe {
namespace validation {

// Exact shape `dims` (described by `labels`, e.g. "(E_local, M1, H)") and a non-null pointer.
Status check_shape(const std::string& name, const TensorView& v,
                   std::initializer_list<int64_t> dims, const char* labels);

// F32, F16 or BF16 storage (InvalidType otherwise).
Status check_float_dtype(const std::string& name, const TensorView& v);

// Exactly `want` (InvalidType otherwise); `why` is appended to the expectation.
Status check_dtype(const std::string& name, const TensorView& v, DType want, const char* why);

// F32 with 1 element, or `n` elements when n > 0 (a per-expert vector of any shape).
Status check_f32_scalar_or(const std::string& name, const TensorView& v, int64_t n,
                           const char* n_label);

// One operand: weights (data [E, rows, cols(/2)], scale [E, rb, cb]) or activations
// (data [rows, cols(/2)], scale [rb, cb]); `row_label` / `col_label` name the dimensions.
Status check_quant(const std::string& prefix, const QuantTensor& q, bool weights, int64_t E,
                   int64_t rows, int64_t cols, const char* row_label, const char* col_label);

// Mode, group size and static scale (required for Fp8Static and NvFp4; 1 or E_local values).
Status check_act_quant(const std::string& name, const ActQuantSpec& a, int64_t E_local);

}  // namespace validation
}  // namespace flashinfer_moe
