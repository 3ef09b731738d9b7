// Internal entry points of the FP8 Hopper grouped GEMM configurations (sm90_fp8_grouped_gemm.h),
// one translation unit (one CUTLASS instantiation) each, called by sm90_fp8_grouped_gemm.cu only.
//
// Each pair: the scratch bytes for `groups` experts (0 when built without CUTLASS), and a launch
// of already-validated args (supports() said yes) on `stream` with the persistent grid capped at
// `sm_count` SMs; returns a cudaError_t (cudaErrorNotSupported without CUTLASS).
#pragma once

#include <cstddef>
#include <cstdint>

#include "cuda/gemm/grouped_gemm.h"

namespace flashinfer_moe {
namespace cuda {
namespace sm90_fp8 {
namespace variants {

size_t prefill_scratch_bytes(int32_t groups);
int prefill_launch(const GroupedGemmArgs& args, void* stream, int device, int sm_count);

size_t swap_ab_scratch_bytes(int32_t groups);
int swap_ab_launch(const GroupedGemmArgs& args, void* stream, int device, int sm_count);

size_t blockwise_scratch_bytes(int32_t groups);
int blockwise_launch(const GroupedGemmArgs& args, void* stream, int device, int sm_count);

size_t blockwise_prefill_scratch_bytes(int32_t groups);
int blockwise_prefill_launch(const GroupedGemmArgs& args, void* stream, int device, int sm_count);

}  // namespace variants
}  // namespace sm90_fp8
}  // namespace cuda
}  // namespace flashinfer_moe
