// Host helpers of the CUDA entry points (defined in cuda_entry.cpp), shared by route_cuda and
// run_cuda (cuda_executor.cpp).
#pragma once

#include "cuda/routing/routing_kernel.h"
#include "flashinfer_moe/moe.h"

namespace flashinfer_moe {
namespace cuda {

// Every tensor of `p` is on the CUDA device that is current; `caller` names the entry point.
Status check_on_current_device(const MoeProblem& p, const char* caller);
// top_k and the routing width within what the routing kernel supports.
Status check_routing_kernel_limits(const MoeProblem& p);
// The routing kernel's parameters, flattened from a validated problem.
RoutingKernelParams routing_kernel_params(const MoeProblem& p);

}  // namespace cuda
}  // namespace flashinfer_moe
