"""The public ``trtllm_*`` fused-MoE functions (flashinfer's TRT-LLM-Gen family).

Each full form (flashinfer's signature, shared/reference/flashinfer_api.md section 5) is
translated into one canonical ``MoeProblem`` (docs/semantics.md) and run (``custom_ops``):
routing from logits or precomputed ids, expert parallelism, the quantization of each path
expressed as dequant multipliers, and flashinfer's return conventions. Shared pieces (checks,
routing, layouts, output scalars, outputs) are in ``trtllm_translate``, the FP4 path's operands in
``trtllm_fp4``.

Seed forms. The four non-routed functions also accept the user's seed form
``f(x, gating_output, experts, experts_scale, *, num_experts, top_k, hidden_size,
intermediate_size, ...)`` (``trtllm_bf16_moe``: no ``experts_scale``), handled by
``seed_forms``. The rule: a call with a ``hidden_size`` keyword (or a seed-only keyword ``x``,
``gating_output``, ``experts``, ``experts_scale``), or whose third positional argument is a 4-D
``[E, 2, I, H]`` tensor or an ``(fc1, fc2)`` pair, is the seed form; anything else is the full
form, whose third argument is the 2-D ``hidden_states``.

Weight layouts. MajorK, unshuffled weights (``[E, M, K]``) are the native layout and are used
without a copy. Weights prepared with flashinfer's recipe (gated row interleave,
``shuffle_matrix_a``, ``BlockMajorK`` with 128-byte blocks, 128x4-swizzled scales) are accepted
and restored in Python on every call: a copy of the weights per call, the slow path.

``enable_pdl`` and ``tune_max_num_tokens`` are accepted for compatibility and have no effect.
"""

from __future__ import annotations

import functools
import inspect

import torch

from . import call_cache
from .enums import (
    ActivationType,
    ActQuant,
    ElemFormat,
    Fp8QuantizationType,
    RoutingMethodType,
    ScaleFormat,
    WeightLayout,
)
from .problem import ActQuantSpec, MoeProblem, QuantTensor, RoutingSpec
from .routing import route
from .trtllm_fp4 import fp4_problem_parts
from .trtllm_translate import (
    activation_of,
    attach_outputs,
    expert_range,
    fold_output_scalars,
    gemm1_act_params,
    gemm1_lora_delta_of,
    per_expert_f32,
    reject_unsupported,
    restore_swizzled_scales,
    restore_weight_stack,
    routing_from_logits,
    routing_method,
    routing_precomputed,
    run_and_package,
    up_scaled_by_output1,
)
from .validation import check_bool, check_enum, check_int, check_same_device, check_tensor

Tensor = torch.Tensor
E4M3 = torch.float8_e4m3fn
_SCALE_BYTES = tuple(
    d for d in (torch.uint8, E4M3, getattr(torch, "float8_e8m0fnu", None)) if d is not None
)
_ALL_ACTS = tuple(a for a in ActivationType.__members__.values() if a != ActivationType.InvalidType)
_SEED_KEYWORDS = frozenset(("hidden_size", "x", "gating_output", "experts", "experts_scale"))


# ---- seed-form dispatch ----------------------------------------------------------------------


def _is_seed_call(args, kwargs) -> bool:
    if kwargs and not _SEED_KEYWORDS.isdisjoint(kwargs):
        return True
    if len(args) >= 3:
        third = args[2]
        if isinstance(third, (tuple, list)) and len(third) == 2:
            return True
        if isinstance(third, torch.Tensor) and third.dim() == 4 and third.shape[1] == 2:
            return True
    return False


def _accepts_seed_form(seed_name: str):
    """Wraps a full-form function so that seed-form calls go to ``seed_forms.<seed_name>``."""

    def wrap(full):
        @functools.wraps(full)
        def public(*args, **kwargs):
            if _is_seed_call(args, kwargs):
                from . import seed_forms

                return getattr(seed_forms, seed_name)(*args, **kwargs)
            return full(*args, **kwargs)

        return public

    return wrap


# ---- pieces shared by the paths ----------------------------------------------------------------


class _CallArgs:
    """A public function's arguments as attributes (a plain class: torch.compile traces it,
    while it cannot trace ``types.SimpleNamespace``)."""

    def __init__(self, values: dict):
        self.__dict__.update(values)  # one C call, not ~30 setattr (the call is on the hot path)


def _args(call_locals: dict, **absent) -> _CallArgs:
    """A public function's arguments, plus defaults for those its signature lacks (the routed
    variants have no routing_logits, the non-routed ones no topk_ids, ...)."""
    return _CallArgs({**absent, **call_locals})


# What a variant's signature may lack; the call's own arguments always take precedence.
_FROM_LOGITS = dict(routed=False, topk_ids=None, gemm1_lora_delta=None)
_ROUTED = dict(routed=True, routing_logits=None, routing_bias=None, norm_topk_prob=True,
               routing_replay_out=None, num_fused_shared_experts=None)  # fmt: skip


def _check_routing_devices(a, device) -> None:
    ids = a.topk_ids if isinstance(a.topk_ids, (tuple, list)) else [a.topk_ids]
    named = [("routing_logits", a.routing_logits), ("routing_bias", a.routing_bias)]
    named += [("topk_ids", t) for t in ids]
    for name, t in named:
        if isinstance(t, torch.Tensor) and t.device != device:
            raise ValueError(
                f"{name}: expected a tensor on {device} (the device of hidden_states), "
                f"got one on {t.device}"
            )


def _common(a, x: Tensor):
    """Sizes, expert range and routing shared by every path -> (e, k, off, nl, i, routing)."""
    e, k, off, nl = expert_range(a.num_experts, a.top_k, a.local_expert_offset, a.local_num_experts)
    i = check_int("intermediate_size", a.intermediate_size, 1)
    _check_routing_devices(a, x.device)
    method = routing_method(a.routing_method_type)
    if a.routed:
        # Ids and weights are used as given (n_group, topk_group, the scaling factor and the
        # bias only matter to routing from logits).
        routing = routing_precomputed(a.topk_ids, num_tokens=x.shape[0], top_k=k)
    else:
        routing = routing_from_logits(
            a.routing_logits, a.routing_bias, num_tokens=x.shape[0], num_experts=e, top_k=k,
            n_group=a.n_group, topk_group=a.topk_group,
            routed_scaling_factor=a.routed_scaling_factor, routing_method_type=method,
            norm_topk_prob=a.norm_topk_prob,
        )  # fmt: skip
    return e, k, off, nl, i, routing


def _fused_shared_experts(a, x: Tensor, common):
    """flashinfer's fused shared experts: with ``num_fused_shared_experts = S > 0`` (DeepSeekV3
    routing only, no EP) every token also goes to experts E .. E+S-1 with weight 1.0, in S slots
    after its top-k routed ones; weight and scale stacks have E + S experts, shared ones last.
    Routed on the device by ``route`` (the routing kernel), then run as precomputed routing over
    E + S experts with k + S slots. Returns ``common`` (from ``_common``) adjusted."""
    e, k, off, nl, i, routing = common
    s = check_int("num_fused_shared_experts", a.num_fused_shared_experts or 0, 0)
    if s == 0:
        return common
    if routing_method(a.routing_method_type) != RoutingMethodType.DeepSeekV3:
        raise ValueError(
            "num_fused_shared_experts: fused shared experts need DeepSeekV3 routing, got "
            f"routing_method_type {a.routing_method_type!r}"
        )
    if off != 0 or nl != e:
        raise ValueError(
            "num_fused_shared_experts: fused shared experts need no expert parallelism "
            f"(local_expert_offset 0 and local_num_experts == num_experts), got offset {off}, "
            f"{nl} of {e} experts"
        )
    if a.routing_replay_out is not None:
        raise ValueError("routing_replay_out: not supported with num_fused_shared_experts")
    ids, w = route(
        a.routing_logits, k, RoutingMethodType.DeepSeekV3, routing_bias=a.routing_bias,
        n_group=a.n_group, topk_group=a.topk_group, routed_scaling_factor=a.routed_scaling_factor,
    )  # fmt: skip
    t = x.shape[0]
    shared = torch.arange(e, e + s, dtype=torch.int32, device=x.device).expand(t, s)
    ids = torch.cat([ids, shared], dim=1)
    w = torch.cat([w, torch.ones(t, s, dtype=w.dtype, device=w.device)], dim=1)
    return e + s, k + s, 0, e + s, i, RoutingSpec(topk_ids=ids, topk_weights=w, packed=False)


def _tensors_only(*values):
    """For device checks that run before every type check: non-tensors are checked later."""
    return [v if isinstance(v, torch.Tensor) else None for v in values]


def _layout_flags(a):
    shuffled = check_bool("use_shuffled_weight", a.use_shuffled_weight)
    wl = check_enum("weight_layout", a.weight_layout, WeightLayout)
    if wl == WeightLayout.MajorMn:
        raise ValueError("weight_layout: expected MajorK or BlockMajorK, got MajorMn")
    return shuffled, wl == WeightLayout.BlockMajorK


def _run(a, x, sizes, routing, act, *, as_list=False, **fields):
    """Builds the problem, runs it and packages the results as flashinfer returns them. For a
    call that ``_cacheable`` admits, ``a.problem_only`` asks for the problem with its output
    attached instead (call_cache.py runs it)."""
    e, k, off, nl, i, h = sizes
    # Explicit specs rather than the dataclass's default_factory, which torch.compile cannot trace.
    fields.setdefault("input_quant", ActQuantSpec())
    fields.setdefault("inter_quant", ActQuantSpec())
    tune_max = check_int("tune_max_num_tokens", getattr(a, "tune_max_num_tokens", 8192), lo=1)
    p = MoeProblem(
        num_tokens=x.shape[0], hidden_size=h, intermediate_size=i, num_experts=e,
        local_expert_offset=off, local_num_experts=nl, top_k=k, routing=routing, activation=act,
        tune_max_num_tokens=tune_max, **fields,
    )  # fmt: skip
    if getattr(a, "problem_only", False):
        attach_outputs(p, do_finalize=True, output=None, routing_replay_out=None)
        return p
    return run_and_package(
        p, do_finalize=check_bool("do_finalize", a.do_finalize), output=a.output,
        routing_replay_out=a.routing_replay_out, as_list=as_list, allow_narrow_output=as_list,
    )  # fmt: skip


# ---- the four paths ------------------------------------------------------------------------------


def _bf16(a):
    x = check_tensor("hidden_states", a.hidden_states, dtypes=torch.bfloat16, ndim=2)
    e, k, off, nl, i, routing = _common(a, x)
    h = x.shape[1]
    act = activation_of(a.activation_type, _ALL_ACTS)
    act, alpha, beta, limit = gemm1_act_params(
        act, a.gemm1_alpha, a.gemm1_beta, a.gemm1_clamp_limit, nl, x.device
    )
    m1 = 2 * i if act.is_gated else i
    delta = gemm1_lora_delta_of(a.gemm1_lora_delta, num_tokens=x.shape[0], top_k=k, m1=m1,
                                device=x.device)  # fmt: skip
    shuffled, bmk = _layout_flags(a)
    w1, w2 = a.gemm1_weights, a.gemm2_weights
    check_tensor("gemm1_weights", w1, dtypes=torch.bfloat16)
    check_tensor("gemm2_weights", w2, dtypes=torch.bfloat16)
    check_same_device([x, w1, w2], ["hidden_states", "gemm1_weights", "gemm2_weights"])
    lay = dict(shuffled=shuffled, block_major_k=bmk, epilogue_tile_m=128)
    w1 = restore_weight_stack("gemm1_weights", w1, num_local=nl, rows=m1, k_bytes=2 * h,
                              gated_interleave=act.is_gated, **lay)  # fmt: skip
    w2 = restore_weight_stack("gemm2_weights", w2, num_local=nl, rows=h, k_bytes=2 * i,
                              gated_interleave=False, **lay)  # fmt: skip
    return _run(a, x, (e, k, off, nl, i, h), routing, act, input=QuantTensor(x),
                w1=QuantTensor(w1), w2=QuantTensor(w2), act_alpha=alpha, act_beta=beta,
                act_limit=limit, gemm1_delta=delta, compute_dtype=torch.bfloat16)  # fmt: skip


def _fp8_per_tensor(a):
    x = check_tensor("hidden_states", a.hidden_states, dtypes=E4M3, ndim=2)
    e, k, off, nl, i, routing = _common(a, x)
    h = x.shape[1]
    act = activation_of(
        a.activation_type, tuple(v for v in _ALL_ACTS if v != ActivationType.SwigluBias)
    )
    act, alpha, beta, limit = gemm1_act_params(act, None, None, None, nl, x.device)
    shuffled, bmk = _layout_flags(a)
    w1, w2 = a.gemm1_weights, a.gemm2_weights
    check_tensor("gemm1_weights", w1, dtypes=E4M3)
    check_tensor("gemm2_weights", w2, dtypes=E4M3)
    out1 = per_expert_f32("output1_scales_scalar", a.output1_scales_scalar, nl, required=True)
    gate = per_expert_f32(
        "output1_scales_gate_scalar", a.output1_scales_gate_scalar, nl, required=True
    )
    out2 = per_expert_f32("output2_scales_scalar", a.output2_scales_scalar, nl, required=True)
    check_same_device([x, w1, w2, out1, gate, out2],
                      ["hidden_states", "gemm1_weights", "gemm2_weights", "output1_scales_scalar",
                       "output1_scales_gate_scalar", "output2_scales_scalar"])  # fmt: skip
    lay = dict(shuffled=shuffled, block_major_k=bmk, epilogue_tile_m=128)
    m1 = 2 * i if act.is_gated else i
    w1 = restore_weight_stack("gemm1_weights", w1, num_local=nl, rows=m1, k_bytes=h,
                              gated_interleave=act.is_gated, **lay)  # fmt: skip
    w2 = restore_weight_stack("gemm2_weights", w2, num_local=nl, rows=h, k_bytes=i,
                              gated_interleave=False, **lay)  # fmt: skip
    w1_global, s2, w2_global = fold_output_scalars(out1, gate, out2, up_scaled_by_output1(act))
    on_input = check_bool("use_routing_scales_on_input", a.use_routing_scales_on_input)
    return _run(a, x, (e, k, off, nl, i, h), routing, act, input=QuantTensor(x, ElemFormat.E4M3),
                w1=QuantTensor(w1, ElemFormat.E4M3, global_scale=w1_global),
                w2=QuantTensor(w2, ElemFormat.E4M3, global_scale=w2_global),
                inter_quant=ActQuantSpec(ActQuant.Fp8Static, static_scale=s2),
                act_alpha=alpha, act_beta=beta, act_limit=limit,
                routing_weight_on_input=on_input)  # fmt: skip


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _mx_weight_scale(name, sf, nl, rows, cols, shuffled, interleave) -> Tensor:
    """UE8M0 weight scales: linear [E, rows, cols] when unshuffled, else flashinfer's
    ``shuffle_matrix_sf_a`` output (rows permuted like the weights, 128x4-swizzled, any shape)."""
    check_tensor(name, sf, dtypes=_SCALE_BYTES)
    if not shuffled:
        return check_tensor(name, sf, shape=(nl, rows, cols)).view(torch.uint8)
    return restore_swizzled_scales(name, sf, num_local=nl, rows=rows, cols=cols, epilogue_tile_m=128,
                                   gated_interleave=interleave)  # fmt: skip


def _fp8_block(a):
    qtype = check_enum("fp8_quantization_type", a.fp8_quantization_type, Fp8QuantizationType)
    if qtype == Fp8QuantizationType.NoneFp8:
        raise ValueError("fp8_quantization_type: expected DeepSeekFp8 or MxFp8, got NoneFp8")
    deepseek = qtype == Fp8QuantizationType.DeepSeekFp8
    x = check_tensor("hidden_states", a.hidden_states, dtypes=E4M3, ndim=2)
    e, k, off, nl, i, routing = _fused_shared_experts(a, x, _common(a, x))
    t, h = x.shape
    act = activation_of(a.activation_type, _ALL_ACTS)
    act, alpha, beta, limit = gemm1_act_params(
        act, a.gemm1_alpha, a.gemm1_beta, a.gemm1_clamp_limit, nl, x.device
    )
    delta = gemm1_lora_delta_of(a.gemm1_lora_delta, num_tokens=t, top_k=k,
                                m1=2 * i if act.is_gated else i, device=x.device)  # fmt: skip
    shuffled, bmk = _layout_flags(a)
    w1, w2, hs, s1, s2 = (a.gemm1_weights, a.gemm2_weights, a.hidden_states_scale,
                          a.gemm1_weights_scale, a.gemm2_weights_scale)  # fmt: skip
    check_tensor("gemm1_weights", w1, dtypes=E4M3)
    check_tensor("gemm2_weights", w2, dtypes=E4M3)
    check_same_device(_tensors_only(x, hs, w1, s1, w2, s2),
                      ["hidden_states", "hidden_states_scale", "gemm1_weights", "gemm1_weights_scale",
                       "gemm2_weights", "gemm2_weights_scale"])  # fmt: skip
    # DeepSeekFp8 weights are shuffled with epilogue tile 64 and never row-interleaved; MxFp8
    # weights use tile 128 and the gated interleave, like the other paths.
    tile, interleave = (64, False) if deepseek else (128, act.is_gated)
    lay = dict(shuffled=shuffled, block_major_k=bmk, epilogue_tile_m=tile)
    m1 = 2 * i if act.is_gated else i
    w1 = restore_weight_stack("gemm1_weights", w1, num_local=nl, rows=m1, k_bytes=h,
                              gated_interleave=interleave, **lay)  # fmt: skip
    w2 = restore_weight_stack("gemm2_weights", w2, num_local=nl, rows=h, k_bytes=i,
                              gated_interleave=False, **lay)  # fmt: skip
    if deepseek:
        # hidden_states_scale is [H/128, T] (token index fastest): its transpose is the
        # canonical per-(token, 128 columns) scale, used as a strided view, never copied.
        check_tensor("hidden_states_scale", hs, dtypes=torch.float32, shape=(_cdiv(h, 128), t))
        check_tensor("gemm1_weights_scale", s1, dtypes=torch.float32,
                     shape=(nl, _cdiv(m1, 128), _cdiv(h, 128)))  # fmt: skip
        check_tensor("gemm2_weights_scale", s2, dtypes=torch.float32,
                     shape=(nl, _cdiv(h, 128), _cdiv(i, 128)))  # fmt: skip
        blocks = dict(scale_format=ScaleFormat.Float, block_rows=128, block_cols=128)
        inp = QuantTensor(
            x, ElemFormat.E4M3, hs.t(), ScaleFormat.Float, block_rows=1, block_cols=128
        )
        inter = ActQuantSpec(ActQuant.Fp8PerGroup, group_size=128)
    else:
        check_tensor("hidden_states_scale", hs, dtypes=_SCALE_BYTES, shape=(t, _cdiv(h, 32)))
        s1 = _mx_weight_scale("gemm1_weights_scale", s1, nl, m1, _cdiv(h, 32), shuffled, interleave)
        s2 = _mx_weight_scale("gemm2_weights_scale", s2, nl, h, _cdiv(i, 32), shuffled, False)
        blocks = dict(scale_format=ScaleFormat.UE8M0, block_rows=1, block_cols=32)
        inp = QuantTensor(x, ElemFormat.E4M3, hs.view(torch.uint8), ScaleFormat.UE8M0,
                          block_rows=1, block_cols=32)  # fmt: skip
        inter = ActQuantSpec(ActQuant.MxFp8)
    return _run(a, x, (e, k, off, nl, i, h), routing, act, input=inp,
                w1=QuantTensor(w1, ElemFormat.E4M3, s1, **blocks),
                w2=QuantTensor(w2, ElemFormat.E4M3, s2, **blocks), inter_quant=inter,
                act_alpha=alpha, act_beta=beta, act_limit=limit, gemm1_delta=delta)  # fmt: skip


def _fp4(a):
    reject_unsupported(per_token_scale=a.per_token_scale,
                       num_fused_shared_experts=a.num_fused_shared_experts)  # fmt: skip
    x = check_tensor(
        "hidden_states", a.hidden_states, dtypes=(torch.uint8, E4M3, torch.bfloat16), ndim=2
    )
    e, k, off, nl, i, routing = _common(a, x)
    act = activation_of(a.activation_type, _ALL_ACTS)
    act, alpha, beta, limit = gemm1_act_params(
        act, a.gemm1_alpha, a.gemm1_beta, a.gemm1_clamp_limit, nl, x.device
    )
    delta = gemm1_lora_delta_of(a.gemm1_lora_delta, num_tokens=x.shape[0], top_k=k,
                                m1=2 * i if act.is_gated else i, device=x.device)  # fmt: skip
    shuffled, bmk = _layout_flags(a)
    names = ("hidden_states_scale", "gemm1_weights", "gemm1_weights_scale", "gemm2_weights",
             "gemm2_weights_scale", "gemm1_bias", "gemm2_bias")  # fmt: skip
    check_same_device(_tensors_only(x, *(getattr(a, n) for n in names)), ("hidden_states",) + names)
    parts = fp4_problem_parts(a, x, num_local=nl, intermediate_size=i, act=act, shuffled=shuffled,
                              block_major_k=bmk)  # fmt: skip
    h = parts.pop("hidden_size")
    g1 = parts["w1"].global_scale
    if act == ActivationType.Situ and limit is not None and g1 is not None:
        # trtllm-gen clamps Situ's raw accumulator, before the dequant scalar (out1_gate = W1's
        # global here): in real units the limit is gemm1_clamp_limit * out1_gate.
        limit = limit * g1
    return _run(a, x, (e, k, off, nl, i, h), routing, act, as_list=True, act_alpha=alpha,
                act_beta=beta, act_limit=limit, gemm1_delta=delta, **parts)  # fmt: skip


# ---- public functions ------------------------------------------------------------------------------


@_accepts_seed_form("bf16_seed")
def trtllm_bf16_moe(
    routing_logits, routing_bias, hidden_states, gemm1_weights, gemm2_weights, num_experts, top_k,
    n_group, topk_group, intermediate_size, local_expert_offset, local_num_experts,
    routed_scaling_factor=None, routing_method_type=0, use_shuffled_weight=True,
    weight_layout=WeightLayout.BlockMajorK, do_finalize=True, enable_pdl=True,
    tune_max_num_tokens=8192, activation_type=ActivationType.Swiglu.value, norm_topk_prob=True,
    routing_replay_out=None, gemm1_alpha=None, gemm1_beta=None, gemm1_clamp_limit=None, output=None,
):  # fmt: skip
    """BF16 MoE with routing from ``routing_logits`` [T, E] (fp32/bf16).

    ``hidden_states`` bf16 [T, H]; weights bf16: native MajorK ``[E_local, M1, H]`` /
    ``[E_local, H, I]`` with ``use_shuffled_weight=False, weight_layout=WeightLayout.MajorK``
    (M1 = 2I in [up ; gate] order for gated activations), or flashinfer's prepared layout (the
    default: rows interleaved and shuffled with tile 128, BlockMajorK ``[E, H/64, M1, 64]``),
    restored per call. ``gemm1_alpha``/``gemm1_beta``/``gemm1_clamp_limit`` (f32 [E_local]) turn
    Swiglu into the clamped SwiGLU; with ``activation_type=10`` (Situ) they are the gate's and
    the linear half's tanh caps (default 1) and the clamp. Returns bf16 [T, H], or with ``do_finalize=False``
    ``[gemm2_output bf16 [T*k, H] (permuted rows), expert_weights bf16 [T, k],
    expanded_idx_to_permuted_idx int32 [T, k]]``. Seed form: see the module docstring.
    ``enable_pdl`` and ``tune_max_num_tokens`` are accepted for compatibility and ignored.
    """
    call = locals()
    if _cacheable(call):
        return _BF16_CALLS.run(tuple(call.values()), {})
    return _bf16(_args(call, **_FROM_LOGITS))


def trtllm_bf16_routed_moe(
    topk_ids, hidden_states, gemm1_weights, gemm2_weights, num_experts, top_k, n_group, topk_group,
    intermediate_size, local_expert_offset, local_num_experts, routed_scaling_factor=None,
    routing_method_type=0, use_shuffled_weight=True, weight_layout=WeightLayout.BlockMajorK,
    do_finalize=True, enable_pdl=True, gemm1_lora_delta=None, tune_max_num_tokens=8192,
    activation_type=ActivationType.Swiglu.value, routing_replay_out=None, gemm1_alpha=None,
    gemm1_beta=None, gemm1_clamp_limit=None, output=None,
):  # fmt: skip
    """``trtllm_bf16_moe`` with precomputed routing: ``topk_ids`` is int32 [T, k] packed words
    ``(expert_id << 16) | bf16_bits(weight)`` or an ``(ids int32, weights bf16/f32)`` pair of
    [T, k] tensors (global ids; ids outside [0, num_experts) are skipped).
    ``gemm1_lora_delta`` (bf16 [T, k, M1], [up ; gate] when gated): added to the GEMM1 output of
    each (token, slot) before the activation; the call then returns ``[output,
    expanded_idx_to_permuted_idx int32 [T, k], gemm1_activation_output bf16 [T*k, I]]`` (see
    ``trtllm_translate.run_and_package``)."""
    call = locals()
    if _cacheable(call):
        return _BF16_ROUTED_CALLS.run(tuple(call.values()), {})
    return _bf16(_args(call, **_ROUTED))


@_accepts_seed_form("fp8_per_tensor_scale_seed")
def trtllm_fp8_per_tensor_scale_moe(
    routing_logits, routing_bias, hidden_states, gemm1_weights, output1_scales_scalar,
    output1_scales_gate_scalar, gemm2_weights, output2_scales_scalar, num_experts, top_k, n_group,
    topk_group, intermediate_size, local_expert_offset, local_num_experts, routed_scaling_factor,
    use_routing_scales_on_input, routing_method_type=0, do_finalize=True, enable_pdl=None,
    tune_max_num_tokens=8192, activation_type=ActivationType.Swiglu.value, norm_topk_prob=True,
    routing_replay_out=None, output=None, *, use_shuffled_weight=True,
    weight_layout=WeightLayout.MajorK,
):  # fmt: skip
    """FP8 per-tensor MoE. ``hidden_states`` e4m3 [T, H] (codes of x * hs_gs); weights e4m3
    ``[E_local, M1, H]`` / ``[E_local, H, I]``; the three f32 [E_local] scalars are flashinfer's
    (gated: out1 = c/(w1*hs), gate = 1/(w1*hs); non-gated: out1 = c; out2 = 1/(c*w2), all quant
    multipliers). The GEMM1 output is requantized to e4m3 with the static scale these imply.
    ``use_routing_scales_on_input`` applies the routing weight to GEMM1 (Llama4, top_k 1).

    flashinfer's weights are always shuffled (tile 128, gated rows interleaved), so that is the
    default; the keyword-only extension ``use_shuffled_weight=False`` takes native MajorK
    weights without a copy (``weight_layout=BlockMajorK`` is accepted too). Returns bf16 [T, H]
    (``do_finalize=False``: see ``trtllm_bf16_moe``). Seed form: see the module docstring.
    """
    call = locals()
    if _cacheable(call):
        return _FP8_PER_TENSOR_CALLS.run(tuple(call.values()), {})
    return _fp8_per_tensor(_args(call, **_FROM_LOGITS))


def trtllm_fp8_per_tensor_scale_routed_moe(
    topk_ids, routing_bias, hidden_states, gemm1_weights, output1_scales_scalar,
    output1_scales_gate_scalar, gemm2_weights, output2_scales_scalar, num_experts, top_k, n_group,
    topk_group, intermediate_size, local_expert_offset, local_num_experts, routed_scaling_factor,
    use_routing_scales_on_input, routing_method_type=0, do_finalize=True, enable_pdl=None,
    tune_max_num_tokens=8192, activation_type=ActivationType.Swiglu.value, routing_replay_out=None,
    output=None, *, use_shuffled_weight=True, weight_layout=WeightLayout.MajorK,
):  # fmt: skip
    """``trtllm_fp8_per_tensor_scale_moe`` with precomputed ``topk_ids`` (packed int32 words or
    an (ids, weights) pair; see ``trtllm_bf16_routed_moe``). ``routing_bias`` is unused."""
    call = locals()
    if _cacheable(call):
        return _FP8_PER_TENSOR_ROUTED_CALLS.run(tuple(call.values()), {})
    return _fp8_per_tensor(_args(call, **_ROUTED))


@_accepts_seed_form("fp8_block_scale_seed")
def trtllm_fp8_block_scale_moe(
    routing_logits, routing_bias, hidden_states, hidden_states_scale, gemm1_weights,
    gemm1_weights_scale, gemm2_weights, gemm2_weights_scale, num_experts, top_k, n_group,
    topk_group, intermediate_size, local_expert_offset, local_num_experts, routed_scaling_factor,
    routing_method_type=0, use_shuffled_weight=False, weight_layout=0, do_finalize=True,
    enable_pdl=None, tune_max_num_tokens=8192,
    fp8_quantization_type=Fp8QuantizationType.DeepSeekFp8, num_fused_shared_experts=None,
    activation_type=ActivationType.Swiglu.value, norm_topk_prob=True, routing_replay_out=None,
    gemm1_alpha=None, gemm1_beta=None, gemm1_clamp_limit=None, output=None,
):  # fmt: skip
    """Block-scaled FP8 MoE.

    DeepSeekFp8 (default): ``hidden_states`` e4m3 [T, H] with f32 dequant scales
    ``hidden_states_scale`` [H/128, T] (token index fastest; ``a_sf.t().contiguous()`` of a
    [T, H/128] scale), weights e4m3 with f32 128x128 block dequant scales
    ``[E_local, M1/128, H/128]`` / ``[E_local, H/128, I/128]``; the intermediate is requantized
    per token and 128 columns. Weights: MajorK (native, the default) or shuffled with tile 64
    (no row interleave), optionally BlockMajorK ``[E, H/128, M1, 128]``; scales never shuffled.
    MxFp8: ``hidden_states_scale`` ue8m0 bytes [T, H/32] (linear); weight scales ue8m0, either
    flashinfer's shuffled + 128x4-swizzled form (``use_shuffled_weight=True``, as flashinfer
    requires) or, as an extension, linear ``[E, M1, H/32]`` with unshuffled weights; the
    intermediate is requantized to MXFP8. ``gemm1_alpha``/``beta``/``clamp_limit`` select the
    clamped SwiGLU. ``num_fused_shared_experts = S`` (DeepSeekV3 routing, no EP): weights and
    scales carry E + S experts, the shared ones last, and every token also uses those S with
    weight 1.0. Returns bf16 [T, H]. Seed form: see the module docstring.
    """
    call = locals()
    if _cacheable(call):
        return _FP8_BLOCK_CALLS.run(tuple(call.values()), {})
    return _fp8_block(_args(call, **_FROM_LOGITS))


def trtllm_fp8_block_scale_routed_moe(
    topk_ids, routing_bias, hidden_states, hidden_states_scale, gemm1_weights, gemm1_weights_scale,
    gemm2_weights, gemm2_weights_scale, num_experts, top_k, n_group, topk_group, intermediate_size,
    local_expert_offset, local_num_experts, routed_scaling_factor, routing_method_type=0,
    use_shuffled_weight=False, weight_layout=0, do_finalize=True, enable_pdl=None,
    gemm1_lora_delta=None, output=None, tune_max_num_tokens=8192,
    fp8_quantization_type=Fp8QuantizationType.DeepSeekFp8,
    activation_type=ActivationType.Swiglu.value, gemm1_alpha=None, gemm1_beta=None,
    gemm1_clamp_limit=None,
):  # fmt: skip
    """``trtllm_fp8_block_scale_moe`` with precomputed ``topk_ids`` (packed int32 words or an
    (ids, weights) pair). ``gemm1_lora_delta`` (bf16 [T, k, M1], [up ; gate] when gated): added to the GEMM1 output of
    each (token, slot) before the activation; the call then returns ``[output,
    expanded_idx_to_permuted_idx int32 [T, k], gemm1_activation_output bf16 [T*k, I]]`` (see
    ``trtllm_translate.run_and_package``)."""
    call = locals()
    if _cacheable(call):
        return _FP8_BLOCK_ROUTED_CALLS.run(tuple(call.values()), {})
    return _fp8_block(_args(call, **_ROUTED))


@_accepts_seed_form("fp4_block_scale_seed")
def trtllm_fp4_block_scale_moe(
    routing_logits, routing_bias, hidden_states, hidden_states_scale, gemm1_weights,
    gemm1_weights_scale, gemm1_bias, gemm1_alpha, gemm1_beta, gemm1_clamp_limit, gemm2_weights,
    gemm2_weights_scale, gemm2_bias, output1_scale_scalar, output1_scale_gate_scalar,
    output2_scale_scalar, num_experts, top_k, n_group, topk_group, intermediate_size,
    local_expert_offset, local_num_experts, routed_scaling_factor, routing_method_type=0,
    do_finalize=True, enable_pdl=None, activation_type=ActivationType.Swiglu.value,
    per_token_scale=None, output=None, tune_max_num_tokens=8192, norm_topk_prob=True,
    routing_replay_out=None, num_fused_shared_experts=None, *, use_shuffled_weight=True,
    weight_layout=WeightLayout.MajorK,
):  # fmt: skip
    """FP4-weight MoE; returns ``[output]`` (bf16 [T, H]; ``output`` may be narrower than H).

    Weights: packed e2m1 uint8 ``[E_local, M1, H/2]`` / ``[E_local, H, I/2]`` with block scales
    typed float8_e4m3fn (or uint8): 16 elements per scale (e4m3) = NvFP4, 32 (ue8m0 bytes) =
    MxFP4. Activations from ``hidden_states``: uint8 [T, H/2] + e4m3 [T, H/16] scales = NvFP4;
    e4m3 + ue8m0 [T, H/32] scales = MxFP8; e4m3 without scales = per-tensor FP8; bf16.
    The three f32 [E_local] output scalars follow ``trtllm_fp8_per_tensor_scale_moe``
    (required for NvFP4 and FP8 activations, None allowed on the MX / bf16 paths). Biases
    (f32 [E, M1], [E, H], rows permuted like the weights) are in raw-accumulator units.
    ``gemm1_alpha``/``beta``/``clamp_limit`` (f32 [E_local]) select the clamped SwiGLU and act on
    the dequantized (real) GEMM1 output. Situ (``activation_type=10``): ``gemm1_alpha`` /
    ``gemm1_beta`` are the gate's / linear half's tanh caps (default 1) in real units, the clamp
    limit is in raw-accumulator units (the kernel clamps before ``output1_scale_gate_scalar``,
    which dequantizes both halves; ``output1_scale_scalar`` is then the output scale alone).

    Layout: flashinfer's prepared weights (the default: rows interleaved when gated and shuffled
    with tile 128, scales permuted alike and 128x4-swizzled), restored per call; the keyword-only
    extension ``use_shuffled_weight=False`` takes native MajorK weights with linear
    ``[E, M1, H/sfv]`` / ``[E, H, I/sfv]`` scales. ``per_token_scale`` and
    ``num_fused_shared_experts`` are not supported. Seed form: see the module docstring.
    """
    call = locals()
    if _cacheable(call):
        return [_FP4_CALLS.run(tuple(call.values()), {})]
    return _fp4(_args(call, **_FROM_LOGITS))


def trtllm_fp4_block_scale_routed_moe(
    topk_ids, routing_bias, hidden_states, hidden_states_scale, gemm1_weights, gemm1_weights_scale,
    gemm1_bias, gemm1_alpha, gemm1_beta, gemm1_clamp_limit, gemm2_weights, gemm2_weights_scale,
    gemm2_bias, output1_scale_scalar, output1_scale_gate_scalar, output2_scale_scalar, num_experts,
    top_k, n_group, topk_group, intermediate_size, local_expert_offset, local_num_experts,
    routed_scaling_factor, routing_method_type=0, do_finalize=True, enable_pdl=None,
    activation_type=ActivationType.Swiglu.value, per_token_scale=None, output=None,
    tune_max_num_tokens=8192, gemm1_lora_delta=None, *, use_shuffled_weight=True,
    weight_layout=WeightLayout.MajorK,
):  # fmt: skip
    """``trtllm_fp4_block_scale_moe`` with precomputed ``topk_ids`` (packed int32 words or an
    (ids, weights) pair). ``gemm1_lora_delta`` (bf16 [T, k, M1], [up ; gate] when gated): added to the GEMM1 output of
    each (token, slot) before the activation; the call then returns ``[output,
    expanded_idx_to_permuted_idx int32 [T, k], gemm1_activation_output bf16 [T*k, I]]`` (see
    ``trtllm_translate.run_and_package``)."""
    call = locals()
    if _cacheable(call):
        return [_FP4_ROUTED_CALLS.run(tuple(call.values()), {})]
    return _fp4(_args(call, **_ROUTED))


# ---- the call cache of the full forms (call_cache.py) ----------------------------------------------
# The folded output scalars of the FP8 per-tensor forms are recomputed on a hit (``derived``);
# their shuffled weights (the default layout) are restored per call, so only calls with
# ``use_shuffled_weight=False`` become templates.


def _cacheable(call: dict) -> bool:
    """The calls the cache may take: a finalized output the library allocates, no routing
    replay (anything else is packaged by run_and_package on every call)."""
    return (
        call.get("do_finalize") is True
        and call.get("routing_replay_out") is None
        and call.get("output") is None
        and call.get("gemm1_lora_delta") is None
    )


def _problem_translator(fn, path, absent: dict):
    """call_cache's translate for ``fn`` (built by ``path``): positional values in ``fn``'s
    parameter order -> (the problem with its output attached, no workspace)."""
    names = tuple(inspect.signature(inspect.unwrap(fn)).parameters)

    def translate(*values):
        a = _args(dict(zip(names, values)), **absent)
        a.problem_only = True
        return path(a), None

    return translate


def _calls(fn, path, absent: dict) -> call_cache.CallCache:
    return call_cache.CallCache(_problem_translator(fn, path, absent))


_BF16_CALLS = _calls(trtllm_bf16_moe, _bf16, _FROM_LOGITS)
_BF16_ROUTED_CALLS = _calls(trtllm_bf16_routed_moe, _bf16, _ROUTED)
_FP8_PER_TENSOR_CALLS = _calls(trtllm_fp8_per_tensor_scale_moe, _fp8_per_tensor, _FROM_LOGITS)
_FP8_PER_TENSOR_ROUTED_CALLS = _calls(
    trtllm_fp8_per_tensor_scale_routed_moe, _fp8_per_tensor, _ROUTED
)
_FP8_BLOCK_CALLS = _calls(trtllm_fp8_block_scale_moe, _fp8_block, _FROM_LOGITS)
_FP8_BLOCK_ROUTED_CALLS = _calls(trtllm_fp8_block_scale_routed_moe, _fp8_block, _ROUTED)
_FP4_CALLS = _calls(trtllm_fp4_block_scale_moe, _fp4, _FROM_LOGITS)
_FP4_ROUTED_CALLS = _calls(trtllm_fp4_block_scale_routed_moe, _fp4, _ROUTED)
