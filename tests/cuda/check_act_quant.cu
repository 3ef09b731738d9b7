// Standalone check of the FP8 activation quantization (src/cuda/act_quant.cuh) and of the kernels
// that use it: the gather (GEMM1's input), the activation kernel (GEMM2's input) and finalize's
// GEMM2 dequantization.
//   1. host: the scale rules and row plans of act_quant.cuh, run on the host, must give bitwise
//      the values of the CPU executor's cpu::quantize_row (src/cpu/act_quant.cpp) on random rows
//      (zeros, subnormals, huge values, inf, NaN, odd lengths, every mode and chunk width);
//   2. device (nvcc builds only, when a GPU is present): the kernels' codes and scales must equal
//      a host model of the same row quantization bit for bit (exact-arithmetic activations; the
//      transcendental ones may flip a code by one step), rows past the kept count untouched.
// Host only: g++ -O2 -std=c++17 -ffp-contract=off -x c++ -I src/include -I src
//              tests/cuda/check_act_quant.cu src/cpu/act_quant.cpp -o /tmp/chk_host
// Device:    nvcc -O3 -std=c++17 --expt-relaxed-constexpr -gencode=arch=compute_90a,code=sm_90a
//              -I src/include -I src tests/cuda/check_act_quant.cu src/cuda/permute/gather_kernel.cu
//              src/cuda/epilogue/activation_kernel.cu src/cuda/finalize/finalize_kernel.cu src/cpu/act_quant.cpp
//              -o /tmp/chk
// Exit status 0 only when every check passed.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "common/activation_math.h"
#include "common/formats.h"
#include "cpu/act_quant.h"
#include "cuda/act_quant.cuh"
#include "cuda/fp8_operands.h"

using namespace flashinfer_moe;
using cuda::ActQuantOut;
namespace aq = cuda::act_quant;

namespace {

int g_failures = 0;

void fail(const char* what) {
  if (++g_failures <= 20) std::printf("FAIL: %s\n", what);
}

struct Rng {
  uint64_t s;
  uint32_t next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(s >> 33);
  }
  float uniform() { return static_cast<float>(next() >> 8) * (1.0f / 16777216.0f); }  // [0, 1)
};

bool same_bits(float a, float b) {
  return (a != a && b != b) || formats::float_bits(a) == formats::float_bits(b);
}

// A row of K values of one of several kinds that stress the scale rules.
std::vector<float> random_row(Rng& rng, int64_t K, int kind) {
  std::vector<float> x(K);
  for (int64_t i = 0; i < K; ++i) {
    const float u = rng.uniform() * 2.0f - 1.0f;
    switch (kind) {
      case 0:  // ordinary magnitudes
        x[i] = u * 3.0f;
        break;
      case 1:  // wide dynamic range, some exact zeros
        x[i] = (rng.next() % 7 == 0) ? 0.0f : std::ldexp(u, static_cast<int>(rng.next() % 40) - 20);
        break;
      case 2:  // all zeros
        x[i] = 0.0f;
        break;
      case 3:  // tiny (subnormal amax / 448)
        x[i] = std::ldexp(u, -135);
        break;
      case 4:  // huge, with an inf now and then
        x[i] = (rng.next() % 50 == 0) ? INFINITY : u * 3e38f;
        break;
      case 5:  // NaN of either sign sprinkled in ordinary values
        x[i] = (rng.next() % 13 == 0) ? (u < 0 ? -NAN : NAN) : u;
        break;
      default:  // exact powers of two times 448 (MxFp8's no-round-up edge)
        x[i] = std::ldexp(448.0f, static_cast<int>(rng.next() % 20) - 10) * (u < 0 ? -1.0f : 1.0f);
        break;
    }
  }
  return x;
}

// The host model of one row's quantization: the plan and scale rules of act_quant.cuh, applied
// group by group. codes [K], scales [plan.groups].
void model_quantize_row(const ActQuantOut& quant, float static_s, const float* x, int64_t K,
                        int32_t vec, uint8_t* codes, std::vector<float>* scales) {
  aq::RowQuantPlan plan;
  if (!aq::plan_row_quant(quant, K, vec, &plan)) {
    fail("plan_row_quant refused an FP8 mode");
    return;
  }
  scales->assign(plan.groups, 0.0f);
  for (int64_t g = 0; g < plan.groups; ++g) {
    const int64_t lo = g * plan.group, hi = std::min(K, lo + plan.group);
    float s = static_s;
    if (plan.reduce != aq::Reduce::Static) {
      float m = 0.0f;
      for (int64_t i = lo; i < hi; ++i) m = aq::amax_step(m, x[i]);
      s = aq::scale_from_amax(plan.mx, m);
    }
    (*scales)[g] = s;
    for (int64_t i = lo; i < hi; ++i) codes[i] = aq::quantize_e4m3(x[i], s);
  }
}

// ---- 1. host: scale rules and plans vs the CPU executor
// ------------------------------------------

void check_plan(const aq::RowQuantPlan& p, int64_t K, const char* label) {
  char msg[160];
  std::snprintf(msg, sizeof(msg), "%s: plan invariants (K=%lld)", label, (long long)K);
  if (p.group <= 0 || p.groups * p.group < K || (p.groups - 1) * p.group >= K) fail(msg);
  if (p.reduce != aq::Reduce::Static && p.group % p.vec != 0) fail(msg);
  if (p.reduce == aq::Reduce::Lanes && (p.chunks_per_group > 32 || 32 % p.chunks_per_group != 0))
    fail(msg);
  if (p.reduce == aq::Reduce::Block && p.warp_in_one_group && p.groups != 1 &&
      p.chunks_per_group % 32 != 0)
    fail(msg);
}

int check_host() {
  const int before = g_failures;
  Rng rng{12345};
  const int64_t lengths[] = {1, 5, 31, 32, 33, 96, 127, 128, 200, 256, 1000, 2048, 2880, 7168};
  const int64_t groups[] = {128, 64, 96, 7, 1, 100000};
  const ActQuant modes[] = {ActQuant::Fp8Static, ActQuant::Fp8PerToken, ActQuant::Fp8PerGroup,
                            ActQuant::MxFp8};
  int64_t rows = 0;
  for (int64_t K : lengths) {
    for (int kind = 0; kind < 7; ++kind) {
      const std::vector<float> x = random_row(rng, K, kind);
      for (ActQuant mode : modes) {
        for (int64_t group : groups) {
          if (mode != ActQuant::Fp8PerGroup && group != 128) continue;
          for (int32_t vec : {1, 4, 8}) {
            ActQuantOut q;
            q.mode = static_cast<int32_t>(mode);
            q.scales.group = group;
            const float static_s = kind == 4 ? 1e36f : 0.037f;
            aq::RowQuantPlan plan;
            aq::plan_row_quant(q, K, vec, &plan);
            check_plan(plan, K, "host");
            std::vector<uint8_t> codes(K);
            std::vector<float> scales;
            model_quantize_row(q, static_s, x.data(), K, vec, codes.data(), &scales);
            std::vector<float> cpu = x;
            cpu::quantize_row(mode, group, static_s, DType::F32, cpu.data(), K);
            for (int64_t i = 0; i < K; ++i) {
              const float s = scales[i / plan.group];
              const float mine = formats::e4m3_to_float(codes[i]) * s;
              if (!same_bits(mine, cpu[i])) {
                char msg[200];
                std::snprintf(
                    msg, sizeof(msg),
                    "host mode %d group %lld K %lld kind %d vec %d col %lld: %g vs cpu %g",
                    static_cast<int>(mode), (long long)group, (long long)K, kind, vec, (long long)i,
                    mine, cpu[i]);
                fail(msg);
                break;
              }
            }
            ++rows;
          }
        }
      }
    }
  }
  // MxFp8 scale rule corners, against a literal reading of the contract.
  const float corners[] = {448.0f, 448.0f * 1.0000001f, 224.0f, 1e-40f, 1e-44f, 3.4e38f, INFINITY};
  for (float amax : corners) {
    std::vector<float> row(32, 0.0f);
    row[3] = amax;
    std::vector<float> cpu = row;
    cpu::quantize_row(ActQuant::MxFp8, 32, 1.0f, DType::F32, cpu.data(), 32);
    ActQuantOut q;
    q.mode = static_cast<int32_t>(ActQuant::MxFp8);
    std::vector<uint8_t> codes(32);
    std::vector<float> scales;
    model_quantize_row(q, 1.0f, row.data(), 32, 8, codes.data(), &scales);
    const float mine = formats::e4m3_to_float(codes[3]) * scales[0];
    if (!same_bits(mine, cpu[3])) fail("MxFp8 corner");
  }
  std::printf("host: %lld (row, mode, group, vec) cases vs cpu::quantize_row, %d failures\n",
              (long long)rows, g_failures - before);
  return g_failures - before;
}

}  // namespace

#if defined(__CUDACC__)
#include <cuda_runtime.h>

#include "cuda/epilogue/activation_kernel.h"
#include "cuda/finalize/finalize_kernel.h"
#include "cuda/permute/gather_kernel.h"

namespace {

#define CHECK_CUDA(x)                                                                      \
  do {                                                                                     \
    cudaError_t e_ = (x);                                                                  \
    if (e_ != cudaSuccess) {                                                               \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
      std::exit(2);                                                                        \
    }                                                                                      \
  } while (0)

template <class T>
T* to_device(const std::vector<T>& v) {
  T* d = nullptr;
  CHECK_CUDA(cudaMalloc(&d, std::max<size_t>(1, v.size()) * sizeof(T)));
  if (!v.empty()) CHECK_CUDA(cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

template <class T>
std::vector<T> to_host(const T* d, size_t n) {
  std::vector<T> v(n);
  CHECK_CUDA(cudaMemcpy(v.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return v;
}

constexpr uint8_t kCodePoison = 0xCD;
constexpr uint32_t kScalePoison = 0xFFFFFFFFu;

// Rows of a permuted problem: slots t * k + j in a random order, a random local expert each.
struct Rows {
  int64_t tokens, top_k, slots, kept;
  std::vector<int32_t> permuted_to_expanded, row_expert;
};

Rows make_rows(Rng& rng, int64_t tokens, int64_t top_k, int32_t experts) {
  Rows r{tokens, top_k, tokens * top_k, 0, {}, {}};
  r.kept = r.slots - r.slots / 5;  // the tail is dropped: those rows must stay untouched
  r.permuted_to_expanded.resize(r.slots);
  for (int64_t i = 0; i < r.slots; ++i) r.permuted_to_expanded[i] = static_cast<int32_t>(i);
  for (int64_t i = r.slots - 1; i > 0; --i) {
    std::swap(r.permuted_to_expanded[i], r.permuted_to_expanded[rng.next() % (i + 1)]);
  }
  r.row_expert.resize(r.slots);
  for (auto& e : r.row_expert) e = static_cast<int32_t>(rng.next() % experts);
  return r;
}

// Compares a kernel's codes / scales with the host model, row by row; rows >= kept must still
// hold the poison. `code_slack` allows codes one step apart (transcendental activations).
void compare_rows(const char* label, const Rows& rows, int64_t K, const ActQuantOut& q,
                  const std::vector<uint8_t>& want_codes, const std::vector<float>& want_scales,
                  int64_t groups, const uint8_t* got_codes, const float* got_scales,
                  bool code_slack) {
  int64_t bad = 0, slack_used = 0;
  for (int64_t r = 0; r < rows.slots; ++r) {
    for (int64_t c = 0; c < K; ++c) {
      const uint8_t got = got_codes[r * q.ld_codes + c];
      if (r >= rows.kept) {
        bad += got != kCodePoison;
        continue;
      }
      const uint8_t want = want_codes[r * K + c];
      if (got == want) continue;
      const bool adjacent = ((got ^ want) & 0x80) == 0 && (got - want == 1 || want - got == 1);
      if (code_slack && adjacent) {
        ++slack_used;
      } else {
        ++bad;
      }
    }
    for (int64_t g = 0; g < groups; ++g) {
      const float got = got_scales[cuda::act_scale_index(q.scales, r, g)];
      if (r >= rows.kept) {
        bad += formats::float_bits(got) != kScalePoison;
        continue;
      }
      const float want = want_scales[r * groups + g];
      if (!same_bits(got, want)) {
        if (code_slack && std::fabs(got - want) <= 1e-6f * std::fabs(want)) {
          ++slack_used;
        } else {
          ++bad;
        }
      }
    }
  }
  char msg[200];
  std::snprintf(msg, sizeof(msg), "%s: %lld mismatches", label, (long long)bad);
  if (bad != 0) fail(msg);
  if (bad != 0 || slack_used != 0) {
    std::printf("  %s: %lld mismatches, %lld within one code step\n", label, (long long)bad,
                (long long)slack_used);
  }
}

// Device buffers of a quantized output [rows, K] (codes padded to 16) and its scales.
struct QuantBuffers {
  uint8_t* codes = nullptr;
  float* scales = nullptr;
  int64_t ld = 0, groups = 0, rows = 0;
};

QuantBuffers alloc_quant(ActQuantOut* q, int64_t rows, int64_t K, bool rows_fastest) {
  QuantBuffers b;
  aq::RowQuantPlan plan;
  aq::plan_row_quant(*q, K, 1, &plan);
  b.ld = (K + 15) / 16 * 16 + 16;
  b.groups = plan.groups;
  b.rows = rows;
  CHECK_CUDA(cudaMalloc(&b.codes, rows * b.ld));
  CHECK_CUDA(cudaMemset(b.codes, kCodePoison, rows * b.ld));
  const int64_t scale_count = rows * b.groups + 7;
  CHECK_CUDA(cudaMalloc(&b.scales, scale_count * sizeof(float)));
  CHECK_CUDA(cudaMemset(b.scales, 0xFF, scale_count * sizeof(float)));
  q->codes = b.codes;
  q->ld_codes = b.ld;
  q->scales.data = b.scales;
  q->scales.group = plan.group;
  q->scales.rows_fastest = rows_fastest;
  q->scales.ld = rows_fastest ? rows + 3 : b.groups;  // a padded ld for the transposed layout
  if (rows_fastest) {
    cudaFree(b.scales);
    const int64_t n = (rows + 3) * b.groups;
    CHECK_CUDA(cudaMalloc(&b.scales, n * sizeof(float)));
    CHECK_CUDA(cudaMemset(b.scales, 0xFF, n * sizeof(float)));
    q->scales.data = b.scales;
  }
  return b;
}

int64_t scale_slots(const ActQuantOut& q, int64_t rows, int64_t groups) {
  return q.scales.rows_fastest ? (rows + 3) * groups : rows * groups;
}

// ---- 2a. gather
// ----------------------------------------------------------------------------------

void check_gather_case(Rng& rng, DType dtype, int64_t H, bool strided, ActQuant mode, int64_t group,
                       bool rows_fastest, int64_t T = 37) {
  const int64_t k = 3;
  const int32_t E = 5;
  const Rows rows = make_rows(rng, T, k, E);
  const int64_t stride_h = strided ? 2 : 1, stride_t = H * stride_h + (strided ? 3 : 0);
  // Input values: fp32 of the stored dtype (so the model sees what the kernel reads).
  std::vector<float> x(T * H);
  for (int64_t i = 0; i < T * H; ++i) {
    float v =
        (rng.uniform() * 2.0f - 1.0f) * std::ldexp(1.0f, static_cast<int>(rng.next() % 12) - 6);
    if (dtype == DType::BF16) v = formats::round_to_bf16(v);
    if (dtype == DType::F16) v = formats::round_to_fp16(v);
    x[i] = v;
  }
  if (T > 4) std::fill(x.begin() + 2 * H, x.begin() + 3 * H, 0.0f);  // an all-zero token
  const int64_t elem = dtype == DType::F32 ? 4 : 2;
  std::vector<uint8_t> raw(T * stride_t * elem, 0);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t c = 0; c < H; ++c) {
      const int64_t off = (t * stride_t + c * stride_h) * elem;
      const float v = x[t * H + c];
      if (dtype == DType::F32) {
        std::memcpy(&raw[off], &v, 4);
      } else {
        const uint16_t h =
            dtype == DType::BF16 ? formats::float_to_bf16(v) : formats::float_to_fp16(v);
        std::memcpy(&raw[off], &h, 2);
      }
    }
  }
  std::vector<float> static_scales(E);
  for (auto& s : static_scales) s = 0.001f + rng.uniform() * 0.01f;

  ActQuantOut q;
  q.mode = static_cast<int32_t>(mode);
  q.scales.group = group;
  QuantBuffers buf = alloc_quant(&q, rows.slots, H, rows_fastest);
  uint8_t* d_input = to_device(raw);
  int32_t* d_p2e = to_device(rows.permuted_to_expanded);
  int32_t* d_expert = to_device(rows.row_expert);
  float* d_static = to_device(static_scales);
  int64_t* d_count = to_device(std::vector<int64_t>{rows.kept});
  if (mode == ActQuant::Fp8Static) {
    q.static_scale = d_static;
    q.static_stride = 1;
  }

  cuda::GatherParams p;
  p.input = d_input;
  p.input_dtype = static_cast<int32_t>(dtype);
  p.input_stride_t = stride_t;
  p.input_stride_h = stride_h;
  p.hidden = H;
  p.top_k = static_cast<int32_t>(k);
  p.permuted_to_expanded = d_p2e;
  p.row_count = d_count;
  p.max_rows = rows.slots;
  p.quant = q;
  p.row_expert = d_expert;
  CHECK_CUDA(static_cast<cudaError_t>(cuda::launch_gather(p, nullptr)));
  CHECK_CUDA(cudaDeviceSynchronize());

  std::vector<uint8_t> want(rows.slots * H);
  std::vector<float> want_scales;
  const int64_t groups = buf.groups;
  std::vector<float> all_scales(rows.slots * groups);
  for (int64_t r = 0; r < rows.kept; ++r) {
    const int64_t t = rows.permuted_to_expanded[r] / k;
    std::vector<float> s;
    model_quantize_row(q, static_scales[rows.row_expert[r]], &x[t * H], H, 1, &want[r * H], &s);
    for (int64_t g = 0; g < groups; ++g) all_scales[r * groups + g] = s[g];
  }
  const auto got_codes = to_host(buf.codes, rows.slots * buf.ld);
  const auto got_scales = to_host(q.scales.data, scale_slots(q, rows.slots, groups));
  char label[160];
  std::snprintf(label, sizeof(label), "gather dtype %d H %lld %s mode %d group %lld %s",
                static_cast<int>(dtype), (long long)H, strided ? "strided" : "dense",
                static_cast<int>(mode), (long long)group, rows_fastest ? "rows_fastest" : "");
  compare_rows(label, rows, H, q, want, all_scales, groups, got_codes.data(), got_scales.data(),
               false);
  cudaFree(d_input), cudaFree(d_p2e), cudaFree(d_expert), cudaFree(d_static), cudaFree(d_count);
  cudaFree(buf.codes), cudaFree(q.scales.data);
}

// E4M3 input: codes copied, scale = block scale * global.
void check_gather_e4m3(Rng& rng, int64_t H, int64_t block) {
  const int64_t T = 29, k = 2;
  const Rows rows = make_rows(rng, T, k, 4);
  std::vector<uint8_t> codes(T * H);
  for (auto& c : codes) c = static_cast<uint8_t>(rng.next() & 0xFF);
  const int64_t groups = (H + block - 1) / block;
  std::vector<float> block_scales(T * groups);
  for (auto& s : block_scales) s = rng.uniform() + 0.5f;
  const std::vector<float> global{0.75f};

  ActQuantOut q;
  q.mode = static_cast<int32_t>(ActQuant::Fp8PerGroup);
  q.scales.group = block;
  QuantBuffers buf = alloc_quant(&q, rows.slots, H, false);
  uint8_t* d_codes = to_device(codes);
  float* d_bs = to_device(block_scales);
  float* d_global = to_device(global);
  int32_t* d_p2e = to_device(rows.permuted_to_expanded);
  int64_t* d_count = to_device(std::vector<int64_t>{rows.kept});

  cuda::GatherParams p;
  p.input = d_codes;
  p.input_format = static_cast<int32_t>(ElemFormat::E4M3);
  p.input_stride_t = H;
  p.input_stride_h = 1;
  p.hidden = H;
  p.top_k = static_cast<int32_t>(k);
  p.permuted_to_expanded = d_p2e;
  p.row_count = d_count;
  p.max_rows = rows.slots;
  p.quant = q;
  p.input_scale.data = d_bs;
  p.input_scale.format = static_cast<int32_t>(ScaleFormat::Float);
  p.input_scale.dtype = static_cast<int32_t>(DType::F32);
  p.input_scale.stride_r = groups;
  p.input_scale.stride_c = 1;
  p.input_scale.block_rows = 1;
  p.input_scale.block_cols = block;
  p.input_global = d_global;
  CHECK_CUDA(static_cast<cudaError_t>(cuda::launch_gather(p, nullptr)));
  CHECK_CUDA(cudaDeviceSynchronize());

  std::vector<uint8_t> want(rows.slots * H);
  std::vector<float> want_scales(rows.slots * groups);
  for (int64_t r = 0; r < rows.kept; ++r) {
    const int64_t t = rows.permuted_to_expanded[r] / k;
    for (int64_t c = 0; c < H; ++c) want[r * H + c] = codes[t * H + c];
    for (int64_t g = 0; g < groups; ++g)
      want_scales[r * groups + g] = block_scales[t * groups + g] * 0.75f;
  }
  const auto got_codes = to_host(buf.codes, rows.slots * buf.ld);
  const auto got_scales = to_host(q.scales.data, rows.slots * groups);
  char label[120];
  std::snprintf(label, sizeof(label), "gather e4m3 input H %lld block %lld", (long long)H,
                (long long)block);
  compare_rows(label, rows, H, q, want, want_scales, groups, got_codes.data(), got_scales.data(),
               false);
  cudaFree(d_codes), cudaFree(d_bs), cudaFree(d_global), cudaFree(d_p2e), cudaFree(d_count);
  cudaFree(buf.codes), cudaFree(q.scales.data);
}

// ---- 2b. activation with GEMM1 dequantization
// -----------------------------------------------------

void check_activation_case(Rng& rng, Activation act, int64_t I, ActQuant mode, int64_t group,
                           int64_t T = 23) {
  const int64_t k = 2;
  const int32_t E = 3;
  const Rows rows = make_rows(rng, T, k, E);
  const bool gated = is_gated(act);
  const int64_t M1 = gated ? 2 * I : I, ldc1 = (M1 + 3) / 4 * 4 + 4;
  std::vector<float> c1(rows.slots * ldc1), row_scale(rows.slots), wscale(E * M1), global(E),
      bias(E * M1), topk(rows.slots);
  for (auto& v : c1) v = (rng.uniform() * 2.0f - 1.0f) * 50.0f;
  for (auto& v : row_scale) v = 0.01f + rng.uniform() * 0.02f;
  for (auto& v : wscale) v = 0.5f + rng.uniform();
  for (auto& v : global) v = 0.25f + rng.uniform();
  for (auto& v : bias) v = rng.uniform() - 0.5f;
  for (auto& v : topk) v = rng.uniform();
  std::vector<float> static_scales(E);
  for (auto& s : static_scales) s = 0.002f + rng.uniform() * 0.004f;

  float* d_c1 = to_device(c1);
  float* d_rs = to_device(row_scale);
  float* d_ws = to_device(wscale);
  float* d_global = to_device(global);
  float* d_bias = to_device(bias);
  float* d_topk = to_device(topk);
  float* d_static = to_device(static_scales);
  int32_t* d_p2e = to_device(rows.permuted_to_expanded);
  int32_t* d_expert = to_device(rows.row_expert);
  int64_t* d_count = to_device(std::vector<int64_t>{rows.kept});

  ActQuantOut q;
  q.mode = static_cast<int32_t>(mode);
  q.scales.group = group;
  QuantBuffers buf = alloc_quant(&q, rows.slots, I, false);
  if (mode == ActQuant::Fp8Static) {
    q.static_scale = d_static;
    q.static_stride = 1;
  }
  cuda::ActivationParams p;
  p.activation = static_cast<int32_t>(act);
  p.inter = I;
  p.c1 = d_c1;
  p.ldc1 = ldc1;
  p.row_expert = d_expert;
  p.permuted_to_expanded = d_p2e;
  p.topk_weights = d_topk;
  p.weight_on_input = true;
  p.bias = d_bias;
  p.bias_dtype = static_cast<int32_t>(DType::F32);
  p.bias_stride_e = M1;
  p.bias_stride_m = 1;
  p.default_limit = INFINITY;
  p.row_count = d_count;
  p.max_rows = rows.slots;
  p.dequant.active = true;
  p.dequant.row_scale = d_rs;
  p.dequant.row_scale_ld = 1;
  p.dequant.weight.data = d_ws;
  p.dequant.weight.format = static_cast<int32_t>(ScaleFormat::Float);
  p.dequant.weight.dtype = static_cast<int32_t>(DType::F32);
  p.dequant.weight.stride_e = M1;
  p.dequant.weight.stride_r = 1;
  p.dequant.weight.block_rows = 1;
  p.dequant.weight.block_cols = 1 << 30;
  p.dequant.global = d_global;
  p.dequant.global_stride = 1;
  p.quant = q;
  CHECK_CUDA(static_cast<cudaError_t>(cuda::launch_activation(p, nullptr)));
  CHECK_CUDA(cudaDeviceSynchronize());

  activation_math::ExpertParams prm;
  prm.alpha = 1.0f, prm.beta = 0.0f, prm.limit = INFINITY;
  std::vector<uint8_t> want(rows.slots * I);
  const int64_t groups = buf.groups;
  std::vector<float> want_scales(rows.slots * groups), h(I);
  for (int64_t r = 0; r < rows.kept; ++r) {
    const int32_t e = rows.row_expert[r];
    const float w = topk[rows.permuted_to_expanded[r]];
    auto pre = [&](int64_t m) {
      const float f = ((1.0f * row_scale[r]) * wscale[e * M1 + m]) * global[e];
      float acc = c1[r * ldc1 + m] * f;
      acc = acc * w;
      return acc + bias[e * M1 + m];
    };
    for (int64_t i = 0; i < I; ++i) {
      h[i] = gated ? activation_math::activate_gated(act, pre(I + i), pre(i), prm)
                   : activation_math::activate(act, pre(i));
    }
    std::vector<float> s;
    model_quantize_row(q, static_scales[e], h.data(), I, 1, &want[r * I], &s);
    for (int64_t g = 0; g < groups; ++g) want_scales[r * groups + g] = s[g];
  }
  const auto got_codes = to_host(buf.codes, rows.slots * buf.ld);
  const auto got_scales = to_host(q.scales.data, rows.slots * groups);
  char label[160];
  std::snprintf(label, sizeof(label), "activation %d I %lld mode %d group %lld",
                static_cast<int>(act), (long long)I, static_cast<int>(mode), (long long)group);
  const bool exact = act == Activation::Relu || act == Activation::Identity;
  compare_rows(label, rows, I, q, want, want_scales, groups, got_codes.data(), got_scales.data(),
               !exact);
  cudaFree(d_c1), cudaFree(d_rs), cudaFree(d_ws), cudaFree(d_global), cudaFree(d_bias);
  cudaFree(d_topk), cudaFree(d_static), cudaFree(d_p2e), cudaFree(d_expert), cudaFree(d_count);
  cudaFree(buf.codes), cudaFree(q.scales.data);
}

// ---- 2c. finalize with GEMM2 dequantization
// ------------------------------------------------------

void check_finalize(Rng& rng, int64_t H) {
  const int64_t T = 41, k = 4;
  const int32_t E = 6;
  const Rows rows = make_rows(rng, T, k, E);
  const int64_t ldc2 = (H + 3) / 4 * 4;
  std::vector<float> c2(rows.slots * ldc2), row_scale(rows.slots), global(E), topk(rows.slots);
  for (auto& v : c2) v = (rng.uniform() * 2.0f - 1.0f) * 100.0f;
  for (auto& v : row_scale) v = 0.01f + rng.uniform() * 0.02f;
  for (auto& v : global) v = 0.25f + rng.uniform();
  for (auto& v : topk) v = rng.uniform();
  std::vector<int32_t> e2p(rows.slots, -1);
  for (int64_t r = 0; r < rows.kept; ++r)
    e2p[rows.permuted_to_expanded[r]] = static_cast<int32_t>(r);

  float* d_c2 = to_device(c2);
  float* d_rs = to_device(row_scale);
  float* d_global = to_device(global);
  float* d_topk = to_device(topk);
  int32_t* d_e2p = to_device(e2p);
  int32_t* d_expert = to_device(rows.row_expert);
  float* d_out = nullptr;
  CHECK_CUDA(cudaMalloc(&d_out, T * H * sizeof(float)));

  cuda::FinalizeParams p;
  p.rows.c2 = d_c2;
  p.rows.ldc2 = ldc2;
  p.rows.hidden = H;
  p.rows.row_expert = d_expert;
  p.rows.dequant.active = true;
  p.rows.dequant.row_scale = d_rs;
  p.rows.dequant.row_scale_ld = 1;
  p.rows.dequant.global = d_global;
  p.rows.dequant.global_stride = 1;
  p.num_tokens = T;
  p.top_k = static_cast<int32_t>(k);
  p.expanded_to_permuted = d_e2p;
  p.topk_weights = d_topk;
  p.out = d_out;
  p.out_dtype = static_cast<int32_t>(DType::F32);
  p.out_stride_t = H;
  p.out_stride_n = 1;
  CHECK_CUDA(static_cast<cudaError_t>(cuda::launch_finalize(p, nullptr)));
  CHECK_CUDA(cudaDeviceSynchronize());
  const auto got = to_host(d_out, T * H);
  int64_t bad = 0;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t n = 0; n < H; ++n) {
      float sum = 0.0f;
      for (int64_t j = 0; j < k; ++j) {
        const int32_t r = e2p[t * k + j];
        if (r < 0) continue;
        const float f = (1.0f * row_scale[r]) * global[rows.row_expert[r]];
        sum = sum + topk[t * k + j] * (c2[r * ldc2 + n] * f);
      }
      bad += !same_bits(sum, got[t * H + n]);
    }
  }
  char label[120];
  std::snprintf(label, sizeof(label), "finalize dequant H %lld: %lld mismatches", (long long)H,
                (long long)bad);
  if (bad != 0) fail(label);
  cudaFree(d_c2), cudaFree(d_rs), cudaFree(d_global), cudaFree(d_topk), cudaFree(d_e2p);
  cudaFree(d_expert), cudaFree(d_out);
}

int check_device() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("device: no GPU, skipped\n");
    return 0;
  }
  const int before = g_failures;
  Rng rng{777};
  int cases = 0;
  const ActQuant modes[] = {ActQuant::Fp8Static, ActQuant::Fp8PerToken, ActQuant::Fp8PerGroup,
                            ActQuant::MxFp8};
  for (DType dtype : {DType::BF16, DType::F16, DType::F32}) {
    for (int64_t H : {2048, 7168, 200, 4104}) {
      for (bool strided : {false, true}) {
        for (ActQuant mode : modes) {
          check_gather_case(rng, dtype, H, strided, mode, 128, false), ++cases;
        }
      }
    }
  }
  for (int64_t group : {96, 64, 512, 7}) {
    check_gather_case(rng, DType::BF16, 2048, false, ActQuant::Fp8PerGroup, group, false), ++cases;
  }
  check_gather_case(rng, DType::BF16, 7168, false, ActQuant::Fp8PerGroup, 128, true), ++cases;
  check_gather_case(rng, DType::BF16, 7168, false, ActQuant::Fp8PerToken, 128, true), ++cases;
  for (ActQuant mode : modes) {  // >= 1024 rows: the launch picks fewer threads per row
    check_gather_case(rng, DType::BF16, 7168, false, mode, 128, false, 400), ++cases;
  }
  check_gather_e4m3(rng, 2048, 128), ++cases;
  check_gather_e4m3(rng, 7168, 7168), ++cases;
  check_gather_e4m3(rng, 200, 128), ++cases;
  for (Activation act : {Activation::Relu, Activation::Swiglu}) {
    for (int64_t I : {2048, 768, 14336, 130}) {
      for (ActQuant mode : modes) check_activation_case(rng, act, I, mode, 128), ++cases;
    }
  }
  check_activation_case(rng, Activation::Relu, 2048, ActQuant::Fp8PerGroup, 96), ++cases;
  for (int64_t I : {2048, 14336}) {  // >= 1024 rows
    check_activation_case(rng, Activation::Relu, I, ActQuant::Fp8PerToken, 128, 600), ++cases;
  }
  for (int64_t H : {2048, 7168, 202}) check_finalize(rng, H), ++cases;
  std::printf("device: %d kernel cases, %d failures\n", cases, g_failures - before);
  return g_failures - before;
}

}  // namespace
#endif  // __CUDACC__

int main() {
  check_host();
#if defined(__CUDACC__)
  check_device();
#endif
  std::printf("%s (%d failures)\n", g_failures == 0 ? "ALL PASSED" : "FAILED", g_failures);
  return g_failures == 0 ? 0 : 1;
}
