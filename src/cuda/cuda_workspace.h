// Scratch layout of the CUDA executor (run_cuda) inside the caller's workspace.
//
// One function computes both the size (base == nullptr, used by workspace_size) and the pointers
// (used by run_cuda), so the two cannot drift apart. Everything is sized from the problem shape
// only, never from the routing outcome (which lives on the device): every (token, slot) pair may
// be kept, bounded by the capacity when there is one. Sub-buffers are 256-byte aligned, and the
// row strides of the GEMM operands are padded so that every row starts 16-byte aligned (what the
// vectorized kernels and the TMA-based GEMM family need), whatever H and I are.
//
// Host-only header (no CUDA types): workspace.cpp includes it in CUDA builds.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "cuda/gemm/grouped_gemm.h"
#include "flashinfer_moe/moe.h"
#include "host/heuristics.h"

namespace flashinfer_moe {
namespace cuda {

constexpr size_t kCudaWorkspaceAlignment = 256;
// Slots (token, slot pairs) per chunk of the permutation: one warp classifies a chunk, loading
// all its ids at once (4 per lane). With 1024-slot chunks each warp walked 32 dependent steps
// and the count and scatter kernels took about 19 us each at T * k = 8192..32768 on an H100.
constexpr int64_t kPermuteSlotsPerChunk = 128;
// GEMM2 may split K (host/heuristics.h choose_k_splits) only up to this many rows: its partial
// sums then need kMaxKSplits copies of the output (at most 7.3 MB for H = 7168), and past a few
// rows per expert the grid is large enough anyway.
constexpr int64_t kSplitKMaxRows = 64;

struct CudaWorkspaceLayout {
  // Routing results per expanded slot s = t * k + j.
  int32_t* topk_ids = nullptr;    // [S] global expert id, -1 when skipped
  float* topk_weights = nullptr;  // [S]
  // Permutation (permute_kernel.h).
  int32_t* expanded_to_permuted = nullptr;  // [S], -1 when not kept
  int32_t* permuted_to_expanded = nullptr;  // [max_rows]
  int32_t* row_expert = nullptr;            // [max_rows] local expert of each permuted row
  int64_t* row_offsets = nullptr;           // [E_local + 1]; row_offsets[E_local] = row count
  int32_t* chunk_counts = nullptr;          // [E_local * num_chunks]
  // GEMM operands. GEMM1's and GEMM2's fp32 outputs share one buffer: the activation has read
  // all of GEMM1's output before GEMM2 (same stream) writes its own.
  void* gemm1_input = nullptr;  // compute dtype [max_rows, ld_gemm1_input]
  void* gemm2_input = nullptr;  // compute dtype [max_rows, ld_gemm2_input]
  // fp32 [max_rows, ld_gemm1_output], or GEMM2's gemm2_max_splits partial outputs
  // [splits][max_rows, ld_gemm2_output], whichever is larger.
  float* gemm_output = nullptr;
  int64_t ld_gemm1_input = 0, ld_gemm2_input = 0, ld_gemm1_output = 0, ld_gemm2_output = 0;
  int32_t gemm2_max_splits = 1;
  void* gemm_scratch = nullptr;  // the GEMM family's device-side schedule
  size_t gemm_scratch_bytes = 0;
  // FP8 problems (e4m3 weights): the GEMM inputs above hold e4m3 codes (one byte, row strides
  // multiples of 16) and these their fp32 scales, one per row and K group (fp8_operands.h
  // ActScales, row-major [rows, groups]), sized groups * round_up(max_rows, 4) floats.
  // FP4-weight problems with a quantized GEMM input (W4A8 / W4A4, fp4_plan.h) keep that input
  // widened to bf16 and use the same pointer for its per-row factor (one group per row).
  bool fp8 = false;
  float* gemm1_input_scales = nullptr;
  float* gemm2_input_scales = nullptr;
  int64_t gemm1_scale_groups = 0, gemm2_scale_groups = 0;
  int64_t num_slots = 0;   // S = T * k
  int64_t max_rows = 0;    // upper bound of the kept row count
  int64_t num_chunks = 0;  // permutation chunks
  size_t bytes = 0;        // total, including the alignment slack
};

inline int64_t round_up_to(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Whether run_cuda takes the FP8 path: e4m3 weights (validation makes both stacks agree or the
// scope check rejects the mix).
inline bool is_fp8_problem(const MoeProblem& p) {
  return p.w1.format == ElemFormat::E4M3 || p.w2.format == ElemFormat::E4M3;
}

// Whether `p` has 4-bit weights: FP4 (e2m1) or MXINT4 (int4 codes), both run by the W4A16
// kernels of the sm80 family (fp4_plan.h).
inline bool is_fp4_format(ElemFormat f) {
  return f == ElemFormat::E2M1Packed || f == ElemFormat::E2M1Unpacked ||
         f == ElemFormat::Int4Packed;
}
inline bool is_fp4_problem(const MoeProblem& p) {
  return is_fp4_format(p.w1.format) || is_fp4_format(p.w2.format);
}

// Whether an FP4-weight problem's GEMM1 / GEMM2 input is quantized (an E4M3 / NVFP4 input, an
// input_quant, an inter_quant): run_cuda then widens it exactly to bf16 (act_widen.cuh).
inline bool widens_gemm1_input(const MoeProblem& p) {
  return is_fp4_problem(p) &&
         (p.input.format != ElemFormat::Float || p.input_quant.mode != ActQuant::None);
}
inline bool widens_gemm2_input(const MoeProblem& p) {
  return is_fp4_problem(p) && p.inter_quant.mode != ActQuant::None;
}

// K columns per activation scale of a GEMM input of `k` columns: the quantization group of
// `q`, or, for an input that arrives quantized (GEMM1 with an E4M3 `input`), its block columns.
// One group (== k) means the scale is constant along K.
inline int64_t fp8_input_group(const ActQuantSpec& q, int64_t k) {
  switch (q.mode) {
    case ActQuant::Fp8PerGroup:
      return std::min<int64_t>(std::max<int64_t>(q.group_size, 1), k);
    case ActQuant::MxFp8:
      return std::min<int64_t>(32, k);
    default:
      return k;
  }
}
inline int64_t fp8_gemm1_group(const MoeProblem& p) {
  const int64_t h = p.hidden_size;
  if (p.input.format == ElemFormat::E4M3) {
    const int64_t bc = p.input.scale.present() ? p.input.block_cols : 0;
    return bc > 0 ? std::min(bc, h) : h;
  }
  return fp8_input_group(p.input_quant, h);
}

// Most rows the permutation can keep: every slot, or capacity rows per local expert.
inline int64_t cuda_max_rows(const MoeProblem& p) {
  const int64_t slots = std::max<int64_t>(p.num_tokens, 0) * p.top_k;
  // (Checked before multiplying: a huge capacity must not overflow.)
  if (p.expert_capacity <= 0 || p.expert_capacity >= slots) return slots;
  return std::min<int64_t>(slots, p.expert_capacity * p.local_num_experts);
}

// GEMM scratch is sized for the hungriest family so that the size does not depend on the card
// or on the tactic the heuristic will pick at run time (both GEMMs use it one after the other).
inline size_t cuda_gemm_scratch_bytes(int32_t num_experts, int64_t max_rows) {
  const GemmTactic tactics[] = {GemmTactic::Sm80Decode, GemmTactic::Sm80Prefill, GemmTactic::Sm90};
  size_t bytes = 0;
  for (GemmTactic t : tactics) {
    bytes = std::max(bytes, grouped_gemm_workspace_size(t, num_experts, max_rows));
  }
  return bytes;
}

// Fills `layout` for problem `p` (validated and within run_cuda's scope) carved from `base`
// (nullptr: only the size and the strides are computed).
inline void plan_cuda_workspace(const MoeProblem& p, void* base, CudaWorkspaceLayout* layout) {
  CudaWorkspaceLayout& l = *layout;
  const int64_t E = p.local_num_experts;
  const int64_t H = p.hidden_size, I = p.intermediate_size;
  const int64_t M1 = is_gated(p.activation) ? 2 * I : I;
  l.fp8 = is_fp8_problem(p);
  const int64_t elem = l.fp8 ? 1 : 2;  // e4m3 codes, or the BF16 / F16 compute dtype
  l.num_slots = std::max<int64_t>(p.num_tokens, 0) * p.top_k;
  l.max_rows = cuda_max_rows(p);
  l.num_chunks = (l.num_slots + kPermuteSlotsPerChunk - 1) / kPermuteSlotsPerChunk;
  // 16 codes, 8 compute elements or 4 fp32 = 16 bytes per row step.
  l.ld_gemm1_input = round_up_to(H, 16 / elem);
  l.ld_gemm2_input = round_up_to(I, 16 / elem);
  if (l.fp8) {
    const int64_t g1 = fp8_gemm1_group(p), g2 = fp8_input_group(p.inter_quant, I);
    l.gemm1_scale_groups = g1 > 0 ? (H + g1 - 1) / g1 : 1;
    l.gemm2_scale_groups = g2 > 0 ? (I + g2 - 1) / g2 : 1;
  }
  if (widens_gemm1_input(p)) l.gemm1_scale_groups = 1;
  if (widens_gemm2_input(p)) l.gemm2_scale_groups = 1;
  l.ld_gemm1_output = round_up_to(M1, 4);
  l.ld_gemm2_output = round_up_to(H, 4);
  l.gemm_scratch_bytes = cuda_gemm_scratch_bytes(p.local_num_experts, l.max_rows);

  // Start from an aligned address: the caller's buffer may have any alignment.
  const uintptr_t start = reinterpret_cast<uintptr_t>(base);
  const uintptr_t aligned =
      (start + kCudaWorkspaceAlignment - 1) / kCudaWorkspaceAlignment * kCudaWorkspaceAlignment;
  size_t offset = base ? static_cast<size_t>(aligned - start) : kCudaWorkspaceAlignment;
  auto take = [&](int64_t bytes) -> void* {
    void* ptr = base ? static_cast<char*>(base) + offset : nullptr;
    const size_t n = static_cast<size_t>(std::max<int64_t>(bytes, 0));
    offset += (n + kCudaWorkspaceAlignment - 1) / kCudaWorkspaceAlignment * kCudaWorkspaceAlignment;
    return ptr;
  };
  const int64_t S = l.num_slots, R = l.max_rows;
  l.topk_ids = static_cast<int32_t*>(take(4 * S));
  l.topk_weights = static_cast<float*>(take(4 * S));
  l.expanded_to_permuted = static_cast<int32_t*>(take(4 * S));
  l.permuted_to_expanded = static_cast<int32_t*>(take(4 * R));
  l.row_expert = static_cast<int32_t*>(take(4 * R));
  l.row_offsets = static_cast<int64_t*>(take(8 * (E + 1)));
  l.chunk_counts = static_cast<int32_t*>(take(4 * E * l.num_chunks));
  l.gemm1_input = take(elem * R * l.ld_gemm1_input);
  l.gemm2_input = take(elem * R * l.ld_gemm2_input);
  l.gemm2_max_splits = R <= kSplitKMaxRows ? kMaxKSplits : 1;
  l.gemm_output = static_cast<float*>(
      take(4 * R * std::max(l.ld_gemm1_output, l.gemm2_max_splits * l.ld_gemm2_output)));
  l.gemm_scratch = take(static_cast<int64_t>(l.gemm_scratch_bytes));
  if (l.gemm1_scale_groups > 0 || l.gemm2_scale_groups > 0) {
    const int64_t rows = round_up_to(R, 4);
    l.gemm1_input_scales = static_cast<float*>(take(4 * l.gemm1_scale_groups * rows));
    l.gemm2_input_scales = static_cast<float*>(take(4 * l.gemm2_scale_groups * rows));
  }
  l.bytes = offset;
}

}  // namespace cuda
}  // namespace flashinfer_moe
