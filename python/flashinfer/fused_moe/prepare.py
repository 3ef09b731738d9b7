"""Weight preparation for flashinfer's sm90 mixed-input CUTLASS MoE path (W4A16 MXFP4, W4A8
INT4, the "Humming" MXFP4 x FP8 path), pure torch on any device, each with its inverse.

- `interleave_moe_weights_for_sm90_mixed_gemm`: packed 4-bit weights [E, n, k/2] -> the same
  shape in the byte (and, for FP4, bit) order the sm90 mixed-input GEMM's LUT-based 4-bit -> 16-bit
  conversion reads (flashinfer runs this as a CUDA kernel ported from TensorRT-LLM; here it is
  the same permutation in torch).
- `interleave_moe_scales_for_sm90_mixed_gemm`: block scales [E, rows, K/g] folded so each
  64-row x 128-K block of scales is 16 contiguous bytes per folded row.
- `preprocess_moe_weights_for_sm90_mixed_gemm_humming`: MXFP4 weights + E8M0 scales -> the
  Humming FP8 path's clamped scale offsets, per-expert residual scales and rewritten FP4 codes.

This library's `cutlass_fused_moe` does not run these paths: `use_w4_group_scaling` and
`use_wfp4afp8_humming` raise `NotImplementedError`, so the outputs of these helpers cannot be
passed to it (its FP4 modes take plain packed weights with linear or 128x4 scales). They exist
so weight-loading code written for flashinfer runs, and produce flashinfer's exact layouts.
"""

from __future__ import annotations

import functools

import torch

Tensor = torch.Tensor

# ---- packed 4-bit weights ----------------------------------------------------------------------
#
# Both kernels work on pairs of rows (r, r + 8) inside each 16-row group and on 64-element
# (32-byte) partitions of K; every output 32-bit word is built from 4 source bytes and, for FP4,
# has its bits rearranged so the decoder finds each e2m1 code's 3 magnitude bits and its sign
# where its byte-permute lookup expects them.
#
# "fp4": a partition's byte column c = 16 * md + 8 * hd + 4 * q + l (md, hd, q in {0, 1}, l in
# 0..3). The word for (row pair, md, hd, l) holds, as bytes 0..3, the source bytes
# (row r, q=0), (row r+8, q=0), (row r, q=1), (row r+8, q=1); it is written to row r + 8 * hd at
# byte columns 16 * md + 4 * l .. +3, after the bit permutation below.
# "int4" / "fp4_fp8": 16-bit units; a partition's unit column u = 8 * m + 4 * s + l. Units
# (row r, u) and (row r+8, u) go, in that order, to row r + 8 * s at unit columns
# 8 * m + 2 * l and 8 * m + 2 * l + 1. "fp4_fp8" then moves the sign bits of the word those two
# units make (see _FP4_FP8_BIT_DEST); "int4" moves no bits.

# Destination bit of each source bit 0..31 of an "fp4" word (source nibbles n0..n7 are the low and
# high halves of bytes 0..3; magnitude bits m0..m2 and the sign of each nibble):
#   n0 m -> 6..8, sign -> 15    n1 m -> 22..24, sign -> 31    n2 m -> 3..5,   sign -> 12
#   n3 m -> 19..21, sign -> 28  n4 m -> 0..2,   sign -> 9     n5 m -> 16..18, sign -> 25
#   n6 m0 -> 13, m1 m2 -> 10 11, sign -> 14      n7 m0 -> 29, m1 m2 -> 26 27, sign -> 30
_FP4_BIT_DEST = (
    (6, 7, 8, 15, 22, 23, 24, 31)
    + (3, 4, 5, 12, 19, 20, 21, 28)
    + (0, 1, 2, 9, 16, 17, 18, 25)
    + (13, 10, 11, 14, 29, 26, 27, 30)
)
# "fp4_fp8": magnitudes stay; the sign of nibble i moves to nibble (1, 3, 5, 7, 0, 2, 4, 6)[i].
_FP4_FP8_SIGN_TO = (1, 3, 5, 7, 0, 2, 4, 6)
_FP4_FP8_BIT_DEST = tuple(4 * _FP4_FP8_SIGN_TO[b // 4] + 3 if b % 4 == 3 else b for b in range(32))
_QUANT_TYPES = ("fp4", "fp4_fp8", "int4")


def _inverse(dest: tuple) -> tuple:
    src = [0] * 32
    for s, d in enumerate(dest):
        src[d] = s
    return tuple(src)


@functools.cache
def _byte_tables(dest: tuple, device: torch.device) -> Tensor:
    """int64 [4, 256]: the destination bits that byte j of a word sets for each of its values."""
    values = torch.arange(256, dtype=torch.int64)
    table = torch.zeros(4, 256, dtype=torch.int64)
    for j in range(4):
        for bit in range(8):
            table[j] |= ((values >> bit) & 1) << dest[8 * j + bit]
    return table.to(device)


def _permute_word_bits(words: Tensor, dest: tuple) -> Tensor:
    """uint8 [..., 4] little-endian 32-bit words -> the words with bit b moved to dest[b]."""
    table = _byte_tables(dest, words.device)
    idx = words.long()
    out = (
        table[0][idx[..., 0]]
        | table[1][idx[..., 1]]
        | table[2][idx[..., 2]]
        | table[3][idx[..., 3]]
    )
    shifts = torch.tensor([0, 8, 16, 24], dtype=torch.int64, device=words.device)
    return ((out.unsqueeze(-1) >> shifts) & 0xFF).to(torch.uint8)


def _check_weight(weight, quant_type: str) -> tuple[int, int, int]:
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor, got {type(weight).__name__}")
    if weight.dim() != 3:
        raise ValueError(
            f"weight must be 3D (num_experts, n, k/2); got shape {tuple(weight.shape)}"
        )
    if weight.dtype != torch.uint8:
        raise ValueError(f"weight must be uint8 (packed 4-bit); got {weight.dtype}")
    if quant_type not in _QUANT_TYPES:
        raise ValueError(f"quant_type must be one of {list(_QUANT_TYPES)}; got {quant_type!r}")
    e, n, half_k = weight.shape
    if n % 16 != 0:
        raise ValueError(f"weight n dimension must be divisible by 16, got n={n}")
    if (2 * half_k) % 64 != 0:
        raise ValueError(f"logical K dimension must be divisible by 64, got K={2 * half_k}")
    return e, n, half_k


# Axis orders of the views below: the source view splits rows as (group, half h, row in half)
# and K as (partition, column digits); the output order lists the same axes as written.
_FP4_FORWARD = (0, 1, 6, 3, 4, 5, 8, 7, 2)  # (E,G,h,r,P,md,hd,q,l) -> (E,G,hd,r,P,md,l,q,h)
_UNIT_FORWARD = (0, 1, 6, 3, 4, 5, 7, 2, 8)  # (E,G,h,r,P,m,s,l,byte) -> (E,G,s,r,P,m,l,h,byte)


def _fp4_view(t: Tensor, e: int, n: int, half_k: int) -> Tensor:
    return t.reshape(e, n // 16, 2, 8, half_k // 32, 2, 2, 2, 4)


def _unit_view(t: Tensor, e: int, n: int, half_k: int) -> Tensor:
    return t.reshape(e, n // 16, 2, 8, half_k // 32, 2, 2, 4, 2)


def interleave_moe_weights_for_sm90_mixed_gemm(weight: Tensor, quant_type: str = "fp4") -> Tensor:
    """Packed 4-bit MoE weights uint8 [E, n, k/2] (two codes per byte, n % 16 == 0,
    k % 64 == 0) -> a new uint8 tensor of the same shape in the sm90 mixed-input GEMM's layout
    (flashinfer's layout, bit for bit; see the comments in this file for the permutation).

    ``quant_type``: ``"fp4"`` (MXFP4 for W4A16), ``"fp4_fp8"`` (MXFP4 for the Humming FP8
    path) or ``"int4"`` (W4A8). Pure torch on the weight's device (flashinfer requires CUDA).
    Inverse: `deinterleave_moe_weights_for_sm90_mixed_gemm`.

    This library's `cutlass_fused_moe` cannot consume this layout (`use_w4_group_scaling`
    raises `NotImplementedError`); pass it plain packed weights instead.
    """
    e, n, half_k = _check_weight(weight, quant_type)
    w = weight.contiguous()
    if quant_type == "fp4":
        words = _fp4_view(w, e, n, half_k).permute(_FP4_FORWARD).reshape(-1, 4)
        return _permute_word_bits(words, _FP4_BIT_DEST).reshape(e, n, half_k)
    out = _unit_view(w, e, n, half_k).permute(_UNIT_FORWARD).contiguous()
    if quant_type == "fp4_fp8":
        out = _permute_word_bits(out.reshape(-1, 4), _FP4_FP8_BIT_DEST)
    return out.reshape(e, n, half_k)


def deinterleave_moe_weights_for_sm90_mixed_gemm(weight: Tensor, quant_type: str = "fp4") -> Tensor:
    """Inverse of `interleave_moe_weights_for_sm90_mixed_gemm` (same arguments and checks)."""
    e, n, half_k = _check_weight(weight, quant_type)
    w = weight.contiguous()
    if quant_type == "fp4":
        words = _permute_word_bits(w.reshape(-1, 4), _inverse(_FP4_BIT_DEST))
        # the output-order view of the words, then each axis back to its source position
        out_view = words.reshape(e, n // 16, 2, 8, half_k // 32, 2, 4, 2, 2)
        return out_view.permute(_argsort(_FP4_FORWARD)).reshape(e, n, half_k).contiguous()
    if quant_type == "fp4_fp8":
        w = _permute_word_bits(w.reshape(-1, 4), _inverse(_FP4_FP8_BIT_DEST))
    out_view = w.reshape(e, n // 16, 2, 8, half_k // 32, 2, 4, 2, 2)
    return out_view.permute(_argsort(_UNIT_FORWARD)).reshape(e, n, half_k).contiguous()


def _argsort(order: tuple) -> tuple:
    return tuple(sorted(range(len(order)), key=order.__getitem__))


# ---- block scales --------------------------------------------------------------------------------


def _fold_geometry(scales: Tensor, group_size: int) -> tuple[int, int, int]:
    """(scale groups per 128 K, folded M rows, M slices per 64 rows) of a scale dtype."""
    if not isinstance(group_size, int) or group_size <= 0 or 128 % group_size != 0:
        raise ValueError(f"group_size={group_size} must be positive and divide 128")
    groups_per_k128 = 128 // group_size
    element_bits = scales.element_size() * 8
    if element_bits > 128 or 128 % element_bits != 0:
        raise ValueError(
            f"scale dtype {scales.dtype} has unsupported element size {element_bits} bits"
        )
    per_16_bytes = 128 // element_bits
    if per_16_bytes % groups_per_k128 != 0:
        raise ValueError(
            f"scale dtype {scales.dtype} and group_size={group_size} do not form an integer "
            "folded M slice"
        )
    m_slices = per_16_bytes // groups_per_k128
    if 64 % m_slices != 0:
        raise ValueError(f"folded M slices {m_slices} must divide the logical M64 block")
    return groups_per_k128, 64 // m_slices, m_slices


def interleave_moe_scales_for_sm90_mixed_gemm(scales: Tensor, group_size: int = 32) -> Tensor:
    """Fold block scales [E, rows, K/group_size] for the sm90 mixed-input MoE GEMM.

    Each 64-row x 128-K block of scales (64 x 128/g scalars) becomes ``folded_m`` rows of 16
    bytes: with ``c = 16 bytes / element size`` scalars per row and ``a = 128 / g`` groups per
    128 K, the 64 rows split into ``s = c / a`` slices of ``folded_m = 64 / s`` rows, and folded
    row f holds, for slice i = 0..s-1, the ``a`` scales of block row ``i * folded_m + f``. The
    result has shape [E, rows/64, K/128, folded_m, c]: MXFP4's uint8 E8M0 with g = 32 gives
    [E, rows/64, K/128, 16, 16]; W4A8's bf16 bit patterns with g = 128 give
    [E, rows/64, K/128, 8, 8]. Requires rows % 64 == 0 and K/g % (128/g) == 0. Inverse:
    `deinterleave_moe_scales_for_sm90_mixed_gemm`.

    This library's `cutlass_fused_moe` cannot consume this layout (`use_w4_group_scaling`
    raises `NotImplementedError`).
    """
    if not isinstance(scales, torch.Tensor) or scales.dim() != 3:
        shape = tuple(scales.shape) if isinstance(scales, torch.Tensor) else type(scales).__name__
        raise ValueError(f"scales must be 3D (num_experts, rows, K/group_size); got {shape}")
    a, folded_m, s = _fold_geometry(scales, group_size)
    e, rows, kg = scales.shape
    if rows % 64 != 0:
        raise ValueError(f"scale rows={rows} must be divisible by 64")
    if kg % a != 0:
        raise ValueError(f"K/group_size={kg} must be divisible by scale groups per K128 block {a}")
    view = scales.reshape(e, rows // 64, s, folded_m, kg // a, a)
    out = view.permute(0, 1, 4, 3, 2, 5).contiguous()
    return out.reshape(e, rows // 64, kg // a, folded_m, s * a)


def deinterleave_moe_scales_for_sm90_mixed_gemm(folded: Tensor, group_size: int = 32) -> Tensor:
    """Inverse of `interleave_moe_scales_for_sm90_mixed_gemm`: [E, rows/64, K/128, folded_m, c]
    -> [E, rows, K/group_size]."""
    if not isinstance(folded, torch.Tensor) or folded.dim() != 5:
        raise ValueError("folded must be 5D (num_experts, rows/64, K/128, folded_m, cols)")
    a, folded_m, s = _fold_geometry(folded, group_size)
    e, r64, k128, fm, cols = folded.shape
    if fm != folded_m or cols != s * a:
        raise ValueError(
            f"folded must have its last two dims ({folded_m}, {s * a}) for {folded.dtype} and "
            f"group_size={group_size}, got ({fm}, {cols})"
        )
    view = folded.reshape(e, r64, k128, folded_m, s, a)
    return view.permute(0, 1, 4, 3, 2, 5).contiguous().reshape(e, r64 * 64, k128 * a)


# ---- Humming MXFP4 x FP8 -------------------------------------------------------------------------


def _as_float32(bits: Tensor) -> Tensor:
    """int64 holding 32-bit patterns -> those patterns as float32."""
    bits = bits & 0xFFFFFFFF
    return torch.where(bits >= 2**31, bits - 2**32, bits).to(torch.int32).view(torch.float32)


@functools.cache
def _humming_rewrite_table() -> Tensor:
    """uint8 [256, 16]: the rewritten e2m1 code of each (delta, code).

    Delta 0 keeps the code (negative zero, code 8, becomes 0). Otherwise the code's value,
    taken as the float32 whose bits 22..24 are the code's magnitude bits and bit 31 its sign
    (e2m1 * 2^-126, sign included), is multiplied in float64 by the float32 of bits
    0x3F800000 - (delta << 23) (2^-delta while delta < 127) and rounded to float32; the new
    code is that float32's bits 22..24 and 31, truncated or rounded up at half (the candidate
    nearer to the float64 product; ties round up): e2m1 * 2^-delta rounded half away from zero
    to the e2m1 grid. Deltas of 127 and more (scale spreads no checkpoint has) follow the same
    bit arithmetic as flashinfer's table, which no longer means a rescaling.
    """
    delta = torch.arange(256, dtype=torch.int64).unsqueeze(1)
    code = torch.arange(16, dtype=torch.int64).unsqueeze(0)
    code = torch.where(code == 8, torch.zeros_like(code), code)
    value = _as_float32(((code & 8) << 28) | ((code & 7) << 22)).double()
    factor = _as_float32(0x3F800000 - (delta << 23)).double()
    product = value * factor
    bits = product.float().view(torch.int32).long() & 0xFFFFFFFF
    mask = 0x81C00000
    down = bits & mask
    up = (bits + 0x00200000) & mask
    nearer_up = (product - _as_float32(down).double()).abs() >= (
        product - _as_float32(up).double()
    ).abs()
    chosen = torch.where(nearer_up, up, down)
    rewritten = ((chosen >> 28) & 8) | ((chosen >> 22) & 7)
    return torch.where(delta == 0, code, rewritten).to(torch.uint8)


def _humming_scales(raw_scale: Tensor, max_range: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per expert: keep at most `max_range` E8M0 exponents below the largest; returns
    (offset uint8, residual float32 [E], delta uint8) as described in the public docstring."""
    e = raw_scale.shape[0]
    flat = raw_scale.reshape(e, -1)
    top = flat.amax(dim=1, keepdim=True)
    low = top - torch.minimum(top - flat.amin(dim=1, keepdim=True), torch.full_like(top, max_range))
    clamped = torch.maximum(flat, low)
    delta = clamped - flat
    offset = (clamped - low + 1) & 0x0F
    residual = torch.exp2(low.squeeze(1).to(torch.float32) - 127.0) * 0.5
    shape = raw_scale.shape
    return offset.reshape(shape), residual, delta.reshape(shape)


def preprocess_moe_weights_for_sm90_mixed_gemm_humming(
    weight: Tensor,
    raw_scale: Tensor,
    max_range: int = 11,
    *,
    interleave: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """MXFP4 weights uint8 [E, rows, K/2] and their E8M0 scales uint8 [E, rows, K/32] -> the
    sm90 Humming MXFP4 x FP8 path's (weight, scale, residual), flashinfer's values bit for bit.

    Per expert, with smax / smin the largest / smallest scale byte: ``low = smax -
    min(smax - smin, max_range)``; each scale is clamped up to ``low``; ``offset = clamped -
    low + 1`` (uint8, 1..max_range + 1) is the exponent the pre-MMA FP4 -> E4M3 conversion
    adds; ``residual = 2^(low - 127) / 2`` (float32 [E]) is what is left of the scale, to be
    folded into the activation scale (with Humming's fixed 2^6); ``delta = clamped - scale``
    rewrites each e2m1 code of that block to ``code * 2^-delta`` rounded half away from zero
    to the e2m1 grid (``-0`` becomes ``+0``), so the clamped scale times the new code stays
    near the old value. ``max_range`` is in [0, 11] (E4M3's exponent range).

    ``interleave=True`` returns (`interleave_moe_weights_for_sm90_mixed_gemm(weight',
    "fp4_fp8")`, `interleave_moe_scales_for_sm90_mixed_gemm(offset)`, residual); ``False``
    returns the logical (weight', offset, residual). Pure torch on the inputs' device
    (flashinfer requires CUDA). This library's `cutlass_fused_moe` cannot consume these
    (`use_wfp4afp8_humming` raises `NotImplementedError`).
    """
    if not isinstance(weight, torch.Tensor) or weight.dim() != 3:
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"weight must be 3D (num_experts, rows, K/2); got shape {shape}")
    if weight.dtype != torch.uint8:
        raise ValueError(f"weight must be packed uint8 FP4 payload; got {weight.dtype}")
    k = weight.shape[2] * 2
    if k % 32 != 0:
        raise ValueError(f"weight K dimension must be divisible by 32; got K={k}")
    want = (weight.shape[0], weight.shape[1], k // 32)
    if not isinstance(raw_scale, torch.Tensor) or tuple(raw_scale.shape) != want:
        got = tuple(raw_scale.shape) if isinstance(raw_scale, torch.Tensor) else raw_scale
        raise ValueError(f"raw_scale must have shape {want}; got {got}")
    if raw_scale.dtype != torch.uint8:
        raise ValueError(f"raw_scale must be uint8 E8M0 bytes; got {raw_scale.dtype}")
    if raw_scale.device != weight.device:
        raise ValueError(
            "raw_scale and weight must be on the same device; "
            f"got {raw_scale.device} and {weight.device}"
        )
    if not isinstance(max_range, int) or not 0 <= max_range <= 11:
        raise ValueError(f"max_range must be in [0, 11]; got {max_range}")

    offset, residual, delta = _humming_scales(raw_scale.contiguous(), max_range)
    table = _humming_rewrite_table().to(weight.device)
    w = weight.contiguous()
    codes = torch.stack((w & 0x0F, w >> 4), dim=-1).reshape(*w.shape[:-1], k).long()
    block_delta = delta.long().repeat_interleave(32, dim=-1)
    new = table[block_delta, codes]
    processed = (new[..., 0::2] | (new[..., 1::2] << 4)).contiguous()
    if not interleave:
        return processed, offset, residual
    return (
        interleave_moe_weights_for_sm90_mixed_gemm(processed, "fp4_fp8"),
        interleave_moe_scales_for_sm90_mixed_gemm(offset),
        residual,
    )


__all__ = [
    "deinterleave_moe_scales_for_sm90_mixed_gemm",
    "deinterleave_moe_weights_for_sm90_mixed_gemm",
    "interleave_moe_scales_for_sm90_mixed_gemm",
    "interleave_moe_weights_for_sm90_mixed_gemm",
    "preprocess_moe_weights_for_sm90_mixed_gemm_humming",
]
