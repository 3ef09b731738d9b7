// FP8 operands of the CUDA pipeline: e4m3 codes and the scales that turn them into values.
//
// The pipeline keeps quantized activations and weights as one-byte codes all the way into the
// GEMMs and applies every scale as an fp32 multiplier (docs/semantics.md: value = code x scale
// x global). Where a scale is applied depends on how it varies along the GEMM's K dimension:
//   * a scale that changes along K (an activation group of 128 columns, a 128x128 weight block,
//     an MXFP8 group of 32) multiplies the partial sum of its K slice inside the GEMM:
//     GroupedGemmArgs::a_kscale / b_kscale (grouped_gemm.h);
//   * a scale constant along K (a static or per-token activation scale, a weight scale whose
//     block spans all of K, the per-expert global) factors out of the dot product and is applied
//     by the kernel that reads the GEMM's fp32 output: GemmDequant, used by the activation kernel
//     for GEMM1 and by finalize / the permuted output for GEMM2.
// The executor (cuda_executor.cpp) decides the split; the kernels only follow these views.
// Host and device code; no CUDA types.
#pragma once

#include <cstdint>

#include "common/formats.h"
#include "flashinfer_moe/types.h"

namespace flashinfer_moe {
namespace cuda {

// Activation scales written by the quantization kernels (gather for GEMM1's input, the
// activation kernel for GEMM2's): fp32, one per (permuted row, group of `group` columns).
// `rows_fastest` stores the transpose, data[g * ld + r] (ld >= max_rows), for GEMMs that load a
// K slice's scales for consecutive rows at once (CUTLASS's M-major scale layout).
struct ActScales {
  float* data = nullptr;  // row-major [max_rows, ld]: row r, group g at data[r * ld + g]
  int64_t ld = 0;
  int64_t group = 0;  // K columns per scale; K itself when there is one scale per row
  bool rows_fastest = false;
};

FIMOE_HOST_DEVICE inline int64_t act_scale_index(const ActScales& s, int64_t r, int64_t g) {
  return s.rows_fastest ? g * s.ld + r : r * s.ld + g;
}

// A weight stack's block scales, read in place (any storage the QuantTensor allows).
// scale(e, n, k) of output column n (the weight row) and input column k of local expert e.
struct WeightScales {
  const void* data = nullptr;  // null: every scale is 1
  int32_t format = 0;          // ScaleFormat
  int32_t dtype = 0;           // DType of ScaleFormat::Float storage (F32 / F16 / BF16)
  int32_t layout = 0;          // ScaleLayout
  int64_t stride_e = 0, stride_r = 0, stride_c = 0;  // Linear: element strides of [E, R, C]
  int64_t swizzle_rows = 0, swizzle_cols = 0;        // Swizzled128x4: one matrix's R and C
  int64_t block_rows = 1, block_cols = 1;            // >= 1 (the executor resolves "whole dim")
};

// weight_scale() in three parts, so that a GEMM can hoist the row part out of its K loop (no
// 64-bit division per K slice): the offset of output column n's scale row, the offset of scale
// column c (K / block_cols), which add up to the element's offset, and the decode at an offset.
FIMOE_HOST_DEVICE inline int64_t weight_scale_row_offset(const WeightScales& s, int32_t e,
                                                         int64_t n) {
  const int64_t r = n / s.block_rows;
  if (s.layout == static_cast<int32_t>(ScaleLayout::Swizzled128x4)) {
    // formats::swizzled_128x4_offset's row terms: the 128-row tile, then r % 32 and r % 128 / 32.
    const int64_t col_tiles = formats::round_up(s.swizzle_cols, 4) / 4;
    return e * formats::swizzled_matrix_bytes(s.swizzle_rows, s.swizzle_cols) +
           (r / 128) * col_tiles * 512 + (r % 32) * 16 + ((r % 128) / 32) * 4;
  }
  return e * s.stride_e + r * s.stride_r;
}

FIMOE_HOST_DEVICE inline int64_t weight_scale_col_offset(const WeightScales& s, int64_t c) {
  if (s.layout == static_cast<int32_t>(ScaleLayout::Swizzled128x4)) return (c / 4) * 512 + c % 4;
  return c * s.stride_c;
}

FIMOE_HOST_DEVICE inline float weight_scale_at(const WeightScales& s, int64_t offset) {
  const uint8_t* bytes = static_cast<const uint8_t*>(s.data);
  switch (static_cast<ScaleFormat>(s.format)) {
    case ScaleFormat::E4M3:
      return formats::e4m3_to_float(bytes[offset]);
    case ScaleFormat::UE8M0:
      return formats::ue8m0_to_float(bytes[offset]);
    default:
      return formats::load_any_float(s.data, s.dtype, offset);
  }
}

FIMOE_HOST_DEVICE inline float weight_scale(const WeightScales& s, int32_t e, int64_t n,
                                            int64_t k) {
  if (s.data == nullptr) return 1.0f;
  return weight_scale_at(s, weight_scale_row_offset(s, e, n) +
                                weight_scale_col_offset(s, k / s.block_cols));
}

// The K-constant part of a GEMM's dequantization, applied to its fp32 output C[r, n] of local
// expert e: C[r, n] * row_scale[r * row_scale_ld] * weight_scale(weight, e, n, 0) * global[e].
// Each factor is optional (null = 1); `active` false means C already holds values.
struct GemmDequant {
  bool active = false;
  // A's per-row scale (an ActScales with group == K): row_scale[r * row_scale_ld]
  // (row_scale_ld is 1 for the rows_fastest layout).
  const float* row_scale = nullptr;
  int64_t row_scale_ld = 0;
  WeightScales weight;  // B's scale when its blocks span K (block_cols >= K); else data null
  const float* global = nullptr;  // [E_local] per-expert multiplier
  int64_t global_stride = 0;
};

// Whether dequant_factor(d, r, e, n) is the same for every output column n < cols: no weight
// scale, or one whose row blocks span all the columns (a per-tensor or per-expert scale). A
// kernel may then evaluate it once per row, which gives the same bits and skips the per-element
// scale lookup (a 64-bit division by block_rows among it).
FIMOE_HOST_DEVICE inline bool dequant_is_row_constant(const GemmDequant& d, int64_t cols) {
  return d.weight.data == nullptr || d.weight.block_rows >= cols;
}

FIMOE_HOST_DEVICE inline float dequant_factor(const GemmDequant& d, int64_t r, int32_t e,
                                              int64_t n) {
  float f = 1.0f;
  if (d.row_scale != nullptr) f *= d.row_scale[r * d.row_scale_ld];
  if (d.weight.data != nullptr) f *= weight_scale(d.weight, e, n, 0);
  if (d.global != nullptr) f *= d.global[e * d.global_stride];
  return f;
}

// How a kernel quantizes the activation rows it writes (GEMM1's input in the gather, GEMM2's in
// the activation kernel). mode None keeps today's compute-dtype output; the FP8 modes write
// e4m3 codes and fp32 scales, with the formulas of docs/semantics.md ("Activation
// (re)quantization"): Fp8Static s from static_scale (per local expert when its stride is
// nonzero), Fp8PerToken s = amax(row) / 448, Fp8PerGroup per `scales.group` columns, MxFp8
// groups of 32 with a power-of-two s (stored as fp32, exact).
struct ActQuantOut {
  int32_t mode = 0;  // ActQuant
  const float* static_scale = nullptr;
  int64_t static_stride = 0;  // 0: one scalar; else [E_local] with this stride
  uint8_t* codes = nullptr;   // [max_rows, ld_codes] e4m3, rows 16-byte aligned
  int64_t ld_codes = 0;       // multiple of 16
  ActScales scales;           // group = K for Fp8Static / Fp8PerToken
};

inline bool is_fp8_act_quant(ActQuant m) {
  return m == ActQuant::Fp8Static || m == ActQuant::Fp8PerToken || m == ActQuant::Fp8PerGroup ||
         m == ActQuant::MxFp8;
}

}  // namespace cuda
}  // namespace flashinfer_moe
