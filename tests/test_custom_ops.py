"""The torch.library custom ops (python/flashinfer/fused_moe/custom_ops.py) on the CPU executor.

Compiled calls (torch.compile fullgraph, the eager and inductor backends) must give the eager
result bit for bit: both run the same native executor on the same canonical problem. Also checked:
torch.library.opcheck on both ops, the fake implementations' shapes and dtypes, the problem codec
(every MoeProblem field is carried) and that eager calls never dispatch through the ops.
"""

from __future__ import annotations

import pytest
import torch
from flashinfer.fused_moe import (
    ActivationType,
    RoutingMethodType,
    WeightLayout,
    custom_ops,
    cutlass_fused_moe,
    trtllm_bf16_moe,
    trtllm_bf16_routed_moe,
)
from flashinfer.fused_moe.enums import ElemFormat
from flashinfer.fused_moe.seed_forms import cutlass_seed_problem
from torch._subclasses.fake_tensor import FakeTensorMode

T, H, I, E, K = 5, 32, 16, 4, 2  # noqa: E741
BF16 = torch.bfloat16


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.fixture
def moe(gen):
    """Small bf16 gated-MoE inputs: x, logits, fc1 [E, 2I, H], fc2 [E, H, I], ids, weights."""
    x = torch.randn(T, H, generator=gen).to(BF16)
    logits = torch.randn(T, E, generator=gen)
    fc1 = (torch.randn(E, 2 * I, H, generator=gen) * 0.2).to(BF16)
    fc2 = (torch.randn(E, H, I, generator=gen) * 0.2).to(BF16)
    ids = torch.stack([torch.randperm(E, generator=gen)[:K] for _ in range(T)]).to(torch.int32)
    weights = torch.rand(T, K, generator=gen)
    return x, logits, fc1, fc2, ids, weights


def _seed(x, logits, fc1, fc2):
    return cutlass_fused_moe(
        x, logits, (fc1, fc2), num_experts=E, top_k=K, routing_method=RoutingMethodType.Renormalize
    )


def _full(x, ids, weights, fc1, fc2):
    return cutlass_fused_moe(x, ids, weights, fc1, fc2, BF16, None)[0]


@pytest.mark.parametrize("backend", ["eager", "inductor"])
def test_compiled_cutlass_forms_match_eager(moe, backend):
    x, logits, fc1, fc2, ids, weights = moe
    seed_args, full_args = (x, logits, fc1, fc2), (x, ids, weights, fc1, fc2)
    for fn, args in ((_seed, seed_args), (_full, full_args)):
        compiled = torch.compile(fn, fullgraph=True, backend=backend)
        assert torch.equal(compiled(*args), fn(*args))


def test_compiled_with_dynamic_token_count(moe):
    x, logits, fc1, fc2, _, _ = moe
    compiled = torch.compile(_seed, fullgraph=True, backend="eager", dynamic=True)
    for t in (T, 3):
        args = (x[:t], logits[:t], fc1, fc2)
        assert torch.equal(compiled(*args), _seed(*args))


def test_compiled_full_form_into_output_and_workspace(moe):
    """A caller's output and workspace go through the mutating op, and are written in place."""
    x, _, fc1, fc2, ids, weights = moe
    size = 1 << 20  # ample for this problem; run_problem checks the real size when the graph runs

    def fn(x, ids, weights, fc1, fc2, out, ws):
        return cutlass_fused_moe(
            x, ids, weights, fc1, fc2, BF16, None, output=out, workspace_buffer=ws
        )[0]

    expected = _full(x, ids, weights, fc1, fc2)
    out = torch.empty(T, H, dtype=BF16)
    ws = torch.empty(size, dtype=torch.uint8)
    result = torch.compile(fn, fullgraph=True, backend="eager")(x, ids, weights, fc1, fc2, out, ws)
    assert torch.equal(result, expected) and torch.equal(out, expected)

    def workspace_only(x, ids, weights, fc1, fc2, ws):
        return cutlass_fused_moe(x, ids, weights, fc1, fc2, BF16, None, workspace_buffer=ws)[0]

    compiled = torch.compile(workspace_only, fullgraph=True, backend="eager")
    assert torch.equal(compiled(x, ids, weights, fc1, fc2, ws), expected)


def test_compiled_trtllm_bf16(moe):
    x, logits, fc1, fc2, ids, weights = moe
    sizes = dict(num_experts=E, top_k=K, n_group=None, topk_group=None, intermediate_size=I,
                 local_expert_offset=0, local_num_experts=E, use_shuffled_weight=False,
                 weight_layout=WeightLayout.MajorK)  # fmt: skip

    def from_logits(logits, x, fc1, fc2):
        return trtllm_bf16_moe(logits, None, x, fc1, fc2, routing_method_type=1, **sizes)

    def routed_unfinalized(ids, weights, x, fc1, fc2):
        return trtllm_bf16_routed_moe((ids, weights), x, fc1, fc2, do_finalize=False, **sizes)

    args = (logits, x, fc1, fc2)
    got = torch.compile(from_logits, fullgraph=True, backend="eager")(*args)
    assert torch.equal(got, from_logits(*args))
    args = (ids, weights, x, fc1, fc2)
    got = torch.compile(routed_unfinalized, fullgraph=True, backend="eager")(*args)
    for g, e in zip(got, routed_unfinalized(*args)):
        assert torch.equal(g, e)


def test_compiled_routed_lora_delta_situ(moe, gen):
    """A routed call with gemm1_lora_delta (and Situ) returns three tensors, among them the
    activated intermediate (``inter_output``, a mutated argument of the out op)."""
    x, _, fc1, fc2, ids, weights = moe
    delta = (torch.randn(T, K, 2 * I, generator=gen) * 0.3).to(BF16)
    sizes = dict(num_experts=E, top_k=K, n_group=None, topk_group=None, intermediate_size=I,
                 local_expert_offset=0, local_num_experts=E, use_shuffled_weight=False,
                 weight_layout=WeightLayout.MajorK, activation_type=ActivationType.Situ)  # fmt: skip

    def routed(ids, weights, x, fc1, fc2, delta):
        return trtllm_bf16_routed_moe((ids, weights), x, fc1, fc2, gemm1_lora_delta=delta, **sizes)

    args = (ids, weights, x, fc1, fc2, delta)
    got = torch.compile(routed, fullgraph=True, backend="eager")(*args)
    want = routed(*args)
    assert len(got) == len(want) == 3
    for g, e in zip(got, want):
        assert torch.equal(g, e)


def test_opcheck_both_ops(moe):
    x, logits, fc1, fc2, _, _ = moe
    problem = cutlass_seed_problem(x, logits, (fc1, fc2), num_experts=E, top_k=K)
    tensors, ints, floats = custom_ops.encode_problem(problem)
    torch.library.opcheck(
        torch.ops.flashinfer_moe.fused_moe.default, (tensors, ints, floats, BF16, torch.float32)
    )
    outputs = (torch.empty(T, H, dtype=BF16), None, torch.empty(T, K, dtype=torch.int32), None)
    ws = torch.empty(1 << 20, dtype=torch.uint8)
    torch.library.opcheck(
        torch.ops.flashinfer_moe.fused_moe_out.default,
        (tensors, ints, floats, BF16, *outputs, None, None, ws),
    )


def test_fake_implementation_shapes(moe):
    """Under fake tensors the public calls go through the ops and touch no data; the fake
    results have the shapes and dtypes of the real ones."""
    x, logits, fc1, fc2, ids, weights = moe
    real_seed, real_full = _seed(x, logits, fc1, fc2), _full(x, ids, weights, fc1, fc2)
    with FakeTensorMode() as mode:
        fx, flogits, fids, fweights, ffc1, ffc2 = (
            mode.from_tensor(t) for t in (x, logits, ids, weights, fc1, fc2)
        )
        seed = _seed(fx, flogits, ffc1, ffc2)
        full = _full(fx, fids, fweights, ffc1, ffc2)
        wide = cutlass_fused_moe(fx.float(), fids, fweights, ffc1.float(), ffc2.float(),
                                 torch.float32, None)[0]  # fmt: skip
    for fake, real in ((seed, real_seed), (full, real_full)):
        assert fake.shape == real.shape == (T, H) and fake.dtype == real.dtype == BF16
    assert wide.shape == (T, H) and wide.dtype == torch.float32
    fake_out = custom_ops._fused_moe_fake(
        *custom_ops.encode_problem(
            cutlass_seed_problem(x, logits, (fc1, fc2), num_experts=E, top_k=K)
        ),
        BF16,
        torch.float16,
    )
    assert fake_out.shape == (T, H) and fake_out.dtype == torch.float16


def test_codec_carries_every_problem_field(moe):
    assert custom_ops.covered_fields() == custom_ops.problem_fields()
    x, logits, fc1, fc2, _, _ = moe
    problem = cutlass_seed_problem(x, logits, (fc1, fc2), num_experts=E, top_k=K, expert_capacity=3)
    problem.routing.n_group = None  # None reads as 0, as in the native conversion
    tensors, ints, floats = custom_ops.encode_problem(problem)
    decoded = custom_ops.decode_problem(tensors, ints, floats, BF16)
    again = custom_ops.encode_problem(decoded)
    assert all(a is b for a, b in zip(tensors, again[0])) and (ints, floats) == again[1:]
    assert decoded.input.data is x and decoded.w1.data is fc1 and decoded.w2.data is fc2
    assert decoded.expert_capacity == 3 and decoded.routing.n_group == 0
    assert decoded.activation is ActivationType.Swiglu and decoded.compute_dtype == BF16
    assert decoded.input.format is ElemFormat.Float and decoded.routing.norm_topk_prob is True


def test_eager_calls_do_not_dispatch_the_ops(moe, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the eager path went through a custom op")

    monkeypatch.setattr(custom_ops, "fused_moe_op", fail)
    monkeypatch.setattr(custom_ops, "fused_moe_out_op", fail)
    x, logits, fc1, fc2, ids, weights = moe
    assert _seed(x, logits, fc1, fc2).shape == (T, H)
    assert _full(x, ids, weights, fc1, fc2).shape == (T, H)
