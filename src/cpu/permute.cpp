// Permutation with expert capacity: which (token, slot) assignments run, and in which row.
#include "cpu/permute.h"

namespace flashinfer_moe {
namespace cpu {

int64_t build_permutation(const int32_t* topk_ids, int64_t num_tokens, int top_k,
                          int32_t local_offset, int32_t local_num_experts, int64_t capacity,
                          const PermutationMaps& maps) {
  const int64_t slots = num_tokens * top_k;
  int64_t* count = maps.expert_offsets;  // counts first, turned into offsets below
  for (int32_t e = 0; e <= local_num_experts; ++e) count[e] = 0;
  // Pass 1: rank of each kept slot within its expert, in (token, slot) order. The rank is parked
  // in expanded_to_permuted until the offsets are known.
  for (int64_t s = 0; s < slots; ++s) {
    const int64_t e = static_cast<int64_t>(topk_ids[s]) - local_offset;
    if (topk_ids[s] < 0 || e < 0 || e >= local_num_experts ||
        (capacity > 0 && count[e] >= capacity)) {
      maps.expanded_to_permuted[s] = -1;
      continue;
    }
    maps.expanded_to_permuted[s] = count[e]++;
  }
  // Exclusive prefix sum: offsets[e] = rows of experts before e.
  int64_t total = 0;
  for (int32_t e = 0; e <= local_num_experts; ++e) {
    const int64_t c = count[e];
    maps.expert_offsets[e] = total;
    total += c;
  }
  // Pass 2: final rows and the inverse map.
  for (int64_t s = 0; s < slots; ++s) {
    if (maps.expanded_to_permuted[s] < 0) continue;
    const int32_t e = topk_ids[s] - local_offset;
    const int64_t row = maps.expert_offsets[e] + maps.expanded_to_permuted[s];
    maps.expanded_to_permuted[s] = row;
    maps.permuted_to_expanded[row] = s;
    maps.row_expert[row] = e;
  }
  return total;
}

}  // namespace cpu
}  // namespace flashinfer_moe
