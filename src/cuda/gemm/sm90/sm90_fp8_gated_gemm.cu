// The fused FP8 GEMM1 + gated activation + requantization kernel for Hopper
// (sm90_fp8_gated_gemm.h says what and why).
//
// A tile is (expert, 128-row block, 128-column intermediate block); tiles are numbered expert by
// expert with the row block fastest, so the CTAs that share a weight block run together and read
// it from L2. CTA b takes tiles b, b + gridDim.x, ...; the producer warp finds each from the
// device row offsets (no host sizes) and hands it to the consumers through a two-slot ring.
#include <cuda.h>
#include <cuda_runtime.h>
#include <cudaTypedefs.h>

#include <climits>

#include "cuda/act_quant.cuh"
#include "cuda/device_info.h"
#include "cuda/epilogue/activation_kernel.cuh"
#include "cuda/epilogue/sm80_activation_epilogue.cuh"  // sm80::FusedQuant
#include "cuda/gemm/sm90/sm90_fp8_gated_gemm.h"
#include "cuda/gemm/sm90/sm90_ptx.cuh"

namespace flashinfer_moe {
namespace cuda {
namespace sm90_fp8_gated {
namespace {

constexpr int kTileRows = 128;   // permuted rows per tile (64 per consumer warpgroup)
constexpr int kTileCols = 128;   // intermediate columns per tile (and weight rows per half)
constexpr int kTileK = 128;      // K per stage: one scale slice, one 128-byte swizzle row
constexpr int kStages = 4;
constexpr int kConsumerThreads = 256;
constexpr int kThreads = kConsumerThreads + 128;  // + the producer warpgroup
// Registers per thread after setmaxnreg: the producer warpgroup gives most of its share to the
// consumers, whose up, gate and slice fragments (192 floats) exceed the launch's 168.
constexpr int kProducerRegisters = 56;
constexpr int kConsumerRegisters = 224;
static_assert(128 * kProducerRegisters + kConsumerThreads * kConsumerRegisters <= 65536,
              "register file");
constexpr int kConsumerWarps = kConsumerThreads / 32;
constexpr uint32_t kATileBytes = kTileRows * kTileK;
constexpr uint32_t kAHalfBytes = kATileBytes / 2;  // one warpgroup's 64 rows
constexpr uint32_t kBTileBytes = kTileCols * kTileK;
constexpr uint32_t kStageBytes = kATileBytes + 2 * kBTileBytes;
constexpr int kFragment = 64;  // accumulator floats per consumer thread and half (m64n128)
// The epilogue's fp32 tile [128 rows][up 128 | gate 128 | pad] lies over the stage buffers, so
// the producer starts a tile's loads once the previous tile's epilogue is done with it.
constexpr int kStagedLd = 2 * kTileCols + 8;
static_assert(kTileRows * kStagedLd * sizeof(float) <= kStages * kStageBytes,
              "the staged tile must fit the stage buffers");
constexpr int kTileSlots = 2;  // tiles the producer may run ahead of the consumers
struct SharedLayout {
  static constexpr size_t kBarriers = kStages * kStageBytes;
  static constexpr size_t kBytes = kBarriers + (2 * (kStages + kTileSlots) + 1) * sizeof(uint64_t);
};
constexpr size_t kSmemBytes = SharedLayout::kBytes + 1024;  // + 1024-byte alignment slack
static_assert(kSmemBytes <= 227 * 1024, "over the sm_90 shared memory of one CTA");

struct Params {
  const int64_t* row_offsets;
  int32_t num_experts;
  int32_t max_rows;
  int32_t k_blocks;
  int32_t col_blocks;  // inter / 128
  int32_t inter;
  ActScales a_scale;     // K-varying row scales (data null: 1)
  WeightScales w_scale;  // K-varying weight block scales (data null: 1)
  ActivationParams act;
  sm80::FusedQuant quant;
};

struct TileInfo {
  int32_t expert;  // -1: no tile (the CTA's work is done)
  int32_t row_begin;
  int32_t rows;
  int32_t col_block;
};

// The producer warp: tile `t` among all experts' (row tiles x column blocks), numbered expert
// by expert with the row tile fastest, into *out (expert -1 past the last tile). Whole warp.
__device__ void find_tile(const Params& p, int64_t t, TileInfo* out) {
  const int lane = threadIdx.x & 31;
  TileInfo found{-1, 0, 0, 0};
  int64_t base = 0;
  for (int e0 = 0; e0 < p.num_experts; e0 += 32) {
    const int e = e0 + lane;
    int64_t begin = 0, rows = 0;
    if (e < p.num_experts) {
      begin = p.row_offsets[e];
      int64_t end = p.row_offsets[e + 1];
      begin = begin < 0 ? 0 : (begin > p.max_rows ? p.max_rows : begin);
      end = end < begin ? begin : (end > p.max_rows ? p.max_rows : end);
      rows = end - begin;
    }
    const int64_t row_tiles = (rows + kTileRows - 1) / kTileRows;
    const int64_t tiles = row_tiles * p.col_blocks;
    int64_t inclusive = tiles;
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1) {
      const int64_t v = __shfl_up_sync(0xffffffffu, inclusive, offset);
      if (lane >= offset) inclusive += v;
    }
    const int64_t first = base + inclusive - tiles;
    const bool mine = tiles > 0 && t >= first && t < base + inclusive;
    if (mine) {
      const int64_t local = t - first;
      const int64_t row_tile = local % row_tiles;
      found.expert = e;
      found.row_begin = static_cast<int32_t>(begin + row_tile * kTileRows);
      found.rows = static_cast<int32_t>(
          rows - row_tile * kTileRows < kTileRows ? rows - row_tile * kTileRows : kTileRows);
      found.col_block = static_cast<int32_t>(local / row_tiles);
    }
    const unsigned owner = __ballot_sync(0xffffffffu, mine);
    if (owner != 0) {
      const int src = __ffs(owner) - 1;
      found.expert = __shfl_sync(0xffffffffu, found.expert, src);
      found.row_begin = __shfl_sync(0xffffffffu, found.row_begin, src);
      found.rows = __shfl_sync(0xffffffffu, found.rows, src);
      found.col_block = __shfl_sync(0xffffffffu, found.col_block, src);
      break;
    }
    base += __shfl_sync(0xffffffffu, inclusive, 31);
  }
  if (lane == 0) *out = found;
}

// The shared-memory pipeline: a ring of kStages (A, up, gate) stages, each with a full barrier
// (TMA bytes landed) and an empty one (the eight consumer warps are done), a ring of
// kTileSlots tile descriptions with the same pair, and the staged tile's release. Counters run
// on across tiles.
struct Pipeline {
  uint8_t* stages;
  uint64_t* full;
  uint64_t* empty;
  TileInfo* tiles;
  uint64_t* tile_full;
  uint64_t* tile_empty;
  uint64_t* staged_free;  // the consumer warps are done with the staged tile
};

// The producer warp: for each of the CTA's tiles, publishes the tile, then (once the previous
// tile's epilogue has left the stage buffers) loads A rows [row_begin, +128) and the up and gate
// weight rows of its column block, K slice by K slice.
__device__ void produce(const CUtensorMap* tmap_a, const CUtensorMap* tmap_b, const Params& p,
                        const Pipeline& pl) {
  const bool leader = (threadIdx.x & 31) == 0;
  int64_t it = 0;  // K slices issued so far
  for (int64_t n = 0;; ++n) {
    const int slot = static_cast<int>(n % kTileSlots);
    if (n >= kTileSlots) {
      sm90_ptx::mbarrier_wait(&pl.tile_empty[slot], ((n / kTileSlots) - 1) & 1);
    }
    find_tile(p, blockIdx.x + n * gridDim.x, &pl.tiles[slot]);
    __syncwarp();
    const TileInfo tile = pl.tiles[slot];
    if (leader) sm90_ptx::mbarrier_arrive(&pl.tile_full[slot]);
    if (tile.expert < 0) return;
    if (!leader) continue;
    if (n > 0) sm90_ptx::mbarrier_wait(pl.staged_free, (n - 1) & 1);
    const int32_t up_row = tile.col_block * kTileCols;
    const int32_t gate_row = p.inter + up_row;
    for (int kb = 0; kb < p.k_blocks; ++kb, ++it) {
      const int s = static_cast<int>(it % kStages);
      if (it >= kStages) sm90_ptx::mbarrier_wait(&pl.empty[s], ((it / kStages) - 1) & 1);
      uint8_t* stage = pl.stages + s * kStageBytes;
      sm90_ptx::mbarrier_arrive_expect_tx(&pl.full[s], kStageBytes);
      sm90_ptx::tma_load_2d(stage, tmap_a, &pl.full[s], kb * kTileK, tile.row_begin);
      sm90_ptx::tma_load_3d(stage + kATileBytes, tmap_b, &pl.full[s], kb * kTileK, up_row,
                            tile.expert);
      sm90_ptx::tma_load_3d(stage + kATileBytes + kBTileBytes, tmap_b, &pl.full[s], kb * kTileK,
                            gate_row, tile.expert);
    }
  }
}

// The K slice in `stage` times weight half `b_tile`, for one warpgroup's 64 rows: slice =
// A(64 x 128) * B(128 x 128)^T as four chained e4m3 WGMMAs, waited for.
__device__ __forceinline__ void mma_slice(float (&slice)[kFragment], uint64_t desc_a,
                                          const uint8_t* b_tile) {
  const uint64_t desc_b = sm90_ptx::kmajor_sw128_desc(b_tile);
#pragma unroll
  for (int i = 0; i < kFragment; ++i) sm90_ptx::fence_operand(slice[i]);
  sm90_ptx::wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < kTileK / 32; ++kk) {  // +32 bytes of K = +2 in descriptor units
    sm90_ptx::wgmma_m64n128k32_e4m3(slice, desc_a + 2 * kk, desc_b + 2 * kk, kk);
  }
  sm90_ptx::wgmma_commit();
  sm90_ptx::wgmma_wait_all();
#pragma unroll
  for (int i = 0; i < kFragment; ++i) sm90_ptx::fence_operand(slice[i]);
}

// CUTLASS's promotion: the row scale times the block scale, then one fused multiply-add.
__device__ __forceinline__ void promote(float (&acc)[kFragment], const float (&slice)[kFragment],
                                        float s0, float s1) {
#pragma unroll
  for (int j = 0; j < kFragment / 4; ++j) {
    acc[4 * j + 0] = fmaf(slice[4 * j + 0], s0, acc[4 * j + 0]);
    acc[4 * j + 1] = fmaf(slice[4 * j + 1], s0, acc[4 * j + 1]);
    acc[4 * j + 2] = fmaf(slice[4 * j + 2], s1, acc[4 * j + 2]);
    acc[4 * j + 3] = fmaf(slice[4 * j + 3], s1, acc[4 * j + 3]);
  }
}

// A consumer warpgroup's mainloop over its 64 rows of a tile: up and gate = sum over K slices of
// slice * (a scale * weight scale), one half after the other per stage. Rows past the tile
// read scale 1. `it` counts the K slices consumed so far (all tiles).
__device__ void consume(const Params& p, const TileInfo& tile, const Pipeline& pl, int64_t& it,
                        float (&up)[kFragment], float (&gate)[kFragment]) {
  const int lane = threadIdx.x & 31;
  const int half = threadIdx.x >> 7;  // rows [64 half, 64 half + 64)
  const int row0 = 64 * half + 16 * ((threadIdx.x >> 5) & 3) + lane / 4;  // and row0 + 8
  const bool valid0 = row0 < tile.rows, valid1 = row0 + 8 < tile.rows;
  const int64_t r0 = tile.row_begin + row0, r1 = r0 + 8;
  const int64_t up_row = static_cast<int64_t>(tile.col_block) * kTileCols;
  int64_t w_up = 0, w_gate = 0;
  if (p.w_scale.data != nullptr) {
    w_up = weight_scale_row_offset(p.w_scale, tile.expert, up_row);
    w_gate = weight_scale_row_offset(p.w_scale, tile.expert, p.inter + up_row);
  }
#pragma unroll
  for (int i = 0; i < kFragment; ++i) up[i] = gate[i] = 0.0f;
  float slice[kFragment];
  for (int kb = 0; kb < p.k_blocks; ++kb, ++it) {
    const int s = static_cast<int>(it % kStages);
    float sa0 = 1.0f, sa1 = 1.0f, sw_up = 1.0f, sw_gate = 1.0f;
    if (p.a_scale.data != nullptr) {
      if (valid0) sa0 = p.a_scale.data[act_scale_index(p.a_scale, r0, kb)];
      if (valid1) sa1 = p.a_scale.data[act_scale_index(p.a_scale, r1, kb)];
    }
    if (p.w_scale.data != nullptr) {
      const int64_t c = weight_scale_col_offset(p.w_scale, kb);
      sw_up = weight_scale_at(p.w_scale, w_up + c);
      sw_gate = weight_scale_at(p.w_scale, w_gate + c);
    }
    sm90_ptx::mbarrier_wait(&pl.full[s], (it / kStages) & 1);
    const uint8_t* stage = pl.stages + s * kStageBytes;
    const uint64_t desc_a = sm90_ptx::kmajor_sw128_desc(stage + half * kAHalfBytes);
    mma_slice(slice, desc_a, stage + kATileBytes);
    promote(up, slice, sa0 * sw_up, sa1 * sw_up);
    mma_slice(slice, desc_a, stage + kATileBytes + kBTileBytes);
    __syncwarp();
    if (lane == 0) sm90_ptx::mbarrier_arrive(&pl.empty[s]);
    promote(gate, slice, sa0 * sw_gate, sa1 * sw_gate);
  }
}

// Writes a consumer warpgroup's up and gate fragments into the staged tile: its 64 rows, up
// columns at [0, 128), gate columns at [128, 256) of each kStagedLd-float row.
__device__ __forceinline__ void stage_fragments(const float (&up)[kFragment],
                                                const float (&gate)[kFragment], float* staged) {
  const int lane = threadIdx.x & 31;
  const int row0 = 64 * (threadIdx.x >> 7) + 16 * ((threadIdx.x >> 5) & 3) + lane / 4;
  float* base = staged + row0 * kStagedLd + 2 * (lane & 3);
#pragma unroll
  for (int j = 0; j < kFragment / 4; ++j) {
    *reinterpret_cast<float2*>(base + 8 * j) = make_float2(up[4 * j], up[4 * j + 1]);
    *reinterpret_cast<float2*>(base + 8 * kStagedLd + 8 * j) =
        make_float2(up[4 * j + 2], up[4 * j + 3]);
    *reinterpret_cast<float2*>(base + kTileCols + 8 * j) =
        make_float2(gate[4 * j], gate[4 * j + 1]);
    *reinterpret_cast<float2*>(base + 8 * kStagedLd + kTileCols + 8 * j) =
        make_float2(gate[4 * j + 2], gate[4 * j + 3]);
  }
}

// GEMM2's input from the staged tile: activation (activation_kernel.cuh's formulas) and e4m3
// quantization (act_quant.cuh's rules), the same bits as the activation kernel. One warp per
// row; lane l owns intermediate columns [4 l, 4 l + 4) of the tile, so a quantization group of
// g columns is g / 4 lanes and its amax a few xor shuffles, and four independent elements per
// lane overlap their dependent chains (expf, two divisions). kSwiglu compiles the common
// activation without the generic switch. (Four rows per warp at once, for more overlap, ran
// 30% slower at Mixtral-8x7B-fp8 T = 4096: the longer unrolled body costs more than it hides.)
template <bool kSwiglu>
__device__ void activate_and_quantize(const Params& p, const TileInfo& tile, const float* staged) {
  const ActivationParams& ap = p.act;
  const ActQuantOut& q = ap.quant;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const Activation act = kSwiglu ? Activation::Swiglu : static_cast<Activation>(ap.activation);
  const int32_t e = tile.expert;
  const act_math::ExpertParams prm = act_math::expert_params(ap, e);
  const bool by_row =
      ap.dequant.active && dequant_is_row_constant(ap.dequant, 2 * static_cast<int64_t>(p.inter));
  const int64_t col0 = static_cast<int64_t>(tile.col_block) * kTileCols + 4 * lane;
  const float static_s = q.static_scale != nullptr ? q.static_scale[e * q.static_stride] : 1.0f;
  const int group_lanes = p.quant.is_static ? 1 : static_cast<int>(p.quant.group / 4);
  for (int row = warp; row < tile.rows; row += kConsumerWarps) {
    const int64_t r = tile.row_begin + row;
    const float w = ap.weight_on_input ? ap.topk_weights[ap.permuted_to_expanded[r]] : 1.0f;
    const float factor = by_row ? dequant_factor(ap.dequant, r, e, 0) : 1.0f;
    auto dequant = [&](float x, int64_t m) {
      // by_row: the factor of every column, evaluated once (the same bits as per element).
      return by_row ? __fmul_rn(x, factor) : act_math::dequantized(ap, x, r, e, m);
    };
    const float* src = staged + row * kStagedLd + 4 * lane;
    const float4 up4 = *reinterpret_cast<const float4*>(src);
    const float4 gate4 = *reinterpret_cast<const float4*>(src + kTileCols);
    const float up[4] = {up4.x, up4.y, up4.z, up4.w};
    const float gate[4] = {gate4.x, gate4.y, gate4.z, gate4.w};
    float v[4];
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t col = col0 + i, m = p.inter + col;
      const float u = act_math::pre_activation(ap, dequant(up[i], col), w, e, col);
      const float g = act_math::pre_activation(ap, dequant(gate[i], m), w, e, m);
      v[i] = act_math::activate_gated(act, g, u, prm);
      amax = act_quant::amax_step(amax, v[i]);
    }
    float s = static_s;
    if (p.quant.is_static) {
      if (tile.col_block == 0 && lane == 0) act_quant::store_scale(q.scales, r, 0, s);
    } else {
      for (int offset = 1; offset < group_lanes; offset <<= 1) {
        amax = act_quant::amax_step(amax, __shfl_xor_sync(0xffffffffu, amax, offset));
      }
      s = act_quant::scale_from_amax(p.quant.mx, amax);
      if (lane % group_lanes == 0) act_quant::store_scale(q.scales, r, col0 / p.quant.group, s);
    }
    uint32_t packed = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      packed |= static_cast<uint32_t>(act_quant::quantize_e4m3(v[i], s)) << (8 * i);
    }
    *reinterpret_cast<uint32_t*>(q.codes + r * q.ld_codes + col0) = packed;
  }
}

// Synchronizes the two consumer warpgroups (not the producer warp).
__device__ __forceinline__ void consumers_sync() {
  sm90_ptx::named_barrier_sync(1, kConsumerThreads);
}

// The consumers: per tile, the mainloop, then the epilogue through the staged tile (over the
// stage buffers), then the buffers go back to the producer.
__device__ void consume_tiles(const Params& p, const Pipeline& pl, float* staged) {
  const bool swiglu = static_cast<Activation>(p.act.activation) == Activation::Swiglu;
  int64_t it = 0;
  for (int64_t n = 0;; ++n) {
    const int slot = static_cast<int>(n % kTileSlots);
    sm90_ptx::mbarrier_wait(&pl.tile_full[slot], (n / kTileSlots) & 1);
    const TileInfo tile = pl.tiles[slot];
    __syncwarp();
    if ((threadIdx.x & 31) == 0) sm90_ptx::mbarrier_arrive(&pl.tile_empty[slot]);
    if (tile.expert < 0) return;
    float up[kFragment], gate[kFragment];
    consume(p, tile, pl, it, up, gate);
    consumers_sync();  // both warpgroups are done reading the stage buffers
    stage_fragments(up, gate, staged);
    consumers_sync();
    if (swiglu) {
      activate_and_quantize<true>(p, tile, staged);
    } else {
      activate_and_quantize<false>(p, tile, staged);
    }
    __syncwarp();
    if ((threadIdx.x & 31) == 0) sm90_ptx::mbarrier_arrive(pl.staged_free);
  }
}

// Persistent: CTA b takes tiles b, b + gridDim.x, ... Threads 0..127 compute rows 0..63 of a
// tile, 128..255 rows 64..127 (both halves, up and gate); warp 8 of the third warpgroup is the
// producer, its other three warps only return their registers.
__global__ void __launch_bounds__(kThreads, 1)
    fp8_gated_gemm1_kernel(const __grid_constant__ CUtensorMap tmap_a,
                           const __grid_constant__ CUtensorMap tmap_b, const Params p) {
  extern __shared__ uint8_t smem_raw[];
  // 1024-byte alignment for the 128-byte swizzle atoms.
  uint8_t* smem = reinterpret_cast<uint8_t*>(
      (reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~static_cast<uintptr_t>(1023));
  __shared__ TileInfo tiles[kTileSlots];
  uint64_t* barriers = reinterpret_cast<uint64_t*>(smem + SharedLayout::kBarriers);
  const Pipeline pl{smem,
                    barriers,
                    barriers + kStages,
                    tiles,
                    barriers + 2 * kStages,
                    barriers + 2 * kStages + kTileSlots,
                    barriers + 2 * kStages + 2 * kTileSlots};
  if (threadIdx.x == kConsumerThreads) {  // the producer's leader
    for (int s = 0; s < kStages; ++s) {
      sm90_ptx::mbarrier_init(&pl.full[s], 1);
      sm90_ptx::mbarrier_init(&pl.empty[s], kConsumerWarps);
    }
    for (int s = 0; s < kTileSlots; ++s) {
      sm90_ptx::mbarrier_init(&pl.tile_full[s], 1);
      sm90_ptx::mbarrier_init(&pl.tile_empty[s], kConsumerWarps);
    }
    sm90_ptx::mbarrier_init(pl.staged_free, kConsumerWarps);
    sm90_ptx::fence_barrier_init();
    sm90_ptx::prefetch_tensormap(&tmap_a);
    sm90_ptx::prefetch_tensormap(&tmap_b);
  }
  __syncthreads();
  if (threadIdx.x >= kConsumerThreads) {
    sm90_ptx::warpgroup_reg_dealloc<kProducerRegisters>();
    if (threadIdx.x < kConsumerThreads + 32) produce(&tmap_a, &tmap_b, p, pl);
  } else {
    sm90_ptx::warpgroup_reg_alloc<kConsumerRegisters>();
    consume_tiles(p, pl, reinterpret_cast<float*>(smem));
  }
}

// ---- host -----------------------------------------------------------------------------------

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The smallest quantization group the epilogue takes: 4 columns, one lane's share of a row.
constexpr int64_t kMinQuantGroup = 4;

// The epilogue's quantization of GEMM2's input; nullptr when the kernel can do it.
const char* epilogue_quant_of(const ActivationParams& act, sm80::FusedQuant* out) {
  act_quant::RowQuantPlan plan;
  if (!act_quant::plan_row_quant(act.quant, act.inter, 1, &plan) || act.quant.codes == nullptr ||
      act.quant.ld_codes < act.inter) {
    return "sm90 fused GEMM1: needs an FP8 quantization of GEMM2's input, with codes";
  }
  out->is_static = plan.reduce == act_quant::Reduce::Static;
  out->mx = plan.mx;
  out->group = plan.group;
  if (!out->is_static && (out->group % kMinQuantGroup != 0 || kTileCols % out->group != 0)) {
    return "sm90 fused GEMM1: quantization groups must divide the 128-column tile (and be "
           "multiples of 4 columns)";
  }
  return nullptr;
}

const char* check(const GroupedGemmArgs& a, int sm) {
  if (!build_has_sm90a()) return "sm90 fused GEMM1: the build has no 90a target";
  if (sm != 90) return "sm90 fused GEMM1: needs an sm_90 device (wgmma)";
  if (!a.fp8 || a.activation == nullptr) return "sm90 fused GEMM1: FP8 GEMM1 with an activation";
  if (a.a_row_index != nullptr || a.schedule_prebuilt || a.k_splits != 1) {
    return "sm90 fused GEMM1: no fused gather, prebuilt schedule or split K";
  }
  const ActivationParams& act = *a.activation;
  if (!is_gated(static_cast<Activation>(act.activation)) || a.n != 2 * act.inter ||
      act.inter % kTileCols != 0) {
    return "sm90 fused GEMM1: a gated activation with I a multiple of 128";
  }
  if (a.b_stride_k != 1) return "sm90 fused GEMM1: B must be K-major";
  if (a.k <= 0 || a.k % 16 != 0 || a.lda % 16 != 0 || a.b_stride_n % 16 != 0 ||
      a.b_stride_e % 16 != 0 || a.lda < a.k || a.b_stride_n < a.k) {
    return "sm90 fused GEMM1: k, lda and the weight strides must be multiples of 16 bytes";
  }
  if (a.k > INT32_MAX || a.n > INT32_MAX || a.max_rows > INT32_MAX || a.num_experts <= 0) {
    return "sm90 fused GEMM1: sizes must fit in int32";
  }
  if (!aligned16(a.a) || !aligned16(a.b)) return "sm90 fused GEMM1: A and B 16-byte aligned";
  if (a.a_kscale.data != nullptr && a.a_kscale.group != kTileK) {
    return "sm90 fused GEMM1: K-varying row scales must come in 128-column slices";
  }
  if (a.b_kscale.data != nullptr &&
      (a.b_kscale.block_cols != kTileK ||
       (a.b_kscale.block_rows % kTileCols != 0 && a.b_kscale.block_rows < a.n))) {
    return "sm90 fused GEMM1: K-varying weight scales must be 128-column blocks of whole "
           "128-row groups";
  }
  sm80::FusedQuant q;
  return epilogue_quant_of(act, &q);
}

using EncodeTiled = PFN_cuTensorMapEncodeTiled_v12000;

// The driver's tensor map encoder, fetched once through the runtime (no libcuda link).
EncodeTiled encoder() {
  static EncodeTiled fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult status;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault,
                                         &status) != cudaSuccess ||
        status != cudaDriverEntryPointSuccess) {
      return static_cast<EncodeTiled>(nullptr);
    }
    return reinterpret_cast<EncodeTiled>(f);
  }();
  return fn;
}

// A byte tensor map of `rank` dims (innermost first) with 128-byte swizzled boxes.
bool encode(CUtensorMap* map, const void* base, int rank, const uint64_t* dims,
            const uint64_t* strides, const uint32_t* box) {
  const EncodeTiled fn = encoder();
  if (fn == nullptr) return false;
  const cuuint32_t element_strides[3] = {1, 1, 1};
  return fn(map, CU_TENSOR_MAP_DATA_TYPE_UINT8, static_cast<cuuint32_t>(rank),
            const_cast<void*>(base), dims, strides, box, element_strides,
            CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
            CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

}  // namespace

bool supports(const GroupedGemmArgs& args, int sm, const char** why) {
  const char* reason = check(args, sm);
  if (why != nullptr) *why = reason;
  return reason == nullptr;
}

int launch(const GroupedGemmArgs& args, void* stream) {
  DeviceInfo dev;
  cudaError_t err = current_device_info(&dev);
  if (err != cudaSuccess) return static_cast<int>(err);
  if (check(args, dev.sm) != nullptr) return static_cast<int>(cudaErrorInvalidValue);
  if (args.max_rows == 0) return 0;

  Params p;
  p.row_offsets = args.row_offsets;
  p.num_experts = args.num_experts;
  p.max_rows = static_cast<int32_t>(args.max_rows);
  p.k_blocks = static_cast<int32_t>((args.k + kTileK - 1) / kTileK);
  p.inter = static_cast<int32_t>(args.activation->inter);
  p.col_blocks = p.inter / kTileCols;
  p.a_scale = args.a_kscale;
  p.w_scale = args.b_kscale;
  p.act = *args.activation;
  epilogue_quant_of(p.act, &p.quant);

  CUtensorMap tmap_a, tmap_b;
  const uint64_t a_dims[2] = {static_cast<uint64_t>(args.k), static_cast<uint64_t>(args.max_rows)};
  const uint64_t a_strides[1] = {static_cast<uint64_t>(args.lda)};
  const uint32_t a_box[2] = {kTileK, kTileRows};
  const uint64_t b_dims[3] = {static_cast<uint64_t>(args.k), static_cast<uint64_t>(args.n),
                              static_cast<uint64_t>(args.num_experts)};
  const uint64_t b_strides[2] = {static_cast<uint64_t>(args.b_stride_n),
                                 static_cast<uint64_t>(args.b_stride_e)};
  const uint32_t b_box[3] = {kTileK, kTileCols, 1};
  if (!encode(&tmap_a, args.a, 2, a_dims, a_strides, a_box) ||
      !encode(&tmap_b, args.b, 3, b_dims, b_strides, b_box)) {
    return static_cast<int>(cudaErrorInvalidValue);
  }

  // Tiles: sum over experts of ceil(rows_e / 64) <= max_rows / 64 + (experts with rows); the
  // persistent grid is one CTA per SM, or fewer for fewer tiles.
  const int64_t row_tiles = args.max_rows / kTileRows +
                            (args.num_experts < args.max_rows ? args.num_experts : args.max_rows);
  const int64_t tiles = row_tiles * p.col_blocks;
  const int64_t grid = tiles < dev.sm_count ? tiles : dev.sm_count;
  err = cudaFuncSetAttribute(fp8_gated_gemm1_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(kSmemBytes));
  if (err != cudaSuccess) return static_cast<int>(err);
  fp8_gated_gemm1_kernel<<<static_cast<unsigned>(grid), kThreads, kSmemBytes,
                           static_cast<cudaStream_t>(stream)>>>(tmap_a, tmap_b, p);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace sm90_fp8_gated
}  // namespace cuda
}  // namespace flashinfer_moe
