"""The seed call forms (DESIGN.md 4.4 / 4.5, shared/seed/fused_moe_seed.rst) as canonical problems.

The seed forms take ``(x, gating_output, experts[, experts_scale])`` plus keywords and route
inside. Each ``*_problem`` function below translates one form into a ``MoeProblem`` without
copying weights (transpositions are strided views); the plain functions run it and return the
output ``[T, H]`` (dtype rule below). ``cutlass_fused_moe`` and the ``trtllm_*`` functions dispatch
here when they are called in the seed form. The checks every form shares and the code of the
block-scale rule are in ``seed_translate``.

Conventions shared by every form:

* ``x`` [T, H] float32/float16/bfloat16; its dtype is the compute dtype, and unquantized
  ``experts`` must have it too (a TypeError names ``experts`` otherwise).
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
* ``output`` (optional) is a contiguous [T, H] tensor of the result's dtype (below); it is filled
  and returned.
* Result dtype: ``cutlass_fused_moe`` returns ``x``'s dtype. The ``trtllm_*`` functions return
  bfloat16, as flashinfer's trtllm functions do, whatever ``x`` is: bf16 has fp32's exponent
  range, so an fp16 caller's large sums (the seed FP4 example's reach 1e5) stay finite instead
  of overflowing fp16's 65504. Their ``output`` may be bfloat16 or ``x``'s dtype (an fp16 buffer
  then saturates to +-inf past 65504). Both executors follow the output's dtype.

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

import warnings

import torch

from . import call_cache
from .enums import ActQuant, ElemFormat, GatedActType, RoutingMethodType
from .problem import ActQuantSpec, MoeProblem, QuantTensor
from .seed_translate import (
    attach_block_scales,
    canonical_weight_views,
    check_seed_call,
    quant_weight,
    scale_format_of,
    scale_pair,
    seed_problem,
    unpack_e2m1,
)
from .validation import FLOAT_DTYPES, FP8_E4M3, check_tensor, dtype_name, user_stacklevel

__all__ = [
    "bf16_seed",
    "bf16_seed_problem",
    "cutlass_seed",
    "cutlass_seed_problem",
    "fp4_block_scale_seed",
    "fp4_block_scale_seed_problem",
    "fp8_block_scale_seed",
    "fp8_block_scale_seed_problem",
    "fp8_per_tensor_scale_seed",
    "fp8_per_tensor_scale_seed_problem",
    "unpack_e2m1",
]

Tensor = torch.Tensor

_FP8_MAX = 448.0
# The trtllm_* seed forms' result dtype (module docstring) and the outputs they accept.
TRTLLM_OUTPUT_DTYPE = torch.bfloat16


def _trtllm_outputs(x) -> tuple:
    return (TRTLLM_OUTPUT_DTYPE, x.dtype) if isinstance(x, torch.Tensor) else (TRTLLM_OUTPUT_DTYPE,)


_warned_fp8_rounding = False


# ---- weight element formats -------------------------------------------------------------------


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
                stacklevel=user_stacklevel(),
            )
        return w.clamp(-_FP8_MAX, _FP8_MAX).to(FP8_E4M3)
    raise TypeError(
        f"{name}: expected dtype float8_e4m3fn (or uint8 codes, or a float to round), got {dtype_name(w.dtype)}"
    )


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
    _output_dtypes=None,
) -> MoeProblem:
    """The ``cutlass_fused_moe`` seed form as a problem: float weights (f32/f16/bf16), no quant."""
    s, w_a, w_b = check_seed_call(
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
        output_dtypes=_output_dtypes,
    )
    # Unquantized weights in x's dtype (the compute dtype), as flashinfer's full form requires:
    # both executors then run the call (the GPU's MMAs take one operand type), the same bits.
    check_tensor("experts" if s.two_matrix else "experts[0] (fc1)", w_a, dtypes=x.dtype)
    if w_b is not None:
        check_tensor("experts[1] (fc2)", w_b, dtypes=x.dtype)
    w1, w2 = canonical_weight_views(s, w_a, w_b)
    return seed_problem(s, x, QuantTensor(w1), QuantTensor(w2))


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
        _output_dtypes=_trtllm_outputs(x),
    )


def _check_e4m3_seed_call(x, gating_output, experts, **kwargs):
    """``check_seed_call`` of an fp8 seed form, with the weights as e4m3 (see ``_as_e4m3``)."""
    s, w_a, w_b = check_seed_call(
        x, gating_output, experts, output_dtypes=_trtllm_outputs(x), **kwargs
    )
    w_a = _as_e4m3("experts" if s.two_matrix else "experts[0] (fc1)", w_a)
    if w_b is not None:
        w_b = _as_e4m3("experts[1] (fc2)", w_b)
    return s, w_a, w_b


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
    s, w_a, w_b = _check_e4m3_seed_call(
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
    d1, d2 = canonical_weight_views(s, w_a, w_b)
    w1, w2 = attach_block_scales(s, experts_scale, d1, ElemFormat.E4M3, d2, ElemFormat.E4M3)
    return seed_problem(
        s,
        x,
        w1,
        w2,
        ActQuantSpec(mode=ActQuant.Fp8PerGroup, group_size=128),
        ActQuantSpec(mode=ActQuant.Fp8PerGroup, group_size=128),
    )


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
    s, w_a, w_b = _check_e4m3_seed_call(
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
    d1, d2 = canonical_weight_views(s, w_a, w_b)
    e = s.num_experts
    if isinstance(experts_scale, (tuple, list)) and not s.two_matrix:
        s1, s2 = scale_pair(experts_scale, s.device)
        check_tensor("experts_scale[0]", s1, shape=(e,))
        check_tensor("experts_scale[1]", s2, shape=(e,))
    else:
        check_tensor("experts_scale", experts_scale, shape=(e, 2), device=s.device)
        s1, s2 = experts_scale[:, 0], experts_scale[:, 1]
    f1 = scale_format_of("experts_scale", s1)
    f2 = scale_format_of("experts_scale", s2)
    w1 = quant_weight(d1, ElemFormat.E4M3, s1[:, None, None], f1, 0, 0)
    w2 = quant_weight(d2, ElemFormat.E4M3, s2[:, None, None], f2, 0, 0)
    return seed_problem(
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
    s, w_a, w_b = check_seed_call(
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
        output_dtypes=_trtllm_outputs(x),
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
    w1, w2 = attach_block_scales(s, experts_scale, d1, fmt, d2, fmt2)
    return seed_problem(s, x, w1, w2)


# Runners: each returns the output [T, H]: x's dtype (cutlass), bfloat16 (trtllm). Repeated calls
# with the same metadata skip the translation where the problem refers only to the caller's
# tensors and views of them (call_cache.py; e.g. not when float weights are rounded to e4m3).


def _cached(builder) -> call_cache.CallCache:
    return call_cache.CallCache(lambda *a, **kw: (builder(*a, **kw), None))


_CUTLASS = _cached(cutlass_seed_problem)
_BF16 = _cached(bf16_seed_problem)
_FP8_BLOCK = _cached(fp8_block_scale_seed_problem)
_FP8_PER_TENSOR = _cached(fp8_per_tensor_scale_seed_problem)
_FP4_BLOCK = _cached(fp4_block_scale_seed_problem)


def cutlass_seed(*args, **kwargs) -> Tensor:
    return _CUTLASS.run(args, kwargs)


def bf16_seed(*args, **kwargs) -> Tensor:
    return _BF16.run(args, kwargs, TRTLLM_OUTPUT_DTYPE)


def fp8_block_scale_seed(*args, **kwargs) -> Tensor:
    return _FP8_BLOCK.run(args, kwargs, TRTLLM_OUTPUT_DTYPE)


def fp8_per_tensor_scale_seed(*args, **kwargs) -> Tensor:
    return _FP8_PER_TENSOR.run(args, kwargs, TRTLLM_OUTPUT_DTYPE)


def fp4_block_scale_seed(*args, **kwargs) -> Tensor:
    return _FP4_BLOCK.run(args, kwargs, TRTLLM_OUTPUT_DTYPE)


for _runner, _builder, _dtype in (
    (cutlass_seed, cutlass_seed_problem, "x's dtype"),
    (bf16_seed, bf16_seed_problem, "bfloat16"),
    (fp8_block_scale_seed, fp8_block_scale_seed_problem, "bfloat16"),
    (fp8_per_tensor_scale_seed, fp8_per_tensor_scale_seed_problem, "bfloat16"),
    (fp4_block_scale_seed, fp4_block_scale_seed_problem, "bfloat16"),
):
    _runner.__doc__ = (
        _builder.__doc__ or ""
    ) + f"\n\nRuns the problem and returns the output [T, H] ({_dtype}, unless ``output``)."
del _runner, _builder, _dtype
