"""``cutlass_fused_moe`` (both call forms) and ``cutlass_fused_moe_workspace_size``.

One function serves two call forms (DESIGN.md 4.4). The form is decided by the arguments:

* **seed form** when the second positional argument (or ``gating_output=``) is a floating-point
  tensor, the third positional argument is a ``(fc1, fc2)`` pair, or a seed-only keyword
  (``gating_output``, ``experts``, ``num_experts``, ``top_k``, ``expert_capacity``, ``act_type``,
  ``routing_method``, ``x``) is given. It returns a tensor [T, H]; see ``seed_forms``.
* **full form** (flashinfer's signature) otherwise: the second positional argument is the int32
  ``token_selected_experts``. It returns ``[output]``.

Full-form modes, chosen from (input dtype, weight dtype, flags), each translated to the canonical
problem with dequant multipliers (docs/semantics.md):

* float: input and weights float32/float16/bfloat16 (same dtype), ``quant_scales`` None or [].
* W8A8 FP8 per-tensor: e4m3 input and weights, ``quant_scales = [fc1_dequant [E],
  fc2_act_quant (scalar or [E]), fc2_dequant [E], fc1_input_dequant (scalar)]``. The input codes
  are used unscaled (``fc1_dequant`` already holds the input scale), the intermediate is
  quantized statically with dequant multiplier ``1 / fc2_act_quant``, and W2's multiplier is
  ``fc2_dequant * fc2_act_quant`` so that the product equals flashinfer's ``fc2_dequant``.
* DeepSeek FP8 block (``use_deepseek_fp8_block_scale``): float input quantized per token and
  group of 128 columns; e4m3 weights with float32 128x128 block scales of ceil-sized grids
  ``[E, ceil(M1/128), ceil(H/128)]`` / ``[E, ceil(H/128), ceil(I/128)]``; intermediate likewise.
* NVFP4 W4A4: packed fp4 weights (int64 view [E, M1, H/16] or uint8 [E, M1, H/2]), 6 scales
  ``[a1_gs, fc1 e4m3 128x4-swizzled block scales (int32/uint8 view), fc1_global [E] =
  1/(a1_gs*w1_gs), a2_gs, fc2 block scales, fc2_global]``. A float input is quantized NVFP4 with
  dequant global ``1/a1_gs`` (W1's global becomes ``fc1_global * a1_gs``); a uint8 input
  [T, H/2] is taken as already quantized with ``input_sf`` (128x4 swizzled, or linear [T, H/16]
  when ``swizzled_input_sf=False``) and W1's global is ``fc1_global``. The intermediate is
  quantized NVFP4 with global ``1/a2_gs`` (W2's global ``fc2_global * a2_gs``).
* MXFP8 activations (``use_mxfp8_act_scaling``) x MXFP4 or MXFP8 weights, 4 scales
  ``[fc1 ue8m0 swizzled block scales, fc1_global [E], fc2 block scales, fc2_global [E]]``: an e4m3
  input needs ``input_sf`` (ue8m0, 1x32 blocks); a float input is quantized MXFP8 here.
* FP8 per-tensor activations x MXFP4 weights: e4m3 input, 5 scales ``[fc1 block scales,
  fc1_global, fc2_act_global (scalar or [E]), fc2 block scales, fc2_global]``; intermediate
  quantized statically like W8A8.

Not implemented (``NotImplementedError`` naming the mode): ``use_w4_group_scaling`` (W4A16
pre-interleaved, W4A8 INT4), ``use_packed_weights``, ``use_wfp4afp8_humming``,
``min_latency_mode``, bf16 activations with fp8 weights, ``ActivationType.Situ``.

Other arguments: ``token_final_scales`` None means all routing weights are 1. Biases come both or
neither, of ``output_dtype``; fc2's bias is only added on ``tp_rank == 0``. Any of
``swiglu_alpha/beta/limit`` (float32 [E_local]) turns ``Swiglu`` into ``SwigluBias`` (missing ones
keep their defaults 1, 0, +inf); ``SwigluStep`` uses only the limit (default 7.0). EP:
``E_local = fc1.shape[0]``, ``E = E_local * ep_size``, local experts start at ``ep_rank * E_local``;
the output is the partial sum over local experts. ``cluster_size``/``cluster_rank`` must be 1/0.
``use_fused_finalize`` never changes results: the finalize is always deterministic.
``enable_alltoall`` is accepted; rows of tokens without a local expert are always written as
zeros (what a combine after an all-to-all expects). ``tune_max_num_tokens``, ``enable_pdl`` and
``profile_ids`` are accepted and do not change results.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Sequence

import torch

from .enums import ActivationType, ActQuant, ElemFormat, ScaleFormat, ScaleLayout
from .problem import ActQuantSpec, MoeProblem, QuantTensor, RoutingSpec
from .runner import run_problem, workspace_bytes
from .seed_forms import cutlass_seed
from .validation import (
    FLOAT_DTYPES,
    FP8_E4M3,
    FP8_E8M0,
    check_dtype_arg,
    check_enum,
    check_int,
    check_optional_tensor,
    check_output,
    check_tensor,
    dtype_name,
)

Tensor = torch.Tensor

_SEED_KEYWORDS = frozenset(
    {
        "x",
        "gating_output",
        "experts",
        "num_experts",
        "top_k",
        "expert_capacity",
        "act_type",
        "routing_method",
    }
)
_FP4_WEIGHT_DTYPES = (torch.int64, torch.uint8)
_BLOCK_SCALE_DTYPES = tuple(
    d for d in (torch.int32, torch.uint8, FP8_E4M3, FP8_E8M0) if d is not None
)
_SWIGLU_FAMILY = (ActivationType.Swiglu, ActivationType.SwigluBias, ActivationType.SwigluStep)
_DEFAULT_SWIGLU_STEP_LIMIT = 7.0


def is_seed_call(args: Sequence, kwargs: dict) -> bool:
    """The form-detection rule of the module docstring."""
    if _SEED_KEYWORDS.intersection(kwargs):
        return True
    if len(args) > 2 and isinstance(args[2], (tuple, list)):
        return True
    second = args[1] if len(args) > 1 else kwargs.get("token_selected_experts")
    return isinstance(second, torch.Tensor) and second.is_floating_point()


def cutlass_fused_moe(*args, **kwargs):
    """Fused MoE layer, CUTLASS-style API; see the module docstring for the two call forms."""
    if is_seed_call(args, kwargs):
        return cutlass_seed(*args, **kwargs)
    return _cutlass_full(*args, **kwargs)


def _cutlass_full(*args, **kwargs) -> list[Tensor]:
    bound = inspect.signature(cutlass_full_problem).bind(*args, **kwargs)
    workspace = bound.arguments.get("workspace_buffer")
    problem = cutlass_full_problem(*args, **kwargs)
    if isinstance(workspace, Tensor) and workspace.dtype == torch.int8:
        workspace = workspace.view(torch.uint8)  # flashinfer accepts int8 scratch too
    return [run_problem(problem, workspace=workspace)]


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


# ---- the full form -------------------------------------------------------------------------------


def cutlass_full_problem(
    input,
    token_selected_experts,
    token_final_scales,
    fc1_expert_weights,
    fc2_expert_weights,
    output_dtype,
    quant_scales,
    fc1_expert_biases=None,
    fc2_expert_biases=None,
    input_sf=None,
    swiglu_alpha=None,
    swiglu_beta=None,
    swiglu_limit=None,
    tp_size=1,
    tp_rank=0,
    ep_size=1,
    ep_rank=0,
    cluster_size=1,
    cluster_rank=0,
    output=None,
    enable_alltoall=False,
    use_deepseek_fp8_block_scale=False,
    use_w4_group_scaling=False,
    use_mxfp8_act_scaling=False,
    min_latency_mode=False,
    use_packed_weights=False,
    use_wfp4afp8_humming=False,
    tune_max_num_tokens=8192,
    enable_pdl=None,
    activation_type=ActivationType.Swiglu,
    swizzled_input_sf=True,
    use_fused_finalize=True,
    profile_ids=None,
    workspace_buffer=None,
    *,
    situ_beta=None,
    situ_linear_beta=None,
) -> MoeProblem:
    """The full ``cutlass_fused_moe`` call as a canonical problem (module docstring).

    ``workspace_buffer`` is not part of the problem: ``run_problem`` checks and uses it.
    """
    for flag, what in (
        (min_latency_mode, "min_latency_mode"),
        (use_w4_group_scaling, "use_w4_group_scaling (W4A16 pre-interleaved / W4A8 INT4)"),
        (use_packed_weights, "use_packed_weights (INT4/INT8 weight-only)"),
        (use_wfp4afp8_humming, "use_wfp4afp8_humming (humming MXFP4 x FP8)"),
    ):
        if flag:
            raise NotImplementedError(f"cutlass_fused_moe: {what} is not implemented")
    activation = check_enum("activation_type", activation_type, ActivationType)
    if activation == ActivationType.InvalidType:
        raise ValueError("activation_type: expected a valid ActivationType, got InvalidType")
    if activation == ActivationType.Situ:
        raise NotImplementedError("cutlass_fused_moe: ActivationType.Situ is not implemented")
    if situ_beta is not None or situ_linear_beta is not None:
        raise ValueError(
            f"situ_beta: expected None with activation_type {activation!r}, got a tensor"
        )

    check_tensor("input", input, ndim=2)
    device = input.device
    fc1 = check_tensor("fc1_expert_weights", fc1_expert_weights, ndim=3, device=device)
    fc2 = check_tensor("fc2_expert_weights", fc2_expert_weights, ndim=3, device=device)
    out_dtype = check_dtype_arg("output_dtype", output_dtype, FLOAT_DTYPES)
    quant_scales = [] if quant_scales is None else list(quant_scales)
    e_local = fc1.shape[0]
    if fc2.shape[0] != e_local:
        raise ValueError(
            f"fc2_expert_weights: expected {e_local} experts (fc1_expert_weights.shape[0]), got {fc2.shape[0]}"
        )

    # EP / TP / cluster
    ep_size = check_int("ep_size", ep_size, 1)
    ep_rank = check_int("ep_rank", ep_rank, 0, ep_size - 1)
    tp_size = check_int("tp_size", tp_size, 1)
    tp_rank = check_int("tp_rank", tp_rank, 0, tp_size - 1)
    check_int("cluster_size", cluster_size, 1, 1)
    check_int("cluster_rank", cluster_rank, 0, 0)

    # Activation parameters (before the gating decision: they may switch Swiglu -> SwigluBias).
    params = {
        "swiglu_alpha": swiglu_alpha,
        "swiglu_beta": swiglu_beta,
        "swiglu_limit": swiglu_limit,
    }
    for name, t in params.items():
        check_optional_tensor(name, t, dtypes=(torch.float32,), shape=(e_local,), device=device)
    given = [n for n, t in params.items() if t is not None]
    alpha = beta = limit = None
    if given:
        if activation == ActivationType.Swiglu:
            activation = ActivationType.SwigluBias
        if activation == ActivationType.SwigluBias:
            alpha, beta, limit = swiglu_alpha, swiglu_beta, swiglu_limit
        elif activation == ActivationType.SwigluStep:
            limit = swiglu_limit  # only the limit applies to SwigluStep
        else:
            raise ValueError(
                f"{given[0]}: expected None with activation_type {activation!r}, got a tensor"
            )
    if activation == ActivationType.SwigluStep and limit is None:
        limit = torch.full(
            (e_local,), _DEFAULT_SWIGLU_STEP_LIMIT, dtype=torch.float32, device=device
        )
    gated = activation.is_gated

    # Weight element format -> packing factor along K.
    if fc1.dtype in FLOAT_DTYPES:
        w_kind, pack = "float", 1
    elif fc1.dtype == FP8_E4M3:
        w_kind, pack = "fp8", 1
    elif fc1.dtype in _FP4_WEIGHT_DTYPES:
        w_kind, pack = "fp4", (16 if fc1.dtype == torch.int64 else 2)
    else:
        raise TypeError(
            "fc1_expert_weights: expected dtype float32/float16/bfloat16, float8_e4m3fn, or int64/uint8 "
            f"(packed fp4), got {dtype_name(fc1.dtype)}"
        )
    if fc2.dtype != fc1.dtype:
        raise TypeError(
            f"fc2_expert_weights: expected dtype {dtype_name(fc1.dtype)} (as fc1_expert_weights), got {dtype_name(fc2.dtype)}"
        )
    hidden = fc2.shape[1]
    inter = fc2.shape[2] * pack
    m1 = (2 if gated else 1) * inter
    if fc1.shape[1] != m1 or fc1.shape[2] * pack != hidden:
        raise ValueError(
            f"fc1_expert_weights: expected shape ({e_local}, {m1}, {hidden // pack}) for "
            f"{'gated ' if gated else ''}{activation!r} with fc2 {tuple(fc2.shape)}, got {tuple(fc1.shape)}"
        )

    # Routing.
    num_tokens = input.shape[0]
    ids = check_tensor(
        "token_selected_experts",
        token_selected_experts,
        dtypes=(torch.int32,),
        ndim=2,
        device=device,
    )
    if ids.shape[0] != num_tokens or ids.shape[1] < 1:
        raise ValueError(
            f"token_selected_experts: expected shape ({num_tokens}, top_k >= 1), got {tuple(ids.shape)}"
        )
    top_k = ids.shape[1]
    if token_final_scales is None:
        weights = torch.ones((num_tokens, top_k), dtype=torch.float32, device=device)
    else:
        weights = check_tensor(
            "token_final_scales",
            token_final_scales,
            dtypes=FLOAT_DTYPES,
            shape=(num_tokens, top_k),
            device=device,
        )

    # Biases.
    if (fc1_expert_biases is None) != (fc2_expert_biases is None):
        missing = "fc2_expert_biases" if fc2_expert_biases is None else "fc1_expert_biases"
        raise ValueError(
            f"{missing}: expected a tensor (fc1 and fc2 biases come together), got None"
        )
    b1 = check_optional_tensor(
        "fc1_expert_biases", fc1_expert_biases, dtypes=out_dtype, shape=(e_local, m1), device=device
    )
    b2 = check_optional_tensor(
        "fc2_expert_biases",
        fc2_expert_biases,
        dtypes=out_dtype,
        shape=(e_local, hidden),
        device=device,
    )
    if tp_rank != 0:
        b2 = None  # added once across TP ranks, so it is not over-counted by the all-reduce

    out = check_output("output", output, shape=(num_tokens, hidden), dtype=out_dtype, device=device)

    mode = _MODES[_select_mode(w_kind, input, use_deepseek_fp8_block_scale, use_mxfp8_act_scaling)]
    x_q, in_q, w1, w2, inter_q, compute = mode(
        input,
        fc1,
        fc2,
        quant_scales,
        input_sf,
        swizzled_input_sf,
        e_local,
        hidden,
        inter,
        m1,
        out_dtype,
        device,
    )
    return MoeProblem(
        num_tokens=num_tokens,
        hidden_size=hidden,
        intermediate_size=inter,
        num_experts=e_local * ep_size,
        local_expert_offset=ep_rank * e_local,
        local_num_experts=e_local,
        top_k=top_k,
        routing=RoutingSpec(topk_ids=ids, topk_weights=weights),
        input=x_q,
        input_quant=in_q,
        w1=w1,
        w1_bias=b1,
        w2=w2,
        w2_bias=b2,
        inter_quant=inter_q,
        activation=activation,
        act_alpha=alpha,
        act_beta=beta,
        act_limit=limit,
        compute_dtype=compute,
        output=out,
    )


def _select_mode(w_kind: str, x: Tensor, deepseek: bool, mxfp8_act: bool) -> str:
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


_MODES = {
    "float": _mode_float,
    "w8a8": _mode_w8a8,
    "deepseek": _mode_deepseek,
    "nvfp4": _mode_nvfp4,
    "mxfp8_act": _mode_mxfp8_act,
    "fp8_mxfp4": _mode_fp8_mxfp4,
}


# ---- workspace size ------------------------------------------------------------------------------


def _placeholder(shape, dtype, device) -> Tensor:
    """A stride-0 view of one zero: the shape of an argument without its memory."""
    return torch.zeros(1, dtype=dtype, device=device).expand(*shape)


def cutlass_fused_moe_workspace_size(
    max_num_tokens,
    hidden_size,
    intermediate_size,
    num_experts_total,
    top_k,
    *,
    x_dtype,
    weight_dtype,
    output_dtype=torch.bfloat16,
    activation_type=ActivationType.Swiglu,
    tp_size=1,
    tp_rank=0,
    ep_size=1,
    ep_rank=0,
    min_latency_mode=False,
    use_deepseek_fp8_block_scale=False,
    use_w4_group_scaling=False,
    use_mxfp8_act_scaling=False,
    use_fused_finalize=True,
    use_packed_weights=False,
    use_wfp4afp8_humming=False,
    device=None,
) -> int:
    """Bytes of ``workspace_buffer`` a full-form call with these sizes needs (up to max_num_tokens).

    ``intermediate_size`` is the logical (unpacked) I, ``num_experts_total`` the global count
    (divisible by ``ep_size``). ``device`` defaults to the current CUDA device when CUDA is
    available, else the CPU. The answer comes from the executor of that device for a problem of
    the same mode built from stride-0 placeholder tensors; it is monotonic in ``max_num_tokens``.
    """
    t = check_int("max_num_tokens", max_num_tokens, 0)
    h = check_int("hidden_size", hidden_size, 1)
    i = check_int("intermediate_size", intermediate_size, 1)
    e_total = check_int("num_experts_total", num_experts_total, 1)
    ep = check_int("ep_size", ep_size, 1)
    if e_total % ep != 0:
        raise ValueError(f"num_experts_total: expected a multiple of ep_size {ep}, got {e_total}")
    e = e_total // ep
    k = check_int("top_k", top_k, 1, e_total)
    if not isinstance(x_dtype, torch.dtype):
        raise TypeError(f"x_dtype: expected a torch.dtype, got {type(x_dtype).__name__}")
    if not isinstance(weight_dtype, torch.dtype):
        raise TypeError(f"weight_dtype: expected a torch.dtype, got {type(weight_dtype).__name__}")
    if device is None:
        device = (
            torch.device("cuda", torch.cuda.current_device())
            if torch.cuda.is_available()
            else torch.device("cpu")
        )
    device = torch.device(device)
    activation = check_enum("activation_type", activation_type, ActivationType)
    m1 = (2 if activation.is_gated else 1) * i

    fp4 = weight_dtype in _FP4_WEIGHT_DTYPES
    if fp4 and (h % 32 or i % 32):
        raise ValueError(
            f"hidden_size: expected H and I multiples of 32 for packed fp4 weights, got {h} and {i}"
        )
    if fp4:  # packed bytes (the int64 view needs real storage, a placeholder cannot be viewed)
        fc1 = _placeholder((e, m1, h // 2), torch.uint8, device)
        fc2 = _placeholder((e, h, i // 2), torch.uint8, device)
    else:
        fc1 = _placeholder((e, m1, h), weight_dtype, device)
        fc2 = _placeholder((e, h, i), weight_dtype, device)

    def scalar():
        return _placeholder((1,), torch.float32, device)

    def per_expert():
        return _placeholder((e,), torch.float32, device)

    def block_bytes(rows, cols):
        return _placeholder(
            (e * math.ceil(rows / 128) * 128 * math.ceil(cols / 4) * 4,), torch.uint8, device
        )

    x_shape = (t, h // 2) if x_dtype == torch.uint8 else (t, h)
    x = _placeholder(x_shape, x_dtype, device)
    input_sf = None
    blk = 32 if (use_mxfp8_act_scaling or x_dtype == FP8_E4M3) else 16
    if fp4 or use_mxfp8_act_scaling:
        sf1, sf2 = block_bytes(m1, h // blk), block_bytes(h, i // blk)
    if x_dtype == torch.uint8 or (use_mxfp8_act_scaling and x_dtype == FP8_E4M3):
        input_sf = _placeholder(
            (math.ceil(t / 128) * 128 * math.ceil(h // blk / 4) * 4,), torch.uint8, device
        )

    if weight_dtype in FLOAT_DTYPES:
        qs = []
    elif use_deepseek_fp8_block_scale:
        qs = [
            _placeholder((e, math.ceil(m1 / 128), math.ceil(h / 128)), torch.float32, device),
            _placeholder((e, math.ceil(h / 128), math.ceil(i / 128)), torch.float32, device),
        ]
    elif use_mxfp8_act_scaling:
        qs = [sf1, per_expert(), sf2, per_expert()]
    elif weight_dtype == FP8_E4M3:
        qs = [per_expert(), scalar(), per_expert(), scalar()]
    elif x_dtype == FP8_E4M3:
        qs = [sf1, per_expert(), scalar(), sf2, per_expert()]
    else:
        qs = [scalar(), sf1, per_expert(), scalar(), sf2, per_expert()]

    problem = cutlass_full_problem(
        x,
        _placeholder((t, k), torch.int32, device),
        _placeholder((t, k), torch.float32, device),
        fc1,
        fc2,
        output_dtype,
        qs,
        input_sf=input_sf,
        tp_size=tp_size,
        tp_rank=tp_rank,
        ep_size=ep,
        ep_rank=ep_rank,
        use_deepseek_fp8_block_scale=use_deepseek_fp8_block_scale,
        use_w4_group_scaling=use_w4_group_scaling,
        use_mxfp8_act_scaling=use_mxfp8_act_scaling,
        min_latency_mode=min_latency_mode,
        use_packed_weights=use_packed_weights,
        use_wfp4afp8_humming=use_wfp4afp8_humming,
        activation_type=activation,
    )
    problem.output = _placeholder((t, h), output_dtype, device)
    problem.input = _linear_scale_placeholder(problem.input, None)
    problem.w1 = _linear_scale_placeholder(problem.w1, e)
    problem.w2 = _linear_scale_placeholder(problem.w2, e)
    return workspace_bytes(problem)


def _linear_scale_placeholder(q: QuantTensor, experts: int | None) -> QuantTensor:
    """Swap a swizzled scale buffer (which must be real, contiguous memory) for a stride-0 linear
    grid of the same scale format and blocks: the workspace does not depend on the layout."""
    if q.scale is None or q.scale_layout != ScaleLayout.Swizzled128x4:
        return q
    rows = q.data.shape[-2]
    cols = q.data.shape[-1] * (2 if q.format == ElemFormat.E2M1Packed else 1)
    grid = (math.ceil(rows / q.block_rows), math.ceil(cols / q.block_cols))
    shape = grid if experts is None else (experts,) + grid
    return dataclasses.replace(
        q, scale=_placeholder(shape, torch.uint8, q.data.device), scale_layout=ScaleLayout.Linear
    )
