"""MXFP8 quantization: e4m3 elements with one ue8m0 (power of two) scale per 32 elements.

Per block of 32 along K, s = 2^e with e the smallest integer such that 2^e >= amax / 448 (the
division in fp32), e clamped to [-127, 127], s = 1 when amax == 0; codes = sat_e4m3(x / s)
(docs/semantics.md, MxFp8). Pure torch, any device.
"""

from __future__ import annotations

import torch

from .codecs import E4M3_MAX, as_code_bytes, e4m3_decode, e4m3_encode, ue8m0_decode, ue8m0_scale_for
from .sf_layout import block_scale_deinterleave, block_scale_interleave

Tensor = torch.Tensor

MX_BLOCK = 32


def mxfp8_quantize(
    input: Tensor,
    is_sf_swizzled_layout: bool = True,
    alignment: int = 32,
    enable_pdl: bool | None = None,
    backend: str = "cuda",
    sf_swizzle_layout=None,
) -> tuple[Tensor, Tensor]:
    """input [..., K] -> (float8_e4m3fn [..., Kp], ue8m0 scale bytes).

    Kp = K rounded up to `alignment` (a multiple of 32); the padding columns are zeros.
    Scales: swizzled -> flat 128x4 buffer (leading dims flattened into M), linear -> [M, Kp/32].
    """
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    if not input.is_floating_point() or input.dtype == torch.float8_e4m3fn:
        raise TypeError(f"input must be float32/float16/bfloat16, got {input.dtype}")
    if input.dim() < 2:
        raise ValueError(f"input must have at least 2 dims [M, K], got shape {tuple(input.shape)}")
    if alignment <= 0 or alignment % MX_BLOCK != 0:
        raise ValueError(f"alignment must be a positive multiple of 32, got {alignment}")
    if sf_swizzle_layout is not None and int(sf_swizzle_layout) not in (0, 2):
        raise NotImplementedError(
            "mxfp8_quantize: only the 128x4 and linear scale layouts exist here"
        )
    if sf_swizzle_layout is not None:
        is_sf_swizzled_layout = int(sf_swizzle_layout) == 0
    lead, k = input.shape[:-1], input.shape[-1]
    kp = -(-k // alignment) * alignment
    x2 = torch.nn.functional.pad(input.float().reshape(-1, k), (0, kp - k))
    m = x2.shape[0]
    blocks = x2.reshape(m, kp // MX_BLOCK, MX_BLOCK)
    sf_bytes = ue8m0_scale_for(blocks.abs().amax(dim=-1), E4M3_MAX)
    q = e4m3_encode(blocks / ue8m0_decode(sf_bytes).unsqueeze(-1)).reshape(*lead, kp)
    sf = block_scale_interleave(sf_bytes) if is_sf_swizzled_layout else sf_bytes
    return q, sf


def mxfp8_dequantize_host(
    input: Tensor, scale_tensor: Tensor, is_sf_swizzled_layout: bool = True
) -> Tensor:
    """Inverse of `mxfp8_quantize`: fp32 [..., Kp] = decode(e4m3) * 2^(b - 127)."""
    v = e4m3_decode(input)
    if v.dim() < 2 or v.shape[-1] % MX_BLOCK != 0:
        raise ValueError(
            f"input must be [..., K] with K a multiple of 32, got shape {tuple(input.shape)}"
        )
    kp = v.shape[-1]
    v2 = v.reshape(-1, kp)
    m, cols = v2.shape[0], kp // MX_BLOCK
    b = as_code_bytes("scale_tensor", scale_tensor)
    if is_sf_swizzled_layout:
        b = block_scale_deinterleave(b, (m, cols))
    elif b.numel() != m * cols:
        raise ValueError(f"scale_tensor must hold {m} x {cols} scales, got shape {tuple(b.shape)}")
    s = ue8m0_decode(b.reshape(m, cols)).repeat_interleave(MX_BLOCK, dim=1)
    return (v2 * s).reshape(v.shape)
