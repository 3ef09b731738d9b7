"""The call cache (python/flashinfer/fused_moe/call_cache.py): a repeated full-form
``cutlass_fused_moe`` call with the same metadata skips the translation and must give exactly
what the uncached path gives, for the new call's own tensors; anything that differs in metadata
or in a non-tensor value is a new entry; calls whose problem holds tensors made during the
translation are never cached. The cache is on unless FLASHINFER_MOE_CALL_CACHE=0."""

from __future__ import annotations

import threading
import warnings

import flashinfer
import pytest
import torch
from flashinfer.fused_moe import api_cutlass, call_cache, custom_ops
from numeric import rand_float

BF16 = torch.bfloat16
T, E, K, H, I = 5, 6, 2, 64, 32  # noqa: E741  (I: intermediate size, as in the docs)

pytestmark = pytest.mark.skipif(not call_cache._ENABLED, reason="FLASHINFER_MOE_CALL_CACHE=0")


def _args(seed, t=T, dtype=BF16):
    g = torch.Generator().manual_seed(seed)
    x = rand_float((t, H), dtype, seed)
    rows = [torch.randperm(E, generator=g)[:K] for _ in range(t)]
    ids = (torch.stack(rows) if rows else torch.empty(0, K, dtype=torch.int64)).to(torch.int32)
    w = torch.rand(t, K, generator=g) + 0.1
    fc1 = rand_float((E, 2 * I, H), dtype, seed + 1, H**-0.5)
    fc2 = rand_float((E, H, I), dtype, seed + 2, I**-0.5)
    return [x, ids, w, fc1, fc2, dtype, None]


def _uncached(args, **kw):
    problem, ws = api_cutlass._cutlass_full_translate(*args, **kw)
    return custom_ops.run_problem(problem, workspace=ws)


def _fresh_cache(monkeypatch):
    cache = call_cache.CallCache(api_cutlass._cutlass_full_translate)
    monkeypatch.setattr(api_cutlass, "_FULL_CALLS", cache)
    return cache


def test_hits_run_the_new_tensors(monkeypatch):
    cache = _fresh_cache(monkeypatch)
    for seed in (1, 2, 3):  # a miss, then two hits with other data of the same shapes
        args = _args(seed)
        before = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
        got = flashinfer.cutlass_fused_moe(*args)[0]
        assert torch.equal(got, _uncached(args)), f"seed {seed}"
        for a, b in zip(args, before):
            assert not isinstance(a, torch.Tensor) or torch.equal(a, b), "an input was modified"
    assert len(cache._entries) == 1
    assert isinstance(next(iter(cache._entries.values())), call_cache._Entry)


def test_hits_keep_views_only_of_tensors_at_the_same_address(monkeypatch):
    """A hit rebinds only the slots whose tensor moved (call_cache._Entry.bound): the same
    tensors with new values in place, a weight swapped for another, and back, each give what
    the uncached path gives for the call's own tensors."""
    _fresh_cache(monkeypatch)
    a, b = _args(4), _args(5)
    flashinfer.cutlass_fused_moe(*a)  # the miss
    for step in range(4):
        if step == 1:
            a[3].copy_(b[3])  # new values in fc1, same address: the kept view reads them
            a[0].mul_(-1.5)
        args = list(a)
        if step >= 2:
            args[4] = b[4] if step == 2 else a[4]  # fc2 swapped, then back
        got = flashinfer.cutlass_fused_moe(*args)[0]
        assert torch.equal(got, _uncached(args)), f"step {step}"


def test_caller_output_and_int8_workspace(monkeypatch):
    _fresh_cache(monkeypatch)
    ws_bytes = flashinfer.fused_moe.cutlass_fused_moe_workspace_size(
        T, H, I, E, K, x_dtype=BF16, weight_dtype=BF16, output_dtype=BF16)  # fmt: skip
    for seed in (4, 5):
        args = _args(seed)
        out = torch.full((T, H), float("nan"), dtype=BF16)
        ws = torch.empty(ws_bytes, dtype=torch.int8)
        got = flashinfer.cutlass_fused_moe(*args, output=out, workspace_buffer=ws)[0]
        assert got is out
        assert torch.equal(out, _uncached(args))


def test_other_metadata_or_values_are_other_entries(monkeypatch):
    cache = _fresh_cache(monkeypatch)
    base = _args(6)
    variants = [
        base,
        _args(6, t=T + 1),  # shapes
        _args(6, dtype=torch.float16)[:5] + [torch.float16, None],  # dtypes
        [base[0][:, :].t().contiguous().t()] + base[1:],  # strides (a column-major x)
    ]
    for args in variants:
        assert torch.equal(flashinfer.cutlass_fused_moe(*args)[0], _uncached(args))
        assert torch.equal(flashinfer.cutlass_fused_moe(*args)[0], _uncached(args))
    assert len(cache._entries) == len(variants)
    # A non-tensor value is part of the key: an invalid EP rank still raises on a warm cache.
    with pytest.raises(ValueError, match="ep_rank"):
        flashinfer.cutlass_fused_moe(*base, ep_size=2, ep_rank=2)


def test_problems_with_made_tensors_are_not_cached(monkeypatch):
    """No token_final_scales: the translation makes a ones tensor, so the call stays uncached
    (and correct)."""
    cache = _fresh_cache(monkeypatch)
    for seed in (7, 8):
        args = _args(seed)
        args[2] = None
        assert torch.equal(flashinfer.cutlass_fused_moe(*args)[0], _uncached(args))
    assert list(cache._entries.values()) == [call_cache._UNCACHEABLE]


def test_concurrent_hits_keep_their_own_tensors(monkeypatch):
    _fresh_cache(monkeypatch)
    flashinfer.cutlass_fused_moe(*_args(9))  # the miss
    cases = [_args(10 + j) for j in range(4)]
    expected = [_uncached(a) for a in cases]
    results = [None] * len(cases)

    def work(j):
        for _ in range(20):
            results[j] = flashinfer.cutlass_fused_moe(*cases[j])[0]
            assert torch.equal(results[j], expected[j])

    threads = [threading.Thread(target=work, args=(j,)) for j in range(len(cases))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for got, want in zip(results, expected):
        assert torch.equal(got, want)


def test_zero_tokens_and_failing_calls_are_not_templates(monkeypatch):
    cache = _fresh_cache(monkeypatch)
    args = _args(20, t=0)
    assert flashinfer.cutlass_fused_moe(*args)[0].shape == (0, H)
    bad = _args(21)
    bad[1] = bad[1].long()  # int64 ids: a TypeError naming the argument, on every call
    for _ in range(2):
        with pytest.raises(TypeError, match="token_selected_experts"):
            flashinfer.cutlass_fused_moe(*bad)
    assert list(cache._entries.values()) == [call_cache._UNCACHEABLE]


# ---- the trtllm bf16 full forms ------------------------------------------------------------------


def _fresh_trtllm_cache(monkeypatch, name):
    """An empty cache in place of api_trtllm's ``name`` for this test."""
    from flashinfer.fused_moe import api_trtllm

    cache = call_cache.CallCache(getattr(api_trtllm, name)._translate)
    monkeypatch.setattr(api_trtllm, name, cache)
    return cache


def _trtllm_form(monkeypatch, form: str, routed: bool):
    """(``flashinfer.trtllm_<form>_moe`` or its routed twin, a fresh cache in place of its)."""
    suffix = "_routed" if routed else ""
    name = f"_{form.removesuffix('_scale').upper()}{suffix.upper()}_CALLS"
    return getattr(flashinfer, f"trtllm_{form}{suffix}_moe"), _fresh_trtllm_cache(monkeypatch, name)


def _trtllm_args(seed, routed=False):
    from flashinfer.fused_moe import RoutingMethodType, WeightLayout, pack_topk_ids, route

    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(T, E, generator=g)
    x = rand_float((T, H), BF16, seed)
    w1 = rand_float((E, 2 * I, H), BF16, seed + 1, H**-0.5)
    w2 = rand_float((E, H, I), BF16, seed + 2, I**-0.5)
    kw = dict(use_shuffled_weight=False, weight_layout=WeightLayout.MajorK,
              routing_method_type=RoutingMethodType.Renormalize)  # fmt: skip
    if routed:
        ids, w = route(logits, K, RoutingMethodType.Renormalize)
        return (pack_topk_ids(ids, w), x, w1, w2, E, K, None, None, I, 0, E), kw
    return (logits, None, x, w1, w2, E, K, None, None, I, 0, E), kw


@pytest.mark.parametrize("routed", [False, True])
def test_trtllm_bf16_hits_run_the_new_tensors(routed, monkeypatch):
    fn, cache = _trtllm_form(monkeypatch, "bf16", routed)
    for seed in (30, 31, 32):
        args, kw = _trtllm_args(seed, routed)
        got = fn(*args, **kw)
        # The uncached path: do_finalize passed as 1 is not `True`, so the cache stays out.
        want = fn(*args, **dict(kw, do_finalize=1))
        assert torch.equal(got, want), f"seed {seed}"
    assert [type(v) for v in cache._entries.values()] == [call_cache._Entry]
    # Calls the cache leaves alone keep flashinfer's packaging: a caller output, no finalize.
    args, kw = _trtllm_args(33, routed)
    out = torch.empty(T, H, dtype=BF16)
    assert fn(*args, **kw, output=out) is out
    assert len(fn(*args, **kw, do_finalize=False)) == 3
    assert len(cache._entries) == 1


# ---- the FP8 block and FP4 full forms: views of the caller's tensors are rebuilt per hit ----------


def _fp8_block_args(seed, routed=False, scale_offset=0):
    """DeepSeek FP8 block call; the [H/128, T] input scale is a slice of a larger buffer at
    ``scale_offset`` (same shape and strides, another storage offset)."""
    from flashinfer.fused_moe import RoutingMethodType, pack_topk_ids, route

    h, i, f32 = 256, 128, torch.float32
    logits = rand_float((T, E), f32, seed)
    xq = rand_float((T, h), f32, seed + 1, 16.0).to(torch.float8_e4m3fn)
    buf = rand_float((h // 128 + scale_offset, T), f32, seed + 2).abs() + 0.01
    xs = buf[scale_offset:]
    w1 = rand_float((E, 2 * i, h), f32, seed + 3, 16.0).to(torch.float8_e4m3fn)
    w2 = rand_float((E, h, i), f32, seed + 4, 16.0).to(torch.float8_e4m3fn)
    s1 = rand_float((E, 2 * i // 128, h // 128), f32, seed + 5).abs() / 256 + 1e-3
    s2 = rand_float((E, h // 128, i // 128), f32, seed + 6).abs() / 256 + 1e-3
    head = logits
    if routed:
        head = pack_topk_ids(*route(logits, K, RoutingMethodType.Renormalize))
    return (head, None, xq, xs, w1, s1, w2, s2, E, K, None, None, i, 0, E, None, 1)


@pytest.mark.parametrize("routed", [False, True])
def test_fp8_block_hits_rebuild_the_scale_view(routed, monkeypatch):
    """The translation uses ``hidden_states_scale.t()``, a view: a hit rebuilds it on the new
    call's tensor, also when that tensor sits at another offset of its storage."""
    fn, cache = _trtllm_form(monkeypatch, "fp8_block_scale", routed)
    for seed, offset in ((40, 0), (50, 3), (60, 1)):
        args = _fp8_block_args(seed, routed, offset)
        got = fn(*args)
        want = fn(*args, do_finalize=1)  # not `True`: the uncached path
        assert torch.equal(got, want), f"seed {seed}"
    entries = list(cache._entries.values())
    assert [type(v) for v in entries] == [call_cache._Entry]
    assert any(field == "scale" for owner, field, _, _ in entries[0].slots if owner == "input")


@pytest.mark.parametrize("scalars", [False, True])
def test_fp4_hits_rebuild_the_scale_byte_views(scalars, monkeypatch):
    """MXFP4 weights with linear ue8m0 scales as uint8 (the translation takes byte views of
    them); bf16 activations. Hits give the uncached result, as a one-tensor list. With the
    three output scalars given, the folded W2 global is recomputed on each hit."""
    cache = _fresh_trtllm_cache(monkeypatch, "_FP4_CALLS")
    h, i = 64, 64
    for seed in (70, 71):
        g = torch.Generator().manual_seed(seed)
        logits = rand_float((T, E), torch.float32, seed)
        x = rand_float((T, h), BF16, seed + 1)
        p1 = torch.randint(0, 256, (E, 2 * i, h // 2), dtype=torch.uint8, generator=g)
        p2 = torch.randint(0, 256, (E, h, i // 2), dtype=torch.uint8, generator=g)
        sf1 = torch.randint(118, 128, (E, 2 * i, h // 32), dtype=torch.uint8, generator=g)
        sf2 = torch.randint(118, 128, (E, h, i // 32), dtype=torch.uint8, generator=g)
        out = [rand_float((E,), torch.float32, seed + n).abs() + 0.5 if scalars else None
               for n in (2, 3, 4)]  # fmt: skip
        args = (logits, None, x, None, p1, sf1, None, None, None, None, p2, sf2, None, *out,
                E, K, None, None, i, 0, E, None, 1)  # fmt: skip
        got = flashinfer.trtllm_fp4_block_scale_moe(*args, use_shuffled_weight=False)
        want = flashinfer.trtllm_fp4_block_scale_moe(
            *args, do_finalize=1, use_shuffled_weight=False
        )
        assert isinstance(got, list) and len(got) == 1
        assert torch.equal(got[0], want[0]), f"seed {seed}"
    entries = list(cache._entries.values())
    assert [type(v) for v in entries] == [call_cache._Entry]
    derived = [(o, f) for o, f, _, _ in entries[0].derived_slots]
    assert derived == ([("w2", "global_scale")] if scalars else [])


def _fp8_per_tensor_args(seed, routed=False):
    """A gated FP8 per-tensor call on native MajorK weights, with its three f32 scalars."""
    from flashinfer.fused_moe import RoutingMethodType, pack_topk_ids, route

    h, i, f32 = 64, 32, torch.float32
    logits = rand_float((T, E), f32, seed)
    xq = rand_float((T, h), f32, seed + 1, 16.0).to(torch.float8_e4m3fn)
    w1 = rand_float((E, 2 * i, h), f32, seed + 2, 16.0).to(torch.float8_e4m3fn)
    w2 = rand_float((E, h, i), f32, seed + 3, 16.0).to(torch.float8_e4m3fn)
    gate = rand_float((E,), f32, seed + 4).abs() / 64 + 1e-3
    out1 = gate * (rand_float((E,), f32, seed + 5).abs() + 0.5)
    out2 = rand_float((E,), f32, seed + 6).abs() / 64 + 1e-3
    head = logits
    if routed:
        head = pack_topk_ids(*route(logits, K, RoutingMethodType.Renormalize))
    args = [head, None, xq, w1, out1, gate, w2, out2, E, K, None, None, i, 0, E, None, False,
            int(RoutingMethodType.Renormalize)]  # fmt: skip
    return args, dict(use_shuffled_weight=False)


@pytest.mark.parametrize("routed", [False, True])
def test_fp8_per_tensor_hits_recompute_the_folded_scalars(routed, monkeypatch):
    """The folded output scalars are computed from the call's three scalars (call_cache.derived):
    a hit recomputes them, so it equals the uncached path for new scalars, for scalars updated in
    place and for a swapped scalar tensor; the template holds none of the caller's tensors."""
    fn, cache = _trtllm_form(monkeypatch, "fp8_per_tensor_scale", routed)
    for seed in (100, 110, 120):  # a miss, then hits with other data
        args, kw = _fp8_per_tensor_args(seed, routed)
        got = fn(*args, **kw)
        assert torch.equal(got, fn(*args, **kw, do_finalize=1)), f"seed {seed}"  # uncached
    before = got
    args[4].mul_(1.5)  # output1 scalars updated in place: a hit must read them
    args[7].mul_(0.5)
    got = fn(*args, **kw)
    assert torch.equal(got, fn(*args, **kw, do_finalize=1))
    assert not torch.equal(got, before)
    args[5] = args[5] * 2.0  # another gate-scalar tensor
    assert torch.equal(fn(*args, **kw), fn(*args, **kw, do_finalize=1))
    entries = list(cache._entries.values())
    assert [type(v) for v in entries] == [call_cache._Entry]
    assert {(o, f) for o, f, _, _ in entries[0].derived_slots} == {
        ("inter_quant", "static_scale"),
        ("w2", "global_scale"),
    }
    for _, specs in entries[0].recipes:  # (index, rebuild or None) per argument, no tensors
        assert not any(isinstance(v, torch.Tensor) for spec in specs if spec for v in spec)


def test_fp8_per_tensor_bad_scalars_after_hits_name_the_argument(monkeypatch):
    """Bad scalars after the form is cached: a wrong shape (ValueError) or dtype (TypeError) is
    another signature, so the translation runs and its error names the argument; the entry is
    kept."""
    fn, cache = _trtllm_form(monkeypatch, "fp8_per_tensor_scale", False)
    args, kw = _fp8_per_tensor_args(140)
    fn(*args, **kw)
    fn(*args, **kw)  # a hit
    for i, name, bad, error in ((4, "output1_scales_scalar", args[4][:-1], ValueError),
                                (5, "output1_scales_gate_scalar", args[5].double(), TypeError),
                                (7, "output2_scales_scalar", args[7].reshape(E, 1), ValueError)):  # fmt: skip
        with pytest.raises(error, match=name):
            fn(*args[:i], bad, *args[i + 1 :], **kw)
    assert [type(v) for v in cache._entries.values()] == [call_cache._Entry]


def test_fp8_per_tensor_shuffled_weights_are_not_cached(monkeypatch):
    """flashinfer's default layout: the weights are restored per call (computed tensors), so the
    call is never a template, and still correct."""
    cache = _fresh_trtllm_cache(monkeypatch, "_FP8_PER_TENSOR_CALLS")
    args, _ = _fp8_per_tensor_args(130)  # read as shuffled: any bytes are a valid stack
    fn = flashinfer.trtllm_fp8_per_tensor_scale_moe
    with warnings.catch_warnings():  # the per-call restore warns once per process
        warnings.simplefilter("ignore")
        want = fn(*args, do_finalize=1)
        for _ in range(2):
            assert torch.equal(fn(*args), want)
    assert list(cache._entries.values()) == [call_cache._UNCACHEABLE]


def test_derived_marks_only_computed_outputs():
    a, b = torch.ones(3), torch.full((3,), 2.0)
    q = a / b
    outs = call_cache.derived((q, a, None), lambda x, y: (x / y, x, None), (a, b))
    assert outs[0] is q and getattr(q, call_cache._DERIVED_ATTR)[2] == 0
    assert not hasattr(a, call_cache._DERIVED_ATTR)  # an argument passed through: a call tensor


def test_views_of_a_shared_storage_are_not_cached(monkeypatch):
    """Two call tensors in one storage: a view the translation makes could belong to either,
    so the call is never a template (and still correct)."""
    cache = _fresh_trtllm_cache(monkeypatch, "_FP8_BLOCK_CALLS")
    args = list(_fp8_block_args(80))
    both = torch.cat([args[3].reshape(-1), args[5].reshape(-1)])  # input and w1 scales, one buffer
    args[3] = both[: args[3].numel()].view(args[3].shape)
    args[5] = both[args[3].numel() :].view(args[5].shape)
    for _ in range(2):
        got = flashinfer.trtllm_fp8_block_scale_moe(*args)
        assert torch.equal(got, flashinfer.trtllm_fp8_block_scale_moe(*args, do_finalize=1))
    assert list(cache._entries.values()) == [call_cache._UNCACHEABLE]


# ---- the seed forms ------------------------------------------------------------------------------


def _seed_cache(monkeypatch, name):
    from flashinfer.fused_moe import seed_forms

    cache = call_cache.CallCache(getattr(seed_forms, name)._translate)
    monkeypatch.setattr(seed_forms, name, cache)
    return cache


def test_seed_forms_hit_with_new_tensors(monkeypatch):
    """The cutlass seed form (float experts [E, 2, I, H], fp16 gating used as it is) and the FP4
    seed form (one e2m1 code per byte, fp16 scales per 16): hits equal the translated path."""
    from flashinfer.fused_moe import seed_forms

    cutlass, fp4 = _seed_cache(monkeypatch, "_CUTLASS"), _seed_cache(monkeypatch, "_FP4_BLOCK")
    h, i = 64, 32
    kw = dict(num_experts=E, top_k=K, hidden_size=h, intermediate_size=i)
    for seed in (90, 91, 92):
        g = torch.Generator().manual_seed(seed)
        x = rand_float((T, h), torch.float16, seed)
        gate = rand_float((T, E), torch.float16, seed + 1)
        experts = rand_float((E, 2, i, h), torch.float16, seed + 2, h**-0.5)
        got = flashinfer.cutlass_fused_moe(x, gate, experts, **kw)
        want = custom_ops.run_problem(seed_forms.cutlass_seed_problem(x, gate, experts, **kw))
        assert torch.equal(got, want), f"cutlass seed {seed}"
        codes = torch.randint(0, 16, (E, 2, i, h), dtype=torch.uint8, generator=g)
        scale = rand_float((E, 2, i // 16), torch.float16, seed + 3).abs() + 0.25
        got = flashinfer.trtllm_fp4_block_scale_moe(x, gate, codes, scale, **kw)
        problem = seed_forms.fp4_block_scale_seed_problem(x, gate, codes, scale, **kw)
        want = custom_ops.run_problem(problem, output_dtype=seed_forms.TRTLLM_OUTPUT_DTYPE)
        assert torch.equal(got, want), f"fp4 seed {seed}"
    for cache in (cutlass, fp4):
        assert [type(v) for v in cache._entries.values()] == [call_cache._Entry]


def test_seed_fp8_with_float_weights_is_not_cached(monkeypatch):
    """Float experts are rounded to e4m3 on every call (computed tensors): never a template."""
    cache = _seed_cache(monkeypatch, "_FP8_PER_TENSOR")
    h, i = 64, 32
    x = rand_float((T, h), torch.float16, 95)
    gate = rand_float((T, E), torch.float16, 96)
    experts = rand_float((E, 2, i, h), torch.float16, 97, 4.0)
    scale = rand_float((E, 2), torch.float16, 98).abs() + 0.25
    kw = dict(num_experts=E, top_k=K, hidden_size=h, intermediate_size=i)
    with warnings.catch_warnings():  # the rounding warning is given once per process
        warnings.simplefilter("ignore")
        first = flashinfer.trtllm_fp8_per_tensor_scale_moe(x, gate, experts, scale, **kw)
        again = flashinfer.trtllm_fp8_per_tensor_scale_moe(x, gate, experts, scale, **kw)
    assert torch.equal(first, again)
    assert list(cache._entries.values()) == [call_cache._UNCACHEABLE]
