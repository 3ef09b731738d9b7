// Scratch layout of the CPU executor inside the caller's workspace.
//
// Sized for the worst case (every one of the T*k assignments kept) so that the size depends on
// the problem shape only, never on the routing outcome. One function computes both the size
// (base == nullptr) and the pointers, so the two cannot drift apart.
#pragma once

#include <cstddef>
#include <cstdint>

#include "flashinfer_moe/moe.h"

namespace flashinfer_moe {
namespace cpu {

struct WorkspaceLayout {
  // Routing, per expanded slot t*k + j.
  int32_t* topk_ids = nullptr;    // global expert id, -1 when the precomputed id is invalid
  float* topk_weights = nullptr;  // routing weight (before capacity)
  // Permutation.
  int64_t* expanded_to_permuted = nullptr;  // [T*k], -1 when not kept
  int64_t* permuted_to_expanded = nullptr;  // [T*k], first num_rows valid
  int32_t* row_expert = nullptr;            // [T*k], local expert of each permuted row
  int64_t* expert_offsets = nullptr;        // [E_local + 1], rows of expert e: [off[e], off[e+1])
  int32_t* active_experts = nullptr;        // [E_local], local experts with at least one row
  // GEMM operands, fp32, one row per permuted row.
  float* gemm1_input = nullptr;   // [T*k, H]; reused as gemm2_output once GEMM1 is done
  float* gemm1_output = nullptr;  // [T*k, M1]
  float* intermediate = nullptr;  // [T*k, I], activated and requantized
  float* gemm2_output = nullptr;  // aliases gemm1_input
  size_t bytes = 0;               // total, including alignment slack
};

constexpr size_t kWorkspaceAlignment = 64;

// Fills `layout` for problem `p` carved from `base` (nullptr: only the size is computed).
inline void plan_workspace(const MoeProblem& p, void* base, WorkspaceLayout* layout) {
  const int64_t T = p.num_tokens > 0 ? p.num_tokens : 0;
  const int64_t slots = T * p.top_k;
  const int64_t M1 = is_gated(p.activation) ? 2 * p.intermediate_size : p.intermediate_size;
  const int64_t E = p.local_num_experts;
  // Start from an aligned address: the caller's buffer may have any alignment.
  const uintptr_t start = reinterpret_cast<uintptr_t>(base);
  const uintptr_t aligned =
      (start + kWorkspaceAlignment - 1) / kWorkspaceAlignment * kWorkspaceAlignment;
  size_t offset = base ? static_cast<size_t>(aligned - start) : kWorkspaceAlignment;
  auto take = [&](size_t bytes) -> void* {
    void* ptr = base ? static_cast<char*>(base) + offset : nullptr;
    offset += (bytes + kWorkspaceAlignment - 1) / kWorkspaceAlignment * kWorkspaceAlignment;
    return ptr;
  };
  WorkspaceLayout& l = *layout;
  l.topk_ids = static_cast<int32_t*>(take(sizeof(int32_t) * slots));
  l.topk_weights = static_cast<float*>(take(sizeof(float) * slots));
  l.expanded_to_permuted = static_cast<int64_t*>(take(sizeof(int64_t) * slots));
  l.permuted_to_expanded = static_cast<int64_t*>(take(sizeof(int64_t) * slots));
  l.row_expert = static_cast<int32_t*>(take(sizeof(int32_t) * slots));
  l.expert_offsets = static_cast<int64_t*>(take(sizeof(int64_t) * (E + 1)));
  l.active_experts = static_cast<int32_t*>(take(sizeof(int32_t) * E));
  l.gemm1_input = static_cast<float*>(take(sizeof(float) * slots * p.hidden_size));
  l.gemm1_output = static_cast<float*>(take(sizeof(float) * slots * M1));
  l.intermediate = static_cast<float*>(take(sizeof(float) * slots * p.intermediate_size));
  l.gemm2_output = l.gemm1_input;
  l.bytes = offset;
}

}  // namespace cpu
}  // namespace flashinfer_moe
