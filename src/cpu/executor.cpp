// The CPU executor: run_cpu and route_cpu (flashinfer_moe/moe.h).
//
// Phases, each a parallel_for over independent items so that results are bitwise identical for
// any thread count: routing (per token) -> permutation (one serial scan) -> GEMM1 inputs (per
// permuted row: gather, dequantize, quantize for its expert) -> GEMM1 (per weight row: decode the
// row once, dot it with every activation row of its expert) -> activation + requantization (per
// row) -> GEMM2 (per weight row) -> finalize (per token, slots summed in order j = 0..k-1).
#include <algorithm>
#include <cstring>
#include <exception>
#include <limits>
#include <vector>

#include "cpu/act_quant.h"
#include "cpu/activation.h"
#include "cpu/dequant.h"
#include "cpu/permute.h"
#include "cpu/routing.h"
#include "cpu/thread_pool.h"
#include "cpu/workspace_layout.h"
#include "flashinfer_moe/moe.h"
#include "host/status.h"
#include "host/tensor_access.h"
#include "host/validate.h"

namespace flashinfer_moe {
namespace {

using cpu::parallel_for;

// Grain sizes: below these a phase stays on the calling thread (thread start-up costs more).
constexpr int64_t kTokensPerThread = 16;
constexpr int64_t kMacsPerThread = 1 << 16;

// fp32 dot product with 8 independent partial sums in a fixed pattern: vectorizable without
// reassociation, and the same order whichever thread computes it.
inline float dot(const float* a, const float* b, int64_t n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) s[l] += a[i + l] * b[i + l];
  }
  for (int l = 0; i < n; ++i, ++l) s[l] += a[i] * b[i];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

struct Context {
  const MoeProblem& p;
  cpu::WorkspaceLayout ws;
  int threads;
  int64_t T, H, I, M1, k;
  int64_t num_rows = 0;
  int32_t num_active = 0;
};

void run_routing(Context& c) {
  parallel_for(c.T, c.threads, kTokensPerThread, [&](int64_t t0, int64_t t1) {
    cpu::route_tokens(c.p, t0, t1, c.ws.topk_ids, c.ws.topk_weights);
  });
}

void run_permutation(Context& c) {
  const MoeProblem& p = c.p;
  cpu::PermutationMaps maps{c.ws.expanded_to_permuted, c.ws.permuted_to_expanded, c.ws.row_expert,
                            c.ws.expert_offsets};
  c.num_rows = cpu::build_permutation(c.ws.topk_ids, c.T, p.top_k, p.local_expert_offset,
                                      p.local_num_experts, p.expert_capacity, maps);
  c.num_active = 0;
  for (int32_t e = 0; e < p.local_num_experts; ++e) {
    if (c.ws.expert_offsets[e + 1] > c.ws.expert_offsets[e])
      c.ws.active_experts[c.num_active++] = e;
  }
}

// GEMM1 input of each permuted row: a quantized input is only dequantized; a Float input is
// dequantized then quantized with input_quant for the row's expert (static scales may differ).
void build_gemm1_inputs(Context& c) {
  const MoeProblem& p = c.p;
  const cpu::QuantRowDecoder input(p.input, false, c.T, c.H);
  const bool requantize = p.input.format == ElemFormat::Float;
  parallel_for(c.num_rows, c.threads, std::max<int64_t>(1, kMacsPerThread / c.H),
               [&](int64_t r0, int64_t r1) {
                 for (int64_t r = r0; r < r1; ++r) {
                   float* x = c.ws.gemm1_input + r * c.H;
                   const int64_t t = c.ws.permuted_to_expanded[r] / c.k;
                   input.decode_row(0, t, x);
                   if (!requantize) continue;
                   const int32_t e = c.ws.row_expert[r];
                   const float s = load_scalar_or_per_expert(p.input_quant.static_scale, e, 1.0f);
                   cpu::quantize_row(p.input_quant.mode, p.input_quant.group_size, s,
                                     p.compute_dtype, x, c.H);
                 }
               });
}

// out[r, n] = dot(act[r, 0:K], W[e, n, 0:K]) for every row r of every active expert e, with
// each weight row decoded once. Work items are (active expert, weight row) pairs.
void grouped_gemm(Context& c, const QuantTensor& w, int64_t N, int64_t K, const float* act,
                  float* out) {
  const cpu::QuantRowDecoder weights(w, true, N, K);
  const int64_t items = static_cast<int64_t>(c.num_active) * N;
  const int64_t avg_rows = std::max<int64_t>(1, c.num_rows / std::max(1, c.num_active));
  const int64_t grain = std::max<int64_t>(1, kMacsPerThread / (K * avg_rows));
  parallel_for(items, c.threads, grain, [&](int64_t i0, int64_t i1) {
    std::vector<float> wrow(static_cast<size_t>(K));
    for (int64_t i = i0; i < i1; ++i) {
      const int32_t e = c.ws.active_experts[i / N];
      const int64_t n = i % N;
      weights.decode_row(e, n, wrow.data());
      for (int64_t r = c.ws.expert_offsets[e]; r < c.ws.expert_offsets[e + 1]; ++r) {
        out[r * N + n] = dot(act + r * K, wrow.data(), K);
      }
    }
  });
}

float load_optional(const TensorView& v, int64_t e, float fallback) {
  return v.present() ? load_f32(v, offset_of(v, e)) : fallback;
}

// Routing weight on input, GEMM1 bias, GEMM1 delta, activation (optionally copied out to
// inter_output) and inter_quant, per permuted row.
void activate_rows(Context& c) {
  const MoeProblem& p = c.p;
  const cpu::ActivationParams defaults = activation_math::default_params(p.activation);
  const TensorView& delta = p.gemm1_delta;
  const TensorView& inter_out = p.inter_output;
  parallel_for(c.num_rows, c.threads, std::max<int64_t>(1, kMacsPerThread / (c.M1 * 8)),
               [&](int64_t r0, int64_t r1) {
                 std::vector<float> acc(static_cast<size_t>(c.M1));
                 for (int64_t r = r0; r < r1; ++r) {
                   const int32_t e = c.ws.row_expert[r];
                   const float* g1 = c.ws.gemm1_output + r * c.M1;
                   const int64_t slot = c.ws.permuted_to_expanded[r];
                   const float w = c.ws.topk_weights[slot];
                   for (int64_t m = 0; m < c.M1; ++m) {
                     float a = g1[m];
                     if (p.routing_weight_on_input) a = a * w;
                     if (p.w1_bias.present())
                       a = a + load_f32(p.w1_bias, offset_of(p.w1_bias, e, m));
                     if (delta.present())
                       a = a + load_f32(delta, offset_of(delta, slot / c.k, slot % c.k, m));
                     acc[static_cast<size_t>(m)] = a;
                   }
                   cpu::ActivationParams prm;
                   prm.alpha = load_optional(p.act_alpha, e, defaults.alpha);
                   prm.beta = load_optional(p.act_beta, e, defaults.beta);
                   prm.limit = load_optional(p.act_limit, e, defaults.limit);
                   float* h = c.ws.intermediate + r * c.I;
                   cpu::activate_row(p.activation, acc.data(), c.I, prm, h);
                   if (inter_out.present()) {
                     for (int64_t i = 0; i < c.I; ++i) {
                       store_f32(inter_out, offset_of(inter_out, r, i), h[i]);
                     }
                   }
                   const float s = load_scalar_or_per_expert(p.inter_quant.static_scale, e, 1.0f);
                   cpu::quantize_row(p.inter_quant.mode, p.inter_quant.group_size, s,
                                     p.compute_dtype, h, c.I);
                 }
               });
  // Rows past the kept ones exist in inter_output (T*k rows) but not in the workspace.
  if (inter_out.present()) {
    for (int64_t r = c.num_rows; r < c.T * c.k; ++r) {
      for (int64_t i = 0; i < c.I; ++i) store_f32(inter_out, offset_of(inter_out, r, i), 0.0f);
    }
  }
}

void add_gemm2_bias(Context& c) {
  const MoeProblem& p = c.p;
  if (!p.w2_bias.present()) return;
  parallel_for(c.num_rows, c.threads, std::max<int64_t>(1, kMacsPerThread / c.H),
               [&](int64_t r0, int64_t r1) {
                 for (int64_t r = r0; r < r1; ++r) {
                   const int32_t e = c.ws.row_expert[r];
                   float* row = c.ws.gemm2_output + r * c.H;
                   for (int64_t n = 0; n < c.H; ++n) {
                     row[n] = row[n] + load_f32(p.w2_bias, offset_of(p.w2_bias, e, n));
                   }
                 }
               });
}

// out[t] = sum over j = 0..k-1 of w[t, j] * gemm2 row of (t, j), fp32, rounded once.
void finalize(Context& c) {
  const MoeProblem& p = c.p;
  const TensorView& out = p.output;
  parallel_for(c.T, c.threads, std::max<int64_t>(1, kMacsPerThread / (c.H * c.k)),
               [&](int64_t t0, int64_t t1) {
                 std::vector<float> sum(static_cast<size_t>(c.H));
                 for (int64_t t = t0; t < t1; ++t) {
                   std::fill(sum.begin(), sum.end(), 0.0f);
                   for (int64_t j = 0; j < c.k; ++j) {
                     const int64_t r = c.ws.expanded_to_permuted[t * c.k + j];
                     if (r < 0) continue;
                     const float w =
                         p.routing_weight_on_input ? 1.0f : c.ws.topk_weights[t * c.k + j];
                     const float* row = c.ws.gemm2_output + r * c.H;
                     for (int64_t n = 0; n < c.H; ++n) sum[n] = sum[n] + w * row[n];
                   }
                   for (int64_t n = 0; n < c.H; ++n) store_f32(out, offset_of(out, t, n), sum[n]);
                 }
               });
}

// permuted_output [T*k, H] F32: GEMM2 rows in permuted order, zero beyond the kept rows.
void write_permuted_output(Context& c) {
  const TensorView& po = c.p.permuted_output;
  parallel_for(c.T * c.k, c.threads, std::max<int64_t>(1, kMacsPerThread / c.H),
               [&](int64_t r0, int64_t r1) {
                 for (int64_t r = r0; r < r1; ++r) {
                   const float* row = r < c.num_rows ? c.ws.gemm2_output + r * c.H : nullptr;
                   for (int64_t n = 0; n < c.H; ++n) {
                     store_f32(po, offset_of(po, r, n), row ? row[n] : 0.0f);
                   }
                 }
               });
}

void write_routing_outputs(const Context& c, bool with_permutation) {
  const MoeProblem& p = c.p;
  for (int64_t t = 0; t < c.T; ++t) {
    for (int64_t j = 0; j < c.k; ++j) {
      const int64_t s = t * c.k + j;
      if (p.topk_ids_out.present()) {
        store_i32(p.topk_ids_out, offset_of(p.topk_ids_out, t, j), c.ws.topk_ids[s]);
      }
      if (p.topk_weights_out.present()) {
        store_f32(p.topk_weights_out, offset_of(p.topk_weights_out, t, j), c.ws.topk_weights[s]);
      }
      if (with_permutation && p.expanded_to_permuted_out.present()) {
        store_i32(p.expanded_to_permuted_out, offset_of(p.expanded_to_permuted_out, t, j),
                  static_cast<int32_t>(c.ws.expanded_to_permuted[s]));
      }
    }
  }
}

Status run_cpu_impl(const MoeProblem& p, void* workspace, size_t workspace_bytes, int num_threads) {
  FIMOE_RETURN_IF_ERROR(validate(p));
  FIMOE_RETURN_IF_ERROR(check_device(p, DeviceKind::CPU, false));
  cpu::WorkspaceLayout needed;
  cpu::plan_workspace(p, nullptr, &needed);
  if (p.num_tokens == 0) return ok_status();
  if (workspace == nullptr || workspace_bytes < needed.bytes) {
    return make_status(StatusCode::InvalidValue,
                       "workspace: need at least %zu bytes (workspace_size), got %zu", needed.bytes,
                       workspace == nullptr ? size_t{0} : workspace_bytes);
  }
  Context c{p,
            {},
            cpu::resolve_num_threads(num_threads),
            p.num_tokens,
            p.hidden_size,
            p.intermediate_size,
            is_gated(p.activation) ? 2 * p.intermediate_size : p.intermediate_size,
            p.top_k};
  cpu::plan_workspace(p, workspace, &c.ws);

  run_routing(c);
  run_permutation(c);
  build_gemm1_inputs(c);
  grouped_gemm(c, p.w1, c.M1, c.H, c.ws.gemm1_input, c.ws.gemm1_output);
  activate_rows(c);
  // gemm2_output reuses gemm1_input's memory: GEMM1 is done with it.
  grouped_gemm(c, p.w2, c.H, c.I, c.ws.intermediate, c.ws.gemm2_output);
  add_gemm2_bias(c);
  if (p.output.present()) finalize(c);
  if (p.permuted_output.present()) write_permuted_output(c);
  write_routing_outputs(c, true);
  return ok_status();
}

Status route_cpu_impl(const MoeProblem& p, int num_threads) {
  FIMOE_RETURN_IF_ERROR(validate_routing_only(p));
  FIMOE_RETURN_IF_ERROR(check_device(p, DeviceKind::CPU, true));
  const int64_t slots = p.num_tokens * p.top_k;
  if (slots == 0) return ok_status();
  std::vector<int32_t> ids(static_cast<size_t>(slots));
  std::vector<float> weights(static_cast<size_t>(slots));
  Context c{p, {}, cpu::resolve_num_threads(num_threads), p.num_tokens, 0, 0, 0, p.top_k};
  c.ws.topk_ids = ids.data();
  c.ws.topk_weights = weights.data();
  run_routing(c);
  write_routing_outputs(c, false);
  return ok_status();
}

}  // namespace

Status run_cpu(const MoeProblem& p, void* workspace, size_t workspace_bytes, int num_threads) {
  try {
    return run_cpu_impl(p, workspace, workspace_bytes, num_threads);
  } catch (const std::exception& e) {
    return make_status(StatusCode::RuntimeFailure, "run_cpu: %s", e.what());
  } catch (...) {
    return make_status(StatusCode::RuntimeFailure, "run_cpu: unknown failure");
  }
}

Status route_cpu(const MoeProblem& p, int num_threads) {
  try {
    return route_cpu_impl(p, num_threads);
  } catch (const std::exception& e) {
    return make_status(StatusCode::RuntimeFailure, "route_cpu: %s", e.what());
  } catch (...) {
    return make_status(StatusCode::RuntimeFailure, "route_cpu: unknown failure");
  }
}

}  // namespace flashinfer_moe
