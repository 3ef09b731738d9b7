// How run_cuda executes an FP4-weight problem (e2m1 codes, NVFP4 / MXFP4 / seed block scales).
//
// Host-only. Today that is W4A16: GEMM1's input stays in the compute dtype (bf16 / fp16; the
// gather or GEMM1's fused row gather rounds it as for a bf16 problem), the sm80 family's W4A16
// kernel widens the e2m1 codes exactly in registers (sm80_w4a16_grouped_gemm_kernel.cuh) and the
// intermediate is rounded to the compute dtype. Scales are split as for FP8 (fp8_plan.h):
//   GEMM1/2     weight scales that vary along K (NVFP4's 16, MXFP4's 32, a seed block of bc
//               columns), per K slice of the block's width;
//   activation  GEMM1's K-constant scales (a seed row block spanning all of H) and the NVFP4
//               per-expert global scale;
//   finalize    GEMM2's likewise.
// FP4 or FP8 activations (W4A4, W4A8) and FP4 intermediates are outside the scope: the scope
// check names the field with NotImplemented.
#pragma once

#include "cuda/fp8_plan.h"
#include "flashinfer_moe/moe.h"

namespace flashinfer_moe {
namespace cuda {

// Whether `p` has FP4 (e2m1) weights.
inline bool is_fp4_format(ElemFormat f) {
  return f == ElemFormat::E2M1Packed || f == ElemFormat::E2M1Unpacked;
}
inline bool is_fp4_problem(const MoeProblem& p) {
  return is_fp4_format(p.w1.format) || is_fp4_format(p.w2.format);
}

// Whether run_cuda's FP4 path covers `p`; NotImplemented naming the field if not.
Status check_fp4_scope(const MoeProblem& p);

// Both GEMMs' weight-scale split (the a_kscale of each is absent: W4A16).
struct Fp4Plan {
  Fp8GemmPlan gemm1, gemm2;
};
void plan_fp4(const MoeProblem& p, Fp4Plan* plan);

}  // namespace cuda
}  // namespace flashinfer_moe
