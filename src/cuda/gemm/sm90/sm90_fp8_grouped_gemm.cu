// Front end of the FP8 Hopper grouped GEMM configurations (sm90_fp8_grouped_gemm.h): config
// choice, validation, workspace sizes and launch. No CUTLASS kernel here: each configuration is
// its own translation unit (sm90_fp8_grouped_gemm_{prefill,swap_ab,blockwise,blockwise_prefill}
// .cu, entry points in sm90_fp8_grouped_gemm_variants.h), so they compile in parallel.
#include <cuda_runtime_api.h>

#include <climits>
#include <cstdint>
#include <initializer_list>

#include "cuda/device_info.h"
#include "cuda/gemm/sm90/sm90_fp8_grouped_gemm.h"
#include "cuda/gemm/sm90/sm90_fp8_grouped_gemm_variants.h"

namespace flashinfer_moe {
namespace cuda {
namespace sm90_fp8 {
namespace {

constexpr int64_t kScaleBlock = 128;  // blockwise: K slice and weight rows per scale

// Blockwise: the most rows per expert (max_rows / num_experts) still run swap-AB (config_for,
// measured crossover in sm90_fp8_grouped_gemm.h).
constexpr int64_t kBlockwiseSwapABMaxRows = 64;
// Per-tensor: likewise (measurements in sm90_fp8_grouped_gemm.h).
constexpr int64_t kPerTensorSwapABMaxRows = 256;

bool aligned(const void* p, uintptr_t bytes) {
  return (reinterpret_cast<uintptr_t>(p) % bytes) == 0;
}

bool has_kscales(const GroupedGemmArgs& a) {
  return a.a_kscale.data != nullptr || a.b_kscale.data != nullptr;
}

// Operand checks shared by every config (e4m3 codes: elements == bytes). Null = fine.
const char* operand_reason(const GroupedGemmArgs& a) {
#if !defined(FLASHINFER_MOE_WITH_CUTLASS)
  (void)a;
  return "sm90 fp8 grouped GEMM: built without CUTLASS headers";
#else
  if (!build_has_sm90a()) return "sm90 fp8 grouped GEMM: the build has no 90a target";
  if (!a.fp8) return "sm90 fp8 grouped GEMM: args.fp8 is false (bf16/fp16 is sm90::launch)";
  if (a.b_stride_k != 1) return "sm90 fp8 grouped GEMM: B must be K-major (b_stride_k == 1)";
  if (a.n <= 0 || a.k <= 0 || a.n % 8 != 0 || a.k % 16 != 0)
    return "sm90 fp8 grouped GEMM: k must be a positive multiple of 16 (16-byte TMA rows) and n "
           "of 8";
  if (a.n > INT32_MAX || a.k > INT32_MAX || a.max_rows > INT32_MAX)
    return "sm90 fp8 grouped GEMM: n, k and max_rows must fit in int32";
  if (a.lda % 16 != 0 || a.b_stride_n % 16 != 0 || a.b_stride_e % 16 != 0 || a.ldc % 4 != 0)
    return "sm90 fp8 grouped GEMM: lda, b_stride_n, b_stride_e must be multiples of 16 and ldc "
           "of 4 (16-byte TMA strides)";
  if (a.lda < a.k || a.b_stride_n < a.k || a.ldc < a.n)
    return "sm90 fp8 grouped GEMM: row strides shorter than a row";
  if (!aligned(a.a, 16) || !aligned(a.b, 16) || !aligned(a.c, 16))
    return "sm90 fp8 grouped GEMM: A, B and C must be 16-byte aligned";
  if (a.num_experts < 0 || a.max_rows < 0) return "sm90 fp8 grouped GEMM: negative sizes";
  if (a.a_row_index != nullptr || a.activation != nullptr || a.schedule_prebuilt)
    return "sm90 fp8 grouped GEMM: no fused gather, activation or prebuilt schedule";
  return nullptr;
#endif
}

// The blockwise layouts Config::Blockwise reads in place (sm90_fp8_grouped_gemm.h).
const char* blockwise_reason(const GroupedGemmArgs& a) {
  const ActScales& as = a.a_kscale;
  const WeightScales& ws = a.b_kscale;
  const int64_t k_blocks = (a.k + kScaleBlock - 1) / kScaleBlock;
  if (as.data == nullptr || ws.data == nullptr)
    return "sm90 fp8 grouped GEMM: K-varying scales only for both A and B (blockwise)";
  if (as.group != kScaleBlock || ws.block_cols != kScaleBlock || ws.block_rows != kScaleBlock)
    return "sm90 fp8 grouped GEMM: blockwise scales must be 1x128 (A) and 128x128 (B)";
  if (as.rows_fastest || as.ld != k_blocks)
    return "sm90 fp8 grouped GEMM: A's scales must be row-major with ld == ceil(k/128)";
  if (ws.format != static_cast<int32_t>(ScaleFormat::Float) ||
      ws.dtype != static_cast<int32_t>(DType::F32) ||
      ws.layout != static_cast<int32_t>(ScaleLayout::Linear))
    return "sm90 fp8 grouped GEMM: B's block scales must be fp32 with a Linear layout";
  if (ws.stride_c != 1 || ws.stride_r != k_blocks || ws.stride_e < 0)
    return "sm90 fp8 grouped GEMM: B's block scales must have packed [n/128, k/128] per expert "
           "(stride_c == 1, stride_r == ceil(k/128))";
  if (!aligned(as.data, 4) || !aligned(ws.data, 4))
    return "sm90 fp8 grouped GEMM: scale pointers must be 4-byte aligned";
  return nullptr;
}

const char* unsupported_reason(Config config, const GroupedGemmArgs& a) {
  if (const char* r = operand_reason(a)) return r;
  if (config == Config::Blockwise || config == Config::BlockwisePrefill) {
    return blockwise_reason(a);
  }
  if (has_kscales(a))
    return "sm90 fp8 grouped GEMM: this per-tensor config applies no K-varying scales";
  return nullptr;
}

}  // namespace

Config config_for(const GroupedGemmArgs& args) {
  const int64_t rows = args.max_rows / (args.num_experts > 0 ? args.num_experts : 1);
  if (has_kscales(args)) {
    return rows <= kBlockwiseSwapABMaxRows ? Config::Blockwise : Config::BlockwisePrefill;
  }
  return rows <= kPerTensorSwapABMaxRows ? Config::PerTensorSwapAB : Config::PerTensorPrefill;
}

const char* config_name(Config config) {
  switch (config) {
    case Config::PerTensorPrefill:
      return "fp8_prefill";
    case Config::PerTensorSwapAB:
      return "fp8_swap_ab";
    case Config::Blockwise:
      return "fp8_blockwise";
    case Config::BlockwisePrefill:
      return "fp8_bw_prefill";
  }
  return "unknown";
}

size_t workspace_size(Config config, int32_t num_experts, int64_t max_rows) {
  (void)max_rows;  // the persistent grid does not grow with rows
  if (num_experts <= 0) return 0;
  switch (config) {
    case Config::PerTensorPrefill:
      return variants::prefill_scratch_bytes(num_experts);
    case Config::PerTensorSwapAB:
      return variants::swap_ab_scratch_bytes(num_experts);
    case Config::Blockwise:
      return variants::blockwise_scratch_bytes(num_experts);
    case Config::BlockwisePrefill:
      return variants::blockwise_prefill_scratch_bytes(num_experts);
  }
  return 0;
}

size_t workspace_size(int32_t num_experts, int64_t max_rows) {
  size_t most = 0;
  for (Config c : {Config::PerTensorPrefill, Config::PerTensorSwapAB, Config::Blockwise,
                   Config::BlockwisePrefill}) {
    const size_t bytes = workspace_size(c, num_experts, max_rows);
    most = bytes > most ? bytes : most;
  }
  return most;
}

bool supports(Config config, const GroupedGemmArgs& args, int sm, const char** why) {
  const char* reason = unsupported_reason(config, args);
  if (reason == nullptr && sm != 90) {
    reason = "sm90 fp8 grouped GEMM: needs a compute capability 9.0 GPU (sm_90a code)";
  }
  if (why != nullptr) *why = reason;
  return reason == nullptr;
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
  constexpr int kMaxSms = 160;  // = sm90::detail::kMaxSms, which sized the workspace
  if (sm_count > kMaxSms) sm_count = kMaxSms;
  switch (config) {
    case Config::PerTensorPrefill:
      return variants::prefill_launch(args, stream, device, sm_count);
    case Config::PerTensorSwapAB:
      return variants::swap_ab_launch(args, stream, device, sm_count);
    case Config::Blockwise:
      return variants::blockwise_launch(args, stream, device, sm_count);
    case Config::BlockwisePrefill:
      return variants::blockwise_prefill_launch(args, stream, device, sm_count);
  }
  return static_cast<int>(cudaErrorInvalidValue);
}

}  // namespace sm90_fp8
}  // namespace cuda
}  // namespace flashinfer_moe
