// FP4 (e2m1) weights on the Hopper family (GemmTactic::Sm90): widen, then the bf16 CUTLASS GEMM.
//
// Hopper has no FP4 tensor cores and its mixed-input WGMMA paths do not read e2m1, so for
// prefill-sized problems (hundreds of rows per expert, where the sm80 family's W4A16 kernel is
// bound by its per-fragment decode work) the weights are widened to the GEMM's dtype once per
// call and the compute-bound sm90 bf16 / fp16 grouped GEMM (sm90_grouped_gemm.h, Prefill) runs
// on them. The buffer holds `b_widened_experts` experts (the workspace caps it, cuda_workspace.h),
// so the call alternates widen + GEMM over chunks of experts.
//
// Widened value = code x the K-varying block scale (b_kscale), exact in the dtype: every e2m1 is
// a small dyadic, an e4m3 scale has 4 significant bits, a ue8m0 scale is a power of two (in
// bf16's range only). K-constant scales and the global stay with the consumer (GemmDequant), as
// for the sm80 family. Float-format K-varying scales (the seed forms') would round, so they stay
// on the sm80 family.
#pragma once

#include "cuda/gemm/grouped_gemm.h"

namespace flashinfer_moe {
namespace cuda {
namespace sm90_fp4 {

// Whether `args` (b_format E2M1Packed / E2M1Unpacked) can run here: a widening buffer, K-major
// codes, K a multiple of 16, exact scales, and the sm90 bf16 / fp16 GEMM's own conditions.
bool supports(const GroupedGemmArgs& args, int sm, const char** why);

// Enqueues widen + GEMM per chunk of experts on `stream` (a cudaStream_t); a cudaError_t.
int launch(const GroupedGemmArgs& args, void* stream);

}  // namespace sm90_fp4
}  // namespace cuda
}  // namespace flashinfer_moe
