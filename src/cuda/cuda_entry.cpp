// route_cuda (the routing kernel alone) and the routing helpers run_cuda shares with it.
//
// Host code only: it validates the problem, checks that every tensor lives on the current CUDA
// device, flattens the problem into RoutingKernelParams and enqueues the kernel on the caller's
// stream. It never reads device memory, allocates nothing and never synchronizes, so a call can
// be captured into a CUDA graph. run_cuda lives in cuda_executor.cpp. (A CPU-only build gets both
// entry points from build_info.cpp.)
#include <cuda_runtime_api.h>

#include "cuda/routing/routing_entry.h"
#include "cuda/routing/routing_kernel.h"
#include "flashinfer_moe/moe.h"
#include "host/status.h"
#include "host/validate.h"

namespace flashinfer_moe {
namespace cuda {

struct NamedTensor {
  const char* name;
  const TensorView* view;
};

// Every tensor routing touches must be on the device that is current for the calling thread
// (the stream belongs to it): a kernel would otherwise fault or read another card's memory.
// validate() has checked that all tensors share one device, so the routing tensors (one of which
// is always present) stand for every tensor of the problem.
Status check_on_current_device(const MoeProblem& p, const char* caller) {
  int current = 0;
  const cudaError_t err = cudaGetDevice(&current);
  if (err != cudaSuccess) {
    return make_status(StatusCode::RuntimeFailure, "%s: cudaGetDevice failed: %s", caller,
                       cudaGetErrorString(err));
  }
  const NamedTensor tensors[] = {
      {"routing.logits", &p.routing.logits},     {"routing.bias", &p.routing.bias},
      {"routing.topk_ids", &p.routing.topk_ids}, {"routing.topk_weights", &p.routing.topk_weights},
      {"topk_ids_out", &p.topk_ids_out},         {"topk_weights_out", &p.topk_weights_out},
  };
  for (const NamedTensor& t : tensors) {
    if (!t.view->present()) continue;
    if (t.view->device != DeviceKind::CUDA || t.view->device_id != current) {
      return make_status(StatusCode::InvalidValue,
                         "%s: expected a tensor on the current CUDA device cuda:%d, got %s:%d",
                         t.name, current, t.view->device == DeviceKind::CUDA ? "cuda" : "cpu",
                         t.view->device_id);
    }
  }
  return ok_status();
}

// Limits of the routing kernel beyond what validate() checks.
Status check_routing_kernel_limits(const MoeProblem& p) {
  if (p.top_k > kRoutingMaxTopK) {
    return make_status(StatusCode::InvalidValue,
                       "top_k: the CUDA routing kernel supports at most %d, got %d",
                       kRoutingMaxTopK, p.top_k);
  }
  const bool from_logits = p.routing.logits.present();
  if (from_logits && p.num_experts > kRoutingMaxExperts) {
    return make_status(StatusCode::InvalidValue,
                       "num_experts: the CUDA routing kernel supports at most %d experts when "
                       "routing from logits, got %d",
                       kRoutingMaxExperts, p.num_experts);
  }
  return ok_status();
}

// The routing kernel's parameters for `p`, writing to topk_ids_out / topk_weights_out (run_cuda
// points the outputs at its workspace instead).
RoutingKernelParams routing_kernel_params(const MoeProblem& p) {
  const RoutingSpec& r = p.routing;
  RoutingKernelParams k;
  k.method = static_cast<int32_t>(r.method);
  k.num_tokens = p.num_tokens;
  k.num_experts = p.num_experts;
  k.top_k = p.top_k;
  if (r.logits.present()) {
    k.logits = r.logits.data;
    k.logits_dtype = static_cast<int32_t>(r.logits.dtype);
    k.logits_stride_t = r.logits.strides[0];
    k.logits_stride_e = r.logits.strides[1];
    if (r.bias.present()) {
      k.bias = r.bias.data;
      k.bias_dtype = static_cast<int32_t>(r.bias.dtype);
      k.bias_stride = r.bias.strides[0];
    }
    k.n_group = r.n_group;
    k.topk_group = r.topk_group;
    k.routed_scaling_factor = r.routed_scaling_factor;
    k.norm_topk_prob = r.norm_topk_prob;
  } else {
    k.topk_ids = static_cast<const int32_t*>(r.topk_ids.data);
    k.ids_stride_t = r.topk_ids.strides[0];
    k.ids_stride_k = r.topk_ids.strides[1];
    k.packed = r.packed;
    if (!r.packed) {
      k.topk_weights = r.topk_weights.data;
      k.weights_dtype = static_cast<int32_t>(r.topk_weights.dtype);
      k.weights_stride_t = r.topk_weights.strides[0];
      k.weights_stride_k = r.topk_weights.strides[1];
    }
  }
  k.ids_out = static_cast<int32_t*>(p.topk_ids_out.data);
  k.ids_out_stride_t = p.topk_ids_out.strides[0];
  k.ids_out_stride_k = p.topk_ids_out.strides[1];
  k.weights_out = static_cast<float*>(p.topk_weights_out.data);
  k.weights_out_stride_t = p.topk_weights_out.strides[0];
  k.weights_out_stride_k = p.topk_weights_out.strides[1];
  return k;
}

}  // namespace cuda

Status route_cuda(const MoeProblem& p, void* stream) {
  FIMOE_RETURN_IF_ERROR(validate_routing_only(p));
  FIMOE_RETURN_IF_ERROR(check_device(p, DeviceKind::CUDA, /*routing_only=*/true));
  FIMOE_RETURN_IF_ERROR(cuda::check_on_current_device(p, "route_cuda"));
  FIMOE_RETURN_IF_ERROR(cuda::check_routing_kernel_limits(p));
  if (p.num_tokens == 0) return ok_status();
  const int err = launch_routing_kernel(cuda::routing_kernel_params(p), stream);
  if (err != static_cast<int>(cudaSuccess)) {
    return make_status(StatusCode::RuntimeFailure, "route_cuda: routing kernel launch failed: %s",
                       cudaGetErrorString(static_cast<cudaError_t>(err)));
  }
  return ok_status();
}

}  // namespace flashinfer_moe
