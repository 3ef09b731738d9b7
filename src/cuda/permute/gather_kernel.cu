// The gather kernel (gather_kernel.h): one block per (permuted row, column tile), grid-strided
// over rows so that the grid stays bounded however large max_rows is.
//
// Conversions go through common/formats.h, the same bit-level rounding the CPU executor uses, so
// A1 is bitwise what the CPU feeds its GEMM1. With a unit column stride and 16-byte aligned rows
// each thread moves 8 elements per step (one 16-byte store, one or two 16-byte loads).
//
// FP8 output takes other kernels, one block per permuted row (grid-strided): the row engine of
// act_quant.cuh needs a whole row (or group) per reduction, and a block per row keeps per-token
// amax to one shared-memory round. An e4m3 input is copied 16 bytes per thread and step.
#include <cuda_runtime.h>

#include <algorithm>

#include "common/formats.h"
#include "cuda/act_quant.cuh"
#include "cuda/permute/gather_kernel.h"
#include "flashinfer_moe/types.h"

namespace flashinfer_moe {
namespace cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kVec = 8;  // elements per thread and step on the vector path
constexpr int64_t kMaxRowBlocks = 16384;

// Element loads as fp32 (exact) and stores rounded to nearest even.
struct F32In {
  using T = float;
  static __device__ __forceinline__ float load(const T* p) { return *p; }
};
struct F16In {
  using T = uint16_t;
  static __device__ __forceinline__ float load(const T* p) { return formats::fp16_to_float(*p); }
};
struct BF16In {
  using T = uint16_t;
  static __device__ __forceinline__ float load(const T* p) { return formats::bf16_to_float(*p); }
};
struct F16Out {
  static __device__ __forceinline__ uint16_t store(float v) { return formats::float_to_fp16(v); }
};
struct BF16Out {
  static __device__ __forceinline__ uint16_t store(float v) { return formats::float_to_bf16(v); }
};

// 8 consecutive input elements from a 16-byte aligned address, as fp32.
template <class In>
__device__ __forceinline__ void load8(const typename In::T* src, float v[kVec]) {
  if constexpr (sizeof(typename In::T) == 4) {
    const float4 lo = reinterpret_cast<const float4*>(src)[0];
    const float4 hi = reinterpret_cast<const float4*>(src)[1];
    v[0] = lo.x, v[1] = lo.y, v[2] = lo.z, v[3] = lo.w;
    v[4] = hi.x, v[5] = hi.y, v[6] = hi.z, v[7] = hi.w;
  } else {
    const uint4 raw = *reinterpret_cast<const uint4*>(src);
    const uint16_t* h = reinterpret_cast<const uint16_t*>(&raw);
#pragma unroll
    for (int i = 0; i < kVec; ++i) v[i] = In::load(h + i);
  }
}

template <class In, class Out, bool kVector>
__global__ void __launch_bounds__(kThreads) gather_kernel(GatherParams p) {
  const int64_t count = *p.row_count;
  const typename In::T* input = static_cast<const typename In::T*>(p.input);
  uint16_t* a = static_cast<uint16_t*>(p.a);
  const int64_t step = kVector ? kVec : 1;
  const int64_t col = (static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x) * step;
  if (col >= p.hidden) return;
  for (int64_t r = blockIdx.x; r < count; r += gridDim.x) {
    const int64_t t = p.permuted_to_expanded[r] / p.top_k;
    const typename In::T* src = input + t * p.input_stride_t;
    uint16_t* dst = a + r * p.lda + col;
    if constexpr (kVector) {
      float v[kVec];
      load8<In>(src + col, v);
      uint4 packed;
      uint16_t* h = reinterpret_cast<uint16_t*>(&packed);
#pragma unroll
      for (int i = 0; i < kVec; ++i) h[i] = Out::store(v[i]);
      *reinterpret_cast<uint4*>(dst) = packed;
    } else {
      *dst = Out::store(In::load(src + col * p.input_stride_h));
    }
  }
}

// ---- FP8 output ---------------------------------------------------------------------------------

using act_quant::Reduce;
using act_quant::RowQuantPlan;

constexpr int kQuantMaxThreads = 512;
constexpr int kCachePasses = 2;  // 8 columns each: rows up to 16 * threads stay in registers
constexpr int64_t kMaxSmemBytes = 48 * 1024;

// The input row of one token as the row engine's fp32 source.
template <class In, int kVecCols>
struct GatherSource {
  const typename In::T* row;
  int64_t stride_h;
  __device__ __forceinline__ void load(int64_t col, float v[kVecCols], int count) const {
    if constexpr (kVecCols == kVec) {
      if (count == kVec) {  // vector plans have unit stride and 16-byte aligned chunks
        load8<In>(row + col, v);
        return;
      }
    }
#pragma unroll
    for (int i = 0; i < kVecCols; ++i)
      v[i] = i < count ? In::load(row + (col + i) * stride_h) : 0.0f;
  }
};

template <class In, Reduce kReduce, int kVecCols>
__global__ void __launch_bounds__(kQuantMaxThreads)
    gather_quant_kernel(GatherParams p, RowQuantPlan plan) {
  extern __shared__ float smem_amax[];
  const int64_t count = *p.row_count;
  const typename In::T* input = static_cast<const typename In::T*>(p.input);
  for (int64_t r = blockIdx.x; r < count; r += gridDim.x) {
    const int64_t t = p.permuted_to_expanded[r] / p.top_k;
    float s = 1.0f;
    if constexpr (kReduce == Reduce::Static) {
      if (p.quant.static_scale != nullptr) {
        const int64_t e = p.quant.static_stride != 0 ? p.row_expert[r] : 0;
        s = p.quant.static_scale[e * p.quant.static_stride];
      }
    }
    const GatherSource<In, kVecCols> source{input + t * p.input_stride_t, p.input_stride_h};
    act_quant::quantize_row_block<kReduce, kVecCols, kCachePasses>(
        source, p.hidden, plan, s, p.quant.codes + r * p.quant.ld_codes, p.quant.scales, r,
        smem_amax);
  }
}

// E4M3 input: codes copied as they are, one fp32 scale per group.
template <bool kVector>
__global__ void __launch_bounds__(kThreads) gather_e4m3_kernel(GatherParams p) {
  constexpr int kBytes = 16;
  const int64_t count = *p.row_count;
  const uint8_t* input = static_cast<const uint8_t*>(p.input);
  const int64_t group = p.quant.scales.group > 0 ? p.quant.scales.group : p.hidden;
  const int64_t groups = (p.hidden + group - 1) / group;
  for (int64_t r = blockIdx.x; r < count; r += gridDim.x) {
    const int64_t t = p.permuted_to_expanded[r] / p.top_k;
    const uint8_t* src = input + t * p.input_stride_t;
    uint8_t* dst = p.quant.codes + r * p.quant.ld_codes;
    if constexpr (kVector) {
      for (int64_t c = threadIdx.x * kBytes; c < p.hidden; c += kThreads * kBytes) {
        *reinterpret_cast<uint4*>(dst + c) = *reinterpret_cast<const uint4*>(src + c);
      }
    } else {
      for (int64_t c = threadIdx.x; c < p.hidden; c += kThreads) dst[c] = src[c * p.input_stride_h];
    }
    if (p.quant.scales.data != nullptr) {
      for (int64_t g = threadIdx.x; g < groups; g += kThreads) {
        float s = weight_scale(p.input_scale, 0, t, g * group);
        if (p.input_global != nullptr) s = __fmul_rn(s, *p.input_global);
        p.quant.scales.data[act_scale_index(p.quant.scales, r, g)] = s;
      }
    }
  }
}

cudaError_t launch_e4m3_copy(const GatherParams& p, cudaStream_t stream) {
  const bool vector = p.input_stride_h == 1 && p.hidden % 16 == 0 &&
                      reinterpret_cast<uintptr_t>(p.input) % 16 == 0 && p.input_stride_t % 16 == 0;
  const dim3 grid(static_cast<unsigned>(std::min(p.max_rows, kMaxRowBlocks)));
  if (vector) {
    gather_e4m3_kernel<true><<<grid, kThreads, 0, stream>>>(p);
  } else {
    gather_e4m3_kernel<false><<<grid, kThreads, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

template <class In, Reduce kReduce>
cudaError_t launch_quant_reduce(const GatherParams& p, const RowQuantPlan& plan,
                                cudaStream_t stream) {
  const int threads = act_quant::row_quant_threads(plan, p.hidden, p.max_rows, kCachePasses);
  const size_t smem = static_cast<size_t>(act_quant::row_quant_smem_bytes(plan));
  const dim3 grid(static_cast<unsigned>(std::min(p.max_rows, kMaxRowBlocks)));
  if (plan.vec == kVec) {
    gather_quant_kernel<In, kReduce, kVec><<<grid, threads, smem, stream>>>(p, plan);
  } else {
    gather_quant_kernel<In, kReduce, 1><<<grid, threads, smem, stream>>>(p, plan);
  }
  return cudaGetLastError();
}

template <class In>
cudaError_t launch_quant(const GatherParams& p, cudaStream_t stream) {
  const int64_t in_bytes = sizeof(typename In::T);
  const bool vector = p.input_stride_h == 1 && p.hidden % kVec == 0 &&
                      reinterpret_cast<uintptr_t>(p.input) % 16 == 0 &&
                      (p.input_stride_t * in_bytes) % 16 == 0;
  RowQuantPlan plan;
  if (!act_quant::plan_row_quant(p.quant, p.hidden, vector ? kVec : 1, &plan)) {
    return cudaErrorInvalidValue;
  }
  if (act_quant::row_quant_smem_bytes(plan) > kMaxSmemBytes) return cudaErrorInvalidValue;
  switch (plan.reduce) {
    case Reduce::Static:
      return launch_quant_reduce<In, Reduce::Static>(p, plan, stream);
    case Reduce::Lanes:
      return launch_quant_reduce<In, Reduce::Lanes>(p, plan, stream);
    default:
      return launch_quant_reduce<In, Reduce::Block>(p, plan, stream);
  }
}

cudaError_t launch_fp8(const GatherParams& p, cudaStream_t stream) {
  if (!is_fp8_act_quant(static_cast<ActQuant>(p.quant.mode)) || p.quant.codes == nullptr) {
    return cudaErrorInvalidValue;
  }
  if (p.input_format == static_cast<int32_t>(ElemFormat::E4M3)) return launch_e4m3_copy(p, stream);
  if (p.input_format != static_cast<int32_t>(ElemFormat::Float)) return cudaErrorInvalidValue;
  if (p.quant.mode == static_cast<int32_t>(ActQuant::Fp8Static) && p.quant.static_stride != 0 &&
      p.row_expert == nullptr) {
    return cudaErrorInvalidValue;
  }
  switch (static_cast<DType>(p.input_dtype)) {
    case DType::F32:
      return launch_quant<F32In>(p, stream);
    case DType::F16:
      return launch_quant<F16In>(p, stream);
    case DType::BF16:
      return launch_quant<BF16In>(p, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

// ---- compute-dtype output -----------------------------------------------------------------------

template <class In, class Out>
cudaError_t launch_typed(const GatherParams& p, cudaStream_t stream) {
  const int64_t in_bytes = sizeof(typename In::T);
  const bool vector = p.input_stride_h == 1 && p.hidden % kVec == 0 &&
                      reinterpret_cast<uintptr_t>(p.input) % 16 == 0 &&
                      (p.input_stride_t * in_bytes) % 16 == 0;
  const int64_t per_block = kThreads * (vector ? kVec : 1);
  const dim3 grid(static_cast<unsigned>(std::min(p.max_rows, kMaxRowBlocks)),
                  static_cast<unsigned>((p.hidden + per_block - 1) / per_block));
  if (vector) {
    gather_kernel<In, Out, true><<<grid, kThreads, 0, stream>>>(p);
  } else {
    gather_kernel<In, Out, false><<<grid, kThreads, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

template <class Out>
cudaError_t launch_for_output(const GatherParams& p, cudaStream_t stream) {
  switch (static_cast<DType>(p.input_dtype)) {
    case DType::F32:
      return launch_typed<F32In, Out>(p, stream);
    case DType::F16:
      return launch_typed<F16In, Out>(p, stream);
    case DType::BF16:
      return launch_typed<BF16In, Out>(p, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace

int launch_gather(const GatherParams& p, void* stream) {
  if (p.max_rows == 0 || p.hidden == 0) return static_cast<int>(cudaSuccess);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (p.quant.mode != static_cast<int32_t>(ActQuant::None) ||
      p.input_format != static_cast<int32_t>(ElemFormat::Float)) {
    return static_cast<int>(launch_fp8(p, s));
  }
  switch (static_cast<DType>(p.a_dtype)) {
    case DType::BF16:
      return static_cast<int>(launch_for_output<BF16Out>(p, s));
    case DType::F16:
      return static_cast<int>(launch_for_output<F16Out>(p, s));
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
}

}  // namespace cuda
}  // namespace flashinfer_moe
