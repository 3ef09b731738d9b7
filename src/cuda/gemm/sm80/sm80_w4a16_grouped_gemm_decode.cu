// The W4A16 decode tile's kernels (sm80_w4a16_grouped_gemm.h): the stream kernel where it
// applies, the smem-staged kernel otherwise.
#include <cstdlib>

#include "cuda/gemm/sm80/sm80_w4a16_launch.cuh"
#include "cuda/gemm/sm80/sm80_w4a16_stream_kernel.cuh"

namespace flashinfer_moe {
namespace cuda {
namespace sm80 {
namespace {

template <class Cfg, bool kBf16, W4Scales kScales, Epilogue kEpi>
cudaError_t launch_stream_kernel(const GroupedGemmArgs& a, const W4GemmParams& p, int64_t capacity,
                                 cudaStream_t stream) {
  return launch_tiles<Cfg>(w4a16_stream_kernel<Cfg, kBf16, kScales, kEpi>, p, a, capacity, stream);
}

template <class Cfg, bool kBf16, W4Scales kScales>
cudaError_t launch_stream_epilogue(const GroupedGemmArgs& a, const W4GemmParams& p,
                                   int64_t capacity, cudaStream_t stream) {
  if (a.activation == nullptr) {
    return launch_stream_kernel<Cfg, kBf16, kScales, Epilogue::StoreF32>(a, p, capacity, stream);
  }
  return is_gated(static_cast<Activation>(a.activation->activation))
             ? launch_stream_kernel<Cfg, kBf16, kScales, Epilogue::GatedActivation>(a, p, capacity,
                                                                                    stream)
             : launch_stream_kernel<Cfg, kBf16, kScales, Epilogue::Activation>(a, p, capacity,
                                                                               stream);
}

template <class Cfg>
cudaError_t launch_stream_tile(const GroupedGemmArgs& a, int64_t capacity, cudaStream_t stream) {
  const W4GemmParams p = w4a16_params(a);
  if (w4a16_scale_mode(a) == W4Scales::Folded32) {  // bf16 only (w4a16_scale_mode)
    return launch_stream_epilogue<Cfg, true, W4Scales::Folded32>(a, p, capacity, stream);
  }
  return a.dtype == DType::BF16
             ? launch_stream_epilogue<Cfg, true, W4Scales::Folded16>(a, p, capacity, stream)
             : launch_stream_epilogue<Cfg, false, W4Scales::Folded16>(a, p, capacity, stream);
}

// No expert gets more rows than the whole GEMM has, so max_rows <= 8 bounds every item by 8.
// FLASHINFER_MOE_FP4_STREAM_16_ROWS keeps the 16-row tile (A/B timing).
bool stream_tile_is_small_t(const GroupedGemmArgs& a) {
  static const bool rows16 = std::getenv("FLASHINFER_MOE_FP4_STREAM_16_ROWS") != nullptr;
  return a.max_rows <= W4StreamTileSmallT::kRows && !rows16;
}

cudaError_t launch_stream(const GroupedGemmArgs& a, int64_t capacity, cudaStream_t stream) {
  if (stream_tile_is_small_t(a)) return launch_stream_tile<W4StreamTileSmallT>(a, capacity, stream);
  return launch_stream_tile<W4StreamTile>(a, capacity, stream);
}

}  // namespace

bool w4a16_decode_streams(const GroupedGemmArgs& a) {
  static const bool disabled = std::getenv("FLASHINFER_MOE_DISABLE_FP4_STREAM") != nullptr;
  const W4Scales mode = w4a16_scale_mode(a);
  return !disabled && a.b_format == ElemFormat::E2M1Packed && a.b_stride_k == 1 &&
         (mode == W4Scales::Folded16 || mode == W4Scales::Folded32) && b_lines_aligned16(a) &&
         aligned16(a.a) && a.lda % 8 == 0;
}

// The 8-row tile is resident 2 CTAs per SM, but split K is sized with the 16-row tile's 3: that
// is the configuration measured (GEMM2 of gpt-oss at T = 1 then splits K in two, 360 CTAs of 8
// warps); sizing it with 2 (no split there) has not been timed yet.
int w4a16_decode_ctas_per_sm(const GroupedGemmArgs& a) {
  if (!w4a16_decode_streams(a)) return W4DecodeTile<true, true>::kMinBlocks;
  return W4StreamTile::kMinBlocks;
}

cudaError_t launch_w4a16_decode(const GroupedGemmArgs& a, int64_t capacity, cudaStream_t stream) {
  if (!w4a16_decode_streams(a)) return launch_w4a16<W4DecodeTile>(a, capacity, stream);
  return launch_stream(a, capacity, stream);
}

}  // namespace sm80
}  // namespace cuda
}  // namespace flashinfer_moe
