"""Running a canonical MoeProblem on the CPU executor and checking it against the reference.

``check_against_reference`` runs ``_C.run_cpu`` and compares every output (routing ids and
weights, the expanded-to-permuted map, the output or the permuted rows) with the float64
reference of flashinfer.fused_moe.reference, within the error budget of tests/numeric.py that
``budget_for`` derives from the problem's rounding points. ``assert_matches_reference`` is the
output-only check of the API tests, for a problem an API call was translated into.
"""

from __future__ import annotations

import torch
from flashinfer import _C
from flashinfer.fused_moe.enums import ActQuant, ElemFormat
from flashinfer.fused_moe.problem import MoeProblem
from flashinfer.fused_moe.reference import (
    reference_moe,
    reference_moe_permuted,
    reference_routing,
)
from numeric import (
    UNIT_ROUNDOFF,
    assert_close_to_reference,
    assert_exact,
    assert_within_budget,
    error_budget,
)


def run_native(p: MoeProblem, num_threads: int = 0) -> int:
    """validate + workspace query + run_cpu; returns the workspace size used."""
    native = p.to_native()
    _C.validate(native)
    need = int(_C.workspace_size(native, _C.DeviceKind.CPU))
    _C.run_cpu(native, torch.empty(need, dtype=torch.uint8), num_threads)
    return need


# Relative error per GEMM of Hopper's FP8 tensor cores (see numeric.error_budget): a 128-deep
# K chunk summed with ~14 significant bits, truncated, over 4 instructions of 32 products.
FP8_MMA_ACCUMULATOR_REL = 2.0**-11


def budget_for(p: MoeProblem, fp8_tensor_cores: bool = False):
    """The error budget of ``p``; ``fp8_tensor_cores`` when a GEMM family that accumulates in
    Hopper's FP8 MMAs (the Sm90 family on e4m3 operands) may have run it."""
    fmt = {
        ActQuant.Fp8Static: "e4m3",
        ActQuant.Fp8PerToken: "e4m3",
        ActQuant.Fp8PerGroup: "e4m3",
        ActQuant.MxFp8: "e4m3",
        ActQuant.NvFp4: "e2m1",
    }
    # GEMM1's input is rounded / quantized from the same stored values with the same fp32 scale
    # math in the executor and the reference, so it rounds identically: no flip term. The
    # intermediate comes out of fp32 sums that differ in the last bits, so it can flip.
    requant = []
    count = max(p.num_tokens, 1) * p.top_k * p.intermediate_size
    if p.inter_quant.mode != ActQuant.None_:
        requant.append((fmt[ActQuant(p.inter_quant.mode)], count))
    elif p.compute_dtype != torch.float32:
        requant.append((p.compute_dtype, count))
    out_dtype = p.output.dtype if p.output is not None else torch.float32
    fp8 = p.w1.format == ElemFormat.E4M3
    return error_budget(
        out_dtype=out_dtype,
        k1=p.hidden_size,
        k2=p.intermediate_size,
        top_k=p.top_k,
        requant=requant,
        gemm_accumulator_rel=FP8_MMA_ACCUMULATOR_REL if fp8_tensor_cores and fp8 else 0.0,
    )


def expected_permutation(ids: torch.Tensor, p: MoeProblem) -> torch.Tensor:
    """expanded (t, j) -> permuted row: local experts in order, then token, then slot; an
    expert keeps its first ``capacity`` assignments by (token, slot); -1 when not kept."""
    t_count, k = ids.shape
    rows = torch.full((t_count, k), -1, dtype=torch.int32)
    nxt = 0
    for le in range(p.local_num_experts):
        taken = 0
        for t in range(t_count):
            for j in range(k):
                if int(ids[t, j]) == p.local_expert_offset + le and (
                    p.expert_capacity == 0 or taken < p.expert_capacity
                ):
                    rows[t, j] = nxt
                    nxt += 1
                    taken += 1
    return rows


def check_against_reference(p: MoeProblem, num_threads: int = 0) -> None:
    run_native(p, num_threads)
    ref = reference_moe(p)
    budget = budget_for(p)
    ids, weights = reference_routing(p.routing, p.num_tokens, p.num_experts, p.top_k)
    ids = ids.to(torch.int64)
    valid = (ids >= 0) & (ids < p.num_experts)
    assert_exact(p.topk_ids_out, torch.where(valid, ids, -1), "topk_ids_out")
    w_out = p.topk_weights_out.to(torch.float64)
    ref_w = weights.to(torch.float64)
    assert_close_to_reference(w_out[valid], ref_w[valid], rel_l2=1e-5, what="topk_weights_out")
    rows = expected_permutation(ids, p)
    assert_exact(p.expanded_to_permuted_out, rows, "expanded_to_permuted_out")
    if p.output is not None:
        assert_within_budget(p.output, ref, budget, what=str(budget))
    if p.permuted_output is not None:
        perm = p.permuted_output.to(torch.float64)
        kept = int((rows >= 0).sum())
        assert_exact(
            perm[kept:], torch.zeros_like(perm[kept:]), "permuted rows past the kept count"
        )
        scale = torch.ones_like(ref_w) if p.routing_weight_on_input else ref_w
        combined = torch.zeros(p.num_tokens, p.hidden_size, dtype=torch.float64)
        for t in range(p.num_tokens):
            for j in range(p.top_k):
                if rows[t, j] >= 0:
                    combined[t] += scale[t, j] * perm[int(rows[t, j])]
        assert_within_budget(combined, ref, budget, what="permuted " + str(budget))
    if p.inter_output is not None:
        check_inter_output(p.inter_output, reference_moe_permuted(p), p.hidden_size)


def check_inter_output(got: torch.Tensor, ref, hidden_size: int, what: str = "inter_output",
                       gemm_rel: float = 0.0) -> None:  # fmt: skip
    """``inter_output`` [T*k, I] (the activated GEMM1 rows in permuted order) against
    ``ref.intermediate`` (a ``PermutedReference``): rows past the kept ones exactly zero, the
    kept ones within twice (rounding to its dtype + fp32 accumulation over H + ``gemm_rel``)
    in relative L2."""
    kept = int((ref.expanded_to_permuted >= 0).sum())
    rounding = UNIT_ROUNDOFF[got.dtype]
    got = got.detach().cpu().to(torch.float64)
    assert_exact(got[kept:], torch.zeros_like(got[kept:]), f"{what} rows past the kept count")
    rel = 2 * (rounding + hidden_size * 2.0**-24 + gemm_rel)
    assert_close_to_reference(got[:kept], ref.intermediate[:kept], rel_l2=rel, what=what)


def assert_matches_reference(problem: MoeProblem, out: torch.Tensor, **budget_terms) -> None:
    """``out`` (an API call's result) within ``error_budget(**budget_terms)`` of the float64
    reference of ``problem`` (the canonical problem that call was translated into)."""
    assert_close_to_reference(
        out, reference_moe(problem), rel_l2=error_budget(**budget_terms).rel_l2
    )
