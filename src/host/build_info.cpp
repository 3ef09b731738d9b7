// What this build of the library holds, and the CUDA entry points of a CPU-only build.
#include "flashinfer_moe/moe.h"
#include "host/status.h"

namespace flashinfer_moe {

bool built_with_cuda() {
#ifdef FLASHINFER_MOE_WITH_CUDA
  return true;
#else
  return false;
#endif
}

const char* cuda_architectures() {
#ifdef FLASHINFER_MOE_WITH_CUDA
  return FLASHINFER_MOE_CUDA_ARCHS_STRING;
#else
  return "";
#endif
}

#ifndef FLASHINFER_MOE_WITH_CUDA
Status run_cuda(const MoeProblem&, void*, size_t, void*) {
  return make_status(StatusCode::NotImplemented,
                     "flashinfer-moe was built without CUDA (no nvcc at build time); "
                     "rebuild with nvcc on PATH to run on CUDA tensors");
}
Status route_cuda(const MoeProblem&, void*) {
  return make_status(StatusCode::NotImplemented,
                     "flashinfer-moe was built without CUDA (no nvcc at build time); "
                     "rebuild with nvcc on PATH to run on CUDA tensors");
}
#endif

}  // namespace flashinfer_moe
