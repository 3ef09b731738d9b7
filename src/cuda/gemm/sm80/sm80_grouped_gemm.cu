// Host side of the portable grouped GEMM family (sm80_grouped_gemm.h): argument checks, scratch
// sizing and the launches (schedule unless prebuilt, then GEMM) on the caller's stream. The
// kernels live in sm80_grouped_gemm_kernel.cuh.
#include <cuda_runtime.h>

#include <cstdint>
#include <numeric>

#include "cuda/gemm/sm80/sm80_fp8_grouped_gemm_kernel.cuh"
#include "cuda/gemm/sm80/sm80_grouped_gemm.h"
#include "cuda/gemm/sm80/sm80_grouped_gemm_kernel.cuh"
#include "cuda/gemm/sm80/sm80_launch.cuh"
#include "cuda/gemm/sm80/sm80_w4a16_grouped_gemm.h"
#include "cuda/gemm/sm80/sm80_w4a16_grouped_gemm_kernel.cuh"

namespace flashinfer_moe {
namespace cuda {
namespace sm80 {
namespace {

constexpr int kScheduleThreads = 256;

// The family's own schedule launch (one CTA; sm80_schedule.cuh has the rules). Smem:
// (num_experts + 1) int32. Defined here, in the one translation unit that launches it.
__global__ void __launch_bounds__(kScheduleThreads)
    build_schedule_kernel(const int64_t* __restrict__ row_offsets, int32_t num_experts,
                          int64_t max_rows, int32_t row_tile, int64_t capacity,
                          void* __restrict__ scratch) {
  extern __shared__ int32_t tile_start[];
  build_schedule_block(row_offsets, num_experts, max_rows, row_tile, capacity, scratch, tile_start);
}

// The schedule kernel keeps one int32 per expert in static-size-free dynamic smem (<= 32 KB).
constexpr int32_t kMaxExperts = 8192;
constexpr int64_t kMaxGridY = 65535;
constexpr int32_t kMaxSplits = 64;  // grid z

int row_tile_of(Tile tile) {
  return tile == Tile::Decode ? DecodeTileKMajorB::kBT : PrefillTile::kBT;
}
int col_tile_of(Tile tile) {
  return tile == Tile::Decode ? DecodeTileKMajorB::kBW : PrefillTile::kBW;
}

// Most work items any row distribution can produce: sum_e ceil(rows_e / BT) is at most
// (max_rows + E * (BT - 1)) / BT, and never more than max_rows (every item has a row).
int64_t schedule_capacity(Tile tile, int32_t num_experts, int64_t max_rows) {
  if (max_rows <= 0 || num_experts <= 0) return 0;
  const int64_t bt = row_tile_of(tile);
  const int64_t by_tiles = (max_rows + int64_t{num_experts} * (bt - 1)) / bt;
  return by_tiles < max_rows ? by_tiles : max_rows;
}

bool b_is_k_major(const GroupedGemmArgs& a) { return a.b_stride_k == 1; }

// The K slice of the fp8 K-varying scales (0 when there are none), or -1 with `why` set when
// the kernel cannot apply them: a slice must be a whole number of mma K steps (16) unless it
// spans all of K.
int64_t fp8_scale_slice(const GroupedGemmArgs& a, const char** why) {
  const bool has_a = a.a_kscale.data != nullptr, has_b = a.b_kscale.data != nullptr;
  if (!has_a && !has_b) return 0;
  if (has_a && (a.a_kscale.group <= 0 || a.a_kscale.ld <= 0)) {
    *why = "sm80 grouped GEMM: fp8 a_kscale needs group > 0 and ld > 0";
    return -1;
  }
  if (has_b && (a.b_kscale.block_cols <= 0 || a.b_kscale.block_rows <= 0)) {
    *why = "sm80 grouped GEMM: fp8 b_kscale needs block_rows, block_cols >= 1";
    return -1;
  }
  // The slice is the largest K run over which both scales are constant: the gcd of A's group
  // and B's column block (e.g. the seed's 16-column weight blocks under 128-column groups).
  const int64_t slice = has_a && has_b ? std::gcd(a.a_kscale.group, a.b_kscale.block_cols)
                                       : (has_a ? a.a_kscale.group : a.b_kscale.block_cols);
  if (slice % 16 != 0 && slice < a.k) {
    *why =
        "sm80 grouped GEMM: fp8 K scale slice (gcd of the A group and the B column block) is "
        "not a multiple of 16 (the mma K)";
    return -1;
  }
  return slice;
}

// The fused FP8 epilogue's quantization (sm80_activation_epilogue.cuh), from the plan the
// activation kernel would use; false for a mode that is not FP8.
bool fused_quant_of(const ActivationParams& act, FusedQuant* out) {
  act_quant::RowQuantPlan plan;
  if (!act_quant::plan_row_quant(act.quant, act.inter, 1, &plan)) return false;
  out->is_static = plan.reduce == act_quant::Reduce::Static;
  out->mx = plan.mx;
  out->group = plan.group;
  return true;
}

// Whether the fp8 kernel can requantize GEMM2's input in its epilogue; nullptr when it can.
const char* check_fused_quant(Tile tile, const ActivationParams& act) {
  FusedQuant fq;
  if (!fused_quant_of(act, &fq) || act.quant.codes == nullptr || act.quant.ld_codes < act.inter) {
    return "sm80 grouped GEMM: the fused fp8 activation needs an FP8 quant with codes";
  }
  if (!fp8_epilogue_fits(fq, fused_cols_per_cta(act, col_tile_of(tile)), act.inter)) {
    return "sm80 grouped GEMM: the fused fp8 activation needs its quantization groups inside "
           "one CTA's columns";
  }
  return nullptr;
}

// The W4A16 arguments (b_format E2M1*); nullptr when fine.
const char* check_fp4_args(const GroupedGemmArgs& a) {
  if (a.fp8 || a.a_kscale.data != nullptr) {
    return "sm80 grouped GEMM: e2m1 weights take bf16 / fp16 activations (W4A16) only";
  }
  const bool packed = a.b_format == ElemFormat::E2M1Packed || a.b_format == ElemFormat::Int4Packed;
  if (packed && (a.b_stride_k != 1 || a.k % 2 != 0)) {
    return "sm80 grouped GEMM: packed 4-bit weights need K-major B and an even k";
  }
  const bool scaled = a.b_kscale.data != nullptr;
  if (scaled && (a.b_kscale.block_rows <= 0 || a.b_kscale.block_cols <= 0 ||
                 a.b_kscale.block_cols % 16 != 0)) {
    return "sm80 grouped GEMM: e2m1 K-slice scales need blocks of a multiple of 16 columns";
  }
  const W4Scales mode = w4a16_scale_mode(a);
  if (a.activation != nullptr && mode != W4Scales::Folded16 && mode != W4Scales::Folded32) {
    return "sm80 grouped GEMM: the fused activation with e2m1 weights is compiled for packed "
           "codes with e4m3 / ue8m0 scales per 16 or 32 only";
  }
  return nullptr;
}

// Everything supports() checks except the device; nullptr when fine.
const char* check_args(Tile tile, const GroupedGemmArgs& a) {
  if (tile != Tile::Decode && tile != Tile::Prefill) return "sm80 grouped GEMM: unknown tile";
  if (!a.fp8 && a.dtype != DType::BF16 && a.dtype != DType::F16) {
    return "sm80 grouped GEMM: A and B must be bf16 or fp16 (or fp8 e4m3 codes)";
  }
  if (a.fp8 && a.a_row_index != nullptr) {
    return "sm80 grouped GEMM: fp8 runs without the a_row_index fusion";
  }
  if (a.n < 0 || a.k < 0 || a.max_rows < 0 || a.num_experts < 0) {
    return "sm80 grouped GEMM: negative size";
  }
  if (a.num_experts > kMaxExperts) return "sm80 grouped GEMM: more than 8192 local experts";
  if (a.k_splits < 1 || a.k_splits > kMaxSplits) return "sm80 grouped GEMM: k_splits out of range";
  if (a.k_splits > 1 && a.activation != nullptr) {
    return "sm80 grouped GEMM: split K writes partial sums, not the fused activation";
  }
  if (a.k_splits > 1 && a.split_stride < a.max_rows * a.ldc) {
    return "sm80 grouped GEMM: split_stride < max_rows * ldc";
  }
  if (a.b_stride_k != 1 && a.b_stride_n != 1) {
    return "sm80 grouped GEMM: B must be K-major (b_stride_k == 1) or N-major (b_stride_n == 1)";
  }
  if (a.max_rows == 0 || a.n == 0 || a.num_experts == 0) return nullptr;  // nothing to compute
  if (a.a == nullptr || a.b == nullptr || a.c == nullptr || a.row_offsets == nullptr) {
    return "sm80 grouped GEMM: null A, B, C or row_offsets";
  }
  if (a.lda < a.k || a.ldc < a.n) return "sm80 grouped GEMM: lda < k or ldc < n";
  if ((a.n + col_tile_of(tile) - 1) / col_tile_of(tile) > kMaxGridY) {
    return "sm80 grouped GEMM: n too large for the grid";
  }
  if (schedule_capacity(tile, a.num_experts, a.max_rows) > INT32_MAX) {
    return "sm80 grouped GEMM: max_rows too large for the grid";
  }
  if (a.fp8) {
    const char* why = nullptr;
    if (fp8_scale_slice(a, &why) < 0) return why;
  }
  if (b_is_fp4(a)) {
    const char* why = check_fp4_args(a);
    if (why != nullptr) return why;
  } else if (a.b_format != ElemFormat::Float && a.b_format != ElemFormat::E4M3) {
    return "sm80 grouped GEMM: unknown b_format";
  }
  if (a.a_row_index != nullptr && (a.a_row_index_div < 1 || !aligned16(a.a) || a.lda % 8 != 0)) {
    return "sm80 grouped GEMM: a_row_index needs a positive divisor and 16-byte aligned A rows";
  }
  if (a.activation != nullptr) {
    const ActivationParams& act = *a.activation;
    const bool gated = is_gated(static_cast<Activation>(act.activation));
    if (!b_is_k_major(a)) return "sm80 grouped GEMM: the fused activation needs K-major B";
    if (act.inter <= 0 || a.n != (gated ? 2 * act.inter : act.inter)) {
      return "sm80 grouped GEMM: the fused activation needs n == 2 * inter (gated) or inter";
    }
    if (a.fp8) {
      const char* why = check_fused_quant(tile, act);
      if (why != nullptr) return why;
    } else {
      const bool a2_ok = act.a2 != nullptr && act.lda2 >= act.inter &&
                         act.a2_dtype == static_cast<int32_t>(a.dtype);
      if (!a2_ok) return "sm80 grouped GEMM: the fused activation needs a2 in the compute dtype";
    }
  }
  if (a.scratch == nullptr || !aligned16(a.scratch) ||
      a.scratch_bytes < workspace_size(tile, a.num_experts, a.max_rows)) {
    return "sm80 grouped GEMM: scratch missing, misaligned or smaller than workspace_size()";
  }
  return nullptr;
}

template <class Cfg, bool kBf16, bool kKMajorB, Epilogue kEpi>
cudaError_t launch_gemm_kernel(const GroupedGemmArgs& a, const GemmParams& params, int64_t capacity,
                               cudaStream_t stream) {
  return launch_tiles<Cfg>(grouped_gemm_kernel<Cfg, kBf16, kKMajorB, kEpi>, params, a, capacity,
                           stream);
}

// CfgK / CfgN: the tile shape for K-major / N-major B (same kBW and kBT).
template <class CfgK, class CfgN>
cudaError_t launch_gemm(const GroupedGemmArgs& a, const GemmParams& p, int64_t capacity,
                        cudaStream_t stream) {
  const bool bf16 = a.dtype == DType::BF16;
  if (a.activation != nullptr) {  // K-major B (check_args)
    if (is_gated(static_cast<Activation>(a.activation->activation))) {
      constexpr Epilogue kG = Epilogue::GatedActivation;
      return bf16 ? launch_gemm_kernel<CfgK, true, true, kG>(a, p, capacity, stream)
                  : launch_gemm_kernel<CfgK, false, true, kG>(a, p, capacity, stream);
    }
    constexpr Epilogue kA = Epilogue::Activation;
    return bf16 ? launch_gemm_kernel<CfgK, true, true, kA>(a, p, capacity, stream)
                : launch_gemm_kernel<CfgK, false, true, kA>(a, p, capacity, stream);
  }
  constexpr Epilogue kS = Epilogue::StoreF32;
  if (b_is_k_major(a)) {
    return bf16 ? launch_gemm_kernel<CfgK, true, true, kS>(a, p, capacity, stream)
                : launch_gemm_kernel<CfgK, false, true, kS>(a, p, capacity, stream);
  }
  return bf16 ? launch_gemm_kernel<CfgN, true, false, kS>(a, p, capacity, stream)
              : launch_gemm_kernel<CfgN, false, false, kS>(a, p, capacity, stream);
}

template <class Cfg, bool kKMajorB, bool kScaled, Epilogue kEpi = Epilogue::StoreF32>
cudaError_t launch_fp8_kernel(const GroupedGemmArgs& a, const Fp8GemmParams& params,
                              int64_t capacity, cudaStream_t stream) {
  return launch_tiles<Cfg>(fp8_grouped_gemm_kernel<Cfg, kKMajorB, kScaled, kEpi>, params, a,
                           capacity, stream);
}

// CfgPlain / CfgScaled: the tile without / with K-slice scales (same kBW and kBT).
template <class CfgPlain, class CfgScaled>
cudaError_t launch_fp8(const GroupedGemmArgs& a, const Fp8GemmParams& p, int64_t capacity,
                       cudaStream_t stream) {
  const bool scaled = p.slice > 0;
  if (a.activation != nullptr) {  // K-major B (check_args)
    if (is_gated(static_cast<Activation>(a.activation->activation))) {
      constexpr Epilogue kG = Epilogue::GatedActivation;
      return scaled ? launch_fp8_kernel<CfgScaled, true, true, kG>(a, p, capacity, stream)
                    : launch_fp8_kernel<CfgPlain, true, false, kG>(a, p, capacity, stream);
    }
    constexpr Epilogue kA = Epilogue::Activation;
    return scaled ? launch_fp8_kernel<CfgScaled, true, true, kA>(a, p, capacity, stream)
                  : launch_fp8_kernel<CfgPlain, true, false, kA>(a, p, capacity, stream);
  }
  if (b_is_k_major(a)) {
    return scaled ? launch_fp8_kernel<CfgScaled, true, true>(a, p, capacity, stream)
                  : launch_fp8_kernel<CfgPlain, true, false>(a, p, capacity, stream);
  }
  return scaled ? launch_fp8_kernel<CfgScaled, false, true>(a, p, capacity, stream)
                : launch_fp8_kernel<CfgPlain, false, false>(a, p, capacity, stream);
}

int launch_fp8_gemm(Tile tile, const GroupedGemmArgs& a, int64_t capacity, cudaStream_t stream) {
  const char* unused = nullptr;
  Fp8GemmParams p;
  p.a = static_cast<const uint8_t*>(a.a);
  p.lda = a.lda;
  p.b = static_cast<const uint8_t*>(a.b);
  p.b_stride_e = a.b_stride_e;
  p.b_stride_n = a.b_stride_n;
  p.b_stride_k = a.b_stride_k;
  p.c = a.c;
  p.ldc = a.ldc;
  p.n = a.n;
  p.k = a.k;
  p.schedule = a.scratch;
  p.a_vec16 = aligned16(a.a) && a.lda % 16 == 0;
  p.b_vec16 = b_lines_aligned16(a);
  p.a_scale = a.a_kscale;
  p.b_scale = a.b_kscale;
  p.slice = a.k > 0 ? fp8_scale_slice(a, &unused) : 0;  // >= 0: check_args passed
  p.split_stride = a.split_stride;
  if (a.activation != nullptr) {
    p.act = *a.activation;
    fused_quant_of(p.act, &p.quant);  // true: check_args passed
  }
  const cudaError_t err =
      tile == Tile::Decode
          ? launch_fp8<Fp8DecodeTile, Fp8DecodeTileScaled>(a, p, capacity, stream)
          : launch_fp8<Fp8PrefillTile, Fp8PrefillTileScaled>(a, p, capacity, stream);
  return static_cast<int>(err);
}

}  // namespace

size_t workspace_size(Tile tile, int32_t num_experts, int64_t max_rows) {
  const int64_t capacity = schedule_capacity(tile, num_experts, max_rows);
  return kScheduleHeaderBytes + static_cast<size_t>(capacity) * sizeof(WorkItem);
}

bool schedule_layout(Tile tile, int32_t num_experts, int64_t max_rows, int32_t* row_tile,
                     int64_t* capacity) {
  if (tile != Tile::Decode && tile != Tile::Prefill) return false;
  *row_tile = row_tile_of(tile);
  *capacity = schedule_capacity(tile, num_experts, max_rows);
  return true;
}

// CTAs per SM that the tile configuration of a launch of `a` without the fused activation is
// built for (split K, its only user, never runs fused).
int resident_ctas_per_sm(Tile tile, const GroupedGemmArgs& a) {
  if (b_is_fp4(a)) {  // one min-blocks value per tile shape, whatever the layout
    return tile == Tile::Decode ? w4a16_decode_ctas_per_sm(a)
                                : W4PrefillTile<true, true>::kMinBlocks;
  }
  if (a.fp8) {
    const bool scaled = a.a_kscale.data != nullptr || a.b_kscale.data != nullptr;
    if (tile == Tile::Decode) {
      return scaled ? Fp8DecodeTileScaled::kMinBlocks : Fp8DecodeTile::kMinBlocks;
    }
    return scaled ? Fp8PrefillTileScaled::kMinBlocks : Fp8PrefillTile::kMinBlocks;
  }
  if (tile == Tile::Prefill) return PrefillTile::kMinBlocks;
  return b_is_k_major(a) ? DecodeTileKMajorB::kMinBlocks : DecodeTileNMajorB::kMinBlocks;
}

GridSize grid_size(Tile tile, const GroupedGemmArgs& a) {
  GridSize g;
  g.ctas = schedule_capacity(tile, a.num_experts, a.max_rows) * column_tiles(a, col_tile_of(tile));
  g.ctas_per_sm = resident_ctas_per_sm(tile, a);
  return g;
}

bool supports(Tile tile, const GroupedGemmArgs& args, int sm, const char** why) {
  const char* reason = check_args(tile, args);
  if (reason == nullptr && sm < 80) reason = "sm80 grouped GEMM: needs compute capability >= 8.0";
  if (why != nullptr) *why = reason;
  return reason == nullptr;
}

int launch(Tile tile, const GroupedGemmArgs& a, void* stream_ptr) {
  if (check_args(tile, a) != nullptr) return static_cast<int>(cudaErrorInvalidValue);
  if (a.max_rows == 0 || a.n == 0 || a.num_experts == 0) return 0;
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  const int64_t capacity = schedule_capacity(tile, a.num_experts, a.max_rows);

  cudaError_t err = cudaSuccess;
  if (!a.schedule_prebuilt) {
    const size_t schedule_smem = (static_cast<size_t>(a.num_experts) + 1) * sizeof(int32_t);
    build_schedule_kernel<<<1, kScheduleThreads, schedule_smem, stream>>>(
        a.row_offsets, a.num_experts, a.max_rows, row_tile_of(tile), capacity, a.scratch);
    err = cudaGetLastError();
    if (err != cudaSuccess) return static_cast<int>(err);
  }

  if (a.fp8) return launch_fp8_gemm(tile, a, capacity, stream);
  if (b_is_fp4(a)) {
    return static_cast<int>(tile == Tile::Decode ? launch_w4a16_decode(a, capacity, stream)
                                                 : launch_w4a16_prefill(a, capacity, stream));
  }

  GemmParams p;
  p.a = static_cast<const uint16_t*>(a.a);
  p.lda = a.lda;
  p.b = static_cast<const uint16_t*>(a.b);
  p.b_stride_e = a.b_stride_e;
  p.b_stride_n = a.b_stride_n;
  p.b_stride_k = a.b_stride_k;
  p.c = a.c;
  p.ldc = a.ldc;
  p.n = a.n;
  p.k = a.k;
  p.schedule = a.scratch;
  p.a_vec16 = aligned16(a.a) && a.lda % 8 == 0;
  p.b_vec16 = b_lines_aligned16(a);
  p.a_row_index = a.a_row_index;
  p.a_row_index_div = a.a_row_index_div;
  p.act = a.activation != nullptr ? *a.activation : ActivationParams{};
  p.split_stride = a.split_stride;
  err = tile == Tile::Decode
            ? launch_gemm<DecodeTileKMajorB, DecodeTileNMajorB>(a, p, capacity, stream)
            : launch_gemm<PrefillTile, PrefillTile>(a, p, capacity, stream);
  return static_cast<int>(err);
}

}  // namespace sm80
}  // namespace cuda
}  // namespace flashinfer_moe
