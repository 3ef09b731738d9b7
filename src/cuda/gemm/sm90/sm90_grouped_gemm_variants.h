// Internal entry points of the Hopper grouped GEMM configurations that live in their own
// translation units (one CUTLASS instantiation each), called by sm90_grouped_gemm.cu only.
//
// Each pair: the scratch bytes for `groups` experts (0 when built without CUTLASS), and a launch
// of already-validated args (sm90::supports() said yes) on `stream` with the persistent grid
// capped at `sm_count` SMs; returns a cudaError_t (cudaErrorNotSupported without CUTLASS).
#pragma once

#include <cstddef>
#include <cstdint>

#include "cuda/gemm/grouped_gemm.h"

namespace flashinfer_moe {
namespace cuda {
namespace sm90 {
namespace variants {

size_t swap_ab_bf16_scratch_bytes(int32_t groups);
int swap_ab_bf16_launch(const GroupedGemmArgs& args, void* stream, int device, int sm_count);

size_t swap_ab_wide_bf16_scratch_bytes(int32_t groups);
int swap_ab_wide_bf16_launch(const GroupedGemmArgs& args, void* stream, int device, int sm_count);

}  // namespace variants
}  // namespace sm90
}  // namespace cuda
}  // namespace flashinfer_moe
