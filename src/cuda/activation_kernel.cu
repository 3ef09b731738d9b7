// The activation kernel (activation_kernel.h): one block per (permuted row, column tile),
// grid-strided over rows; each thread produces 4 consecutive intermediate columns. The fp32
// formulas live in activation_kernel.cuh, shared with the sm80 GEMM's fused epilogue.
#include <cuda_runtime.h>

#include <algorithm>

#include "common/formats.h"
#include "cuda/activation_kernel.cuh"
#include "flashinfer_moe/types.h"

namespace flashinfer_moe {
namespace cuda {
namespace {

using act_math::activate;
using act_math::activate_gated;
using act_math::pre_activation;

constexpr int kThreads = 128;
constexpr int kVec = 4;
constexpr int64_t kMaxRowBlocks = 16384;

// ---- the kernel ---------------------------------------------------------------------------------

template <bool kGated, bool kVector, bool kBf16Out>
__global__ void __launch_bounds__(kThreads) activation_kernel(ActivationParams p) {
  const int64_t count = *p.row_count;
  const Activation act = static_cast<Activation>(p.activation);
  const int64_t step = kVector ? kVec : 1;
  const int64_t col = (static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x) * step;
  if (col >= p.inter) return;
  uint16_t* a2 = static_cast<uint16_t*>(p.a2);
  for (int64_t r = blockIdx.x; r < count; r += gridDim.x) {
    const int32_t e = p.row_expert[r];
    const float w = p.weight_on_input ? p.topk_weights[p.permuted_to_expanded[r]] : 1.0f;
    const act_math::ExpertParams prm = act_math::expert_params(p, e);
    const float* c1 = p.c1 + r * p.ldc1;
    float up[kVec], gate[kVec];
    if constexpr (kVector) {
      const float4 u4 = *reinterpret_cast<const float4*>(c1 + col);
      up[0] = u4.x, up[1] = u4.y, up[2] = u4.z, up[3] = u4.w;
      if constexpr (kGated) {
        const float4 g4 = *reinterpret_cast<const float4*>(c1 + p.inter + col);
        gate[0] = g4.x, gate[1] = g4.y, gate[2] = g4.z, gate[3] = g4.w;
      }
    } else {
      up[0] = c1[col];
      if constexpr (kGated) gate[0] = c1[p.inter + col];
    }
    uint16_t h[kVec];
#pragma unroll
    for (int i = 0; i < (kVector ? kVec : 1); ++i) {
      const float u = pre_activation(p, up[i], w, e, col + i);
      float v;
      if constexpr (kGated) {
        const float g = pre_activation(p, gate[i], w, e, p.inter + col + i);
        v = activate_gated(act, g, u, prm);
      } else {
        v = activate(act, u);
      }
      h[i] = kBf16Out ? formats::float_to_bf16(v) : formats::float_to_fp16(v);
    }
    uint16_t* dst = a2 + r * p.lda2 + col;
    if constexpr (kVector) {
      uint2 packed;
      packed.x = static_cast<uint32_t>(h[0]) | (static_cast<uint32_t>(h[1]) << 16);
      packed.y = static_cast<uint32_t>(h[2]) | (static_cast<uint32_t>(h[3]) << 16);
      *reinterpret_cast<uint2*>(dst) = packed;
    } else {
      *dst = h[0];
    }
  }
}

template <bool kGated, bool kVector>
cudaError_t launch_shaped(const ActivationParams& p, dim3 grid, cudaStream_t s) {
  if (static_cast<DType>(p.a2_dtype) == DType::BF16) {
    activation_kernel<kGated, kVector, true><<<grid, kThreads, 0, s>>>(p);
  } else {
    activation_kernel<kGated, kVector, false><<<grid, kThreads, 0, s>>>(p);
  }
  return cudaGetLastError();
}

}  // namespace

int launch_activation(const ActivationParams& p, void* stream) {
  if (p.max_rows == 0 || p.inter == 0) return static_cast<int>(cudaSuccess);
  const DType out = static_cast<DType>(p.a2_dtype);
  if (out != DType::BF16 && out != DType::F16) return static_cast<int>(cudaErrorInvalidValue);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const bool gated = is_gated(static_cast<Activation>(p.activation));
  // The up and gate halves start 16-byte aligned only when I is a multiple of 4.
  const bool vector = p.inter % kVec == 0 && p.ldc1 % kVec == 0;
  const int64_t per_block = kThreads * (vector ? kVec : 1);
  const dim3 grid(static_cast<unsigned>(std::min(p.max_rows, kMaxRowBlocks)),
                  static_cast<unsigned>((p.inter + per_block - 1) / per_block));
  cudaError_t err;
  if (gated) {
    err = vector ? launch_shaped<true, true>(p, grid, s) : launch_shaped<true, false>(p, grid, s);
  } else {
    err = vector ? launch_shaped<false, true>(p, grid, s) : launch_shaped<false, false>(p, grid, s);
  }
  return static_cast<int>(err);
}

}  // namespace cuda
}  // namespace flashinfer_moe
