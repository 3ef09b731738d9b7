// The routing kernel's launcher (one kernel for every RoutingMethodType).
// Its arithmetic lives in common/routing_math.h, shared with the CPU executor so that both
// give bit-identical routing.
#pragma once

#include <cstdint>

#include "common/routing_math.h"

namespace flashinfer_moe {

// ---- the launcher ------------------------------------------------------------------------------

// Largest routing width and top-k the kernel supports (flashinfer's custom-routing limits).
constexpr int kRoutingMaxExperts = 2048;
constexpr int kRoutingMaxTopK = 32;

// Everything the kernel reads, flattened from a validated MoeProblem. Pointers are device
// pointers; strides are in elements. `logits` is null for precomputed routing.
struct RoutingKernelParams {
  int32_t method = 0;  // RoutingMethod
  int64_t num_tokens = 0;
  int32_t num_experts = 0;
  int32_t top_k = 0;
  // From logits.
  const void* logits = nullptr;
  int32_t logits_dtype = 0;  // DType
  int64_t logits_stride_t = 0, logits_stride_e = 0;
  const void* bias = nullptr;  // optional
  int32_t bias_dtype = 0;
  int64_t bias_stride = 0;
  int32_t n_group = 0;
  int32_t topk_group = 0;
  float routed_scaling_factor = 1.0f;
  bool norm_topk_prob = true;
  // Precomputed.
  const int32_t* topk_ids = nullptr;
  int64_t ids_stride_t = 0, ids_stride_k = 0;
  const void* topk_weights = nullptr;  // absent with `packed`
  int32_t weights_dtype = 0;
  int64_t weights_stride_t = 0, weights_stride_k = 0;
  bool packed = false;
  // Outputs.
  int32_t* ids_out = nullptr;
  int64_t ids_out_stride_t = 0, ids_out_stride_k = 0;
  float* weights_out = nullptr;
  int64_t weights_out_stride_t = 0, weights_out_stride_k = 0;
};

// Enqueues the routing kernel on `stream` (a cudaStream_t). Returns the cudaError_t of the launch
// as an int (0 = success); never synchronizes and allocates nothing (CUDA-graph capturable).
int launch_routing_kernel(const RoutingKernelParams& params, void* stream);

}  // namespace flashinfer_moe
