"""Running canonical MoeProblems on the CUDA executor and checking them, shared by the GPU suites
(test_gpu_moe.py for bf16 / fp16, test_gpu_fp8.py for e4m3).

Each problem is built on the CPU (tests/moe_builders.py, every output poisoned), copied to the
device, run there with every GEMM tactic in turn, and checked against the float64 reference of
the CPU copy and against the CPU executor (see ``check``). ``FLASHINFER_MOE_TEST_DEVICE=cpu``
runs the same cases on the CPU executor: a dry run of the test logic itself.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch
from flashinfer.fused_moe.enums import ElemFormat, GemmTactic
from flashinfer.fused_moe.problem import MoeProblem
from flashinfer.fused_moe.reference import reference_moe_permuted
from flashinfer.fused_moe.runner import run_problem
from moe_checks import FP8_MMA_ACCUMULATOR_REL, budget_for, check_inter_output, run_native
from numeric import (
    UNIT_ROUNDOFF,
    Budget,
    assert_close_to_reference,
    assert_exact,
    assert_within_budget,
    poison_like,
)

DEVICE = os.environ.get("FLASHINFER_MOE_TEST_DEVICE", "cuda")
ON_GPU = DEVICE != "cpu"
gpu_only = pytest.mark.skipif(not ON_GPU, reason="needs the CUDA executor")

TACTICS = (GemmTactic.Auto, GemmTactic.Sm80Decode, GemmTactic.Sm80Prefill, GemmTactic.Sm90)
# Families that must run every problem (the portable path takes any stride and size).
MUST_RUN = frozenset({GemmTactic.Auto, GemmTactic.Sm80Decode, GemmTactic.Sm80Prefill})
OUTPUTS = ("output", "permuted_output", "topk_ids_out", "topk_weights_out",
           "expanded_to_permuted_out", "inter_output")  # fmt: skip


def capture_after_warmup(fn):
    """Runs ``fn`` once on a side stream (warm-up outside the capture, as CUDA graphs need), then
    captures it into a CUDA graph; returns (graph, the captured call's result)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        result = fn()
    return graph, result


# ---- moving problems and running them ---------------------------------------------------------


def to_device(obj, device):
    """A copy of a problem (or a part of it) with every tensor on ``device``. ``Tensor.to`` keeps
    the strides of a dense view, so a transposed weight stays transposed."""
    if isinstance(obj, torch.Tensor):
        out = obj.to(device, copy=True)
        assert out.stride() == obj.stride() or obj.numel() <= 1, "a copy lost its strides"
        return out
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: to_device(getattr(obj, f.name), device) for f in dataclasses.fields(obj)}
        return dataclasses.replace(obj, **fields)
    return obj


def with_fresh_outputs(p: MoeProblem, **changes) -> MoeProblem:
    """``p`` with newly poisoned outputs of the same shapes (NaN / an int sentinel)."""
    fresh = {n: poison_like(getattr(p, n)) for n in OUTPUTS if getattr(p, n) is not None}
    return dataclasses.replace(p, **fresh, **changes)


def input_tensors(p: MoeProblem) -> dict:
    """Every tensor of ``p`` that is not an output, by a dotted name."""
    found = {}

    def walk(obj, name):
        if isinstance(obj, torch.Tensor):
            found[name] = obj
        elif dataclasses.is_dataclass(obj):
            for f in dataclasses.fields(obj):
                if f.name not in OUTPUTS:
                    walk(getattr(obj, f.name), f"{name}.{f.name}" if name else f.name)

    walk(p, "")
    return found


@dataclasses.dataclass
class Case:
    """One problem with everything the checks compare against, computed once for all tactics."""

    problem: MoeProblem  # CPU, outputs poisoned
    on_device: MoeProblem  # the same on DEVICE
    ref: object  # reference_moe_permuted(problem)
    budget: Budget
    budget_fp8_mma: Budget  # for the tactics that may run Hopper's FP8 MMAs (Auto, Sm90)
    cpu: MoeProblem | None  # the CPU executor's run of the problem (None: not run, too large)


def prepare(p: MoeProblem, *, cpu_executor: bool = True) -> Case:
    cpu = None
    if cpu_executor:
        cpu = with_fresh_outputs(p)
        run_native(cpu)
    return Case(p, to_device(p, DEVICE), reference_moe_permuted(p), budget_for(p),
                budget_for(p, fp8_tensor_cores=True), cpu)  # fmt: skip


def run_on_device(case: Case, tactic: GemmTactic) -> MoeProblem | None:
    """Runs the case with ``tactic`` on the current stream; the problem with its outputs filled,
    or None when the tactic refused the problem (a ValueError that must name ``tactic``)."""
    p = with_fresh_outputs(case.on_device, tactic=tactic)
    before = {n: t.clone() for n, t in input_tensors(p).items()}
    try:
        run_problem(p)
    except ValueError as err:
        if "tactic" not in str(err):
            raise
        return None
    for name, t in input_tensors(p).items():
        assert torch.equal(t, before[name]), f"{tactic!r}: input {name} was modified"
    return p


def check(case: Case, got: MoeProblem, what: str) -> None:
    p, ref = case.problem, case.ref
    fp8_mma = got.tactic in (GemmTactic.Auto, GemmTactic.Sm90)
    budget = case.budget_fp8_mma if fp8_mma else case.budget
    ids = ref.topk_ids
    valid = (ids >= 0) & (ids < p.num_experts)
    assert_exact(got.topk_ids_out, torch.where(valid, ids, -1), f"{what} topk_ids_out")
    weights = got.topk_weights_out.cpu().double()
    assert_close_to_reference(
        weights[valid], ref.topk_weights[valid], rel_l2=1e-5, what=f"{what} topk_weights_out"
    )
    e2p = ref.expanded_to_permuted
    assert_exact(got.expanded_to_permuted_out, e2p, f"{what} expanded_to_permuted_out")
    if p.output is not None:
        assert_within_budget(got.output, ref.output, budget, what=f"{what} {budget}")
    if p.permuted_output is not None:
        kept = int((e2p >= 0).sum())
        perm = got.permuted_output.cpu().double()
        assert_exact(perm[kept:], torch.zeros_like(perm[kept:]), f"{what} rows past the kept")
        # Finalized by hand (weights from the reference), as the contract's step 7 does.
        scale = torch.ones_like(ref.topk_weights) if p.routing_weight_on_input else ref.topk_weights
        combined = torch.zeros(p.num_tokens, p.hidden_size, dtype=torch.float64)
        for j in range(p.top_k):
            rows, kept_j = e2p[:, j], e2p[:, j] >= 0
            combined[kept_j] += scale[kept_j, j : j + 1] * perm[rows[kept_j]]
        assert_within_budget(combined, ref.output, budget, what=f"{what} permuted")
    fp8_rel = FP8_MMA_ACCUMULATOR_REL if fp8_mma and p.w1.format == ElemFormat.E4M3 else 0.0
    if p.inter_output is not None:
        check_inter_output(got.inter_output, ref, p.hidden_size, f"{what} inter_output", fp8_rel)
    if case.cpu is not None:
        cpu = case.cpu
        assert torch.equal(got.topk_ids_out.cpu(), cpu.topk_ids_out), f"{what}: ids != CPU"
        gw, cw = got.topk_weights_out.cpu(), cpu.topk_weights_out
        assert torch.equal(gw.view(torch.int32), cw.view(torch.int32)), f"{what}: weights != CPU"
        assert torch.equal(got.expanded_to_permuted_out.cpu(), cpu.expanded_to_permuted_out)
        out = "output" if p.output is not None else "permuted_output"
        assert_close_to_reference(
            getattr(got, out), getattr(cpu, out).double(), rel_l2=2 * budget.rel_l2,
            what=f"{what} vs the CPU executor",
        )  # fmt: skip
        if p.inter_output is not None:
            rel = 4 * (UNIT_ROUNDOFF[p.inter_output.dtype] + p.hidden_size * 2.0**-24 + fp8_rel)
            assert_close_to_reference(got.inter_output, cpu.inter_output.double(), rel_l2=rel,
                                      what=f"{what} inter_output vs the CPU executor")  # fmt: skip


def check_all_tactics(p: MoeProblem, *, cpu_executor: bool = True) -> list[GemmTactic]:
    """Runs and checks ``p`` with every tactic; returns the tactics that ran it."""
    case = prepare(p, cpu_executor=cpu_executor)
    ran = []
    for tactic in TACTICS:
        got = run_on_device(case, tactic)
        if got is None:
            assert tactic not in MUST_RUN, f"{tactic!r} refused a float problem it must run"
            continue
        check(case, got, repr(tactic))
        ran.append(tactic)
    return ran


def check_repeated_calls_bitwise_identical(p: MoeProblem, repeats: int = 2) -> None:
    """Runs ``p`` (reference not needed) with every tactic that takes it, ``repeats`` more times
    after a first run: every output must be bitwise the first run's."""
    case = prepare(p, cpu_executor=False)
    for tactic in TACTICS:
        first = run_on_device(case, tactic)
        if first is None:
            continue
        for _ in range(repeats):
            again = run_on_device(case, tactic)
            for name in OUTPUTS:
                a, b = getattr(first, name), getattr(again, name)
                if a is not None:
                    same = torch.equal(a.view(torch.uint8) if a.is_floating_point() else a,
                                       b.view(torch.uint8) if b.is_floating_point() else b)  # fmt: skip
                    assert same, f"{tactic!r}: {name} differs between identical calls"
