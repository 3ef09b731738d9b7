// The device-side tile schedule of the portable grouped GEMM (sm80_grouped_gemm.h): the list of
// (expert, row tile) work items that the GEMM grid walks, built from the device-side row ranges.
//
// Two builders share build_schedule_block(): the GEMM family's own one-CTA schedule kernel, and
// the permutation (permute_kernel.cu), which already holds row_offsets at its end and writes the
// schedule once for both GEMMs, saving one launch per GEMM on the latency-bound decode path.
#pragma once

#include <cstddef>
#include <cstdint>

namespace flashinfer_moe {
namespace cuda {
namespace sm80 {

// One unit of GEMM work: rows [row_begin, row_begin + rows) of `expert`, rows <= row tile.
struct WorkItem {
  int64_t row_begin;
  int32_t expert;
  int32_t rows;
};

// The K tiles (of `tile_k` columns) a CTA of grid split blockIdx.z sums (GroupedGemmArgs::
// k_splits): the tiles cut into gridDim.z runs of ceil(tiles / gridDim.z), the last one shorter
// or empty. One split (gridDim.z == 1) takes them all.
struct KTileRange {
  int64_t begin, count;
};

__device__ __forceinline__ KTileRange split_k_tiles(int64_t k, int tile_k) {
  const int64_t tiles = (k + tile_k - 1) / tile_k;
  const int64_t per_split = (tiles + gridDim.z - 1) / gridDim.z;
  const int64_t begin = blockIdx.z * per_split;
  const int64_t end = begin + per_split < tiles ? begin + per_split : tiles;
  return KTileRange{begin, end > begin ? end - begin : 0};
}

// Scratch layout: an int64 item count (padded to 16 bytes), then the WorkItem array.
constexpr size_t kScheduleHeaderBytes = 16;

// This CTA's work item (schedule entry blockIdx.x); false when the device-side count has no such
// entry (the grid is sized for the most items any routing can give, so the CTA then exits).
__device__ __forceinline__ bool cta_work_item(const void* schedule, WorkItem* item) {
  const int64_t count = *static_cast<const int64_t*>(schedule);
  if (static_cast<int64_t>(blockIdx.x) >= count) return false;
  *item = reinterpret_cast<const WorkItem*>(static_cast<const char*>(schedule) +
                                            kScheduleHeaderBytes)[blockIdx.x];
  return true;
}

// The B rows of a CTA's weight tile whose output starts at column n0 of an n-row B: tile row w
// is B row n0 + w; gated (the fused activation), rows w < kHalf are up rows n0 + w and the rest
// their gate rows n / 2 + n0 + (w - kHalf), so one CTA holds a column's up and gate values.
// valid(w): that B row exists.
template <bool kGated, int kHalf>
struct TileWeightRows {
  int64_t n0, n;
  __device__ __forceinline__ int64_t row(int w) const {
    if constexpr (kGated) return w < kHalf ? n0 + w : n / 2 + n0 + (w - kHalf);
    return n0 + w;
  }
  __device__ __forceinline__ bool valid(int w) const {
    if constexpr (kGated) return n0 + (w < kHalf ? w : w - kHalf) < n / 2;
    return n0 + w < n;
  }
};

// Most threads a block that calls build_schedule_block may have (one warp sum each in smem).
constexpr int kScheduleMaxThreads = 1024;

// Fills the schedule from row_offsets: expert e contributes ceil(rows_e / row_tile) items in row
// order, experts in index order. Offsets are clamped to [0, max_rows] and the list to `capacity`
// items, so a malformed offset array can neither overflow the scratch nor write C out of bounds.
// Called by every thread of one block (any size up to kScheduleMaxThreads, a multiple of 32);
// row_offsets must be visible to the whole block (written before a __syncthreads or earlier
// launch). tile_start: block-shared scratch of (num_experts + 1) int32.
__device__ __forceinline__ void build_schedule_block(const int64_t* row_offsets,
                                                     int32_t num_experts, int64_t max_rows,
                                                     int32_t row_tile, int64_t capacity,
                                                     void* scratch, int32_t* tile_start) {
  __shared__ int32_t warp_sums[kScheduleMaxThreads / 32];
  const int tid = threadIdx.x, threads = blockDim.x;
  auto clamped_offset = [&](int32_t e) {
    const int64_t v = row_offsets[e];
    return v < 0 ? int64_t{0} : (v > max_rows ? max_rows : v);
  };
  auto tiles_of = [&](int32_t e) {
    const int64_t begin = clamped_offset(e), end = clamped_offset(e + 1);
    return end > begin ? static_cast<int32_t>((end - begin + row_tile - 1) / row_tile) : 0;
  };
  // Each thread owns a contiguous chunk of experts: serial sums inside, a scan across threads.
  const int32_t chunk = (num_experts + threads - 1) / threads;
  const int32_t first = tid * chunk;
  const int32_t last = first + chunk < num_experts ? first + chunk : num_experts;
  int32_t local = 0;
  for (int32_t e = first; e < last; ++e) {
    const int32_t t = tiles_of(e);
    tile_start[e] = local;  // chunk-relative for now
    local += t;
  }
  // Inclusive warp scan, then across warps (the counts stay < 2^31: capacity bounds them).
  const int lane = tid & 31, warp = tid >> 5;
  int32_t incl = local;
  for (int d = 1; d < 32; d <<= 1) {
    const int32_t v = __shfl_up_sync(0xffffffffu, incl, d);
    if (lane >= d) incl += v;
  }
  if (lane == 31) warp_sums[warp] = incl;
  __syncthreads();
  int32_t warp_prefix = 0;
  for (int w = 0; w < warp; ++w) warp_prefix += warp_sums[w];
  const int32_t thread_prefix = warp_prefix + incl - local;
  for (int32_t e = first; e < last; ++e) tile_start[e] += thread_prefix;
  if (tid == threads - 1) tile_start[num_experts] = thread_prefix + local;
  __syncthreads();

  const int64_t total_tiles = tile_start[num_experts];
  const int64_t count = total_tiles < capacity ? total_tiles : capacity;
  if (tid == 0) *static_cast<int64_t*>(scratch) = count;
  WorkItem* items = reinterpret_cast<WorkItem*>(static_cast<char*>(scratch) + kScheduleHeaderBytes);
  for (int64_t i = tid; i < count; i += threads) {
    // The last expert whose start <= i; it has tiles because its successor's start is > i.
    int32_t lo = 0, hi = num_experts;  // invariant: tile_start[lo] <= i < tile_start[hi]
    while (hi - lo > 1) {
      const int32_t mid = (lo + hi) >> 1;
      if (tile_start[mid] <= i)
        lo = mid;
      else
        hi = mid;
    }
    const int64_t begin = clamped_offset(lo) + (i - tile_start[lo]) * row_tile;
    const int64_t end = clamped_offset(lo + 1);
    WorkItem item;
    item.row_begin = begin;
    item.expert = lo;
    item.rows = static_cast<int32_t>(end - begin < row_tile ? end - begin : row_tile);
    items[i] = item;
  }
}

}  // namespace sm80
}  // namespace cuda
}  // namespace flashinfer_moe
