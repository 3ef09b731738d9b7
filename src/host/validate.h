// Internal validation entry points beyond the public `validate` (flashinfer_moe/moe.h).
#pragma once

#include "flashinfer_moe/moe.h"

namespace flashinfer_moe {

// What route_cpu / route_cuda need: the problem sizes, the routing spec and the two required
// routing outputs (topk_ids_out, topk_weights_out). Weights and activations are not looked at.
Status validate_routing_only(const MoeProblem& p);

// InvalidValue naming the first tensor of `p` that does not live on `device` (after validation
// all tensors share one device, so this names the first one).
Status check_device(const MoeProblem& p, DeviceKind device, bool routing_only);

}  // namespace flashinfer_moe
