// The GEMM tactic heuristic (heuristics.h has the rule and the reasons behind it).
#include "host/heuristics.h"

#include <algorithm>
#include <cmath>

namespace flashinfer_moe {

int64_t expected_rows_per_expert(const GemmTacticQuery& q) {
  const int64_t rows = q.num_slots / std::max<int32_t>(q.local_experts, 1);
  return q.capacity > 0 ? std::min(rows, q.capacity) : rows;
}

double expected_active_experts(const GemmTacticQuery& q) {
  const double e = std::max<int32_t>(q.local_experts, 1);
  return e * (1.0 - std::pow(1.0 - 1.0 / e, static_cast<double>(q.num_slots)));
}

GemmTactic choose_gemm_tactic(const GemmTacticQuery& q) {
  const int64_t rows = expected_rows_per_expert(q);
  const bool sm90 = q.sm >= 90 && q.sm90_supported;
  // The sm80 family applies K-varying FP8 scales per 16-deep slice in registers, which costs it
  // half its bandwidth; the sm90 blockwise kernel does not pay that.
  if (q.fp8_k_scales && sm90) return GemmTactic::Sm90;
  if (q.fp4_weights && !sm90) {
    return rows <= kFp4DecodeMaxRowsPerExpert ? GemmTactic::Sm80Decode : GemmTactic::Sm80Prefill;
  }
  if (rows <= kDecodeMaxRowsPerExpert) {
    const double active = expected_active_experts(q);
    const bool large =
        active >= kSm90DecodeMinActiveExperts &&
        active * static_cast<double>(q.expert_weight_bytes) >= kSm90DecodeMinTouchedBytes;
    return sm90 && large ? GemmTactic::Sm90 : GemmTactic::Sm80Decode;
  }
  return sm90 ? GemmTactic::Sm90 : GemmTactic::Sm80Prefill;
}

int32_t choose_k_splits(int64_t ctas, int64_t resident, int64_t k) {
  if (ctas <= 0 || 2 * ctas > resident) return 1;
  int64_t splits = std::min<int64_t>(resident / ctas, std::max<int64_t>(k / kMinSplitK, 1));
  return static_cast<int32_t>(std::min<int64_t>(splits, kMaxKSplits));
}

const char* gemm_tactic_name(GemmTactic t) {
  switch (t) {
    case GemmTactic::Auto:
      return "Auto";
    case GemmTactic::Sm80Decode:
      return "Sm80Decode";
    case GemmTactic::Sm80Prefill:
      return "Sm80Prefill";
    case GemmTactic::Sm90:
      return "Sm90";
  }
  return "unknown";
}

bool fuse_sm90_gemm1_activation(int64_t k, int64_t rows_per_expert) {
  return k >= kSm90FusedGemm1MinK && rows_per_expert >= kSm90FusedGemm1MinRowsPerExpert &&
         rows_per_expert <= kSm90FusedGemm1MaxRowsPerExpert;
}

}  // namespace flashinfer_moe
