// grouped_gemm.h implemented by forwarding each GemmTactic to its family: Sm80Decode and
// Sm80Prefill to the portable mma.sync family (two tile shapes), Sm90 to the CUTLASS
// TMA + WGMMA family, whose configuration is picked here from the average rows per expert.
// Auto is resolved by the caller (host/heuristics.h) before it gets here.
// The optional fusions and split K of GroupedGemmArgs are sm80-only, with one exception: FP8
// GEMM1 with the activation fused (args.activation) runs on Sm90 as its own kernel
// (sm90_fp8_gated_gemm.h). The sm90 family refuses the rest here.
// Other FP8 operands (args.fp8) on Sm90 go to the CUTLASS FP8 configurations
// (sm90_fp8_grouped_gemm.h), which share the tactic and its workspace. FP4 weights (b_format
// E2M1*) run on the sm80 family only.
#include <cuda_runtime_api.h>

#include "cuda/gemm/grouped_gemm.h"
#include "cuda/gemm/sm80/sm80_grouped_gemm.h"
#include "cuda/gemm/sm90/sm90_fp8_gated_gemm.h"
#include "cuda/gemm/sm90/sm90_fp8_grouped_gemm.h"
#include "cuda/gemm/sm90/sm90_grouped_gemm.h"

namespace flashinfer_moe {
namespace cuda {
namespace {

// Measured on an H200 (tests/cuda/check_sm90_grouped_gemm.cu, weight bandwidth / 4.8 TB/s):
// swap-AB streams each weight tile once for experts of up to 64 rows (0.72-0.92 of bandwidth
// vs 0.44-0.65 for the 128-row prefill tile); the 128-wide swap-AB wins up to 128 rows; beyond
// that the prefill tile's operand reuse wins. Only Prefill is compiled for fp16.
sm90::Config sm90_config_for(const GroupedGemmArgs& args) {
  if (args.dtype != DType::BF16) return sm90::Config::Prefill;
  const int64_t rows = args.max_rows / (args.num_experts > 0 ? args.num_experts : 1);
  if (rows <= 64) return sm90::Config::SwapAB;
  if (rows <= 128) return sm90::Config::SwapABWide;
  return sm90::Config::Prefill;
}

}  // namespace

size_t grouped_gemm_workspace_size(GemmTactic tactic, int32_t num_experts, int64_t max_rows) {
  switch (tactic) {
    case GemmTactic::Sm80Decode:
      return sm80::workspace_size(sm80::Tile::Decode, num_experts, max_rows);
    case GemmTactic::Sm80Prefill:
      return sm80::workspace_size(sm80::Tile::Prefill, num_experts, max_rows);
    case GemmTactic::Sm90: {
      // One workspace for whichever operand type the launch brings.
      const size_t bf16 = sm90::workspace_size(num_experts, max_rows);
      const size_t fp8 = sm90_fp8::workspace_size(num_experts, max_rows);
      return bf16 > fp8 ? bf16 : fp8;
    }
    default:
      return 0;
  }
}

bool grouped_gemm_supports(GemmTactic tactic, const GroupedGemmArgs& args, int sm,
                           const char** why) {
  switch (tactic) {
    case GemmTactic::Sm80Decode:
      return sm80::supports(sm80::Tile::Decode, args, sm, why);
    case GemmTactic::Sm80Prefill:
      return sm80::supports(sm80::Tile::Prefill, args, sm, why);
    case GemmTactic::Sm90:
      if (args.b_format == ElemFormat::E2M1Packed || args.b_format == ElemFormat::E2M1Unpacked ||
          args.b_format == ElemFormat::Int4Packed) {
        if (why)
          *why =
              "sm90 grouped GEMM: no 4-bit (FP4, MXINT4) weights yet (the sm80 family runs them)";
        return false;
      }
      if (args.activation != nullptr) return sm90_fp8_gated::supports(args, sm, why);
      if (args.a_row_index != nullptr || args.schedule_prebuilt || args.k_splits != 1) {
        if (why) *why = "sm90 grouped GEMM: no fused gather, prebuilt schedule or split K";
        return false;
      }
      if (args.fp8) return sm90_fp8::supports(sm90_fp8::config_for(args), args, sm, why);
      return sm90::supports(sm90_config_for(args), args, sm, why);
    default:
      if (why) *why = "Auto is not a GEMM family (resolve it with the heuristic first)";
      return false;
  }
}

bool grouped_gemm_schedule_layout(GemmTactic tactic, int32_t num_experts, int64_t max_rows,
                                  int32_t* row_tile, int64_t* capacity) {
  switch (tactic) {
    case GemmTactic::Sm80Decode:
      return sm80::schedule_layout(sm80::Tile::Decode, num_experts, max_rows, row_tile, capacity);
    case GemmTactic::Sm80Prefill:
      return sm80::schedule_layout(sm80::Tile::Prefill, num_experts, max_rows, row_tile, capacity);
    default:
      return false;
  }
}

GridSize grouped_gemm_grid_size(GemmTactic tactic, const GroupedGemmArgs& args) {
  switch (tactic) {
    case GemmTactic::Sm80Decode:
      return sm80::grid_size(sm80::Tile::Decode, args);
    case GemmTactic::Sm80Prefill:
      return sm80::grid_size(sm80::Tile::Prefill, args);
    default:
      return GridSize{};
  }
}

int launch_grouped_gemm(GemmTactic tactic, const GroupedGemmArgs& args, void* stream) {
  switch (tactic) {
    case GemmTactic::Sm80Decode:
      return sm80::launch(sm80::Tile::Decode, args, stream);
    case GemmTactic::Sm80Prefill:
      return sm80::launch(sm80::Tile::Prefill, args, stream);
    case GemmTactic::Sm90:
      if (args.activation != nullptr) return sm90_fp8_gated::launch(args, stream);
      if (args.a_row_index != nullptr || args.schedule_prebuilt || args.k_splits != 1) {
        return static_cast<int>(cudaErrorInvalidValue);
      }
      if (args.fp8) return sm90_fp8::launch(sm90_fp8::config_for(args), args, stream);
      return sm90::launch(sm90_config_for(args), args, stream);
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
}

}  // namespace cuda
}  // namespace flashinfer_moe
