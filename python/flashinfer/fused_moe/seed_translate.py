"""Shared pieces of the seed call forms (``seed_forms.py``): checks, weight views and block scales.

``check_seed_call`` validates what every seed form has in common (``x``, ``gating_output``,
``experts`` as a two-matrix tensor or an ``(fc1, fc2)`` pair, the size keywords, routing,
activation, capacity, ``output``) and returns a ``SeedShape``; ``canonical_weight_views`` gives
the canonical ``w1`` / ``w2`` as strided views (never copies); ``attach_block_scales`` applies the
block-shape rule of the seed scales (seed_forms' module docstring) and ``seed_problem`` assembles
the ``MoeProblem``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .enums import ActivationType, ElemFormat, GatedActType, ScaleFormat
from .problem import ActQuantSpec, MoeProblem, QuantTensor, RoutingSpec
from .routing import check_routing_args
from .validation import (
    FLOAT_DTYPES,
    FP8_E4M3,
    FP8_E8M0,
    check_enum,
    check_equal,
    check_int,
    check_output,
    check_tensor,
    dtype_name,
)

Tensor = torch.Tensor

_TWO_MATRIX_ACT = {
    GatedActType.SwiGlu: ActivationType.Silu,
    GatedActType.GeGlu: ActivationType.Gelu,
}
_PAIR_ACT = {GatedActType.SwiGlu: ActivationType.Swiglu, GatedActType.GeGlu: ActivationType.Geglu}


@dataclass
class SeedShape:
    """What the common checks learned about a seed call."""

    num_tokens: int
    hidden: int
    inter: int
    num_experts: int
    top_k: int
    two_matrix: bool
    activation: ActivationType
    routing: RoutingSpec
    capacity: int
    device: torch.device
    output: Tensor | None


def _split_experts(experts) -> tuple[bool, Tensor, Tensor | None]:
    """(two_matrix, tensor_or_fc1, fc2) from the ``experts`` argument."""
    if isinstance(experts, torch.Tensor):
        if experts.dim() != 4 or experts.shape[1] != 2:
            raise ValueError(
                f"experts: expected a tensor [E, 2, I, H] or a pair (fc1, fc2), got shape {tuple(experts.shape)}"
            )
        return True, experts, None
    if isinstance(experts, (tuple, list)) and len(experts) == 2:
        fc1 = check_tensor("experts[0] (fc1)", experts[0], ndim=3)
        fc2 = check_tensor("experts[1] (fc2)", experts[1], ndim=3)
        return False, fc1, fc2
    raise TypeError(
        f"experts: expected a tensor [E, 2, I, H] or a pair (fc1, fc2), got {type(experts).__name__}"
    )


def _packed_or_plain(name: str, stored: int, logical: int, allow_packed: bool) -> bool:
    """True when a last dimension holds two fp4 codes per byte (``logical / 2``)."""
    if stored == logical:
        return False
    if allow_packed and logical % 2 == 0 and stored == logical // 2:
        return True
    want = (
        f"{logical} or {logical // 2} (packed fp4)"
        if allow_packed and logical % 2 == 0
        else str(logical)
    )
    raise ValueError(f"{name}: expected last dimension {want}, got {stored}")


def check_seed_call(
    x,
    gating_output,
    experts,
    *,
    num_experts,
    top_k,
    hidden_size,
    intermediate_size,
    routing_method,
    act_type,
    expert_capacity,
    output,
    fp4: bool = False,
    output_dtypes: tuple | None = None,
) -> tuple[SeedShape, Tensor, Tensor | None]:
    """The checks every seed form shares. ``output`` must be contiguous [T, H] of one of
    ``output_dtypes`` (default: ``x``'s dtype only)."""
    check_tensor("x", x, dtypes=FLOAT_DTYPES, ndim=2)
    device = x.device
    num_tokens, hidden = x.shape
    two_matrix, w_a, w_b = _split_experts(experts)
    check_tensor("experts", w_a, device=device)
    if w_b is not None:
        check_tensor("experts[1] (fc2)", w_b, device=device)
    e = w_a.shape[0]
    if two_matrix:
        inter = w_a.shape[2]
        _packed_or_plain("experts", w_a.shape[3], hidden, fp4)
    else:
        if w_a.shape[1] % 2 != 0:
            raise ValueError(
                f"experts[0] (fc1): expected an even row count 2I ([up ; gate]), got {w_a.shape[1]}"
            )
        inter = w_a.shape[1] // 2
        _packed_or_plain("experts[0] (fc1)", w_a.shape[2], hidden, fp4)
        if w_b.shape[0] != e or w_b.shape[1] != hidden:
            raise ValueError(
                f"experts[1] (fc2): expected shape ({e}, {hidden}, {inter}), got {tuple(w_b.shape)}"
            )
        _packed_or_plain("experts[1] (fc2)", w_b.shape[2], inter, fp4)

    check_int("num_experts", num_experts, 1)
    check_equal("num_experts", num_experts, e, "experts.shape[0]")
    check_tensor(
        "gating_output", gating_output, dtypes=FLOAT_DTYPES + (torch.float64,), device=device
    )
    check_tensor("gating_output", gating_output, shape=(num_tokens, e))
    if hidden_size is not None:
        check_equal("hidden_size", check_int("hidden_size", hidden_size), hidden, "x.shape[1]")
    if intermediate_size is not None:
        check_equal(
            "intermediate_size",
            check_int("intermediate_size", intermediate_size),
            inter,
            "from experts",
        )
    method = check_routing_args(routing_method, top_k, e)
    act = check_enum("act_type", act_type, GatedActType)
    capacity = 0 if expert_capacity is None else check_int("expert_capacity", expert_capacity, 0)
    output = check_output(
        "output", output, shape=(num_tokens, hidden), dtype=output_dtypes or x.dtype, device=device
    )

    shape = SeedShape(
        num_tokens=num_tokens,
        hidden=hidden,
        inter=inter,
        num_experts=e,
        top_k=int(top_k),
        two_matrix=two_matrix,
        activation=(_TWO_MATRIX_ACT if two_matrix else _PAIR_ACT)[act],
        # The executors read f32 / f16 / bf16 logits as float (exactly the f32 conversion), so
        # the caller's tensor is used as it is: no conversion per call.
        routing=RoutingSpec(method=method, logits=gating_output),
        capacity=capacity,
        device=device,
        output=output,
    )
    return shape, w_a, w_b


def seed_problem(
    s: SeedShape, x: Tensor, w1: QuantTensor, w2: QuantTensor, input_quant=None, inter_quant=None
) -> MoeProblem:
    return MoeProblem(
        num_tokens=s.num_tokens,
        hidden_size=s.hidden,
        intermediate_size=s.inter,
        num_experts=s.num_experts,
        local_expert_offset=0,
        local_num_experts=s.num_experts,
        top_k=s.top_k,
        routing=s.routing,
        input=QuantTensor(x),
        w1=w1,
        w2=w2,
        expert_capacity=s.capacity,
        input_quant=input_quant or ActQuantSpec(),
        inter_quant=inter_quant or ActQuantSpec(),
        activation=s.activation,
        compute_dtype=x.dtype,
        output=s.output,
    )


def canonical_weight_views(s: SeedShape, w_a: Tensor, w_b: Tensor | None) -> tuple[Tensor, Tensor]:
    """(w1 [E, M1, H], w2 [E, H, I]) as views of the seed tensors."""
    if s.two_matrix:
        return w_a[:, 0], w_a[:, 1].transpose(1, 2)
    return w_a, w_b


# ---- scales ----------------------------------------------------------------------------------


def scale_format_of(name: str, scale: Tensor) -> ScaleFormat:
    if scale.dtype == FP8_E4M3:
        return ScaleFormat.E4M3
    if scale.dtype == torch.uint8 or (FP8_E8M0 is not None and scale.dtype == FP8_E8M0):
        return ScaleFormat.UE8M0
    if scale.dtype in FLOAT_DTYPES:
        return ScaleFormat.Float
    raise TypeError(
        f"{name}: expected dtype float8_e4m3fn, uint8/float8_e8m0fnu (ue8m0), float32, float16 or "
        f"bfloat16, got {dtype_name(scale.dtype)}"
    )


def _block_scale(name: str, scale: Tensor, rows: int, cols: int) -> tuple[Tensor, int, int]:
    """A per-expert scale of one stored matrix (rows x cols) as ([E, nr, nc] view, br, bc).

    ``[E, nr]`` means blocks of rows/nr rows x all columns (returned with nc = 1, bc = 0).
    """
    if scale.dim() == 2:
        scale = scale.unsqueeze(-1)
    elif scale.dim() != 3:
        raise ValueError(
            f"{name}: expected [E, R/br] or [E, R/br, C/bc] per matrix, got shape {tuple(scale.shape)}"
        )
    nr, nc = scale.shape[1], scale.shape[2]
    if nr < 1 or rows % nr != 0:
        raise ValueError(
            f"{name}: expected a row-block count dividing {rows}, got {nr} (shape {tuple(scale.shape)})"
        )
    if nc < 1 or cols % nc != 0:
        raise ValueError(
            f"{name}: expected a column-block count dividing {cols}, got {nc} (shape {tuple(scale.shape)})"
        )
    return scale, rows // nr, (0 if nc == 1 else cols // nc)


def quant_weight(
    data: Tensor, fmt: ElemFormat, scale: Tensor, sfmt: ScaleFormat, br: int, bc: int
) -> QuantTensor:
    return QuantTensor(
        data=data, format=fmt, scale=scale, scale_format=sfmt, block_rows=br, block_cols=bc
    )


def attach_block_scales(
    s: SeedShape,
    experts_scale,
    w1_data: Tensor,
    w1_fmt: ElemFormat,
    w2_data: Tensor,
    w2_fmt: ElemFormat,
) -> tuple[QuantTensor, QuantTensor]:
    """Attach block scales (the seed's block rule) to canonical w1 / w2 data views."""
    e, h, i = s.num_experts, s.hidden, s.inter
    if s.two_matrix:
        check_tensor("experts_scale", experts_scale, device=s.device)
        if (
            experts_scale.dim() not in (3, 4)
            or experts_scale.shape[0] != e
            or experts_scale.shape[1] != 2
        ):
            raise ValueError(
                f"experts_scale: expected shape ({e}, 2, I/bi) or ({e}, 2, I/bi, H/bh), got {tuple(experts_scale.shape)}"
            )
        sfmt = scale_format_of("experts_scale", experts_scale)
        s_in, br, bc = _block_scale("experts_scale", experts_scale[:, 0], i, h)
        s_out, br2, bc2 = _block_scale("experts_scale", experts_scale[:, 1], i, h)
        w1 = quant_weight(w1_data, w1_fmt, s_in, sfmt, br, bc)
        # W_out is stored [I, H] and used transposed: its scale grid transposes with it.
        w2 = quant_weight(w2_data, w2_fmt, s_out.transpose(1, 2), sfmt, bc2, br2)
        return w1, w2
    s1, s2 = scale_pair(experts_scale, s.device)
    for name, sc, rows in (("experts_scale[0]", s1, 2 * i), ("experts_scale[1]", s2, h)):
        if sc.dim() not in (2, 3) or sc.shape[0] != e:
            raise ValueError(
                f"{name}: expected shape ({e}, R/br) or ({e}, R/br, C/bc) with R = {rows}, got {tuple(sc.shape)}"
            )
    v1, br1, bc1 = _block_scale("experts_scale[0]", s1, 2 * i, h)
    v2, br2, bc2 = _block_scale("experts_scale[1]", s2, h, i)
    w1 = quant_weight(w1_data, w1_fmt, v1, scale_format_of("experts_scale[0]", s1), br1, bc1)
    w2 = quant_weight(w2_data, w2_fmt, v2, scale_format_of("experts_scale[1]", s2), br2, bc2)
    return w1, w2


def scale_pair(experts_scale, device) -> tuple[Tensor, Tensor]:
    if not isinstance(experts_scale, (tuple, list)) or len(experts_scale) != 2:
        raise TypeError(
            f"experts_scale: expected a pair (scale_fc1, scale_fc2) with a pair of experts, got {type(experts_scale).__name__}"
        )
    s1 = check_tensor("experts_scale[0]", experts_scale[0], device=device)
    s2 = check_tensor("experts_scale[1]", experts_scale[1], device=device)
    return s1, s2


def unpack_e2m1(packed: Tensor) -> Tensor:
    """Packed e2m1 bytes [..., K/2] -> one code per byte [..., K] (low nibble = even element)."""
    return torch.stack((packed & 0x0F, packed >> 4), dim=-1).flatten(-2)
