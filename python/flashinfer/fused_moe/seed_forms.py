"""The seed call forms (DESIGN.md 4.4 / 4.5, shared/seed/fused_moe_seed.rst) as canonical problems.

The seed forms take ``(x, gating_output, experts[, experts_scale])`` plus keywords and route
inside. Each ``*_problem`` function below translates one form into a ``MoeProblem`` without
copying weights (transpositions are strided views); the plain functions run it and return the
output ``[T, H]`` in ``x``'s dtype. ``cutlass_fused_moe`` and the ``trtllm_*`` functions dispatch
here when they are called in the seed form.

Conventions shared by every form:

* ``x`` [T, H] float32/float16/bfloat16; its dtype is the compute dtype and the output dtype.
* ``gating_output`` [T, E], any float dtype; it is converted to float32 before routing (the
  routing math is fp32 anyway, docs/semantics.md), then routed with ``routing_method``.
* ``experts`` is either a tensor [E, 2, I, H] -- a two-matrix expert: ``experts[:, 0]`` is W_in
  [I, H] and ``experts[:, 1]`` is W_out stored transposed [I, H], so h = act(W_in x) and
  y = W_out^T h; there is no gate, so ``act_type`` picks the plain nonlinearity (SwiGlu/SILU ->
  silu, GeGlu/GELU -> gelu) -- or a pair ``(fc1 [E, 2I, H] in [up ; gate] order, fc2 [E, H, I])``
  with the gated activation (SwiGlu: silu(gate) * up, GeGlu: gelu(gate) * up).
* ``num_experts``, ``hidden_size``, ``intermediate_size`` must match the tensors; ``top_k`` is in
  1..E; ``expert_capacity`` is None/0 (unlimited) or >= 1: each expert keeps its first
  ``expert_capacity`` (token, slot) assignments by token then slot, the rest contribute zero.
* ``output`` (optional) is a contiguous [T, H] tensor of ``x``'s dtype; it is filled and returned.

Scales (fp8 block and fp4 forms) are dequant multipliers whose block shape is read from the
scale's shape, for each stored matrix of R rows x C columns: ``[E, R/br]`` means blocks of br rows
x all C columns, ``[E, R/br, C/bc]`` means br x bc blocks (non-divisible -> ValueError). For the
two-matrix tensor, ``experts_scale`` is [E, 2, I/bi] or [E, 2, I/bi, H/bh] (R = I, C = H for both
stored matrices); W_out's scale is transposed along with W_out, so its canonical blocks are
(all H or bh) rows x bi columns. For a pair, ``experts_scale`` is a pair ``(scale_fc1, scale_fc2)``
with R x C = 2I x H and H x I. Scale dtypes: float8_e4m3fn (e4m3), uint8 or float8_e8m0fnu (ue8m0
exponent bytes), float32/float16/bfloat16.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass

import torch

from .enums import (
    ActivationType,
    ActQuant,
    ElemFormat,
    GatedActType,
    RoutingMethodType,
    ScaleFormat,
)
from .problem import ActQuantSpec, MoeProblem, QuantTensor, RoutingSpec
from .routing import check_routing_args
from .runner import run_problem
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

_FP8_MAX = 448.0
_warned_fp8_rounding = False

_TWO_MATRIX_ACT = {
    GatedActType.SwiGlu: ActivationType.Silu,
    GatedActType.GeGlu: ActivationType.Gelu,
}
_PAIR_ACT = {GatedActType.SwiGlu: ActivationType.Swiglu, GatedActType.GeGlu: ActivationType.Geglu}


@dataclass
class _SeedShape:
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


def _common(
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
) -> tuple[_SeedShape, Tensor, Tensor | None]:
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
        "output", output, shape=(num_tokens, hidden), dtype=x.dtype, device=device
    )

    shape = _SeedShape(
        num_tokens=num_tokens,
        hidden=hidden,
        inter=inter,
        num_experts=e,
        top_k=int(top_k),
        two_matrix=two_matrix,
        activation=(_TWO_MATRIX_ACT if two_matrix else _PAIR_ACT)[act],
        routing=RoutingSpec(method=method, logits=gating_output.to(torch.float32)),
        capacity=capacity,
        device=device,
        output=output,
    )
    return shape, w_a, w_b


def _finish(
    s: _SeedShape, x: Tensor, w1: QuantTensor, w2: QuantTensor, input_quant=None, inter_quant=None
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


def _canonical_float_weights(
    s: _SeedShape, w_a: Tensor, w_b: Tensor | None
) -> tuple[Tensor, Tensor]:
    """(w1 [E, M1, H], w2 [E, H, I]) as views of the seed tensors."""
    if s.two_matrix:
        return w_a[:, 0], w_a[:, 1].transpose(1, 2)
    return w_a, w_b


# ---- scales ----------------------------------------------------------------------------------


def _scale_format(name: str, scale: Tensor) -> ScaleFormat:
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


def _quant_weight(
    data: Tensor, fmt: ElemFormat, scale: Tensor, sfmt: ScaleFormat, br: int, bc: int
) -> QuantTensor:
    return QuantTensor(
        data=data, format=fmt, scale=scale, scale_format=sfmt, block_rows=br, block_cols=bc
    )


def _block_scaled_weights(
    s: _SeedShape,
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
        sfmt = _scale_format("experts_scale", experts_scale)
        s_in, br, bc = _block_scale("experts_scale", experts_scale[:, 0], i, h)
        s_out, br2, bc2 = _block_scale("experts_scale", experts_scale[:, 1], i, h)
        w1 = _quant_weight(w1_data, w1_fmt, s_in, sfmt, br, bc)
        # W_out is stored [I, H] and used transposed: its scale grid transposes with it.
        w2 = _quant_weight(w2_data, w2_fmt, s_out.transpose(1, 2), sfmt, bc2, br2)
        return w1, w2
    s1, s2 = _scale_pair(experts_scale, s.device)
    for name, sc, rows in (("experts_scale[0]", s1, 2 * i), ("experts_scale[1]", s2, h)):
        if sc.dim() not in (2, 3) or sc.shape[0] != e:
            raise ValueError(
                f"{name}: expected shape ({e}, R/br) or ({e}, R/br, C/bc) with R = {rows}, got {tuple(sc.shape)}"
            )
    v1, br1, bc1 = _block_scale("experts_scale[0]", s1, 2 * i, h)
    v2, br2, bc2 = _block_scale("experts_scale[1]", s2, h, i)
    w1 = _quant_weight(w1_data, w1_fmt, v1, _scale_format("experts_scale[0]", s1), br1, bc1)
    w2 = _quant_weight(w2_data, w2_fmt, v2, _scale_format("experts_scale[1]", s2), br2, bc2)
    return w1, w2


def _scale_pair(experts_scale, device) -> tuple[Tensor, Tensor]:
    if not isinstance(experts_scale, (tuple, list)) or len(experts_scale) != 2:
        raise TypeError(
            f"experts_scale: expected a pair (scale_fc1, scale_fc2) with a pair of experts, got {type(experts_scale).__name__}"
        )
    s1 = check_tensor("experts_scale[0]", experts_scale[0], device=device)
    s2 = check_tensor("experts_scale[1]", experts_scale[1], device=device)
    return s1, s2


# ---- weight element formats -------------------------------------------------------------------


def _user_stacklevel() -> int:
    """``warnings.warn`` stacklevel of the first caller outside the flashinfer package, so the
    warning points at user code whichever public wrapper led here."""
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package_dir):
        frame, level = frame.f_back, level + 1
    return level


def _as_e4m3(name: str, w: Tensor) -> Tensor:
    """fp8 weights as given; a wider float tensor is rounded (saturating) on every call."""
    global _warned_fp8_rounding
    if w.dtype in (FP8_E4M3, torch.uint8):  # uint8 = raw e4m3 codes
        return w
    if w.dtype in FLOAT_DTYPES:
        if not _warned_fp8_rounding:
            _warned_fp8_rounding = True
            warnings.warn(
                f"{name}: {dtype_name(w.dtype)} weights are rounded to float8_e4m3fn on every call "
                "(slow path); pass float8_e4m3fn weights to avoid it",
                stacklevel=_user_stacklevel(),
            )
        return w.clamp(-_FP8_MAX, _FP8_MAX).to(FP8_E4M3)
    raise TypeError(
        f"{name}: expected dtype float8_e4m3fn (or uint8 codes, or a float to round), got {dtype_name(w.dtype)}"
    )


def unpack_e2m1(packed: Tensor) -> Tensor:
    """Packed e2m1 bytes [..., K/2] -> one code per byte [..., K] (low nibble = even element)."""
    return torch.stack((packed & 0x0F, packed >> 4), dim=-1).flatten(-2)


# ---- the forms ---------------------------------------------------------------------------------


def cutlass_seed_problem(
    x,
    gating_output,
    experts,
    *,
    num_experts,
    top_k,
    expert_capacity=None,
    hidden_size=None,
    intermediate_size=None,
    act_type=GatedActType.SwiGlu,
    routing_method=RoutingMethodType.Default,
    output=None,
) -> MoeProblem:
    """The ``cutlass_fused_moe`` seed form as a problem: float weights (f32/f16/bf16), no quant."""
    s, w_a, w_b = _common(
        x,
        gating_output,
        experts,
        num_experts=num_experts,
        top_k=top_k,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        routing_method=routing_method,
        act_type=act_type,
        expert_capacity=expert_capacity,
        output=output,
    )
    check_tensor("experts" if s.two_matrix else "experts[0] (fc1)", w_a, dtypes=FLOAT_DTYPES)
    if w_b is not None:
        check_tensor("experts[1] (fc2)", w_b, dtypes=FLOAT_DTYPES)
    w1, w2 = _canonical_float_weights(s, w_a, w_b)
    return _finish(s, x, QuantTensor(w1), QuantTensor(w2))


def bf16_seed_problem(
    x,
    gating_output,
    experts,
    experts_scale=None,
    *,
    num_experts,
    top_k,
    hidden_size=None,
    intermediate_size=None,
    routing_method=RoutingMethodType.Default,
    act_type=GatedActType.SwiGlu,
    expert_capacity=None,
    output=None,
) -> MoeProblem:
    """``trtllm_bf16_moe`` seed form: unquantized weights; ``experts_scale`` must be None."""
    if experts_scale is not None:
        raise ValueError("experts_scale: expected None for unquantized (bf16) weights, got a value")
    return cutlass_seed_problem(
        x,
        gating_output,
        experts,
        num_experts=num_experts,
        top_k=top_k,
        expert_capacity=expert_capacity,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        act_type=act_type,
        routing_method=routing_method,
        output=output,
    )


def fp8_block_scale_seed_problem(
    x,
    gating_output,
    experts,
    experts_scale,
    *,
    num_experts,
    top_k,
    hidden_size=None,
    intermediate_size=None,
    routing_method=RoutingMethodType.Default,
    act_type=GatedActType.SwiGlu,
    expert_capacity=None,
    output=None,
) -> MoeProblem:
    """``trtllm_fp8_block_scale_moe`` seed form.

    Weights: float8_e4m3fn (or uint8 e4m3 codes); a float32/16/bf16 tensor is rounded to e4m3
    (saturating at +-448) on each call, with a one-time warning. Scales: the block rule of the
    module docstring. Activations: dynamic e4m3 per token and group of 128 columns before each GEMM.
    """
    s, w_a, w_b = _common(
        x,
        gating_output,
        experts,
        num_experts=num_experts,
        top_k=top_k,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        routing_method=routing_method,
        act_type=act_type,
        expert_capacity=expert_capacity,
        output=output,
    )
    w_a = _as_e4m3("experts" if s.two_matrix else "experts[0] (fc1)", w_a)
    if w_b is not None:
        w_b = _as_e4m3("experts[1] (fc2)", w_b)
    d1, d2 = _canonical_float_weights(s, w_a, w_b)
    w1, w2 = _block_scaled_weights(s, experts_scale, d1, ElemFormat.E4M3, d2, ElemFormat.E4M3)
    group = ActQuantSpec(mode=ActQuant.Fp8PerGroup, group_size=128)
    return _finish(s, x, w1, w2, group, ActQuantSpec(mode=ActQuant.Fp8PerGroup, group_size=128))


def fp8_per_tensor_scale_seed_problem(
    x,
    gating_output,
    experts,
    experts_scale,
    *,
    num_experts,
    top_k,
    hidden_size=None,
    intermediate_size=None,
    routing_method=RoutingMethodType.Default,
    act_type=GatedActType.SwiGlu,
    expert_capacity=None,
    output=None,
) -> MoeProblem:
    """``trtllm_fp8_per_tensor_scale_moe`` seed form.

    Weights as in the fp8 block form. ``experts_scale`` [E, 2]: one dequant multiplier per matrix
    (column 0 for W_in / fc1, column 1 for W_out / fc2); with a pair of experts a pair of [E]
    tensors is accepted too. Activations: dynamic e4m3 with one scale per token before each GEMM.
    """
    s, w_a, w_b = _common(
        x,
        gating_output,
        experts,
        num_experts=num_experts,
        top_k=top_k,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        routing_method=routing_method,
        act_type=act_type,
        expert_capacity=expert_capacity,
        output=output,
    )
    w_a = _as_e4m3("experts" if s.two_matrix else "experts[0] (fc1)", w_a)
    if w_b is not None:
        w_b = _as_e4m3("experts[1] (fc2)", w_b)
    d1, d2 = _canonical_float_weights(s, w_a, w_b)
    e = s.num_experts
    if isinstance(experts_scale, (tuple, list)) and not s.two_matrix:
        s1, s2 = _scale_pair(experts_scale, s.device)
        check_tensor("experts_scale[0]", s1, shape=(e,))
        check_tensor("experts_scale[1]", s2, shape=(e,))
    else:
        check_tensor("experts_scale", experts_scale, shape=(e, 2), device=s.device)
        s1, s2 = experts_scale[:, 0], experts_scale[:, 1]
    f1 = _scale_format("experts_scale", s1)
    f2 = _scale_format("experts_scale", s2)
    w1 = _quant_weight(d1, ElemFormat.E4M3, s1[:, None, None], f1, 0, 0)
    w2 = _quant_weight(d2, ElemFormat.E4M3, s2[:, None, None], f2, 0, 0)
    return _finish(
        s,
        x,
        w1,
        w2,
        ActQuantSpec(mode=ActQuant.Fp8PerToken),
        ActQuantSpec(mode=ActQuant.Fp8PerToken),
    )


def fp4_block_scale_seed_problem(
    x,
    gating_output,
    experts,
    experts_scale,
    *,
    num_experts,
    top_k,
    hidden_size=None,
    intermediate_size=None,
    routing_method=RoutingMethodType.Default,
    act_type=GatedActType.SwiGlu,
    expert_capacity=None,
    output=None,
) -> MoeProblem:
    """``trtllm_fp4_block_scale_moe`` seed form (W4A16: activations stay in ``x``'s dtype).

    Weights are uint8 e2m1: a last dimension of half the logical size holds two codes per byte
    (low nibble = even element), the full size one code per byte (low nibble, high ignored).
    Scales follow the block rule of the module docstring, on logical (unpacked) sizes. A packed
    two-matrix W_out [E, I, H/2] is packed along H, which becomes the canonical *row* dimension of
    W2 = W_out^T; packing only exists along columns, so W_out is unpacked to one code per byte
    (a copy of that half, on every call) before taking the transposed view.
    """
    s, w_a, w_b = _common(
        x,
        gating_output,
        experts,
        num_experts=num_experts,
        top_k=top_k,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        routing_method=routing_method,
        act_type=act_type,
        expert_capacity=expert_capacity,
        output=output,
        fp4=True,
    )
    check_tensor("experts" if s.two_matrix else "experts[0] (fc1)", w_a, dtypes=(torch.uint8,))
    if s.two_matrix:
        packed = w_a.shape[3] != s.hidden
        fmt = ElemFormat.E2M1Packed if packed else ElemFormat.E2M1Unpacked
        d1 = w_a[:, 0]
        w_out = unpack_e2m1(w_a[:, 1]) if packed else w_a[:, 1]
        d2, fmt2 = w_out.transpose(1, 2), ElemFormat.E2M1Unpacked
    else:
        check_tensor("experts[1] (fc2)", w_b, dtypes=(torch.uint8,))
        fmt = ElemFormat.E2M1Packed if w_a.shape[2] != s.hidden else ElemFormat.E2M1Unpacked
        fmt2 = ElemFormat.E2M1Packed if w_b.shape[2] != s.inter else ElemFormat.E2M1Unpacked
        d1, d2 = w_a, w_b
    w1, w2 = _block_scaled_weights(s, experts_scale, d1, fmt, d2, fmt2)
    return _finish(s, x, w1, w2)


# Runners: each returns the output [T, H] in x's dtype.


def cutlass_seed(*args, **kwargs) -> Tensor:
    return run_problem(cutlass_seed_problem(*args, **kwargs))


def bf16_seed(*args, **kwargs) -> Tensor:
    return run_problem(bf16_seed_problem(*args, **kwargs))


def fp8_block_scale_seed(*args, **kwargs) -> Tensor:
    return run_problem(fp8_block_scale_seed_problem(*args, **kwargs))


def fp8_per_tensor_scale_seed(*args, **kwargs) -> Tensor:
    return run_problem(fp8_per_tensor_scale_seed_problem(*args, **kwargs))


def fp4_block_scale_seed(*args, **kwargs) -> Tensor:
    return run_problem(fp4_block_scale_seed_problem(*args, **kwargs))


for _runner, _builder in (
    (cutlass_seed, cutlass_seed_problem),
    (bf16_seed, bf16_seed_problem),
    (fp8_block_scale_seed, fp8_block_scale_seed_problem),
    (fp8_per_tensor_scale_seed, fp8_per_tensor_scale_seed_problem),
    (fp4_block_scale_seed, fp4_block_scale_seed_problem),
):
    _runner.__doc__ = (
        _builder.__doc__ or ""
    ) + "\n\nRuns the problem and returns the output [T, H] (x's dtype)."
del _runner, _builder
