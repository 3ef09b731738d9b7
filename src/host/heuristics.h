// Which GEMM family runs a grouped GEMM on CUDA when the caller leaves the tactic on Auto.
//
// Host-only and free of CUDA headers, so a heuristic change never recompiles a kernel. The
// executor asks each family whether it can run the GEMM (grouped_gemm_supports) and passes the
// answer in; the heuristic only weighs the shape. The rule:
//   rows = expected rows per local expert = T * k / E_local (at most the capacity, when set)
//   rows <= 16                          -> Sm80Decode (small row tiles streaming the weights,
//                                          with gather and activation fused into GEMM1: the
//                                          fewest launches, which dominate at this size)
//   sm >= 90 and Sm90 can run it        -> Sm90 (TMA + WGMMA; swap-AB configs up to 128 rows,
//                                          the 128 x 256 prefill tile beyond)
//   otherwise                           -> Sm80Prefill
// The thresholds come from H200 measurements (docs/bench/); `bench --tactics` re-measures them.
#pragma once

#include <cstdint>

#include "flashinfer_moe/types.h"

namespace flashinfer_moe {

struct GemmTacticQuery {
  int sm = 0;                   // compute capability, e.g. 90
  int64_t num_slots = 0;        // T * k
  int32_t local_experts = 0;    // E_local
  int64_t capacity = 0;         // 0 = unlimited
  bool sm90_supported = false;  // grouped_gemm_supports(Sm90, ...) for this GEMM
};

constexpr int64_t kDecodeMaxRowsPerExpert = 16;

// Expected rows per local expert under balanced routing.
int64_t expected_rows_per_expert(const GemmTacticQuery& q);

// The tactic for GEMM `q` (never Auto).
GemmTactic choose_gemm_tactic(const GemmTacticQuery& q);

// "Sm80Decode", "Sm80Prefill", "Sm90" or "Auto" (for messages).
const char* gemm_tactic_name(GemmTactic t);

}  // namespace flashinfer_moe
