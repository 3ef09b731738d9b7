// The routing kernel: logits (or precomputed ids) -> top-k expert ids [T, k] and fp32 weights
// [T, k], for every RoutingMethod of docs/semantics.md, in one launch.
//
// One warp routes one token. The warp keeps the per-expert selection score in shared memory,
// picks the top k by k rounds of a warp-wide maximum of a 64-bit key (routing_math::topk_key:
// score, then the lower expert index), and lane j writes slot j. A max and a top-k are exact, so
// their parallel order cannot change the result; the only order-dependent steps are sums, and
// those run sequentially in one lane in the same order as the CPU executor:
//   * Default: the softmax denominator sums e^(s_e - max) over e = 0, 1, ..., E-1;
//   * the renormalizations sum the k selected values over slots j = 0, 1, ..., k-1.
// All float math goes through routing_math (routing_kernel.h), never expf/__expf or an fma, so
// the bits equal the CPU's. NaN scores rank last (after -inf), as on the CPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/routing_kernel.h"
#include "flashinfer_moe/types.h"

namespace flashinfer_moe {
namespace {

using namespace routing_math;

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xFFFFFFFFu;
constexpr int kMaxCandidatesPerLane = kRoutingMaxExperts / kWarp;  // fits one uint64 mask
static_assert(kMaxCandidatesPerLane <= 64, "a lane's taken-mask is one uint64");
constexpr int kSharedBytesPerBlock = 48 * 1024;  // no opt-in needed
constexpr int kMaxWarpsPerBlock = 8;

// Per-warp shared memory: selection scores [E], group scores [G], group kept flags [G], then the
// chosen ids and their scores [kRoutingMaxTopK].
struct WarpSmemLayout {
  int score_offset, group_score_offset, group_kept_offset, sel_id_offset, sel_score_offset, bytes;
};

__host__ __device__ inline int align16(int x) { return (x + 15) / 16 * 16; }

__host__ __device__ inline WarpSmemLayout warp_smem_layout(int score_count, int group_count) {
  WarpSmemLayout l;
  l.score_offset = 0;
  l.group_score_offset = align16(score_count * 4);
  l.group_kept_offset = l.group_score_offset + align16(group_count * 4);
  l.sel_id_offset = l.group_kept_offset + align16(group_count);
  l.sel_score_offset = l.sel_id_offset + kRoutingMaxTopK * 4;
  l.bytes = l.sel_score_offset + kRoutingMaxTopK * 4;
  return l;
}

__device__ inline float load_float(const void* base, int32_t dtype, int64_t offset) {
  switch (static_cast<DType>(dtype)) {
    case DType::F32:
      return static_cast<const float*>(base)[offset];
    case DType::F16:
      return formats::fp16_to_float(static_cast<const uint16_t*>(base)[offset]);
    case DType::BF16:
      return formats::bf16_to_float(static_cast<const uint16_t*>(base)[offset]);
    default:
      return 0.0f;  // excluded by validation
  }
}

__device__ inline float logit(const RoutingKernelParams& p, int64_t t, int32_t e) {
  return load_float(p.logits, p.logits_dtype, t * p.logits_stride_t + e * p.logits_stride_e);
}

__device__ inline uint64_t warp_max_u64(uint64_t v) {
  for (int d = kWarp / 2; d > 0; d /= 2) {
    const uint64_t o = __shfl_xor_sync(kFullMask, static_cast<unsigned long long>(v), d);
    v = o > v ? o : v;
  }
  return v;
}

__device__ inline float warp_max_f32(float v) {
  for (int d = kWarp / 2; d > 0; d /= 2) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, d));
  return v;
}

__device__ inline void write_slot(const RoutingKernelParams& p, int64_t t, int j, int32_t id,
                                  float w) {
  p.ids_out[t * p.ids_out_stride_t + j * p.ids_out_stride_k] = id;
  p.weights_out[t * p.weights_out_stride_t + j * p.weights_out_stride_k] = w;
}

// Precomputed routing: pass ids and weights through; ids outside [0, E) become -1.
__device__ void route_precomputed(const RoutingKernelParams& p, int64_t t, int lane) {
  if (lane >= p.top_k) return;
  const int32_t raw = p.topk_ids[t * p.ids_stride_t + lane * p.ids_stride_k];
  int32_t id;
  float w;
  if (p.packed) {
    id = static_cast<int16_t>(static_cast<uint32_t>(raw) >> 16);
    w = formats::bf16_to_float(static_cast<uint16_t>(static_cast<uint32_t>(raw) & 0xFFFFu));
  } else {
    id = raw;
    w = load_float(p.topk_weights, p.weights_dtype,
                   t * p.weights_stride_t + lane * p.weights_stride_k);
  }
  if (id < 0 || id >= p.num_experts) id = -1;  // skipped; its weight is kept as given (CPU too)
  write_slot(p, t, lane, id, w);
}

// RoundRobin: slot j gets expert (t*k + j) mod E; weights = softmax of those k logits.
__device__ void route_round_robin(const RoutingKernelParams& p, int64_t t, int lane,
                                  float* sel_score) {
  const bool active = lane < p.top_k;
  int32_t id = 0;
  float s = -INFINITY;
  if (active) {
    id = static_cast<int32_t>((t * p.top_k + lane) % p.num_experts);
    s = logit(p, t, id);
  }
  const float m = warp_max_f32(s);
  float ex = active ? routing_expf(sub(s, m)) : 0.0f;
  if (active) sel_score[lane] = ex;
  __syncwarp();
  float sum = 0.0f;
  if (lane == 0) {
    for (int j = 0; j < p.top_k; ++j) sum = add(sum, sel_score[j]);
  }
  sum = __shfl_sync(kFullMask, sum, 0);
  if (active) write_slot(p, t, lane, id, div(ex, sum));
  __syncwarp();  // sel_score is reused by the next token of this warp
}

// Selection score of expert e (the value the top-k orders by).
__device__ inline float selection_score(const RoutingKernelParams& p, RoutingMethod m, float s,
                                        int32_t e) {
  switch (m) {
    case RoutingMethod::Sigmoid:
    case RoutingMethod::SigmoidRenorm:
      return routing_sigmoid(s);
    case RoutingMethod::MiniMax2:
    case RoutingMethod::DeepSeekV3: {
      const float b = p.bias ? load_float(p.bias, p.bias_dtype, e * p.bias_stride) : 0.0f;
      return add(routing_sigmoid(s), b);
    }
    default:  // Default (rewritten below), Renormalize(Naive), TopK, TopKSigmoid, Llama4
      return s;
  }
}

// DeepSeekV3 group limit: score each group by the sum of its two largest selection scores, keep
// the topk_group best groups (ties to the lower group), and mark every expert of the other
// groups as taken so the top-k never sees it.
__device__ uint64_t exclude_unkept_groups(const RoutingKernelParams& p, int lane,
                                          const float* score, float* group_score,
                                          uint8_t* group_kept) {
  const int groups = p.n_group;
  const int group_size = p.num_experts / groups;
  for (int g = lane; g < groups; g += kWarp) {
    uint64_t k1 = kExcludedKey, k2 = kExcludedKey;
    for (int e = g * group_size; e < (g + 1) * group_size; ++e) {
      const uint64_t k = topk_key(score[e], e);
      if (k > k1) {
        k2 = k1;
        k1 = k;
      } else if (k > k2) {
        k2 = k;
      }
    }
    const float v1 = score[topk_key_expert(k1)];
    group_score[g] = group_size == 1 ? v1 : add(v1, score[topk_key_expert(k2)]);
    group_kept[g] = 0;
  }
  __syncwarp();
  // Each lane holds the groups g = lane + 32 i; a uint64 of taken bits covers 64 * 32 groups.
  uint64_t group_taken = 0;
  for (int r = 0; r < p.topk_group; ++r) {
    uint64_t best = kExcludedKey;
    int i = 0;
    for (int g = lane; g < groups; g += kWarp, ++i) {
      if (group_taken >> i & 1u) continue;
      const uint64_t k = topk_key(group_score[g], g);
      best = k > best ? k : best;
    }
    best = warp_max_u64(best);
    if (best == kExcludedKey) break;
    const int g = topk_key_expert(best);
    if (g % kWarp == lane) {
      group_taken |= uint64_t{1} << (g / kWarp);
      group_kept[g] = 1;
    }
  }
  __syncwarp();
  uint64_t taken = 0;
  int i = 0;
  for (int e = lane; e < p.num_experts; e += kWarp, ++i) {
    if (!group_kept[e / group_size]) taken |= uint64_t{1} << i;
  }
  return taken;
}

// Routing from logits by selection (every method but RoundRobin).
__device__ void route_top_k(const RoutingKernelParams& p, int64_t t, int lane,
                            const WarpSmemLayout& l, char* smem) {
  const RoutingMethod method = static_cast<RoutingMethod>(p.method);
  float* score = reinterpret_cast<float*>(smem + l.score_offset);
  int32_t* sel_id = reinterpret_cast<int32_t*>(smem + l.sel_id_offset);
  float* sel_score = reinterpret_cast<float*>(smem + l.sel_score_offset);
  const int E = p.num_experts;

  float local_max = -INFINITY;
  for (int e = lane; e < E; e += kWarp) {
    const float s = logit(p, t, e);
    score[e] = selection_score(p, method, s, e);
    local_max = fmaxf(local_max, s);
  }
  if (method == RoutingMethod::Default) {
    // p_e = e^(s_e - max) / sum_e' e^(s_e' - max), the sum in expert order by lane 0.
    const float m = warp_max_f32(local_max);
    for (int e = lane; e < E; e += kWarp) score[e] = routing_expf(sub(score[e], m));
    __syncwarp();
    float sum = 0.0f;
    if (lane == 0) {
      for (int e = 0; e < E; ++e) sum = add(sum, score[e]);
    }
    sum = __shfl_sync(kFullMask, sum, 0);
    for (int e = lane; e < E; e += kWarp) score[e] = div(score[e], sum);
  }
  __syncwarp();

  uint64_t taken = 0;  // bit i: candidate e = lane + 32 i is taken or excluded
  if (method == RoutingMethod::DeepSeekV3 && p.n_group > 1) {
    taken =
        exclude_unkept_groups(p, lane, score, reinterpret_cast<float*>(smem + l.group_score_offset),
                              reinterpret_cast<uint8_t*>(smem + l.group_kept_offset));
  }
  for (int r = 0; r < p.top_k; ++r) {
    uint64_t best = kExcludedKey;
    int i = 0;
    for (int e = lane; e < E; e += kWarp, ++i) {
      if (taken >> i & 1u) continue;
      const uint64_t k = topk_key(score[e], e);
      best = k > best ? k : best;
    }
    best = warp_max_u64(best);
    // Fewer eligible experts than k (only possible with a group limit): the slot stays empty.
    const int32_t e = best == kExcludedKey ? -1 : topk_key_expert(best);
    if (e >= 0 && e % kWarp == lane) taken |= uint64_t{1} << (e / kWarp);
    if (lane == 0) {
      sel_id[r] = e;
      sel_score[r] = e >= 0 ? score[e] : 0.0f;
    }
  }
  __syncwarp();

  // Weights. `value` is what slot j contributes to a renormalizing sum.
  const bool active = lane < p.top_k;
  const int32_t id = active ? sel_id[lane] : -1;
  const float key = active ? sel_score[lane] : 0.0f;
  float value = 0.0f;
  if (id >= 0) {
    switch (method) {
      case RoutingMethod::Renormalize:
      case RoutingMethod::RenormalizeNaive:
        value = routing_expf(sub(key, sel_score[0]));  // slot 0 holds the largest logit
        break;
      case RoutingMethod::TopKSigmoid:
      case RoutingMethod::Llama4:
        value = routing_sigmoid(key);
        break;
      case RoutingMethod::MiniMax2:
      case RoutingMethod::DeepSeekV3:
        value = routing_sigmoid(logit(p, t, id));  // the unbiased sigmoid
        break;
      default:  // Default (p), TopK (s), Sigmoid / SigmoidRenorm (sigmoid)
        value = key;
        break;
    }
  }
  const bool renormalizes =
      method == RoutingMethod::Renormalize || method == RoutingMethod::RenormalizeNaive ||
      method == RoutingMethod::MiniMax2 || method == RoutingMethod::DeepSeekV3 ||
      (method == RoutingMethod::SigmoidRenorm && p.norm_topk_prob);
  float weight = value;
  if (renormalizes) {
    __syncwarp();
    if (active) sel_score[lane] = value;  // reuse: the values, in slot order
    __syncwarp();
    float sum = 0.0f;
    if (lane == 0) {
      for (int j = 0; j < p.top_k; ++j) sum = add(sum, sel_score[j]);
    }
    sum = __shfl_sync(kFullMask, sum, 0);
    switch (method) {
      case RoutingMethod::SigmoidRenorm:
        weight = div(value, fmaxf(sum, 1e-20f));
        break;
      case RoutingMethod::MiniMax2:
        weight = mul(div(value, add(sum, 1e-20f)), p.routed_scaling_factor);
        break;
      case RoutingMethod::DeepSeekV3:
        weight = div(mul(value, p.routed_scaling_factor), add(sum, 1e-20f));
        break;
      default:  // softmax over the selected logits
        weight = div(value, sum);
        break;
    }
  }
  if (id < 0) weight = 0.0f;
  if (active) write_slot(p, t, lane, id, weight);
  __syncwarp();  // shared memory is reused by the next token of this warp
}

__global__ void routing_kernel(RoutingKernelParams p, WarpSmemLayout layout) {
  extern __shared__ __align__(16) char smem[];
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  const int warps = blockDim.x / kWarp;
  char* my_smem = smem + warp * layout.bytes;
  const RoutingMethod method = static_cast<RoutingMethod>(p.method);
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * warps + warp; t < p.num_tokens;
       t += static_cast<int64_t>(gridDim.x) * warps) {
    if (p.logits == nullptr) {
      route_precomputed(p, t, lane);
    } else if (method == RoutingMethod::RoundRobin) {
      route_round_robin(p, t, lane, reinterpret_cast<float*>(my_smem + layout.sel_score_offset));
    } else {
      route_top_k(p, t, lane, layout, my_smem);
    }
  }
}

}  // namespace

int launch_routing_kernel(const RoutingKernelParams& p, void* stream) {
  if (p.num_tokens == 0) return static_cast<int>(cudaSuccess);
  const bool selects =
      p.logits != nullptr && p.method != static_cast<int32_t>(RoutingMethod::RoundRobin);
  const bool grouped = p.method == static_cast<int32_t>(RoutingMethod::DeepSeekV3) && p.n_group > 1;
  const WarpSmemLayout layout =
      warp_smem_layout(selects ? p.num_experts : 0, grouped ? p.n_group : 0);
  const int warps = std::max(1, std::min(kMaxWarpsPerBlock, kSharedBytesPerBlock / layout.bytes));
  const int64_t blocks_needed = (p.num_tokens + warps - 1) / warps;
  const int blocks = static_cast<int>(std::min<int64_t>(blocks_needed, 1 << 20));
  routing_kernel<<<blocks, warps * kWarp, static_cast<size_t>(warps) * layout.bytes,
                   static_cast<cudaStream_t>(stream)>>>(p, layout);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace flashinfer_moe
