"""MXINT4 quantization: signed int4 elements with one bf16 scale per 32 elements along K.

The weight format of ``trtllm_mxint4_block_scale_moe`` (W4A16). flashinfer's library has no
quantizer for it; its MoE tests and benchmarks define ``mxint4_quantize(x, sf_vec_size=32)``,
whose arithmetic this module reproduces, per group of ``sf_vec_size`` consecutive elements
(all in fp32):

    hi = max(group) * 8 / 7,  lo = min(group),  amax = hi if hi > -lo else -lo
    s = amax / 8,  code = clamp(round_half_even(x * (1 / s)), -8, 7)

so the largest positive element maps to +7 and the most negative one to -8. The codes are
computed with the fp32 ``s``; the returned scale is ``s`` rounded to bf16 (the kernel's scale
type), which is what the kernel and the dequantizer multiply by. A group of zeros gets scale 0
and codes 0 (flashinfer's helper divides by zero there). Codes are packed two per byte, two's
complement, low nibble = even element. Pure torch, any device.
"""

from __future__ import annotations

import torch

from .codecs import int4_decode, pack_e2m1, unpack_e2m1

Tensor = torch.Tensor

MXINT4_BLOCK = 32


def _check_group(sf_vec_size) -> int:
    if isinstance(sf_vec_size, bool) or not isinstance(sf_vec_size, int):
        raise TypeError(f"sf_vec_size: expected an int, got {type(sf_vec_size).__name__}")
    if sf_vec_size < 2 or sf_vec_size % 2:
        raise ValueError(f"sf_vec_size: expected an even size >= 2, got {sf_vec_size}")
    return sf_vec_size


def mxint4_quantize(x: Tensor, sf_vec_size: int = 32) -> tuple[Tensor, Tensor]:
    """x [..., K] (float) -> (uint8 [..., K/2] packed signed int4 codes, bf16 [..., K/sf_vec_size]
    scales). ``K`` must be a multiple of ``sf_vec_size``; see the module docstring."""
    g = _check_group(sf_vec_size)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point() or x.dtype in (torch.float8_e4m3fn, torch.float64):
        raise TypeError(f"x: expected dtype float32, float16 or bfloat16, got {x.dtype}")
    if x.dim() == 0 or x.shape[-1] % g:
        raise ValueError(
            f"x: expected a last dimension that is a multiple of sf_vec_size={g}, "
            f"got shape {tuple(x.shape)}"
        )
    lead, k = tuple(x.shape[:-1]), x.shape[-1]
    groups = x.reshape(-1, g)
    hi = groups.amax(dim=-1, keepdim=True).float() * 8.0 / 7.0
    lo = groups.amin(dim=-1, keepdim=True).float()
    amax = torch.where(hi > -lo, hi, -lo)
    scale = amax / 8.0
    zero = scale == 0
    inv = torch.where(zero, torch.zeros_like(scale), scale.reciprocal())
    codes = (groups.float() * inv).round().clamp(-8, 7).to(torch.int8)
    packed = pack_e2m1(codes.view(torch.uint8) & 0xF)
    return packed.reshape(*lead, k // 2), scale.to(torch.bfloat16).reshape(*lead, k // g)


def mxint4_dequantize(x: Tensor, scales: Tensor, sf_vec_size: int = 32) -> Tensor:
    """Inverse of ``mxint4_quantize``: packed codes uint8 [..., K/2] and scales (any float dtype,
    [..., K/sf_vec_size] or any shape with that many elements) -> fp32 [..., K], each value
    ``code * float(scale)`` (exact in fp32)."""
    g = _check_group(sf_vec_size)
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8:
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"x: expected a uint8 tensor of packed int4 codes, got {got}")
    if not isinstance(scales, torch.Tensor) or not scales.is_floating_point():
        got = scales.dtype if isinstance(scales, torch.Tensor) else type(scales).__name__
        raise TypeError(f"scales: expected a float tensor, got {got}")
    if x.dim() == 0 or (2 * x.shape[-1]) % g:
        raise ValueError(
            f"x: expected 2 * last dimension to be a multiple of sf_vec_size={g}, "
            f"got shape {tuple(x.shape)}"
        )
    lead, k = tuple(x.shape[:-1]), 2 * x.shape[-1]
    n = x.numel() * 2 // g
    if scales.numel() != n:
        raise ValueError(
            f"scales: expected {n} scales ([..., {k // g}] for x of shape {tuple(x.shape)}), "
            f"got shape {tuple(scales.shape)}"
        )
    values = int4_decode(unpack_e2m1(x)).reshape(-1, g)
    return (values * scales.reshape(-1, 1).float()).reshape(*lead, k)
