// The Hopper grouped GEMM family: CUTLASS sm90 pointer-array GEMM (TMA + WGMMA, cooperative
// warp-specialized, persistent) over the experts of one MoE GEMM (see sm90_grouped_gemm.h).
//
// Launch = two kernels on the caller's stream:
//  1. prepare_groups: one thread per expert turns row_offsets (device) into CUTLASS's per-group
//     problem shape {rows_e, n, k} and A/B/D pointers and strides, in `scratch`. Experts with no
//     rows get M = 0, which the tile scheduler skips.
//  2. the CUTLASS kernel, given only the group count and device arrays. With no host problem
//     shapes, CUTLASS (4.2, checked in sm90_tile_scheduler_group.hpp) sizes the persistent grid
//     from hw_info.sm_count alone, and the scheduler walks the device shapes on the GPU (a warp
//     prefix-sums 32 groups' tile counts at a time). The mainloop/epilogue build their TMA
//     descriptors on the host from placeholder shapes and patch address/shape per group on the
//     device (tensormaps in the workspace, one set per SM). So the host never learns rows_e.
//
// Only the sm90a device pass compiles the GEMM body: CUTLASS's kernel is wrapped in its own
// `__CUDA_ARCH_FEAT_SM90_ALL` guard, so the 80 / 100a passes emit an empty stub that supports()
// never lets run. Without CUTLASS headers (FLASHINFER_MOE_WITH_CUTLASS undefined) the family is
// reported as not compiled in.
//
// Without NDEBUG, CUTLASS/CuTe device asserts become calls inside the consumer's wgmma pipeline
// and ptxas serializes every wgmma (warning C7510: a large slowdown). The library build does
// not define NDEBUG (no CMAKE_BUILD_TYPE), so this file does, before any header.
#ifndef NDEBUG
#define NDEBUG
#endif

#include <cuda_runtime_api.h>

#include <climits>
#include <cstdint>
#include <cstring>

#include "cuda/sm90_grouped_gemm.h"

#if defined(FLASHINFER_MOE_WITH_CUTLASS)
#include "cuda/sm90_grouped_gemm_config.cuh"
#endif

namespace flashinfer_moe {
namespace cuda {
namespace sm90 {
namespace {

// Upper bound on SMs a Hopper part has (H100 SXM/H200: 132). CUTLASS's workspace holds TMA
// descriptors per SM; sizing it from a constant keeps workspace_size() device-independent, and
// launch() caps the persistent grid at this many SMs.
constexpr int kMaxSms = 160;
constexpr size_t kAlign = 256;  // every scratch section; TMA descriptors need 64/128 bytes

size_t align_up(size_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

// Whether the library was compiled with the sm_90a target (wgmma exists only there).
bool build_has_sm90a() {
#if defined(FLASHINFER_MOE_CUDA_ARCHS_STRING)
  const char* s = FLASHINFER_MOE_CUDA_ARCHS_STRING;  // e.g. "80,90a,100a"
  while (*s) {
    const char* end = s;
    while (*end && *end != ',' && *end != ';') ++end;
    if (end - s == 3 && std::strncmp(s, "90a", 3) == 0) return true;
    s = *end ? end + 1 : end;
  }
#endif
  return false;
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// The reason `args` cannot run, or nullptr. Independent of the device.
const char* unsupported_reason(const GroupedGemmArgs& a) {
#if !defined(FLASHINFER_MOE_WITH_CUTLASS)
  (void)a;
  return "sm90 grouped GEMM: built without CUTLASS headers";
#else
  if (!build_has_sm90a()) return "sm90 grouped GEMM: the build has no 90a target";
  if (a.dtype != DType::BF16 && a.dtype != DType::F16)
    return "sm90 grouped GEMM: only BF16/F16 operands (FP8/FP4 not implemented on CUDA yet)";
  if (a.b_stride_k != 1) return "sm90 grouped GEMM: B must be K-major (b_stride_k == 1)";
  if (a.n <= 0 || a.k <= 0 || a.n % 8 != 0 || a.k % 8 != 0)
    return "sm90 grouped GEMM: n and k must be positive multiples of 8 (16-byte TMA rows)";
  if (a.n > INT32_MAX || a.k > INT32_MAX || a.max_rows > INT32_MAX)
    return "sm90 grouped GEMM: n, k and max_rows must fit in int32";
  if (a.lda % 8 != 0 || a.b_stride_n % 8 != 0 || a.b_stride_e % 8 != 0 || a.ldc % 4 != 0)
    return "sm90 grouped GEMM: lda, b_stride_n, b_stride_e must be multiples of 8 elements and "
           "ldc of 4 (16-byte TMA strides)";
  if (a.lda < a.k || a.b_stride_n < a.k || a.ldc < a.n)
    return "sm90 grouped GEMM: row strides shorter than a row";
  if (!aligned16(a.a) || !aligned16(a.b) || !aligned16(a.c))
    return "sm90 grouped GEMM: A, B and C must be 16-byte aligned";
  if (a.num_experts < 0 || a.max_rows < 0) return "sm90 grouped GEMM: negative sizes";
  return nullptr;
#endif
}

#if defined(FLASHINFER_MOE_WITH_CUTLASS)

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
  return args;
}

template <class Cfg>
size_t cutlass_workspace_bytes(int32_t groups) {
  GroupArrays<Cfg> g(nullptr, ScratchLayout<Cfg>(groups, 0));
  return Cfg::Gemm::get_workspace_size(make_arguments<Cfg>(g, groups, 0, kMaxSms));
}

template <class Cfg>
size_t scratch_bytes(int32_t groups) {
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
  g.shapes[e] = cute::make_shape(static_cast<int>(end - begin), p.n, p.k);
  // int64 offsets: begin * lda can pass 2^31 elements.
  g.ptr_a[e] = reinterpret_cast<const typename Cfg::ElementA*>(p.a + begin * p.lda * p.elem_bytes);
  g.ptr_b[e] = reinterpret_cast<const typename Cfg::ElementB*>(
      p.b + static_cast<int64_t>(e) * p.b_stride_e * p.elem_bytes);
  g.ptr_d[e] = p.c + begin * p.ldc;
  g.stride_a[e] = cute::make_stride(p.lda, cute::Int<1>{}, cute::Int<0>{});
  g.stride_b[e] = cute::make_stride(p.b_stride_n, cute::Int<1>{}, cute::Int<0>{});
  g.stride_d[e] = cute::make_stride(p.ldc, cute::Int<1>{}, cute::Int<0>{});
}

// Maps a failed CUTLASS call to a CUDA error: the pending launch error if there is one.
int cutlass_failure() {
  const cudaError_t err = cudaGetLastError();
  return static_cast<int>(err != cudaSuccess ? err : cudaErrorLaunchFailure);
}

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
  p.elem_bytes = 2;
  p.n = static_cast<int32_t>(args.n);
  p.k = static_cast<int32_t>(args.k);
  constexpr int kThreads = 128;
  prepare_groups<Cfg><<<(groups + kThreads - 1) / kThreads, kThreads, 0, stream>>>(p, g);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return static_cast<int>(err);

  typename Cfg::Gemm gemm;
  const auto cargs = make_arguments<Cfg>(g, groups, device, sm_count);
  if (gemm.can_implement(cargs) != cutlass::Status::kSuccess) {
    return static_cast<int>(cudaErrorInvalidValue);
  }
  // The workspace was sized for kMaxSms >= sm_count SMs, so it is large enough.
  void* cutlass_ws = static_cast<char*>(args.scratch) + layout.cutlass_ws;
  if (gemm.initialize(cargs, cutlass_ws, stream) != cutlass::Status::kSuccess) {
    return cutlass_failure();
  }
  if (gemm.run(stream) != cutlass::Status::kSuccess) return cutlass_failure();
  err = cudaGetLastError();
  return static_cast<int>(err);
}

#endif  // FLASHINFER_MOE_WITH_CUTLASS

}  // namespace

size_t workspace_size(int32_t num_experts, int64_t max_rows) {
  (void)max_rows;  // the persistent grid does not grow with rows
#if defined(FLASHINFER_MOE_WITH_CUTLASS)
  if (num_experts <= 0) return 0;
  // Both element types share one layout size (same pointer/stride types); take the larger.
  const size_t bf16 = scratch_bytes<PrefillGemm<cutlass::bfloat16_t>>(num_experts);
  const size_t f16 = scratch_bytes<PrefillGemm<cutlass::half_t>>(num_experts);
  return bf16 > f16 ? bf16 : f16;
#else
  (void)num_experts;
  return 0;
#endif
}

bool supports(const GroupedGemmArgs& args, int sm, const char** why) {
  const char* reason = unsupported_reason(args);
  if (reason == nullptr && sm != 90) {
    // sm_90a machine code runs only on compute capability 9.0 (not 10.x: arch-specific).
    reason = "sm90 grouped GEMM: needs a compute capability 9.0 GPU (sm_90a code)";
  }
  if (why != nullptr) *why = reason;
  return reason == nullptr;
}

int launch(const GroupedGemmArgs& args, void* stream) {
  int device = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return static_cast<int>(err);
  int major = 0, minor = 0, sm_count = 0;
  if ((err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device)) !=
          cudaSuccess ||
      (err = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device)) !=
          cudaSuccess ||
      (err = cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, device)) !=
          cudaSuccess) {
    return static_cast<int>(err);
  }
  if (!supports(args, major * 10 + minor, nullptr)) return static_cast<int>(cudaErrorInvalidValue);
  if (args.num_experts == 0 || args.max_rows == 0) return 0;  // no rows: nothing to write
  if (args.a == nullptr || args.b == nullptr || args.c == nullptr || args.row_offsets == nullptr) {
    return static_cast<int>(cudaErrorInvalidValue);
  }
#if defined(FLASHINFER_MOE_WITH_CUTLASS)
  if (sm_count > kMaxSms) sm_count = kMaxSms;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (args.dtype == DType::BF16) {
    return launch_typed<PrefillGemm<cutlass::bfloat16_t>>(args, s, device, sm_count);
  }
  return launch_typed<PrefillGemm<cutlass::half_t>>(args, s, device, sm_count);
#else
  (void)stream;
  return static_cast<int>(cudaErrorNotSupported);
#endif
}

}  // namespace sm90
}  // namespace cuda
}  // namespace flashinfer_moe
