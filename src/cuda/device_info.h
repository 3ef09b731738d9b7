// The current CUDA device as launchers need it: its index, compute capability and SM count; and
// whether this build can run the sm_90a kernels at all.
// One query shared by the executor (architecture checks before anything is enqueued) and the
// sm90 launchers (which size persistent grids by the SM count).
#pragma once

#include <cuda_runtime_api.h>

#include <cstring>

namespace flashinfer_moe {
namespace cuda {

struct DeviceInfo {
  int device = 0;
  int sm = 0;  // compute capability as major * 10 + minor, e.g. 90
  int sm_count = 0;
};

// Whether the library was compiled with the sm_90a target (wgmma and setmaxnreg exist only
// there): the sm90 families refuse to run otherwise.
inline bool build_has_sm90a() {
#if defined(FLASHINFER_MOE_CUDA_ARCHS_STRING)
  const char* s = FLASHINFER_MOE_CUDA_ARCHS_STRING;  // e.g. "80,90a,100a"
  while (*s) {
    const char* end = s;
    while (*end && *end != ',' && *end != ';') ++end;
    if (end - s == 3 && std::strncmp(s, "90a", 3) == 0) return true;
    s = *end ? end + 1 : end;
  }
#endif
  return false;
}

inline cudaError_t current_device_info(DeviceInfo* out) {
  int major = 0, minor = 0;
  cudaError_t err = cudaGetDevice(&out->device);
  if (err == cudaSuccess) {
    err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, out->device);
  }
  if (err == cudaSuccess) {
    err = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, out->device);
  }
  if (err == cudaSuccess) {
    err = cudaDeviceGetAttribute(&out->sm_count, cudaDevAttrMultiProcessorCount, out->device);
  }
  out->sm = major * 10 + minor;
  return err;
}

}  // namespace cuda
}  // namespace flashinfer_moe
