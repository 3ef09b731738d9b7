// Workspace size query (flashinfer_moe::workspace_size).
//
// The CPU executor's layout lives in cpu/workspace_layout.h, the CUDA executor's in
// cuda/cuda_workspace.h (CUDA builds only). A CPU-only build answers CUDA queries with the CPU
// layout, an upper bound for any path that keeps its scratch in fp32 or narrower (run_cuda
// reports NotImplemented there anyway). Problems the CUDA engine does not run yet (compute_dtype
// F32, quantized operands) get the CPU layout too, so the query never fails where validate()
// passes.
#include <exception>

#include "cpu/workspace_layout.h"
#include "flashinfer_moe/moe.h"
#include "host/status.h"
#ifdef FLASHINFER_MOE_WITH_CUDA
#include "cuda/cuda_workspace.h"
#endif

namespace flashinfer_moe {

Status workspace_size(const MoeProblem& p, DeviceKind device, size_t* bytes) {
  try {
    if (bytes == nullptr) {
      return make_status(StatusCode::InvalidValue, "bytes: output pointer is null");
    }
    *bytes = 0;
    if (device != DeviceKind::CPU && device != DeviceKind::CUDA) {
      return make_status(StatusCode::InvalidValue, "device: expected CPU or CUDA, got %d",
                         static_cast<int>(device));
    }
    FIMOE_RETURN_IF_ERROR(validate(p));
#ifdef FLASHINFER_MOE_WITH_CUDA
    if (device == DeviceKind::CUDA &&
        (p.compute_dtype == DType::BF16 || p.compute_dtype == DType::F16)) {
      cuda::CudaWorkspaceLayout cuda_layout;
      cuda::plan_cuda_workspace(p, nullptr, &cuda_layout);
      *bytes = cuda_layout.bytes;
      return ok_status();
    }
#endif
    cpu::WorkspaceLayout layout;
    cpu::plan_workspace(p, nullptr, &layout);
    *bytes = layout.bytes;
    return ok_status();
  } catch (const std::exception& e) {
    return make_status(StatusCode::RuntimeFailure, "workspace_size: %s", e.what());
  }
}

}  // namespace flashinfer_moe
