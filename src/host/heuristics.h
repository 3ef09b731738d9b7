// Which GEMM family runs a grouped GEMM on CUDA when the caller leaves the tactic on Auto.
//
// Host-only and free of CUDA headers, so a heuristic change never recompiles a kernel. The
// executor asks each family whether it can run the GEMM (grouped_gemm_supports) and passes the
// answer in; the heuristic only weighs the shape. The rule:
//   rows = expected rows per local expert = T * k / E_local (at most the capacity, when set)
//   rows <= 16, and on sm >= 90 the touched weights are small (fewer than 6 experts expected to
//     be hit, or under 300 MB of expert weights)
//                                       -> Sm80Decode (16-row tiles streaming the weights,
//                                          with gather and activation fused into GEMM1: the
//                                          fewest launches, which dominate at this size)
//   FP8 with scales varying along K (128x128 blocks, 1x128 groups), sm >= 90 and Sm90 can run
//   it                                  -> Sm90 at every size: the sm80 family applies such
//                                          scales per 16-deep slice at about half its unscaled
//                                          bandwidth (1.6 vs 3.7 TB/s, H200), e.g. DeepSeek-V3
//                                          block FP8 T=1: 160 us vs 321 us; small experts
//                                          too (H100, ce87b1c: Qwen3-30B-A3B block FP8 T=1
//                                          52 us vs 68, T=16 195 vs 342). Per-tensor FP8
//                                          follows the bf16 rule below (Mixtral FP8 T=1: sm80
//                                          decode 144 us, sm90 172 us).
//   sm >= 90 and Sm90 can run it        -> Sm90 (TMA + WGMMA; swap-AB configs up to 128 rows,
//                                          the 128 x 256 prefill tile beyond)
//   FP4 weights (W4A16, sm80 family only): rows <= 32 -> Sm80Decode, else Sm80Prefill
//                                          (the decode tile widens each weight once per 16
//                                          rows, the prefill tile once per 128, but streams
//                                          far better: H100, gpt-oss-120b MXFP4 T=1024 (32
//                                          rows per expert) 4.19 ms decode vs 5.82 prefill;
//                                          Qwen3-235B NVFP4 T=1024 (64 rows) 7.58 vs 6.18)
//   otherwise                           -> Sm80Prefill
// The thresholds come from an H100 sweep of all presets (docs/bench/): at <= 16 rows the fused
// sm80 path wins by 2-24% while few or small experts are hit (its fewer launches matter), and
// the sm90 swap-AB GEMM wins by 2-12% once many large experts are streamed.
// `python -m flashinfer.fused_moe.bench --tactics ...` re-measures them.
#pragma once

#include <cstdint>

#include "flashinfer_moe/types.h"

namespace flashinfer_moe {

struct GemmTacticQuery {
  int sm = 0;                       // compute capability, e.g. 90
  int64_t num_slots = 0;            // T * k
  int32_t local_experts = 0;        // E_local
  int64_t capacity = 0;             // 0 = unlimited
  bool sm90_supported = false;      // grouped_gemm_supports(Sm90, ...) for this GEMM
  int64_t expert_weight_bytes = 0;  // bytes of one expert's W1 + W2
  bool fp8_k_scales = false;        // e4m3 operands with a scale that varies along K
  bool fp4_weights = false;         // e2m1 weights (W4A16: the sm80 family's W4A16 kernel)
};

// Past these, the decode-sized problem streams enough weights for the sm90 GEMM to win.
constexpr double kSm90DecodeMinActiveExperts = 6.0;
constexpr double kSm90DecodeMinTouchedBytes = 300e6;

// Expected number of distinct local experts hit by T * k uniformly routed slots.
double expected_active_experts(const GemmTacticQuery& q);

constexpr int64_t kDecodeMaxRowsPerExpert = 16;
constexpr int64_t kFp4DecodeMaxRowsPerExpert = 32;

// Expected rows per local expert under balanced routing.
int64_t expected_rows_per_expert(const GemmTacticQuery& q);

// The tactic for GEMM `q` (never Auto).
GemmTactic choose_gemm_tactic(const GemmTacticQuery& q);

// Split K for a decode GEMM whose grid fills at most half of the device: `ctas` CTAs (an upper
// bound: items x column tiles) where `resident` can run at once (CTAs per SM x SMs) get as many
// splits as still fit one wave, at most kMaxKSplits, each at least kMinSplitK deep; 1 means no
// split. Filling past one wave lost: on an H100 (132 SMs), Mixtral FP8's GEMM2 at T = 1
// (128 CTAs, 2 per SM) took 165 us whole and 170 us in 3 splits (384 CTAs), while bf16's
// (3 per SM) went 306 -> 290 us in 3 splits and Llama-4-Scout's (80 CTAs) 134 -> 108 us in 4.
constexpr int32_t kMaxKSplits = 4;
constexpr int64_t kMinSplitK = 2048;
int32_t choose_k_splits(int64_t ctas, int64_t resident, int64_t k);

// Whether FP8 GEMM1 on Sm90 runs with its activation and GEMM2's requantization fused
// (sm90_fp8_gated_gemm.h) rather than as the CUTLASS GEMM plus the activation kernel, given
// GEMM1's K (the hidden size) and the rows per local expert (max_rows / E_local). Measured on
// an H100 (fused / unfused, us; docs/bench/2026-11-26-h100-sm90-fused-ab.md):
//   DeepSeek-V3 block FP8 (K 7168): T=64 (2 rows) 2405 / 2366, T=256 (8) 3028 / 3125,
//     T=1024 (32) 3816 / 3874, T=4096 (128) 7408 / 6459;
//   Mixtral-8x7B per-tensor FP8 (K 4096): T=256 (64 rows) 597 / 641, T=1024 (256) 1380 / 1377,
//     T=4096 (1024) 3914 / 3496;
//   Qwen3-30B-A3B block FP8 (K 2048): 4-9% slower at T = 16..1024, 24% at 4096.
// The fused kernel's epilogue does not overlap its MMAs, so it wins only where a tile's K loop is
// long (K >= 4096) and the tiles are few enough that the activation kernel's extra pass and the
// fp32 round trip weigh more: a few to 64 rows per expert.
constexpr int64_t kSm90FusedGemm1MinK = 4096;
constexpr int64_t kSm90FusedGemm1MinRowsPerExpert = 4;
constexpr int64_t kSm90FusedGemm1MaxRowsPerExpert = 64;
bool fuse_sm90_gemm1_activation(int64_t k, int64_t rows_per_expert);

// "Sm80Decode", "Sm80Prefill", "Sm90" or "Auto" (for messages).
const char* gemm_tactic_name(GemmTactic t);

}  // namespace flashinfer_moe
