// How run_cuda executes a 4-bit-weight problem: FP4 (e2m1 codes, NVFP4 / MXFP4 / seed block
// scales) and MXINT4 (int4 codes, bf16 scales per 32), which takes the same path.
//
// Host-only. Both GEMMs run the sm80 family's W4A16 kernel, which widens the codes exactly in
// registers (sm80_w4a16_grouped_gemm_kernel.cuh) and multiplies them by bf16 / fp16 rows:
//   W4A16        an unquantized GEMM input is rounded to the compute dtype (as for bf16);
//   W4A8, W4A4   a quantized one (an E4M3 or NVFP4 input, input_quant Fp8Static / MxFp8 /
//                NvFp4, the same for inter_quant) is widened exactly to bf16 by the gather or the
//                activation kernel (act_widen.cuh): code x its K-varying scale, the rest of its
//                scale in one factor per row (GemmDequant::row_scale of that GEMM).
// Weight scales are split as for FP8 (fp8_plan.h):
//   GEMM1/2     weight scales that vary along K (NVFP4's 16, MXFP4's 32, a seed block of bc
//               columns), per K slice of the block's width;
//   activation  GEMM1's K-constant scales (a seed row block spanning all of H), the NVFP4
//               per-expert global and GEMM1's row factor;
//   finalize    GEMM2's likewise.
// Per-token and per-group FP8 activations with e2m1 weights (no public form makes them) are
// outside the scope: the scope check names the field with NotImplemented.
#pragma once

#include "cuda/cuda_workspace.h"
#include "cuda/fp8_plan.h"
#include "flashinfer_moe/moe.h"

namespace flashinfer_moe {
namespace cuda {

// Whether run_cuda's FP4 path covers `p`; NotImplemented naming the field if not.
Status check_fp4_scope(const MoeProblem& p);

// Both GEMMs' scale split (never an a_kscale: activations reach the GEMMs as values) and their
// A dtypes: BF16 where the input is widened, else the compute dtype.
struct Fp4Plan {
  Fp8GemmPlan gemm1, gemm2;
  DType gemm1_dtype = DType::BF16, gemm2_dtype = DType::BF16;
};
// For a problem that passed check_fp4_scope, with its workspace carved (the row factors).
void plan_fp4(const MoeProblem& p, const CudaWorkspaceLayout& ws, Fp4Plan* plan);

}  // namespace cuda
}  // namespace flashinfer_moe
