// The gather kernel (gather_kernel.h): one block per (permuted row, column tile), grid-strided
// over rows so that the grid stays bounded however large max_rows is.
//
// Conversions go through common/formats.h, the same bit-level rounding the CPU executor uses, so
// A1 is bitwise what the CPU feeds its GEMM1. With a unit column stride and 16-byte aligned rows
// each thread moves 8 elements per step (one 16-byte store, one or two 16-byte loads).
#include <cuda_runtime.h>

#include <algorithm>

#include "common/formats.h"
#include "cuda/gather_kernel.h"
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
