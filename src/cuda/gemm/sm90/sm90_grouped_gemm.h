// The Hopper grouped GEMM family (GemmTactic::Sm90): CUTLASS sm90 TMA + WGMMA,
// warp-specialized pointer-array kernels, for bf16/fp16 A and K-major B, fp32 C.
//
// Contract: src/cuda/gemm/grouped_gemm.h (GroupedGemmArgs). Everything the kernel needs per expert
// (problem shape, A/B/D pointers and strides) is written on the device by a small prepare kernel
// from `row_offsets`, into `scratch`, followed by CUTLASS's own workspace (per-SM TMA
// descriptors). CUTLASS gets no host problem shapes, so nothing is read back to the host: the
// launch is free of host syncs and allocations and can be captured into a CUDA graph.
//
// The family has several internal configurations (Config) behind the one public tactic; the
// dispatcher picks one from the average rows per expert (see Config). All compute the same
// C = A * B_e^T with fp32 accumulation; results differ only in summation order across configs
// (each config alone is deterministic).
#pragma once

#include <cstddef>
#include <cstdint>

#include "cuda/gemm/grouped_gemm.h"

namespace flashinfer_moe {
namespace cuda {
namespace sm90 {

// Picking one (measured on H200, tests/cuda/check_sm90_grouped_gemm.cu), with the host's average
// rows per expert r = max_rows / num_experts: BF16 and r <= 64 -> SwapAB; BF16 and r <= 128 ->
// SwapABWide; otherwise Prefill. (A 128 x 128 ping-pong variant was measured and dropped: at
// most 4% faster, only for k <= 1024, not worth its ~1 min of compile.)
enum class Config {
  // 128 x 256 x 64 tiles over (rows, n), cooperative, cluster 2 x 1 (weights multicast).
  // Compute-bound prefill: hundreds of rows per expert and more. bf16 and fp16.
  Prefill,
  // Swap-AB: the transposed problem C^T[n, rows] = B_e * A_e^T, 128 x 64 x 128 tiles over
  // (n, rows), cooperative, cluster 1 x 1. The weights fill the 128-wide M side and an expert's
  // rows sit on the 64-wide N side, so a small expert is not padded to 128 rows and each weight
  // tile streams from HBM once. Memory-bound decode and middle: 1-64 rows per expert. bf16 only.
  SwapAB,
  // Swap-AB with 128 x 128 x 64 tiles over (n, rows): half the weight re-reads of SwapAB when an
  // expert has more than 64 rows. ~64-256 rows per expert. bf16 only.
  SwapABWide,
};

// Scratch bytes `config` needs for up to `num_experts` local experts (independent of the row
// count: the persistent grid's size comes from the SM count, which is bounded by a constant).
size_t workspace_size(Config config, int32_t num_experts, int64_t max_rows);
// The largest of all configs' sizes, so a dispatcher may pick any config per launch.
size_t workspace_size(int32_t num_experts, int64_t max_rows);

// Whether `config` can run `args` on a device of compute capability `sm` (e.g. 90): needs a
// build with the 90a target, sm == 90, BF16 (or F16 for Prefill), K-major B, 16-byte aligned
// pointers and row strides, k and n multiples of 8. When not, `why` (if given) says why.
bool supports(Config config, const GroupedGemmArgs& args, int sm, const char** why);
bool supports(const GroupedGemmArgs& args, int sm, const char** why);  // Config::Prefill

// Enqueues the prepare kernel and the GEMM on `stream` (a cudaStream_t). Returns a cudaError_t
// (0 = success); cudaErrorInvalidValue when supports() would say no or scratch is too small.
int launch(Config config, const GroupedGemmArgs& args, void* stream);
int launch(const GroupedGemmArgs& args, void* stream);  // Config::Prefill

// One-line name of a config ("prefill", "swap_ab", ...), for logs and benchmarks.
const char* config_name(Config config);

}  // namespace sm90
}  // namespace cuda
}  // namespace flashinfer_moe
