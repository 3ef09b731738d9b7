// GEMM1 epilogue on the GPU: routing weight on input, GEMM1 bias, activation, rounding.
//
// Per kept permuted row r of local expert e (docs/semantics.md steps 3-5, inter_quant None):
//   acc = C1[r, :] (* w[slot(r)] when routing_weight_on_input) (+ b1[e, :]) (+ delta[slot(r), :])
//   h   = act(acc)            gated rows are [up ; gate], M1 = 2I
//   inter_out[r, :] = h       (optional; rows past the kept count get zeros)
//   A2[r, :] = round_to_compute_dtype(h)
// The GEMM1 delta and inter_out exist in these kernels only: the planner does not fuse the
// activation into GEMM1 when either is present (cuda_executor.cpp fuse_into_gemm1).
// The fp32 formulas are those of src/cpu/activation.h, evaluated without fused multiply-adds so
// that results differ from the CPU only by the ulps of expf / erff / tanhf.
//
// FP8 (fp8_operands.h): with dequant.active, C1 holds GEMM1's code products and each value is
// first dequantized, acc = C1[r, m] * dequant_factor(dequant, r, e, m), before the routing
// weight and the bias. With an FP8 quant.mode, h is quantized (inter_quant, semantics step 5)
// into quant.codes / quant.scales instead of being rounded into a2.
#pragma once

#include <cstdint>

#include "cuda/fp8_operands.h"

namespace flashinfer_moe {
namespace cuda {

struct ActivationParams {
  int32_t activation = 0;               // Activation
  int64_t inter = 0;                    // I
  const float* c1 = nullptr;            // [max_rows, ldc1] fp32 GEMM1 output, rows 16-byte aligned
  int64_t ldc1 = 0;                     // multiple of 4
  const int32_t* row_expert = nullptr;  // [max_rows]
  const int32_t* permuted_to_expanded = nullptr;  // [max_rows]
  const float* topk_weights = nullptr;            // [T * k]
  bool weight_on_input = false;
  // Optional GEMM1 bias [E_local, M1] of any float dtype (null: none).
  const void* bias = nullptr;
  int32_t bias_dtype = 0;
  int64_t bias_stride_e = 0, bias_stride_m = 0;
  // Optional per-expert F32 SwigluBias / SwigluStep / Situ parameters (null: the default,
  // activation_math::default_params of the activation).
  const float* alpha = nullptr;
  const float* beta = nullptr;
  const float* limit = nullptr;
  int64_t alpha_stride = 0, beta_stride = 0, limit_stride = 0;
  float default_alpha = 1.0f;
  float default_beta = 0.0f;
  float default_limit = 0.0f;  // +inf, or 7 for SwigluStep
  // Optional GEMM1 delta [T, k, M1] of any float dtype (null: none), row slot(r) = t * k + j.
  const void* delta = nullptr;
  int32_t delta_dtype = 0;
  int32_t top_k = 1;
  int64_t delta_stride_t = 0, delta_stride_k = 0, delta_stride_m = 0;
  // Optional activation output [inter_out_rows, I] of any float dtype (null: none).
  void* inter_out = nullptr;
  int32_t inter_out_dtype = 0;
  int64_t inter_out_rows = 0;  // T * k: rows in [row_count, inter_out_rows) are zeroed
  int64_t inter_out_stride_r = 0, inter_out_stride_i = 0;
  const int64_t* row_count = nullptr;  // device scalar
  int64_t max_rows = 0;
  void* a2 = nullptr;    // [max_rows, lda2] compute dtype
  int32_t a2_dtype = 0;  // DType: BF16 or F16
  int64_t lda2 = 0;      // multiple of 8

  // FP8 (see the top of the file). m in dequant_factor is GEMM1's output column, 0..M1-1 (the
  // gate half of a gated row at I + i). Either one switches to the block-per-row FP8 kernel.
  GemmDequant dequant;
  ActQuantOut quant;  // mode None: a2 in a2_dtype; FP8 modes: codes + scales (a2 unused)

  // FP4 weights with a quantized intermediate (W4A8 / W4A4, act_widen.cuh): quant.mode
  // (Fp8Static, MxFp8 or NvFp4, static scale per quant.static_scale) quantizes h, a2 (BF16)
  // receives the widened values and widen_row_scale[r] the row's constant factor.
  float* widen_row_scale = nullptr;  // [max_rows]
};

// Enqueues the activation on `stream` (a cudaStream_t). Returns a cudaError_t as int.
int launch_activation(const ActivationParams& params, void* stream);

// The widened variant (widen_row_scale set): activation_widened_kernel.cu.
int launch_activation_widened(const ActivationParams& params, void* stream);

}  // namespace cuda
}  // namespace flashinfer_moe
