// The current CUDA device as launchers need it: its index, compute capability and SM count.
// One query shared by the executor (architecture checks before anything is enqueued) and the
// sm90 launchers (which size persistent grids by the SM count).
#pragma once

#include <cuda_runtime_api.h>

namespace flashinfer_moe {
namespace cuda {

struct DeviceInfo {
  int device = 0;
  int sm = 0;  // compute capability as major * 10 + minor, e.g. 90
  int sm_count = 0;
};

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
