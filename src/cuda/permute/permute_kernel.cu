// The permutation kernels (see permute_kernel.h for the four phases and why they are ordered so).
//
// Ranks inside a chunk come from one warp walking its slots 32 at a time in slot order: lanes
// with the same expert find each other with __match_any_sync, take their rank from the number
// of matching lanes below them, and the highest of them advances the expert's shared counter.
// No atomics, so the order is the slot order on every run. With precomputed routing the first
// kernel to touch each slot (count_chunk_kernel, or small_permute_kernel) also writes the
// workspace copy of its id and weight; the ranking itself always decodes the caller's word.
#include <cuda_runtime.h>

#include <cub/block/block_scan.cuh>

#include "common/formats.h"
#include "cuda/cuda_workspace.h"
#include "cuda/gemm/sm80/sm80_schedule.cuh"
#include "cuda/permute/permute_kernel.h"
#include "cuda/sm80_pdl.cuh"
#include "flashinfer_moe/types.h"

namespace flashinfer_moe {
namespace cuda {
namespace {

constexpr int kWarp = 32;
// Slots a lane looks up before a warp ranks them: the loads of a step overlap instead of one
// dependent global load per 32 slots.
constexpr int kPrefetch = 4;
constexpr int kScanThreads = 256;
constexpr int kOffsetThreads = 256;
constexpr int kSmallThreads = 256;

// The caller's word for slot s = t * k + j of precomputed routing.
__device__ __forceinline__ int32_t routed_word(const PermuteParams& p, int64_t s) {
  const int64_t t = s / p.top_k, j = s % p.top_k;
  return p.routed_ids[t * p.routed_ids_stride_t + j * p.routed_ids_stride_k];
}

// Global expert id of slot s: the routing kernel's, or the caller's decoded (-1 when out of
// range, exactly as the CPU executor and the routing kernel pass precomputed ids through).
__device__ __forceinline__ int32_t global_id_of(const PermuteParams& p, int64_t s) {
  if (p.routed_ids == nullptr) return p.topk_ids[s];
  const int32_t word = routed_word(p, s);
  const int32_t id =
      p.routed_packed ? static_cast<int16_t>(static_cast<uint32_t>(word) >> 16) : word;
  return (id < 0 || id >= p.num_experts) ? -1 : id;
}

// Precomputed routing: the workspace copies of slot s's id and fp32 weight (the weight is kept
// as given even when the id is skipped, as the routing kernel does).
__device__ __forceinline__ void copy_routed_slot(const PermuteParams& p, int64_t s) {
  float w;
  if (p.routed_packed) {
    w = formats::bf16_to_float(static_cast<uint16_t>(static_cast<uint32_t>(routed_word(p, s))));
  } else {
    const int64_t t = s / p.top_k, j = s % p.top_k;
    const int64_t o = t * p.routed_weights_stride_t + j * p.routed_weights_stride_k;
    switch (static_cast<DType>(p.routed_weights_dtype)) {
      case DType::F16:
        w = formats::fp16_to_float(static_cast<const uint16_t*>(p.routed_weights)[o]);
        break;
      case DType::BF16:
        w = formats::bf16_to_float(static_cast<const uint16_t*>(p.routed_weights)[o]);
        break;
      default:
        w = static_cast<const float*>(p.routed_weights)[o];
        break;
    }
  }
  p.ids_copy[s] = global_id_of(p, s);
  p.weights_copy[s] = w;
}

// Local expert of slot s, or -1 when s is past the chunk's end or the expert is not local.
__device__ __forceinline__ int32_t local_expert_of(const PermuteParams& p, int64_t s, int64_t end) {
  if (s >= end) return -1;
  const int32_t id = global_id_of(p, s);
  const int64_t e = static_cast<int64_t>(id) - p.local_expert_offset;
  return (id < 0 || e < 0 || e >= p.local_num_experts) ? -1 : static_cast<int32_t>(e);
}

// Phase 1: per chunk, the number of slots of each local expert -> chunk_counts[e][chunk].
__global__ void __launch_bounds__(kWarp) count_chunk_kernel(PermuteParams p) {
  extern __shared__ int32_t count[];
  const int lane = threadIdx.x;
  const int64_t chunk = blockIdx.x;
  for (int32_t e = lane; e < p.local_num_experts; e += kWarp) count[e] = 0;
  __syncwarp();
  const int64_t begin = chunk * kPermuteSlotsPerChunk;
  const int64_t end = min(p.num_slots, begin + kPermuteSlotsPerChunk);
  for (int64_t base = begin; base < end; base += kWarp * kPrefetch) {
    int32_t experts[kPrefetch];
#pragma unroll
    for (int i = 0; i < kPrefetch; ++i) {
      const int64_t s = base + i * kWarp + lane;
      if (p.routed_ids != nullptr && s < end) copy_routed_slot(p, s);
      experts[i] = local_expert_of(p, s, end);
    }
#pragma unroll
    for (int i = 0; i < kPrefetch; ++i) {
      const int32_t e = experts[i];
      const unsigned same = __match_any_sync(0xffffffffu, e);
      if (e >= 0 && lane == 31 - __clz(same)) count[e] += __popc(same);
      __syncwarp();
    }
  }
  for (int32_t e = lane; e < p.local_num_experts; e += kWarp) {
    p.chunk_counts[static_cast<int64_t>(e) * p.num_chunks + chunk] = count[e];
  }
}

// Phase 2: per expert, chunk_counts[e][c] becomes the rank of chunk c's first slot within expert
// e; row_offsets[e + 1] receives the expert's kept count (clamped to the capacity).
__global__ void __launch_bounds__(kScanThreads) scan_chunks_kernel(PermuteParams p) {
  using Scan = cub::BlockScan<int32_t, kScanThreads>;
  __shared__ typename Scan::TempStorage scratch;
  const int32_t e = blockIdx.x;
  int32_t* counts = p.chunk_counts + static_cast<int64_t>(e) * p.num_chunks;
  int32_t carry = 0;
  for (int64_t base = 0; base < p.num_chunks; base += kScanThreads) {
    const int64_t c = base + threadIdx.x;
    const int32_t v = c < p.num_chunks ? counts[c] : 0;
    int32_t before = 0, total = 0;
    Scan(scratch).ExclusiveSum(v, before, total);
    if (c < p.num_chunks) counts[c] = carry + before;
    carry += total;
    __syncthreads();  // `scratch` is reused by the next tile
  }
  if (threadIdx.x == 0) {
    int64_t kept = carry;
    if (p.capacity > 0 && kept > p.capacity) kept = p.capacity;
    p.row_offsets[e + 1] = kept;
  }
}

// Kept rows of an expert with `slots` assignments: all of them, or the first `capacity`.
__device__ __forceinline__ int64_t kept_rows(const PermuteParams& p, int64_t slots) {
  return p.capacity > 0 && slots > p.capacity ? p.capacity : slots;
}

// Phase 3: row_offsets[e + 1] = kept rows of experts 0..e (inclusive scan), row_offsets[0] = 0;
// then the GEMM schedule when asked for (smem: local_num_experts + 1 int32).
__global__ void __launch_bounds__(kOffsetThreads) expert_offsets_kernel(PermuteParams p) {
  using Scan = cub::BlockScan<int64_t, kOffsetThreads>;
  __shared__ typename Scan::TempStorage scratch;
  if (threadIdx.x == 0) p.row_offsets[0] = 0;
  int64_t carry = 0;
  for (int32_t base = 0; base < p.local_num_experts; base += kOffsetThreads) {
    const int32_t e = base + static_cast<int32_t>(threadIdx.x);
    const int64_t v = e < p.local_num_experts ? p.row_offsets[e + 1] : 0;
    int64_t upto = 0, total = 0;
    Scan(scratch).InclusiveSum(v, upto, total);
    if (e < p.local_num_experts) p.row_offsets[e + 1] = carry + upto;
    carry += total;
    __syncthreads();
  }
  if (p.schedule != nullptr) {  // uniform: the whole block takes it or none
    extern __shared__ int32_t tile_start[];
    sm80::build_schedule_block(p.row_offsets, p.local_num_experts, p.max_rows, p.schedule_row_tile,
                               p.schedule_capacity, p.schedule, tile_start);
  }
}

// Gives each kept slot of [begin, end) its permuted row, walking the slots in order with one
// warp: next_rank[e] (shared memory) is the rank the next slot of local expert e gets and is
// advanced here. A slot is kept when that rank is below the expert's kept count (row_offsets).
// Shared by scatter_kernel and small_permute_kernel.
__device__ __forceinline__ void assign_rows_in_order(const PermuteParams& p, int64_t begin,
                                                     int64_t end, int32_t* next_rank, int lane) {
  const unsigned lanes_below = (1u << lane) - 1u;
  for (int64_t base = begin; base < end; base += kWarp * kPrefetch) {
    // The step's experts and their row ranges first (independent loads), then the ranking.
    int32_t experts[kPrefetch];
    int64_t first[kPrefetch], kept[kPrefetch];
#pragma unroll
    for (int i = 0; i < kPrefetch; ++i) {
      experts[i] = local_expert_of(p, base + i * kWarp + lane, end);
      first[i] = kept[i] = 0;
      if (experts[i] >= 0) {
        first[i] = p.row_offsets[experts[i]];
        kept[i] = p.row_offsets[experts[i] + 1] - first[i];
      }
    }
#pragma unroll
    for (int i = 0; i < kPrefetch; ++i) {
      const int64_t s = base + i * kWarp + lane;
      const int32_t e = experts[i];
      const unsigned same = __match_any_sync(0xffffffffu, e);
      if (s < end) {
        int32_t row = -1;
        if (e >= 0) {
          const int64_t rank = next_rank[e] + __popc(same & lanes_below);
          if (rank < kept[i]) {
            row = static_cast<int32_t>(first[i] + rank);
            p.permuted_to_expanded[row] = static_cast<int32_t>(s);
            p.row_expert[row] = e;
          }
        }
        p.expanded_to_permuted[s] = row;
      }
      __syncwarp();  // every lane has read next_rank[e] before the leader advances it
      if (e >= 0 && lane == 31 - __clz(same)) next_rank[e] += __popc(same);
      __syncwarp();
    }
  }
}

// Phase 4: final rows. A slot is kept when its rank within its expert is below the expert's kept
// count, i.e. it is among the first `capacity` assignments in (token, slot) order.
__global__ void __launch_bounds__(kWarp) scatter_kernel(PermuteParams p) {
  extern __shared__ int32_t rank_base[];
  const int lane = threadIdx.x;
  const int64_t chunk = blockIdx.x;
  for (int32_t e = lane; e < p.local_num_experts; e += kWarp) {
    rank_base[e] = p.chunk_counts[static_cast<int64_t>(e) * p.num_chunks + chunk];
  }
  __syncwarp();
  const int64_t begin = chunk * kPermuteSlotsPerChunk;
  assign_rows_in_order(p, begin, min(p.num_slots, begin + kPermuteSlotsPerChunk), rank_base, lane);
}

// All four phases in one block, for num_slots <= kSmallPermuteMaxSlots and at most
// kSmallPermuteMaxExperts experts. Counting order does not matter (integer smem atomics); the
// ranks are then assigned by one warp walking the slots in order, exactly as scatter_kernel does.
__global__ void __launch_bounds__(kSmallThreads) small_permute_kernel(PermuteParams p) {
  using Scan = cub::BlockScan<int64_t, kSmallThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  __shared__ int32_t count[kSmallPermuteMaxExperts];  // slots per expert, then running ranks
  __shared__ int32_t tile_start[kSmallPermuteMaxExperts + 1];  // the schedule builder's scratch
  const int tid = threadIdx.x;
  const int32_t E = p.local_num_experts;
  for (int32_t e = tid; e < E; e += kSmallThreads) count[e] = 0;
  pdl::pdl_wait();     // the routing's ids are complete
  pdl::pdl_trigger();  // GEMM1's CTAs may be scheduled (they wait for this kernel to finish)
  __syncthreads();
  for (int64_t s = tid; s < p.num_slots; s += kSmallThreads) {
    if (p.routed_ids != nullptr) copy_routed_slot(p, s);
    const int32_t e = local_expert_of(p, s, p.num_slots);
    if (e >= 0) atomicAdd(&count[e], 1);
  }
  __syncthreads();
  if (tid == 0) p.row_offsets[0] = 0;
  int64_t carry = 0;
  for (int32_t base = 0; base < E; base += kSmallThreads) {
    const int32_t e = base + tid;
    const int64_t v = e < E ? kept_rows(p, count[e]) : 0;
    int64_t upto = 0, total = 0;
    Scan(scan_storage).InclusiveSum(v, upto, total);
    if (e < E) p.row_offsets[e + 1] = carry + upto;
    carry += total;
    __syncthreads();
  }
  for (int32_t e = tid; e < E; e += kSmallThreads) count[e] = 0;
  __syncthreads();  // row_offsets (global, this block's writes) and the zeroed ranks are visible
  if (p.schedule != nullptr) {
    sm80::build_schedule_block(p.row_offsets, E, p.max_rows, p.schedule_row_tile,
                               p.schedule_capacity, p.schedule, tile_start);
  }
  if (tid >= kWarp) return;
  assign_rows_in_order(p, 0, p.num_slots, count, tid);
}

}  // namespace

int launch_permute(const PermuteParams& p, void* stream) {
  if (p.num_slots == 0) return static_cast<int>(cudaSuccess);
  if (p.local_num_experts < 1 || p.local_num_experts > kPermuteMaxLocalExperts) {
    return static_cast<int>(cudaErrorInvalidValue);
  }
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (p.num_slots <= kSmallPermuteMaxSlots && p.local_num_experts <= kSmallPermuteMaxExperts) {
    return static_cast<int>(
        pdl::launch_kernel(small_permute_kernel, dim3(1), dim3(kSmallThreads), 0, s, p.pdl, p));
  }
  const size_t smem = sizeof(int32_t) * static_cast<size_t>(p.local_num_experts);
  const unsigned chunks = static_cast<unsigned>(p.num_chunks);
  count_chunk_kernel<<<chunks, kWarp, smem, s>>>(p);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return static_cast<int>(err);
  scan_chunks_kernel<<<static_cast<unsigned>(p.local_num_experts), kScanThreads, 0, s>>>(p);
  err = cudaGetLastError();
  if (err != cudaSuccess) return static_cast<int>(err);
  const size_t schedule_smem =
      p.schedule != nullptr ? sizeof(int32_t) * (static_cast<size_t>(p.local_num_experts) + 1) : 0;
  expert_offsets_kernel<<<1, kOffsetThreads, schedule_smem, s>>>(p);
  err = cudaGetLastError();
  if (err != cudaSuccess) return static_cast<int>(err);
  scatter_kernel<<<chunks, kWarp, smem, s>>>(p);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace cuda
}  // namespace flashinfer_moe
