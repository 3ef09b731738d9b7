// The activation kernel (activation_kernel.h): one block per (permuted row, column tile),
// grid-strided over rows; each thread produces 4 consecutive intermediate columns. The fp32
// formulas live in activation_kernel.cuh, shared with the sm80 GEMM's fused epilogue.
//
// An FP8 quant.mode takes another kernel, one block per permuted row (grid-strided), because
// per-token and per-group scales need the amax of the activated row (act_quant.cuh's row engine;
// the activated values of a row stay in registers between its amax and its quantization). A
// GEMM1 dequantization alone (compute-dtype output) keeps the tiled kernel, instantiated with
// the extra multiply so that the plain path compiles exactly as before.
#include <cuda_runtime.h>

#include <algorithm>

#include "common/formats.h"
#include "cuda/act_quant.cuh"
#include "cuda/epilogue/activation_kernel.cuh"
#include "flashinfer_moe/types.h"

namespace flashinfer_moe {
namespace cuda {
namespace {

using act_math::activate;
using act_math::activate_gated;
using act_math::ActivationSource;
using act_math::dequantized;
using act_math::pre_activation;
using act_math::store_inter;
using act_math::with_delta;
using act_math::zero_inter_rows;

constexpr int kThreads = 128;
constexpr int kVec = 4;
constexpr int64_t kMaxRowBlocks = 16384;

// ---- the kernel ---------------------------------------------------------------------------------

template <bool kGated, bool kVector, bool kBf16Out, bool kDequant>
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
    const int64_t slot = p.delta != nullptr ? p.permuted_to_expanded[r] : 0;
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
      const float up_i = kDequant ? dequantized(p, up[i], r, e, col + i) : up[i];
      const float u = with_delta(p, pre_activation(p, up_i, w, e, col + i), slot, col + i);
      float v;
      if constexpr (kGated) {
        const int64_t m = p.inter + col + i;
        const float gate_i = kDequant ? dequantized(p, gate[i], r, e, m) : gate[i];
        const float g = with_delta(p, pre_activation(p, gate_i, w, e, m), slot, m);
        v = activate_gated(act, g, u, prm);
      } else {
        v = activate(act, u);
      }
      store_inter(p, r, col + i, v);
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
  zero_inter_rows(p, count, col, col + step, 1);
}

template <bool kGated, bool kVector, bool kDequant>
cudaError_t launch_dequant(const ActivationParams& p, dim3 grid, cudaStream_t s) {
  if (static_cast<DType>(p.a2_dtype) == DType::BF16) {
    activation_kernel<kGated, kVector, true, kDequant><<<grid, kThreads, 0, s>>>(p);
  } else {
    activation_kernel<kGated, kVector, false, kDequant><<<grid, kThreads, 0, s>>>(p);
  }
  return cudaGetLastError();
}

template <bool kGated, bool kVector>
cudaError_t launch_shaped(const ActivationParams& p, dim3 grid, cudaStream_t s) {
  return p.dequant.active ? launch_dequant<kGated, kVector, true>(p, grid, s)
                          : launch_dequant<kGated, kVector, false>(p, grid, s);
}

// ---- FP8 output -------------------------------------------------------------------------------

using act_quant::Reduce;
using act_quant::RowQuantPlan;

constexpr int kQuantMaxThreads = 512;
constexpr int kCachePasses = 4;  // 4 columns each: rows up to 16 * threads stay in registers

template <bool kGated, Reduce kReduce, int kVecCols>
__global__ void __launch_bounds__(kQuantMaxThreads)
    activation_quant_kernel(ActivationParams p, RowQuantPlan plan) {
  extern __shared__ float smem_amax[];
  const int64_t count = *p.row_count;
  for (int64_t r = blockIdx.x; r < count; r += gridDim.x) {
    const int32_t e = p.row_expert[r];
    const float w = p.weight_on_input ? p.topk_weights[p.permuted_to_expanded[r]] : 1.0f;
    const bool per_column = !dequant_is_row_constant(p.dequant, kGated ? 2 * p.inter : p.inter);
    const float row_factor =
        p.dequant.active && !per_column ? dequant_factor(p.dequant, r, e, 0) : 1.0f;
    const ActivationSource<kGated, kVecCols> source{
        p, p.c1 + r * p.ldc1, r, e, w, act_math::expert_params(p, e), per_column, row_factor};
    float s = 1.0f;
    if constexpr (kReduce == Reduce::Static) {
      if (p.quant.static_scale != nullptr) s = p.quant.static_scale[e * p.quant.static_stride];
    }
    act_quant::quantize_row_block<kReduce, kVecCols, kCachePasses>(
        source, p.inter, plan, s, p.quant.codes + r * p.quant.ld_codes, p.quant.scales, r,
        smem_amax);
  }
  zero_inter_rows(p, count, threadIdx.x, p.inter, blockDim.x);
}

template <bool kGated, Reduce kReduce>
cudaError_t launch_quant_reduce(const ActivationParams& p, const RowQuantPlan& plan,
                                cudaStream_t s) {
  const int threads = act_quant::row_quant_threads(plan, p.inter, p.max_rows, kCachePasses);
  const size_t smem = static_cast<size_t>(act_quant::row_quant_smem_bytes(plan));
  const dim3 grid(static_cast<unsigned>(std::min(p.max_rows, kMaxRowBlocks)));
  if (plan.vec == kVec) {
    activation_quant_kernel<kGated, kReduce, kVec><<<grid, threads, smem, s>>>(p, plan);
  } else {
    activation_quant_kernel<kGated, kReduce, 1><<<grid, threads, smem, s>>>(p, plan);
  }
  return cudaGetLastError();
}

template <bool kGated>
cudaError_t launch_quant(const ActivationParams& p, bool vector, cudaStream_t s) {
  RowQuantPlan plan;
  if (!act_quant::plan_row_quant(p.quant, p.inter, vector ? kVec : 1, &plan)) {
    return cudaErrorInvalidValue;
  }
  if (act_quant::row_quant_smem_bytes(plan) > 48 * 1024) return cudaErrorInvalidValue;
  switch (plan.reduce) {
    case Reduce::Static:
      return launch_quant_reduce<kGated, Reduce::Static>(p, plan, s);
    case Reduce::Lanes:
      return launch_quant_reduce<kGated, Reduce::Lanes>(p, plan, s);
    default:
      return launch_quant_reduce<kGated, Reduce::Block>(p, plan, s);
  }
}

}  // namespace

int launch_activation(const ActivationParams& p, void* stream) {
  if (p.max_rows == 0 || p.inter == 0) return static_cast<int>(cudaSuccess);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const bool gated = is_gated(static_cast<Activation>(p.activation));
  // The up and gate halves start 16-byte aligned only when I is a multiple of 4.
  const bool vector = p.inter % kVec == 0 && p.ldc1 % kVec == 0;
  const ActQuant mode = static_cast<ActQuant>(p.quant.mode);
  if (mode != ActQuant::None) {
    if (!is_fp8_act_quant(mode) || p.quant.codes == nullptr) {
      return static_cast<int>(cudaErrorInvalidValue);
    }
    return static_cast<int>(gated ? launch_quant<true>(p, vector, s)
                                  : launch_quant<false>(p, vector, s));
  }
  const DType out = static_cast<DType>(p.a2_dtype);
  if (out != DType::BF16 && out != DType::F16) return static_cast<int>(cudaErrorInvalidValue);
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
