"""The swizzled "128x4" block-scale layout and its inverse.

For an R x C scale matrix (R rows, C scale columns), Rp = ceil(R/128)*128, Cp = ceil(C/4)*4, the
scale of (r, c) sits at byte
    ((r // 128) * (Cp // 4) + c // 4) * 512 + (r % 32) * 16 + ((r % 128) // 32) * 4 + c % 4
inside the matrix's slice, and matrix e of a stack starts at e * Rp * Cp (docs/semantics.md).
That is 128x4 tiles stored as [32][4][4], the order in which a tensor-core epilogue wants them.
Padding entries are zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Tensor = torch.Tensor


def _round_up(x: int, m: int) -> int:
    return (x + m - 1) // m * m


def swizzled_sf_size(rows: int, cols: int) -> int:
    """Bytes of one swizzled matrix with `rows` x `cols` scales (padding included)."""
    return _round_up(rows, 128) * _round_up(cols, 4)


def swizzled_sf_offsets(rows: int, cols: int, device=None) -> Tensor:
    """int64 [rows, cols]: the offset of each (r, c) scale inside one swizzled matrix."""
    if rows < 0 or cols < 0:
        raise ValueError(f"rows and cols must be >= 0, got rows={rows}, cols={cols}")
    cp = _round_up(cols, 4)
    r = torch.arange(rows, dtype=torch.int64, device=device).unsqueeze(1)
    c = torch.arange(cols, dtype=torch.int64, device=device).unsqueeze(0)
    return ((r // 128) * (cp // 4) + c // 4) * 512 + (r % 32) * 16 + ((r % 128) // 32) * 4 + c % 4


def _check_sf(name: str, sf) -> None:
    if not isinstance(sf, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(sf).__name__}")
    if sf.dtype.is_complex or sf.dtype == torch.bool:
        raise TypeError(f"{name} must hold scale bytes or floats, got {sf.dtype}")


def block_scale_interleave(unswizzled_sf: Tensor) -> Tensor:
    """Linear scales [M, K] or [E, M, K] -> the flat 128x4-swizzled buffer (same dtype, 1-D).

    Each matrix is padded to (ceil(M/128)*128) x (ceil(K/4)*4) with zeros.
    """
    _check_sf("unswizzled_sf", unswizzled_sf)
    if unswizzled_sf.dim() not in (2, 3):
        raise ValueError(
            f"unswizzled_sf must be 2-D [M, K] or 3-D [E, M, K], got shape "
            f"{tuple(unswizzled_sf.shape)}"
        )
    sf = unswizzled_sf if unswizzled_sf.dim() == 3 else unswizzled_sf.unsqueeze(0)
    e, m, k = sf.shape
    size = swizzled_sf_size(m, k)
    out = torch.zeros(e, size, dtype=sf.dtype, device=sf.device)
    offs = swizzled_sf_offsets(m, k, sf.device).reshape(-1)
    out[:, offs] = sf.reshape(e, m * k)
    return out.reshape(-1)


nvfp4_block_scale_interleave = block_scale_interleave


def block_scale_deinterleave(swizzled_sf: Tensor, shape: Sequence[int]) -> Tensor:
    """Inverse of `block_scale_interleave`: the linear scales of the given `shape` ([M, K] or
    [E, M, K]) from a swizzled buffer (any shape, contiguous, at least E * Mp * Kp elements)."""
    _check_sf("swizzled_sf", swizzled_sf)
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3) or any(s < 0 for s in shape):
        raise ValueError(f"shape must be (M, K) or (E, M, K) with sizes >= 0, got {shape}")
    e, m, k = (1,) + shape if len(shape) == 2 else shape
    size = swizzled_sf_size(m, k)
    flat = swizzled_sf.reshape(-1)
    if flat.numel() < e * size:
        raise ValueError(
            f"swizzled_sf must hold at least {e * size} elements for shape {shape}, "
            f"got {flat.numel()}"
        )
    offs = swizzled_sf_offsets(m, k, swizzled_sf.device).reshape(-1)
    out = flat[: e * size].reshape(e, size)[:, offs].reshape(e, m, k)
    return out.reshape(shape)


def swizzled_sf_shape_2d(rows: int, cols: int) -> tuple:
    """The 2-D shape flashinfer gives a swizzled scale of one matrix: [Rp, Cp]."""
    return (_round_up(rows, 128), _round_up(cols, 4))
