// The W4A16 prefill tile's kernels (sm80_w4a16_grouped_gemm.h).
#include "cuda/gemm/sm80/sm80_w4a16_launch.cuh"

namespace flashinfer_moe {
namespace cuda {
namespace sm80 {

cudaError_t launch_w4a16_prefill(const GroupedGemmArgs& a, int64_t capacity, cudaStream_t stream) {
  return launch_w4a16<W4PrefillTile>(a, capacity, stream);
}

}  // namespace sm80
}  // namespace cuda
}  // namespace flashinfer_moe
