// CPU routing: one token at a time, fp32 math, exactly as docs/semantics.md "Routing" reads.
// Sums follow the CUDA kernel's lane tree (routing_math::lane_tree_sum) so that both give the
// same bits; every other step is order-free (max, top-k) or elementwise.
#include "cpu/routing.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/formats.h"
#include "common/routing_math.h"
#include "host/tensor_access.h"

namespace flashinfer_moe {
namespace cpu {
namespace {

float sigmoid(float x) { return routing_math::routing_sigmoid(x); }

// Strict weak order "index a ranks before index b": larger key first, ties to the lower index.
// NaN keys rank last so that a NaN logit cannot break the ordering contract of std::sort.
struct RanksBefore {
  const float* key;
  bool operator()(int a, int b) const {
    const float ka = key[a], kb = key[b];
    const bool nan_a = ka != ka, nan_b = kb != kb;
    if (nan_a || nan_b) return nan_a != nan_b ? nan_b : a < b;
    if (ka != kb) return ka > kb;
    return a < b;
  }
};

// Moves the best `k` of cand[0, n) to the front, in rank order.
void select_top(const float* key, int* cand, int n, int k) {
  std::partial_sort(cand, cand + k, cand + n, RanksBefore{key});
}

// Per-thread buffers, sized once per range of tokens.
struct Scratch {
  std::vector<float> logits, key, aux, group_score;
  std::vector<int> cand, groups;
  explicit Scratch(int E) : logits(E), key(E), aux(E), group_score(E), cand(E), groups(E) {}
};

void fill_candidates(Scratch& sc, int E) {
  for (int e = 0; e < E; ++e) sc.cand[e] = e;
}

// Top-k of `key` over all experts into ids[0, k).
void top_k_of(const float* key, Scratch& sc, int E, int k, int32_t* ids) {
  fill_candidates(sc, E);
  select_top(key, sc.cand.data(), E, k);
  for (int j = 0; j < k; ++j) ids[j] = sc.cand[j];
}

// Sum of value(0), ..., value(n - 1) as the CUDA kernel forms it: term i goes to lane i % 32,
// each lane adds its terms in order starting from 0, then the lane tree. (Experts e = 0..E-1 and
// the top-k slots j = 0..k-1 alike; the kernel has k <= 32, one slot per lane.)
template <typename Value>
float lane_strided_sum(int n, Value value) {
  float lanes[routing_math::kRoutingSumLanes] = {};
  for (int i = 0; i < n; ++i) {
    float& lane = lanes[i % routing_math::kRoutingSumLanes];
    lane = lane + value(i);
  }
  return routing_math::lane_tree_sum(lanes);
}

// Softmax over the values v[ids[j]], j = 0..k-1 (max subtracted, slot sum).
void softmax_of_selected(const float* v, const int32_t* ids, int k, float* w) {
  float m = -std::numeric_limits<float>::infinity();
  for (int j = 0; j < k; ++j) m = std::max(m, v[ids[j]]);
  for (int j = 0; j < k; ++j) w[j] = routing_math::routing_expf(v[ids[j]] - m);
  const float sum = lane_strided_sum(k, [&](int j) { return w[j]; });
  for (int j = 0; j < k; ++j) w[j] = w[j] / sum;
}

float sum_selected(const float* v, const int32_t* ids, int k) {
  return lane_strided_sum(k, [&](int j) { return v[ids[j]]; });
}

// DeepSeekV3 group-limited selection: keep the topk_group groups with the best sum of their
// two largest scores, then the top-k experts of those groups.
void group_limited_top_k(const float* b, Scratch& sc, int E, int k, int n_group, int topk_group,
                         int32_t* ids) {
  const int per_group = E / n_group;
  for (int g = 0; g < n_group; ++g) {
    int* members = sc.cand.data() + g * per_group;
    for (int i = 0; i < per_group; ++i) members[i] = g * per_group + i;
    const int best = std::min(2, per_group);
    select_top(b, members, per_group, best);
    sc.group_score[g] = best == 1 ? b[members[0]] : b[members[0]] + b[members[1]];
  }
  for (int g = 0; g < n_group; ++g) sc.groups[g] = g;
  select_top(sc.group_score.data(), sc.groups.data(), n_group, topk_group);
  // Candidates: experts of the kept groups (any order; select_top orders them).
  int n = 0;
  for (int i = 0; i < topk_group; ++i) {
    const int g = sc.groups[i];
    for (int e = g * per_group; e < (g + 1) * per_group; ++e) sc.cand[n++] = e;
  }
  select_top(b, sc.cand.data(), n, k);
  for (int j = 0; j < k; ++j) ids[j] = sc.cand[j];
}

void route_from_logits(const MoeProblem& p, int64_t t, Scratch& sc, int32_t* ids, float* w) {
  const RoutingSpec& r = p.routing;
  const int E = p.num_experts;
  const int k = p.top_k;
  float* s = sc.logits.data();
  float* key = sc.key.data();
  float* u = sc.aux.data();
  for (int e = 0; e < E; ++e) s[e] = load_f32(r.logits, offset_of(r.logits, t, e));
  auto bias = [&](int e) {
    return r.bias.present() ? load_f32(r.bias, offset_of(r.bias, e)) : 0.0f;
  };

  switch (r.method) {
    case RoutingMethod::Default: {
      float m = -std::numeric_limits<float>::infinity();
      for (int e = 0; e < E; ++e) m = std::max(m, s[e]);
      for (int e = 0; e < E; ++e) key[e] = routing_math::routing_expf(s[e] - m);
      const float sum = lane_strided_sum(E, [&](int e) { return key[e]; });
      for (int e = 0; e < E; ++e) key[e] = key[e] / sum;
      top_k_of(key, sc, E, k, ids);
      for (int j = 0; j < k; ++j) w[j] = key[ids[j]];
      break;
    }
    case RoutingMethod::Renormalize:
    case RoutingMethod::RenormalizeNaive:
      top_k_of(s, sc, E, k, ids);
      softmax_of_selected(s, ids, k, w);
      break;
    case RoutingMethod::TopK:
      top_k_of(s, sc, E, k, ids);
      for (int j = 0; j < k; ++j) w[j] = s[ids[j]];
      break;
    case RoutingMethod::TopKSigmoid:
      top_k_of(s, sc, E, k, ids);
      for (int j = 0; j < k; ++j) w[j] = sigmoid(s[ids[j]]);
      break;
    case RoutingMethod::Sigmoid:
    case RoutingMethod::SigmoidRenorm: {
      for (int e = 0; e < E; ++e) u[e] = sigmoid(s[e]);
      top_k_of(u, sc, E, k, ids);
      for (int j = 0; j < k; ++j) w[j] = u[ids[j]];
      if (r.method == RoutingMethod::SigmoidRenorm && r.norm_topk_prob) {
        const float denom = std::max(sum_selected(u, ids, k), 1e-20f);
        for (int j = 0; j < k; ++j) w[j] = w[j] / denom;
      }
      break;
    }
    case RoutingMethod::MiniMax2: {
      for (int e = 0; e < E; ++e) {
        u[e] = sigmoid(s[e]);
        key[e] = u[e] + bias(e);
      }
      top_k_of(key, sc, E, k, ids);
      const float denom = sum_selected(u, ids, k) + 1e-20f;
      for (int j = 0; j < k; ++j) w[j] = u[ids[j]] / denom * r.routed_scaling_factor;
      break;
    }
    case RoutingMethod::DeepSeekV3: {
      for (int e = 0; e < E; ++e) {
        u[e] = sigmoid(s[e]);
        key[e] = u[e] + bias(e);
      }
      if (r.n_group > 1) {
        group_limited_top_k(key, sc, E, k, r.n_group, r.topk_group, ids);
      } else {
        top_k_of(key, sc, E, k, ids);
      }
      const float denom = sum_selected(u, ids, k) + 1e-20f;
      for (int j = 0; j < k; ++j) w[j] = u[ids[j]] * r.routed_scaling_factor / denom;
      break;
    }
    case RoutingMethod::Llama4:
      top_k_of(s, sc, E, 1, ids);
      w[0] = sigmoid(s[ids[0]]);
      break;
    case RoutingMethod::RoundRobin:
      for (int j = 0; j < k; ++j) ids[j] = static_cast<int32_t>((t * k + j) % E);
      softmax_of_selected(s, ids, k, w);
      break;
    default:
      break;  // rejected by validation
  }
}

void route_precomputed(const MoeProblem& p, int64_t t, int32_t* ids, float* w) {
  const RoutingSpec& r = p.routing;
  for (int j = 0; j < p.top_k; ++j) {
    const int32_t word = load_i32(r.topk_ids, offset_of(r.topk_ids, t, j));
    int32_t id;
    float weight;
    if (r.packed) {
      // High 16 bits: signed expert id; low 16 bits: bf16 weight.
      id = static_cast<int16_t>(static_cast<uint16_t>(static_cast<uint32_t>(word) >> 16));
      weight = formats::bf16_to_float(static_cast<uint16_t>(static_cast<uint32_t>(word) & 0xffffu));
    } else {
      id = word;
      weight = load_f32(r.topk_weights, offset_of(r.topk_weights, t, j));
    }
    ids[j] = (id >= 0 && id < p.num_experts) ? id : -1;
    w[j] = weight;
  }
}

}  // namespace

void route_tokens(const MoeProblem& p, int64_t t_begin, int64_t t_end, int32_t* ids,
                  float* weights) {
  const int64_t k = p.top_k;
  if (!p.routing.logits.present()) {
    for (int64_t t = t_begin; t < t_end; ++t) route_precomputed(p, t, ids + t * k, weights + t * k);
    return;
  }
  Scratch scratch(p.num_experts);
  for (int64_t t = t_begin; t < t_end; ++t) {
    route_from_logits(p, t, scratch, ids + t * k, weights + t * k);
  }
}

}  // namespace cpu
}  // namespace flashinfer_moe
