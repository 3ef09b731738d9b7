// Programmatic dependent launch (PDL) for the latency-bound decode chain: permutation -> GEMM1
// -> GEMM2 -> finalize. A kernel launched with the programmatic-stream-serialization attribute
// may start while its predecessor is still running; it must call pdl_wait() before it reads
// anything the predecessor (or any earlier kernel) wrote. pdl_wait() returns once the
// predecessor grid has completed and its memory is visible, and because every kernel of the
// chain waits before it finishes, completion is transitive down the chain. pdl_trigger() lets
// the successor's CTAs be scheduled early (they then sit in pdl_wait()).
//
// Both are no-ops on devices before sm_90 and when the kernel was launched normally, so the same
// kernels serve both launch styles; launch_kernel() picks the style. Graph capture records the
// programmatic edge (CUDA 12.3+), so captured pipelines keep the overlap.
#pragma once

#include <cuda_runtime.h>

#include <utility>

namespace flashinfer_moe {
namespace cuda {
namespace pdl {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// kernel<<<grid, block, smem, stream>>>(args...), with the PDL attribute when `programmatic`.
template <class... Params, class... Args>
cudaError_t launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                          cudaStream_t stream, bool programmatic, Args&&... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attr;
  config.numAttrs = programmatic ? 1 : 0;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

}  // namespace pdl
}  // namespace cuda
}  // namespace flashinfer_moe
