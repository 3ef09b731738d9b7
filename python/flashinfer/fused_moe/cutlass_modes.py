"""Per-quantization-mode translators of the full ``cutlass_fused_moe`` form.

``api_cutlass.cutlass_full_problem`` checks the mode-independent arguments, picks a mode with
``select_mode`` (from the input dtype, the weight kind and the flags) and calls ``MODES[mode]``,
which checks ``quant_scales`` / ``input_sf`` and returns the canonical input, activation
quantization, weights, intermediate quantization and compute dtype. The meaning of each mode's
scales (all turned into dequant multipliers, docs/semantics.md) is in api_cutlass's docstring.
"""

from __future__ import annotations

import math

import torch

from .enums import ActQuant, ElemFormat, ScaleFormat, ScaleLayout
from .problem import ActQuantSpec, QuantTensor
from .validation import FLOAT_DTYPES, FP8_E4M3, FP8_E8M0, check_tensor, dtype_name

Tensor = torch.Tensor

FP4_WEIGHT_DTYPES = (torch.int64, torch.uint8)  # packed fp4: 16 codes per int64, 2 per uint8
_BLOCK_SCALE_DTYPES = tuple(
    d for d in (torch.int32, torch.uint8, FP8_E4M3, FP8_E8M0) if d is not None
)


# ---- scale helpers -----------------------------------------------------------------------------


def _scalar_or_per_expert(name: str, t, e: int, device) -> Tensor:
    """A float32 scale given as a scalar ([] / [1]) or one per local expert [E]; returns [1] or [E]."""
    check_tensor(name, t, dtypes=(torch.float32,), device=device)
    if t.numel() == 1 and t.dim() <= 1:
        return t.reshape(1)
    check_tensor(name, t, shape=(e,))
    return t


def _per_expert(name: str, t, e: int, device) -> Tensor:
    return check_tensor(name, t, dtypes=(torch.float32,), shape=(e,), device=device)


def _swizzled_scale(name: str, t, e: int, rows: int, cols: int, device) -> Tensor:
    """128x4-swizzled block scales of ``e`` matrices (rows x cols scales) as uint8 bytes."""
    check_tensor(name, t, dtypes=_BLOCK_SCALE_DTYPES, device=device)
    if t.dtype != torch.uint8:
        if t.dim() == 0 or t.stride(-1) != 1:
            raise ValueError(f"{name}: expected a contiguous tensor, got strides {t.stride()}")
        t = t.view(torch.uint8)
    need = e * math.ceil(rows / 128) * 128 * math.ceil(cols / 4) * 4
    if t.numel() < need:
        raise ValueError(
            f"{name}: expected at least {need} scale bytes ({e} x pad128({rows}) x pad4({cols})), got {t.numel()}"
        )
    return t


def _fp4_data(name: str, w: Tensor) -> Tensor:
    """Packed fp4 weights given as int64 (16 codes per element) or uint8 (2 per byte) -> uint8."""
    if w.dtype == torch.uint8:
        return w
    if w.stride(-1) != 1:
        raise ValueError(
            f"{name}: expected the last dimension contiguous to view int64 as packed bytes, got strides {w.stride()}"
        )
    return w.view(torch.uint8)


def _act_scale_input(name, t, rows: int, cols: int, fmt: ScaleFormat, swizzled: bool, device):
    """``input_sf`` of a pre-quantized input: swizzled bytes or a linear [T, cols] grid."""
    if t is None:
        raise ValueError(f"{name}: expected the block scales of the pre-quantized input, got None")
    if swizzled:
        return _swizzled_scale(name, t, 1, rows, cols, device), ScaleLayout.Swizzled128x4
    check_tensor(name, t, dtypes=_BLOCK_SCALE_DTYPES, device=device)
    if t.dtype == torch.int32:
        t = t.view(torch.uint8)
    check_tensor(name, t, shape=(rows, cols))
    return t, ScaleLayout.Linear


def _n_scales(quant_scales, n: int, mode: str) -> list:
    if len(quant_scales) != n:
        raise ValueError(f"quant_scales: expected {n} tensors for {mode}, got {len(quant_scales)}")
    return list(quant_scales)


# ---- the modes -----------------------------------------------------------------------------------


def select_mode(w_kind: str, x: Tensor, deepseek: bool, mxfp8_act: bool) -> str:
    if w_kind == "float":
        if deepseek or mxfp8_act:
            flag = "use_deepseek_fp8_block_scale" if deepseek else "use_mxfp8_act_scaling"
            raise ValueError(f"{flag}: expected False with float weights, got True")
        return "float"
    if deepseek:
        if w_kind != "fp8":
            raise ValueError(
                "use_deepseek_fp8_block_scale: expected float8_e4m3fn weights, got packed fp4 weights"
            )
        return "deepseek"
    if mxfp8_act:
        return "mxfp8_act"
    if w_kind == "fp8":
        if x.dtype != FP8_E4M3:
            raise NotImplementedError(
                f"cutlass_fused_moe: {dtype_name(x.dtype)} activations with float8_e4m3fn weights are not implemented "
                "(pass an e4m3 input for W8A8, or use_deepseek_fp8_block_scale=True)"
            )
        return "w8a8"
    return "fp8_mxfp4" if x.dtype == FP8_E4M3 else "nvfp4"


def _mode_float(x, fc1, fc2, qs, input_sf, swz, e, h, i, m1, out_dtype, device):
    check_tensor("input", x, dtypes=fc1.dtype, shape=(None, h))
    if qs:
        raise ValueError(
            f"quant_scales: expected None or [] for {dtype_name(fc1.dtype)} weights, got {len(qs)} tensors"
        )
    if input_sf is not None:
        raise ValueError("input_sf: expected None for an unquantized input, got a tensor")
    return (
        QuantTensor(x),
        ActQuantSpec(),
        QuantTensor(fc1),
        QuantTensor(fc2),
        ActQuantSpec(),
        x.dtype,
    )


def _mode_w8a8(x, fc1, fc2, qs, input_sf, swz, e, h, i, m1, out_dtype, device):
    check_tensor("input", x, shape=(None, h))
    fc1_dq, fc2_aq, fc2_dq, fc1_in_dq = _n_scales(qs, 4, "W8A8 FP8 per-tensor")
    fc1_dq = _per_expert("quant_scales[0] (fc1_dequant)", fc1_dq, e, device)
    fc2_aq = _scalar_or_per_expert("quant_scales[1] (fc2_act_quant)", fc2_aq, e, device)
    fc2_dq = _per_expert("quant_scales[2] (fc2_dequant)", fc2_dq, e, device)
    _scalar_or_per_expert(
        "quant_scales[3] (fc1_input_dequant)", fc1_in_dq, 1, device
    )  # folded into fc1_dequant
    w1 = QuantTensor(fc1, ElemFormat.E4M3, global_scale=fc1_dq)
    w2 = QuantTensor(fc2, ElemFormat.E4M3, global_scale=fc2_dq * fc2_aq)
    inter_q = ActQuantSpec(ActQuant.Fp8Static, static_scale=1.0 / fc2_aq)
    return QuantTensor(x, ElemFormat.E4M3), ActQuantSpec(), w1, w2, inter_q, out_dtype


def _mode_deepseek(x, fc1, fc2, qs, input_sf, swz, e, h, i, m1, out_dtype, device):
    check_tensor("input", x, dtypes=FLOAT_DTYPES, shape=(None, h))
    s1, s2 = _n_scales(qs, 2, "DeepSeek FP8 block scaling")
    grid1 = (e, math.ceil(m1 / 128), math.ceil(h / 128))
    grid2 = (e, math.ceil(h / 128), math.ceil(i / 128))
    check_tensor(
        "quant_scales[0] (fc1 block scales)",
        s1,
        dtypes=(torch.float32,),
        shape=grid1,
        device=device,
    )
    check_tensor(
        "quant_scales[1] (fc2 block scales)",
        s2,
        dtypes=(torch.float32,),
        shape=grid2,
        device=device,
    )
    w1 = QuantTensor(fc1, ElemFormat.E4M3, scale=s1, block_rows=128, block_cols=128)
    w2 = QuantTensor(fc2, ElemFormat.E4M3, scale=s2, block_rows=128, block_cols=128)
    group = ActQuantSpec(ActQuant.Fp8PerGroup, group_size=128)
    return (
        QuantTensor(x),
        group,
        w1,
        w2,
        ActQuantSpec(ActQuant.Fp8PerGroup, group_size=128),
        x.dtype,
    )


def _fp4_weights(fc1, fc2, sf1, sf2, g1, g2, e, h, i, m1, block, sfmt, device):
    sf1 = _swizzled_scale("quant_scales (fc1 block scales)", sf1, e, m1, h // block, device)
    sf2 = _swizzled_scale("quant_scales (fc2 block scales)", sf2, e, h, i // block, device)
    swz = ScaleLayout.Swizzled128x4
    w1 = QuantTensor(
        _fp4_data("fc1_expert_weights", fc1), ElemFormat.E2M1Packed, sf1, sfmt, swz, 1, block, g1
    )
    w2 = QuantTensor(
        _fp4_data("fc2_expert_weights", fc2), ElemFormat.E2M1Packed, sf2, sfmt, swz, 1, block, g2
    )
    return w1, w2


def _mode_nvfp4(x, fc1, fc2, qs, input_sf, swz, e, h, i, m1, out_dtype, device):
    a1, sf1, g1, a2, sf2, g2 = _n_scales(qs, 6, "NVFP4 (W4A4)")
    a1 = _scalar_or_per_expert("quant_scales[0] (fc1_act_global)", a1, e, device)
    g1 = _per_expert("quant_scales[2] (fc1_global)", g1, e, device)
    a2 = _scalar_or_per_expert("quant_scales[3] (fc2_act_global)", a2, e, device)
    g2 = _per_expert("quant_scales[5] (fc2_global)", g2, e, device)
    if x.dtype == torch.uint8:  # pre-quantized packed NVFP4 input
        check_tensor("input", x, shape=(None, h // 2))
        sf, layout = _act_scale_input(
            "input_sf", input_sf, x.shape[0], h // 16, ScaleFormat.E4M3, swz, device
        )
        x_q = QuantTensor(x, ElemFormat.E2M1Packed, sf, ScaleFormat.E4M3, layout, 1, 16)
        in_q, w1_global, compute = ActQuantSpec(), g1, out_dtype
    else:
        check_tensor("input", x, dtypes=FLOAT_DTYPES, shape=(None, h))
        x_q, in_q = QuantTensor(x), ActQuantSpec(ActQuant.NvFp4, static_scale=1.0 / a1)
        w1_global, compute = g1 * a1, x.dtype
    w2_global = g2 * a2
    w1, w2 = _fp4_weights(
        fc1, fc2, sf1, sf2, w1_global, w2_global, e, h, i, m1, 16, ScaleFormat.E4M3, device
    )
    return x_q, in_q, w1, w2, ActQuantSpec(ActQuant.NvFp4, static_scale=1.0 / a2), compute


def _mode_mxfp8_act(x, fc1, fc2, qs, input_sf, swz, e, h, i, m1, out_dtype, device):
    sf1, g1, sf2, g2 = _n_scales(qs, 4, "MXFP8 activations (use_mxfp8_act_scaling)")
    g1 = _per_expert("quant_scales[1] (fc1_global)", g1, e, device)
    g2 = _per_expert("quant_scales[3] (fc2_global)", g2, e, device)
    if fc1.dtype == FP8_E4M3:  # MXFP8 x MXFP8
        s1 = _swizzled_scale("quant_scales[0] (fc1 block scales)", sf1, e, m1, h // 32, device)
        s2 = _swizzled_scale("quant_scales[2] (fc2 block scales)", sf2, e, h, i // 32, device)
        swl = ScaleLayout.Swizzled128x4
        w1 = QuantTensor(fc1, ElemFormat.E4M3, s1, ScaleFormat.UE8M0, swl, 1, 32, g1)
        w2 = QuantTensor(fc2, ElemFormat.E4M3, s2, ScaleFormat.UE8M0, swl, 1, 32, g2)
    else:
        w1, w2 = _fp4_weights(
            fc1, fc2, sf1, sf2, g1, g2, e, h, i, m1, 32, ScaleFormat.UE8M0, device
        )
    if x.dtype == FP8_E4M3:
        check_tensor("input", x, shape=(None, h))
        sf, layout = _act_scale_input(
            "input_sf", input_sf, x.shape[0], h // 32, ScaleFormat.UE8M0, swz, device
        )
        x_q, in_q, compute = (
            QuantTensor(x, ElemFormat.E4M3, sf, ScaleFormat.UE8M0, layout, 1, 32),
            ActQuantSpec(),
            out_dtype,
        )
    else:
        check_tensor("input", x, dtypes=FLOAT_DTYPES, shape=(None, h))
        x_q, in_q, compute = QuantTensor(x), ActQuantSpec(ActQuant.MxFp8), x.dtype
    return x_q, in_q, w1, w2, ActQuantSpec(ActQuant.MxFp8), compute


def _mode_fp8_mxfp4(x, fc1, fc2, qs, input_sf, swz, e, h, i, m1, out_dtype, device):
    check_tensor("input", x, shape=(None, h))
    sf1, g1, a2, sf2, g2 = _n_scales(qs, 5, "FP8 per-tensor activations x MXFP4 weights")
    g1 = _per_expert("quant_scales[1] (fc1_global)", g1, e, device)
    a2 = _scalar_or_per_expert("quant_scales[2] (fc2_act_global)", a2, e, device)
    g2 = _per_expert("quant_scales[4] (fc2_global)", g2, e, device)
    w2_global = g2 * a2
    w1, w2 = _fp4_weights(
        fc1, fc2, sf1, sf2, g1, w2_global, e, h, i, m1, 32, ScaleFormat.UE8M0, device
    )
    inter_q = ActQuantSpec(ActQuant.Fp8Static, static_scale=1.0 / a2)
    return QuantTensor(x, ElemFormat.E4M3), ActQuantSpec(), w1, w2, inter_q, out_dtype


MODES = {
    "float": _mode_float,
    "w8a8": _mode_w8a8,
    "deepseek": _mode_deepseek,
    "nvfp4": _mode_nvfp4,
    "mxfp8_act": _mode_mxfp8_act,
    "fp8_mxfp4": _mode_fp8_mxfp4,
}
