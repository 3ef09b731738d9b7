"""Bad problems are rejected by the native validation, naming the offending field.

Each case takes a valid canonical problem (built by moe_builders.build_problem), breaks one
thing, and checks that both ``_C.validate`` and ``runner.run_problem`` raise ValueError or
TypeError whose message names the field (the field path as problem.py spells it). A final check
makes sure every unbroken base problem does validate, so a case cannot pass by accident.
"""

from __future__ import annotations

import re

import pytest
import torch
from flashinfer import _C
from flashinfer.fused_moe.enums import ActivationType as Act
from flashinfer.fused_moe.enums import RoutingMethodType as RM
from flashinfer.fused_moe.runner import run_problem
from moe_builders import build_problem

T, H, I, E, K = 5, 40, 24, 8, 2  # noqa: E741  (I: intermediate size, as in the docs)


def _resized(t: torch.Tensor, dim: int, delta: int) -> torch.Tensor:
    shape = list(t.shape)
    shape[dim] += delta
    return torch.zeros(shape, dtype=t.dtype)


def _retyped(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.zeros(t.shape, dtype=dtype)


def _set(path: str, make):
    """A mutation that replaces the attribute at dotted ``path`` with make(old value)."""

    def mutate(p):
        obj = p
        *parents, leaf = path.split(".")
        for name in parents:
            obj = getattr(obj, name)
        setattr(obj, leaf, make(getattr(obj, leaf)))

    return mutate


def _fields(**values):
    def mutate(p):
        for path, v in values.items():
            _set(path.replace("__", "."), lambda _old, v=v: v)(p)

    return mutate


def _with_top_k(p, k):
    """Change top_k and resize the routing outputs with it, so only the range rule is broken."""
    p.top_k = k
    for name in ("topk_ids_out", "topk_weights_out", "expanded_to_permuted_out"):
        setattr(p, name, torch.zeros(p.num_tokens, k, dtype=getattr(p, name).dtype))


# (id, base problem kwargs, mutation, regex the message must match)
CASES = [
    # dtypes
    ("input-dtype", {}, _set("input.data", lambda t: _retyped(t, torch.int32)), r"input\.data"),
    ("w1-dtype", {}, _set("w1.data", lambda t: _retyped(t, torch.int32)), r"w1\.data"),
    ("w2-dtype-f64", {}, _set("w2.data", lambda t: _retyped(t, torch.float64)), r"w2\.data"),
    (
        "e4m3-data-not-u8",
        dict(weights="e4m3:16x0"),
        _set("w1.data", lambda t: _retyped(t, torch.float16)),
        r"w1\.data",
    ),
    (
        "logits-dtype",
        {},
        _set("routing.logits", lambda t: _retyped(t, torch.int32)),
        r"routing\.logits",
    ),
    (
        "topk-ids-dtype",
        dict(routing="precomputed"),
        _set("routing.topk_ids", lambda t: _retyped(t, torch.float32)),
        r"routing\.topk_ids",
    ),
    ("output-dtype", {}, _set("output", lambda t: _retyped(t, torch.int32)), r"output"),
    (
        "topk-ids-out-dtype",
        {},
        _set("topk_ids_out", lambda t: _retyped(t, torch.int64)),
        r"topk_ids_out",
    ),
    (
        "act-alpha-dtype",
        dict(activation=Act.SwigluBias, act_params=True),
        _set("act_alpha", lambda t: _retyped(t, torch.float64)),
        r"act_alpha",
    ),
    # shapes of every tensor field
    ("input-cols", {}, _set("input.data", lambda t: _resized(t, 1, 1)), r"input\.data"),
    ("input-rows", {}, _set("input.data", lambda t: _resized(t, 0, 1)), r"input\.data"),
    ("w1-experts", {}, _set("w1.data", lambda t: _resized(t, 0, 1)), r"w1\.data"),
    ("w1-rows", {}, _set("w1.data", lambda t: _resized(t, 1, 2)), r"w1\.data"),
    ("w1-cols", {}, _set("w1.data", lambda t: _resized(t, 2, 1)), r"w1\.data"),
    ("w2-rows", {}, _set("w2.data", lambda t: _resized(t, 1, 1)), r"w2\.data"),
    ("w2-cols", {}, _set("w2.data", lambda t: _resized(t, 2, -1)), r"w2\.data"),
    ("w1-2d", {}, _set("w1.data", lambda t: t[0]), r"w1\.data"),
    ("logits-experts", {}, _set("routing.logits", lambda t: _resized(t, 1, 1)), r"routing\.logits"),
    ("logits-tokens", {}, _set("routing.logits", lambda t: _resized(t, 0, -1)), r"routing\.logits"),
    (
        "routing-bias",
        dict(routing="DeepSeekV3", k=4),
        _set("routing.bias", lambda t: _resized(t, 0, 1)),
        r"routing\.bias",
    ),
    (
        "topk-ids",
        dict(routing="precomputed"),
        _set("routing.topk_ids", lambda t: _resized(t, 1, 1)),
        r"routing\.topk_ids",
    ),
    (
        "topk-weights",
        dict(routing="precomputed"),
        _set("routing.topk_weights", lambda t: _resized(t, 1, -1)),
        r"routing\.topk_weights",
    ),
    ("w1-bias", dict(biases=True), _set("w1_bias", lambda t: _resized(t, 1, 1)), r"w1_bias"),
    ("w2-bias", dict(biases=True), _set("w2_bias", lambda t: _resized(t, 0, -1)), r"w2_bias"),
    (
        "act-limit",
        dict(activation=Act.SwigluBias, act_params=True),
        _set("act_limit", lambda t: _resized(t, 0, 1)),
        r"act_limit",
    ),
    (
        "situ-alpha-dtype",
        dict(activation=Act.Situ, act_params=True),
        _set("act_alpha", lambda t: _retyped(t, torch.float16)),
        r"act_alpha",
    ),
    (
        "gemm1-delta",
        dict(lora=True),
        _set("gemm1_delta", lambda t: _resized(t, 2, -1)),
        r"gemm1_delta",
    ),  # fmt: skip
    (
        "gemm1-delta-slots",
        dict(lora=True),
        _set("gemm1_delta", lambda t: _resized(t, 1, 1)),
        r"gemm1_delta",
    ),  # fmt: skip
    (
        "gemm1-delta-dtype",
        dict(lora=True),
        _set("gemm1_delta", lambda t: _retyped(t, torch.int32)),
        r"gemm1_delta",
    ),
    (
        "inter-output",
        dict(inter_out=True),
        _set("inter_output", lambda t: _resized(t, 1, 1)),
        r"inter_output",
    ),  # fmt: skip
    (
        "inter-output-dtype",
        dict(inter_out=True),
        _set("inter_output", lambda t: _retyped(t, torch.int32)),
        r"inter_output",
    ),
    ("output", {}, _set("output", lambda t: _resized(t, 1, 1)), r"output"),
    (
        "permuted-output",
        dict(permuted=True),
        _set("permuted_output", lambda t: _resized(t, 0, -1)),
        r"permuted_output",
    ),
    ("topk-ids-out", {}, _set("topk_ids_out", lambda t: _resized(t, 1, 1)), r"topk_ids_out"),
    (
        "topk-weights-out",
        {},
        _set("topk_weights_out", lambda t: _resized(t, 0, 1)),
        r"topk_weights_out",
    ),
    (
        "expanded-out",
        {},
        _set("expanded_to_permuted_out", lambda t: _resized(t, 1, -1)),
        r"expanded_to_permuted_out",
    ),
    (
        "static-scale",
        dict(input_quant="fp8_static_per_expert"),
        _set("input_quant.static_scale", lambda t: _resized(t, 0, 1)),
        r"input_quant\.static_scale",
    ),
    (
        "static-scale-missing",
        dict(inter_quant="nvfp4"),
        _fields(inter_quant__static_scale=None),
        r"inter_quant\.static_scale",
    ),
    (
        "global-scale",
        dict(weights="nvfp4:packed:linear"),
        _set("w2.global_scale", lambda t: _resized(t, 0, 1)),
        r"w2\.global_scale",
    ),
    (
        "packed-fp4-cols",
        dict(weights="nvfp4:packed:linear"),
        _set("w1.data", lambda t: _resized(t, 2, 1)),
        r"w1\.data",
    ),
    # scale shape not matching the block
    (
        "scale-row-blocks",
        dict(weights="e4m3:16x0"),
        _set("w1.scale", lambda t: _resized(t, 1, 1)),
        r"w1\.scale",
    ),
    (
        "scale-col-blocks",
        dict(weights="e4m3:3x5"),
        _set("w2.scale", lambda t: _resized(t, 2, -1)),
        r"w2\.scale",
    ),
    (
        "fp4-scale-cols",
        dict(weights="nvfp4:packed:linear"),
        _set("w1.scale", lambda t: _resized(t, 2, 1)),
        r"w1\.scale",
    ),
    (
        "swizzled-scale-short",
        dict(weights="nvfp4:packed:swizzled"),
        _set("w2.scale", lambda t: t[: t.numel() - 1]),
        r"w2\.scale",
    ),
    ("negative-block", dict(weights="e4m3:16x0"), _fields(w1__block_rows=-16), r"w1"),
    # ranges
    ("top-k-above-E", {}, _fields(top_k=E + 1), r"top_k"),
    ("top-k-zero", {}, _fields(top_k=0), r"top_k"),
    ("negative-capacity", {}, _fields(expert_capacity=-1), r"expert_capacity"),
    (
        "ep-window-past-E",
        {},
        _fields(local_expert_offset=2),
        r"local_expert_offset|local_num_experts",
    ),
    ("negative-offset", {}, _fields(local_expert_offset=-1), r"local_expert_offset"),
    ("llama4-k2", dict(routing="Llama4", k=1), lambda p: _with_top_k(p, 2), r"top_k|Llama4"),
    ("unspecified-method", {}, _fields(routing__method=RM.Unspecified), r"routing\.method"),
    (
        "ds-group-not-dividing",
        dict(routing="DeepSeekV3_grouped", E=16, k=4),
        _fields(routing__n_group=3),
        r"n_group",
    ),
    (
        "ds-topk-group-above-n-group",
        dict(routing="DeepSeekV3_grouped", E=16, k=4),
        _fields(routing__topk_group=5),
        r"topk_group",
    ),
    (
        "ds-top-k-above-groups",
        dict(routing="DeepSeekV3_grouped", E=16, k=4),
        lambda p: (_fields(routing__topk_group=1)(p), _with_top_k(p, 5)),
        r"top_k|topk_group",
    ),
    ("no-routing-input", {}, _fields(routing__logits=None), r"routing"),
    (
        "both-routing-inputs",
        dict(routing="precomputed"),
        _fields(routing__logits=torch.zeros(T, E)),
        r"routing",
    ),
    (
        "packed-with-weights",
        dict(routing="packed", k=2),
        _fields(routing__topk_weights=torch.ones(T, K)),
        r"routing\.topk_weights",
    ),
    ("hidden-size-mismatch", {}, _fields(hidden_size=H + 8), r"hidden_size|input|w1"),
    (
        "intermediate-size-mismatch",
        {},
        _fields(intermediate_size=I + 2),
        r"intermediate_size|w1|w2",
    ),
    ("num-tokens-mismatch", {}, _fields(num_tokens=T + 1), r"num_tokens|input|logits"),
]

BASE = dict(T=T, H=H, I=I, E=E, k=K)


def _problem(base_kw):
    kw = dict(BASE)
    kw.update(base_kw)
    return build_problem(**kw)


@pytest.mark.parametrize(
    "base_kw", sorted({tuple(sorted(c[1].items())) for c in CASES}, key=str), ids=str
)
def test_base_problems_are_valid(base_kw):
    _C.validate(_problem(dict(base_kw)).to_native())


@pytest.mark.parametrize("case_id,base_kw,mutate,pattern", CASES, ids=[c[0] for c in CASES])
def test_native_validate_names_the_field(case_id, base_kw, mutate, pattern):
    p = _problem(base_kw)
    mutate(p)
    with pytest.raises((ValueError, TypeError)) as info:
        _C.validate(p.to_native())
    assert re.search(pattern, str(info.value)), (
        f"{case_id}: message {str(info.value)!r} !~ {pattern}"
    )


@pytest.mark.parametrize(
    "case_id,base_kw,mutate,pattern", CASES[::3], ids=[c[0] for c in CASES[::3]]
)
def test_run_problem_rejects(case_id, base_kw, mutate, pattern):
    p = _problem(base_kw)
    mutate(p)
    with pytest.raises((ValueError, TypeError)) as info:
        run_problem(p)
    assert re.search(pattern, str(info.value)), (
        f"{case_id}: message {str(info.value)!r} !~ {pattern}"
    )


def test_bad_compute_dtype_is_a_type_error():
    p = _problem({})
    p.compute_dtype = torch.float64
    with pytest.raises(TypeError, match="compute_dtype"):
        p.to_native()


def test_situ_validates():
    _C.validate(_problem(dict(activation=Act.Situ)).to_native())
    _C.validate(_problem(dict(activation=Act.Situ, act_params=True, lora=True)).to_native())


def test_inter_output_must_not_alias_an_input():
    p = _problem(dict(lora=True, inter_out=True))
    p.inter_output = p.w1.data.reshape(-1)[: T * K * I].reshape(T * K, I)
    with pytest.raises(ValueError, match="inter_output"):
        _C.validate(p.to_native())


@pytest.mark.gpu
def test_device_mix_is_rejected():
    p = _problem({})
    p.w2.data = p.w2.data.cuda()
    with pytest.raises((ValueError, TypeError)) as info:
        _C.validate(p.to_native())
    assert re.search(r"w2|device", str(info.value))
