// Standalone check of the portable grouped GEMM's FP8 mode (GroupedGemmArgs::fp8,
// src/cuda/gemm/sm80/sm80_fp8_grouped_gemm_kernel.cuh) on one GPU:
//   1. correctness against a float64 CPU model: e4m3 codes in both tiles, K- and N-major B, odd
//      n and k, padded / misaligned strides, empty experts, poisoned C padding and slack rows;
//      without scales and with the K-slice scales (128 slices with 128x128 weight blocks, MXFP8
//      32 slices with UE8M0 weight scales in the swizzled layout, 16-column slices with per-row
//      weight scales, A scales alone, both ActScales layouts). Small-integer codes with
//      power-of-two scales must match bit for bit; other cases stay within the fp32 bound.
//   2. supports(): what must be accepted and what must be rejected;
//   3. speed: decode and prefill shapes, the GEMM kernel alone with its schedule prebuilt,
//      L2 flushed before each run; GB/s counts the active experts' weight bytes.
// Build: nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -I src/include -I src
//          tests/cuda/check_sm80_fp8_gemm.cu src/cuda/gemm/sm80/sm80_grouped_gemm.cu -o /tmp/chk_fp8
// Exit status 0 only when every check passed.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/formats.h"
#include "cuda/gemm/sm80/sm80_grouped_gemm.h"

using flashinfer_moe::DType;
using flashinfer_moe::ScaleFormat;
using flashinfer_moe::ScaleLayout;
using flashinfer_moe::cuda::ActScales;
using flashinfer_moe::cuda::GroupedGemmArgs;
using flashinfer_moe::cuda::WeightScales;
namespace sm80 = flashinfer_moe::cuda::sm80;
namespace formats = flashinfer_moe::formats;

#define CHECK_CUDA(x)                                                                      \
  do {                                                                                     \
    cudaError_t e_ = (x);                                                                  \
    if (e_ != cudaSuccess) {                                                               \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
      std::exit(2);                                                                        \
    }                                                                                      \
  } while (0)

__host__ __device__ inline uint32_t mix_hash(uint64_t seed, uint64_t i) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + i + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return static_cast<uint32_t>((z ^ (z >> 31)) >> 32);
}

// e4m3 code of logical element i: a value in {-2, -1, 0, 1, 2} (exact sums) or any finite code
// (subnormals included, NaN codes 0x7F / 0xFF replaced by +-448).
__host__ __device__ inline uint8_t input_code(uint64_t seed, uint64_t i, bool ints) {
  const uint32_t h = mix_hash(seed, i);
  if (ints) {
    const uint8_t small[5] = {0xC0, 0xB8, 0x00, 0x38, 0x40};  // -2, -1, 0, 1, 2
    return small[h % 5];
  }
  uint8_t c = static_cast<uint8_t>(h >> 8);
  if ((c & 0x7F) == 0x7F) c ^= 1;
  return c;
}

// Logical [d0][d1][d2] element (i, j, l) = input_code(seed, (i*d1 + j)*d2 + l) at
// i*s0 + j*s1 + l*s2; the rest of the buffer keeps its poison.
__global__ void fill_kernel(uint8_t* p, int64_t d0, int64_t d1, int64_t d2, int64_t s0, int64_t s1,
                            int64_t s2, uint64_t seed, bool ints) {
  const int64_t total = d0 * d1 * d2;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t l = i % d2, j = (i / d2) % d1, e = i / (d1 * d2);
    p[e * s0 + j * s1 + l * s2] = input_code(seed, i, ints);
  }
}

// A scale: a power of two in [1/4, 4] (exact products) or a value in [0.25, 4).
float scale_value(uint64_t seed, uint64_t i, bool pow2) {
  const uint32_t h = mix_hash(seed, i);
  if (pow2) return std::ldexp(1.0f, static_cast<int>(h % 5) - 2);
  return 0.25f + static_cast<float>(h >> 8) * (3.75f / 16777216.0f);
}

enum class WFmt { None, F32, BF16, UE8M0, E4M3 };

struct Case {
  const char* name;
  sm80::Tile tile;
  bool k_major, ints;
  int64_t n, k;
  std::vector<int64_t> rows;  // per expert
  int64_t lda_pad = 0, ldc_pad = 0, b_pad = 0, row_slack = 0, a_misalign = 0;
  // K-slice scales: A group (0: none) and its layout; B format, layout and block.
  int64_t a_group = 0;
  bool a_rows_fastest = false;
  WFmt b_fmt = WFmt::None;
  bool b_swizzled = false;
  int64_t b_block_rows = 1, b_block_cols = 1;
  bool pow2_scales = true;  // with ints: exact expected
  int sampled = 0;          // 0 = every element, else this many random elements
};

struct Problem {
  Case c;
  int32_t e = 0;
  int64_t total = 0, max_rows = 0, lda = 0, ldc = 0, bse = 0, bsn = 0, bsk = 0;
  uint8_t *a_alloc = nullptr, *a = nullptr, *b = nullptr;
  float* out = nullptr;
  int64_t* offsets = nullptr;
  void* scratch = nullptr;
  float* a_scale_dev = nullptr;
  void* b_scale_dev = nullptr;
  std::vector<float> a_scale_host;
  std::vector<uint8_t> b_scale_host;  // raw storage
  WeightScales b_scale_view_host;     // the same view over b_scale_host
  std::vector<int64_t> host_offsets;
  GroupedGemmArgs args;
};

constexpr uint64_t kSeedA = 11, kSeedB = 23, kSeedSA = 31, kSeedSB = 37;

void make_scales(Problem& p) {
  const Case& c = p.c;
  if (c.a_group > 0) {
    const int64_t groups = (c.k + c.a_group - 1) / c.a_group;
    const int64_t rows = std::max<int64_t>(p.max_rows, 1);
    ActScales& s = p.args.a_kscale;
    s.group = c.a_group;
    s.rows_fastest = c.a_rows_fastest;
    s.ld = c.a_rows_fastest ? rows + 3 : groups + 1;  // padded
    const int64_t elems = c.a_rows_fastest ? groups * s.ld : rows * s.ld;
    p.a_scale_host.assign(elems, NAN);  // padding poisoned
    for (int64_t r = 0; r < p.total; ++r) {
      for (int64_t g = 0; g < groups; ++g) {
        p.a_scale_host[flashinfer_moe::cuda::act_scale_index(s, r, g)] =
            scale_value(kSeedSA, r * groups + g, c.pow2_scales);
      }
    }
    CHECK_CUDA(cudaMalloc(&p.a_scale_dev, elems * 4));
    CHECK_CUDA(cudaMemcpy(p.a_scale_dev, p.a_scale_host.data(), elems * 4, cudaMemcpyHostToDevice));
    s.data = p.a_scale_dev;
  }
  if (c.b_fmt == WFmt::None) return;
  WeightScales w;
  w.block_rows = c.b_block_rows, w.block_cols = c.b_block_cols;
  const int64_t sr = (c.n + w.block_rows - 1) / w.block_rows;
  const int64_t sc = (c.k + w.block_cols - 1) / w.block_cols;
  int elem_bytes = 4;
  switch (c.b_fmt) {
    case WFmt::F32:
      w.format = static_cast<int32_t>(ScaleFormat::Float), w.dtype = int32_t(DType::F32);
      break;
    case WFmt::BF16:
      w.format = static_cast<int32_t>(ScaleFormat::Float), w.dtype = int32_t(DType::BF16);
      elem_bytes = 2;
      break;
    case WFmt::UE8M0:
      w.format = static_cast<int32_t>(ScaleFormat::UE8M0), elem_bytes = 1;
      break;
    default:
      w.format = static_cast<int32_t>(ScaleFormat::E4M3), elem_bytes = 1;
      break;
  }
  int64_t elems;
  if (c.b_swizzled) {
    w.layout = static_cast<int32_t>(ScaleLayout::Swizzled128x4);
    w.swizzle_rows = sr, w.swizzle_cols = sc;
    elems = p.e * formats::swizzled_matrix_bytes(sr, sc);
  } else {
    w.layout = static_cast<int32_t>(ScaleLayout::Linear);
    w.stride_c = 1, w.stride_r = sc + 2, w.stride_e = sr * w.stride_r + 5;  // padded
    elems = p.e * w.stride_e;
  }
  p.b_scale_host.assign(std::max<int64_t>(elems, 1) * elem_bytes, 0xFF);  // poison (NaN)
  for (int32_t e = 0; e < p.e; ++e) {
    for (int64_t r = 0; r < sr; ++r) {
      for (int64_t cc = 0; cc < sc; ++cc) {
        const int64_t off = c.b_swizzled ? e * formats::swizzled_matrix_bytes(sr, sc) +
                                               formats::swizzled_128x4_offset(r, cc, sc)
                                         : e * w.stride_e + r * w.stride_r + cc * w.stride_c;
        const float v = scale_value(kSeedSB, (e * sr + r) * sc + cc, c.pow2_scales);
        uint8_t* dst = p.b_scale_host.data() + off * elem_bytes;
        if (c.b_fmt == WFmt::F32) {
          std::memcpy(dst, &v, 4);
        } else if (c.b_fmt == WFmt::BF16) {
          const uint16_t h = formats::float_to_bf16(v);
          std::memcpy(dst, &h, 2);
        } else if (c.b_fmt == WFmt::UE8M0) {
          *dst = static_cast<uint8_t>(127 + std::ilogb(v));  // v is a power of two here
        } else {
          *dst = formats::float_to_e4m3(v);
        }
      }
    }
  }
  CHECK_CUDA(cudaMalloc(&p.b_scale_dev, p.b_scale_host.size()));
  CHECK_CUDA(cudaMemcpy(p.b_scale_dev, p.b_scale_host.data(), p.b_scale_host.size(),
                        cudaMemcpyHostToDevice));
  p.b_scale_view_host = w;
  p.b_scale_view_host.data = p.b_scale_host.data();
  w.data = p.b_scale_dev;
  p.args.b_kscale = w;
}

Problem make_problem(const Case& c) {
  Problem p;
  p.c = c;
  p.e = static_cast<int32_t>(c.rows.size());
  p.host_offsets.assign(1, 0);
  for (int64_t r : c.rows) p.host_offsets.push_back(p.host_offsets.back() + r);
  p.total = p.host_offsets.back();
  p.max_rows = p.total + c.row_slack;
  p.lda = c.k + c.lda_pad;
  p.ldc = c.n + c.ldc_pad;
  if (c.k_major) {
    p.bsk = 1, p.bsn = c.k + c.b_pad, p.bse = c.n * p.bsn;
  } else {
    p.bsn = 1, p.bsk = c.n + c.b_pad, p.bse = c.k * p.bsk;
  }
  const size_t a_bytes = std::max<int64_t>(p.max_rows, 1) * p.lda + c.a_misalign;
  const size_t b_bytes = std::max<size_t>(size_t(p.e) * p.bse, 1);
  const size_t c_bytes = std::max<int64_t>(p.max_rows, 1) * p.ldc * 4;
  CHECK_CUDA(cudaMalloc(&p.a_alloc, a_bytes));
  CHECK_CUDA(cudaMalloc(&p.b, b_bytes));
  CHECK_CUDA(cudaMalloc(&p.out, c_bytes));
  CHECK_CUDA(cudaMalloc(&p.offsets, (p.e + 1) * 8));
  p.a = p.a_alloc + c.a_misalign;
  // Poison: 0x7f is an e4m3 NaN (it would reach C if read), 0xffffffff a NaN float.
  CHECK_CUDA(cudaMemset(p.a_alloc, 0x7f, a_bytes));
  CHECK_CUDA(cudaMemset(p.b, 0x7f, b_bytes));
  CHECK_CUDA(cudaMemset(p.out, 0xff, c_bytes));
  fill_kernel<<<1024, 256>>>(p.a, 1, p.total, c.k, 0, p.lda, 1, kSeedA, c.ints);
  fill_kernel<<<4096, 256>>>(p.b, p.e, c.n, c.k, p.bse, p.bsn, p.bsk, kSeedB, c.ints);
  CHECK_CUDA(cudaGetLastError());
  CHECK_CUDA(cudaMemcpy(p.offsets, p.host_offsets.data(), (p.e + 1) * 8, cudaMemcpyHostToDevice));
  const size_t ws = sm80::workspace_size(c.tile, p.e, p.max_rows);
  CHECK_CUDA(cudaMalloc(&p.scratch, ws));

  GroupedGemmArgs& g = p.args;
  g.fp8 = true;
  g.a = p.a, g.lda = p.lda;
  g.b = p.b, g.b_stride_e = p.bse, g.b_stride_n = p.bsn, g.b_stride_k = p.bsk;
  g.c = p.out, g.ldc = p.ldc, g.n = c.n, g.k = c.k, g.num_experts = p.e;
  g.row_offsets = p.offsets, g.max_rows = p.max_rows, g.scratch = p.scratch, g.scratch_bytes = ws;
  make_scales(p);
  return p;
}

void free_problem(Problem& p) {
  cudaFree(p.a_alloc), cudaFree(p.b), cudaFree(p.out), cudaFree(p.offsets), cudaFree(p.scratch);
  cudaFree(p.a_scale_dev), cudaFree(p.b_scale_dev);
}

int expert_of_row(const Problem& p, int64_t r) {
  return static_cast<int>(std::upper_bound(p.host_offsets.begin(), p.host_offsets.end(), r) -
                          p.host_offsets.begin() - 1);
}

// Decoded codes: A [total][k] and B [E][n][k] (full checks), or empty (sampled checks decode
// single elements from the hash).
struct HostInputs {
  std::vector<float> a, b;
};

HostInputs decode_inputs(const Problem& p) {
  HostInputs h;
  h.a.resize(p.total * p.c.k);
  h.b.resize(size_t(p.e) * p.c.n * p.c.k);
  for (size_t i = 0; i < h.a.size(); ++i) {
    h.a[i] = formats::e4m3_to_float(input_code(kSeedA, i, p.c.ints));
  }
  for (size_t i = 0; i < h.b.size(); ++i) {
    h.b[i] = formats::e4m3_to_float(input_code(kSeedB, i, p.c.ints));
  }
  return h;
}

// float64 C[r, n] = sum over slices of (sum a*b) * a_scale * b_scale, and the same sum of
// absolute values (the scale of fp32 rounding error).
void reference(const Problem& p, const HostInputs& h, int64_t r, int64_t n, double* value,
               double* magnitude) {
  const Case& c = p.c;
  const int e = expert_of_row(p, r);
  const int64_t slice = c.a_group > 0 ? c.a_group : (c.b_fmt != WFmt::None ? c.b_block_cols : c.k);
  double s = 0, m = 0;
  for (int64_t k0 = 0; k0 < c.k; k0 += std::max<int64_t>(slice, 1)) {
    const int64_t k1 = std::min(c.k, k0 + std::max<int64_t>(slice, 1));
    double part = 0, part_mag = 0;
    for (int64_t kk = k0; kk < k1; ++kk) {
      const int64_t ia = r * c.k + kk, ib = (int64_t(e) * c.n + n) * c.k + kk;
      const double av =
          h.a.empty() ? formats::e4m3_to_float(input_code(kSeedA, ia, c.ints)) : double(h.a[ia]);
      const double bv =
          h.b.empty() ? formats::e4m3_to_float(input_code(kSeedB, ib, c.ints)) : double(h.b[ib]);
      part += av * bv, part_mag += std::fabs(av * bv);
    }
    double f = 1;
    if (c.a_group > 0) {
      f *=
          p.a_scale_host[flashinfer_moe::cuda::act_scale_index(p.args.a_kscale, r, k0 / c.a_group)];
    }
    if (c.b_fmt != WFmt::None) {
      f *= flashinfer_moe::cuda::weight_scale(p.b_scale_view_host, e, n, k0);
    }
    s += part * f, m += part_mag * std::fabs(f);
  }
  *value = s, *magnitude = m;
}

int64_t verify(const Problem& p, double* worst_ratio) {
  *worst_ratio = 0;
  int64_t bad = 0;
  const Case& c = p.c;
  const HostInputs h = c.sampled > 0 ? HostInputs{} : decode_inputs(p);
  const int64_t slice = c.a_group > 0 ? c.a_group : (c.b_fmt != WFmt::None ? c.b_block_cols : 0);
  const int64_t slices = slice > 0 ? (c.k + slice - 1) / slice : 1;
  const double bound = static_cast<double>(c.k + 4 * slices) * 6e-8;
  const bool exact = c.ints && c.pow2_scales;
  auto check_one = [&](int64_t r, int64_t n, float got) {
    double ref, mag;
    reference(p, h, r, n, &ref, &mag);
    const double err = std::fabs(static_cast<double>(got) - ref);
    const double ratio = mag > 0 ? err / mag : err;
    *worst_ratio = std::max(*worst_ratio, std::isnan(got) ? INFINITY : ratio);
    const bool ok = exact ? (err == 0) : (ratio <= bound);
    if (!ok && bad < 3) {
      std::printf("    mismatch at row %lld col %lld: got %.9g want %.9g\n", (long long)r,
                  (long long)n, got, ref);
    }
    bad += ok ? 0 : 1;
  };
  if (c.sampled > 0) {
    for (int s = 0; s < c.sampled && p.total > 0; ++s) {
      const int64_t r = mix_hash(99, 2 * s) % p.total, n = mix_hash(99, 2 * s + 1) % c.n;
      float got;
      CHECK_CUDA(cudaMemcpy(&got, p.out + r * p.ldc + n, 4, cudaMemcpyDeviceToHost));
      check_one(r, n, got);
    }
    return bad;
  }
  std::vector<float> host(std::max<int64_t>(p.max_rows, 1) * p.ldc);
  CHECK_CUDA(cudaMemcpy(host.data(), p.out, host.size() * 4, cudaMemcpyDeviceToHost));
  for (int64_t r = 0; r < p.max_rows; ++r) {
    for (int64_t n = 0; n < p.ldc; ++n) {
      const float got = host[r * p.ldc + n];
      if (r < p.total && n < c.n) {
        check_one(r, n, got);
      } else {
        uint32_t bits;
        std::memcpy(&bits, &got, 4);
        if (bits != 0xffffffffu) {
          if (bad < 3)
            std::printf("    wrote outside the output at row %lld col %lld\n", (long long)r,
                        (long long)n);
          ++bad;
        }
      }
    }
  }
  return bad;
}

int device_sm() {
  int dev = 0, major = 0, minor = 0;
  CHECK_CUDA(cudaGetDevice(&dev));
  CHECK_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  CHECK_CUDA(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  return major * 10 + minor;
}

bool run_correctness(const Case& c) {
  Problem p = make_problem(c);
  const char* why = nullptr;
  if (!sm80::supports(c.tile, p.args, device_sm(), &why)) {
    std::printf("%-50s UNSUPPORTED: %s\n", c.name, why);
    free_problem(p);
    return false;
  }
  const int rc = sm80::launch(c.tile, p.args, nullptr);
  CHECK_CUDA(cudaDeviceSynchronize());
  double worst = 0;
  const int64_t bad = rc == 0 ? verify(p, &worst) : -1;
  std::printf("%-50s rows %4lld n %4lld k %4lld  %s  err/sum|ab| %.1e\n", c.name,
              (long long)p.total, (long long)c.n, (long long)c.k,
              rc != 0 ? "LAUNCH FAILED" : (bad == 0 ? "ok  " : "FAIL"), worst);
  free_problem(p);
  return rc == 0 && bad == 0;
}

// supports() on arguments that must be accepted (want == true) or rejected.
bool run_support(const char* name, sm80::Tile tile, const GroupedGemmArgs& a, bool want) {
  const char* why = nullptr;
  const bool got = sm80::supports(tile, a, device_sm(), &why);
  std::printf("%-50s %s%s%s\n", name, got == want ? "ok   " : "FAIL ",
              got ? "accepted" : "rejected: ", got ? "" : why);
  return got == want;
}

bool run_timing(const Case& c, int iters, float* flush, size_t flush_bytes) {
  Problem p = make_problem(c);
  std::vector<float> ms;
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  bool ok = true;
  for (int i = 0; i < iters + 1; ++i) {  // the first run warms up and builds the schedule
    p.args.schedule_prebuilt = i > 0;
    CHECK_CUDA(cudaMemsetAsync(flush, i, flush_bytes));
    CHECK_CUDA(cudaEventRecord(start));
    ok = ok && sm80::launch(c.tile, p.args, nullptr) == 0;
    CHECK_CUDA(cudaEventRecord(stop));
    CHECK_CUDA(cudaEventSynchronize(stop));
    float t;
    CHECK_CUDA(cudaEventElapsedTime(&t, start, stop));
    if (i > 0) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  const double sec = ms[ms.size() / 2] * 1e-3;
  int64_t active = 0;
  for (int64_t r : c.rows) active += r > 0 ? 1 : 0;
  const double weight_bytes = active * double(c.n) * c.k;
  const double flops = 2.0 * p.total * c.n * c.k;
  double worst = 0;
  const int64_t bad = ok ? verify(p, &worst) : -1;
  std::printf("%-50s rows %5lld %8.1f us  weights %5.0f GB/s (%3.0f%% of 3350) %6.1f TFLOP/s  %s\n",
              c.name, (long long)p.total, sec * 1e6, weight_bytes / sec * 1e-9,
              weight_bytes / sec * 1e-9 / 3350 * 100, flops / sec * 1e-12,
              ok && bad == 0 ? "ok" : "FAIL");
  cudaEventDestroy(start), cudaEventDestroy(stop);
  free_problem(p);
  return ok && bad == 0;
}

Case with_scales(Case c, int64_t a_group, WFmt b_fmt, int64_t br, int64_t bc) {
  c.a_group = a_group, c.b_fmt = b_fmt, c.b_block_rows = br, c.b_block_cols = bc;
  return c;
}

int main() {
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor,
              prop.multiProcessorCount);
  using T = sm80::Tile;
  bool all = true;
  std::vector<Case> cases;
  auto add = [&](Case c) { cases.push_back(c); };
  // name, tile, k_major, ints, n, k, rows, lda_pad, ldc_pad, b_pad, row_slack, a_misalign
  add({"decode K ints, k%16!=0, padded, slack",
       T::Decode,
       true,
       true,
       200,
       1410,
       {3, 0, 16, 1, 21},
       6,
       3,
       6,
       5});
  add({"decode N ints", T::Decode, false, true, 200, 2880, {1, 7, 0, 16}});
  add({"decode K real (all codes)", T::Decode, true, false, 1408, 200, {2, 5, 9}});
  add({"decode K ints, A misaligned (byte path)",
       T::Decode,
       true,
       true,
       64,
       77,
       {5, 3},
       0,
       0,
       0,
       0,
       1});
  add({"decode N ints, B odd stride, odd n", T::Decode, false, true, 201, 300, {4, 4, 4}, 0, 0, 3});
  add({"decode all experts empty", T::Decode, true, true, 64, 64, {0, 0, 0}, 0, 0, 0, 4});
  add({"prefill K ints, padded, slack",
       T::Prefill,
       true,
       true,
       1408,
       200,
       {300, 0, 129},
       8,
       4,
       16,
       7});
  add({"prefill N ints", T::Prefill, false, true, 200, 1408, {130, 77}});
  add({"prefill N real, odd n", T::Prefill, false, false, 517, 2880, {64, 200}, 0, 0, 3});
  add({"prefill K ints, A misaligned, odd k",
       T::Prefill,
       true,
       true,
       136,
       333,
       {150, 9},
       0,
       0,
       0,
       0,
       1});
  // K-slice scales.
  Case dec{"", T::Decode, true, true, 300, 1000, {3, 0, 16, 1, 21}, 24, 3, 24, 5};
  Case pre{"", T::Prefill, true, true, 300, 1000, {200, 0, 129}, 24, 3, 24, 5};
  Case c;
  c = with_scales(dec, 128, WFmt::F32, 128, 128),
  c.name = "decode K ints s128: A grp + W 128x128 f32";
  add(c);
  c.pow2_scales = false, c.ints = false, c.name = "decode K real s128: A grp + W 128x128 f32";
  add(c);
  c = with_scales(dec, 32, WFmt::UE8M0, 1, 32), c.b_swizzled = true, c.a_rows_fastest = true;
  c.name = "decode K ints MXFP8 s32: A (rows fastest) + W ue8m0 swz";
  add(c);
  c.k_major = false, c.ints = false, c.b_pad = 5;
  c.name = "decode N real MXFP8 s32, odd stride";
  add(c);
  c = with_scales(dec, 0, WFmt::BF16, 1, 16), c.pow2_scales = false, c.ints = false;
  c.name = "decode K real s16: W per-row 1x16 bf16 only";
  add(c);
  c = with_scales(dec, 0, WFmt::E4M3, 16, 16), c.name = "decode K ints s16: W 16x16 e4m3 only";
  add(c);
  c = with_scales(dec, 64, WFmt::None, 1, 1), c.a_misalign = 1, c.lda_pad = 3;
  c.name = "decode K ints s64: A only, A misaligned";
  add(c);
  c = with_scales(dec, 16, WFmt::F32, 1, 16), c.k = 40, c.n = 70, c.lda_pad = 0, c.b_pad = 0;
  c.name = "decode K ints s16, k = 40 (idle split warps)";
  add(c);
  c = with_scales(pre, 128, WFmt::F32, 128, 128), c.name = "prefill K ints s128: A + W 128x128";
  add(c);
  c.pow2_scales = false, c.ints = false, c.k_major = false, c.b_pad = 1;
  c.name = "prefill N real s128: A + W 128x128";
  add(c);
  c = with_scales(pre, 32, WFmt::UE8M0, 1, 32), c.b_swizzled = true;
  c.name = "prefill K ints MXFP8 s32";
  add(c);
  c = with_scales(pre, 0, WFmt::F32, 1, 16), c.pow2_scales = false, c.ints = false;
  c.name = "prefill K real s16: W 1x16 only";
  add(c);
  std::printf(
      "-- correctness vs float64 (ints + pow2 scales: exact; else within the fp32 bound)\n");
  for (const Case& cc : cases) all = run_correctness(cc) && all;

  std::printf("-- supports()\n");
  {
    Case base = with_scales(dec, 128, WFmt::F32, 128, 128);
    Problem p = make_problem(base);
    GroupedGemmArgs a = p.args;
    all = run_support("fp8 + scales s128 (decode)", T::Decode, a, true) && all;
    all = run_support("fp8 + scales s128 (prefill)", T::Prefill, a, true) && all;
    a.a_kscale.group = 48, a.b_kscale.block_cols = 48;
    all = run_support("slice 48 (multiple of 16)", T::Decode, a, true) && all;
    a.a_kscale.group = 24, a.b_kscale.block_cols = 24;
    all = run_support("slice 24 (not a multiple of 16)", T::Decode, a, false) && all;
    a.a_kscale.group = 1000, a.b_kscale.block_cols = 1000;
    all = run_support("one slice spanning all of k = 1000", T::Decode, a, true) && all;
    a.a_kscale.group = 128, a.b_kscale.block_cols = 64;
    all = run_support("slices differ (A 128, W 64)", T::Decode, a, false) && all;
    a = p.args;
    const int32_t index[1] = {0};
    a.a_row_index = index;
    all = run_support("fp8 + a_row_index fusion", T::Decode, a, false) && all;
    a = p.args;
    flashinfer_moe::cuda::ActivationParams act{};
    a.activation = &act;
    all = run_support("fp8 + activation fusion", T::Decode, a, false) && all;
    free_problem(p);
  }

  std::printf("-- speed (median, L2 flushed, GEMM kernel alone, schedule prebuilt)\n");
  const size_t flush_bytes = size_t{256} << 20;
  float* flush;
  CHECK_CUDA(cudaMalloc(&flush, flush_bytes));
  auto rows_each = [](int e, int64_t r) { return std::vector<int64_t>(e, r); };
  std::vector<int64_t> sparse(256, 0);
  for (int i = 0; i < 8; ++i) sparse[i * 32] = 1;  // 8 rows over 8 of 256 experts
  struct Timed {
    const char* name;
    Case c;
  };
  std::vector<Timed> timed;
  auto timed_case = [&](const char* name, T tile, bool k_major, int64_t n, int64_t k,
                        std::vector<int64_t> rows, int64_t a_group, WFmt fmt, int64_t br,
                        int64_t bc) {
    Case t{name, tile, k_major, true, n, k, rows};
    t = with_scales(t, a_group, fmt, br, bc);
    t.sampled = 128;
    timed.push_back({name, t});
  };
  timed_case("decode E8 N28672 K4096 4 rows/expert", T::Decode, true, 28672, 4096, rows_each(8, 4),
             0, WFmt::None, 1, 1);
  timed_case("decode E8 N28672 K4096 8 rows/expert", T::Decode, true, 28672, 4096, rows_each(8, 8),
             0, WFmt::None, 1, 1);
  timed_case("decode E8 N28672 K4096 16 rows/expert", T::Decode, true, 28672, 4096,
             rows_each(8, 16), 0, WFmt::None, 1, 1);
  timed_case("decode E8 N28672 K4096 4 r/e s128 A+W128x128", T::Decode, true, 28672, 4096,
             rows_each(8, 4), 128, WFmt::F32, 128, 128);
  timed_case("decode E8 N28672 K4096 16 r/e s128 A+W128x128", T::Decode, true, 28672, 4096,
             rows_each(8, 16), 128, WFmt::F32, 128, 128);
  timed_case("decode E8 N28672 K4096 8 r/e MXFP8 s32", T::Decode, true, 28672, 4096,
             rows_each(8, 8), 32, WFmt::UE8M0, 1, 32);
  timed_case("decode E256 N1024 K2048 8 rows / 8 experts", T::Decode, true, 1024, 2048, sparse, 0,
             WFmt::None, 1, 1);
  timed_case("decode E256 N1024 K2048 8r/8e s128 A+W128x128", T::Decode, true, 1024, 2048, sparse,
             128, WFmt::F32, 128, 128);
  timed_case("decode N-major E8 N4096 K14336 4 rows/expert", T::Decode, false, 4096, 14336,
             rows_each(8, 4), 0, WFmt::None, 1, 1);
  timed_case("prefill E8 N28672 K4096 512 rows/expert", T::Prefill, true, 28672, 4096,
             rows_each(8, 512), 0, WFmt::None, 1, 1);
  timed_case("prefill E8 N28672 K4096 512 r/e s128", T::Prefill, true, 28672, 4096,
             rows_each(8, 512), 128, WFmt::F32, 128, 128);
  for (const Timed& t : timed) {
    all = run_timing(t.c, t.c.tile == T::Decode ? 10 : 3, flush, flush_bytes) && all;
  }
  cudaFree(flush);
  std::printf("%s\n", all ? "ALL CHECKS PASSED" : "SOME CHECKS FAILED");
  return all ? 0 : 1;
}
