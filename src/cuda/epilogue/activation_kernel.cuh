// The GEMM1 epilogue math on the device, shared by the activation kernel (activation_kernel.cu)
// and the sm80 grouped GEMM's fused epilogue (sm80_grouped_gemm_kernel.cuh) so that both paths
// give the same bits. The activation formulas themselves are common/activation_math.h (also the
// CPU's); this adds the routing weight, the bias and the per-expert parameters. nvcc would
// contract a * b + c into one fused multiply-add: such places use __fmul_rn / __fadd_rn.
#pragma once

#include <cstdint>

#include "common/activation_math.h"
#include "common/formats.h"
#include "cuda/epilogue/activation_kernel.h"
#include "flashinfer_moe/types.h"

namespace flashinfer_moe {
namespace cuda {
namespace act_math {

using activation_math::activate;
using activation_math::activate_gated;
using activation_math::ExpertParams;

// GEMM1 output C1[r, m] as a value: times the K-constant dequantization factor when C1 holds
// FP8 code products (fp8_operands.h GemmDequant), unchanged otherwise.
__device__ __forceinline__ float dequantized(const ActivationParams& p, float c, int64_t r,
                                             int32_t e, int64_t m) {
  return p.dequant.active ? __fmul_rn(c, dequant_factor(p.dequant, r, e, m)) : c;
}

// GEMM1 accumulator column m of row r after the routing weight and the bias (semantics step 3).
__device__ __forceinline__ float pre_activation(const ActivationParams& p, float acc, float w,
                                                int32_t e, int64_t m) {
  if (p.weight_on_input) acc = __fmul_rn(acc, w);
  if (p.bias != nullptr) {
    acc = __fadd_rn(acc, formats::load_any_float(p.bias, p.bias_dtype,
                                                 e * p.bias_stride_e + m * p.bias_stride_m));
  }
  return acc;
}

// Expert e's SwigluBias / SwigluStep / Situ parameters (the defaults where a tensor is absent).
__device__ __forceinline__ ExpertParams expert_params(const ActivationParams& p, int32_t e) {
  ExpertParams prm;
  prm.alpha = p.alpha ? p.alpha[e * p.alpha_stride] : p.default_alpha;
  prm.beta = p.beta ? p.beta[e * p.beta_stride] : p.default_beta;
  prm.limit = p.limit ? p.limit[e * p.limit_stride] : p.default_limit;
  return prm;
}

// The GEMM1 delta of expanded slot `slot` (t * k + j) added to column m (semantics step 3,
// after the bias); unchanged without a delta.
__device__ __forceinline__ float with_delta(const ActivationParams& p, float acc, int64_t slot,
                                            int64_t m) {
  if (p.delta == nullptr) return acc;
  const int64_t t = slot / p.top_k, j = slot - t * p.top_k;
  return __fadd_rn(acc, formats::load_any_float(
                            p.delta, p.delta_dtype,
                            t * p.delta_stride_t + j * p.delta_stride_k + m * p.delta_stride_m));
}

// inter_out[r, i] = h, rounded to inter_out's dtype (a no-op without inter_out).
__device__ __forceinline__ void store_inter(const ActivationParams& p, int64_t r, int64_t i,
                                            float h) {
  if (p.inter_out == nullptr) return;
  const int64_t off = r * p.inter_out_stride_r + i * p.inter_out_stride_i;
  switch (static_cast<DType>(p.inter_out_dtype)) {
    case DType::BF16:
      static_cast<uint16_t*>(p.inter_out)[off] = formats::float_to_bf16(h);
      break;
    case DType::F16:
      static_cast<uint16_t*>(p.inter_out)[off] = formats::float_to_fp16(h);
      break;
    default:
      static_cast<float*>(p.inter_out)[off] = h;
  }
}

// Rows [count, inter_out_rows) of inter_out hold no assignment and get zeros: the calling
// block's rows (count + blockIdx.x, stepping by gridDim.x), columns c0, c0 + step, ... < c1.
__device__ __forceinline__ void zero_inter_rows(const ActivationParams& p, int64_t count,
                                                int64_t c0, int64_t c1, int64_t step) {
  if (p.inter_out == nullptr) return;
  for (int64_t r = count + blockIdx.x; r < p.inter_out_rows; r += gridDim.x) {
    for (int64_t c = c0; c < c1; c += step) store_inter(p, r, c, 0.0f);
  }
}

// The activated row r (columns of h, 0..I-1) as an fp32 source for the kernels that quantize
// it (act_quant.cuh's row engine, act_widen.cuh's groups): load(col, v, count) yields columns
// [col, col + count), count <= kVecCols, and copies them to inter_out when present (a column
// loaded twice is stored twice, with the same bits). kVecCols 4 loads C1 as float4 (I and ldc1
// multiples of 4); any other width loads elements.
template <bool kGated, int kVecCols>
struct ActivationSource {
  const ActivationParams& p;
  const float* c1;  // row r of C1
  int64_t r;
  int32_t e;
  float w;
  act_math::ExpertParams prm;
  // GEMM1's dequantization factor when it is the same for the whole row
  // (dequant_is_row_constant): computed once per row, the same bits as per element.
  bool per_column;
  float row_factor;
  __device__ __forceinline__ float dequant(float c, int64_t m) const {
    if (!p.dequant.active) return c;
    return per_column ? dequantized(p, c, r, e, m) : __fmul_rn(c, row_factor);
  }
  __device__ __forceinline__ void load(int64_t col, float v[kVecCols], int count) const {
    float up[kVecCols], gate[kVecCols];
    bool loaded = false;
    if constexpr (kVecCols == 4) {
      if (count == 4) {  // vector plans: I and ldc1 multiples of 4
        const float4 u4 = *reinterpret_cast<const float4*>(c1 + col);
        up[0] = u4.x, up[1] = u4.y, up[2] = u4.z, up[3] = u4.w;
        if constexpr (kGated) {
          const float4 g4 = *reinterpret_cast<const float4*>(c1 + p.inter + col);
          gate[0] = g4.x, gate[1] = g4.y, gate[2] = g4.z, gate[3] = g4.w;
        }
        loaded = true;
      }
    }
    if (!loaded) {
#pragma unroll
      for (int i = 0; i < kVecCols; ++i) {
        up[i] = i < count ? c1[col + i] : 0.0f;
        if constexpr (kGated) gate[i] = i < count ? c1[p.inter + col + i] : 0.0f;
      }
    }
    const Activation act = static_cast<Activation>(p.activation);
    const int64_t slot = p.delta != nullptr ? p.permuted_to_expanded[r] : 0;
#pragma unroll
    for (int i = 0; i < kVecCols; ++i) {
      if (i >= count) {
        v[i] = 0.0f;
        continue;
      }
      const float u =
          with_delta(p, pre_activation(p, dequant(up[i], col + i), w, e, col + i), slot, col + i);
      if constexpr (kGated) {
        const int64_t m = p.inter + col + i;
        const float g = with_delta(p, pre_activation(p, dequant(gate[i], m), w, e, m), slot, m);
        v[i] = activate_gated(act, g, u, prm);
      } else {
        v[i] = activate(act, u);
      }
      store_inter(p, r, col + i, v[i]);
    }
  }
};

}  // namespace act_math
}  // namespace cuda
}  // namespace flashinfer_moe
