// The W4A16 launches of the portable grouped GEMM family (sm80_w4a16_grouped_gemm_kernel.cuh),
// one translation unit per tile shape so that they compile in parallel. sm80_grouped_gemm.cu
// checks the arguments and builds the schedule before calling these.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/gemm/grouped_gemm.h"

namespace flashinfer_moe {
namespace cuda {
namespace sm80 {

// Launch the decode / prefill W4A16 kernel for `a` (b_format E2M1*) over `capacity` work items.
cudaError_t launch_w4a16_decode(const GroupedGemmArgs& a, int64_t capacity, cudaStream_t stream);
cudaError_t launch_w4a16_prefill(const GroupedGemmArgs& a, int64_t capacity, cudaStream_t stream);

}  // namespace sm80
}  // namespace cuda
}  // namespace flashinfer_moe
