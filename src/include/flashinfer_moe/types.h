// Plain types shared by the core library, its executors and its bindings.
//
// Everything here is a POD or an enum: no templates, no CUTLASS, no torch, so an inference
// engine can include this header from plain C++ and fill the structs from its own tensors.
// Enum values are ABI: the Python package mirrors them and a test checks both sides agree.
#pragma once

#include <cstddef>
#include <cstdint>

// Marks the public entry points of libflashinfer_moe (built with hidden visibility).
#if defined(_WIN32)
#define FLASHINFER_MOE_API __declspec(dllexport)
#else
#define FLASHINFER_MOE_API __attribute__((visibility("default")))
#endif

namespace flashinfer_moe {

// ---- enums mirrored by python/flashinfer/fused_moe/enums.py ---------------------------------

enum class RoutingMethod : int32_t {
  Default = 0,           // softmax over all experts, top-k, weights = those probabilities
  Renormalize = 1,       // top-k of logits, softmax over the k selected
  DeepSeekV3 = 2,        // sigmoid + bias, group-limited top-k, scaled renormalized sigmoid
  Llama4 = 3,            // top-1 of logits, weight = sigmoid
  RenormalizeNaive = 4,  // same math as Renormalize
  TopK = 5,              // top-k of logits, weights = raw logits
  SigmoidRenorm = 6,     // sigmoid, top-k, divide by sum when norm_topk_prob
  MiniMax2 = 7,          // select by sigmoid + bias, weights sigmoid / sum * scale
  Sigmoid = 8,           // sigmoid, top-k, weights = sigmoid
  TopKSigmoid = 9,       // top-k of logits, weights = sigmoid of those
  Unspecified = 10,      // rejected
  RoundRobin = 11,       // token t gets experts (t*k + j) mod E; softmax of the k logits
};

enum class Activation : int32_t {
  Gelu = 0,
  Relu = 1,
  Silu = 2,
  Swiglu = 3,
  Geglu = 4,
  SwigluBias = 5,  // clamped SwiGLU with per-expert alpha, beta, limit
  Relu2 = 6,
  SwigluStep = 7,  // min(silu(gate), L) * clamp(up, -L, L)
  GegluTanh = 8,
  Identity = 9,
  Situ = 10,
  InvalidType = 11,
};

// True for activations whose GEMM1 output has 2*I columns in [up ; gate] order.
inline bool is_gated(Activation a) {
  return a == Activation::Swiglu || a == Activation::Geglu || a == Activation::SwigluBias ||
         a == Activation::SwigluStep || a == Activation::GegluTanh || a == Activation::Situ;
}

// ---- tensors --------------------------------------------------------------------------------

// Storage type of a buffer, as the framework reports it (DLPack). Quantized payloads travel as
// U8 (fp8 codes, packed fp4, ue8m0 scales) and their meaning is given by a Format field.
enum class DType : int32_t { Invalid = 0, F32, F16, BF16, F64, I32, I64, I16, U8, I8 };

enum class DeviceKind : int32_t { CPU = 0, CUDA = 1 };

// A non-owning strided view. Strides are in elements; ndim <= 5. A view with data == nullptr
// and ndim == 0 is "absent" (optional arguments).
struct TensorView {
  static constexpr int kMaxDims = 5;
  void* data = nullptr;
  DType dtype = DType::Invalid;
  DeviceKind device = DeviceKind::CPU;
  int32_t device_id = 0;
  int32_t ndim = 0;
  int64_t shape[kMaxDims] = {0, 0, 0, 0, 0};
  int64_t strides[kMaxDims] = {0, 0, 0, 0, 0};

  bool present() const { return data != nullptr || ndim > 0; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
};

// How the elements of a (possibly quantized) tensor are encoded.
enum class ElemFormat : int32_t {
  Float = 0,         // F32 / F16 / BF16 storage, value = element
  E4M3 = 1,          // U8 storage, one float8_e4m3fn code per byte
  E2M1Packed = 2,    // U8 storage, two e2m1 codes per byte, low nibble = even element
  E2M1Unpacked = 3,  // U8 storage, one e2m1 code per byte in the low nibble
  Int4Packed = 4,    // U8 storage, two signed int4 codes (two's complement, -8..7) per byte,
                     // low nibble = even element (MXINT4 weights: bf16 scales per 32 of K)
};

// How block scales are encoded.
enum class ScaleFormat : int32_t {
  Float = 0,  // F32 / F16 / BF16 storage
  E4M3 = 1,   // U8 storage of float8_e4m3fn
  UE8M0 = 2,  // U8 storage, value 2^(b - 127)
};

enum class ScaleLayout : int32_t {
  Linear = 0,         // scale view indexed [.., row_block, col_block] with its strides
  Swizzled128x4 = 1,  // per matrix a flat buffer of 128x4 tiles (see DESIGN/README formats)
};

// A weight stack [E, M, K] or an activation matrix [T, K], possibly quantized.
// Dequantized value of element (e, r, c):
//   decode(data[e, r, c]) * scale[e, r / block_rows, c / block_cols] * global_scale[e]
// For activations drop the e index (global_scale is then a scalar, shape [] or [1]).
// block_rows / block_cols of 0 mean "the whole dimension" (a per-matrix or per-row scale).
// `data` shape uses logical K for Float/E4M3/E2M1Unpacked and K/2 for E2M1Packed / Int4Packed.
struct QuantTensor {
  TensorView data;
  ElemFormat format = ElemFormat::Float;
  TensorView scale;  // optional
  ScaleFormat scale_format = ScaleFormat::Float;
  ScaleLayout scale_layout = ScaleLayout::Linear;
  int64_t block_rows = 0;
  int64_t block_cols = 0;
  TensorView global_scale;  // optional, F32: [E] for weights, [] or [1] for activations
};

// How an activation matrix is (re)quantized before a GEMM. All scales are dequant multipliers.
enum class ActQuant : int32_t {
  None = 0,         // round to the compute dtype (bf16 / fp16 / f32)
  Fp8Static = 1,    // q = sat_e4m3(x / s), s from `static_scale` (scalar or per local expert)
  Fp8PerToken = 2,  // s = amax(row) / 448, 1 when amax == 0
  Fp8PerGroup = 3,  // s = amax(1 x group) / 448 per token and group of `group_size` columns
  MxFp8 = 4,        // groups of 32, s = 2^clamp(ceil(log2(amax / 448)), -127, 127), 1 if amax == 0
  NvFp4 = 5,        // groups of 16, see README "Formats"; global from `static_scale`
};

struct ActQuantSpec {
  ActQuant mode = ActQuant::None;
  int64_t group_size = 128;  // Fp8PerGroup only
  TensorView static_scale;   // F32 scalar ([] / [1]) or [E_local]; Fp8Static and NvFp4
};

// Which compiled GEMM family runs the grouped GEMMs on CUDA. Auto lets the heuristic
// (src/host/heuristics.cpp) pick by architecture and rows per expert; the others force one, e.g.
// Sm80 to run the portable mma.sync path on a Hopper card. A tactic that cannot run the
// problem (not compiled, wrong architecture, unsupported layout) is an InvalidValue error.
enum class GemmTactic : int32_t {
  Auto = 0,
  Sm80Decode = 1,   // portable mma.sync, small row tiles (few rows per expert: weight streaming)
  Sm80Prefill = 2,  // portable mma.sync, large row tiles
  Sm90 = 3,  // CUTLASS sm90 TMA + WGMMA pointer-array grouped GEMM (config chosen by rows)
};

// ---- status ---------------------------------------------------------------------------------

enum class StatusCode : int32_t {
  Ok = 0,
  InvalidValue = 1,    // -> ValueError
  InvalidType = 2,     // -> TypeError
  NotImplemented = 3,  // -> NotImplementedError
  RuntimeFailure = 4,  // -> RuntimeError (CUDA error, thread failure)
};

// Returned by every entry point; nothing throws across the library boundary.
struct Status {
  StatusCode code = StatusCode::Ok;
  char message[512] = {0};
  bool ok() const { return code == StatusCode::Ok; }
};

}  // namespace flashinfer_moe
