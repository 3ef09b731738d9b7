// The widened activation (activation_kernel.h, launch_activation_widened): GEMM1's epilogue of
// an FP4-weight problem whose intermediate is quantized (W4A8 / W4A4). The activated row is
// quantized per inter_quant and written as the exactly widened bf16 values of act_widen.cuh,
// with the row's constant factor (the static scale; 1 for MXFP8) in widen_row_scale for
// GEMM2's dequantization.
//
// One block per permuted row (grid-strided), one thread per quantization group; the activated
// values come from ActivationSource, the same fp32 math as the other activation kernels.
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda/act_widen.cuh"
#include "cuda/epilogue/activation_kernel.cuh"
#include "flashinfer_moe/types.h"

namespace flashinfer_moe {
namespace cuda {
namespace {

constexpr int64_t kMaxRowBlocks = 16384;

template <bool kGated, int kG>
__global__ void __launch_bounds__(256) activation_widened_kernel(ActivationParams p) {
  const int64_t count = *p.row_count;
  const ActQuant mode = static_cast<ActQuant>(p.quant.mode);
  const int64_t groups = (p.inter + kG - 1) / kG;
  const bool per_column = !dequant_is_row_constant(p.dequant, kGated ? 2 * p.inter : p.inter);
  uint16_t* a2 = static_cast<uint16_t*>(p.a2);
  for (int64_t r = blockIdx.x; r < count; r += gridDim.x) {
    const int32_t e = p.row_expert[r];
    const float w = p.weight_on_input ? p.topk_weights[p.permuted_to_expanded[r]] : 1.0f;
    const float row_factor =
        p.dequant.active && !per_column ? dequant_factor(p.dequant, r, e, 0) : 1.0f;
    const act_math::ActivationSource<kGated, kG> source{
        p, p.c1 + r * p.ldc1, r, e, w, act_math::expert_params(p, e), per_column, row_factor};
    const float static_s =
        p.quant.static_scale != nullptr ? p.quant.static_scale[e * p.quant.static_stride] : 1.0f;
    for (int64_t g = threadIdx.x; g < groups; g += blockDim.x) {
      const int64_t col = g * kG;
      const int n = static_cast<int>(std::min<int64_t>(kG, p.inter - col));
      float v[kG];
      source.load(col, v, n);
      act_widen::widen_group<kG>(mode, static_s, v, n);
      act_widen::store_bf16<kG>(a2 + r * p.lda2, col, v, n);
    }
    if (threadIdx.x == 0) p.widen_row_scale[r] = mode == ActQuant::MxFp8 ? 1.0f : static_s;
  }
  act_math::zero_inter_rows(p, count, threadIdx.x, p.inter, blockDim.x);
}

template <bool kGated>
cudaError_t launch_gated(const ActivationParams& p, int g, cudaStream_t s) {
  const int64_t groups = (p.inter + g - 1) / g;
  const int threads = static_cast<int>(std::min<int64_t>(256, (groups + 31) / 32 * 32));
  const dim3 grid(static_cast<unsigned>(std::min(p.max_rows, kMaxRowBlocks)));
  if (g == 32) {
    activation_widened_kernel<kGated, 32><<<grid, threads, 0, s>>>(p);
  } else {
    activation_widened_kernel<kGated, 16><<<grid, threads, 0, s>>>(p);
  }
  return cudaGetLastError();
}

}  // namespace

int launch_activation_widened(const ActivationParams& p, void* stream) {
  if (p.max_rows == 0 || p.inter == 0) return static_cast<int>(cudaSuccess);
  const ActQuant mode = static_cast<ActQuant>(p.quant.mode);
  const bool quantize =
      mode == ActQuant::Fp8Static || mode == ActQuant::MxFp8 || mode == ActQuant::NvFp4;
  if (!quantize || p.widen_row_scale == nullptr ||
      p.a2_dtype != static_cast<int32_t>(DType::BF16) || p.lda2 % 8 != 0) {
    return static_cast<int>(cudaErrorInvalidValue);
  }
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int g = act_widen::group_columns(mode);
  const bool gated = is_gated(static_cast<Activation>(p.activation));
  return static_cast<int>(gated ? launch_gated<true>(p, g, s) : launch_gated<false>(p, g, s));
}

}  // namespace cuda
}  // namespace flashinfer_moe
