"""FP8 (e4m3) quantization helpers: per tensor, per token, per token group, 2-D weight blocks.

Every scale returned is a **dequant multiplier** (value = code * scale), computed in fp32 as
docs/semantics.md writes it: s = amax / 448, and s = 1 where amax == 0; codes = sat_e4m3(x / s).
Pure torch, any device; the input is never modified.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .codecs import E4M3_MAX, e4m3_decode, e4m3_encode

Tensor = torch.Tensor


def _check_float(name: str, x, min_dim: int = 0) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point() or x.dtype == torch.float8_e4m3fn:
        raise TypeError(f"{name} must be a float32/float16/bfloat16/float64 tensor, got {x.dtype}")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dims, got shape {tuple(x.shape)}")


def _scale_from_amax(amax: Tensor) -> Tensor:
    s = amax.float() / E4M3_MAX
    return torch.where(amax == 0, torch.ones_like(s), s)


def quantize_fp8_per_tensor(x: Tensor) -> tuple[Tensor, Tensor]:
    """x (any shape) -> (e4m3 codes, fp32 0-dim dequant scale)."""
    _check_float("x", x)
    xf = x.float()
    s = _scale_from_amax(xf.abs().amax() if xf.numel() else torch.zeros((), device=x.device))
    return e4m3_encode(xf / s), s


def quantize_fp8_per_token(x: Tensor) -> tuple[Tensor, Tensor]:
    """x [..., K] -> (e4m3 [..., K], fp32 scale [..., 1]), one scale per row."""
    _check_float("x", x, 1)
    if x.shape[-1] == 0:
        raise ValueError(f"x must have a non-empty last dimension, got shape {tuple(x.shape)}")
    xf = x.float()
    s = _scale_from_amax(xf.abs().amax(dim=-1, keepdim=True))
    return e4m3_encode(xf / s), s


def quantize_fp8_per_token_group(x: Tensor, group: int = 128) -> tuple[Tensor, Tensor]:
    """x [..., K] -> (e4m3 [..., K], fp32 scale [..., ceil(K / group)]).

    One scale per row and group of `group` consecutive columns; the last group may be short.
    """
    _check_float("x", x, 1)
    return quantize_fp8_block_generic(x, (1, group), "group")


def quantize_fp8_block(w: Tensor, block: Sequence[int] = (128, 128)) -> tuple[Tensor, Tensor]:
    """w [M, K] or [E, M, K] -> (e4m3 codes, fp32 scale [.., ceil(M/bm), ceil(K/bk)]).

    One scale per bm x bk tile of each matrix (ragged edge tiles are smaller).
    """
    _check_float("w", w, 2)
    if w.dim() > 3:
        raise ValueError(f"w must be 2-D [M, K] or 3-D [E, M, K], got shape {tuple(w.shape)}")
    return quantize_fp8_block_generic(w, block, "block")


def _check_block(name: str, block) -> tuple[int, int]:
    try:
        bm, bk = (int(b) for b in block)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair of ints (rows, cols), got {block!r}") from None
    if bm <= 0 or bk <= 0:
        raise ValueError(f"{name} sizes must be > 0, got {(bm, bk)}")
    return bm, bk


def _tile_view(x: Tensor, bm: int, bk: int) -> tuple[Tensor, int, int]:
    """Zero-pad the last two dims of x to multiples of (bm, bk) and view as tiles
    [..., Mb, bm, Kb, bk]. Zero padding never changes an amax."""
    m, k = x.shape[-2], x.shape[-1]
    mb, kb = -(-m // bm), -(-k // bk)
    pad = torch.nn.functional.pad(x, (0, kb * bk - k, 0, mb * bm - m))
    return pad.reshape(*x.shape[:-2], mb, bm, kb, bk), mb, kb


def quantize_fp8_block_generic(x: Tensor, block, name: str = "block") -> tuple[Tensor, Tensor]:
    """Tile quantization over the last two dims (a 1-D x is one row)."""
    bm, bk = _check_block(name, block)
    xf = x.float()
    squeeze = xf.dim() == 1
    if squeeze:
        xf = xf.unsqueeze(0)
    tiles, mb, kb = _tile_view(xf.abs(), bm, bk)
    s = _scale_from_amax(tiles.amax(dim=(-3, -1)))  # [..., Mb, Kb]
    full = s.repeat_interleave(bm, dim=-2).repeat_interleave(bk, dim=-1)
    full = full[..., : xf.shape[-2], : xf.shape[-1]]
    q = e4m3_encode(xf / full)
    if squeeze:
        q, s = q.squeeze(0), s.squeeze(0)
    return q, s


def dequantize_fp8(q: Tensor, scale: Tensor, block: Sequence[int] | None = None) -> Tensor:
    """fp32 value of e4m3 codes (float8_e4m3fn or uint8) times their dequant scale.

    block None: `scale` broadcasts against q (0-dim per tensor, [T, 1] per token, [E, 1, 1] ...).
    block (bm, bk): `scale[..., i, j]` covers rows i*bm.. and columns j*bk.. of the last two dims
    (per-token-group scales are block (1, group)).
    """
    if not isinstance(scale, torch.Tensor):
        raise TypeError(f"scale must be a torch.Tensor, got {type(scale).__name__}")
    v = e4m3_decode(q)
    s = scale.float()
    if block is None:
        try:
            return v * s
        except RuntimeError:
            raise ValueError(
                f"scale of shape {tuple(scale.shape)} does not broadcast against q of shape "
                f"{tuple(q.shape)}"
            ) from None
    bm, bk = _check_block("block", block)
    squeeze = v.dim() == 1
    if squeeze:
        v = v.unsqueeze(0)
    m, k = v.shape[-2], v.shape[-1]
    want = (*v.shape[:-2], -(-m // bm), -(-k // bk))
    if s.dim() == len(want) - 1 and squeeze:
        s = s.unsqueeze(0)
    if tuple(s.shape) != want:
        raise ValueError(
            f"scale must have shape {want} for block {(bm, bk)}, got {tuple(scale.shape)}"
        )
    full = s.repeat_interleave(bm, dim=-2).repeat_interleave(bk, dim=-1)[..., :m, :k]
    out = v * full
    return out.squeeze(0) if squeeze else out
