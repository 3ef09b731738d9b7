// A C++ engine's view of the library: find_package(flashinfer_moe), fill a MoeProblem with plain
// strided views, size the workspace, run on the CPU, and read a validation status.
// tests/test_cpp_consumer.py builds and runs this against the installed package.
#include <cmath>
#include <cstdio>
#include <vector>

#include "flashinfer_moe/moe.h"

using namespace flashinfer_moe;

static TensorView view(void* data, DType dtype, std::vector<int64_t> shape) {
  TensorView v;
  v.data = data;
  v.dtype = dtype;
  v.ndim = static_cast<int32_t>(shape.size());
  int64_t stride = 1;
  for (int i = v.ndim - 1; i >= 0; --i) {
    v.shape[i] = shape[i];
    v.strides[i] = stride;
    stride *= shape[i];
  }
  return v;
}

int main() {
  const int64_t T = 2, H = 4, I = 3, E = 2;
  std::vector<float> x(T * H, 1.0f), logits = {1, 0, 0, 1};
  std::vector<float> w1(E * 2 * I * H, 0.5f), w2(E * H * I, 0.25f), out(T * H, NAN);
  MoeProblem p;
  p.num_tokens = T;
  p.hidden_size = H;
  p.intermediate_size = I;
  p.num_experts = E;
  p.local_num_experts = E;
  p.top_k = 1;
  p.compute_dtype = DType::F32;
  p.routing.method = RoutingMethod::Renormalize;
  p.routing.logits = view(logits.data(), DType::F32, {T, E});
  p.input.data = view(x.data(), DType::F32, {T, H});
  p.w1.data = view(w1.data(), DType::F32, {E, 2 * I, H});
  p.w2.data = view(w2.data(), DType::F32, {E, H, I});
  p.output = view(out.data(), DType::F32, {T, H});
  size_t bytes = 0;
  Status s = workspace_size(p, DeviceKind::CPU, &bytes);
  std::vector<unsigned char> ws(bytes);
  if (s.ok()) s = run_cpu(p, ws.data(), bytes, 2);
  // acc1 = 0.5 * H = 2 on every row; SwiGLU: silu(2) * 2; out = 0.25 * I * that, weight 1.
  const double expected = 0.25 * I * (2.0 / (1.0 + std::exp(-2.0))) * 2.0;
  double worst = 0;
  for (float v : out) worst = std::fmax(worst, std::fabs(v - expected));
  std::printf("run status=%d max_err=%.3g\n", static_cast<int>(s.code), worst);
  p.top_k = 5;
  const Status bad = validate(p);
  std::printf("bad status=%d message=%s\n", static_cast<int>(bad.code), bad.message);
  return (s.ok() && worst < 1e-5 && bad.code == StatusCode::InvalidValue) ? 0 : 1;
}
