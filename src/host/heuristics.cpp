// The GEMM tactic heuristic (heuristics.h has the rule and the reasons behind it).
#include "host/heuristics.h"

#include <algorithm>

namespace flashinfer_moe {

int64_t expected_rows_per_expert(const GemmTacticQuery& q) {
  const int64_t rows = q.num_slots / std::max<int32_t>(q.local_experts, 1);
  return q.capacity > 0 ? std::min(rows, q.capacity) : rows;
}

GemmTactic choose_gemm_tactic(const GemmTacticQuery& q) {
  const int64_t rows = expected_rows_per_expert(q);
  if (rows <= kDecodeMaxRowsPerExpert) return GemmTactic::Sm80Decode;
  if (q.sm >= 90 && q.sm90_supported) return GemmTactic::Sm90;
  return GemmTactic::Sm80Prefill;
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

}  // namespace flashinfer_moe
