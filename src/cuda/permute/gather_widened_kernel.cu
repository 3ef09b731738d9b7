// The widened gather (gather_kernel.h, launch_gather_widened): GEMM1's input of an FP4-weight
// problem with quantized activations, as bf16 values that are exactly the quantized ones
// (act_widen.cuh) and one row factor per permuted row.
//
// One block per permuted row (grid-strided), one thread per group of columns: a group is the
// unit of NVFP4 / MXFP8 quantization, so each thread finds its group's amax alone. Loads go
// through formats::load_any_float and the scale views one element at a time; this path serves
// W4A8 / W4A4, whose GEMMs dominate the time, and favours plainness over load width.
#include <cuda_runtime.h>

#include <algorithm>

#include "common/formats.h"
#include "cuda/act_widen.cuh"
#include "cuda/permute/gather_kernel.h"
#include "flashinfer_moe/types.h"

namespace flashinfer_moe {
namespace cuda {
namespace {

constexpr int64_t kMaxRowBlocks = 16384;

// Whether a pre-quantized input's block scale is multiplied into each element (e4m3 / ue8m0:
// exact in bf16) rather than into the row factor (a float scale, which spans the row).
__device__ __forceinline__ bool scale_per_element(const WeightScales& s) {
  return s.data != nullptr && s.format != static_cast<int32_t>(ScaleFormat::Float);
}

// Columns [col, col + n) of token t's input as fp32: a Float input's values, or an E4M3 /
// E2M1Packed input's codes times their e4m3 / ue8m0 block scale.
template <int kG>
__device__ __forceinline__ void load_group(const GatherParams& p, ElemFormat fmt, int64_t t,
                                           int64_t col, int n, float v[kG]) {
  const int64_t base = t * p.input_stride_t;
  const bool per_element = scale_per_element(p.input_scale);
  for (int i = 0; i < n; ++i) {
    const int64_t c = col + i;
    float x;
    if (fmt == ElemFormat::Float) {
      v[i] = formats::load_any_float(p.input, p.input_dtype, base + c * p.input_stride_h);
      continue;
    }
    const uint8_t* bytes = static_cast<const uint8_t*>(p.input);
    if (fmt == ElemFormat::E4M3) {
      x = formats::e4m3_to_float(bytes[base + c * p.input_stride_h]);
    } else {  // E2M1Packed: low nibble = even column
      const uint8_t byte = bytes[base + (c / 2) * p.input_stride_h];
      x = formats::e2m1_to_float((c & 1) ? (byte >> 4) : (byte & 0xF));
    }
    v[i] = per_element ? __fmul_rn(x, weight_scale(p.input_scale, 0, t, c)) : x;
  }
}

template <int kG>
__global__ void __launch_bounds__(256) gather_widened_kernel(GatherParams p) {
  const int64_t count = *p.row_count;
  const ElemFormat fmt = static_cast<ElemFormat>(p.input_format);
  const ActQuant mode = static_cast<ActQuant>(p.quant.mode);
  const int64_t groups = (p.hidden + kG - 1) / kG;
  uint16_t* a = static_cast<uint16_t*>(p.a);
  for (int64_t r = blockIdx.x; r < count; r += gridDim.x) {
    const int64_t t = p.permuted_to_expanded[r] / p.top_k;
    // A Float input's static scale (Fp8Static s, NvFp4 g) of the row's expert.
    float static_s = 1.0f;
    if (fmt == ElemFormat::Float && p.quant.static_scale != nullptr) {
      const int64_t e = p.quant.static_stride != 0 ? p.row_expert[r] : 0;
      static_s = p.quant.static_scale[e * p.quant.static_stride];
    }
    for (int64_t g = threadIdx.x; g < groups; g += blockDim.x) {
      const int64_t col = g * kG;
      const int n = static_cast<int>(std::min<int64_t>(kG, p.hidden - col));
      float v[kG];
      load_group<kG>(p, fmt, t, col, n, v);
      if (fmt == ElemFormat::Float) act_widen::widen_group<kG>(mode, static_s, v, n);
      act_widen::store_bf16<kG>(a + r * p.lda, col, v, n);
    }
    if (threadIdx.x == 0) {
      float f = 1.0f;
      if (fmt == ElemFormat::Float) {
        f = mode == ActQuant::MxFp8 ? 1.0f : static_s;
      } else {
        if (p.input_scale.data != nullptr && !scale_per_element(p.input_scale)) {
          f = weight_scale(p.input_scale, 0, t, 0);
        }
        if (p.input_global != nullptr) f = __fmul_rn(f, *p.input_global);
      }
      p.widen_row_scale[r] = f;
    }
  }
}

}  // namespace

int launch_gather_widened(const GatherParams& p, void* stream) {
  if (p.max_rows == 0 || p.hidden == 0) return static_cast<int>(cudaSuccess);
  const ElemFormat fmt = static_cast<ElemFormat>(p.input_format);
  const ActQuant mode = static_cast<ActQuant>(p.quant.mode);
  const bool quantize =
      mode == ActQuant::Fp8Static || mode == ActQuant::MxFp8 || mode == ActQuant::NvFp4;
  const bool decode = fmt == ElemFormat::E4M3 || fmt == ElemFormat::E2M1Packed;
  const bool valid = fmt == ElemFormat::Float ? quantize : (decode && mode == ActQuant::None);
  if (!valid || p.widen_row_scale == nullptr || p.a_dtype != static_cast<int32_t>(DType::BF16) ||
      p.lda % 8 != 0 || (p.quant.static_stride != 0 && p.row_expert == nullptr)) {
    return static_cast<int>(cudaErrorInvalidValue);
  }
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int g = fmt == ElemFormat::Float ? act_widen::group_columns(mode) : 16;
  const int64_t groups = (p.hidden + g - 1) / g;
  const int threads = static_cast<int>(std::min<int64_t>(256, (groups + 31) / 32 * 32));
  const dim3 grid(static_cast<unsigned>(std::min(p.max_rows, kMaxRowBlocks)));
  if (g == 32) {
    gather_widened_kernel<32><<<grid, threads, 0, s>>>(p);
  } else {
    gather_widened_kernel<16><<<grid, threads, 0, s>>>(p);
  }
  return static_cast<int>(cudaGetLastError());
}

}  // namespace cuda
}  // namespace flashinfer_moe
