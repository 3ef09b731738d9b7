// The finalize, permuted-output and routing-output kernels (finalize_kernel.h).
//
// Finalize and the permuted output run one block per (token or row, column tile), grid-strided
// over tokens / rows; each thread owns 4 consecutive columns (float4 loads of GEMM2's padded
// rows; 16-, 8- or 4-byte output stores when the output's layout allows). The multiply and the
// add of the weighted sum use __fmul_rn / __fadd_rn so nvcc cannot fuse them: the CPU executor
// rounds both, and so must we to be bitwise comparable.
#include <cuda_runtime.h>

#include <algorithm>

#include "common/formats.h"
#include "cuda/finalize/finalize_kernel.h"
#include "cuda/sm80_pdl.cuh"
#include "flashinfer_moe/types.h"

namespace flashinfer_moe {
namespace cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kVec = 4;
constexpr int kMaxTopK = 32;
constexpr int64_t kMaxRowBlocks = 16384;

// Columns [col, col + 4) of GEMM2 row r (of expert e): its split partials added in order,
// dequantized, plus the bias; `count` of them are valid.
__device__ __forceinline__ void gemm2_row(const Gemm2Rows& g, int64_t r, int32_t e, int64_t col,
                                          int count, float v[kVec]) {
  const float* row = g.c2 + r * g.ldc2 + col;
  for (int32_t s = 0; s < g.splits; ++s, row += g.split_stride) {
    float x[kVec];
    if (count == kVec) {
      const float4 x4 = *reinterpret_cast<const float4*>(row);
      x[0] = x4.x, x[1] = x4.y, x[2] = x4.z, x[3] = x4.w;
    } else {
#pragma unroll
      for (int i = 0; i < kVec; ++i) x[i] = i < count ? row[i] : 0.0f;
    }
#pragma unroll
    for (int i = 0; i < kVec; ++i) v[i] = s == 0 ? x[i] : __fadd_rn(v[i], x[i]);
  }
  if (g.dequant.active) {
    // Without per-column weight scales the factor is the row's: one evaluation, same bits.
    const bool per_column = !dequant_is_row_constant(g.dequant, g.hidden);
    const float row_factor = per_column ? 1.0f : dequant_factor(g.dequant, r, e, col);
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      if (i >= count) continue;
      const float f = per_column ? dequant_factor(g.dequant, r, e, col + i) : row_factor;
      v[i] = __fmul_rn(v[i], f);
    }
  }
  if (g.bias != nullptr) {
    const int64_t first = e * g.bias_stride_e + col * g.bias_stride_n;
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      if (i >= count) continue;
      v[i] = __fadd_rn(v[i],
                       formats::load_any_float(g.bias, g.bias_dtype, first + i * g.bias_stride_n));
    }
  }
}

// The row's local expert, read only when the bias or the dequantization depends on it.
__device__ __forceinline__ int32_t row_expert_if_needed(const Gemm2Rows& g, int64_t r) {
  const bool per_expert =
      g.bias != nullptr ||
      (g.dequant.active && (g.dequant.weight.data != nullptr || g.dequant.global != nullptr));
  return per_expert ? g.row_expert[r] : 0;
}

// Stores `count` values at columns [col, col + count) of an output row, rounded to its dtype.
template <DType kOut>
__device__ __forceinline__ void store_row(void* base, int64_t row_offset, int64_t stride_n,
                                          bool vector, int64_t col, int count,
                                          const float v[kVec]) {
  if constexpr (kOut == DType::F32) {
    float* out = static_cast<float*>(base) + row_offset;
    if (vector && count == kVec) {
      *reinterpret_cast<float4*>(out + col) = make_float4(v[0], v[1], v[2], v[3]);
    } else {
#pragma unroll
      for (int i = 0; i < kVec; ++i) {
        if (i < count) out[(col + i) * stride_n] = v[i];
      }
    }
  } else {
    uint16_t h[kVec];
#pragma unroll
    for (int i = 0; i < kVec; ++i) {  // constant trip count: h stays in registers
      h[i] = kOut == DType::BF16 ? formats::float_to_bf16(v[i]) : formats::float_to_fp16(v[i]);
    }
    uint16_t* out = static_cast<uint16_t*>(base) + row_offset;
    if (vector && count == kVec) {
      uint2 packed;
      packed.x = static_cast<uint32_t>(h[0]) | (static_cast<uint32_t>(h[1]) << 16);
      packed.y = static_cast<uint32_t>(h[2]) | (static_cast<uint32_t>(h[3]) << 16);
      *reinterpret_cast<uint2*>(out + col) = packed;
    } else {
#pragma unroll
      for (int i = 0; i < kVec; ++i) {
        if (i < count) out[(col + i) * stride_n] = h[i];
      }
    }
  }
}

template <DType kOut>
__global__ void __launch_bounds__(kThreads) finalize_kernel(FinalizeParams p, bool vector_out) {
  pdl::pdl_wait();  // GEMM2's rows (and, transitively, the routing) are complete
  pdl::pdl_trigger();
  __shared__ int32_t slot_row[kMaxTopK];
  __shared__ float slot_weight[kMaxTopK];
  const int64_t col = (static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x) * kVec;
  const int count = static_cast<int>(std::min<int64_t>(kVec, p.rows.hidden - col));
  for (int64_t t = blockIdx.x; t < p.num_tokens; t += gridDim.x) {
    if (threadIdx.x < p.top_k) {
      const int64_t s = t * p.top_k + threadIdx.x;
      slot_row[threadIdx.x] = p.expanded_to_permuted[s];
      slot_weight[threadIdx.x] = p.weight_on_input ? 1.0f : p.topk_weights[s];
    }
    __syncthreads();
    if (count > 0) {
      float sum[kVec] = {0.0f, 0.0f, 0.0f, 0.0f};
      for (int j = 0; j < p.top_k; ++j) {
        const int32_t r = slot_row[j];
        if (r < 0) continue;
        float v[kVec];
        const int32_t e = row_expert_if_needed(p.rows, r);
        gemm2_row(p.rows, r, e, col, count, v);
#pragma unroll
        for (int i = 0; i < kVec; ++i) sum[i] = __fadd_rn(sum[i], __fmul_rn(slot_weight[j], v[i]));
      }
      store_row<kOut>(p.out, t * p.out_stride_t, p.out_stride_n, vector_out, col, count, sum);
    }
    __syncthreads();  // slot_row / slot_weight are rewritten for the next token
  }
}

__global__ void __launch_bounds__(kThreads)
    permuted_output_kernel(PermutedOutputParams p, bool vector_out) {
  const int64_t kept = *p.row_count;
  const int64_t col = (static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x) * kVec;
  const int count = static_cast<int>(std::min<int64_t>(kVec, p.rows.hidden - col));
  if (count <= 0) return;
  for (int64_t r = blockIdx.x; r < p.num_rows; r += gridDim.x) {
    float v[kVec] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (r < kept) {
      const int32_t e = row_expert_if_needed(p.rows, r);
      gemm2_row(p.rows, r, e, col, count, v);
    }
    store_row<DType::F32>(p.out, r * p.out_stride_r, p.out_stride_n, vector_out, col, count, v);
  }
}

__global__ void routing_outputs_kernel(RoutingOutputsParams p) {
  const int64_t slots = p.num_tokens * p.top_k;
  for (int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; s < slots;
       s += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = s / p.top_k, j = s % p.top_k;
    if (p.ids_out) p.ids_out[t * p.ids_stride_t + j * p.ids_stride_k] = p.topk_ids[s];
    if (p.weights_out) {
      p.weights_out[t * p.weights_stride_t + j * p.weights_stride_k] = p.topk_weights[s];
    }
    if (p.permutation_out) {
      p.permutation_out[t * p.permutation_stride_t + j * p.permutation_stride_k] =
          p.expanded_to_permuted[s];
    }
  }
}

// Whether a [rows, hidden] output can take 4-column stores: unit column stride, and every
// 4-column group of every row aligned to its size.
bool vector_stores_ok(const void* base, int64_t elem_bytes, int64_t stride_row, int64_t stride_n,
                      int64_t hidden) {
  const int64_t group = kVec * elem_bytes;
  return stride_n == 1 && hidden % kVec == 0 && reinterpret_cast<uintptr_t>(base) % group == 0 &&
         (stride_row * elem_bytes) % group == 0;
}

dim3 row_grid(int64_t rows, int64_t hidden) {
  const int64_t per_block = kThreads * kVec;
  return dim3(static_cast<unsigned>(std::min(rows, kMaxRowBlocks)),
              static_cast<unsigned>((hidden + per_block - 1) / per_block));
}

}  // namespace

int launch_finalize(const FinalizeParams& p, void* stream) {
  if (p.num_tokens == 0 || p.rows.hidden == 0) return static_cast<int>(cudaSuccess);
  if (p.top_k < 1 || p.top_k > kMaxTopK) return static_cast<int>(cudaErrorInvalidValue);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const dim3 grid = row_grid(p.num_tokens, p.rows.hidden);
  const DType out = static_cast<DType>(p.out_dtype);
  const int64_t elem = out == DType::F32 ? 4 : 2;
  const bool vec = vector_stores_ok(p.out, elem, p.out_stride_t, p.out_stride_n, p.rows.hidden);
  switch (out) {
    case DType::F32:
      return static_cast<int>(
          pdl::launch_kernel(finalize_kernel<DType::F32>, grid, kThreads, 0, s, p.pdl, p, vec));
    case DType::F16:
      return static_cast<int>(
          pdl::launch_kernel(finalize_kernel<DType::F16>, grid, kThreads, 0, s, p.pdl, p, vec));
    case DType::BF16:
      return static_cast<int>(
          pdl::launch_kernel(finalize_kernel<DType::BF16>, grid, kThreads, 0, s, p.pdl, p, vec));
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
}

int launch_permuted_output(const PermutedOutputParams& p, void* stream) {
  if (p.num_rows == 0 || p.rows.hidden == 0) return static_cast<int>(cudaSuccess);
  const bool vec = vector_stores_ok(p.out, 4, p.out_stride_r, p.out_stride_n, p.rows.hidden);
  permuted_output_kernel<<<row_grid(p.num_rows, p.rows.hidden), kThreads, 0,
                           static_cast<cudaStream_t>(stream)>>>(p, vec);
  return static_cast<int>(cudaGetLastError());
}

int launch_routing_outputs(const RoutingOutputsParams& p, void* stream) {
  const int64_t slots = p.num_tokens * p.top_k;
  if (slots == 0) return static_cast<int>(cudaSuccess);
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((slots + threads - 1) / threads, 4096);
  routing_outputs_kernel<<<static_cast<unsigned>(blocks), threads, 0,
                           static_cast<cudaStream_t>(stream)>>>(p);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace cuda
}  // namespace flashinfer_moe
