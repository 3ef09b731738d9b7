// run_cuda: the fused MoE layer on the GPU for BF16 / F16, e4m3 and e2m1 weights
// (flashinfer_moe/moe.h).
//
// The pipeline mirrors the CPU executor (src/cpu/executor.cpp) phase by phase, one or more
// kernels each, all on the caller's stream:
//   routing (routing_kernel) -> permutation (permute_kernel) -> gather of GEMM1's rows
//   (gather_kernel) -> GEMM1 (grouped_gemm) -> bias + activation (activation_kernel) -> GEMM2
//   -> finalize / permuted output / routing outputs (finalize_kernel).
// When GEMM1 runs on the sm80 family, the gather and the activation are fused into it
// (grouped_gemm.h) where the operands allow (FP8: the activation and GEMM2's requantization,
// when the quantization groups fit one CTA), and when both GEMMs use the same sm80 tile the
// permutation writes their schedule: the decode path is then 5 launches instead of 12.
// With precomputed routing there is no routing kernel: the permutation reads the caller's ids.
// A decode GEMM2 whose grid would leave SMs idle splits K; finalize adds the partial sums in
// split order (gemm2_k_splits).
// Host code only: it checks the problem, plans the workspace (cuda_workspace.h), picks a GEMM
// family per GEMM (host/heuristics.h) and enqueues. The host never reads device memory (row
// counts stay on the device; kernels size their grids from upper bounds), allocates nothing and
// never synchronizes, so a call can be captured into a CUDA graph.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "common/activation_math.h"
#include "cuda/cuda_workspace.h"
#include "cuda/device_info.h"
#include "cuda/epilogue/activation_kernel.h"
#include "cuda/finalize/finalize_kernel.h"
#include "cuda/fp4_plan.h"
#include "cuda/fp8_plan.h"
#include "cuda/gemm/grouped_gemm.h"
#include "cuda/permute/gather_kernel.h"
#include "cuda/permute/permute_kernel.h"
#include "cuda/routing/routing_entry.h"
#include "cuda/routing/routing_kernel.h"
#include "flashinfer_moe/moe.h"
#include "host/heuristics.h"
#include "host/status.h"
#include "host/tensor_access.h"
#include "host/validate.h"

namespace flashinfer_moe {
namespace cuda {

namespace {

const char* elem_format_name(ElemFormat f) {
  switch (f) {
    case ElemFormat::Float:
      return "Float";
    case ElemFormat::E4M3:
      return "E4M3";
    case ElemFormat::E2M1Packed:
      return "E2M1Packed";
    case ElemFormat::E2M1Unpacked:
      return "E2M1Unpacked";
    case ElemFormat::Int4Packed:
      return "Int4Packed";
  }
  return "unknown";
}

const char* act_quant_name(ActQuant m) {
  switch (m) {
    case ActQuant::None:
      return "None";
    case ActQuant::Fp8Static:
      return "Fp8Static";
    case ActQuant::Fp8PerToken:
      return "Fp8PerToken";
    case ActQuant::Fp8PerGroup:
      return "Fp8PerGroup";
    case ActQuant::MxFp8:
      return "MxFp8";
    case ActQuant::NvFp4:
      return "NvFp4";
  }
  return "unknown";
}

Status not_on_cuda_yet(const char* field, const char* value) {
  return make_status(StatusCode::NotImplemented, "run_cuda: %s %s is not implemented on CUDA yet",
                     field, value);
}

Status check_index_limits(const MoeProblem& p) {
  // Slot and row indices are int32 on the device (expanded_to_permuted_out is I32 anyway).
  if (p.num_tokens * p.top_k >= (int64_t{1} << 31)) {
    return make_status(StatusCode::InvalidValue,
                       "num_tokens * top_k: the CUDA executor supports fewer than 2^31 slots, got "
                       "%lld",
                       static_cast<long long>(p.num_tokens * p.top_k));
  }
  if (p.local_num_experts > kPermuteMaxLocalExperts) {
    return make_status(StatusCode::InvalidValue,
                       "local_num_experts: the CUDA permutation supports at most %d, got %d",
                       kPermuteMaxLocalExperts, p.local_num_experts);
  }
  return ok_status();
}

Status check_weight_scope(const char* name, const QuantTensor& w, DType compute) {
  char field[32];
  if (w.format != ElemFormat::Float) {
    std::snprintf(field, sizeof(field), "%s.format", name);
    return not_on_cuda_yet(field, elem_format_name(w.format));
  }
  if (w.data.dtype != compute) {
    return make_status(StatusCode::NotImplemented,
                       "run_cuda: %s.data dtype %s differs from compute_dtype %s, which is not "
                       "implemented on CUDA yet",
                       name, dtype_name(w.data.dtype), dtype_name(compute));
  }
  if (w.scale.present()) {
    std::snprintf(field, sizeof(field), "%s.scale", name);
    return not_on_cuda_yet(field, "(block-scaled float weights)");
  }
  if (w.global_scale.present()) {
    std::snprintf(field, sizeof(field), "%s.global_scale", name);
    return not_on_cuda_yet(field, "(globally scaled float weights)");
  }
  return ok_status();
}

// What the CUDA engine covers today: unquantized BF16 / F16 GEMMs, e4m3 weights with e4m3
// activations (fp8_plan.h) and e2m1 weights with BF16 / F16, FP8 or NVFP4 activations
// (fp4_plan.h).
// Everything else is NotImplemented naming the field; never a silent fallback to the CPU.
Status check_scope(const MoeProblem& p) {
  FIMOE_RETURN_IF_ERROR(check_index_limits(p));
  // The FP8 path never rounds to the compute dtype (both GEMM inputs are e4m3), so any float
  // compute dtype works there.
  if (is_fp4_problem(p)) return check_fp4_scope(p);
  if (is_fp8_problem(p)) return check_fp8_scope(p);
  if (p.compute_dtype != DType::BF16 && p.compute_dtype != DType::F16) {
    return not_on_cuda_yet("compute_dtype", dtype_name(p.compute_dtype));
  }
  if (p.input.format != ElemFormat::Float) {
    return not_on_cuda_yet("input.format", elem_format_name(p.input.format));
  }
  if (p.input_quant.mode != ActQuant::None) {
    return not_on_cuda_yet("input_quant.mode", act_quant_name(p.input_quant.mode));
  }
  FIMOE_RETURN_IF_ERROR(check_weight_scope("w1", p.w1, p.compute_dtype));
  FIMOE_RETURN_IF_ERROR(check_weight_scope("w2", p.w2, p.compute_dtype));
  if (p.inter_quant.mode != ActQuant::None) {
    return not_on_cuda_yet("inter_quant.mode", act_quant_name(p.inter_quant.mode));
  }
  return ok_status();
}

Status current_device(DeviceInfo* info) {
  const cudaError_t err = current_device_info(info);
  if (err != cudaSuccess) {
    return make_status(StatusCode::RuntimeFailure, "run_cuda: reading the compute capability: %s",
                       cudaGetErrorString(err));
  }
  return ok_status();
}

// The family that runs one GEMM: the caller's forced tactic if it can run it, else the heuristic.
Status pick_tactic(const MoeProblem& p, const GroupedGemmArgs& args, int sm, const char* gemm,
                   GemmTactic* out) {
  const char* why = "";
  if (p.tactic != GemmTactic::Auto) {
    const int t = static_cast<int>(p.tactic);
    if (t < static_cast<int>(GemmTactic::Sm80Decode) || t > static_cast<int>(GemmTactic::Sm90)) {
      return make_status(StatusCode::InvalidValue, "tactic: invalid GemmTactic value %d", t);
    }
    if (!grouped_gemm_supports(p.tactic, args, sm, &why)) {
      return make_status(StatusCode::InvalidValue,
                         "tactic: %s cannot run %s on this device (sm_%d): %s",
                         gemm_tactic_name(p.tactic), gemm, sm, why ? why : "");
    }
    *out = p.tactic;
    return ok_status();
  }
  GemmTacticQuery q;
  q.sm = sm;
  q.num_slots = p.num_tokens * p.top_k;
  q.local_experts = p.local_num_experts;
  q.capacity = p.expert_capacity;
  q.sm90_supported = grouped_gemm_supports(GemmTactic::Sm90, args, sm, nullptr);
  // Both GEMMs decide on the whole expert (W1 + W2) so that they agree.
  const int64_t m1 = is_gated(p.activation) ? 2 * p.intermediate_size : p.intermediate_size;
  const int64_t bits = is_fp4_problem(p) ? 4 : (is_fp8_problem(p) ? 8 : 16);
  q.expert_weight_bytes = bits * (m1 + p.intermediate_size) * p.hidden_size / 8;
  q.fp8_k_scales = args.fp8 && (args.a_kscale.data != nullptr || args.b_kscale.data != nullptr);
  q.fp4_weights = is_fp4_problem(p);
  const GemmTactic choice = choose_gemm_tactic(q);
  if (grouped_gemm_supports(choice, args, sm, &why)) {
    *out = choice;
    return ok_status();
  }
  return make_status(StatusCode::NotImplemented,
                     "run_cuda: the GEMM family %s cannot run %s on this device (sm_%d): %s",
                     gemm_tactic_name(choice), gemm, sm, why ? why : "");
}

GroupedGemmArgs gemm_args(const MoeProblem& p, const CudaWorkspaceLayout& ws, const void* a,
                          int64_t lda, const TensorView& w, int64_t ldc, int64_t n, int64_t k) {
  GroupedGemmArgs g;
  g.a = a;
  g.lda = lda;
  g.dtype = p.compute_dtype;
  g.b = w.data;
  g.b_stride_e = w.strides[0];
  g.b_stride_n = w.strides[1];
  g.b_stride_k = w.strides[2];
  g.c = ws.gemm_output;
  g.ldc = ldc;
  g.n = n;
  g.k = k;
  g.num_experts = p.local_num_experts;
  g.row_offsets = ws.row_offsets;
  g.max_rows = ws.max_rows;
  g.scratch = ws.gemm_scratch;
  g.scratch_bytes = ws.gemm_scratch_bytes;
  return g;
}

// An FP8 GEMM's arguments: e4m3 codes on both sides and the scales that vary along K.
GroupedGemmArgs fp8_gemm_args(GroupedGemmArgs g, const Fp8GemmPlan& plan) {
  g.fp8 = true;
  g.a_kscale = plan.a_kscale;
  g.b_kscale = plan.b_kscale;
  return g;
}

// The F32 [E_local] activation parameter `v` as (pointer, stride), or null when absent.
const float* optional_param(const TensorView& v, int64_t* stride) {
  *stride = v.present() ? v.strides[0] : 0;
  return v.present() ? static_cast<const float*>(v.data) : nullptr;
}

// Turns a launcher's cudaError_t into a Status naming the phase.
Status launched(int err, const char* phase) {
  if (err == static_cast<int>(cudaSuccess)) return ok_status();
  return make_status(StatusCode::RuntimeFailure, "run_cuda: %s launch failed: %s", phase,
                     cudaGetErrorString(static_cast<cudaError_t>(err)));
}

// GEMM1's epilogue parameters (activation_kernel.h), for the activation kernel or the fused
// epilogue alike.
ActivationParams activation_params(const MoeProblem& p, const CudaWorkspaceLayout& ws) {
  ActivationParams act;
  act.activation = static_cast<int32_t>(p.activation);
  act.inter = p.intermediate_size;
  act.c1 = ws.gemm_output;
  act.ldc1 = ws.ld_gemm1_output;
  act.row_expert = ws.row_expert;
  act.permuted_to_expanded = ws.permuted_to_expanded;
  act.topk_weights = ws.topk_weights;
  act.weight_on_input = p.routing_weight_on_input;
  if (p.w1_bias.present()) {
    act.bias = p.w1_bias.data;
    act.bias_dtype = static_cast<int32_t>(p.w1_bias.dtype);
    act.bias_stride_e = p.w1_bias.strides[0];
    act.bias_stride_m = p.w1_bias.strides[1];
  }
  act.alpha = optional_param(p.act_alpha, &act.alpha_stride);
  act.beta = optional_param(p.act_beta, &act.beta_stride);
  act.limit = optional_param(p.act_limit, &act.limit_stride);
  const activation_math::ExpertParams defaults = activation_math::default_params(p.activation);
  act.default_alpha = defaults.alpha;
  act.default_beta = defaults.beta;
  act.default_limit = defaults.limit;
  act.top_k = p.top_k;
  if (p.gemm1_delta.present()) {
    act.delta = p.gemm1_delta.data;
    act.delta_dtype = static_cast<int32_t>(p.gemm1_delta.dtype);
    act.delta_stride_t = p.gemm1_delta.strides[0];
    act.delta_stride_k = p.gemm1_delta.strides[1];
    act.delta_stride_m = p.gemm1_delta.strides[2];
  }
  if (p.inter_output.present()) {
    act.inter_out = p.inter_output.data;
    act.inter_out_dtype = static_cast<int32_t>(p.inter_output.dtype);
    act.inter_out_rows = p.num_tokens * p.top_k;
    act.inter_out_stride_r = p.inter_output.strides[0];
    act.inter_out_stride_i = p.inter_output.strides[1];
  }
  act.row_count = ws.row_offsets + p.local_num_experts;
  act.max_rows = ws.max_rows;
  act.a2 = ws.gemm2_input;
  act.a2_dtype = static_cast<int32_t>(p.compute_dtype);
  act.lda2 = ws.ld_gemm2_input;
  return act;
}

// Whether the input rows can feed GEMM1 directly: already in the compute dtype, unit column
// stride and 16-byte aligned rows (what the GEMM's cp.async path copies).
bool input_feeds_gemm1(const MoeProblem& p) {
  const TensorView& x = p.input.data;
  return x.dtype == p.compute_dtype && x.strides[1] == 1 && x.strides[0] >= p.hidden_size &&
         x.strides[0] % 8 == 0 && reinterpret_cast<uintptr_t>(x.data) % 16 == 0;
}

// FLASHINFER_MOE_DISABLE_GEMM1_FUSION runs the gather and the activation as their own kernels
// even where GEMM1 could fuse them: a switch for A/B timing and for the test that the fused
// path gives the same bits.
bool gemm1_fusion_enabled() {
  static const bool disabled = std::getenv("FLASHINFER_MOE_DISABLE_GEMM1_FUSION") != nullptr;
  return !disabled;
}

// GEMM1 with the gather (a_row_index) and / or the activation fused in, when its family is sm80
// and the operands allow, or with the activation fused for FP8 on Sm90 where that measured
// faster (heuristics.h); false (and *out untouched) when nothing could be fused.
bool fuse_into_gemm1(const MoeProblem& p, const CudaWorkspaceLayout& ws, GemmTactic tactic,
                     const GroupedGemmArgs& gemm1, const ActivationParams* act, int sm,
                     GroupedGemmArgs* out) {
  if (!gemm1_fusion_enabled()) return false;
  // The GEMM1 delta and inter_output live in the activation kernels only (activation_kernel.h):
  // the fused epilogues never see them, so the activation stays a kernel of its own.
  const bool activation_fusable = !p.gemm1_delta.present() && !p.inter_output.present();
  GroupedGemmArgs g = gemm1;
  if (tactic == GemmTactic::Sm90) {
    if (!activation_fusable) return false;
    const int64_t experts = gemm1.num_experts > 0 ? gemm1.num_experts : 1;
    if (!gemm1.fp8 || !fuse_sm90_gemm1_activation(gemm1.k, gemm1.max_rows / experts)) {
      return false;
    }
    g.activation = act;
    if (!grouped_gemm_supports(tactic, g, sm, nullptr)) return false;
    *out = g;
    return true;
  }
  if (tactic != GemmTactic::Sm80Decode && tactic != GemmTactic::Sm80Prefill) return false;
  // FP8 input rows need the gather's quantization (or scale copy); the activation epilogue
  // also requantizes GEMM2's input when its groups fit one CTA (sm80_activation_epilogue.cuh).
  // Widened FP4 inputs (W4A8 / W4A4) take their own gather and activation kernels.
  if (!gemm1.fp8 && !widens_gemm1_input(p) && input_feeds_gemm1(p)) {
    g.a = p.input.data.data;
    g.lda = p.input.data.strides[0];
    g.a_row_index = ws.permuted_to_expanded;  // expanded slot t * k + j
    g.a_row_index_div = p.top_k;
  }
  if (activation_fusable && g.b_stride_k == 1 && !widens_gemm2_input(p)) g.activation = act;
  if (g.a_row_index == nullptr && g.activation == nullptr) return false;
  // The family has the last word; anything it refuses runs unfused.
  if (!grouped_gemm_supports(tactic, g, sm, nullptr)) return false;
  *out = g;
  return true;
}

// GEMM2's K splits (grouped_gemm.h k_splits): when its sm80 grid is too small for the device
// and the workspace holds the partials; 1 otherwise. FLASHINFER_MOE_DISABLE_SPLIT_K turns it
// off (A/B timing).
int32_t gemm2_k_splits(const CudaWorkspaceLayout& ws, GemmTactic tactic,
                       const GroupedGemmArgs& gemm2, int sm_count) {
  static const bool disabled = std::getenv("FLASHINFER_MOE_DISABLE_SPLIT_K") != nullptr;
  if (disabled || ws.gemm2_max_splits <= 1) return 1;
  if (tactic != GemmTactic::Sm80Decode && tactic != GemmTactic::Sm80Prefill) return 1;
  const GridSize grid = grouped_gemm_grid_size(tactic, gemm2);
  // FP4 weights: a split of half the minimum depth still holds four of the W4A16 decode tile's
  // 256-deep K tiles (gpt-oss-120b's K = 2880 then splits in two at T = 1).
  const bool fp4 = is_fp4_format(gemm2.b_format);
  const int32_t splits = choose_k_splits(
      grid.ctas, static_cast<int64_t>(grid.ctas_per_sm) * sm_count, fp4 ? 2 * gemm2.k : gemm2.k);
  return splits < ws.gemm2_max_splits ? splits : ws.gemm2_max_splits;
}

// Programmatic dependent launch (sm80_pdl.cuh) for the permutation -> GEMM1 -> GEMM2 ->
// finalize chain: sm_90 and newer, unless FLASHINFER_MOE_DISABLE_PDL is set (a switch for
// A/B timing and for tools that do not follow programmatic edges).
bool use_pdl(int sm) {
  static const bool disabled = std::getenv("FLASHINFER_MOE_DISABLE_PDL") != nullptr;
  return sm >= 90 && !disabled;
}

// GEMM1's input rows copied (and rounded, quantized to e4m3, or widened for e2m1 weights) into
// the workspace, when GEMM1 cannot read them.
Status enqueue_gather(const MoeProblem& p, const CudaWorkspaceLayout& ws, const Fp8Plan* fp8,
                      void* stream) {
  GatherParams gather;
  gather.input = p.input.data.data;
  gather.input_dtype = static_cast<int32_t>(p.input.data.dtype);
  gather.input_stride_t = p.input.data.strides[0];
  gather.input_stride_h = p.input.data.strides[1];
  gather.hidden = p.hidden_size;
  gather.top_k = p.top_k;
  gather.permuted_to_expanded = ws.permuted_to_expanded;
  gather.row_count = ws.row_offsets + p.local_num_experts;
  gather.max_rows = ws.max_rows;
  gather.a = ws.gemm1_input;
  gather.a_dtype = static_cast<int32_t>(p.compute_dtype);
  gather.lda = ws.ld_gemm1_input;
  gather.row_expert = ws.row_expert;
  if (fp8 != nullptr) {
    gather.quant = fp8->gemm1_input;
    gather.input_format = fp8->input_format;
    gather.input_scale = fp8->input_scale;
    gather.input_global = fp8->input_global;
  }
  if (widens_gemm1_input(p)) {
    gather.a_dtype = static_cast<int32_t>(DType::BF16);
    gather.quant.mode = static_cast<int32_t>(p.input_quant.mode);
    gather.quant.static_scale =
        scalar_or_per_expert(p.input_quant.static_scale, &gather.quant.static_stride);
    gather.input_format = static_cast<int32_t>(p.input.format);
    gather.input_scale = weight_scales_view(p.input, false, p.num_tokens, p.hidden_size);
    int64_t unused = 0;
    gather.input_global = scalar_or_per_expert(p.input.global_scale, &unused);
    gather.widen_row_scale = ws.gemm1_input_scales;
    return launched(launch_gather_widened(gather, stream), "gather");
  }
  return launched(launch_gather(gather, stream), "gather");
}

// Everything after validation: the kernels in pipeline order.
Status enqueue_pipeline(const MoeProblem& p, const CudaWorkspaceLayout& ws, const DeviceInfo& dev,
                        void* stream) {
  const int sm = dev.sm;
  const int64_t T = p.num_tokens, H = p.hidden_size, I = p.intermediate_size;
  const int64_t M1 = is_gated(p.activation) ? 2 * I : I;
  const int32_t E = p.local_num_experts;
  const int64_t* row_count = ws.row_offsets + E;

  // GEMM families first: a tactic that cannot run is reported before anything is enqueued.
  GroupedGemmArgs gemm1 =
      gemm_args(p, ws, ws.gemm1_input, ws.ld_gemm1_input, p.w1.data, ws.ld_gemm1_output, M1, H);
  GroupedGemmArgs gemm2 =
      gemm_args(p, ws, ws.gemm2_input, ws.ld_gemm2_input, p.w2.data, ws.ld_gemm2_output, H, I);
  Fp8Plan fp8;
  if (ws.fp8) {
    plan_fp8(p, ws, &fp8);
    gemm1 = fp8_gemm_args(gemm1, fp8.gemm1);
    gemm2 = fp8_gemm_args(gemm2, fp8.gemm2);
  }
  const bool fp4 = is_fp4_problem(p);
  Fp4Plan w4;
  if (fp4) {
    plan_fp4(p, ws, &w4);
    gemm1.dtype = w4.gemm1_dtype;
    gemm2.dtype = w4.gemm2_dtype;
    gemm1.b_format = p.w1.format;
    gemm1.b_kscale = w4.gemm1.b_kscale;
    gemm2.b_format = p.w2.format;
    gemm2.b_kscale = w4.gemm2.b_kscale;
  }
  GemmTactic tactic1 = GemmTactic::Auto, tactic2 = GemmTactic::Auto;
  FIMOE_RETURN_IF_ERROR(pick_tactic(p, gemm1, sm, "GEMM1", &tactic1));
  FIMOE_RETURN_IF_ERROR(pick_tactic(p, gemm2, sm, "GEMM2", &tactic2));
  ActivationParams act = activation_params(p, ws);
  if (ws.fp8) {
    act.dequant = fp8.gemm1.dequant;
    act.quant = fp8.gemm2_input;
  }
  if (fp4) {
    act.dequant = w4.gemm1.dequant;
    act.a2_dtype = static_cast<int32_t>(w4.gemm2_dtype);
    if (widens_gemm2_input(p)) {
      act.quant.mode = static_cast<int32_t>(p.inter_quant.mode);
      act.quant.static_scale =
          scalar_or_per_expert(p.inter_quant.static_scale, &act.quant.static_stride);
      act.widen_row_scale = ws.gemm2_input_scales;
    }
  }
  GroupedGemmArgs run1 = gemm1, run2 = gemm2;
  fuse_into_gemm1(p, ws, tactic1, gemm1, &act, sm, &run1);
  // One schedule for both GEMMs, written by the permutation, when they use the same sm80 tile.
  int32_t schedule_row_tile = 0;
  int64_t schedule_capacity = 0;
  const bool shared_schedule =
      tactic1 == tactic2 &&
      grouped_gemm_schedule_layout(tactic1, E, ws.max_rows, &schedule_row_tile, &schedule_capacity);
  run1.schedule_prebuilt = run2.schedule_prebuilt = shared_schedule;
  run2.k_splits = gemm2_k_splits(ws, tactic2, gemm2, dev.sm_count);
  run2.split_stride = run2.k_splits > 1 ? ws.max_rows * ws.ld_gemm2_output : 0;
  const bool pdl = use_pdl(sm);
  run1.pdl = run2.pdl = pdl;

  // Routing from logits runs its own kernel; precomputed routing is read by the permutation
  // itself (which copies ids and weights into the workspace): one launch fewer.
  RoutingKernelParams routing = routing_kernel_params(p);
  PermuteParams perm;
  if (routing.logits != nullptr) {
    routing.ids_out = ws.topk_ids;
    routing.ids_out_stride_t = p.top_k;
    routing.ids_out_stride_k = 1;
    routing.weights_out = ws.topk_weights;
    routing.weights_out_stride_t = p.top_k;
    routing.weights_out_stride_k = 1;
    FIMOE_RETURN_IF_ERROR(launched(launch_routing_kernel(routing, stream), "routing kernel"));
  } else {
    perm.routed_ids = routing.topk_ids;
    perm.routed_ids_stride_t = routing.ids_stride_t;
    perm.routed_ids_stride_k = routing.ids_stride_k;
    perm.routed_packed = routing.packed;
    perm.routed_weights = routing.topk_weights;
    perm.routed_weights_dtype = routing.weights_dtype;
    perm.routed_weights_stride_t = routing.weights_stride_t;
    perm.routed_weights_stride_k = routing.weights_stride_k;
    perm.top_k = p.top_k;
    perm.num_experts = p.num_experts;
    perm.ids_copy = ws.topk_ids;
    perm.weights_copy = ws.topk_weights;
  }

  perm.topk_ids = ws.topk_ids;
  perm.num_slots = ws.num_slots;
  perm.local_expert_offset = p.local_expert_offset;
  perm.local_num_experts = E;
  perm.capacity = p.expert_capacity;
  perm.chunk_counts = ws.chunk_counts;
  perm.num_chunks = ws.num_chunks;
  perm.expanded_to_permuted = ws.expanded_to_permuted;
  perm.permuted_to_expanded = ws.permuted_to_expanded;
  perm.row_expert = ws.row_expert;
  perm.row_offsets = ws.row_offsets;
  if (shared_schedule) {
    perm.schedule = ws.gemm_scratch;
    perm.schedule_row_tile = schedule_row_tile;
    perm.schedule_capacity = schedule_capacity;
    perm.max_rows = ws.max_rows;
  }
  perm.pdl = pdl;
  FIMOE_RETURN_IF_ERROR(launched(launch_permute(perm, stream), "permutation"));

  if (run1.a_row_index == nullptr) {
    FIMOE_RETURN_IF_ERROR(enqueue_gather(p, ws, ws.fp8 ? &fp8 : nullptr, stream));
  }
  FIMOE_RETURN_IF_ERROR(launched(launch_grouped_gemm(tactic1, run1, stream), "GEMM1"));
  if (run1.activation == nullptr) {
    const int err = act.widen_row_scale != nullptr ? launch_activation_widened(act, stream)
                                                   : launch_activation(act, stream);
    FIMOE_RETURN_IF_ERROR(launched(err, "activation"));
  }

  // GEMM2 overwrites GEMM1's output buffer: the activation above has consumed it.
  FIMOE_RETURN_IF_ERROR(launched(launch_grouped_gemm(tactic2, run2, stream), "GEMM2"));

  Gemm2Rows rows;
  rows.c2 = ws.gemm_output;
  rows.ldc2 = ws.ld_gemm2_output;
  rows.splits = run2.k_splits;
  rows.split_stride = run2.split_stride;
  rows.hidden = H;
  rows.row_expert = ws.row_expert;
  if (ws.fp8) rows.dequant = fp8.gemm2.dequant;
  if (fp4) rows.dequant = w4.gemm2.dequant;
  if (p.w2_bias.present()) {
    rows.bias = p.w2_bias.data;
    rows.bias_dtype = static_cast<int32_t>(p.w2_bias.dtype);
    rows.bias_stride_e = p.w2_bias.strides[0];
    rows.bias_stride_n = p.w2_bias.strides[1];
  }
  if (p.output.present()) {
    FinalizeParams fin;
    fin.rows = rows;
    fin.num_tokens = T;
    fin.top_k = p.top_k;
    fin.expanded_to_permuted = ws.expanded_to_permuted;
    fin.topk_weights = ws.topk_weights;
    fin.weight_on_input = p.routing_weight_on_input;
    fin.out = p.output.data;
    fin.out_dtype = static_cast<int32_t>(p.output.dtype);
    fin.out_stride_t = p.output.strides[0];
    fin.out_stride_n = p.output.strides[1];
    fin.pdl = pdl;
    FIMOE_RETURN_IF_ERROR(launched(launch_finalize(fin, stream), "finalize"));
  }
  if (p.permuted_output.present()) {
    PermutedOutputParams po;
    po.rows = rows;
    po.num_rows = ws.num_slots;
    po.row_count = row_count;
    po.out = static_cast<float*>(p.permuted_output.data);
    po.out_stride_r = p.permuted_output.strides[0];
    po.out_stride_n = p.permuted_output.strides[1];
    FIMOE_RETURN_IF_ERROR(launched(launch_permuted_output(po, stream), "permuted output"));
  }
  if (p.topk_ids_out.present() || p.topk_weights_out.present() ||
      p.expanded_to_permuted_out.present()) {
    RoutingOutputsParams ro;
    ro.num_tokens = T;
    ro.top_k = p.top_k;
    ro.topk_ids = ws.topk_ids;
    ro.topk_weights = ws.topk_weights;
    ro.expanded_to_permuted = ws.expanded_to_permuted;
    if (p.topk_ids_out.present()) {
      ro.ids_out = static_cast<int32_t*>(p.topk_ids_out.data);
      ro.ids_stride_t = p.topk_ids_out.strides[0];
      ro.ids_stride_k = p.topk_ids_out.strides[1];
    }
    if (p.topk_weights_out.present()) {
      ro.weights_out = static_cast<float*>(p.topk_weights_out.data);
      ro.weights_stride_t = p.topk_weights_out.strides[0];
      ro.weights_stride_k = p.topk_weights_out.strides[1];
    }
    if (p.expanded_to_permuted_out.present()) {
      ro.permutation_out = static_cast<int32_t*>(p.expanded_to_permuted_out.data);
      ro.permutation_stride_t = p.expanded_to_permuted_out.strides[0];
      ro.permutation_stride_k = p.expanded_to_permuted_out.strides[1];
    }
    FIMOE_RETURN_IF_ERROR(launched(launch_routing_outputs(ro, stream), "routing outputs"));
  }
  return ok_status();
}

}  // namespace
}  // namespace cuda

Status run_cuda(const MoeProblem& p, void* workspace, size_t workspace_bytes, void* stream) {
  FIMOE_RETURN_IF_ERROR(validate(p));
  FIMOE_RETURN_IF_ERROR(check_device(p, DeviceKind::CUDA, /*routing_only=*/false));
  FIMOE_RETURN_IF_ERROR(cuda::check_scope(p));
  FIMOE_RETURN_IF_ERROR(cuda::check_on_current_device(p, "run_cuda"));
  FIMOE_RETURN_IF_ERROR(cuda::check_routing_kernel_limits(p));
  if (p.num_tokens == 0) return ok_status();
  cuda::CudaWorkspaceLayout ws;
  cuda::plan_cuda_workspace(p, nullptr, &ws);
  if (workspace == nullptr || workspace_bytes < ws.bytes) {
    return make_status(StatusCode::InvalidValue,
                       "workspace: need at least %zu bytes (workspace_size), got %zu", ws.bytes,
                       workspace == nullptr ? size_t{0} : workspace_bytes);
  }
  cuda::plan_cuda_workspace(p, workspace, &ws);
  cuda::DeviceInfo dev;
  FIMOE_RETURN_IF_ERROR(cuda::current_device(&dev));
  return cuda::enqueue_pipeline(p, ws, dev, stream);
}

}  // namespace flashinfer_moe
