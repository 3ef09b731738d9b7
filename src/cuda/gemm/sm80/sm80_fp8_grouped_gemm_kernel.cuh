// FP8 (e4m3) mode of the portable grouped GEMM (GroupedGemmArgs::fp8, sm80_grouped_gemm.h).
//
// mma.sync has no FP8 shape before sm_89, and this family must run on sm_80, so the codes are
// widened to fp16 in registers (one cvt per two codes on sm_89+, a few integer ops before) and
// the fp16 mma.sync (fp32 accumulation) does the math. Every e4m3 value is an fp16 value, so
// nothing is rounded: small-integer codes give exact sums.
//
// Data path: cp.async copies the byte tiles (weights, activation rows) into smem (K-major tiles
// with padded rows, N-major weight tiles XOR-swizzled: conflict-free either way), and each
// thread builds its mma fragments straight from those bytes: one 32-bit smem load gives 4 codes
// of one row, which become two fp16 pairs. Reading bytes instead of a converted fp16 copy keeps
// the smem traffic (and the syncs) of a single pass.
//
// The mma's k order: an m16n8k16 fragment gives thread t the k slots {2t, 2t+1} and
// {2t+8, 2t+9} of a row. Here thread t fills them with the 4 consecutive codes 4t..4t+3 of the
// 16-code K step (slots 2t, 2t+1 <- codes 4t, 4t+1; slots 2t+8, 2t+9 <- codes 4t+2, 4t+3), for
// both operands alike. A dot product does not care which slot holds which k as long as both
// operands agree, and every 16-code step still covers 16 consecutive k, so a K scale slice
// (a multiple of 16) always ends on a step boundary.
//
// K-varying scales (a_kscale, b_kscale): the mmas of one slice add into a partial accumulator;
// when a step leaves the slice the partial is multiplied by a_scale(row, slice) *
// b_scale(col, slice) and added to the total (the scales are loaded when the slice is entered,
// so their latency hides behind the slice's mmas). The store multiplies by code_unscale().
//
// GEMM1's fused epilogue (Epilogue::Activation / GatedActivation, K-major B): the CTA's values
// are staged in smem and go through sm80_activation_epilogue.cuh: dequantization, bias,
// activation, then e4m3 requantization of GEMM2's input, written as codes + scales instead of
// the fp32 C. A gated CTA loads up rows [n0, n0 + BW/2) and gate rows [I + n0, ...) as one tile.
#pragma once

#include <cstdint>
#include <type_traits>

#include "cuda/epilogue/sm80_activation_epilogue.cuh"
#include "cuda/fp8_operands.h"
#include "cuda/gemm/sm80/sm80_grouped_gemm_kernel.cuh"

namespace flashinfer_moe {
namespace cuda {
namespace sm80 {

// One CTA computes a kBW (weight rows = output columns) x kBT (activation rows) tile; K tiles
// of kBK codes (= bytes). SPLIT_K: every warp covers the whole kBW x kBT tile for every
// kWarps-th K step of a tile, and the warps' sums are added in a fixed order at the end.
// That is for decode, where a warp per 16 weight rows would convert the same activation
// fragments as every other warp: with the split each code is converted once per CTA, and a
// warp has 4x more independent mmas per step.
template <int BW, int BT, int BK, int STAGES, int WARPS_W, int WARPS_T, int MIN_BLOCKS,
          bool SPLIT_K = false>
struct Fp8TileConfig {
  static constexpr int kBW = BW, kBT = BT, kBK = BK, kStages = STAGES;
  static constexpr int kWarpsW = SPLIT_K ? 1 : WARPS_W, kWarpsT = SPLIT_K ? 1 : WARPS_T;
  static constexpr int kMinBlocks = MIN_BLOCKS;
  static constexpr bool kSplitK = SPLIT_K;
  static constexpr int kWarps = WARPS_W * WARPS_T, kThreads = 32 * kWarps;
  static constexpr int kSplit = SPLIT_K ? kWarps : 1;  // warps sharing one K step sequence
  static constexpr int kWarpW = BW / kWarpsW, kWarpT = BT / kWarpsT;
  static constexpr int kMmaW = kWarpW / 16, kMmaT = kWarpT / 8;
  // K-major tiles pad each row by one chunk (PaddedRows); an N-major weight tile is BK x BW.
  static constexpr int kRowPitch = BK + 16;
  static constexpr int kWeightTileBytes = BW * kRowPitch, kRowTileBytes = BT * kRowPitch;
  static constexpr int kStageBytes = kWeightTileBytes + kRowTileBytes;
  static constexpr int kSmemBytes = STAGES * kStageBytes;
  static_assert(BW % (16 * kWarpsW) == 0 && BT % (8 * kWarpsT) == 0, "warp sub-tiles");
  static_assert((BK / 16) % kSplit == 0, "a K tile's steps must divide among the split warps");
  static_assert(!SPLIT_K || kWarps * kMmaW * kMmaT * 4 * 32 * 4 <= kSmemBytes,
                "the split warps' sums are staged in the pipeline smem");
  static_assert(BK % 32 == 0 && BW % 32 == 0, "byte tile rows of at least two 16-byte chunks");
  static_assert(STAGES >= 2, "the cp.async pipeline needs at least two stages");
};

// Decode, without K scales: 64 weight rows x 16 activation rows x 256 codes, 4 stages (85 KB
// with the row padding, two CTAs per SM), the 4 warps splitting K. Measured on an H200 (one run,
// L2 flushed, E8 N28672 K4096, 4-16 rows per expert): 3.6-3.8 TB/s of weights, vs 3.4-3.6 for
// 128 codes x 6 stages split, 3.1-3.2 unsplit, 2.5 split with the pre-sm_89 integer conversion.
// Also serves N-major B (a [256 k][64 n] weight tile: 2.7 TB/s on E8 N4096 K14336).
// FLASHINFER_MOE_SM80_FP8_DECODE_BK / _STAGES / _SPLIT_K override it for A/B runs of the
// standalone check only.
#ifndef FLASHINFER_MOE_SM80_FP8_DECODE_BK
#define FLASHINFER_MOE_SM80_FP8_DECODE_BK 256
#endif
#ifndef FLASHINFER_MOE_SM80_FP8_DECODE_STAGES
#define FLASHINFER_MOE_SM80_FP8_DECODE_STAGES 4
#endif
#ifndef FLASHINFER_MOE_SM80_FP8_DECODE_SPLIT_K
#define FLASHINFER_MOE_SM80_FP8_DECODE_SPLIT_K 1
#endif
constexpr int kFp8DecodeSmem =
    FLASHINFER_MOE_SM80_FP8_DECODE_STAGES * (64 + 16) * (FLASHINFER_MOE_SM80_FP8_DECODE_BK + 16);
using Fp8DecodeTile =
    Fp8TileConfig<64, 16, FLASHINFER_MOE_SM80_FP8_DECODE_BK, FLASHINFER_MOE_SM80_FP8_DECODE_STAGES,
                  4, 1, (kFp8DecodeSmem <= 72 * 1024 ? 3 : 2),
                  FLASHINFER_MOE_SM80_FP8_DECODE_SPLIT_K != 0>;
// Decode with K scales: 128 codes, 6 stages (68 KB, three CTAs per SM), a warp per 16 weight
// rows (no split). Same run: 1.6 TB/s (128 slices) and 0.64 TB/s (MXFP8 32 slices) vs 1.2 and
// 0.47 split, 0.9 and 0.4 for the 256-code split shape: with every warp on every slice the
// per-slice work (scale loads, partial flush) is 4x larger per warp. Scaled decode is the weak
// spot: the scales are loaded from global per slice; staging them with the cp.async tiles is the
// next step.
using Fp8DecodeTileScaled = Fp8TileConfig<64, 16, 128, 6, 4, 1, 3, false>;
// Prefill: 128 x 128 x 64 codes, 4 stages (80 KB with the row padding), 8 warps of 64 x 32:
// 309 TFLOP/s on E8 N28672 K4096 with 512 rows per expert (H200, same run). With K scales every
// thread also keeps a partial accumulator (64 more registers), so that variant asks for one CTA
// per SM's register budget instead of two (no spills): 130 TFLOP/s with 128 slices.
using Fp8PrefillTile = Fp8TileConfig<128, 128, 64, 4, 2, 4, 2>;
using Fp8PrefillTileScaled = Fp8TileConfig<128, 128, 64, 4, 2, 4, 1>;
static_assert(Fp8DecodeTile::kBT == DecodeTileKMajorB::kBT &&
                  Fp8DecodeTile::kBW == DecodeTileKMajorB::kBW &&
                  Fp8DecodeTileScaled::kBT == DecodeTileKMajorB::kBT &&
                  Fp8DecodeTileScaled::kBW == DecodeTileKMajorB::kBW &&
                  Fp8PrefillTile::kBT == PrefillTile::kBT &&
                  Fp8PrefillTile::kBW == PrefillTile::kBW,
              "fp8 tiles share the family's schedule (row tile) and grid (column tile)");

// XOR swizzle of a byte tile stored as rows of ROW_BYTES: chunk c (16 bytes) of row r goes to
// chunk c ^ ((r >> SHIFT) & mask), so that the rows one load instruction touches fall into
// distinct 16-byte bank groups.
template <int ROW_BYTES, int SHIFT>
struct ByteSwizzle {
  static constexpr int kChunks = ROW_BYTES / 16;
  static constexpr int kMask = (kChunks < 8 ? kChunks : 8) - 1;
  static_assert(ROW_BYTES % 16 == 0 && (kChunks % 8 == 0 || 8 % kChunks == 0),
                "a row must be a power-of-two number of chunks below 8, or a multiple of 8");
  __device__ __forceinline__ static int chunk(int row, int c) {
    return row * kChunks + (c ^ ((row >> SHIFT) & kMask));
  }
  __device__ __forceinline__ static int byte(int row, int col) {
    return chunk(row, col >> 4) * 16 + (col & 15);
  }
};

// Layout of a K-major tile (rows = weight or activation rows, the 16 codes of a K step = one
// chunk): rows padded by one chunk, so the 8 rows one fragment load touches (same chunk) fall
// into distinct bank groups, and a K step's chunk sits at a constant offset from the row, which
// the unrolled K loop folds into the load's immediate (no per-step address math).
template <int ROW_BYTES>
struct PaddedRows {
  static constexpr int kChunks = ROW_BYTES / 16;
  static_assert(ROW_BYTES % 32 == 0, "pitch / 16 must be odd: rows of an even number of chunks");
  __device__ __forceinline__ static int chunk(int row, int c) { return row * (kChunks + 1) + c; }
  __device__ __forceinline__ static int byte(int row, int col) {
    return row * (ROW_BYTES + 16) + col;
  }
};
// Swizzle of an N-major weight tile (rows = k): a fragment reads k rows 4t + j, so rows 4 apart
// must differ.
template <int ROW_BYTES>
using KColSwizzle = ByteSwizzle<ROW_BYTES, 2>;

// Copies a [ROWS][ROW_BYTES] byte tile whose element (r, c) sits at row_start(r)[c] into
// swizzled smem; rows >= row_limit and columns >= col_limit become zeros (code 0 is +0) and are
// not read. vec16: 16-byte cp.async (partial source size at a line's end); else byte loads, in
// rolled loops: that path is rare, and unrolled it would bloat the main loop's code.
template <int ROWS, int ROW_BYTES, class Swizzle, int THREADS, class RowStart>
__device__ __forceinline__ void load_byte_tile(char* smem_tile, const uint8_t* base,
                                               RowStart row_start, int64_t row_limit,
                                               int64_t col_limit, bool vec16) {
  constexpr int kChunks = ROW_BYTES / 16;
  constexpr int kTotal = ROWS * kChunks;
  auto valid_bytes = [&](int row, int64_t col) {
    const int64_t v = row < row_limit ? col_limit - col : 0;
    return static_cast<int>(v < 0 ? 0 : (v > 16 ? 16 : v));
  };
  if (vec16) {
    const uint32_t smem_base = ptx::smem_address(smem_tile);
#pragma unroll
    for (int it = 0; it < (kTotal + THREADS - 1) / THREADS; ++it) {
      const int i = it * THREADS + static_cast<int>(threadIdx.x);
      if (kTotal % THREADS != 0 && i >= kTotal) break;
      const int row = i / kChunks, chunk = i % kChunks;
      const int64_t col = int64_t{chunk} * 16;
      const int valid = valid_bytes(row, col);
      ptx::cp_async_16_zfill(smem_base + Swizzle::chunk(row, chunk) * 16,
                             valid > 0 ? row_start(row) + col : base, valid);
    }
    return;
  }
#pragma unroll 1
  for (int i = threadIdx.x; i < kTotal; i += THREADS) {
    const int row = i / kChunks, chunk = i % kChunks;
    const int64_t col = int64_t{chunk} * 16;
    const int valid = valid_bytes(row, col);
    const uint8_t* src = row_start(row) + col;
    uint8_t* dst = reinterpret_cast<uint8_t*>(smem_tile + Swizzle::chunk(row, chunk) * 16);
#pragma unroll 1
    for (int j = 0; j < 16; ++j) dst[j] = j < valid ? src[j] : uint8_t{0};
  }
}

// Whether this device pass converts e4m3 in hardware (sm_89+); FLASHINFER_MOE_SM80_FP8_SOFT_CVT
// forces the portable bit path everywhere (A/B runs of the standalone check).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890 && !defined(FLASHINFER_MOE_SM80_FP8_SOFT_CVT)
#define FLASHINFER_MOE_SM80_FP8_HW_CVT 1
#else
#define FLASHINFER_MOE_SM80_FP8_HW_CVT 0
#endif

// Two e4m3 codes (bytes SEL of `codes`: 0 -> bytes 0, 1; 1 -> bytes 2, 3) as an fp16 pair (the
// lower byte in the lower half) holding value * code_unscale()^-1.
// sm_89 and newer convert in one instruction (exact: every e4m3 value is an fp16 normal).
// Before that, moving the code's exponent and mantissa into fp16's fields reinterprets bias 7
// as bias 15, i.e. divides by 2^8, exactly, subnormals included; the kernel multiplies the fp32
// result back by 2^16 (two operands). There the NaN codes (0x7F, 0xFF) become +-480; quantizer
// output never holds them (it saturates to 448).
template <int SEL>
__device__ __forceinline__ uint32_t e4m3x2_to_f16x2(uint32_t codes) {
#if FLASHINFER_MOE_SM80_FP8_HW_CVT
  uint32_t out;
  if constexpr (SEL == 0) {
    asm("{\n.reg .b16 lo, hi;\nmov.b32 {lo, hi}, %1;\ncvt.rn.f16x2.e4m3x2 %0, lo;\n}\n"
        : "=r"(out)
        : "r"(codes));
  } else {
    asm("{\n.reg .b16 lo, hi;\nmov.b32 {lo, hi}, %1;\ncvt.rn.f16x2.e4m3x2 %0, hi;\n}\n"
        : "=r"(out)
        : "r"(codes));
  }
  return out;
#else
  // Each code to the high byte of its 16-bit half: sign at bit 15, exp + mantissa at 8..14.
  const uint32_t v = __byte_perm(codes, 0u, SEL == 0 ? 0x1404 : 0x3424);
  return (v & 0x80008000u) | ((v >> 1) & 0x3F803F80u);
#endif
}

// What the fp32 sum of converted-code products must be multiplied by (see e4m3x2_to_f16x2).
__device__ __forceinline__ float code_unscale() {
#if FLASHINFER_MOE_SM80_FP8_HW_CVT
  return 1.0f;
#else
  return 65536.0f;  // 2^8 per operand
#endif
}

// What the fp8 GEMM kernel needs besides the tile configuration.
struct Fp8GemmParams {
  const uint8_t* a;  // e4m3 codes
  int64_t lda;
  const uint8_t* b;
  int64_t b_stride_e, b_stride_n, b_stride_k;
  float* c;
  int64_t ldc;
  int64_t n, k;
  const void* schedule;  // scratch written by build_schedule_kernel (or the permutation)
  bool a_vec16, b_vec16;
  ActScales a_scale;     // data null: none applied here
  WeightScales b_scale;  // data null: none applied here
  int64_t slice;         // K columns per scale slice (kScaled only): divides a's group and b's
                         // column block, a multiple of 16
  ActivationParams act;  // the fused GEMM1 epilogue's parameters (Epilogue != StoreF32)
  FusedQuant quant;      // how that epilogue quantizes GEMM2's input
  int64_t split_stride;  // split K (gridDim.z > 1, StoreF32): split z writes c + z * split_stride
};

// The fp8 grouped GEMM: same grid, schedule and output contract as grouped_gemm_kernel.
// kKMajorB: B stored with K contiguous; else N contiguous. kScaled: apply a_scale / b_scale per
// K slice. kEpi: fp32 C, or GEMM1's fused epilogue (top of the file).
template <class Cfg, bool kKMajorB, bool kScaled, Epilogue kEpi>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks)
    fp8_grouped_gemm_kernel(const Fp8GemmParams p) {
  static_assert(kKMajorB || kEpi == Epilogue::StoreF32, "fused epilogues need K-major weights");
  constexpr bool kGated = kEpi == Epilogue::GatedActivation;
  constexpr int kHalf = Cfg::kBW / 2;
  // Output columns per CTA: a gated CTA spends half its weight rows on the matching gate rows.
  constexpr int kOutCols = kGated ? kHalf : Cfg::kBW;
  pdl::pdl_wait();  // the schedule and A come from earlier kernels
  WorkItem item;
  if (!cta_work_item(p.schedule, &item)) return;
  const int64_t n0 = int64_t{blockIdx.y} * kOutCols;  // first output column of this CTA
  const int64_t inter = p.n / 2;
  const TileWeightRows<kGated, kHalf> weight_rows{n0, p.n};

  extern __shared__ __align__(128) char smem[];
  using RowSwz = PaddedRows<Cfg::kBK>;
  using WSwz =
      typename std::conditional<kKMajorB, PaddedRows<Cfg::kBK>, KColSwizzle<Cfg::kBW>>::type;
  const uint8_t* b_expert = p.b + item.expert * p.b_stride_e;
  const uint8_t* a_tile = p.a + item.row_begin * p.lda;

  auto load_stage = [&](int stage, int64_t k0) {
    char* w_smem = smem + stage * Cfg::kStageBytes;
    char* r_smem = w_smem + Cfg::kWeightTileBytes;
    if constexpr (kGated) {
      const uint8_t* up = b_expert + n0 * p.b_stride_n + k0;
      const uint8_t* gate = up + inter * p.b_stride_n;
      auto up_row = [&](int r) { return up + r * p.b_stride_n; };
      auto gate_row = [&](int r) { return gate + r * p.b_stride_n; };
      load_byte_tile<kHalf, Cfg::kBK, WSwz, Cfg::kThreads>(w_smem, up, up_row, inter - n0, p.k - k0,
                                                           p.b_vec16);
      load_byte_tile<kHalf, Cfg::kBK, WSwz, Cfg::kThreads>(
          w_smem + kHalf * (Cfg::kBK + 16), gate, gate_row, inter - n0, p.k - k0, p.b_vec16);
    } else if constexpr (kKMajorB) {
      const uint8_t* w0 = b_expert + n0 * p.b_stride_n + k0;
      auto w_row = [&](int r) { return w0 + r * p.b_stride_n; };
      load_byte_tile<Cfg::kBW, Cfg::kBK, WSwz, Cfg::kThreads>(w_smem, w0, w_row, p.n - n0, p.k - k0,
                                                              p.b_vec16);
    } else {
      const uint8_t* w0 = b_expert + k0 * p.b_stride_k + n0;
      auto k_row = [&](int r) { return w0 + r * p.b_stride_k; };
      load_byte_tile<Cfg::kBK, Cfg::kBW, WSwz, Cfg::kThreads>(w_smem, w0, k_row, p.k - k0, p.n - n0,
                                                              p.b_vec16);
    }
    const uint8_t* a0 = a_tile + k0;
    auto a_row = [&](int r) { return a0 + r * p.lda; };
    load_byte_tile<Cfg::kBT, Cfg::kBK, RowSwz, Cfg::kThreads>(r_smem, p.a, a_row, item.rows,
                                                              p.k - k0, p.a_vec16);
  };

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int warp_w0 = Cfg::kSplitK ? 0 : (warp % Cfg::kWarpsW) * Cfg::kWarpW;
  const int warp_t0 = Cfg::kSplitK ? 0 : (warp / Cfg::kWarpsW) * Cfg::kWarpT;
  const int warp_k = Cfg::kSplitK ? warp : 0;  // this warp's steps: warp_k + j * kSplit
  float acc[Cfg::kMmaW][Cfg::kMmaT][4] = {};

  // K-slice scales of this thread's accumulators: activation rows warp_t0 + mt*8 + 2t + j and
  // weight rows (output columns) n0 + warp_w0 + mw*16 + g + 8j. Their addresses are resolved
  // once (offset of slice 0; -1: no scale, use 1); slice s adds s * a_step / a column block.
  constexpr int kPartW = kScaled ? Cfg::kMmaW : 1, kPartT = kScaled ? Cfg::kMmaT : 1;
  float part[kPartW][kPartT][4] = {};
  float a_s[kPartT][2], b_s[kPartW][2];
  int64_t a_off[kPartT][2], b_off[kPartW][2];
  const int64_t a_step = p.a_scale.rows_fastest ? p.a_scale.ld : 1;
  if constexpr (kScaled) {
#pragma unroll
    for (int mt = 0; mt < kPartT; ++mt) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int row = warp_t0 + mt * 8 + 2 * t + j;
        a_off[mt][j] = p.a_scale.data != nullptr && row < item.rows
                           ? act_scale_index(p.a_scale, item.row_begin + row, 0)
                           : -1;
      }
    }
#pragma unroll
    for (int mw = 0; mw < kPartW; ++mw) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int w = warp_w0 + mw * 16 + g + 8 * j;
        b_off[mw][j] = p.b_scale.data != nullptr && weight_rows.valid(w)
                           ? weight_scale_row_offset(p.b_scale, item.expert, weight_rows.row(w))
                           : -1;
      }
    }
  }
  // Slice s starts at K column s * p.slice, inside A's group and B's column block there (a
  // slice divides both; when it equals one, s is that index).
  auto load_scales = [&](int64_t s) {
    const int64_t k0 = s * p.slice;
    const int64_t a_group = p.a_scale.group == p.slice ? s : k0 / p.a_scale.group;
    const int64_t b_block = p.b_scale.block_cols == p.slice ? s : k0 / p.b_scale.block_cols;
    const int64_t b_col =
        p.b_scale.data != nullptr ? weight_scale_col_offset(p.b_scale, b_block) : 0;
#pragma unroll
    for (int mt = 0; mt < kPartT; ++mt) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        a_s[mt][j] = a_off[mt][j] >= 0 ? p.a_scale.data[a_off[mt][j] + a_group * a_step] : 1.0f;
      }
    }
#pragma unroll
    for (int mw = 0; mw < kPartW; ++mw) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        b_s[mw][j] = b_off[mw][j] >= 0 ? weight_scale_at(p.b_scale, b_off[mw][j] + b_col) : 1.0f;
      }
    }
  };
  // The slice whose sum `part` holds (-1: none yet) and the K index where it ends. A warp's
  // steps may skip slices (split K), so a step that starts past slice_end first adds the
  // partial into acc, then enters the step's slice and loads its scales, which are needed only
  // when that slice is flushed: their latency hides behind the slice's mmas.
  int64_t slice = -1, slice_end = 0;
  auto flush_partial = [&]() {
#pragma unroll
    for (int mw = 0; mw < kPartW; ++mw) {
#pragma unroll
      for (int mt = 0; mt < kPartT; ++mt) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          acc[mw][mt][i] += part[mw][mt][i] * (a_s[mt][i & 1] * b_s[mw][i >> 1]);
          part[mw][mt][i] = 0.0f;
        }
      }
    }
  };

  // This CTA's K tiles: all of them, or grid split blockIdx.z's share (its partial sums go to
  // its own C slab).
  const KTileRange k_range = split_k_tiles(p.k, Cfg::kBK);
  const int64_t kt_begin = k_range.begin, k_tiles = k_range.count;
#pragma unroll
  for (int s = 0; s < Cfg::kStages - 1; ++s) {
    if (s < k_tiles) load_stage(s, (kt_begin + s) * Cfg::kBK);
    ptx::cp_async_commit();  // empty groups keep the wait count uniform
  }

  for (int64_t i = 0; i < k_tiles; ++i) {
    ptx::cp_async_wait<Cfg::kStages - 2>();
    __syncthreads();  // stage i is visible to all; stage i-1 is free for the prefetch below
    const int64_t next = i + Cfg::kStages - 1;
    if (next < k_tiles) {
      load_stage(static_cast<int>(next % Cfg::kStages), (kt_begin + next) * Cfg::kBK);
    }
    ptx::cp_async_commit();
    const int64_t kt = kt_begin + i;  // the K tile in the whole of K

    const char* w_smem = smem + static_cast<int>(i % Cfg::kStages) * Cfg::kStageBytes;
    const char* r_smem = w_smem + Cfg::kWeightTileBytes;
#pragma unroll
    for (int js = 0; js < Cfg::kBK / 16 / Cfg::kSplit; ++js) {
      const int ks = js * Cfg::kSplit + warp_k;
      if constexpr (kScaled) {
        const int64_t step_k0 = kt * Cfg::kBK + ks * 16;
        if (step_k0 >= p.k) break;  // zeros past K: no slice to add them to
        if (step_k0 >= slice_end) {
          if (slice >= 0) flush_partial();
          slice = step_k0 / p.slice;
          slice_end = (slice + 1) * p.slice;
          load_scales(slice);
        }
      }
      uint32_t wf[Cfg::kMmaW][4];
      uint32_t rf[Cfg::kMmaT][2];
#pragma unroll
      for (int mw = 0; mw < Cfg::kMmaW; ++mw) {
        const int w = warp_w0 + mw * 16 + g;
        uint32_t lo, hi;  // 4 codes of weight rows w and w + 8
        if constexpr (kKMajorB) {
          lo = *reinterpret_cast<const uint32_t*>(w_smem + WSwz::byte(w, ks * 16 + 4 * t));
          hi = *reinterpret_cast<const uint32_t*>(w_smem + WSwz::byte(w + 8, ks * 16 + 4 * t));
        } else {
          const uint8_t* wb = reinterpret_cast<const uint8_t*>(w_smem);
          lo = hi = 0;
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const int kr = ks * 16 + 4 * t + j;
            lo |= uint32_t{wb[WSwz::byte(kr, w)]} << (8 * j);
            hi |= uint32_t{wb[WSwz::byte(kr, w + 8)]} << (8 * j);
          }
        }
        // a0..a3: (row g, slots 2t..), (row g+8, 2t..), (row g, 2t+8..), (row g+8, 2t+8..)
        wf[mw][0] = e4m3x2_to_f16x2<0>(lo);
        wf[mw][1] = e4m3x2_to_f16x2<0>(hi);
        wf[mw][2] = e4m3x2_to_f16x2<1>(lo);
        wf[mw][3] = e4m3x2_to_f16x2<1>(hi);
      }
#pragma unroll
      for (int mt = 0; mt < Cfg::kMmaT; ++mt) {
        const uint32_t codes = *reinterpret_cast<const uint32_t*>(
            r_smem + RowSwz::byte(warp_t0 + mt * 8 + g, ks * 16 + 4 * t));
        rf[mt][0] = e4m3x2_to_f16x2<0>(codes);  // b0, b1: slots 2t, 2t+1 of row g
        rf[mt][1] = e4m3x2_to_f16x2<1>(codes);  // b2, b3: slots 2t+8, 2t+9
      }
#pragma unroll
      for (int mw = 0; mw < Cfg::kMmaW; ++mw) {
#pragma unroll
        for (int mt = 0; mt < Cfg::kMmaT; ++mt) {
          if constexpr (kScaled) {
            ptx::mma_m16n8k16<false>(part[mw][mt], wf[mw], rf[mt][0], rf[mt][1]);
          } else {
            ptx::mma_m16n8k16<false>(acc[mw][mt], wf[mw], rf[mt][0], rf[mt][1]);
          }
        }
      }
    }
  }
  if constexpr (kScaled) {
    if (slice >= 0) flush_partial();
  }
  ptx::cp_async_wait<0>();  // no copy may outlive the CTA's shared memory
  pdl::pdl_trigger();

  // Accumulator (i, j): weight row g (+8 for i >= 2), activation row 2t (+1 for odd i).
  constexpr int kAccs = Cfg::kMmaW * Cfg::kMmaT * 4;
  constexpr bool kFused = kEpi != Epilogue::StoreF32;
  // Smem after the main loop: the split warps' sums [kWarps][kAccs][32] (split K), then, fused,
  // the CTA's fp32 tile [kBT][kLd] (weight row fastest; a 4-float pad where it fits keeps the
  // staging stores conflict-free) and the quantization scales of its (row, group) pairs.
  constexpr int kSplitBytes = Cfg::kSplitK ? Cfg::kWarps * kAccs * 32 * 4 : 0;
  constexpr int kScaleBytes = Cfg::kBT * (kOutCols / kFusedQuantMinGroup) * 4;
  constexpr int kLd = kSplitBytes + Cfg::kBT * (Cfg::kBW + 4) * 4 + kScaleBytes <= Cfg::kSmemBytes
                          ? Cfg::kBW + 4
                          : Cfg::kBW;
  static_assert(!kFused || kSplitBytes + Cfg::kBT * kLd * 4 + kScaleBytes <= Cfg::kSmemBytes,
                "the staged tile and its scales must fit the pipeline smem");
  float* tile = reinterpret_cast<float*>(smem + kSplitBytes);
  float* tile_scale = tile + Cfg::kBT * kLd;
  auto store = [&](int a, float v) {  // accumulator a = (mw * kMmaT + mt) * 4 + i of this lane
    const int mw = a / (Cfg::kMmaT * 4), mt = (a / 4) % Cfg::kMmaT, i = a % 4;
    const int w = warp_w0 + mw * 16 + g + 8 * (i >> 1);
    const int row = warp_t0 + mt * 8 + 2 * t + (i & 1);
    if constexpr (kFused) {
      tile[row * kLd + w] = v * code_unscale();
    } else {
      const int64_t col = n0 + w;
      if (col < p.n && row < item.rows) {
        p.c[blockIdx.z * p.split_stride + (item.row_begin + row) * p.ldc + col] =
            v * code_unscale();
      }
    }
  };
  if constexpr (Cfg::kSplitK) {
    // Add the warps' sums in warp order (deterministic): stage them in the idle pipeline smem,
    // [warp][accumulator][lane] (consecutive lanes, consecutive banks), then warp w adds up
    // accumulators [w * kAccs / kWarps, ...) over all warps and stores them.
    static_assert(kAccs % Cfg::kWarps == 0, "accumulators must divide among the warps");
    float* staged = reinterpret_cast<float*>(smem);
    __syncthreads();  // every warp is done reading the last pipeline stage
#pragma unroll
    for (int a = 0; a < kAccs; ++a) {
      staged[(warp * kAccs + a) * 32 + lane] =
          acc[a / (Cfg::kMmaT * 4)][(a / 4) % Cfg::kMmaT][a % 4];
    }
    __syncthreads();
    constexpr int kPerWarp = kAccs / Cfg::kWarps;
#pragma unroll
    for (int q = 0; q < kPerWarp; ++q) {
      const int a = warp * kPerWarp + q;
      float v = 0.0f;
#pragma unroll
      for (int w = 0; w < Cfg::kWarps; ++w) v += staged[(w * kAccs + a) * 32 + lane];
      store(a, v);
    }
  } else {
    if constexpr (kFused) __syncthreads();  // every warp is done reading the last stage
#pragma unroll
    for (int a = 0; a < kAccs; ++a)
      store(a, acc[a / (Cfg::kMmaT * 4)][(a / 4) % Cfg::kMmaT][a % 4]);
  }
  if constexpr (kFused) {
    __syncthreads();
    // The activated values replace their up columns in place: each element is read and
    // written by one thread only.
    activate_staged_tile<kGated, Cfg::kBT, kOutCols, kLd, Cfg::kThreads>(
        p.act, tile, item, n0,
        [&](int row, int c, int64_t, int64_t, float v) { tile[row * kLd + c] = v; });
    __syncthreads();
    quantize_staged_tile<Cfg::kBT, kOutCols, kLd, Cfg::kThreads>(p.act, p.quant, tile, tile_scale,
                                                                 item, n0);
  }
}

}  // namespace sm80
}  // namespace cuda
}  // namespace flashinfer_moe
