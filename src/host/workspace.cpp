// Workspace size query (flashinfer_moe::workspace_size).
//
// The CPU executor's layout lives in cpu/workspace_layout.h. A CUDA build uses the same
// worst-case layout (routing results, maps and fp32 GEMM rows for all T*k slots) as its size,
// which is an upper bound for any kernel path that keeps its scratch in fp32 or narrower.
#include <exception>

#include "cpu/workspace_layout.h"
#include "flashinfer_moe/moe.h"
#include "host/status.h"

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
    cpu::WorkspaceLayout layout;
    cpu::plan_workspace(p, nullptr, &layout);
    *bytes = layout.bytes;
    return ok_status();
  } catch (const std::exception& e) {
    return make_status(StatusCode::RuntimeFailure, "workspace_size: %s", e.what());
  }
}

}  // namespace flashinfer_moe
