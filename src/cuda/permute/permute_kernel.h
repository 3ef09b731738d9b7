// Token permutation on the GPU: which (token, slot) assignments run, and in which permuted row.
//
// The order is docs/semantics.md "Permutation and capacity": kept assignments sorted by local
// expert, then token, then slot; with a capacity C an expert keeps its first C assignments in
// (token, slot) order. The result is deterministic (no atomic decides an order) and the launch
// sequence never reads device memory from the host, so it can be captured in a CUDA graph:
//   1. count:   one warp per chunk of kPermuteSlotsPerChunk slots counts its slots per expert;
//   2. scan:    per expert, an exclusive scan over the chunks (the rank of each chunk's first
//               slot within the expert) and the expert's kept count (clamped to the capacity);
//   3. offsets: an inclusive scan over the experts -> row_offsets [E_local + 1];
//   4. scatter: each chunk ranks its slots again, from its base, in slot order, and writes
//               expanded_to_permuted / permuted_to_expanded / row_expert.
// Small problems (num_slots <= kSmallPermuteMaxSlots and at most kSmallPermuteMaxExperts local
// experts; every decode batch) run all four phases in one block instead: launches, not work, are
// what costs there.
// With precomputed routing the kernels read the caller's ids directly (PermuteParams::routed_ids)
// and copy ids and weights into the workspace on the way, so no routing kernel runs before them.
// Either way the permutation can also write the sm80 GEMM schedule (sm80_schedule.cuh) from the
// row_offsets it just computed, once for both GEMMs, instead of a schedule launch per GEMM.
#pragma once

#include <cstdint>

namespace flashinfer_moe {
namespace cuda {

struct PermuteParams {
  const int32_t* topk_ids = nullptr;  // [num_slots] global ids, -1 (or out of range) = skipped
  int64_t num_slots = 0;              // T * k (< 2^31)
  int32_t local_expert_offset = 0;
  int32_t local_num_experts = 0;
  int64_t capacity = 0;  // 0 = unlimited
  // Scratch [local_num_experts * num_chunks]; num_chunks = ceil(num_slots / chunk).
  int32_t* chunk_counts = nullptr;
  int64_t num_chunks = 0;
  // Outputs.
  int32_t* expanded_to_permuted = nullptr;  // [num_slots], -1 when not kept
  int32_t* permuted_to_expanded = nullptr;  // [max rows], first row_offsets[E] valid
  int32_t* row_expert = nullptr;            // [max rows] local expert of each row
  int64_t* row_offsets = nullptr;           // [local_num_experts + 1]
  // Optional (null: not written): the sm80 GEMM schedule for row_offsets, with the row tile and
  // item capacity grouped_gemm_schedule_layout gives and the upper bound of the row count.
  void* schedule = nullptr;
  int32_t schedule_row_tile = 0;
  int64_t schedule_capacity = 0;
  int64_t max_rows = 0;
  // Launch the one-block permutation programmatically dependent on the routing (sm80_pdl.cuh).
  bool pdl = false;
  // Precomputed routing, read straight from the caller's tensors instead of `topk_ids` (which
  // is then ignored): this saves the routing launch on that path. The permutation then also
  // writes the workspace copies ids_copy / weights_copy [num_slots] that the activation, the
  // finalize and the routing outputs read. Ids outside [0, num_experts) count as -1.
  const int32_t* routed_ids = nullptr;  // [T, k] plain ids, or packed (id << 16) | bf16 words
  int64_t routed_ids_stride_t = 0, routed_ids_stride_k = 0;
  bool routed_packed = false;
  const void* routed_weights = nullptr;  // [T, k] F32 / F16 / BF16; unused when packed
  int32_t routed_weights_dtype = 0;      // DType
  int64_t routed_weights_stride_t = 0, routed_weights_stride_k = 0;
  int32_t top_k = 0;
  int32_t num_experts = 0;  // global
  int32_t* ids_copy = nullptr;
  float* weights_copy = nullptr;
};

// Largest local expert count of the one-block permutation (its per-expert arrays live in smem),
// and its most slots.
constexpr int32_t kSmallPermuteMaxExperts = 1024;
constexpr int64_t kSmallPermuteMaxSlots = 1024;

// Largest local expert count: each warp keeps one int32 counter per expert in shared memory.
constexpr int32_t kPermuteMaxLocalExperts = 8192;

// Enqueues the kernels (four, or one for small problems) on `stream` (a cudaStream_t).
// Returns a cudaError_t as int.
int launch_permute(const PermuteParams& params, void* stream);

}  // namespace cuda
}  // namespace flashinfer_moe
