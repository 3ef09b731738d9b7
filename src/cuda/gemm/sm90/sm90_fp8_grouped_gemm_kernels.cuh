// CUTLASS kernel types of the FP8 Hopper grouped GEMM configurations (sm90_fp8_grouped_gemm.h),
// and the launch of the blockwise-scaled one. Each sm90_fp8_grouped_gemm_*.cu instantiates one
// of these templates once (one CUTLASS instantiation per translation unit).
//
// - Fp8PerTensorGemm: e4m3 x e4m3 -> fp32 with no scales. The mainloop is CUTLASS's FP8 pointer-
//   array mainloop, which adds the tensor cores' partial sums into separate fp32 registers every
//   4 MMAs ("promotion"): Hopper's FP8 WGMMA accumulates with fewer mantissa bits than fp32, and
//   the contract asks for fp32 accumulation over K of several thousand. The promotion interval
//   is CUTLASS's default of 4 MMAs and promotion only fires when a K tile's MMA count hits it
//   exactly, so kTileK must be 128 (4 MMAs of K = 32). Launched by the shared sm90 machinery
//   (sm90_grouped_gemm_launch.cuh, detail::launch_typed).
// - Fp8BlockwiseGemm: CUTLASS's blockwise-scaled mainloop (KernelPtrArrayTmaWarpSpecialized
//   {Cooperative,Pingpong}FP8Blockwise): the K tile equals the 128-wide scale block, every K
//   tile's WGMMA result is multiplied by its scales and added to the fp32 accumulator, i.e.
//   exactly sum_s (sum_{k in s} a b) * a_kscale(r, s) * b_kscale(e, n, s) of grouped_gemm.h.
//   The scales reach shared memory through cp.async (not TMA), one fp32 per (row, K tile) and per
//   (128 weight rows, K tile). Swap-AB for decode, the plain TN problem for prefill.
// Swap-AB (weights on CUTLASS's M side, an expert's rows on N, D' column-major == C row-major):
// see sm90_grouped_gemm_launch.cuh.
//
// Scale layouts: CUTLASS 4.2's grouped blockwise mainloop (sm90_mma_array_tma_gmma_ss_
// warpspecialized_fp8_blockwise_scaling.hpp, load_init) rebuilds each group's scale layout from
// the group's (M, N, K) with ScaleConfig::tile_atom_to_shape_SF{A,B} and never reads the
// per-group layout argument, so only packed layouts work. We pick K-major for both operands:
//   weights (128-row blocks): scale[n_block * ceil(K/128) + k_block] -> b_kscale of expert e
//       when its inner dims are packed (stride_c == 1, stride_r == ceil(K/128));
//   rows (one scale per row): scale[row * ceil(K/128) + k_block] -> a_kscale row-major with
//       ld == ceil(K/128), starting at the expert's first row.
// (SFA is the weights' and SFB the rows' when swapped, the other way round when not.)
// The M-major choice would need each expert's activation scales as a packed [k_block][rows_e]
// block, which a quantizer that writes rows in any order cannot produce with one `ld`.
// Include only from a .cu compiled with FLASHINFER_MOE_WITH_CUTLASS.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "cuda/gemm/grouped_gemm.h"
#include "cuda/gemm/sm90/sm90_grouped_gemm_launch.cuh"
#include "cutlass/detail/blockwise_scale_layout.hpp"

namespace flashinfer_moe {
namespace cuda {
namespace sm90_fp8 {

using sm90::ProblemShape;

// The fp32 output stage shared by every FP8 config: C is void (beta = 0, no source read), D fp32
// with 16-byte aligned rows (column-major for swap-AB: D'[n, rows] == C[rows, n]).
// The epilogue schedule must match the mainloop's (cooperative or pingpong).
template <class TileShape, class ClusterShape, class LayoutD,
          class Schedule = cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative>
using Fp8Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
    cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
    cutlass::epilogue::collective::EpilogueTileAuto, float, float, void, LayoutD*, 4, float,
    LayoutD*, 4, Schedule,
    cutlass::epilogue::fusion::LinearCombination<float, float, void, float>>::CollectiveOp;

// Per-tensor FP8. kSwapAB: see the file comment; the cluster runs along CUTLASS's M.
template <int kTileM, int kTileN, int kTileK, int kClusterM, bool kSwap>
struct Fp8PerTensorGemm {
  static_assert(kTileK == 128, "fp32 promotion every K tile needs 4 MMAs of K = 32 per tile");
  using TileShape = cute::Shape<cute::Int<kTileM>, cute::Int<kTileN>, cute::Int<kTileK>>;
  using ClusterShape = cute::Shape<cute::Int<kClusterM>, cute::_1, cute::_1>;
  using LayoutD =
      cute::conditional_t<kSwap, cutlass::layout::ColumnMajor, cutlass::layout::RowMajor>;
  using Epilogue = Fp8Epilogue<TileShape, ClusterShape, LayoutD>;
  // A plain constant: sizeof(...) inside the builder's argument list trips g++ (see sm90 config).
  static constexpr int kEpilogueSmemBytes =
      static_cast<int>(sizeof(typename Epilogue::SharedStorage));

  using ElementA = cutlass::float_e4m3_t;
  using ElementB = cutlass::float_e4m3_t;
  static constexpr int kAlignAB = 16;  // 16-byte TMA rows
  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, ElementA, cutlass::layout::RowMajor*,
      kAlignAB, ElementB, cutlass::layout::ColumnMajor*, kAlignAB, float, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<kEpilogueSmemBytes>,
      cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative>::CollectiveOp;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, CollectiveMainloop, Epilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  using StrideA = typename Kernel::InternalStrideA;
  using StrideB = typename Kernel::InternalStrideB;
  using StrideD = typename Kernel::InternalStrideD;
  static constexpr bool kSwapAB = kSwap;
  static constexpr bool kRasterAlongN = kSwap;  // consecutive tiles share a weight tile
};

// Blockwise-scaled FP8, K tile = scale block = 128. The weights carry one scale per 128 x 128
// block, the expert's rows one per row and 128 columns.
//  - kSwap: weights on CUTLASS's M side (A), rows on N (B), D column-major (decode).
//    Otherwise rows on M (A), weights on N (B), D row-major (prefill).
//  - kPingpong: two consumer warpgroups on two different tiles, one's MMAs overlapping the
//    other's scaling and epilogue; else cooperative (both warpgroups split one tile).
//  - kClusterM CTAs along M share (multicast) the N-side tile: the weights when !kSwap.
template <int kTileM, int kTileN, int kClusterM, bool kSwap, bool kPingpong>
struct Fp8BlockwiseGemm {
  static constexpr int kScaleBlock = 128;
  static_assert((kSwap ? kTileM : kTileN) % kScaleBlock == 0,
                "a weight tile must hold whole scale blocks");
  using TileShape = cute::Shape<cute::Int<kTileM>, cute::Int<kTileN>, cute::Int<kScaleBlock>>;
  using ClusterShape = cute::Shape<cute::Int<kClusterM>, cute::_1, cute::_1>;
  using LayoutD =
      cute::conditional_t<kSwap, cutlass::layout::ColumnMajor, cutlass::layout::RowMajor>;
  using EpilogueSchedule =
      cute::conditional_t<kPingpong, cutlass::epilogue::PtrArrayTmaWarpSpecializedPingpong,
                          cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative>;
  using MainloopSchedule =
      cute::conditional_t<kPingpong,
                          cutlass::gemm::KernelPtrArrayTmaWarpSpecializedPingpongFP8Blockwise,
                          cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperativeFP8Blockwise>;
  using Epilogue = Fp8Epilogue<TileShape, ClusterShape, LayoutD, EpilogueSchedule>;
  static constexpr int kEpilogueSmemBytes =
      static_cast<int>(sizeof(typename Epilogue::SharedStorage));

  // Granularity (M, N, K): (128 weight rows, 1 row, 128) swapped, (1 row, 128 weight rows, 128)
  // not; both K-major (file comment).
  static constexpr int kScaleM = kSwap ? kScaleBlock : 1;
  static constexpr int kScaleN = kSwap ? 1 : kScaleBlock;
  using ScaleConfig =
      cutlass::detail::Sm90BlockwiseScaleConfig<kScaleM, kScaleN, kScaleBlock, cute::GMMA::Major::K,
                                                cute::GMMA::Major::K>;
  using LayoutSFA = decltype(ScaleConfig::deduce_layoutSFA());
  using LayoutSFB = decltype(ScaleConfig::deduce_layoutSFB());

  using ElementA = cutlass::float_e4m3_t;
  using ElementB = cutlass::float_e4m3_t;
  static constexpr int kAlignAB = 16;
  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, ElementA,
      cute::tuple<cutlass::layout::RowMajor*, LayoutSFA*>, kAlignAB, ElementB,
      cute::tuple<cutlass::layout::ColumnMajor*, LayoutSFB*>, kAlignAB, float, TileShape,
      ClusterShape, cutlass::gemm::collective::StageCountAutoCarveout<kEpilogueSmemBytes>,
      MainloopSchedule>::CollectiveOp;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, CollectiveMainloop, Epilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  using StrideA = typename Kernel::InternalStrideA;  // (K-major row stride, _1, _0)
  using StrideB = typename Kernel::InternalStrideB;
  using StrideD = typename Kernel::InternalStrideD;  // (_1, ldc, _0) swapped, else (ldc, _1, _0)
  static constexpr bool kSwapAB = kSwap;
  static constexpr bool kRasterAlongN = kSwap;  // consecutive tiles share a weight tile
};

// The decode config: swap-AB, cooperative, no cluster.
template <int kWeightRows, int kExpertRows>
using Fp8BlockwiseSwapABGemm = Fp8BlockwiseGemm<kWeightRows, kExpertRows, 1, true, false>;

namespace detail {

using sm90::detail::align_up;
using sm90::detail::kAlign;
using sm90::detail::kMaxSms;

// Per-group arrays of the blockwise config in scratch: the sm90 ones plus scale pointers and
// layouts (CUTLASS keeps the layout arrays in its params; filled so nothing reads garbage).
template <class Cfg>
struct BlockwiseArrays {
  typename ProblemShape::UnderlyingProblemShape* shapes;
  const typename Cfg::ElementA** ptr_a;
  const typename Cfg::ElementB** ptr_b;
  float** ptr_d;
  typename Cfg::StrideA* stride_a;
  typename Cfg::StrideB* stride_b;
  typename Cfg::StrideD* stride_d;
  const float** ptr_sfa;
  const float** ptr_sfb;
  typename Cfg::LayoutSFA* layout_sfa;
  typename Cfg::LayoutSFB* layout_sfb;
  size_t cutlass_ws, end;  // offsets

  // Lays the arrays out from `base` (nullptr: offsets only, for sizing).
  BlockwiseArrays(void* base, int32_t groups, size_t cutlass_bytes) {
    const size_t g = static_cast<size_t>(groups);
    char* b = static_cast<char*>(base);
    size_t off = 0;
    auto take = [&](auto*& ptr, size_t each) {
      ptr = reinterpret_cast<std::remove_reference_t<decltype(ptr)>>(b + off);
      off = align_up(off + g * each);
    };
    take(shapes, sizeof(*shapes));
    take(ptr_a, sizeof(*ptr_a));
    take(ptr_b, sizeof(*ptr_b));
    take(ptr_d, sizeof(*ptr_d));
    take(stride_a, sizeof(*stride_a));
    take(stride_b, sizeof(*stride_b));
    take(stride_d, sizeof(*stride_d));
    take(ptr_sfa, sizeof(*ptr_sfa));
    take(ptr_sfb, sizeof(*ptr_sfb));
    take(layout_sfa, sizeof(*layout_sfa));
    take(layout_sfb, sizeof(*layout_sfb));
    cutlass_ws = off;
    end = align_up(off + cutlass_bytes);
  }
};

template <class Cfg>
typename Cfg::Gemm::Arguments blockwise_arguments(const BlockwiseArrays<Cfg>& g, int32_t groups,
                                                  int device, int sm_count) {
  cutlass::KernelHardwareInfo hw;
  hw.device_id = device;
  hw.sm_count = sm_count;
  hw.max_active_clusters = 0;
  typename Cfg::Gemm::Arguments args;
  args.mode = cutlass::gemm::GemmUniversalMode::kGrouped;
  args.problem_shape = {groups, g.shapes, nullptr};  // device shapes only
  args.mainloop = {g.ptr_a,   g.stride_a,   g.ptr_b,   g.stride_b,
                   g.ptr_sfa, g.layout_sfa, g.ptr_sfb, g.layout_sfb};
  args.epilogue = {{}, nullptr, nullptr, g.ptr_d, g.stride_d};
  args.hw_info = hw;
  using Raster = cutlass::gemm::kernel::detail::RasterOrderOptions;
  args.scheduler.raster_order = Cfg::kRasterAlongN ? Raster::AlongN : Raster::AlongM;
  return args;
}

template <class Cfg>
size_t blockwise_scratch_bytes(int32_t groups) {
  if (groups <= 0) return 0;
  const BlockwiseArrays<Cfg> probe(nullptr, groups, 0);
  const size_t cutlass_bytes =
      Cfg::Gemm::get_workspace_size(blockwise_arguments<Cfg>(probe, groups, 0, kMaxSms));
  return BlockwiseArrays<Cfg>(nullptr, groups, cutlass_bytes).end;
}

struct BlockwisePrepareParams {
  const int64_t* row_offsets;
  int32_t num_experts;
  int64_t max_rows;
  const uint8_t* a;  // e4m3 codes
  const uint8_t* b;
  float* c;
  int64_t lda, b_stride_e, b_stride_n, ldc;
  int32_t n, k;
  const float* act_scales;  // a_kscale.data, row-major, ld = ceil(k / 128)
  int64_t act_ld;
  const float* weight_scales;  // b_kscale.data, [E][ceil(n/128)][ceil(k/128)] packed inner dims
  int64_t weight_scale_stride_e;
};

// One thread per expert (as sm90::detail::prepare_groups), plus the scale pointers and layouts.
template <class Cfg>
__global__ void prepare_blockwise_groups(BlockwisePrepareParams p, BlockwiseArrays<Cfg> g) {
  const int32_t e = static_cast<int32_t>(blockIdx.x * blockDim.x + threadIdx.x);
  if (e >= p.num_experts) return;
  int64_t begin = p.row_offsets[e];
  int64_t end = p.row_offsets[e + 1];
  begin = begin < 0 ? 0 : (begin > p.max_rows ? p.max_rows : begin);
  end = end < begin ? begin : (end > p.max_rows ? p.max_rows : end);
  const int rows = static_cast<int>(end - begin);
  const uint8_t* weights = p.b + e * p.b_stride_e;
  const uint8_t* row_codes = p.a + begin * p.lda;
  const float* weight_scales = p.weight_scales + e * p.weight_scale_stride_e;
  const float* row_scales = p.act_scales + begin * p.act_ld;
  g.ptr_d[e] = p.c + begin * p.ldc;
  if constexpr (Cfg::kSwapAB) {  // D'[n, rows] = W_e * X_e^T, D' column-major == C row-major
    g.shapes[e] = cute::make_shape(p.n, rows, p.k);
    g.ptr_a[e] = reinterpret_cast<const typename Cfg::ElementA*>(weights);
    g.ptr_b[e] = reinterpret_cast<const typename Cfg::ElementB*>(row_codes);
    g.stride_a[e] = cute::make_stride(p.b_stride_n, cute::Int<1>{}, cute::Int<0>{});
    g.stride_b[e] = cute::make_stride(p.lda, cute::Int<1>{}, cute::Int<0>{});
    g.stride_d[e] = cute::make_stride(cute::Int<1>{}, p.ldc, cute::Int<0>{});
    g.ptr_sfa[e] = weight_scales;
    g.ptr_sfb[e] = row_scales;
  } else {  // D[rows, n] = X_e * W_e^T, row-major
    g.shapes[e] = cute::make_shape(rows, p.n, p.k);
    g.ptr_a[e] = reinterpret_cast<const typename Cfg::ElementA*>(row_codes);
    g.ptr_b[e] = reinterpret_cast<const typename Cfg::ElementB*>(weights);
    g.stride_a[e] = cute::make_stride(p.lda, cute::Int<1>{}, cute::Int<0>{});
    g.stride_b[e] = cute::make_stride(p.b_stride_n, cute::Int<1>{}, cute::Int<0>{});
    g.stride_d[e] = cute::make_stride(p.ldc, cute::Int<1>{}, cute::Int<0>{});
    g.ptr_sfa[e] = row_scales;
    g.ptr_sfb[e] = weight_scales;
  }
  const auto mnk =
      Cfg::kSwapAB ? cute::make_shape(p.n, rows, p.k) : cute::make_shape(rows, p.n, p.k);
  g.layout_sfa[e] = Cfg::ScaleConfig::tile_atom_to_shape_SFA(mnk);
  g.layout_sfb[e] = Cfg::ScaleConfig::tile_atom_to_shape_SFB(mnk);
}

// Enqueues prepare_blockwise_groups + the CUTLASS kernel; `args` passed supports().
template <class Cfg>
int launch_blockwise(const GroupedGemmArgs& args, cudaStream_t stream, int device, int sm_count) {
  const int32_t groups = args.num_experts;
  const BlockwiseArrays<Cfg> probe(nullptr, groups, 0);
  const size_t cutlass_bytes =
      Cfg::Gemm::get_workspace_size(blockwise_arguments<Cfg>(probe, groups, 0, kMaxSms));
  const BlockwiseArrays<Cfg> g(args.scratch, groups, cutlass_bytes);
  if (args.scratch == nullptr || args.scratch_bytes < g.end ||
      (reinterpret_cast<uintptr_t>(args.scratch) % kAlign) != 0) {
    return static_cast<int>(cudaErrorInvalidValue);
  }
  BlockwisePrepareParams p;
  p.row_offsets = args.row_offsets;
  p.num_experts = groups;
  p.max_rows = args.max_rows;
  p.a = static_cast<const uint8_t*>(args.a);
  p.b = static_cast<const uint8_t*>(args.b);
  p.c = args.c;
  p.lda = args.lda;
  p.b_stride_e = args.b_stride_e;
  p.b_stride_n = args.b_stride_n;
  p.ldc = args.ldc;
  p.n = static_cast<int32_t>(args.n);
  p.k = static_cast<int32_t>(args.k);
  p.act_scales = args.a_kscale.data;
  p.act_ld = args.a_kscale.ld;
  p.weight_scales = static_cast<const float*>(args.b_kscale.data);
  p.weight_scale_stride_e = args.b_kscale.stride_e;
  constexpr int kThreads = 128;
  prepare_blockwise_groups<Cfg><<<(groups + kThreads - 1) / kThreads, kThreads, 0, stream>>>(p, g);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return static_cast<int>(err);

  return sm90::detail::run_cutlass<typename Cfg::Gemm>(
      blockwise_arguments<Cfg>(g, groups, device, sm_count),
      static_cast<char*>(args.scratch) + g.cutlass_ws, stream);
}

}  // namespace detail
}  // namespace sm90_fp8
}  // namespace cuda
}  // namespace flashinfer_moe
