// Launch machinery shared by every Hopper grouped GEMM configuration (sm90_grouped_gemm*.cu).
//
// Each configuration lives in its own translation unit (one CUTLASS instantiation each: ~50 s
// and ~3 GB of compiler memory apiece, so they build in parallel); this header gives them the
// same device-side schedule:
//  1. prepare_groups: one thread per expert turns row_offsets (device) into CUTLASS's per-group
//     problem shape, A/B/D pointers and strides, in `scratch`. Experts with no rows get an empty
//     problem, which the tile scheduler skips.
//  2. the CUTLASS kernel, given only the group count and the device arrays. With no host
//     problem shapes, CUTLASS (4.2, sm90_tile_scheduler_group.hpp) sizes the persistent grid
//     from hw_info.sm_count alone and walks the device shapes on the GPU; TMA descriptors are
//     patched per group on the device (one set per SM in CUTLASS's workspace). So the host never
//     learns rows_e: no host sync, no allocation, CUDA-graph capturable.
//
// A configuration `Cfg` provides ElementA/ElementB, StrideA/B/D, Gemm, and:
//  - kSwapAB: false = "TN" problem per expert, D[rows, n] = A_e[rows, k] * B_e[n, k]^T (D
//    row-major, ldc). true = the transposed problem D'[n, rows] = B_e[n, k] * A_e[rows, k]^T:
//    the weights become CUTLASS's A (the M side, K-major) and the expert's rows its N side, and
//    D' is column-major with leading dimension ldc, which is exactly C[rows, n] row-major. This
//    lets a 64/128-wide N tile cover a small expert instead of padding rows to a 128-row M tile.
//  - kRasterAlongN: order of tiles within a group. Consecutive CTAs should share the weight
//    tile (so it is read from HBM once and from L2 by the others): for the TN problem the
//    weights sit on N, so raster along M (the default); for swap-AB they sit on M: along N.
//
// Include only from a .cu compiled with FLASHINFER_MOE_WITH_CUTLASS, after the config types.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "cuda/gemm/grouped_gemm.h"
#include "cuda/gemm/sm90/sm90_grouped_gemm_config.cuh"

namespace flashinfer_moe {
namespace cuda {
namespace sm90 {
namespace detail {

// Upper bound on SMs a Hopper part has (H100 SXM/H200: 132). CUTLASS's workspace holds TMA
// descriptors per SM; sizing it from a constant keeps workspace sizes device-independent, and
// launches cap the persistent grid at this many SMs.
constexpr int kMaxSms = 160;
constexpr size_t kAlign = 256;  // every scratch section; TMA descriptors need 64/128 bytes

inline size_t align_up(size_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

// Where each per-group array lives in scratch; CUTLASS's workspace comes last.
template <class Cfg>
struct ScratchLayout {
  size_t shapes, ptr_a, ptr_b, ptr_d, stride_a, stride_b, stride_d, cutlass_ws, end;
  explicit ScratchLayout(int32_t groups, size_t cutlass_bytes) {
    const size_t g = static_cast<size_t>(groups);
    size_t off = 0;
    auto take = [&](size_t bytes) {
      const size_t at = off;
      off = align_up(off + bytes);
      return at;
    };
    shapes = take(g * sizeof(typename ProblemShape::UnderlyingProblemShape));
    ptr_a = take(g * sizeof(void*));
    ptr_b = take(g * sizeof(void*));
    ptr_d = take(g * sizeof(void*));
    stride_a = take(g * sizeof(typename Cfg::StrideA));
    stride_b = take(g * sizeof(typename Cfg::StrideB));
    stride_d = take(g * sizeof(typename Cfg::StrideD));
    cutlass_ws = take(cutlass_bytes);
    end = off;
  }
};

template <class Cfg>
struct GroupArrays {
  typename ProblemShape::UnderlyingProblemShape* shapes;
  const typename Cfg::ElementA** ptr_a;
  const typename Cfg::ElementB** ptr_b;
  float** ptr_d;
  typename Cfg::StrideA* stride_a;
  typename Cfg::StrideB* stride_b;
  typename Cfg::StrideD* stride_d;

  GroupArrays(void* scratch, const ScratchLayout<Cfg>& l) {
    char* base = static_cast<char*>(scratch);
    shapes = reinterpret_cast<decltype(shapes)>(base + l.shapes);
    ptr_a = reinterpret_cast<decltype(ptr_a)>(base + l.ptr_a);
    ptr_b = reinterpret_cast<decltype(ptr_b)>(base + l.ptr_b);
    ptr_d = reinterpret_cast<decltype(ptr_d)>(base + l.ptr_d);
    stride_a = reinterpret_cast<decltype(stride_a)>(base + l.stride_a);
    stride_b = reinterpret_cast<decltype(stride_b)>(base + l.stride_b);
    stride_d = reinterpret_cast<decltype(stride_d)>(base + l.stride_d);
  }
};

// CUTLASS arguments for `groups` groups whose shapes exist only on the device.
template <class Cfg>
typename Cfg::Gemm::Arguments make_arguments(const GroupArrays<Cfg>& g, int32_t groups, int device,
                                             int sm_count) {
  cutlass::KernelHardwareInfo hw;
  hw.device_id = device;
  hw.sm_count = sm_count;
  hw.max_active_clusters = 0;  // let CUTLASS size the grid from sm_count
  typename Cfg::Gemm::Arguments args;
  args.mode = cutlass::gemm::GemmUniversalMode::kGrouped;
  // nullptr host shapes: CUTLASS reads nothing on the host (see the file comment).
  args.problem_shape = {groups, g.shapes, nullptr};
  args.mainloop = {g.ptr_a, g.stride_a, g.ptr_b, g.stride_b};
  // alpha = 1, beta = 0 are the fusion defaults; C is void so its pointer/stride are unused.
  args.epilogue = {{}, nullptr, nullptr, g.ptr_d, g.stride_d};
  args.hw_info = hw;
  using Raster = cutlass::gemm::kernel::detail::RasterOrderOptions;
  args.scheduler.raster_order = Cfg::kRasterAlongN ? Raster::AlongN : Raster::AlongM;
  return args;
}

template <class Cfg>
size_t cutlass_workspace_bytes(int32_t groups) {
  GroupArrays<Cfg> g(nullptr, ScratchLayout<Cfg>(groups, 0));
  return Cfg::Gemm::get_workspace_size(make_arguments<Cfg>(g, groups, 0, kMaxSms));
}

template <class Cfg>
size_t scratch_bytes(int32_t groups) {
  if (groups <= 0) return 0;
  return ScratchLayout<Cfg>(groups, cutlass_workspace_bytes<Cfg>(groups)).end;
}

struct PrepareParams {
  const int64_t* row_offsets;
  int32_t num_experts;
  int64_t max_rows;
  const char* a;  // bytes
  const char* b;
  float* c;
  int64_t lda, b_stride_e, b_stride_n, ldc, elem_bytes;
  int32_t n, k;
};

// One thread per expert: rows [row_offsets[e], row_offsets[e+1]) become group e. Offsets are
// clamped to [0, max_rows] so a bad offset can never point the GEMM outside A or C.
template <class Cfg>
__global__ void prepare_groups(PrepareParams p, GroupArrays<Cfg> g) {
  const int32_t e = static_cast<int32_t>(blockIdx.x * blockDim.x + threadIdx.x);
  if (e >= p.num_experts) return;
  int64_t begin = p.row_offsets[e];
  int64_t end = p.row_offsets[e + 1];
  begin = begin < 0 ? 0 : (begin > p.max_rows ? p.max_rows : begin);
  end = end < begin ? begin : (end > p.max_rows ? p.max_rows : end);
  const int rows = static_cast<int>(end - begin);
  // int64 offsets: begin * lda can pass 2^31 elements.
  const char* rows_ptr = p.a + begin * p.lda * p.elem_bytes;
  const char* weights_ptr = p.b + static_cast<int64_t>(e) * p.b_stride_e * p.elem_bytes;
  g.ptr_d[e] = p.c + begin * p.ldc;
  if constexpr (Cfg::kSwapAB) {
    // D'[n, rows] = W_e[n, k] * X_e[rows, k]^T; D' column-major (ldc) == C[rows, n] row-major.
    g.shapes[e] = cute::make_shape(p.n, rows, p.k);
    g.ptr_a[e] = reinterpret_cast<const typename Cfg::ElementA*>(weights_ptr);
    g.ptr_b[e] = reinterpret_cast<const typename Cfg::ElementB*>(rows_ptr);
    g.stride_a[e] = cute::make_stride(p.b_stride_n, cute::Int<1>{}, cute::Int<0>{});
    g.stride_b[e] = cute::make_stride(p.lda, cute::Int<1>{}, cute::Int<0>{});
    g.stride_d[e] = cute::make_stride(cute::Int<1>{}, p.ldc, cute::Int<0>{});
  } else {
    g.shapes[e] = cute::make_shape(rows, p.n, p.k);
    g.ptr_a[e] = reinterpret_cast<const typename Cfg::ElementA*>(rows_ptr);
    g.ptr_b[e] = reinterpret_cast<const typename Cfg::ElementB*>(weights_ptr);
    g.stride_a[e] = cute::make_stride(p.lda, cute::Int<1>{}, cute::Int<0>{});
    g.stride_b[e] = cute::make_stride(p.b_stride_n, cute::Int<1>{}, cute::Int<0>{});
    g.stride_d[e] = cute::make_stride(p.ldc, cute::Int<1>{}, cute::Int<0>{});
  }
}

// Maps a failed CUTLASS call to a CUDA error: the pending launch error if there is one.
inline int cutlass_failure() {
  const cudaError_t err = cudaGetLastError();
  return static_cast<int>(err != cudaSuccess ? err : cudaErrorLaunchFailure);
}

// Runs CUTLASS GEMM `Gemm` with arguments `cargs` and its workspace at `cutlass_ws` (sized for
// kMaxSms >= the SMs in cargs, so large enough) on `stream`; a cudaError_t as int.
template <class Gemm>
int run_cutlass(const typename Gemm::Arguments& cargs, void* cutlass_ws, cudaStream_t stream) {
  Gemm gemm;
  if (gemm.can_implement(cargs) != cutlass::Status::kSuccess) {
    return static_cast<int>(cudaErrorInvalidValue);
  }
  if (gemm.initialize(cargs, cutlass_ws, stream) != cutlass::Status::kSuccess) {
    return cutlass_failure();
  }
  if (gemm.run(stream) != cutlass::Status::kSuccess) return cutlass_failure();
  return static_cast<int>(cudaGetLastError());
}

// Enqueues prepare_groups + the CUTLASS kernel. `args` was already validated by supports().
template <class Cfg>
int launch_typed(const GroupedGemmArgs& args, cudaStream_t stream, int device, int sm_count) {
  const int32_t groups = args.num_experts;
  const size_t cutlass_bytes = cutlass_workspace_bytes<Cfg>(groups);
  const ScratchLayout<Cfg> layout(groups, cutlass_bytes);
  if (args.scratch == nullptr || args.scratch_bytes < layout.end ||
      (reinterpret_cast<uintptr_t>(args.scratch) % kAlign) != 0) {
    return static_cast<int>(cudaErrorInvalidValue);
  }
  const GroupArrays<Cfg> g(args.scratch, layout);

  PrepareParams p;
  p.row_offsets = args.row_offsets;
  p.num_experts = groups;
  p.max_rows = args.max_rows;
  p.a = static_cast<const char*>(args.a);
  p.b = static_cast<const char*>(args.b);
  p.c = args.c;
  p.lda = args.lda;
  p.b_stride_e = args.b_stride_e;
  p.b_stride_n = args.b_stride_n;
  p.ldc = args.ldc;
  p.elem_bytes = sizeof(typename Cfg::ElementA);  // 2 (bf16/fp16) or 1 (e4m3); A and B alike
  p.n = static_cast<int32_t>(args.n);
  p.k = static_cast<int32_t>(args.k);
  constexpr int kThreads = 128;
  prepare_groups<Cfg><<<(groups + kThreads - 1) / kThreads, kThreads, 0, stream>>>(p, g);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return static_cast<int>(err);

  return run_cutlass<typename Cfg::Gemm>(make_arguments<Cfg>(g, groups, device, sm_count),
                                         static_cast<char*>(args.scratch) + layout.cutlass_ws,
                                         stream);
}

}  // namespace detail
}  // namespace sm90
}  // namespace cuda
}  // namespace flashinfer_moe
