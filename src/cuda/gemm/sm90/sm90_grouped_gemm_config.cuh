// CUTLASS 3.x type definitions for the Hopper grouped GEMM family (sm90_grouped_gemm.cu).
// (The other configurations, sm90_grouped_gemm_{swap_ab,swap_ab_wide}.cu, define their
// types in their own translation units; this header holds what they share.)
//
// The default configuration (Config::Prefill) serves prefill: a pointer-array ("grouped") GEMM,
// TMA loads + WGMMA, warp-specialized cooperative schedule, persistent grid. Per group (=expert):
//     D[M_e, N] (fp32, row-major, ldc) = A_e[M_e, K] (row-major, lda) * B_e[N, K]^T (K-major)
// which is CUTLASS's "TN" GEMM: A RowMajor, B ColumnMajor (K contiguous), D RowMajor.
//
// Tile choice: 128 x 256 x 64 with a 2 x 1 x 1 cluster.
// - 128 x 256 (cooperative: the two consumer warpgroups split M, 64 x 256 each, 128 fp32
//   accumulators per thread; 168 registers at entry, no spills) is the largest bf16 tile whose
//   accumulators stay in registers, so it has the best reuse per shared-memory byte
//   (2*128*256 FLOP per (128+256)*2 bytes = 85 FLOP/byte); a 1-CTA-per-SM persistent kernel.
//   Measured on H200: 837 TFLOP/s at 8 experts x 2048 rows, N=28672, K=4096.
// - K = 64 bf16 = 128 bytes: one 128-byte swizzle atom per row, the natural TMA box.
// - Cluster 2 along M: the two CTAs of a cluster work on neighbouring row tiles of the SAME
//   expert and N tile, so the B tile (weights, 256 x 64, the larger operand and the one MoE
//   streams from HBM) is multicast to both: half the L2->SM traffic for weights.
//   Cost: an expert's row-tile count rounds up to even; the extra tile lies past the expert's
//   rows, so TMA loads zeros and stores nothing: wasted tensor-core time for experts with an
//   odd tile count, negligible at prefill sizes (decode goes to the sm80 family).
// - C is `void`: beta is always 0 here, so the epilogue never loads a source tensor.
#pragma once

#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/epilogue/fusion/operations.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/dispatch_policy.hpp"
#include "cutlass/gemm/group_array_problem_shape.hpp"
#include "cutlass/gemm/kernel/gemm_universal.hpp"

namespace flashinfer_moe {
namespace cuda {
namespace sm90 {

// <M, N, K> per group; M is int32 (a single expert never gets 2^31 rows: supports() checks).
using ProblemShape = cutlass::gemm::GroupProblemShape<cute::Shape<int, int, int>>;

// Shared by both element types. (At namespace scope, not inside the PrefillGemm template: g++
// as nvcc's host compiler fails to parse the epilogue builder's nested types in a template.)
using PrefillTileShape = cute::Shape<cute::_128, cute::_256, cute::_64>;
using PrefillClusterShape = cute::Shape<cute::_2, cute::_1, cute::_1>;
using PrefillLayoutD = cutlass::layout::RowMajor;
constexpr int kPrefillAlignD = 128 / cutlass::sizeof_bits<float>::value;  // 4 floats = 16 bytes
using PrefillEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
    cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, PrefillTileShape, PrefillClusterShape,
    cutlass::epilogue::collective::EpilogueTileAuto, float, float, void, PrefillLayoutD*,
    kPrefillAlignD,  // C: void = no source tensor; D: fp32 below
    float, PrefillLayoutD*, kPrefillAlignD,
    cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative,
    cutlass::epilogue::fusion::LinearCombination<float, float, void, float>>::CollectiveOp;
// The epilogue's shared memory as a plain constant: written as sizeof(...) inside the mainloop
// builder's template argument list, g++ 12 misparses the host code nvcc generates for it.
constexpr int kPrefillEpilogueSmemBytes = static_cast<int>(sizeof(PrefillEpilogue::SharedStorage));

template <class ElementAB>
struct PrefillGemm {
  using ElementA = ElementAB;
  using ElementB = ElementAB;
  using ElementD = float;
  using ElementAccumulator = float;
  using LayoutA = cutlass::layout::RowMajor;
  using LayoutB = cutlass::layout::ColumnMajor;  // (N, K) with K contiguous
  // TMA needs 16-byte aligned rows: 8 bf16/fp16 elements.
  static constexpr int kAlignAB = 128 / cutlass::sizeof_bits<ElementAB>::value;

  using TileShape = PrefillTileShape;
  using ClusterShape = PrefillClusterShape;
  using KernelSchedule = cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative;

  using CollectiveEpilogue = PrefillEpilogue;
  // sm90_grouped_gemm_launch.cuh: the plain "TN" problem; consecutive tiles share a weight tile.
  static constexpr bool kSwapAB = false;
  static constexpr bool kRasterAlongN = false;

  // Stages: as many as fit next to the epilogue's shared memory.
  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, ElementA, LayoutA*, kAlignAB, ElementB,
      LayoutB*, kAlignAB, ElementAccumulator, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<kPrefillEpilogueSmemBytes>,
      KernelSchedule>::CollectiveOp;

  using Kernel =
      cutlass::gemm::kernel::GemmUniversal<ProblemShape, CollectiveMainloop, CollectiveEpilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  // Per-group strides as the kernel reads them (device arrays of these).
  using StrideA = typename Kernel::InternalStrideA;  // (lda, _1, _0)
  using StrideB = typename Kernel::InternalStrideB;  // (b_stride_n, _1, _0)
  using StrideD = typename Kernel::InternalStrideD;  // (ldc, _1, _0)
};

}  // namespace sm90
}  // namespace cuda
}  // namespace flashinfer_moe
