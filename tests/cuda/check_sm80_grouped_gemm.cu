// Standalone check of the portable grouped GEMM (src/cuda/gemm/sm80/sm80_grouped_gemm.h) on one GPU:
//   1. correctness: random grouped problems (bf16 / fp16, K- and N-major B, odd n and k, padded
//      and misaligned strides, empty experts, experts with more rows than a tile) against a
//      float64 CPU computation. Small-integer inputs make fp32 accumulation exact, so those cases
//      must match bit for bit; real-valued cases must stay within the fp32 accumulation bound.
//      Padding and unused C rows are poisoned and must stay untouched.
//   2. a CUDA-graph capture replay must reproduce a direct launch bit for bit;
//   3. speed: decode and prefill shapes timed with cudaEvents (L2 flushed before each run; the
//      GEMM kernel alone, its schedule prebuilt), printing GB/s (all bytes, and the expert weights
//      alone) and TFLOP/s, each also checked on sampled outputs.
// Build: nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -I src/include -I src
//          tests/cuda/check_sm80_grouped_gemm.cu src/cuda/gemm/sm80/sm80_grouped_gemm.cu -o /tmp/chk
// -DFLASHINFER_MOE_SM80_DECODE_STAGES=N: another decode pipeline depth (A/B tuning runs).
// Exit status 0 only when every check passed.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cuda/gemm/sm80/sm80_grouped_gemm.h"

using flashinfer_moe::DType;
using flashinfer_moe::cuda::GroupedGemmArgs;
namespace sm80 = flashinfer_moe::cuda::sm80;

#define CHECK_CUDA(x)                                                                      \
  do {                                                                                     \
    cudaError_t e_ = (x);                                                                  \
    if (e_ != cudaSuccess) {                                                               \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
      std::exit(2);                                                                        \
    }                                                                                      \
  } while (0)

// ---- deterministic inputs, computable on host and device alike -------------------------------

__host__ __device__ inline uint32_t mix_hash(uint64_t seed, uint64_t i) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + i + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return static_cast<uint32_t>((z ^ (z >> 31)) >> 32);
}

// Stored bits of logical element i: small integers in [-2, 2] (exact sums) or uniform [-1, 1).
__host__ __device__ inline uint16_t input_bits(uint64_t seed, uint64_t i, bool ints, bool bf16) {
  const uint32_t h = mix_hash(seed, i);
  const float v = ints ? static_cast<float>(static_cast<int>(h % 5) - 2)
                       : static_cast<float>(h >> 8) * (2.0f / 16777216.0f) - 1.0f;
  if (bf16) {
    const __nv_bfloat16_raw raw = __float2bfloat16_rn(v);
    return raw.x;
  }
  const __half_raw raw = __float2half_rn(v);
  return raw.x;
}

double bits_to_double(uint16_t bits, bool bf16) {
  if (bf16) {
    __nv_bfloat16_raw raw;
    raw.x = bits;
    return __bfloat162float(__nv_bfloat16(raw));
  }
  __half_raw raw;
  raw.x = bits;
  return __half2float(__half(raw));
}

// Writes logical [d0][d1][d2] element (i, j, l) = input_bits(seed, (i*d1 + j)*d2 + l) at
// i*s0 + j*s1 + l*s2; everything else in the buffer keeps its poison.
__global__ void fill_kernel(uint16_t* p, int64_t d0, int64_t d1, int64_t d2, int64_t s0, int64_t s1,
                            int64_t s2, uint64_t seed, bool ints, bool bf16) {
  const int64_t total = d0 * d1 * d2;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t l = i % d2, j = (i / d2) % d1, e = i / (d1 * d2);
    p[e * s0 + j * s1 + l * s2] = input_bits(seed, i, ints, bf16);
  }
}

// ---- one problem ------------------------------------------------------------------------------

struct Case {
  const char* name;
  sm80::Tile tile;
  bool bf16, k_major, ints;
  int64_t n, k;
  std::vector<int64_t> rows;  // per expert
  int64_t lda_pad = 0, ldc_pad = 0, b_pad = 0, row_slack = 0;
  int64_t a_misalign = 0;  // element offset of A's base (1 forces the narrow copy path)
  int sampled = 0;         // 0 = check every element, else this many random elements
};

struct Problem {
  Case c;
  int32_t e = 0;
  int64_t total = 0, max_rows = 0, lda = 0, ldc = 0, bse = 0, bsn = 0, bsk = 0;
  uint16_t *a_alloc = nullptr, *a = nullptr, *b = nullptr;
  float* out = nullptr;
  int64_t* offsets = nullptr;
  void* scratch = nullptr;
  std::vector<int64_t> host_offsets;
  GroupedGemmArgs args;
};

constexpr uint64_t kSeedA = 11, kSeedB = 23;

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
  const size_t a_elems = std::max<int64_t>(p.max_rows, 1) * p.lda + c.a_misalign;
  const size_t b_elems = p.e * p.bse;
  CHECK_CUDA(cudaMalloc(&p.a_alloc, a_elems * 2));
  CHECK_CUDA(cudaMalloc(&p.b, std::max<size_t>(b_elems, 1) * 2));
  CHECK_CUDA(cudaMalloc(&p.out, std::max<int64_t>(p.max_rows, 1) * p.ldc * 4));
  CHECK_CUDA(cudaMalloc(&p.offsets, (p.e + 1) * 8));
  p.a = p.a_alloc + c.a_misalign;
  // Poison: 0x7f7f is a huge bf16 / a NaN fp16, 0xffffffff a NaN float never written by a GEMM.
  CHECK_CUDA(cudaMemset(p.a_alloc, 0x7f, a_elems * 2));
  CHECK_CUDA(cudaMemset(p.b, 0x7f, b_elems * 2));
  CHECK_CUDA(cudaMemset(p.out, 0xff, std::max<int64_t>(p.max_rows, 1) * p.ldc * 4));
  fill_kernel<<<1024, 256>>>(p.a, 1, p.total, c.k, 0, p.lda, 1, kSeedA, c.ints, c.bf16);
  fill_kernel<<<4096, 256>>>(p.b, p.e, c.n, c.k, p.bse, p.bsn, p.bsk, kSeedB, c.ints, c.bf16);
  CHECK_CUDA(cudaGetLastError());
  CHECK_CUDA(cudaMemcpy(p.offsets, p.host_offsets.data(), (p.e + 1) * 8, cudaMemcpyHostToDevice));
  const size_t ws = sm80::workspace_size(c.tile, p.e, p.max_rows);
  CHECK_CUDA(cudaMalloc(&p.scratch, ws));

  GroupedGemmArgs& g = p.args;
  g.a = p.a, g.lda = p.lda, g.dtype = c.bf16 ? DType::BF16 : DType::F16;
  g.b = p.b, g.b_stride_e = p.bse, g.b_stride_n = p.bsn, g.b_stride_k = p.bsk;
  g.c = p.out, g.ldc = p.ldc, g.n = c.n, g.k = c.k, g.num_experts = p.e;
  g.row_offsets = p.offsets, g.max_rows = p.max_rows, g.scratch = p.scratch, g.scratch_bytes = ws;
  return p;
}

void free_problem(Problem& p) {
  cudaFree(p.a_alloc), cudaFree(p.b), cudaFree(p.out), cudaFree(p.offsets), cudaFree(p.scratch);
}

int expert_of_row(const Problem& p, int64_t r) {
  return static_cast<int>(std::upper_bound(p.host_offsets.begin(), p.host_offsets.end(), r) -
                          p.host_offsets.begin() - 1);
}

// Decoded inputs: A [total][k] and B [E][n][k] as doubles (full checks), or empty (sampled
// checks recompute single elements from the hash).
struct HostInputs {
  std::vector<double> a, b;
};

HostInputs decode_inputs(const Problem& p) {
  HostInputs h;
  h.a.resize(p.total * p.c.k);
  h.b.resize(p.e * p.c.n * p.c.k);
  for (size_t i = 0; i < h.a.size(); ++i) {
    h.a[i] = bits_to_double(input_bits(kSeedA, i, p.c.ints, p.c.bf16), p.c.bf16);
  }
  for (size_t i = 0; i < h.b.size(); ++i) {
    h.b[i] = bits_to_double(input_bits(kSeedB, i, p.c.ints, p.c.bf16), p.c.bf16);
  }
  return h;
}

// float64 value of C[r, n] and sum |a||b| (the scale of fp32 rounding error).
void reference(const Problem& p, const HostInputs& h, int64_t r, int64_t n, double* value,
               double* magnitude) {
  const int64_t e = expert_of_row(p, r), k = p.c.k;
  double s = 0, m = 0;
  for (int64_t kk = 0; kk < k; ++kk) {
    double av, bv;
    if (h.a.empty()) {
      av = bits_to_double(input_bits(kSeedA, r * k + kk, p.c.ints, p.c.bf16), p.c.bf16);
      bv = bits_to_double(input_bits(kSeedB, (e * p.c.n + n) * k + kk, p.c.ints, p.c.bf16),
                          p.c.bf16);
    } else {
      av = h.a[r * k + kk];
      bv = h.b[(e * p.c.n + n) * k + kk];
    }
    s += av * bv;
    m += std::fabs(av * bv);
  }
  *value = s, *magnitude = m;
}

// Compares the GEMM output with the reference; returns the number of bad elements.
int64_t verify(const Problem& p, double* worst_ratio) {
  const HostInputs h = p.c.sampled > 0 ? HostInputs{} : decode_inputs(p);
  *worst_ratio = 0;
  int64_t bad = 0;
  const double bound = static_cast<double>(p.c.k) * 6e-8;  // fp32 accumulation, |err|/sum|ab|
  auto check_one = [&](int64_t r, int64_t n, float got) {
    double ref, mag;
    reference(p, h, r, n, &ref, &mag);
    const double err = std::fabs(static_cast<double>(got) - ref);
    const double ratio = mag > 0 ? err / mag : err;
    *worst_ratio = std::max(*worst_ratio, std::isnan(got) ? INFINITY : ratio);
    const bool ok = p.c.ints ? (err == 0) : (ratio <= bound);
    if (!ok && bad < 3) {
      std::printf("    mismatch at row %lld col %lld: got %g want %g\n", (long long)r, (long long)n,
                  got, ref);
    }
    bad += ok ? 0 : 1;
  };
  if (p.c.sampled > 0) {
    for (int s = 0; s < p.c.sampled && p.total > 0; ++s) {
      const int64_t r = mix_hash(99, 2 * s) % p.total, n = mix_hash(99, 2 * s + 1) % p.c.n;
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
      if (r < p.total && n < p.c.n) {
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

// ---- the checks ---------------------------------------------------------------------------------

bool run_correctness(const Case& c) {
  Problem p = make_problem(c);
  const char* why = nullptr;
  int dev = 0, major = 0, minor = 0;
  CHECK_CUDA(cudaGetDevice(&dev));
  CHECK_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  CHECK_CUDA(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  if (!sm80::supports(c.tile, p.args, major * 10 + minor, &why)) {
    std::printf("%-44s UNSUPPORTED: %s\n", c.name, why);
    free_problem(p);
    return false;
  }
  const int rc = sm80::launch(c.tile, p.args, nullptr);
  CHECK_CUDA(cudaDeviceSynchronize());
  double worst = 0;
  const int64_t bad = rc == 0 ? verify(p, &worst) : -1;
  std::printf("%-44s rows %5lld n %5lld k %5lld  %s  max|err|/sum|ab| %.2e\n", c.name,
              (long long)p.total, (long long)c.n, (long long)c.k,
              rc != 0 ? "LAUNCH FAILED" : (bad == 0 ? "ok  " : "FAIL"), worst);
  free_problem(p);
  return rc == 0 && bad == 0;
}

// Captures one launch into a CUDA graph, replays it twice and compares with a direct launch.
bool run_graph_replay(const Case& c) {
  Problem p = make_problem(c);
  const size_t bytes = p.max_rows * p.ldc * 4;
  std::vector<char> direct(bytes), replay(bytes);
  cudaStream_t s;
  CHECK_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  bool ok = sm80::launch(c.tile, p.args, s) == 0;
  CHECK_CUDA(cudaStreamSynchronize(s));
  CHECK_CUDA(cudaMemcpy(direct.data(), p.out, bytes, cudaMemcpyDeviceToHost));
  CHECK_CUDA(cudaMemset(p.out, 0xff, bytes));  // the same poison as before the direct run
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CHECK_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  ok = ok && sm80::launch(c.tile, p.args, s) == 0;
  CHECK_CUDA(cudaStreamEndCapture(s, &graph));
  CHECK_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  CHECK_CUDA(cudaGraphLaunch(exec, s));
  CHECK_CUDA(cudaGraphLaunch(exec, s));
  CHECK_CUDA(cudaStreamSynchronize(s));
  CHECK_CUDA(cudaMemcpy(replay.data(), p.out, bytes, cudaMemcpyDeviceToHost));
  ok = ok && std::memcmp(direct.data(), replay.data(), bytes) == 0;
  std::printf("%-44s %s\n", "graph capture replay == direct launch (bits)", ok ? "ok" : "FAIL");
  cudaGraphExecDestroy(exec), cudaGraphDestroy(graph), cudaStreamDestroy(s);
  free_problem(p);
  return ok;
}

// Rows per expert when T tokens pick k experts round robin (token t: experts (t*k + j) mod E).
std::vector<int64_t> round_robin_rows(int e, int k, int64_t t) {
  std::vector<int64_t> rows(e, 0);
  for (int64_t i = 0; i < t * k; ++i) rows[i % e] += 1;
  return rows;
}

// Times the GEMM kernel alone: the first (warm-up) launch builds the schedule, later ones reuse
// it as prebuilt (as the fused pipeline does, where the permutation writes it).
bool run_timing(const Case& c, int iters, float* flush, size_t flush_bytes) {
  Problem p = make_problem(c);
  std::vector<float> ms;
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  bool ok = true;
  for (int i = 0; i < iters + 1; ++i) {  // the first run warms up
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
  const double bytes =
      active * double(c.n) * c.k * 2 + double(p.total) * c.k * 2 + double(p.total) * c.n * 4;
  const double flops = 2.0 * p.total * c.n * c.k;
  double worst = 0;
  const int64_t bad = ok ? verify(p, &worst) : -1;
  const double weight_bytes = active * double(c.n) * c.k * 2;
  std::printf("%-44s rows %5lld %9.1f us %8.0f GB/s (weights %5.0f) %7.1f TFLOP/s  check %s\n",
              c.name, (long long)p.total, sec * 1e6, bytes / sec * 1e-9, weight_bytes / sec * 1e-9,
              flops / sec * 1e-12, ok && bad == 0 ? "ok" : "FAIL");
  cudaEventDestroy(start), cudaEventDestroy(stop);
  free_problem(p);
  return ok && bad == 0;
}

// argv[1] == "decode" / "prefill": only the cases of that tile (tuning runs); default all.
int main(int argc, char** argv) {
  const bool only_decode = argc > 1 && std::strcmp(argv[1], "decode") == 0;
  const bool only_prefill = argc > 1 && std::strcmp(argv[1], "prefill") == 0;
  auto wanted = [&](sm80::Tile t) {
    return !(only_decode && t != sm80::Tile::Decode) && !(only_prefill && t != sm80::Tile::Prefill);
  };
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor,
              prop.multiProcessorCount);
  using T = sm80::Tile;
  bool all = true;
  std::vector<Case> cases = {
      {"decode bf16 K-major ints, k%8!=0, padded",
       T::Decode,
       true,
       true,
       true,
       200,
       1410,
       {3, 0, 16, 1, 21},
       6,
       3,
       6,
       5},
      {"decode fp16 N-major ints", T::Decode, false, false, true, 200, 2880, {1, 7, 0, 16}},
      {"decode bf16 K-major real", T::Decode, true, true, false, 1408, 200, {2, 5, 9}},
      {"decode fp16 K-major ints, A misaligned",
       T::Decode,
       false,
       true,
       true,
       64,
       77,
       {5, 3},
       0,
       0,
       0,
       0,
       1},
      {"decode bf16 N-major ints, B odd stride", T::Decode, true, false, true, 201, 300, {4, 4, 4}},
      {"decode bf16 all experts empty", T::Decode, true, true, true, 64, 64, {0, 0, 0}, 0, 0, 0, 4},
      {"prefill bf16 K-major ints, padded, slack",
       T::Prefill,
       true,
       true,
       true,
       1408,
       200,
       {300, 0, 129},
       8,
       4,
       16,
       7},
      {"prefill fp16 N-major ints", T::Prefill, false, false, true, 200, 1408, {130, 77}},
      {"prefill bf16 N-major real, n%8!=0",
       T::Prefill,
       true,
       false,
       false,
       517,
       2880,
       {64, 200},
       0,
       0,
       3},
      {"prefill fp16 K-major ints, A misaligned",
       T::Prefill,
       false,
       true,
       true,
       136,
       333,
       {150, 9},
       0,
       0,
       0,
       0,
       1},
      {"prefill bf16 K-major ints, k%8!=0, padded",
       T::Prefill,
       true,
       true,
       true,
       96,
       1001,
       {33, 140},
       7,
       0,
       7},
      {"prefill bf16 K-major ints, odd strides", T::Prefill, true, true, true, 150, 1001, {129, 1}},
      {"decode fp16 N-major ints, n%8!=0, padded",
       T::Decode,
       false,
       false,
       true,
       77,
       515,
       {16, 17},
       5,
       0,
       3},
  };
  std::printf("-- correctness vs float64 (ints: exact; real: within k * 6e-8 * sum|ab|)\n");
  for (const Case& c : cases) {
    if (wanted(c.tile)) all = run_correctness(c) && all;
  }
  if (!only_decode && !only_prefill) all = run_graph_replay(cases[6]) && all;

  std::printf("-- speed (median, L2 flushed; GB/s counts active expert weights + A + C)\n");
  const size_t flush_bytes = size_t{256} << 20;
  float* flush;
  CHECK_CUDA(cudaMalloc(&flush, flush_bytes));
  struct Shape {
    const char* name;
    int e, topk;
    int64_t n, k;
    bool k_major;
  };
  const Shape mixtral{"E8 k2 H4096 N28672", 8, 2, 28672, 4096, true};
  const Shape fine{"E128 k8 H2048 N1536", 128, 8, 1536, 2048, true};
  const Shape w_out{"E8 k2 W_out N-major N4096 K14336", 8, 2, 4096, 14336, false};
  // The fused pipeline's GEMM2 (K-major W2) of Mixtral and Qwen3-30B, and DeepSeek-V3's GEMMs.
  const Shape mixtral2{"E8 k2 GEMM2 N4096 K14336", 8, 2, 4096, 14336, true};
  const Shape fine2{"E128 k8 GEMM2 N2048 K768", 128, 8, 2048, 768, true};
  const Shape dsv3_1{"E256 k8 GEMM1 N4096 K7168", 256, 8, 4096, 7168, true};
  const Shape dsv3_2{"E256 k8 GEMM2 N7168 K2048", 256, 8, 7168, 2048, true};
  struct Timed {
    T tile;
    const Shape* shape;
    int64_t tokens;
  };
  const Timed timed[] = {
      {T::Decode, &mixtral, 1},  {T::Decode, &mixtral, 4},     {T::Decode, &mixtral, 16},
      {T::Decode, &fine, 1},     {T::Decode, &fine, 4},        {T::Decode, &fine, 16},
      {T::Decode, &w_out, 1},    {T::Decode, &w_out, 16},      {T::Decode, &mixtral, 64},
      {T::Decode, &mixtral2, 1}, {T::Decode, &mixtral2, 4},    {T::Decode, &mixtral2, 16},
      {T::Decode, &fine2, 1},    {T::Decode, &fine2, 4},       {T::Decode, &fine2, 16},
      {T::Decode, &dsv3_1, 1},   {T::Decode, &dsv3_1, 16},     {T::Decode, &dsv3_2, 1},
      {T::Decode, &dsv3_2, 16},  {T::Prefill, &mixtral, 64},   {T::Decode, &fine, 256},
      {T::Prefill, &fine, 256},  {T::Prefill, &mixtral, 2048}, {T::Prefill, &fine, 2048},
  };
  char name[128];
  for (const Timed& t : timed) {
    if (!wanted(t.tile)) continue;
    const Shape& s = *t.shape;
    const bool decode = t.tile == T::Decode;
    std::snprintf(name, sizeof(name), "%s %s T=%lld", decode ? "decode " : "prefill", s.name,
                  (long long)t.tokens);
    Case c{name, t.tile, true, s.k_major, true, s.n, s.k, round_robin_rows(s.e, s.topk, t.tokens)};
    c.sampled = 256;
    all = run_timing(c, decode ? 10 : 3, flush, flush_bytes) && all;
  }
  cudaFree(flush);
  std::printf("%s\n", all ? "ALL CHECKS PASSED" : "SOME CHECKS FAILED");
  return all ? 0 : 1;
}
