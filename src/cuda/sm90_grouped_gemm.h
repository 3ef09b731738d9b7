// The Hopper grouped GEMM family (GemmTactic::Sm90Prefill): CUTLASS sm90 TMA + WGMMA,
// warp-specialized cooperative pointer-array kernel, for bf16/fp16 A and K-major B, fp32 C.
//
// Contract: src/cuda/grouped_gemm.h (GroupedGemmArgs). Everything the kernel needs per expert
// (problem shape, A/B/D pointers and strides) is written on the device by a small prepare kernel
// from `row_offsets`, into `scratch`, followed by CUTLASS's own workspace (per-SM TMA
// descriptors). CUTLASS gets no host problem shapes, so nothing is read back to the host: the
// launch is free of host syncs and allocations and can be captured into a CUDA graph.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cuda/grouped_gemm.h"

namespace flashinfer_moe {
namespace cuda {
namespace sm90 {

// Scratch bytes for up to `num_experts` local experts (independent of the row count: the
// persistent grid's size comes from the SM count, which is bounded by a constant).
size_t workspace_size(int32_t num_experts, int64_t max_rows);

// Whether this family can run `args` on a device of compute capability `sm` (e.g. 90): needs a
// build with the 90a target, sm == 90, BF16/F16, K-major B, 16-byte aligned pointers and row
// strides, k and n multiples of 8. When not, `why` (if given) gets a one-line reason.
bool supports(const GroupedGemmArgs& args, int sm, const char** why);

// Enqueues the prepare kernel and the GEMM on `stream` (a cudaStream_t). Returns a cudaError_t
// (0 = success); cudaErrorInvalidValue when supports() would say no or scratch is too small.
int launch(const GroupedGemmArgs& args, void* stream);

}  // namespace sm90
}  // namespace cuda
}  // namespace flashinfer_moe
