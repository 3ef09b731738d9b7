"""FP4 (e2m1) quantization helpers: NVFP4 (e4m3 block scales of 16 + fp32 global scale) and
MXFP4 (ue8m0 block scales of 32), with flashinfer's argument conventions, and their dequantizers.

Global-scale convention (flashinfer's): `fp4_quantize`'s `global_scale` is the QUANT multiplier
gs (typically 448 * 6 / amax(x)); the dequant global is its inverse 1 / gs. For NVFP4, per block
of `sf_vec_size` elements along K, in fp32, left to right:
    sf    = sat_e4m3((amax_block / 6) * gs)          (stored as its e4m3 code)
    codes = e2m1((x * gs) / sf)                      (all codes 0 when sf == 0)
    x    ~= e2m1 * sf / gs                           (e2m1_and_ufp8sf_scale_to_float with 1 / gs)
With `is_global_scale_inversed=True` the given value is g = 1 / gs and the formulas of
docs/semantics.md (NvFp4) are used verbatim: sf = sat_e4m3(amax / 6 / g), codes = e2m1(x / (sf * g)),
so `fp4_quantize(x, g, is_global_scale_inversed=True)` reproduces exactly what the MoE kernels see.
MXFP4: sf = 2^e with e the smallest integer such that 2^e >= amax_block * gs / 6 (1 when amax = 0).
Pure torch, any device.
"""

from __future__ import annotations

from enum import IntEnum

import torch

from .codecs import (
    E2M1_MAX,
    as_code_bytes,
    e2m1_decode,
    e2m1_encode,
    e4m3_decode,
    e4m3_encode,
    pack_e2m1,
    ue8m0_decode,
    ue8m0_scale_for,
    unpack_e2m1,
)
from .nvfp4_quantization_utils import check_standard_nvfp4_recipe
from .sf_layout import block_scale_deinterleave, block_scale_interleave, swizzled_sf_shape_2d

Tensor = torch.Tensor


class SfLayout(IntEnum):
    """Where block scales live: the 128x4 swizzled tiles, the 8x4 variant, or plain [M, K/sfv]."""

    layout_128x4 = 0
    layout_8x4 = 1
    layout_linear = 2


def _global_value(name: str, g, device) -> Tensor | None:
    """A global scale (float or 1-element tensor) as a 0-dim fp32 tensor, or None."""
    if g is None:
        return None
    if isinstance(g, (int, float)):
        return torch.tensor(float(g), dtype=torch.float32, device=device)
    if not isinstance(g, torch.Tensor):
        raise TypeError(f"{name} must be a float or a 1-element tensor, got {type(g).__name__}")
    if g.numel() != 1:
        raise ValueError(f"{name} must have exactly 1 element, got shape {tuple(g.shape)}")
    if not g.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {g.dtype}")
    return g.reshape(()).float().to(device)


def _check_input(x, sf_vec_size: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point() or x.dtype == torch.float8_e4m3fn:
        raise TypeError(f"input must be float32/float16/bfloat16, got {x.dtype}")
    if x.dim() < 2:
        raise ValueError(f"input must have at least 2 dims [M, K], got shape {tuple(x.shape)}")
    if sf_vec_size not in (16, 32):
        raise ValueError(f"sf_vec_size must be 16 or 32, got {sf_vec_size}")
    if x.shape[-1] % sf_vec_size != 0:
        raise ValueError(
            f"input's last dimension must be a multiple of sf_vec_size={sf_vec_size}, got {x.shape[-1]}"
        )


def _layout_sf(sf: Tensor, swizzled: bool) -> Tensor:
    """[M, C] scale bytes -> flashinfer's returned form: [Rp, Cp] swizzled or [M, C] linear."""
    if not swizzled:
        return sf.contiguous()
    return block_scale_interleave(sf).reshape(swizzled_sf_shape_2d(*sf.shape))


def _quantize_fp4_rows(
    x2: Tensor, sf_vec_size: int, ue8m0: bool, g: Tensor | None, g_is_dequant: bool
) -> tuple[Tensor, Tensor]:
    """x2 fp32 [M, K] -> (e2m1 codes [M, K] uint8, scale bytes [M, K / sf_vec_size])."""
    m, k = x2.shape
    blocks = x2.reshape(m, k // sf_vec_size, sf_vec_size)
    amax = blocks.abs().amax(dim=-1)
    one = torch.ones((), dtype=torch.float32, device=x2.device)
    if ue8m0:
        # MX: the power of two just above amax * gs / 6; then codes = e2m1(x * gs / sf).
        gs = one if g is None else (one / g if g_is_dequant else g)
        sf_bytes = ue8m0_scale_for(amax * gs, E2M1_MAX)
        sf = ue8m0_decode(sf_bytes)
        codes = e2m1_encode((blocks * gs) / sf.unsqueeze(-1))
    elif g_is_dequant:
        gd = one if g is None else g
        sf = e4m3_encode(amax / E2M1_MAX / gd).float()
        step = (sf * gd).unsqueeze(-1)
        codes = e2m1_encode(blocks / torch.where(step == 0, one, step))
        sf_bytes = e4m3_encode(sf).view(torch.uint8)
    else:
        gs = one if g is None else g
        sf = e4m3_encode(amax / E2M1_MAX * gs).float()
        safe = torch.where(sf == 0, one, sf).unsqueeze(-1)
        codes = e2m1_encode((blocks * gs) / safe)
        sf_bytes = e4m3_encode(sf).view(torch.uint8)
    codes = torch.where((sf == 0).unsqueeze(-1), torch.zeros_like(codes), codes)
    return codes.reshape(m, k), sf_bytes


def fp4_quantize(
    input: Tensor,
    global_scale: Tensor | float | None = None,
    sf_vec_size: int = 16,
    sf_use_ue8m0: bool = False,
    is_sf_swizzled_layout: bool = True,
    is_sf_8x4_layout: bool = False,
    is_global_scale_inversed: bool = False,
    enable_pdl: bool | None = None,
    backend: str = "cuda",
) -> tuple[Tensor, Tensor]:
    """input [..., K] -> (packed e2m1 uint8 [..., K/2], scale bytes uint8).

    Scales: swizzled -> [Rp, Cp] (rows padded to 128, K/sf_vec_size padded to 4) with the
    leading dims flattened into M; linear -> [M, K/sf_vec_size]. NVFP4 uses e4m3 scales (the
    default), MXFP4 is `sf_vec_size=32, sf_use_ue8m0=True`. `enable_pdl` and `backend` only
    matter to GPU kernels and are accepted for compatibility.
    """
    _check_input(input, sf_vec_size)
    if is_sf_8x4_layout:
        raise NotImplementedError("fp4_quantize: the 8x4 scale layout is not implemented")
    if not sf_use_ue8m0:
        check_standard_nvfp4_recipe("fp4_quantize")
    g = _global_value("global_scale", global_scale, input.device)
    lead, k = input.shape[:-1], input.shape[-1]
    x2 = input.float().reshape(-1, k)
    codes, sf = _quantize_fp4_rows(x2, sf_vec_size, sf_use_ue8m0, g, is_global_scale_inversed)
    packed = pack_e2m1(codes).reshape(*lead, k // 2)
    return packed, _layout_sf(sf, is_sf_swizzled_layout)


def nvfp4_quantize(
    a: Tensor,
    a_global_sf: Tensor | float,
    sfLayout: SfLayout = SfLayout.layout_128x4,
    do_shuffle: bool = False,
    sf_vec_size: int = 16,
    enable_pdl: bool | None = None,
    backend: str = "cuda",
    *,
    per_token_activation: bool = False,
    expanded_idx_to_permuted_idx: Tensor | None = None,
) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, Tensor]:
    """NVFP4 quantization with quant multiplier `a_global_sf` (gs = 448 * 6 / amax).

    `do_shuffle=True` (with the default 128x4 `sfLayout`, as in flashinfer) also applies the
    transposed-MMA row shuffle (epilogue tile 128) to the data and to the scales, which then
    come back shuffled and 128x4-swizzled in the linear shape [M, K/16] (flashinfer's form; M
    must be a multiple of 128 and K/16 of 4).

    `per_token_activation=True` (flashinfer's per-token NVFP4 activations, the `per_token_scale`
    of `trtllm_fp4_block_scale_moe`): `a_global_sf` is then the inverse base scale g (a float
    or 1-element tensor, typically 1 / (448 * 6)) and each row r of `a` [M, K] gets the dequant
    scale p_r = amax(|a[r]|) * g, returned as a third output (float32 [M]); the row is
    quantized as by `fp4_quantize(a[r], p_r, is_global_scale_inversed=True)`, so
    a[r] ~= e2m1 * sf * p_r with every block scale sf <= 1 / (6 g). Only `sf_vec_size=16` and
    `backend="cuda"` (the backend flashinfer has it on; here it names no device) are accepted,
    `ValueError` otherwise. `expanded_idx_to_permuted_idx` (int32 [>= M]) restricts the work to
    the rows `expanded_idx_to_permuted_idx[:M]` lists (negative entries, and entries outside
    [0, M), are skipped); the other rows come back as zero codes, zero scales and a zero
    per-token scale (flashinfer leaves their codes and per-token scales unwritten). An all-zero
    row gets p_r = 0 and zero codes and scales. With `do_shuffle=True` the per-token scales are
    row-shuffled with the codes.
    """
    layout = SfLayout(sfLayout)
    if per_token_activation:
        return _nvfp4_quantize_per_token(
            a, a_global_sf, layout, do_shuffle, sf_vec_size, backend, expanded_idx_to_permuted_idx
        )
    if expanded_idx_to_permuted_idx is not None:
        raise ValueError(
            "expanded_idx_to_permuted_idx is only supported with per_token_activation=True"
        )
    if layout == SfLayout.layout_8x4:
        raise NotImplementedError("nvfp4_quantize: the 8x4 scale layout is not implemented")
    if do_shuffle:
        from ..fused_moe.layout import shuffle_matrix_a

        if layout != SfLayout.layout_128x4:
            raise ValueError("nvfp4_quantize: do_shuffle=True needs sfLayout=SfLayout.layout_128x4")
        q, sf = fp4_quantize(a, a_global_sf, sf_vec_size, False, False)
        return shuffle_matrix_a(q, 128), _shuffled_sf_in_linear_shape(sf, sf_vec_size)
    return fp4_quantize(a, a_global_sf, sf_vec_size, False, layout == SfLayout.layout_128x4)


def _selected_rows(m: int, expanded_idx_to_permuted_idx, device) -> Tensor | None:
    """bool [M]: the rows an expanded -> permuted map lists (computed on the device)."""
    if expanded_idx_to_permuted_idx is None:
        return None
    idx = expanded_idx_to_permuted_idx
    if not isinstance(idx, torch.Tensor) or idx.dtype != torch.int32 or idx.dim() != 1:
        raise TypeError("expanded_idx_to_permuted_idx must be a 1-D int32 tensor")
    if idx.numel() < m:
        raise ValueError(
            f"expanded_idx_to_permuted_idx must have at least M={m} entries, got {idx.numel()}"
        )
    rows = idx[:m].to(device=device, dtype=torch.int64)
    rows = torch.where((rows >= 0) & (rows < m), rows, torch.full_like(rows, m))  # m = skip
    selected = torch.zeros(m + 1, dtype=torch.bool, device=device)
    selected[rows] = True
    return selected[:m]


def _nvfp4_quantize_per_token(
    a, a_global_sf, layout: SfLayout, do_shuffle, sf_vec_size, backend, expanded_idx_to_permuted_idx
):
    if backend != "cuda":
        raise ValueError("Per-token NVFP4 quantization only supports backend='cuda'")
    if sf_vec_size != 16:
        raise ValueError("Per-token NVFP4 quantization only supports sf_vec_size=16")
    _check_input(a, sf_vec_size)
    if a.dim() != 2:
        raise ValueError(f"a must be 2-D [M, K] for per-token quantization, got {tuple(a.shape)}")
    if do_shuffle and layout != SfLayout.layout_128x4:
        raise ValueError("nvfp4_quantize: do_shuffle=True needs sfLayout=SfLayout.layout_128x4")
    if layout == SfLayout.layout_8x4:
        raise NotImplementedError("nvfp4_quantize: the 8x4 scale layout is not implemented")
    check_standard_nvfp4_recipe("nvfp4_quantize")
    g = _global_value("a_global_sf", a_global_sf, a.device)
    if g is None:
        raise TypeError("a_global_sf must be a float or a 1-element tensor, got None")
    m, k = a.shape
    x = a.float()
    selected = _selected_rows(m, expanded_idx_to_permuted_idx, a.device)
    if selected is not None:
        x = torch.where(selected.unsqueeze(1), x, torch.zeros_like(x))
    per_token = x.abs().amax(dim=1) * g  # fp32, as the kernel's amax * scale_inv
    safe = torch.where(per_token == 0, torch.ones_like(per_token), per_token)
    codes, sf = _quantize_fp4_rows(x, 16, False, safe.unsqueeze(1), True)
    packed = pack_e2m1(codes)
    if not do_shuffle:
        return packed, _layout_sf(sf, layout == SfLayout.layout_128x4), per_token
    from ..fused_moe.layout import get_shuffle_matrix_a_row_indices

    rows = get_shuffle_matrix_a_row_indices(packed, 128)
    shuffled_sf = _shuffled_sf_in_linear_shape(sf, 16)
    return packed[rows].contiguous(), shuffled_sf, per_token[rows].contiguous()


def _shuffled_sf_in_linear_shape(sf: Tensor, sf_vec_size: int) -> Tensor:
    """`shuffle_matrix_sf_a(sf, 128)` (row shuffle, then 128x4 swizzle) viewed in the linear
    scales' shape [M, K/sfv], as flashinfer returns it; that needs a swizzle without padding."""
    from ..fused_moe.layout import shuffle_matrix_sf_a

    m, cols = sf.shape
    if m % 128 != 0 or cols % 4 != 0:
        raise ValueError(
            f"nvfp4_quantize: do_shuffle=True needs M % 128 == 0 and K/{sf_vec_size} % 4 == 0, "
            f"got M={m}, K={cols * sf_vec_size}"
        )
    return shuffle_matrix_sf_a(sf, 128, sf_vec_size).reshape(m, cols)


def mxfp4_quantize(
    a: Tensor,
    backend: str = "cuda",
    enable_pdl: bool | None = None,
    sfLayout: SfLayout = SfLayout.layout_128x4,
) -> tuple[Tensor, Tensor]:
    """MXFP4: e2m1 with ue8m0 scales per 32 elements, no global scale."""
    layout = SfLayout(sfLayout)
    if layout == SfLayout.layout_8x4:
        raise NotImplementedError("mxfp4_quantize: the 8x4 scale layout is not implemented")
    return fp4_quantize(a, None, 32, True, layout == SfLayout.layout_128x4)


def _linear_sf(sf: Tensor, m: int, cols: int, swizzled: bool) -> Tensor:
    if swizzled:
        return block_scale_deinterleave(sf, (m, cols))
    if sf.numel() != m * cols:
        raise ValueError(f"sf must hold {m} x {cols} linear scales, got shape {tuple(sf.shape)}")
    return sf.reshape(m, cols)


def e2m1_and_ufp8sf_scale_to_float(
    e2m1_tensor: Tensor,
    ufp8_scale_tensor: Tensor,
    global_scale_tensor: Tensor | float | None = None,
    sf_vec_size: int = 16,
    ufp8_type: int = 1,
    is_sf_swizzled_layout: bool = True,
    is_sf_8x4_layout: bool = False,
) -> Tensor:
    """Packed e2m1 [M, K/2] + block scales -> fp32 [M, K] = (e2m1 * sf) * global.

    `global_scale_tensor` is the DEQUANT global (the inverse of fp4_quantize's gs).
    `ufp8_type`: 1 = e4m3 scales, 0 = ue8m0 scales.
    """
    if not isinstance(e2m1_tensor, torch.Tensor) or e2m1_tensor.dim() != 2:
        raise ValueError("e2m1_tensor must be a 2-D uint8 tensor [M, K/2]")
    if sf_vec_size not in (16, 32):
        raise ValueError(f"sf_vec_size must be 16 or 32, got {sf_vec_size}")
    if ufp8_type not in (0, 1):
        raise ValueError(f"ufp8_type must be 0 (ue8m0) or 1 (e4m3), got {ufp8_type}")
    if is_sf_8x4_layout:
        raise NotImplementedError("the 8x4 scale layout is not implemented")
    codes = unpack_e2m1(e2m1_tensor)
    m, k = codes.shape
    if k % sf_vec_size != 0:
        raise ValueError(f"K={k} must be a multiple of sf_vec_size={sf_vec_size}")
    sf_bytes = _linear_sf(
        as_code_bytes("ufp8_scale_tensor", ufp8_scale_tensor),
        m,
        k // sf_vec_size,
        is_sf_swizzled_layout,
    )
    sf = e4m3_decode(sf_bytes) if ufp8_type == 1 else ue8m0_decode(sf_bytes)
    v = e2m1_decode(codes) * sf.repeat_interleave(sf_vec_size, dim=1)
    g = _global_value("global_scale_tensor", global_scale_tensor, v.device)
    return v if g is None else v * g


def mxfp4_dequantize(
    a_fp4: Tensor, a_sf: Tensor, sfLayout: SfLayout = SfLayout.layout_128x4
) -> Tensor:
    """Inverse of `mxfp4_quantize` (fp32 [M, K])."""
    layout = SfLayout(sfLayout)
    if layout == SfLayout.layout_8x4:
        raise NotImplementedError("mxfp4_dequantize: the 8x4 scale layout is not implemented")
    return e2m1_and_ufp8sf_scale_to_float(a_fp4, a_sf, None, 32, 0, layout == SfLayout.layout_128x4)


def mxfp4_dequantize_host(weight: Tensor, scale: Tensor, group_size: int = 32) -> Tensor:
    """Packed e2m1 [..., K/2] with linear ue8m0 scales [..., K/group_size] -> fp32 [..., K]."""
    codes = unpack_e2m1(weight)
    k = codes.shape[-1]
    if group_size <= 0 or k % group_size != 0:
        raise ValueError(f"group_size must divide K={k}, got {group_size}")
    sf = ue8m0_decode(scale)
    if tuple(sf.shape) != (*codes.shape[:-1], k // group_size):
        raise ValueError(
            f"scale must have shape {(*codes.shape[:-1], k // group_size)}, got {tuple(scale.shape)}"
        )
    return e2m1_decode(codes) * sf.repeat_interleave(group_size, dim=-1)
