// The W4A16 kernel's instantiations for one tile shape (sm80_w4a16_grouped_gemm.h): the
// variants a launch can need, chosen at run time from the arguments. The fused epilogue is
// compiled for packed codes with folded scales only (NVFP4, MXFP4: every real FP4 checkpoint);
// the seed forms' codes one per byte and float scales run unfused (the family's check refuses
// the fusion there), which keeps the build at 12 kernels per tile and dtype.
#pragma once

#include <cstdint>

#include "cuda/gemm/sm80/sm80_launch.cuh"
#include "cuda/gemm/sm80/sm80_w4a16_grouped_gemm.h"
#include "cuda/gemm/sm80/sm80_w4a16_grouped_gemm_kernel.cuh"

namespace flashinfer_moe {
namespace cuda {
namespace sm80 {

inline W4GemmParams w4a16_params(const GroupedGemmArgs& a) {
  W4GemmParams p;
  p.a = static_cast<const uint16_t*>(a.a);
  p.lda = a.lda;
  p.b = static_cast<const uint8_t*>(a.b);
  p.b_stride_e = a.b_stride_e;
  p.b_stride_n = a.b_stride_n;
  p.b_stride_k = a.b_stride_k;
  p.c = a.c;
  p.ldc = a.ldc;
  p.n = a.n;
  p.k = a.k;
  p.schedule = a.scratch;
  p.a_vec16 = aligned16(a.a) && a.lda % 8 == 0;
  p.b_vec16 = b_lines_aligned16(a);
  p.a_row_index = a.a_row_index;
  p.a_row_index_div = a.a_row_index_div;
  p.b_scale = a.b_kscale;
  p.slice = a.b_kscale.data != nullptr ? a.b_kscale.block_cols : 0;
  if (a.activation != nullptr) p.act = *a.activation;
  p.split_stride = a.split_stride;
  return p;
}

template <template <bool, bool> class Tile, bool kBf16, bool kPacked, bool kKMajorB,
          W4Scales kScales, Epilogue kEpi, bool kInt4 = false>
cudaError_t launch_w4a16_kernel(const GroupedGemmArgs& a, const W4GemmParams& p, int64_t capacity,
                                cudaStream_t stream) {
  using Cfg = Tile<kPacked, kKMajorB>;
  return launch_tiles<Cfg>(
      w4a16_grouped_gemm_kernel<Cfg, kBf16, kPacked, kKMajorB, kScales, kEpi, kInt4>, p, a,
      capacity, stream);
}

// MXINT4's packed int4 codes (K-major): bf16 scales per 32 (sliced) or none, C in fp32.
template <template <bool, bool> class Tile, bool kBf16>
cudaError_t launch_w4a16_int4(const GroupedGemmArgs& a, const W4GemmParams& p, int64_t capacity,
                              cudaStream_t stream) {
  constexpr Epilogue kS = Epilogue::StoreF32;
  if (a.activation != nullptr) return cudaErrorInvalidValue;  // check_args: no fused epilogue
  return w4a16_scale_mode(a) == W4Scales::None
             ? launch_w4a16_kernel<Tile, kBf16, true, true, W4Scales::None, kS, true>(
                   a, p, capacity, stream)
             : launch_w4a16_kernel<Tile, kBf16, true, true, W4Scales::Sliced, kS, true>(
                   a, p, capacity, stream);
}

// Packed K-major codes: every scale mode, and the fused epilogues with folded scales.
template <template <bool, bool> class Tile, bool kBf16, Epilogue kEpi>
cudaError_t launch_w4a16_packed(const GroupedGemmArgs& a, const W4GemmParams& p, int64_t capacity,
                                cudaStream_t stream) {
  switch (w4a16_scale_mode(a)) {
    case W4Scales::Folded16:
      return launch_w4a16_kernel<Tile, kBf16, true, true, W4Scales::Folded16, kEpi>(a, p, capacity,
                                                                                    stream);
    case W4Scales::Folded32:
      return launch_w4a16_kernel<Tile, kBf16, true, true, W4Scales::Folded32, kEpi>(a, p, capacity,
                                                                                    stream);
    default:
      break;
  }
  if constexpr (kEpi != Epilogue::StoreF32) {
    return cudaErrorInvalidValue;  // check_args allows the fusion with folded scales only
  } else if (w4a16_scale_mode(a) == W4Scales::Sliced) {
    return launch_w4a16_kernel<Tile, kBf16, true, true, W4Scales::Sliced, kEpi>(a, p, capacity,
                                                                                stream);
  } else {
    return launch_w4a16_kernel<Tile, kBf16, true, true, W4Scales::None, kEpi>(a, p, capacity,
                                                                              stream);
  }
}

// Codes one per byte (the seed forms; K- or N-major): unscaled or sliced, C in fp32.
template <template <bool, bool> class Tile, bool kBf16, bool kKMajorB>
cudaError_t launch_w4a16_unpacked(const GroupedGemmArgs& a, const W4GemmParams& p, int64_t capacity,
                                  cudaStream_t stream) {
  constexpr Epilogue kS = Epilogue::StoreF32;
  return w4a16_scale_mode(a) == W4Scales::None
             ? launch_w4a16_kernel<Tile, kBf16, false, kKMajorB, W4Scales::None, kS>(a, p, capacity,
                                                                                     stream)
             : launch_w4a16_kernel<Tile, kBf16, false, kKMajorB, W4Scales::Sliced, kS>(
                   a, p, capacity, stream);
}

// The weight layout and epilogue, for one activation dtype.
template <template <bool, bool> class Tile, bool kBf16>
cudaError_t launch_w4a16_layout(const GroupedGemmArgs& a, const W4GemmParams& p, int64_t capacity,
                                cudaStream_t stream) {
  if (a.b_format == ElemFormat::Int4Packed) {  // K-major (check_args)
    return launch_w4a16_int4<Tile, kBf16>(a, p, capacity, stream);
  }
  if (a.b_format == ElemFormat::E2M1Packed) {  // K-major (check_args)
    if (a.activation == nullptr) {
      return launch_w4a16_packed<Tile, kBf16, Epilogue::StoreF32>(a, p, capacity, stream);
    }
    return is_gated(static_cast<Activation>(a.activation->activation))
               ? launch_w4a16_packed<Tile, kBf16, Epilogue::GatedActivation>(a, p, capacity, stream)
               : launch_w4a16_packed<Tile, kBf16, Epilogue::Activation>(a, p, capacity, stream);
  }
  return a.b_stride_k == 1 ? launch_w4a16_unpacked<Tile, kBf16, true>(a, p, capacity, stream)
                           : launch_w4a16_unpacked<Tile, kBf16, false>(a, p, capacity, stream);
}

template <template <bool, bool> class Tile>
cudaError_t launch_w4a16(const GroupedGemmArgs& a, int64_t capacity, cudaStream_t stream) {
  const W4GemmParams p = w4a16_params(a);
  return a.dtype == DType::BF16 ? launch_w4a16_layout<Tile, true>(a, p, capacity, stream)
                                : launch_w4a16_layout<Tile, false>(a, p, capacity, stream);
}

}  // namespace sm80
}  // namespace cuda
}  // namespace flashinfer_moe
