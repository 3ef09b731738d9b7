// The two entry points of one CUTLASS sm90 grouped-GEMM configuration, generated per
// translation unit. Each configuration lives in its own .cu file because one CUTLASS
// instantiation costs about 50 s and 3 GB to compile: separate units build in parallel and a
// change to one does not rebuild the others. A unit is its header comment (the tile and why),
// the family's kernels header, the GEMM type and one line, e.g.
//     FIMOE_SM90_CONFIG_UNIT(sm90_fp8, swap_ab, sm90::detail::scratch_bytes,
//                            sm90::detail::launch_typed, TileGemm)
// which defines, in namespace flashinfer_moe::cuda::<family>::variants,
//     size_t <name>_scratch_bytes(int32_t groups);          // SCRATCH<Type>(groups)
//     int <name>_launch(const GroupedGemmArgs&, void* stream, int device, int sm_count);
//                                                           // LAUNCH<Type>(args, stream, ...)
// as the family's *_variants.h declares them. Without CUTLASS the same names are stubs: 0 bytes,
// cudaErrorNotSupported.
// Include this header first in a unit: it defines NDEBUG before any CUTLASS header, because
// CuTe's device asserts serialize the wgmma pipeline (see sm90_grouped_gemm.cu).
#pragma once

#ifndef NDEBUG
#define NDEBUG
#endif

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "cuda/gemm/grouped_gemm.h"

#if defined(FLASHINFER_MOE_WITH_CUTLASS)
#define FIMOE_SM90_CONFIG_UNIT(FAMILY, NAME, SCRATCH, LAUNCH, TYPE)                            \
  namespace flashinfer_moe::cuda::FAMILY::variants {                                           \
  size_t NAME##_scratch_bytes(int32_t groups) { return SCRATCH<TYPE>(groups); }                \
  int NAME##_launch(const GroupedGemmArgs& args, void* stream, int device, int sm_count) {     \
    return LAUNCH<TYPE>(args, static_cast<cudaStream_t>(stream), device, sm_count);            \
  }                                                                                            \
  }
#else
#define FIMOE_SM90_CONFIG_UNIT(FAMILY, NAME, SCRATCH, LAUNCH, TYPE)                            \
  namespace flashinfer_moe::cuda::FAMILY::variants {                                           \
  size_t NAME##_scratch_bytes(int32_t) { return 0; }                                           \
  int NAME##_launch(const GroupedGemmArgs&, void*, int, int) {                                 \
    return static_cast<int>(cudaErrorNotSupported);                                            \
  }                                                                                            \
  }
#endif
