// Activation (re)quantization of one row (docs/semantics.md "Activation (re)quantization").
#pragma once

#include <cstdint>

#include "flashinfer_moe/types.h"

namespace flashinfer_moe {
namespace cpu {

// Replaces row[0, K) by its quantize-dequantize value under `mode`. `static_scale` is the
// resolved static scale of this row's expert (Fp8Static: s; NvFp4: the global g), `group_size`
// is used by Fp8PerGroup and `compute_dtype` by None.
void quantize_row(ActQuant mode, int64_t group_size, float static_scale, DType compute_dtype,
                  float* row, int64_t K);

}  // namespace cpu
}  // namespace flashinfer_moe
