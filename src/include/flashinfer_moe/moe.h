// The fused MoE layer as one problem description, and the entry points that run it.
//
// Every public API form (cutlass_fused_moe's two forms, the trtllm_* functions) is translated by
// the Python layer into one MoeProblem in "canonical" form: all scales are dequant multipliers,
// W1 is [E_local, M1, H] with M1 = 2I in [up ; gate] row order (gated) or I, W2 is [E_local, H, I],
// and strides carry any transposition. The executors (CPU here, CUDA per architecture) compute
//   out[t] = sum_k w[t,k] * [e[t,k] local and kept] * (W2_e act(W1_e x_t + b1_e) + b2_e)
// with the rounding points of DESIGN section 5.
#pragma once

#include "flashinfer_moe/types.h"

namespace flashinfer_moe {

struct RoutingSpec {
  RoutingMethod method = RoutingMethod::Default;
  // From logits: [T, E_global] F32 / BF16 / F16.
  TensorView logits;
  TensorView bias;  // optional [E_global] F32 / BF16 / F16 (DeepSeekV3, MiniMax2 selection only)
  int32_t n_group = 0;
  int32_t topk_group = 0;
  float routed_scaling_factor = 1.0f;
  bool norm_topk_prob = true;
  // Precomputed routing (used when logits is absent): global expert ids [T, k] I32 and weights
  // [T, k] F32 / BF16 / F16; or, with `packed`, ids holds (id << 16) | bf16 weight bits and
  // weights is absent. Ids outside [0, E_global) are skipped (contribute zero), never read.
  TensorView topk_ids;
  TensorView topk_weights;
  bool packed = false;
};

struct MoeProblem {
  int64_t num_tokens = 0;         // T
  int64_t hidden_size = 0;        // H
  int64_t intermediate_size = 0;  // I (local, after TP sharding)
  int32_t num_experts = 0;        // E_global (routing width)
  int32_t local_expert_offset = 0;
  int32_t local_num_experts = 0;  // E_local; W1/W2 have this many experts
  int32_t top_k = 0;
  int64_t expert_capacity = 0;  // 0 = unlimited; else kept (token, slot) pairs per expert,
                                // first by token index then by slot

  RoutingSpec routing;

  // GEMM1 input: [T, H] (Float / E4M3 with scale / NvFP4 packed with scale and global).
  QuantTensor input;
  ActQuantSpec input_quant;  // applied to a Float input before GEMM1 (None: round to compute)

  QuantTensor w1;            // [E_local, M1, H]
  TensorView w1_bias;        // optional [E_local, M1], any float dtype
  QuantTensor w2;            // [E_local, H, I]
  TensorView w2_bias;        // optional [E_local, H]
  ActQuantSpec inter_quant;  // applied to the activated intermediate before GEMM2

  Activation activation = Activation::Swiglu;
  // Per-expert activation parameters, optional F32 [E_local] each (absent: the default):
  //   SwigluBias: alpha (1), beta (0), limit (+inf); SwigluStep: limit (7);
  //   Situ: alpha = the gate's tanh cap (4), beta = the linear half's tanh cap (25), limit
  //   (+inf) clamps both halves as SwigluBias does (docs/semantics.md "Activations").
  TensorView act_alpha;
  TensorView act_beta;
  TensorView act_limit;
  // Optional [T, k, M1] F32 / F16 / BF16 (LoRA): row (t, j) is added to the GEMM1 output of
  // assignment (t, j) after the bias and before the activation ([up ; gate] when gated).
  TensorView gemm1_delta;

  // Llama4 style: the routing weight multiplies the GEMM1 accumulator and finalize uses 1.
  bool routing_weight_on_input = false;

  DType compute_dtype = DType::BF16;     // rounding of unquantized GEMM inputs (F32/F16/BF16)
  GemmTactic tactic = GemmTactic::Auto;  // CUDA only; the CPU executor ignores it

  // Outputs. `output` [T, H] F32/F16/BF16 receives the finalized sum. Alternatively (do_finalize
  // off) `permuted_output` [T*k, H] F32 receives GEMM2 rows in permuted order (expert-major,
  // then token, then slot), rows beyond the kept count are zero.
  TensorView output;
  TensorView permuted_output;
  // Optional [T*k, I] F32 / F16 / BF16: the activation's output h of each permuted row (before
  // inter_quant), rounded to its dtype; rows beyond the kept count are zero.
  TensorView inter_output;
  // Optional routing results: ids [T,k] I32 (global, -1 if skipped), weights [T,k] F32,
  // expanded (t*k + j) -> permuted row [T,k] I32 (-1 when not local, dropped or invalid).
  TensorView topk_ids_out;
  TensorView topk_weights_out;
  TensorView expanded_to_permuted_out;
};

// Checks shapes, dtypes, devices, strides and ranges; names the offending field on failure.
// Never touches tensor data.
FLASHINFER_MOE_API Status validate(const MoeProblem& p);

// Bytes of scratch the executor for `device` needs for this problem (monotonic in num_tokens).
FLASHINFER_MOE_API Status workspace_size(const MoeProblem& p, DeviceKind device, size_t* bytes);

// CPU executor: multithreaded (num_threads <= 0: all hardware threads), fp32 math.
FLASHINFER_MOE_API Status run_cpu(const MoeProblem& p, void* workspace, size_t workspace_bytes,
                                  int num_threads);

// Routing alone on the CPU: fills topk_ids_out / topk_weights_out of `p` (no GEMMs).
FLASHINFER_MOE_API Status route_cpu(const MoeProblem& p, int num_threads);

// CUDA executor on `stream` (a cudaStream_t). Returns NotImplemented for combinations without a
// kernel yet; never falls back to the CPU.
FLASHINFER_MOE_API Status run_cuda(const MoeProblem& p, void* workspace, size_t workspace_bytes,
                                   void* stream);

// Routing alone on the GPU, on `stream`.
FLASHINFER_MOE_API Status route_cuda(const MoeProblem& p, void* stream);

// Whether this build holds CUDA kernels, and for which architectures ("80;90a").
FLASHINFER_MOE_API bool built_with_cuda();
FLASHINFER_MOE_API const char* cuda_architectures();

}  // namespace flashinfer_moe
