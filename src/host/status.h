// Internal helpers to build a Status with a printf-style message naming the argument.
#pragma once

#include <cstdarg>
#include <cstdio>

#include "flashinfer_moe/types.h"

namespace flashinfer_moe {

inline Status make_status(StatusCode code, const char* fmt, ...) {
  Status s;
  s.code = code;
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(s.message, sizeof(s.message), fmt, args);
  va_end(args);
  return s;
}

inline Status ok_status() { return Status{}; }

// Returns from the enclosing function when `expr` yields a non-Ok Status.
#define FIMOE_RETURN_IF_ERROR(expr)       \
  do {                                    \
    ::flashinfer_moe::Status _s = (expr); \
    if (!_s.ok()) return _s;              \
  } while (0)

}  // namespace flashinfer_moe
