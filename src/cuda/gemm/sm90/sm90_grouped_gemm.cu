// The Hopper grouped GEMM family: CUTLASS sm90 pointer-array GEMM (TMA + WGMMA, cooperative
// warp-specialized, persistent) over the experts of one MoE GEMM (see sm90_grouped_gemm.h).
//
// This file holds the family's front end (supports / workspace_size / launch for every Config)
// and the Prefill configuration (bf16 and fp16); the other configurations are one translation
// unit each (sm90_grouped_gemm_{swap_ab,swap_ab_wide}.cu, entry points in
// sm90_grouped_gemm_variants.h). All share the launch machinery of sm90_grouped_gemm_launch.cuh:
// a prepare kernel writes per-expert shapes/pointers from row_offsets on the device, then the
// CUTLASS persistent kernel runs with no host problem shapes (no host sync, graph capturable).
//
// Only the sm90a device pass compiles the GEMM body: CUTLASS's kernel is wrapped in its own
// `__CUDA_ARCH_FEAT_SM90_ALL` guard, so the 80 / 100a passes emit an empty stub that supports()
// never lets run. Without CUTLASS headers (FLASHINFER_MOE_WITH_CUTLASS undefined) the family is
// reported as not compiled in.
//
// Without NDEBUG, CUTLASS/CuTe device asserts become calls inside the consumer's wgmma pipeline
// and ptxas serializes every wgmma (warning C7510: a large slowdown). The library build does
// not define NDEBUG (no CMAKE_BUILD_TYPE), so this file does, before any header.
#ifndef NDEBUG
#define NDEBUG
#endif

#include <cuda_runtime_api.h>

#include <climits>
#include <cstdint>

#include "cuda/device_info.h"
#include "cuda/gemm/sm90/sm90_grouped_gemm.h"
#include "cuda/gemm/sm90/sm90_grouped_gemm_variants.h"

#if defined(FLASHINFER_MOE_WITH_CUTLASS)
#include "cuda/gemm/sm90/sm90_grouped_gemm_launch.cuh"
#endif

namespace flashinfer_moe {
namespace cuda {
namespace sm90 {
namespace {

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// The reason `args` cannot run, or nullptr. Independent of the device.
const char* unsupported_reason(const GroupedGemmArgs& a) {
#if !defined(FLASHINFER_MOE_WITH_CUTLASS)
  (void)a;
  return "sm90 grouped GEMM: built without CUTLASS headers";
#else
  if (!build_has_sm90a()) return "sm90 grouped GEMM: the build has no 90a target";
  if (a.dtype != DType::BF16 && a.dtype != DType::F16)
    return "sm90 grouped GEMM: only BF16/F16 operands (FP8/FP4 not implemented on CUDA yet)";
  if (a.b_stride_k != 1) return "sm90 grouped GEMM: B must be K-major (b_stride_k == 1)";
  if (a.n <= 0 || a.k <= 0 || a.n % 8 != 0 || a.k % 8 != 0)
    return "sm90 grouped GEMM: n and k must be positive multiples of 8 (16-byte TMA rows)";
  if (a.n > INT32_MAX || a.k > INT32_MAX || a.max_rows > INT32_MAX)
    return "sm90 grouped GEMM: n, k and max_rows must fit in int32";
  if (a.lda % 8 != 0 || a.b_stride_n % 8 != 0 || a.b_stride_e % 8 != 0 || a.ldc % 4 != 0)
    return "sm90 grouped GEMM: lda, b_stride_n, b_stride_e must be multiples of 8 elements and "
           "ldc of 4 (16-byte TMA strides)";
  if (a.lda < a.k || a.b_stride_n < a.k || a.ldc < a.n)
    return "sm90 grouped GEMM: row strides shorter than a row";
  if (!aligned16(a.a) || !aligned16(a.b) || !aligned16(a.c))
    return "sm90 grouped GEMM: A, B and C must be 16-byte aligned";
  if (a.num_experts < 0 || a.max_rows < 0) return "sm90 grouped GEMM: negative sizes";
  // The optional fusions of GroupedGemmArgs (sm80 family only): ignoring them would write C
  // where the caller expects the activation output, so refuse instead.
  if (a.a_row_index != nullptr || a.activation != nullptr || a.schedule_prebuilt)
    return "sm90 grouped GEMM: no fused gather, activation or prebuilt schedule";
  return nullptr;
#endif
}

}  // namespace

const char* config_name(Config config) {
  switch (config) {
    case Config::Prefill:
      return "prefill";
    case Config::SwapAB:
      return "swap_ab";
    case Config::SwapABWide:
      return "swap_ab_wide";
  }
  return "unknown";
}

size_t workspace_size(Config config, int32_t num_experts, int64_t max_rows) {
  (void)max_rows;  // the persistent grid does not grow with rows
#if defined(FLASHINFER_MOE_WITH_CUTLASS)
  if (num_experts <= 0) return 0;
  switch (config) {
    case Config::Prefill: {
      // Both element types share one layout size (same pointer/stride types); take the larger.
      const size_t bf16 = detail::scratch_bytes<PrefillGemm<cutlass::bfloat16_t>>(num_experts);
      const size_t f16 = detail::scratch_bytes<PrefillGemm<cutlass::half_t>>(num_experts);
      return bf16 > f16 ? bf16 : f16;
    }
    case Config::SwapAB:
      return variants::swap_ab_bf16_scratch_bytes(num_experts);
    case Config::SwapABWide:
      return variants::swap_ab_wide_bf16_scratch_bytes(num_experts);
  }
  return 0;
#else
  (void)config;
  (void)num_experts;
  return 0;
#endif
}

size_t workspace_size(int32_t num_experts, int64_t max_rows) {
  size_t most = 0;
  for (Config c : {Config::Prefill, Config::SwapAB, Config::SwapABWide}) {
    const size_t bytes = workspace_size(c, num_experts, max_rows);
    most = bytes > most ? bytes : most;
  }
  return most;
}

bool supports(Config config, const GroupedGemmArgs& args, int sm, const char** why) {
  const char* reason = unsupported_reason(args);
  if (reason == nullptr && args.fp8) reason = "sm90 grouped GEMM: FP8 runs on sm90_fp8_grouped_gemm";
  if (reason == nullptr && config != Config::Prefill && args.dtype != DType::BF16) {
    // Each configuration is a ~50 s, ~3 GB compile; only Prefill is built for fp16 too.
    reason = "sm90 grouped GEMM: this configuration is built for BF16 only";
  }
  if (reason == nullptr && sm != 90) {
    // sm_90a machine code runs only on compute capability 9.0 (not 10.x: arch-specific).
    reason = "sm90 grouped GEMM: needs a compute capability 9.0 GPU (sm_90a code)";
  }
  if (why != nullptr) *why = reason;
  return reason == nullptr;
}

bool supports(const GroupedGemmArgs& args, int sm, const char** why) {
  return supports(Config::Prefill, args, sm, why);
}

int launch(Config config, const GroupedGemmArgs& args, void* stream) {
  DeviceInfo info;
  const cudaError_t err = current_device_info(&info);
  if (err != cudaSuccess) return static_cast<int>(err);
  const int device = info.device;
  int sm_count = info.sm_count;
  if (!supports(config, args, info.sm, nullptr)) {
    return static_cast<int>(cudaErrorInvalidValue);
  }
  if (args.num_experts == 0 || args.max_rows == 0) return 0;  // no rows: nothing to write
  if (args.a == nullptr || args.b == nullptr || args.c == nullptr || args.row_offsets == nullptr) {
    return static_cast<int>(cudaErrorInvalidValue);
  }
#if defined(FLASHINFER_MOE_WITH_CUTLASS)
  if (sm_count > detail::kMaxSms) sm_count = detail::kMaxSms;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (config) {
    case Config::Prefill:
      if (args.dtype == DType::BF16) {
        return detail::launch_typed<PrefillGemm<cutlass::bfloat16_t>>(args, s, device, sm_count);
      }
      return detail::launch_typed<PrefillGemm<cutlass::half_t>>(args, s, device, sm_count);
    case Config::SwapAB:
      return variants::swap_ab_bf16_launch(args, stream, device, sm_count);
    case Config::SwapABWide:
      return variants::swap_ab_wide_bf16_launch(args, stream, device, sm_count);
  }
  return static_cast<int>(cudaErrorInvalidValue);
#else
  (void)stream;
  return static_cast<int>(cudaErrorNotSupported);
#endif
}

int launch(const GroupedGemmArgs& args, void* stream) {
  return launch(Config::Prefill, args, stream);
}

}  // namespace sm90
}  // namespace cuda
}  // namespace flashinfer_moe
