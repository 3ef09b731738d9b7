// The W4A16 launches of the portable grouped GEMM family (sm80_w4a16_grouped_gemm_kernel.cuh),
// one translation unit per tile shape so that they compile in parallel. sm80_grouped_gemm.cu
// checks the arguments and builds the schedule before calling these.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/gemm/grouped_gemm.h"

namespace flashinfer_moe {
namespace cuda {
namespace sm80 {

// How the kernel applies the weights' K-varying scales (sm80_w4a16_grouped_gemm_kernel.cuh):
//   None     no K-varying scale (absent, or constant along K: the consumer's GemmDequant);
//   Folded*  packed codes with NVFP4's e4m3 scales per 16 (Folded16) or MXFP4's ue8m0 scales per
//            32 with bf16 (Folded32): each widened code is multiplied by its scale in the
//            compute dtype, exactly (a code times such a scale has at most 6 significant bits),
//            so the mmas add scaled products straight into the accumulator;
//   Sliced   any other block width or scale storage (the seed forms' float scales, ue8m0 with
//            fp16): each K slice's partial sum is multiplied by its scale in fp32.
enum class W4Scales { None, Folded16, Folded32, Sliced };

inline W4Scales w4a16_scale_mode(const GroupedGemmArgs& a) {
  const WeightScales& s = a.b_kscale;
  if (s.data == nullptr) return W4Scales::None;
  if (a.b_format == ElemFormat::E2M1Packed && s.block_rows >= 1) {
    if (s.block_cols == 16 && s.format == static_cast<int32_t>(ScaleFormat::E4M3)) {
      return W4Scales::Folded16;
    }
    // 2^-127..2^127 is in bf16's range, not fp16's.
    if (s.block_cols == 32 && s.format == static_cast<int32_t>(ScaleFormat::UE8M0) &&
        a.dtype == DType::BF16) {
      return W4Scales::Folded32;
    }
  }
  return W4Scales::Sliced;
}

// Whether the decode tile runs `a` on the stream kernel (sm80_w4a16_stream_kernel.cuh) rather
// than the smem-staged one: packed K-major codes with folded scales and 16-byte aligned weight
// and activation rows, unless the environment sets FLASHINFER_MOE_DISABLE_FP4_STREAM (A/B
// timing of the two designs).
bool w4a16_decode_streams(const GroupedGemmArgs& a);

// CTAs per SM the decode tile's kernel for `a` is built for.
int w4a16_decode_ctas_per_sm(const GroupedGemmArgs& a);

// Launch the decode / prefill W4A16 kernel for `a` (b_format E2M1*) over `capacity` work items.
cudaError_t launch_w4a16_decode(const GroupedGemmArgs& a, int64_t capacity, cudaStream_t stream);
cudaError_t launch_w4a16_prefill(const GroupedGemmArgs& a, int64_t capacity, cudaStream_t stream);

}  // namespace sm80
}  // namespace cuda
}  // namespace flashinfer_moe
