// The routing kernel: logits (or precomputed ids) -> top-k expert ids [T, k] and fp32 weights
// [T, k], for every RoutingMethod of docs/semantics.md, in one launch.
//
// One warp routes one token, several tokens per block. Candidate expert e = lane + 32 i lives in
// register i of its lane (the kernel is instantiated for 1..64 registers, E <= 2048), so a token
// costs one round of loads. The top k takes k rounds of two one-instruction warp reductions
// (__reduce_max_sync of a 32-bit score key, then __reduce_min_sync of the expert index among the
// lanes holding it); only the lane that owned the winner rescans its registers. A max and a top-k
// are exact, so their parallel order cannot change the result. Sums (the Default softmax over
// all experts, the renormalizations over the k slots) are the fixed lane tree of
// routing_math::lane_tree_sum, which the CPU executor mirrors, so the bits agree.
// All float math goes through routing_math, never expf/__expf or an fma. NaN scores rank last
// (after -inf), as on the CPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/routing/routing_kernel.h"
#include "cuda/sm80_pdl.cuh"
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

// Per-warp shared memory, for the DeepSeekV3 group limit only: selection scores [E], group
// scores [G], group kept flags [G].
struct WarpSmemLayout {
  int score_offset, group_score_offset, group_kept_offset, bytes;
};

__host__ __device__ inline int align16(int x) { return (x + 15) / 16 * 16; }

__host__ __device__ inline WarpSmemLayout warp_smem_layout(int score_count, int group_count) {
  WarpSmemLayout l;
  l.score_offset = 0;
  l.group_score_offset = align16(score_count * 4);
  l.group_kept_offset = l.group_score_offset + align16(group_count * 4);
  l.bytes = l.group_kept_offset + align16(group_count);
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

// The fixed lane tree of routing_math::lane_tree_sum, as a butterfly: every lane ends with the
// same bits (fp32 addition is commutative), equal to the CPU's mirror.
__device__ inline float warp_tree_sum(float v) {
  for (int d = kWarp / 2; d > 0; d /= 2) v = add(v, __shfl_xor_sync(kFullMask, v, d));
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
__device__ void route_round_robin(const RoutingKernelParams& p, int64_t t, int lane) {
  const bool active = lane < p.top_k;
  int32_t id = 0;
  float s = -INFINITY;
  if (active) {
    id = static_cast<int32_t>((t * p.top_k + lane) % p.num_experts);
    s = logit(p, t, id);
  }
  const float m = warp_max_f32(s);
  const float ex = active ? routing_expf(sub(s, m)) : 0.0f;
  const float sum = warp_tree_sum(active ? add(0.0f, ex) : 0.0f);
  if (active) write_slot(p, t, lane, id, div(ex, sum));
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

// Logits of candidates e = lane + 32 i (i < kPerLane) into registers: all loads are issued
// before any is used, so a token costs one memory latency. Candidates past E read as 0.
template <int kPerLane, typename Load>
__device__ inline void load_candidates(const RoutingKernelParams& p, int64_t t, int lane, Load load,
                                       float (&s)[kPerLane]) {
  const int64_t row = t * p.logits_stride_t;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int e = lane + kWarp * i;
    s[i] = e < p.num_experts ? load(row + e * p.logits_stride_e) : 0.0f;
  }
}

template <int kPerLane>
__device__ inline void load_logits(const RoutingKernelParams& p, int64_t t, int lane,
                                   float (&s)[kPerLane]) {
  switch (static_cast<DType>(p.logits_dtype)) {  // uniform: one branch per token, not per load
    case DType::F16: {
      const uint16_t* x = static_cast<const uint16_t*>(p.logits);
      load_candidates(p, t, lane, [x](int64_t o) { return formats::fp16_to_float(x[o]); }, s);
      break;
    }
    case DType::BF16: {
      const uint16_t* x = static_cast<const uint16_t*>(p.logits);
      load_candidates(p, t, lane, [x](int64_t o) { return formats::bf16_to_float(x[o]); }, s);
      break;
    }
    default: {
      const float* x = static_cast<const float*>(p.logits);
      load_candidates(p, t, lane, [x](int64_t o) { return x[o]; }, s);
      break;
    }
  }
}

// A lane's best remaining candidate (largest score key, then lowest index: i ascends with e).
template <int kPerLane>
__device__ inline void lane_best(const float (&score)[kPerLane], uint64_t taken, int lane, int E,
                                 uint32_t* best_key, int* best_i, float* best_score) {
  uint32_t bk = kExcludedScoreKey;
  int bi = 0;
  float bs = 0.0f;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const bool eligible = lane + kWarp * i < E && !(taken >> i & 1u);
    const uint32_t k = eligible ? topk_score_key(score[i]) : kExcludedScoreKey;
    if (k > bk) {
      bk = k;
      bi = i;
      bs = score[i];
    }
  }
  *best_key = bk;
  *best_i = bi;
  *best_score = bs;
}

// Routing from logits by selection (every method but RoundRobin). Candidate e = lane + 32 i
// lives in register i of its lane; shared memory is used only by the DeepSeekV3 group limit.
template <int kPerLane>
__device__ void route_top_k(const RoutingKernelParams& p, int64_t t, int lane,
                            const WarpSmemLayout& l, char* smem) {
  const RoutingMethod method = static_cast<RoutingMethod>(p.method);
  const int E = p.num_experts;

  float score[kPerLane];
  load_logits<kPerLane>(p, t, lane, score);
  float local_max = -INFINITY;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int e = lane + kWarp * i;
    if (e < E) {
      local_max = fmaxf(local_max, score[i]);
      score[i] = selection_score(p, method, score[i], e);
    }
  }
  if (method == RoutingMethod::Default) {
    // p_e = e^(s_e - max) / sum_e' e^(s_e' - max); the sum is the lane tree (routing_math.h).
    const float m = warp_max_f32(local_max);
    float part = 0.0f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      if (lane + kWarp * i < E) {
        score[i] = routing_expf(sub(score[i], m));
        part = add(part, score[i]);
      }
    }
    const float sum = warp_tree_sum(part);
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) score[i] = div(score[i], sum);
  }

  uint64_t taken = 0;  // bit i: candidate e = lane + 32 i is taken or excluded
  if (method == RoutingMethod::DeepSeekV3 && p.n_group > 1) {
    float* by_expert = reinterpret_cast<float*>(smem + l.score_offset);
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      if (lane + kWarp * i < E) by_expert[lane + kWarp * i] = score[i];
    }
    __syncwarp();
    taken = exclude_unkept_groups(p, lane, by_expert,
                                  reinterpret_cast<float*>(smem + l.group_score_offset),
                                  reinterpret_cast<uint8_t*>(smem + l.group_kept_offset));
    __syncwarp();  // shared memory is reused by the next token of this warp
  }

  // k rounds: the warp's best key (one redux), the lowest expert holding it (another); only the
  // owner lane rescans its registers. Lane j keeps slot j's id and score.
  uint32_t best_key;
  int best_i;
  float best_score;
  lane_best(score, taken, lane, E, &best_key, &best_i, &best_score);
  int32_t id = -1;
  float key = 0.0f;
  for (int r = 0; r < p.top_k; ++r) {
    const uint32_t top = __reduce_max_sync(kFullMask, best_key);
    // Fewer eligible experts than k (only possible with a group limit): the slot stays empty.
    if (top == kExcludedScoreKey) break;  // uniform
    const unsigned mine = best_key == top ? static_cast<unsigned>(lane + kWarp * best_i) : ~0u;
    const int32_t e = static_cast<int32_t>(__reduce_min_sync(kFullMask, mine));
    const int owner = e % kWarp;
    const float e_score = __shfl_sync(kFullMask, best_score, owner);
    if (lane == r) {
      id = e;
      key = e_score;
    }
    if (lane == owner) {
      taken |= uint64_t{1} << best_i;
      lane_best(score, taken, lane, E, &best_key, &best_i, &best_score);
    }
  }

  // Weights. `value` is what slot j contributes to a renormalizing sum.
  const bool active = lane < p.top_k;
  const float top_score = __shfl_sync(kFullMask, key, 0);  // slot 0: the largest
  float value = 0.0f;
  if (id >= 0) {
    switch (method) {
      case RoutingMethod::Renormalize:
      case RoutingMethod::RenormalizeNaive:
        value = routing_expf(sub(key, top_score));
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
  if (renormalizes) {  // uniform
    const float sum = warp_tree_sum(active ? add(0.0f, value) : 0.0f);
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
}

template <int kPerLane>
__global__ void __launch_bounds__(kMaxWarpsPerBlock* kWarp)
    routing_kernel(RoutingKernelParams p, WarpSmemLayout layout) {
  // The permutation after us is launched programmatically dependent (sm80_pdl.cuh): let its
  // block be scheduled now, so that it sits in its pdl_wait() (which still waits for all of
  // this grid and its writes) instead of paying a launch after we finish.
  cuda::pdl::pdl_trigger();
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
      route_round_robin(p, t, lane);
    } else {
      route_top_k<kPerLane>(p, t, lane, layout, my_smem);
    }
  }
}

}  // namespace

int launch_routing_kernel(const RoutingKernelParams& p, void* stream) {
  if (p.num_tokens == 0) return static_cast<int>(cudaSuccess);
  const bool selects =
      p.logits != nullptr && p.method != static_cast<int32_t>(RoutingMethod::RoundRobin);
  const bool grouped =
      selects && p.method == static_cast<int32_t>(RoutingMethod::DeepSeekV3) && p.n_group > 1;
  // Only the group limit keeps per-expert scores in shared memory.
  const WarpSmemLayout layout =
      grouped ? warp_smem_layout(p.num_experts, p.n_group) : WarpSmemLayout{0, 0, 0, 0};
  const int warps =
      layout.bytes == 0
          ? kMaxWarpsPerBlock
          : std::max(1, std::min(kMaxWarpsPerBlock, kSharedBytesPerBlock / layout.bytes));
  const int64_t blocks_needed = (p.num_tokens + warps - 1) / warps;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(blocks_needed, 1 << 20)));
  const dim3 block(warps * kWarp);
  const size_t smem = static_cast<size_t>(warps) * layout.bytes;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  // Registers per lane for the candidates: the smallest power of two covering E / 32.
  const int per_lane = selects ? (p.num_experts + kWarp - 1) / kWarp : 1;
  if (per_lane <= 1) {
    routing_kernel<1><<<grid, block, smem, s>>>(p, layout);
  } else if (per_lane <= 2) {
    routing_kernel<2><<<grid, block, smem, s>>>(p, layout);
  } else if (per_lane <= 4) {
    routing_kernel<4><<<grid, block, smem, s>>>(p, layout);
  } else if (per_lane <= 8) {
    routing_kernel<8><<<grid, block, smem, s>>>(p, layout);
  } else if (per_lane <= 16) {
    routing_kernel<16><<<grid, block, smem, s>>>(p, layout);
  } else if (per_lane <= 32) {
    routing_kernel<32><<<grid, block, smem, s>>>(p, layout);
  } else if (per_lane <= 64) {
    routing_kernel<64><<<grid, block, smem, s>>>(p, layout);
  } else {
    return static_cast<int>(cudaErrorInvalidValue);  // E > kRoutingMaxExperts: validated before
  }
  return static_cast<int>(cudaGetLastError());
}

}  // namespace flashinfer_moe
