// Permutation with expert capacity (docs/semantics.md "Permutation and capacity").
#pragma once

#include <cstdint>

namespace flashinfer_moe {
namespace cpu {

struct PermutationMaps {
  int64_t* expanded_to_permuted;  // [T*k]: row of slot t*k + j, or -1 (not local / dropped)
  int64_t* permuted_to_expanded;  // [T*k]: slot of each row (first num_rows valid)
  int32_t* row_expert;            // [T*k]: local expert of each row
  int64_t* expert_offsets;        // [E_local + 1]: rows of local expert e are [off[e], off[e+1])
};

// One serial scan in (token, slot) order: cheap, and the row order it produces (local expert,
// then token, then slot) is deterministic. Returns the number of kept rows.
int64_t build_permutation(const int32_t* topk_ids, int64_t num_tokens, int top_k,
                          int32_t local_offset, int32_t local_num_experts, int64_t capacity,
                          const PermutationMaps& maps);

}  // namespace cpu
}  // namespace flashinfer_moe
