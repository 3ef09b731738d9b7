// sm90_fp4_widened_gemm.h: the widening kernel and the chunk loop around the sm90 GEMM.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "common/formats.h"
#include "cuda/gemm/sm90/sm90_fp4_widened_gemm.h"
#include "cuda/gemm/sm90/sm90_grouped_gemm.h"

namespace flashinfer_moe {
namespace cuda {
namespace sm90_fp4 {
namespace {

constexpr int kThreads = 256;
constexpr int kChunkCols = 16;  // K columns per thread: one NVFP4 scale block, 8 packed bytes

bool is_fp4(ElemFormat f) { return f == ElemFormat::E2M1Packed || f == ElemFormat::E2M1Unpacked; }

// e2m1 code (low 4 bits) as fp32 from its fields: e = bits 1-2, m = bit 0, sign = bit 3.
// e > 0: 2^(e - 1) * (1 + m / 2); e == 0: m / 2.
__device__ __forceinline__ float e2m1_value(uint32_t code) {
  const uint32_t e = (code >> 1) & 3u, m = code & 1u;
  const uint32_t mag = e != 0 ? ((e + 126u) << 23) | (m << 22) : (m != 0 ? 0x3F000000u : 0u);
  return __uint_as_float(mag | ((code & 8u) << 28));
}

struct WidenParams {
  const uint8_t* codes;        // args.b at expert 0
  int64_t stride_e, stride_n;  // bytes
  bool packed;
  WeightScales scales;  // args.b_kscale (data null: 1)
  int32_t e0, experts;
  int64_t n, k;
  uint16_t* out;  // [experts, n, k] in the GEMM dtype
  bool bf16;
};

// One thread per 16 K columns of one weight row: 16 codes -> 16 widened values (two 16-byte
// stores). Rows of codes are read bytewise: the kernel is bound by the 2-byte writes, not these.
__global__ void __launch_bounds__(kThreads) widen_kernel(WidenParams p) {
  const int64_t chunks = p.k / kChunkCols;
  const int64_t total = static_cast<int64_t>(p.experts) * p.n * chunks;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t c = i % chunks;
    const int64_t row = i / chunks;  // (expert in chunk) * n + weight row
    const int32_t e = p.e0 + static_cast<int32_t>(row / p.n);
    const int64_t n = row % p.n;
    const int64_t col = c * kChunkCols;
    const float s = p.scales.data != nullptr ? weight_scale(p.scales, e, n, col) : 1.0f;
    const uint8_t* src = p.codes + e * p.stride_e + n * p.stride_n;
    uint4 packed[2];
    uint16_t* h = reinterpret_cast<uint16_t*>(packed);
#pragma unroll
    for (int j = 0; j < kChunkCols; ++j) {
      const uint32_t code =
          p.packed ? (src[(col + j) / 2] >> (((col + j) & 1) * 4)) & 0xFu : src[col + j] & 0xFu;
      const float v = __fmul_rn(e2m1_value(code), s);  // exact (see the header)
      h[j] = p.bf16 ? formats::float_to_bf16(v) : formats::float_to_fp16(v);
    }
    uint4* dst = reinterpret_cast<uint4*>(p.out + row * p.k + col);
    dst[0] = packed[0];
    dst[1] = packed[1];
  }
}

// The widened view of `args` for experts [e0, e0 + count): B = the buffer, plain dtype.
GroupedGemmArgs widened_args(const GroupedGemmArgs& args, int32_t e0, int32_t count) {
  GroupedGemmArgs g = args;
  g.b = args.b_widened;
  g.b_stride_k = 1;
  g.b_stride_n = args.k;
  g.b_stride_e = args.n * args.k;
  g.b_format = ElemFormat::Float;
  g.b_kscale = WeightScales{};
  g.b_widened = nullptr;
  g.b_widened_experts = 0;
  g.num_experts = count;
  g.row_offsets = args.row_offsets + e0;  // absolute rows: A and C stay as they are
  return g;
}

}  // namespace

bool supports(const GroupedGemmArgs& args, int sm, const char** why) {
  const char* reason = nullptr;
  const WeightScales& s = args.b_kscale;
  if (!is_fp4(args.b_format)) {
    reason = "sm90 FP4 GEMM: b_format is not e2m1";
  } else if (args.b_widened == nullptr || args.b_widened_experts <= 0) {
    reason = "sm90 FP4 GEMM: no widening buffer (the workspace has one from 128 rows per expert)";
  } else if (args.b_stride_k != 1 || args.k % kChunkCols != 0) {
    reason = "sm90 FP4 GEMM: needs K-major codes and K a multiple of 16";
  } else if (s.data != nullptr && (s.block_cols % kChunkCols != 0 ||
                                   s.format == static_cast<int32_t>(ScaleFormat::Float) ||
                                   (s.format == static_cast<int32_t>(ScaleFormat::UE8M0) &&
                                    args.dtype != DType::BF16))) {
    reason = "sm90 FP4 GEMM: K-varying scales must be e4m3, or ue8m0 with bf16, per 16k columns";
  } else if (args.fp8 || args.activation != nullptr || args.a_row_index != nullptr ||
             args.schedule_prebuilt || args.k_splits != 1) {
    reason = "sm90 FP4 GEMM: no FP8 operands, fusions, prebuilt schedule or split K";
  }
  if (reason != nullptr) {
    if (why != nullptr) *why = reason;
    return false;
  }
  GroupedGemmArgs probe = widened_args(args, 0, args.num_experts);
  return sm90::supports(sm90::Config::Prefill, probe, sm, why);
}

int launch(const GroupedGemmArgs& args, void* stream) {
  int device = 0, sm_major = 0, sm_minor = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sm_major, cudaDevAttrComputeCapabilityMajor, device);
  cudaDeviceGetAttribute(&sm_minor, cudaDevAttrComputeCapabilityMinor, device);
  if (!supports(args, sm_major * 10 + sm_minor, nullptr)) {
    return static_cast<int>(cudaErrorInvalidValue);
  }
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  WidenParams p;
  p.codes = static_cast<const uint8_t*>(args.b);
  p.stride_e = args.b_stride_e;
  p.stride_n = args.b_stride_n;
  p.packed = args.b_format == ElemFormat::E2M1Packed;
  p.scales = args.b_kscale;
  p.n = args.n;
  p.k = args.k;
  p.out = static_cast<uint16_t*>(args.b_widened);
  p.bf16 = args.dtype == DType::BF16;
  for (int32_t e0 = 0; e0 < args.num_experts; e0 += args.b_widened_experts) {
    p.e0 = e0;
    p.experts = std::min(args.b_widened_experts, args.num_experts - e0);
    const int64_t threads = static_cast<int64_t>(p.experts) * p.n * (p.k / kChunkCols);
    const int64_t blocks = std::min<int64_t>((threads + kThreads - 1) / kThreads, 1 << 20);
    if (blocks > 0) widen_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(p);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return static_cast<int>(err);
    const int gemm = sm90::launch(sm90::Config::Prefill, widened_args(args, e0, p.experts), stream);
    if (gemm != 0) return gemm;
  }
  return 0;
}

}  // namespace sm90_fp4
}  // namespace cuda
}  // namespace flashinfer_moe
