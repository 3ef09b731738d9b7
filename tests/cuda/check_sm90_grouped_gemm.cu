// Standalone check of the Hopper grouped GEMM family (src/cuda/gemm/sm90/sm90_grouped_gemm.cu).
//
// Every configuration (sm90::Config: Prefill, SwapAB, SwapABWide) is checked:
// 1. Correctness: random grouped problems (uneven rows, experts with 0 rows, K and N not
//    multiples of the tile, padded strides, bf16 and fp16) against a float64 CPU computation;
//    C rows past the last expert and padding columns must stay untouched; a CUDA-graph replay
//    must reproduce the direct launch bit for bit.
// 2. Timing (cudaEvents), sampled float64 check of each: the memory-bound middle (rows/expert
//    8..256 on E=8 N=28672 K=4096 and E=128 N=1536 K=2048) as GB/s of weights streamed and the
//    fraction of the `FMOE_HBM_GBPS` datasheet bandwidth (default 4800, H200), and prefill
//    shapes as TFLOP/s.
//
// Inputs are k/64 with |k| <= 64 (exact in bf16/fp16), generated on the device from a hash of
// the storage index; the host recomputes any element from its index, so big problems need no
// host copies. Build (any Hopper GPU):
//   nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr
//     -DNDEBUG -DFLASHINFER_MOE_WITH_CUTLASS -DFLASHINFER_MOE_CUDA_ARCHS_STRING='"90a"'
//     -I src -I src/include -I <cutlass>/include [-I <cuda>/include/cccl]
//     tests/cuda/check_sm90_grouped_gemm.cu src/cuda/gemm/sm90/sm90_grouped_gemm*.cu -o check_sm90
// (each src/cuda/gemm/sm90/sm90_grouped_gemm*.cu is one CUTLASS instantiation: compile them with -c in
// parallel and link.) Argument "quick": correctness only.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cuda/gemm/sm90/sm90_grouped_gemm.h"

using flashinfer_moe::DType;
using flashinfer_moe::cuda::GroupedGemmArgs;
namespace sm90 = flashinfer_moe::cuda::sm90;
using sm90::Config;

constexpr Config kAllConfigs[] = {Config::Prefill, Config::SwapAB, Config::SwapABWide};

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

// The value stored at index i of a buffer with this seed: k/64, k in [-64, 64].
__host__ __device__ inline float value_at(uint32_t seed, int64_t i) {
  const uint32_t h = mix((static_cast<uint64_t>(seed) << 40) ^ static_cast<uint64_t>(i));
  return static_cast<float>(static_cast<int>(h % 129u) - 64) / 64.0f;
}

__global__ void fill(uint16_t* out, int64_t count, uint32_t seed, bool bf16) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float v = value_at(seed, i);
    if (bf16) {
      uint32_t bits;
      memcpy(&bits, &v, 4);
      out[i] = static_cast<uint16_t>(bits >> 16);  // exact: v has <= 7 significant bits
    } else {
      out[i] = __half_as_ushort(__float2half_rn(v));
    }
  }
}

__global__ void fill_f32(float* out, int64_t count, float v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = v;
}

constexpr uint32_t kSeedA = 11, kSeedB = 22;
constexpr float kSentinel = -12345.0f;

struct Problem {
  const char* name;
  DType dtype;
  std::vector<int64_t> rows;  // per expert
  int64_t n, k, lda, ldc, b_stride_n, b_stride_e, extra_rows;
};

struct Buffers {
  uint16_t* a = nullptr;
  uint16_t* b = nullptr;
  float* c = nullptr;
  int64_t* offsets = nullptr;
  void* scratch = nullptr;
  GroupedGemmArgs args;
  std::vector<int64_t> host_offsets;
  int64_t c_count = 0;
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
  CHECK_CUDA(cudaMalloc(&bf.a, a_count * 2 + 16));
  CHECK_CUDA(cudaMalloc(&bf.b, b_count * 2 + 16));
  CHECK_CUDA(cudaMalloc(&bf.c, bf.c_count * 4 + 16));
  CHECK_CUDA(cudaMalloc(&bf.offsets, (e + 1) * sizeof(int64_t)));
  const bool is_bf16 = p.dtype == DType::BF16;
  fill<<<1024, 256>>>(bf.a, a_count, kSeedA, is_bf16);
  fill<<<1024, 256>>>(bf.b, b_count, kSeedB, is_bf16);
  fill_f32<<<1024, 256>>>(bf.c, bf.c_count, kSentinel);
  CHECK_CUDA(cudaGetLastError());
  CHECK_CUDA(cudaMemcpy(bf.offsets, bf.host_offsets.data(), (e + 1) * sizeof(int64_t),
                        cudaMemcpyHostToDevice));
  const size_t ws = sm90::workspace_size(config, e, max_rows);
  CHECK_CUDA(cudaMalloc(&bf.scratch, ws));
  GroupedGemmArgs& g = bf.args;
  g.a = bf.a;
  g.lda = p.lda;
  g.dtype = p.dtype;
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
  return bf;
}

void release(Buffers& bf) {
  cudaFree(bf.a);
  cudaFree(bf.b);
  cudaFree(bf.c);
  cudaFree(bf.offsets);
  cudaFree(bf.scratch);
}

// float64 reference of C[r, col] for row r of expert ex.
double reference(const Problem& p, int32_t ex, int64_t r, int64_t col, double* sum_abs) {
  double acc = 0, mag = 0;
  for (int64_t kk = 0; kk < p.k; ++kk) {
    const double x = value_at(kSeedA, r * p.lda + kk);
    const double w = value_at(kSeedB, ex * p.b_stride_e + col * p.b_stride_n + kk);
    acc += x * w;
    mag += std::fabs(x * w);
  }
  *sum_abs = mag;
  return acc;
}

// Compares every element (full) or `samples` random ones; checks untouched padding in full mode.
bool verify(const Problem& p, const Buffers& bf, bool full, int samples, bool quiet) {
  std::vector<float> c(bf.c_count);
  CHECK_CUDA(cudaMemcpy(c.data(), bf.c, bf.c_count * 4, cudaMemcpyDeviceToHost));
  const int32_t e = static_cast<int32_t>(p.rows.size());
  double worst = 0;
  int64_t bad = 0, checked = 0;
  auto check_one = [&](int32_t ex, int64_t r, int64_t col) {
    double mag = 0;
    const double ref = reference(p, ex, r, col, &mag);
    const double err = std::fabs(c[r * p.ldc + col] - ref);
    const double rel = err / (mag + 1e-30);
    worst = rel > worst ? rel : worst;
    if (err > 1e-5 * mag + 1e-6) {
      if (bad < 5)
        std::printf("    mismatch expert %d row %lld col %lld: got %.8g want %.8g\n", ex,
                    (long long)r, (long long)col, c[r * p.ldc + col], ref);
      ++bad;
    }
    ++checked;
  };
  if (full) {
    for (int32_t ex = 0; ex < e; ++ex)
      for (int64_t r = bf.host_offsets[ex]; r < bf.host_offsets[ex + 1]; ++r)
        for (int64_t col = 0; col < p.n; ++col) check_one(ex, r, col);
    // Padding columns and rows past the last expert keep the sentinel.
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
    std::printf("  %-38s %s  checked %lld, bad %lld, max |err|/sum|ab| %.2e\n", p.name,
                bad == 0 ? "PASS" : "FAIL", (long long)checked, (long long)bad, worst);
  return bad == 0;
}

// Graph capture + replay must give the same bits as the direct launch.
bool check_graph_replay(const Buffers& bf, Config config, cudaStream_t stream) {
  std::vector<float> direct(bf.c_count), replay(bf.c_count);
  CHECK_CUDA(cudaMemcpy(direct.data(), bf.c, bf.c_count * 4, cudaMemcpyDeviceToHost));
  fill_f32<<<1024, 256, 0, stream>>>(bf.c, bf.c_count, kSentinel);
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CHECK_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  const int rc = sm90::launch(config, bf.args, stream);
  CHECK_CUDA(cudaStreamEndCapture(stream, &graph));
  if (rc != 0) {
    std::printf("  graph capture: launch returned %d (%s)\n", rc,
                cudaGetErrorString(static_cast<cudaError_t>(rc)));
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
  std::printf(" [%s]", sm90::config_name(config));
  if (!sm90::supports(config, bf.args, 90, &why)) {
    std::printf("  %-34s unsupported: %s\n", p.name, why);
    release(bf);
    return false;
  }
  const int rc = sm90::launch(config, bf.args, stream);
  CHECK_CUDA(cudaStreamSynchronize(stream));
  bool ok = rc == 0;
  if (!ok) std::printf("  %s: launch returned %d\n", p.name, rc);
  ok = ok && verify(p, bf, true, 0, false);
  if (ok && graph) ok = check_graph_replay(bf, config, stream);
  release(bf);
  return ok;
}

// Times `config` on `p`; prints TFLOP/s and GB/s of weights (every expert with rows streams its
// whole [n, k] matrix at least once) with the fraction of `hbm_gbps`.
bool run_timing(const Problem& p, Config config, cudaStream_t stream, int iters, double hbm_gbps) {
  Buffers bf = setup(p, config);
  std::printf(" [%-16s]", sm90::config_name(config));
  int rc = sm90::launch(config, bf.args, stream);  // warm-up (and correctness sample)
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
  for (int i = 0; i < iters; ++i) rc |= sm90::launch(config, bf.args, stream);
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
  const double gbps = touched * p.n * p.k * 2.0 / (ms * 1e-3) / 1e9;
  std::printf("  %-38s %8.1f us  %6.1f TFLOP/s  %6.0f GB/s weights (%.2f of %.0f)  rc %d\n", p.name,
              ms * 1e3, flop / (ms * 1e-3) / 1e12, gbps, gbps / hbm_gbps, hbm_gbps, rc);
  cudaEventDestroy(t0);
  cudaEventDestroy(t1);
  release(bf);
  return ok && rc == 0;
}

}  // namespace

// Uniform rows per expert, dense strides: the timing shapes.
Problem dense(const char* name, int32_t experts, int64_t rows, int64_t n, int64_t k) {
  return {name, DType::BF16, std::vector<int64_t>(experts, rows), n, k, k, n, k, n * k, 0};
}

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "quick") == 0;
  const char* bw_env = std::getenv("FMOE_HBM_GBPS");
  const double hbm_gbps = bw_env != nullptr ? std::atof(bw_env) : 4800.0;
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor,
              prop.multiProcessorCount);
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreate(&stream));
  bool ok = true;

  // supports() says no where it must.
  {
    GroupedGemmArgs g;
    g.dtype = DType::BF16;
    g.n = g.k = g.lda = g.ldc = g.b_stride_n = 64;
    g.b_stride_e = 64 * 64;
    g.b_stride_k = 1;
    g.num_experts = 1;
    const char* why = nullptr;
    const bool base = sm90::supports(g, 90, &why);
    bool all_bf16 = true;
    for (Config c : kAllConfigs) all_bf16 = all_bf16 && sm90::supports(c, g, 90, nullptr);
    const bool sm80 = sm90::supports(g, 80, nullptr);
    g.dtype = DType::F16;
    const bool f16_prefill = sm90::supports(Config::Prefill, g, 90, nullptr);
    const bool f16_swap = sm90::supports(Config::SwapAB, g, 90, nullptr);
    g.dtype = DType::BF16;
    g.b_stride_k = 64;
    g.b_stride_n = 1;
    const bool n_major = sm90::supports(g, 90, nullptr);
    g.b_stride_k = 1;
    g.b_stride_n = 64;
    g.k = 60;
    const bool odd_k = sm90::supports(g, 90, nullptr);
    const bool pass = base && all_bf16 && f16_prefill && !f16_swap && !sm80 && !n_major && !odd_k;
    std::printf(
        "supports(): base %d all-configs %d sm80 %d f16 prefill %d f16 swap_ab %d "
        "n-major-B %d k=60 %d -> %s\n",
        base, all_bf16, sm80, f16_prefill, f16_swap, n_major, odd_k, pass ? "PASS" : "FAIL");
    ok = ok && pass;
  }

  std::printf("correctness (full float64 comparison):\n");
  // One problem per statement reads better than one field per line.
  // clang-format off
  for (Config c : kAllConfigs) {
    // Uneven rows, empty experts, K not a multiple of 64, N not a multiple of 256, padding.
    ok &= run_correctness({"bf16 uneven E=6 n=264 k=200 padded", DType::BF16,
                           {0, 1, 130, 257, 0, 64}, 264, 200, 208, 268, 216, 264 * 216 + 64, 5},
                          c, stream, true);
    ok &= run_correctness({"bf16 E=3 n=512 k=1024 dense", DType::BF16, {300, 128, 5}, 512, 1024,
                           1024, 512, 1024, 512 * 1024, 0},
                          c, stream, false);
    ok &= run_correctness({"bf16 E=5 n=136 k=72 small rows", DType::BF16, {17, 0, 65, 3, 8}, 136,
                           72, 72, 140, 80, 136 * 80, 3},
                          c, stream, false);
    ok &= run_correctness({"bf16 all experts empty", DType::BF16, {0, 0, 0}, 64, 64, 64, 64, 64,
                           64 * 64, 4},
                          c, stream, false);
  }
  ok &= run_correctness({"fp16 uneven E=4 n=136 k=72", DType::F16, {17, 0, 200, 3}, 136, 72, 72,
                         140, 80, 136 * 80, 3},
                        Config::Prefill, stream, false);
  // clang-format on
  if (quick) {
    CHECK_CUDA(cudaStreamDestroy(stream));
    std::printf("%s\n", ok ? "ALL PASS" : "SOME CHECKS FAILED");
    return ok ? 0 : 1;
  }

  // What the card streams: a large device-to-device copy, bytes read + written.
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
    const double gbps = 2.0 * bytes * 10 / (ms * 1e-3) / 1e9;
    std::printf("device-to-device copy, 2 GiB: %.0f GB/s read+write (%.2f of %.0f)\n", gbps,
                gbps / hbm_gbps, hbm_gbps);
    cudaFree(src);
    cudaFree(dst);
  }

  std::printf("timing, memory-bound middle (cudaEvents; 4096 sampled float64 checks each):\n");
  const int64_t rows_per_expert[] = {1, 2, 4, 8, 16, 32, 64, 96, 128, 192, 256};
  // Mixtral-like GEMM1, Qwen3-30B-like GEMM1, DeepSeek-V3-like GEMM1 (E, n, k).
  const int64_t shapes[][3] = {{8, 28672, 4096}, {128, 1536, 2048}, {256, 4096, 7168}};
  char name[96];
  for (const auto& shape : shapes) {
    const int32_t experts = static_cast<int32_t>(shape[0]);
    const int64_t n = shape[1], k = shape[2];
    for (int64_t rows : rows_per_expert) {
      std::snprintf(name, sizeof(name), "E=%d x %lld rows N=%lld K=%lld", experts, (long long)rows,
                    (long long)n, (long long)k);
      for (Config c : {Config::Prefill, Config::SwapAB, Config::SwapABWide})
        ok &= run_timing(dense(name, experts, rows, n, k), c, stream, 20, hbm_gbps);
    }
  }
  std::printf("timing, prefill (cudaEvents; 4096 sampled float64 checks each):\n");
  const Problem prefill[] = {dense("E=8 x 2048 rows N=28672 K=4096", 8, 2048, 28672, 4096),
                             dense("E=128 x 256 rows N=1536 K=2048", 128, 256, 1536, 2048),
                             dense("E=128 x 512 rows N=1536 K=2048", 128, 512, 1536, 2048),
                             dense("E=128 x 512 rows N=2048 K=768", 128, 512, 2048, 768),
                             dense("E=256 x 256 rows N=4096 K=7168", 256, 256, 4096, 7168)};
  for (const Problem& p : prefill) ok &= run_timing(p, Config::Prefill, stream, 10, hbm_gbps);
  CHECK_CUDA(cudaStreamDestroy(stream));
  std::printf("%s\n", ok ? "ALL PASS" : "SOME CHECKS FAILED");
  return ok ? 0 : 1;
}
