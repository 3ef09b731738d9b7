"""The CUDA executor (``_C.run_cuda`` through ``runner.run_problem``) on canonical MoeProblems.

Each problem is built on the CPU (tests/moe_builders.py, every output poisoned), copied to the
GPU, run there with every GEMM tactic in turn (Auto, Sm80Decode, Sm80Prefill, Sm90), and
checked against
  * the float64 reference (flashinfer.fused_moe.reference) of the CPU copy: routing ids and the
    expanded-to-permuted map exactly, routing weights to fp32 rounding, the output (or the
    permuted GEMM2 rows) within the error budget of tests/numeric.py, whole tensor and row by row;
  * the CPU executor on the same problem: ids, weights and the map bit for bit (the routing math
    is shared), the output within twice the budget (both lie within one budget of the reference).
A forced tactic that cannot run a problem must refuse with a ValueError naming ``tactic``; Auto
and the portable sm80 families must run every bf16/fp16 problem. Every run also checks that the
inputs are bitwise unchanged. Further: determinism, the current torch stream, int64 indexing.
The public API forms, CUDA graphs, workspaces and the tactic override are in test_gpu_api.py.

Without a GPU the file skips (marker ``gpu``). ``FLASHINFER_MOE_TEST_DEVICE=cpu`` instead runs
the same cases on the CPU executor (GPU-only tests skip): a dry run of the test logic itself.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from flashinfer import _C
from flashinfer.fused_moe.enums import ActivationType as Act
from flashinfer.fused_moe.enums import GemmTactic
from flashinfer.fused_moe.enums import RoutingMethodType as RM
from flashinfer.fused_moe.problem import MoeProblem, QuantTensor, RoutingSpec
from flashinfer.fused_moe.reference import reference_moe_permuted
from flashinfer.fused_moe.runner import run_problem
from gpu_cases import (
    MUST_RUN,
    ON_GPU,
    TACTICS,
    check,
    check_all_tactics,
    check_repeated_calls_bitwise_identical,
    gpu_only,
    prepare,
    run_on_device,
    with_fresh_outputs,
)
from moe_builders import build_problem
from moe_checks import budget_for
from numeric import (
    assert_within_budget,
    rand_float,
)

pytestmark = [pytest.mark.gpu] if ON_GPU else []
F16 = dict(weights="f16", in_dtype=torch.float16, out_dtype=torch.float16, compute=torch.float16)


# ---- sweeps -----------------------------------------------------------------------------------

ROUTINGS = [
    ("Default", {}), ("Renormalize", {}), ("Renormalize_bf16_logits", {}),
    ("RenormalizeNaive", {}), ("TopK", {}), ("TopK_f16_logits", {}), ("Sigmoid", {}),
    ("TopKSigmoid", {}), ("SigmoidRenorm", {}), ("SigmoidRenorm_no_norm", {}),
    ("MiniMax2", dict(k=3)), ("DeepSeekV3", dict(k=4)), ("DeepSeekV3_grouped", dict(E=16, k=4)),
    ("Llama4", dict(k=1)), ("RoundRobin", dict(k=3)), ("precomputed", {}),
    ("precomputed_bf16", dict(k=3)), ("packed", dict(k=3)),
]  # fmt: skip


@pytest.mark.parametrize("routing,kw", ROUTINGS, ids=[r for r, _ in ROUTINGS])
def test_routing_methods(routing, kw):
    check_all_tactics(build_problem(T=64, H=200, I=72, routing=routing, seed=1, **kw))


ACTIVATIONS = [a for a in Act if a != Act.InvalidType]


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=lambda a: a.name)
def test_activations(activation):
    params = activation in (Act.SwigluBias, Act.SwigluStep, Act.Situ)
    p = build_problem(T=64, H=200, I=72, activation=activation, act_params=params, seed=2)
    check_all_tactics(p)


# (T, E, k, H, I, extra): decode and prefill sizes, odd H / I, E = 1 .. 256, top_k up to 8.
SHAPES = [
    (0, 8, 2, 200, 72, {}),
    (1, 1, 1, 200, 1408, {}),
    (1, 4, 2, 2880, 1408, {}),  # gpt-oss-like expert, decode
    (3, 16, 8, 200, 1408, F16),
    (3, 8, 8, 256, 128, {}),  # top_k == E: every expert gets every token
    (33, 8, 3, 201, 37, {}),  # odd sizes: rows not 16-byte aligned
    (64, 256, 8, 256, 128, dict(routing="DeepSeekV3")),
    (64, 1, 1, 2880, 1408, F16),
    (1000, 64, 8, 200, 72, {}),
    (1000, 8, 2, 2880, 200, F16),
    (1000, 1, 1, 1408, 200, dict(routing="TopK")),
]


def _ids(shapes):
    return [
        "T{}-E{}-k{}-H{}-I{}".format(*s[:5]) + ("-f16" if s[5].get("weights") else "")
        for s in shapes
    ]


@pytest.mark.parametrize("T,E,k,H,I,extra", SHAPES, ids=_ids(SHAPES))
def test_shapes(T, E, k, H, I, extra):  # noqa: E741
    check_all_tactics(build_problem(T=T, E=E, k=k, H=H, I=I, seed=T + E + H, **extra))


# Large prefill: the float64 reference only (the CPU executor would dominate the suite's time).
LARGE = [(8192, 8, 2, 1024, 512, {}), (8192, 64, 8, 512, 128, dict(activation=Act.Relu2))]


@pytest.mark.parametrize("T,E,k,H,I,extra", LARGE, ids=_ids(LARGE))
def test_large_prefill(T, E, k, H, I, extra):  # noqa: E741
    check_all_tactics(build_problem(T=T, E=E, k=k, H=H, I=I, seed=7, **extra), cpu_executor=False)


@pytest.mark.parametrize(
    "kw",
    [
        dict(capacity=1),
        dict(capacity=5, T=64),
        dict(capacity=3, T=64, E=16, offset=4, local=8, k=4),  # capacity inside an EP window
        dict(E=16, offset=8, local=4, k=4, T=64),  # EP: a window in the middle
        dict(E=16, offset=0, local=1, k=2, T=64),  # EP: one local expert
        dict(E=16, offset=8, local=8, k=4, T=64, routing="packed"),  # ids outside the window
    ],
    ids=["cap1", "cap5", "cap3_ep", "ep_middle", "ep_one", "ep_packed"],
)
def test_capacity_and_expert_parallel_window(kw):
    check_all_tactics(build_problem(H=200, I=72, seed=3, **dict(dict(T=16), **kw)))


@pytest.mark.parametrize("dtype", ["bf16", "f16"])
@pytest.mark.parametrize("activation", [Act.Swiglu, Act.Gelu])
def test_biases(dtype, activation):
    extra = F16 if dtype == "f16" else {}
    check_all_tactics(build_problem(T=64, H=200, I=72, biases=True, activation=activation, seed=4,
                                    **extra))  # fmt: skip


@pytest.mark.parametrize("routing,k", [("Llama4", 1), ("Renormalize", 2)])
def test_routing_weight_on_input(routing, k):
    check_all_tactics(build_problem(T=64, H=200, I=72, k=k, routing=routing, rw_on_input=True,
                                    seed=5))  # fmt: skip


@pytest.mark.parametrize("extra", [{}, F16], ids=["bf16", "f16"])
def test_transposed_w2_view(extra):
    """The seed form's W_out: [E, H, I] as a transposed view of stored [E, I, H] (n stride 1),
    read through its strides (never copied)."""
    p = build_problem(T=64, H=200, I=72, activation=Act.Silu, seed=6, **extra)
    stored = p.w2.data.transpose(1, 2).contiguous()  # [E, I, H]
    p.w2 = QuantTensor(stored.transpose(1, 2))
    assert p.w2.data.stride()[1] == 1
    check_all_tactics(p)


def test_permuted_output_without_finalize():
    check_all_tactics(build_problem(T=64, E=8, k=3, H=200, I=72, permuted=True, seed=8))


def test_fp32_output_of_bf16_compute():
    check_all_tactics(build_problem(T=64, H=200, I=72, out_dtype=torch.float32, seed=9))


def test_repeated_calls_are_bitwise_identical():
    check_repeated_calls_bitwise_identical(build_problem(T=1000, E=64, k=8, H=200, I=72, seed=10))


def _split_k_problem(seed, **kw):
    """Decode with a long GEMM2 K over a narrow H: the sm80 GEMM2 grid (6 row items x 3 column
    tiles) is far below two CTAs per SM on any current GPU, so it splits K (I = 8192: 4 splits,
    host/heuristics.h choose_k_splits) and finalize / the permuted output add the partials."""
    return build_problem(T=3, E=8, k=2, H=144, I=8192, biases=True, seed=seed, **kw)


@pytest.mark.parametrize("kw", [{}, dict(permuted=True), dict(activation=Act.Relu2)],
                         ids=["finalize", "permuted", "relu2"])  # fmt: skip
def test_split_k_decode_gemm2(kw):
    check_all_tactics(_split_k_problem(11, **kw))


def test_split_k_transposed_w2_and_determinism():
    p = _split_k_problem(12)
    p.w2 = QuantTensor(p.w2.data.transpose(1, 2).contiguous().transpose(1, 2))
    check_all_tactics(p)
    check_repeated_calls_bitwise_identical(p)


@pytest.mark.parametrize("variant", ["defaults", "uncapped", "decode"])
def test_situ(variant):
    """Situ with its default caps (4 / 25), with infinite caps on some experts (the uncapped
    linear half: plain SiTU times up) and at decode size (the fused sm80 epilogue)."""
    T = 2 if variant == "decode" else 64
    p = build_problem(T=T, H=200, I=72, activation=Act.Situ, act_params=variant != "defaults",
                      seed=14)  # fmt: skip
    if variant == "uncapped":
        inf = float("inf")
        p.act_beta = torch.tensor([inf, 0.5, inf, 2.0, inf, 1.0, inf, 25.0])
        p.act_alpha = torch.tensor([1.0, inf, 4.0, 0.5, 2.0, 3.0, inf, 1.5])
    check_all_tactics(p)


# The GEMM1 delta (LoRA) and inter_output run in the activation kernel (no fused epilogue):
# gated and not, parameters, biases, f16, capacity and EP (dropped and foreign slots carry a
# delta that must not land anywhere), routing weight on input, permuted output, decode, and an
# odd I (the element-wise, non-vector kernel).
LORA = {
    "swiglu": {},
    "situ-params-biases": dict(activation=Act.Situ, act_params=True, biases=True),
    "relu2-f16": dict(activation=Act.Relu2, **F16),
    "capacity-ep-packed": dict(capacity=3, E=16, offset=4, local=8, k=4, routing="packed"),
    "weight-on-input": dict(routing="Llama4", k=1, rw_on_input=True),
    "permuted": dict(permuted=True, k=3),
    "decode": dict(T=1, k=2),
    "odd-I": dict(H=201, I=37, activation=Act.Geglu),
}


@pytest.mark.parametrize("kw", LORA.values(), ids=LORA.keys())
def test_gemm1_delta_and_inter_output(kw):
    check_all_tactics(build_problem(**dict(dict(T=64, H=200, I=72, lora=True, inter_out=True,
                                                seed=15), **kw)))  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_inter_output_without_delta(dtype):
    p = build_problem(T=64, E=8, k=2, H=200, I=72, capacity=10, seed=16)
    p.inter_output = torch.full((64 * 2, 72), float("nan"), dtype=dtype)
    check_all_tactics(p)


@gpu_only
def test_sm90_family_runs_where_it_should():
    """Sm90 runs a K-major bf16 problem on a Hopper card of a build with 90a; elsewhere
    it refuses (ValueError naming tactic). Guards against the family silently never running."""
    p = build_problem(T=256, E=8, k=2, H=256, I=128, seed=11)
    major, minor = torch.cuda.get_device_capability()
    expect = (major, minor) == (9, 0) and "90a" in _C.cuda_architectures().split(";")
    case = prepare(p)
    got = run_on_device(case, GemmTactic.Sm90)
    assert (got is not None) == expect, (
        f"Sm90 {'refused' if got is None else 'ran'} on sm_{major}{minor} with archs "
        f"{_C.cuda_architectures()!r}"
    )
    if got is not None:
        check(case, got, "Sm90")


@gpu_only
def test_runs_on_the_current_stream():
    """Work queued before the call on the current (non-default) stream must be visible to it:
    a launch on any other stream would read the stale input while the sleep holds the copy."""
    case = prepare(build_problem(T=256, E=8, k=2, H=256, I=128, seed=12), cpu_executor=False)
    p = with_fresh_outputs(case.on_device)
    fresh_x = p.input.data.clone()
    p.input = QuantTensor(torch.zeros_like(fresh_x))
    stream = torch.cuda.Stream()
    torch.cuda.synchronize()
    with torch.cuda.stream(stream):
        torch.cuda._sleep(50_000_000)  # ~tens of ms of GPU time before the copy lands
        p.input.data.copy_(fresh_x)
        out = run_problem(p)
    stream.synchronize()
    expect = run_on_device(case, GemmTactic.Auto).output
    assert torch.equal(out.view(torch.uint8), expect.view(torch.uint8))


def _rand_on_gpu(shape, dtype, seed, scale=1.0):
    """numeric.rand_float made on the GPU (hundreds of millions of elements): no zeros."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    v = torch.randn(shape, generator=g, device="cuda", dtype=torch.float32)
    return (torch.where(v < 0, -1.0, 1.0) * v.abs().clamp_min(1.0 / 16) * scale).to(dtype)


@gpu_only
def test_int64_indexing_past_2_pow_31_elements():
    """T * k * H just above 2^31: the permuted [T*k, H] rows of the last expert sit past element
    2^31, so any 32-bit row * H product breaks them. RoundRobin with k = E = 8 routes slot j of
    every token to expert j (row j*T + t), independent of the token index, so the reference of a
    96-token sub-problem (the first 32 and last 64 tokens, whose expert-7 rows cross 2^31
    elements) gives those output rows exactly; the routing outputs are checked for all tokens."""
    t, k, e, h, i = 65600, 8, 8, 4096, 64
    assert t * k * h > 2**31
    w1 = rand_float((e, 2 * i, h), torch.bfloat16, 13, scale=h**-0.5)
    w2 = rand_float((e, h, i), torch.bfloat16, 14, scale=i**-0.5)
    logits = rand_float((t, e), torch.float32, 15, scale=2.0)
    x = _rand_on_gpu((t, h), torch.bfloat16, 16)
    p = MoeProblem(
        num_tokens=t, hidden_size=h, intermediate_size=i, num_experts=e, local_expert_offset=0,
        local_num_experts=e, top_k=k, routing=RoutingSpec(method=RM.RoundRobin, logits=logits.cuda()),
        input=QuantTensor(x), w1=QuantTensor(w1.cuda()), w2=QuantTensor(w2.cuda()),
        output=torch.empty(t, h, dtype=torch.bfloat16, device="cuda"),
        topk_ids_out=torch.empty(t, k, dtype=torch.int32, device="cuda"),
        expanded_to_permuted_out=torch.empty(t, k, dtype=torch.int32, device="cuda"),
    )  # fmt: skip
    need = int(_C.workspace_size(p.to_native(), _C.DeviceKind.CUDA))  # Auto's; others similar
    free = torch.cuda.mem_get_info()[0]
    if need + (4 << 30) > free:
        pytest.skip(f"needs {need / 2**30:.1f} GiB of workspace, {free / 2**30:.1f} GiB free")
    rows = torch.cat([torch.arange(32), torch.arange(t - 64, t)])
    sub = MoeProblem(
        num_tokens=rows.numel(), hidden_size=h, intermediate_size=i, num_experts=e,
        local_expert_offset=0, local_num_experts=e, top_k=k,
        routing=RoutingSpec(method=RM.RoundRobin, logits=logits[rows]), input=QuantTensor(x[rows.cuda()].cpu()),
        w1=QuantTensor(w1), w2=QuantTensor(w2), output=torch.empty(rows.numel(), h, dtype=torch.bfloat16),
    )  # fmt: skip
    ref = reference_moe_permuted(sub).output
    budget = budget_for(sub)
    slot = torch.arange(k, device="cuda", dtype=torch.int64)
    expect_rows = slot[None, :] * t + torch.arange(t, device="cuda")[:, None]
    for tactic in TACTICS:
        q = dataclasses.replace(p, tactic=tactic)
        q.output.fill_(float("nan"))
        q.expanded_to_permuted_out.fill_(-7)
        try:
            run_problem(q)  # the workspace this tactic asks for, from the caching allocator
        except ValueError as err:
            assert "tactic" in str(err) and tactic not in MUST_RUN, err
            continue
        assert torch.equal(q.topk_ids_out.long(), slot.expand(t, k)), f"{tactic!r}: ids"
        assert torch.equal(q.expanded_to_permuted_out.long(), expect_rows), f"{tactic!r}: rows"
        assert_within_budget(q.output[rows.cuda()], ref, budget, what=f"{tactic!r} {budget}")
        del q
        torch.cuda.empty_cache()
