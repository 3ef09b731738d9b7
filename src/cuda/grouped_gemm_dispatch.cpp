// grouped_gemm.h implemented by forwarding each GemmTactic to its family: Sm80Decode and
// Sm80Prefill to the portable mma.sync family (two tile shapes), Sm90Prefill to the CUTLASS
// TMA + WGMMA family. Auto is resolved by the caller (host/heuristics.h) before it gets here.
#include <cuda_runtime_api.h>

#include "cuda/grouped_gemm.h"
#include "cuda/sm80_grouped_gemm.h"
#include "cuda/sm90_grouped_gemm.h"

namespace flashinfer_moe {
namespace cuda {

size_t grouped_gemm_workspace_size(GemmTactic tactic, int32_t num_experts, int64_t max_rows) {
  switch (tactic) {
    case GemmTactic::Sm80Decode:
      return sm80::workspace_size(sm80::Tile::Decode, num_experts, max_rows);
    case GemmTactic::Sm80Prefill:
      return sm80::workspace_size(sm80::Tile::Prefill, num_experts, max_rows);
    case GemmTactic::Sm90Prefill:
      return sm90::workspace_size(num_experts, max_rows);
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
    case GemmTactic::Sm90Prefill:
      return sm90::supports(args, sm, why);
    default:
      if (why) *why = "Auto is not a GEMM family (resolve it with the heuristic first)";
      return false;
  }
}

int launch_grouped_gemm(GemmTactic tactic, const GroupedGemmArgs& args, void* stream) {
  switch (tactic) {
    case GemmTactic::Sm80Decode:
      return sm80::launch(sm80::Tile::Decode, args, stream);
    case GemmTactic::Sm80Prefill:
      return sm80::launch(sm80::Tile::Prefill, args, stream);
    case GemmTactic::Sm90Prefill:
      return sm90::launch(args, stream);
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
}

}  // namespace cuda
}  // namespace flashinfer_moe
