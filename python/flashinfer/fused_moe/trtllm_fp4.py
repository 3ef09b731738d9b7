"""The FP4 path of ``trtllm_fp4_block_scale_moe``: its inputs as canonical problem pieces.

``fp4_problem_parts`` detects the activation kind from ``hidden_states`` (NvFP4, MxFP8,
per-tensor FP8, BF16) and the weight kind from the scale count (NvFP4 or MxFP4), restores
flashinfer-prepared weights and scales with ``trtllm_translate``'s layout helpers, folds the
output scalars into dequant multipliers and returns the ``MoeProblem`` fields of the call.
"""

from __future__ import annotations

import torch

from .enums import ActivationType, ActQuant, ElemFormat, ScaleFormat
from .problem import ActQuantSpec, QuantTensor
from .trtllm_translate import (
    fold_output_scalars,
    per_expert_f32,
    restore_rows,
    restore_swizzled_scales,
    restore_weight_stack,
    scale_bias,
    up_scaled_by_output1,
)
from .validation import check_tensor

Tensor = torch.Tensor


def _fp4_input(hidden_states, hidden_states_scale, num_tokens: int):
    """Detects the activation kind from ``hidden_states`` -> (kind, H, canonical input)."""
    x, hs = hidden_states, hidden_states_scale
    check_tensor("hidden_states", x, ndim=2)
    scale_bytes = tuple(
        d for d in (torch.uint8, torch.float8_e4m3fn, getattr(torch, "float8_e8m0fnu", None)) if d
    )
    if x.dtype == torch.uint8:  # NvFP4: packed e2m1 [T, H/2] + e4m3 scales [T, H/16]
        h = 2 * x.shape[1]
        check_tensor(
            "hidden_states_scale",
            hs,
            dtypes=(torch.float8_e4m3fn, torch.uint8),
            shape=(num_tokens, -(-h // 16)),
        )
        return (
            "nvfp4",
            h,
            QuantTensor(
                x,
                ElemFormat.E2M1Packed,
                hs.view(torch.uint8),
                ScaleFormat.E4M3,
                block_rows=1,
                block_cols=16,
            ),
        )
    if x.dtype == torch.float8_e4m3fn:
        h = x.shape[1]
        if hs is None:  # per-tensor FP8: the output scalars carry every scale
            return "fp8", h, QuantTensor(x, ElemFormat.E4M3)
        check_tensor("hidden_states_scale", hs, dtypes=scale_bytes, shape=(num_tokens, -(-h // 32)))
        return (
            "mxfp8",
            h,
            QuantTensor(
                x,
                ElemFormat.E4M3,
                hs.view(torch.uint8),
                ScaleFormat.UE8M0,
                block_rows=1,
                block_cols=32,
            ),
        )
    if x.dtype == torch.bfloat16:
        if hs is not None:
            raise ValueError(
                "hidden_states_scale: expected None with bf16 hidden_states, got a tensor"
            )
        return "bf16", x.shape[1], QuantTensor(x)
    raise TypeError(
        f"hidden_states: expected uint8 (NvFP4), float8_e4m3fn or bfloat16, got {x.dtype}"
    )


def fp4_problem_parts(
    a, x: Tensor, *, num_local: int, intermediate_size: int, act: ActivationType, shuffled: bool,
    block_major_k: bool,
) -> dict:  # fmt: skip
    """The MoeProblem fields of the FP4 path (input, weights, biases, inter_quant) and H.

    Weight format from the scale count: 16 elements per scale = NvFP4 (e4m3 scales, global =
    the output scalars), 32 = MxFP4 (ue8m0). Activation kind from ``hidden_states``; allowed
    pairs are flashinfer's: NvFP4 x NvFP4, and BF16 / per-tensor FP8 / MxFP8 x MxFP4. Biases
    come in raw-accumulator units and are converted with the GEMM's dequant scalar.
    """
    nl, i = num_local, intermediate_size
    kind, h, inp = _fp4_input(x, a.hidden_states_scale, x.shape[0])
    m1, gated = (2 * i if act.is_gated else i), act.is_gated
    lay = dict(num_local=nl, shuffled=shuffled, block_major_k=block_major_k, epilogue_tile_m=128)
    check_tensor("gemm1_weights", a.gemm1_weights, dtypes=torch.uint8)
    check_tensor("gemm2_weights", a.gemm2_weights, dtypes=torch.uint8)
    w1 = restore_weight_stack("gemm1_weights", a.gemm1_weights, rows=m1, k_bytes=h // 2,
                              gated_interleave=gated, **lay)  # fmt: skip
    w2 = restore_weight_stack("gemm2_weights", a.gemm2_weights, rows=h, k_bytes=i // 2,
                              gated_interleave=False, **lay)  # fmt: skip
    scale_dtypes = (torch.float8_e4m3fn, torch.uint8)
    check_tensor("gemm1_weights_scale", a.gemm1_weights_scale, dtypes=scale_dtypes)
    check_tensor("gemm2_weights_scale", a.gemm2_weights_scale, dtypes=scale_dtypes)
    sfv = 32 if nl * m1 * h >= 24 * max(a.gemm1_weights_scale.numel(), 1) else 16
    nvfp4_weights = sfv == 16
    if nvfp4_weights != (kind == "nvfp4"):
        raise NotImplementedError(
            f"hidden_states: {kind} activations with {'NvFP4' if nvfp4_weights else 'MxFP4'} "
            "weights are not supported (expected NvFP4 x NvFP4, or BF16 / FP8 / MxFP8 "
            "activations x MxFP4 weights)"
        )

    def scales(name, sf, rows, cols, interleave):
        if not shuffled:
            return check_tensor(name, sf, shape=(nl, rows, cols)).view(torch.uint8)
        return restore_swizzled_scales(name, sf, num_local=nl, rows=rows, cols=cols,
                                       epilogue_tile_m=128, gated_interleave=interleave)  # fmt: skip

    s1 = scales("gemm1_weights_scale", a.gemm1_weights_scale, m1, -(-h // sfv), gated)
    s2 = scales("gemm2_weights_scale", a.gemm2_weights_scale, h, -(-i // sfv), False)
    required = kind in ("nvfp4", "fp8")
    out1, gate, out2 = (
        per_expert_f32(n, getattr(a, n), nl, required=required)
        for n in ("output1_scale_scalar", "output1_scale_gate_scalar", "output2_scale_scalar")
    )
    w1_global, inter_scale, w2_global = fold_output_scalars(
        out1, gate, out2, up_scaled_by_output1(act)
    )
    # NvFP4 / FP8 intermediates are quantized with the static scale the scalars imply; the MxFP8
    # intermediate is requantized dynamically (exact when out1 / out1_gate is a power of two, as
    # with the unit scalars these paths use); BF16 activations keep a bf16 intermediate.
    inter = {
        "nvfp4": ActQuantSpec(ActQuant.NvFp4, static_scale=inter_scale),
        "fp8": ActQuantSpec(ActQuant.Fp8Static, static_scale=inter_scale),
        "mxfp8": ActQuantSpec(ActQuant.MxFp8),
        "bf16": ActQuantSpec(ActQuant.None_),
    }[kind]

    def bias(name, b, rows, interleave, dequant):
        if b is None:
            return None
        check_tensor(name, b, dtypes=torch.float32, shape=(nl, rows))
        restored = restore_rows(name, b, shuffled=shuffled, epilogue_tile_m=128,
                                gated_interleave=interleave)  # fmt: skip
        return scale_bias(restored, dequant)

    sfmt = ScaleFormat.E4M3 if nvfp4_weights else ScaleFormat.UE8M0
    fp4 = dict(format=ElemFormat.E2M1Packed, scale_format=sfmt, block_rows=1, block_cols=sfv)
    return dict(
        hidden_size=h,
        input=inp,
        w1=QuantTensor(w1, scale=s1, global_scale=w1_global, **fp4),
        w2=QuantTensor(w2, scale=s2, global_scale=w2_global, **fp4),
        w1_bias=bias("gemm1_bias", a.gemm1_bias, m1, gated, w1_global),
        w2_bias=bias("gemm2_bias", a.gemm2_bias, h, False, out2),
        inter_quant=inter,
    )
