// The kernel type shared by the swap-AB configurations of the Hopper grouped GEMM
// (sm90_grouped_gemm_swap_ab.cu, sm90_grouped_gemm_swap_ab_wide.cu): each translation unit
// instantiates it once with its own tile, so a configuration is one line plus its rationale.
//
// Per expert it solves the transposed problem D'[n, rows] = W_e[n, k] * X_e[rows, k]^T: the
// weights are CUTLASS's A (M = n, K-major), the expert's rows are B (N = rows, K-major), and D'
// is column-major with leading dimension ldc, i.e. the row-major C[rows, n] of the contract.
// Cooperative schedule, cluster 1 x 1 (an expert's few rows give one N tile: nothing to
// multicast to), tiles rastered along N so a weight tile's CTAs run together.
// Included only where CUTLASS is available.
#pragma once

#include "cuda/gemm/sm90/sm90_grouped_gemm_launch.cuh"

namespace flashinfer_moe {
namespace cuda {
namespace sm90 {

template <int kWeightRows, int kExpertRows, int kTileK>
struct SwapABGemm {
  using TileShape = cute::Shape<cute::Int<kWeightRows>, cute::Int<kExpertRows>, cute::Int<kTileK>>;
  using ClusterShape = cute::Shape<cute::_1, cute::_1, cute::_1>;
  using LayoutD = cutlass::layout::ColumnMajor;  // D'[n, rows] == C[rows, n] row-major
  static constexpr int kAlignD = 128 / cutlass::sizeof_bits<float>::value;
  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float, void, LayoutD*, kAlignD, float,
      LayoutD*, kAlignD, cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative,
      cutlass::epilogue::fusion::LinearCombination<float, float, void, float>>::CollectiveOp;
  static constexpr int kEpilogueSmemBytes =
      static_cast<int>(sizeof(typename Epilogue::SharedStorage));

  using ElementA = cutlass::bfloat16_t;  // weights
  using ElementB = cutlass::bfloat16_t;  // the expert's rows
  static constexpr int kAlignAB = 8;     // 16-byte TMA rows
  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, ElementA, cutlass::layout::RowMajor*,
      kAlignAB, ElementB, cutlass::layout::ColumnMajor*, kAlignAB, float, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<kEpilogueSmemBytes>,
      cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative>::CollectiveOp;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, CollectiveMainloop, Epilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  using StrideA = typename Kernel::InternalStrideA;  // (b_stride_n, _1, _0)
  using StrideB = typename Kernel::InternalStrideB;  // (lda, _1, _0)
  using StrideD = typename Kernel::InternalStrideD;  // (_1, ldc, _0)
  static constexpr bool kSwapAB = true;
  static constexpr bool kRasterAlongN = true;
};

}  // namespace sm90
}  // namespace cuda
}  // namespace flashinfer_moe
