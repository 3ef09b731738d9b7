// Standalone check of the FP8 Hopper grouped GEMM configurations
// (src/cuda/gemm/sm90/sm90_fp8_grouped_gemm.h).
//
// 1. supports(): accepts what is compiled, rejects the rest with a reason.
// 2. Correctness against a float64 CPU model, every element, with C padding columns and rows past
//    the last expert poisoned with a sentinel that must survive; uneven rows, empty experts,
//    K / N not multiples of the tile, padded strides:
//    - per-tensor configs: codes are small integers (|v| <= 4, exact in e4m3), so every partial
//      sum is an exact integer and C must equal the model bit for bit;
//    - blockwise: the same codes with random fp32 scales (mantissa and exponent 2^-10..2^10, per
//      row x 128 columns and per 128 x 128 weight block, weight scale experts strided apart);
//      |C - model| <= 1e-5 * sum_k |a b sa sb| (fp32 summation of the scaled K slices).
//    A CUDA-graph replay must reproduce the direct launch bit for bit.
// 3. Timing (cudaEvents; 4096 sampled float64 checks each): TFLOP/s at 8 experts x 2048 rows,
//    N=4096, K=7168, and weight bandwidth (e4m3 bytes streamed / time) at a few rows per expert,
//    as a fraction of a measured device-to-device copy; then the blockwise crossover (swap-AB
//    Blockwise vs BlockwisePrefill, 32..1024 rows per expert) on DeepSeek-V3's expert shapes
//    (E=256, N=4096 K=7168 and N=7168 K=2048, even and uneven rows) and on small experts (E=128,
//    N=1536 K=2048 and N=2048 K=768), with config_for's pick marked '*'.
// Build (any Hopper GPU):
//   nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr
//     -DNDEBUG -DFLASHINFER_MOE_WITH_CUTLASS -DFLASHINFER_MOE_CUDA_ARCHS_STRING='"90a"'
//     -I src -I src/include -I <cutlass>/include [-I <cuda>/include/cccl]
//     tests/cuda/check_sm90_fp8_grouped_gemm.cu src/cuda/gemm/sm90/sm90_fp8_grouped_gemm*.cu -o check
// (each sm90_fp8_grouped_gemm_{prefill,swap_ab,blockwise,blockwise_prefill}.cu is one CUTLASS
// instantiation: compile them with -c in parallel and link.) Argument "quick": correctness only;
// "blockwise": the blockwise configs only. "bw_prefill" ("bw_prefill_quick"): correctness (and
// timing) of Config::BlockwisePrefill only, to compare the candidates of
// sm90_fp8_grouped_gemm_blockwise_prefill.cu, each built with its
// -DFLASHINFER_MOE_FP8_BLOCKWISE_PREFILL_CANDIDATE=i.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/formats.h"
#include "cuda/gemm/sm90/sm90_fp8_grouped_gemm.h"

using flashinfer_moe::DType;
using flashinfer_moe::ScaleFormat;
using flashinfer_moe::ScaleLayout;
using flashinfer_moe::cuda::GroupedGemmArgs;
namespace fp8 = flashinfer_moe::cuda::sm90_fp8;
namespace formats = flashinfer_moe::formats;
using fp8::Config;

#define CHECK_CUDA(x)                                                                      \
  do {                                                                                     \
    cudaError_t e_ = (x);                                                                  \
    if (e_ != cudaSuccess) {                                                               \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
      std::exit(2);                                                                        \
    }                                                                                      \
  } while (0)

namespace {

__host__ __device__ inline uint32_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return static_cast<uint32_t>(x);
}

__host__ __device__ inline uint32_t hash(uint32_t seed, int64_t i) {
  return mix((static_cast<uint64_t>(seed) << 40) ^ static_cast<uint64_t>(i));
}

// Value of code index i: an integer in [-4, 4] (exact in e4m3).
__host__ __device__ inline float code_value(uint32_t seed, int64_t i) {
  return static_cast<float>(static_cast<int>(hash(seed, i) % 9u) - 4);
}

// A scale: mantissa in [1, 2) with 10 random bits, exponent in [-10, 10].
__host__ __device__ inline float scale_value(uint32_t seed, int64_t i) {
  const uint32_t h = hash(seed, i);
  return (1.0f + static_cast<float>(h & 1023u) / 1024.0f) *
         ldexpf(1.0f, static_cast<int>((h >> 10) % 21u) - 10);
}

__global__ void fill_codes(uint8_t* out, int64_t count, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = formats::float_to_e4m3(code_value(seed, i));
}

__global__ void fill_scales(float* out, int64_t count, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = scale_value(seed, i);
}

__global__ void fill_f32(float* out, int64_t count, float v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = v;
}

constexpr uint32_t kSeedA = 11, kSeedB = 22, kSeedSA = 33, kSeedSB = 44;
constexpr float kSentinel = -12345.0f;
constexpr int64_t kBlock = 128;

struct Problem {
  const char* name;
  std::vector<int64_t> rows;  // per expert
  int64_t n, k, lda, ldc, b_stride_n, b_stride_e, extra_rows;
  bool blockwise = false;
};

int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct Buffers {
  uint8_t* a = nullptr;
  uint8_t* b = nullptr;
  float* c = nullptr;
  float* sa = nullptr;  // [max_rows, k_blocks]
  float* sb = nullptr;  // E x [n_blocks, k_blocks], experts sb_stride_e apart
  int64_t* offsets = nullptr;
  void* scratch = nullptr;
  GroupedGemmArgs args;
  std::vector<int64_t> host_offsets;
  int64_t c_count = 0, k_blocks = 0, n_blocks = 0, sb_stride_e = 0;
};

Buffers setup(const Problem& p, Config config) {
  Buffers bf;
  const int32_t e = static_cast<int32_t>(p.rows.size());
  bf.host_offsets.assign(e + 1, 0);
  for (int32_t i = 0; i < e; ++i) bf.host_offsets[i + 1] = bf.host_offsets[i] + p.rows[i];
  const int64_t max_rows = bf.host_offsets[e] + p.extra_rows;
  const int64_t a_count = max_rows * p.lda;
  const int64_t b_count = e * p.b_stride_e;
  bf.c_count = max_rows * p.ldc;
  CHECK_CUDA(cudaMalloc(&bf.a, a_count + 16));
  CHECK_CUDA(cudaMalloc(&bf.b, b_count + 16));
  CHECK_CUDA(cudaMalloc(&bf.c, bf.c_count * 4 + 16));
  CHECK_CUDA(cudaMalloc(&bf.offsets, (e + 1) * sizeof(int64_t)));
  fill_codes<<<1024, 256>>>(bf.a, a_count, kSeedA);
  fill_codes<<<1024, 256>>>(bf.b, b_count, kSeedB);
  fill_f32<<<1024, 256>>>(bf.c, bf.c_count, kSentinel);
  bf.k_blocks = cdiv(p.k, kBlock);
  bf.n_blocks = cdiv(p.n, kBlock);
  bf.sb_stride_e = bf.n_blocks * bf.k_blocks + 3;  // experts not packed: stride_e is free
  if (p.blockwise) {
    const int64_t sa_count = max_rows * bf.k_blocks, sb_count = e * bf.sb_stride_e;
    CHECK_CUDA(cudaMalloc(&bf.sa, sa_count * 4 + 16));
    CHECK_CUDA(cudaMalloc(&bf.sb, sb_count * 4 + 16));
    fill_scales<<<256, 256>>>(bf.sa, sa_count, kSeedSA);
    fill_scales<<<256, 256>>>(bf.sb, sb_count, kSeedSB);
  }
  CHECK_CUDA(cudaGetLastError());
  CHECK_CUDA(cudaMemcpy(bf.offsets, bf.host_offsets.data(), (e + 1) * sizeof(int64_t),
                        cudaMemcpyHostToDevice));
  const size_t ws = fp8::workspace_size(config, e, max_rows);
  CHECK_CUDA(cudaMalloc(&bf.scratch, ws > 0 ? ws : 1));
  GroupedGemmArgs& g = bf.args;
  g.fp8 = true;
  g.a = bf.a;
  g.lda = p.lda;
  g.b = bf.b;
  g.b_stride_e = p.b_stride_e;
  g.b_stride_n = p.b_stride_n;
  g.b_stride_k = 1;
  g.c = bf.c;
  g.ldc = p.ldc;
  g.n = p.n;
  g.k = p.k;
  g.num_experts = e;
  g.row_offsets = bf.offsets;
  g.max_rows = max_rows;
  g.scratch = bf.scratch;
  g.scratch_bytes = ws;
  if (p.blockwise) {
    g.a_kscale.data = bf.sa;
    g.a_kscale.ld = bf.k_blocks;
    g.a_kscale.group = kBlock;
    g.b_kscale.data = bf.sb;
    g.b_kscale.format = static_cast<int32_t>(ScaleFormat::Float);
    g.b_kscale.dtype = static_cast<int32_t>(DType::F32);
    g.b_kscale.layout = static_cast<int32_t>(ScaleLayout::Linear);
    g.b_kscale.stride_e = bf.sb_stride_e;
    g.b_kscale.stride_r = bf.k_blocks;
    g.b_kscale.stride_c = 1;
    g.b_kscale.block_rows = kBlock;
    g.b_kscale.block_cols = kBlock;
  }
  return bf;
}

void release(Buffers& bf) {
  cudaFree(bf.a);
  cudaFree(bf.b);
  cudaFree(bf.c);
  cudaFree(bf.sa);
  cudaFree(bf.sb);
  cudaFree(bf.offsets);
  cudaFree(bf.scratch);
}

// float64 model of C[r, col] for row r of expert ex; *sum_abs = sum_k |a b sa sb|.
double reference(const Problem& p, const Buffers& bf, int32_t ex, int64_t r, int64_t col,
                 double* sum_abs) {
  double acc = 0, mag = 0;
  for (int64_t s = 0; s < bf.k_blocks; ++s) {
    double part = 0, part_abs = 0;
    for (int64_t kk = s * kBlock; kk < p.k && kk < (s + 1) * kBlock; ++kk) {
      const double x = code_value(kSeedA, r * p.lda + kk);
      const double w = code_value(kSeedB, ex * p.b_stride_e + col * p.b_stride_n + kk);
      part += x * w;
      part_abs += std::fabs(x * w);
    }
    double scale = 1;
    if (p.blockwise) {
      scale = static_cast<double>(scale_value(kSeedSA, r * bf.k_blocks + s)) *
              scale_value(kSeedSB, ex * bf.sb_stride_e + (col / kBlock) * bf.k_blocks + s);
    }
    acc += part * scale;
    mag += part_abs * scale;
  }
  *sum_abs = mag;
  return acc;
}

// Compares every element (full) or `samples` random ones; in full mode also the poisoned padding.
bool verify(const Problem& p, const Buffers& bf, bool full, int samples, bool quiet) {
  std::vector<float> c(bf.c_count);
  CHECK_CUDA(cudaMemcpy(c.data(), bf.c, bf.c_count * 4, cudaMemcpyDeviceToHost));
  const int32_t e = static_cast<int32_t>(p.rows.size());
  const double rel_tol = p.blockwise ? 1e-5 : 0.0;  // per-tensor integer sums are exact
  double worst = 0;
  int64_t bad = 0, checked = 0;
  auto check_one = [&](int32_t ex, int64_t r, int64_t col) {
    double mag = 0;
    const double ref = reference(p, bf, ex, r, col, &mag);
    const double err = std::fabs(static_cast<double>(c[r * p.ldc + col]) - ref);
    const double rel = err / (mag + 1e-30);
    worst = rel > worst ? rel : worst;
    if (!(err <= rel_tol * mag)) {
      if (bad < 5)
        std::printf("    mismatch expert %d row %lld col %lld: got %.9g want %.9g\n", ex,
                    (long long)r, (long long)col, c[r * p.ldc + col], ref);
      ++bad;
    }
    ++checked;
  };
  if (full) {
    for (int32_t ex = 0; ex < e; ++ex)
      for (int64_t r = bf.host_offsets[ex]; r < bf.host_offsets[ex + 1]; ++r)
        for (int64_t col = 0; col < p.n; ++col) check_one(ex, r, col);
    const int64_t max_rows = bf.host_offsets[e] + p.extra_rows;
    for (int64_t r = 0; r < max_rows; ++r)
      for (int64_t col = (r < bf.host_offsets[e] ? p.n : 0); col < p.ldc; ++col)
        if (c[r * p.ldc + col] != kSentinel) {
          if (bad < 5)
            std::printf("    clobbered row %lld col %lld\n", (long long)r, (long long)col);
          ++bad;
        }
  } else {
    uint32_t s = 7;
    for (int i = 0; i < samples; ++i) {
      int32_t ex = static_cast<int32_t>(mix(++s) % e);
      while (p.rows[ex] == 0) ex = (ex + 1) % e;
      const int64_t r = bf.host_offsets[ex] + mix(++s) % p.rows[ex];
      check_one(ex, r, mix(++s) % p.n);
    }
  }
  if (!quiet || bad != 0)
    std::printf("  %-40s %s  checked %lld, bad %lld, max |err|/sum|ab| %.2e\n", p.name,
                bad == 0 ? "PASS" : "FAIL", (long long)checked, (long long)bad, worst);
  return bad == 0;
}

bool check_graph_replay(const Buffers& bf, Config config, cudaStream_t stream) {
  std::vector<float> direct(bf.c_count), replay(bf.c_count);
  CHECK_CUDA(cudaMemcpy(direct.data(), bf.c, bf.c_count * 4, cudaMemcpyDeviceToHost));
  fill_f32<<<1024, 256, 0, stream>>>(bf.c, bf.c_count, kSentinel);
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CHECK_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  const int rc = fp8::launch(config, bf.args, stream);
  CHECK_CUDA(cudaStreamEndCapture(stream, &graph));
  if (rc != 0) {
    std::printf("  graph capture: launch returned %d\n", rc);
    return false;
  }
  CHECK_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  CHECK_CUDA(cudaGraphLaunch(exec, stream));
  CHECK_CUDA(cudaStreamSynchronize(stream));
  CHECK_CUDA(cudaMemcpy(replay.data(), bf.c, bf.c_count * 4, cudaMemcpyDeviceToHost));
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  const bool same = std::memcmp(direct.data(), replay.data(), bf.c_count * 4) == 0;
  std::printf("  graph capture + replay bitwise equal to direct launch: %s\n",
              same ? "PASS" : "FAIL");
  return same;
}

bool run_correctness(const Problem& p, Config config, cudaStream_t stream, bool graph) {
  Buffers bf = setup(p, config);
  const char* why = nullptr;
  std::printf(" [%-14s]", fp8::config_name(config));
  if (!fp8::supports(config, bf.args, 90, &why)) {
    std::printf("  %-38s unsupported: %s\n", p.name, why);
    release(bf);
    return false;
  }
  const int rc = fp8::launch(config, bf.args, stream);
  CHECK_CUDA(cudaStreamSynchronize(stream));
  bool ok = rc == 0;
  if (!ok) std::printf("  %s: launch returned %d\n", p.name, rc);
  ok = ok && verify(p, bf, true, 0, false);
  if (ok && graph) ok = check_graph_replay(bf, config, stream);
  release(bf);
  return ok;
}

bool run_timing(const Problem& p, Config config, cudaStream_t stream, int iters, double copy_gbps) {
  Buffers bf = setup(p, config);
  std::printf(" [%-14s]", fp8::config_name(config));
  int rc = fp8::launch(config, bf.args, stream);
  CHECK_CUDA(cudaStreamSynchronize(stream));
  if (rc != 0) {
    std::printf("  %s: launch returned %d\n", p.name, rc);
    release(bf);
    return false;
  }
  const bool ok = verify(p, bf, false, 4096, true);
  cudaEvent_t t0, t1;
  CHECK_CUDA(cudaEventCreate(&t0));
  CHECK_CUDA(cudaEventCreate(&t1));
  CHECK_CUDA(cudaEventRecord(t0, stream));
  for (int i = 0; i < iters; ++i) rc |= fp8::launch(config, bf.args, stream);
  CHECK_CUDA(cudaEventRecord(t1, stream));
  CHECK_CUDA(cudaEventSynchronize(t1));
  float ms = 0;
  CHECK_CUDA(cudaEventElapsedTime(&ms, t0, t1));
  ms /= iters;
  double rows = 0, touched = 0;
  for (int64_t r : p.rows) {
    rows += static_cast<double>(r);
    touched += r > 0 ? 1.0 : 0.0;
  }
  const double flop = 2.0 * rows * p.n * p.k;
  const double gbps = touched * p.n * p.k / (ms * 1e-3) / 1e9;  // one byte per weight
  const bool picked = fp8::config_for(bf.args) == config;
  std::printf("  %-40s %8.1f us %7.1f TFLOP/s %6.0f GB/s weights (%.2f of copy) %s%s\n", p.name,
              ms * 1e3, flop / (ms * 1e-3) / 1e12, gbps, gbps / copy_gbps, picked ? "*" : "",
              ok && rc == 0 ? "" : " FAIL");
  cudaEventDestroy(t0);
  cudaEventDestroy(t1);
  release(bf);
  return ok && rc == 0;
}

Problem dense(const char* name, int32_t experts, int64_t rows, int64_t n, int64_t k, bool bw) {
  return {name, std::vector<int64_t>(experts, rows), n, k, k, n, k, n * k, 0, bw};
}

// Routed-like load: expert e gets a pseudo-random 0..2*avg rows (some experts empty).
Problem uneven(const char* name, int32_t experts, int64_t avg, int64_t n, int64_t k, bool bw) {
  Problem p = dense(name, experts, avg, n, k, bw);
  for (int32_t e = 0; e < experts; ++e) p.rows[e] = hash(99, e) % (2 * avg + 1);
  return p;
}

bool is_blockwise(Config c) { return c == Config::Blockwise || c == Config::BlockwisePrefill; }

// supports() must say yes to what is compiled and no (with a reason) to the rest.
bool check_supports() {
  GroupedGemmArgs g;
  g.fp8 = true;
  g.n = g.k = g.lda = g.ldc = g.b_stride_n = 256;
  g.b_stride_e = 256 * 256;
  g.b_stride_k = 1;
  g.num_experts = 1;
  g.max_rows = 16;
  static float scales[64];
  bool ok = true;
  auto expect = [&](const char* what, Config c, const GroupedGemmArgs& a, int sm, bool want) {
    const char* why = nullptr;
    const bool got = fp8::supports(c, a, sm, &why);
    if (got != want || (!got && why == nullptr)) {
      std::printf("  supports(%s, %s) = %d, want %d (%s)\n", fp8::config_name(c), what, got, want,
                  why ? why : "no reason");
      ok = false;
    }
  };
  expect("per-tensor", Config::PerTensorPrefill, g, 90, true);
  expect("per-tensor", Config::PerTensorSwapAB, g, 90, true);
  expect("per-tensor, no scales", Config::Blockwise, g, 90, false);
  expect("per-tensor, no scales", Config::BlockwisePrefill, g, 90, false);
  expect("sm80", Config::PerTensorPrefill, g, 80, false);
  expect("sm100", Config::PerTensorSwapAB, g, 100, false);
  GroupedGemmArgs t = g;
  t.fp8 = false;
  expect("fp8 false", Config::PerTensorPrefill, t, 90, false);
  t = g;
  t.b_stride_k = 256;
  t.b_stride_n = 1;
  expect("N-major B", Config::PerTensorPrefill, t, 90, false);
  t = g;
  t.k = 40;
  expect("k=40", Config::PerTensorSwapAB, t, 90, false);
  t = g;
  t.lda = 264;
  expect("lda=264", Config::PerTensorSwapAB, t, 90, false);

  GroupedGemmArgs bw = g;  // k = 256: two K blocks; n = 256: two weight row blocks
  bw.a_kscale.data = scales;
  bw.a_kscale.ld = 2;
  bw.a_kscale.group = 128;
  bw.b_kscale.data = scales;
  bw.b_kscale.format = static_cast<int32_t>(ScaleFormat::Float);
  bw.b_kscale.dtype = static_cast<int32_t>(DType::F32);
  bw.b_kscale.layout = static_cast<int32_t>(ScaleLayout::Linear);
  bw.b_kscale.stride_e = 4;
  bw.b_kscale.stride_r = 2;
  bw.b_kscale.stride_c = 1;
  bw.b_kscale.block_rows = bw.b_kscale.block_cols = 128;
  expect("blockwise", Config::Blockwise, bw, 90, true);
  expect("blockwise", Config::BlockwisePrefill, bw, 90, true);
  expect("blockwise sm80", Config::BlockwisePrefill, bw, 80, false);
  expect("blockwise", Config::PerTensorPrefill, bw, 90, false);
  expect("blockwise", Config::PerTensorSwapAB, bw, 90, false);
  GroupedGemmArgs many_rows = bw;  // 4096 rows for 2 experts
  many_rows.num_experts = 2;
  many_rows.max_rows = 4096;
  const bool picks = fp8::config_for(bw) == Config::Blockwise &&
                     fp8::config_for(many_rows) == Config::BlockwisePrefill &&
                     fp8::config_for(g) == Config::PerTensorSwapAB;
  if (!picks) std::printf("  config_for picked the wrong config\n");
  ok = ok && picks;
  t = bw;
  t.a_kscale.rows_fastest = true;
  expect("A scales rows_fastest", Config::Blockwise, t, 90, false);
  expect("A scales rows_fastest", Config::BlockwisePrefill, t, 90, false);
  t = bw;
  t.a_kscale.ld = 4;
  expect("A scales ld=4", Config::Blockwise, t, 90, false);
  expect("A scales ld=4", Config::BlockwisePrefill, t, 90, false);
  t = bw;
  t.a_kscale.group = 32;
  t.b_kscale.block_cols = 32;
  expect("MXFP8 groups of 32", Config::Blockwise, t, 90, false);
  t = bw;
  t.b_kscale.format = static_cast<int32_t>(ScaleFormat::UE8M0);
  expect("UE8M0 weight scales", Config::Blockwise, t, 90, false);
  t = bw;
  t.b_kscale.dtype = static_cast<int32_t>(DType::BF16);
  expect("bf16 weight scales", Config::Blockwise, t, 90, false);
  t = bw;
  t.b_kscale.layout = static_cast<int32_t>(ScaleLayout::Swizzled128x4);
  expect("swizzled weight scales", Config::Blockwise, t, 90, false);
  t = bw;
  t.b_kscale.stride_r = 1;
  t.b_kscale.stride_c = 2;
  expect("N-major weight scales", Config::Blockwise, t, 90, false);
  expect("N-major weight scales", Config::BlockwisePrefill, t, 90, false);
  t = bw;
  t.a_kscale.data = nullptr;
  expect("B scales only", Config::Blockwise, t, 90, false);
  t = bw;
  t.b_kscale.data = nullptr;
  expect("A scales only", Config::Blockwise, t, 90, false);
  std::printf("supports(): %s\n", ok ? "PASS" : "FAIL");
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  const bool prefill_only = std::strncmp(mode, "bw_prefill", 10) == 0;
  const bool quick = std::strcmp(mode, "quick") == 0 || std::strcmp(mode, "bw_prefill_quick") == 0;
  std::vector<Config> configs = {Config::PerTensorPrefill, Config::PerTensorSwapAB,
                                 Config::Blockwise, Config::BlockwisePrefill};
  if (prefill_only) configs = {Config::BlockwisePrefill};
  if (std::strcmp(mode, "blockwise") == 0) configs = {Config::Blockwise, Config::BlockwisePrefill};
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor,
              prop.multiProcessorCount);
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreate(&stream));
  bool ok = check_supports();

  std::printf("correctness (full float64 comparison, poisoned padding):\n");
  // clang-format off
  for (Config c : configs) {
    const bool bw = is_blockwise(c);
    // Uneven rows, empty experts, K not a multiple of 128, N not of the tile, padded strides.
    ok &= run_correctness({"uneven E=6 n=264 k=208 padded", {0, 1, 130, 257, 0, 64}, 264, 208,
                           224, 268, 224, 264 * 224 + 64, 5, bw}, c, stream, true);
    ok &= run_correctness({"E=3 n=512 k=1024 dense", {300, 128, 5}, 512, 1024, 1024, 512, 1024,
                           512 * 1024, 0, bw}, c, stream, false);
    ok &= run_correctness({"E=5 n=136 k=80 small rows", {17, 0, 65, 3, 8}, 136, 80, 96, 140, 96,
                           136 * 96, 3, bw}, c, stream, false);
    ok &= run_correctness({"all experts empty", {0, 0, 0}, 128, 128, 128, 128, 128, 128 * 128, 4,
                           bw}, c, stream, false);
  }
  // clang-format on
  if (quick) {
    std::printf("%s\n", ok ? "ALL PASS" : "SOME CHECKS FAILED");
    return ok ? 0 : 1;
  }

  double copy_gbps = 0;
  {
    const size_t bytes = size_t(2) << 30;
    void *src = nullptr, *dst = nullptr;
    CHECK_CUDA(cudaMalloc(&src, bytes));
    CHECK_CUDA(cudaMalloc(&dst, bytes));
    CHECK_CUDA(cudaMemsetAsync(src, 1, bytes, stream));
    CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
    cudaEvent_t t0, t1;
    CHECK_CUDA(cudaEventCreate(&t0));
    CHECK_CUDA(cudaEventCreate(&t1));
    CHECK_CUDA(cudaEventRecord(t0, stream));
    for (int i = 0; i < 10; ++i)
      CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
    CHECK_CUDA(cudaEventRecord(t1, stream));
    CHECK_CUDA(cudaEventSynchronize(t1));
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, t0, t1));
    copy_gbps = 2.0 * bytes * 10 / (ms * 1e-3) / 1e9;
    std::printf("device-to-device copy, 2 GiB: %.0f GB/s read+write\n", copy_gbps);
    cudaFree(src);
    cudaFree(dst);
  }

  std::printf("timing (cudaEvents; 4096 sampled float64 checks each):\n");
  char name[96];
  const int64_t n = 4096, k = 7168;
  const int64_t rows_list[] = {1, 8, 32, 64, 128, 256, 512, 1024, 2048};
  for (const int32_t experts : {8, 64}) {
    for (int64_t rows : rows_list) {
      if (experts == 64 && rows > 64) continue;
      std::snprintf(name, sizeof(name), "E=%d x %lld rows N=%lld K=%lld", experts, (long long)rows,
                    (long long)n, (long long)k);
      const int iters = rows >= 512 ? 5 : 20;
      for (Config c : configs) {
        if (c == Config::BlockwisePrefill && rows < 32) continue;
        ok &= run_timing(dense(name, experts, rows, n, k, is_blockwise(c)), c, stream, iters,
                         copy_gbps);
      }
    }
  }

  // Blockwise crossover: swap-AB vs prefill tiles by rows per expert.
  struct Shape {
    int32_t experts;
    int64_t n, k;
  };
  const Shape shapes[] = {
      {256, 4096, 7168}, {256, 7168, 2048}, {128, 1536, 2048}, {128, 2048, 768}};
  std::printf("blockwise crossover ('*' = config_for's pick):\n");
  for (const Shape& sh : shapes) {
    for (int64_t rows : {32, 64, 128, 192, 256, 512, 1024}) {
      if (sh.experts == 256 && rows > 256) continue;  // 65536 rows is past any prefill batch
      for (const bool routed : {false, true}) {
        if (routed && (sh.experts != 256 || rows != 128)) continue;
        std::snprintf(name, sizeof(name), "%sE=%d x %lld rows N=%lld K=%lld",
                      routed ? "routed " : "", sh.experts, (long long)rows, (long long)sh.n,
                      (long long)sh.k);
        for (Config c : configs) {
          if (!is_blockwise(c)) continue;
          const Problem p = routed ? uneven(name, sh.experts, rows, sh.n, sh.k, true)
                                   : dense(name, sh.experts, rows, sh.n, sh.k, true);
          ok &= run_timing(p, c, stream, 10, copy_gbps);
        }
      }
    }
  }
  CHECK_CUDA(cudaStreamDestroy(stream));
  std::printf("%s\n", ok ? "ALL PASS" : "SOME CHECKS FAILED");
  return ok ? 0 : 1;
}
