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
``min_latency_mode``, bf16 activations with fp8 weights.

Other arguments: ``token_final_scales`` None means all routing weights are 1. Biases come both or
neither, of ``output_dtype``; fc2's bias is only added on ``tp_rank == 0``. Any of
``swiglu_alpha/beta/limit`` (float32 [E_local]) turns ``Swiglu`` into ``SwigluBias`` (missing ones
keep their defaults 1, 0, +inf); ``SwigluStep`` uses only the limit (default 7.0).
``ActivationType.Situ`` (SiTU-GLU) takes the keyword-only ``situ_beta`` (the gate's tanh cap,
default 4) and ``situ_linear_beta`` (the linear half's, default 25), float32 [E_local]:
``beta tanh(gate / beta) sigmoid(gate) * linear_beta tanh(up / linear_beta)`` in fp32; an
infinite ``situ_linear_beta`` leaves the linear half uncapped (plain SiTU times up). EP:
``E_local = fc1.shape[0]``, ``E = E_local * ep_size``, local experts start at ``ep_rank * E_local``;
the output is the partial sum over local experts. ``cluster_size``/``cluster_rank`` must be 1/0.
``use_fused_finalize`` never changes results: the finalize is always deterministic.
``enable_alltoall`` is accepted; rows of tokens without a local expert are always written as
zeros (what a combine after an all-to-all expects). ``tune_max_num_tokens``, ``enable_pdl`` and
``profile_ids`` are accepted and do not change results.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch

from . import call_cache
from .cutlass_modes import FP4_WEIGHT_DTYPES, MODES, select_mode
from .cutlass_workspace import cutlass_fused_moe_workspace_size
from .enums import ActivationType
from .problem import MoeProblem, RoutingSpec
from .seed_forms import cutlass_seed
from .validation import (
    FLOAT_DTYPES,
    FP8_E4M3,
    check_dtype_arg,
    check_enum,
    check_int,
    check_optional_tensor,
    check_output,
    check_tensor,
    dtype_name,
)

__all__ = ["cutlass_fused_moe", "cutlass_fused_moe_workspace_size", "cutlass_full_problem"]

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


def _cutlass_full_translate(*args, **kwargs):
    """(problem, the caller's workspace or None) of a full-form call."""
    # workspace_buffer is found by position or keyword (not inspect.signature().bind: that is
    # not traceable by torch.compile); cutlass_full_problem rejects a misplaced one anyway.
    if "workspace_buffer" in kwargs:
        workspace = kwargs["workspace_buffer"]
    else:
        workspace = args[_WORKSPACE_POSITION] if len(args) > _WORKSPACE_POSITION else None
    return cutlass_full_problem(*args, **kwargs), workspace


# Repeated full-form calls with the same shapes skip the translation (call_cache.py).
_FULL_CALLS = call_cache.CallCache(_cutlass_full_translate)


def _cutlass_full(*args, **kwargs) -> list[Tensor]:
    return [_FULL_CALLS.run(args, kwargs)]


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
    if activation != ActivationType.Situ:
        for name, t in (("situ_beta", situ_beta), ("situ_linear_beta", situ_linear_beta)):
            if t is not None:
                raise ValueError(
                    f"{name}: expected None with activation_type {activation!r}, got a tensor"
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
    if activation == ActivationType.Situ:
        if given:
            raise ValueError(
                f"{given[0]}: expected None with activation_type {activation!r} (its parameters "
                "are situ_beta / situ_linear_beta), got a tensor"
            )
        # SiTU-GLU: situ_beta caps the gate, situ_linear_beta the linear half (canonically
        # act_alpha / act_beta; None keeps flashinfer's defaults 4 and 25, the canonical ones).
        for name, t in (("situ_beta", situ_beta), ("situ_linear_beta", situ_linear_beta)):
            check_optional_tensor(name, t, dtypes=(torch.float32,), shape=(e_local,), device=device)
        alpha, beta = situ_beta, situ_linear_beta
    elif given:
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
    elif fc1.dtype in FP4_WEIGHT_DTYPES:
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

    mode = MODES[select_mode(w_kind, input, use_deepseek_fp8_block_scale, use_mxfp8_act_scaling)]
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
        tune_max_num_tokens=check_int("tune_max_num_tokens", tune_max_num_tokens, lo=1),
        output=out,
    )


# Where ``workspace_buffer`` sits among the positional parameters (read once, at import).
_WORKSPACE_POSITION = list(inspect.signature(cutlass_full_problem).parameters).index(
    "workspace_buffer"
)
