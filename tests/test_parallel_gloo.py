"""``flashinfer.fused_moe.parallel`` on CPU: EP, TP and EP x TP over gloo with 2 and 4 processes.

Each rank's result is compared with the one-process ``cutlass_fused_moe`` on the full weights
and all ranks' tokens. The processes are spawned once per world size (a module fixture runs all
cases of that size, each rank saves its outputs) and the comparisons run here, one test per case.

Reference and budget: the one-process call with a float32 output is the reference (widened to
float64). The parallel result is the same products summed in float32 in another order (per rank,
then across ranks; TP splits GEMM2's K) and rounded once to bf16, so its error against that
reference is one bf16 rounding plus fp32 accumulation-order differences: ``error_budget`` with
``out_dtype=bf16`` and the call's K1 = H, K2 = I, top_k (twice the sum of those terms). FP8
cases add the e4m3 requantization term of the intermediate (a flip is possible only if an fp32
intermediate value changed, which the EP / TP split does not do; the term is the budget's rule).
For W8A8 the compute dtype follows ``output_dtype``, so the reference call also outputs float32,
as the parallel local call does.
"""

from __future__ import annotations

import os

import flashinfer
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from flashinfer.fused_moe.parallel import (
    local_expert_range,
    parallel_moe,
    shard_experts,
    shard_intermediate,
)
from moe_builders import E4M3, routing_inputs
from numeric import assert_within_budget, error_budget, rand_float

H, INTER, K = 64, 32, 2

# name: (ep, tp, tokens per EP rank, experts, routing to rank 0's experts only, fp8)
CASES = {
    "ep2_bf16_uneven_counts": (2, 1, [5, 9], 8, False, False),
    "ep2_bf16_rank1_experts_idle": (2, 1, [6, 4], 8, True, False),
    "tp2_bf16": (1, 2, [7], 4, False, False),
    "ep2_fp8": (2, 1, [4, 6], 4, False, True),
    "tp2_fp8": (1, 2, [5], 4, False, True),
    "ep4_bf16_one_rank_no_tokens": (4, 1, [3, 0, 6, 4], 8, False, False),
    "ep4_bf16_idle_experts": (4, 1, [2, 5, 3, 4], 8, True, False),
    "tp4_bf16": (1, 4, [6], 4, False, False),
    "ep2xtp2_bf16": (2, 2, [5, 3], 4, False, False),
}


def _world(name: str) -> int:
    ep, tp = CASES[name][:2]
    return ep * tp


def _e4m3(v: torch.Tensor) -> torch.Tensor:
    return v.clamp(-448, 448).to(E4M3)


def _inputs(name: str):
    """Full weights, quant scales and every EP rank's tokens of a case (same on every process)."""
    ep, tp, counts, experts, idle, fp8 = CASES[name]
    seed = 1000 * (list(CASES).index(name) + 1)
    fc1 = rand_float((experts, 2 * INTER, H), torch.float32, seed=seed + 1, scale=0.2)
    fc2 = rand_float((experts, H, INTER), torch.float32, seed=seed + 2, scale=0.2)
    xs, ids, scales = [], [], []
    for r, t in enumerate(counts):
        x = rand_float((t, H), torch.float32, seed=seed + 10 + r)
        # idle: ids only among EP rank 0's experts, so the other ranks' experts get no tokens
        e_route = experts // ep if idle else experts
        if t:
            sel, w = routing_inputs(t, e_route, K, seed=seed + 20 + r)
        else:
            sel, w = torch.empty((0, K), dtype=torch.int32), torch.empty((0, K))
        xs.append(x)
        ids.append(sel)
        scales.append(w)
    if not fp8:
        bf = torch.bfloat16
        return [x.to(bf) for x in xs], ids, scales, fc1.to(bf), fc2.to(bf), None
    in_scale = torch.cat(xs).abs().max() / 448
    w1_scale = fc1.abs().amax(dim=(1, 2)) / 448
    w2_scale = fc2.abs().amax(dim=(1, 2)) / 448
    act_quant = torch.tensor(4.0)
    quant_scales = [
        (w1_scale * in_scale).float(),  # fc1_dequant [E]
        act_quant,  # fc2_act_quant (scalar)
        (w2_scale / act_quant).float(),  # fc2_dequant [E]
        in_scale.reshape(()).float(),  # fc1_input_dequant
    ]
    xq = [_e4m3(x / in_scale) for x in xs]
    return (
        xq,
        ids,
        scales,
        _e4m3(fc1 / w1_scale[:, None, None]),
        _e4m3(fc2 / w2_scale[:, None, None]),
        quant_scales,
    )


def _run_case(name: str, rank: int, groups: dict):
    ep, tp, counts = CASES[name][:3]
    xs, ids, scales, fc1, fc2, quant_scales = _inputs(name)
    ep_rank, tp_rank = divmod(rank, tp)
    if ep > 1:
        fc1, fc2 = shard_experts(fc1, fc2, ep, ep_rank)
        if quant_scales is not None:
            r = local_expert_range(CASES[name][3], ep, ep_rank)
            quant_scales = [q[r.start : r.stop] if q.dim() == 1 else q for q in quant_scales]
    if tp > 1:
        fc1, fc2 = shard_intermediate(fc1, fc2, tp, tp_rank)
    return parallel_moe(
        xs[ep_rank],
        ids[ep_rank],
        scales[ep_rank],
        fc1,
        fc2,
        torch.bfloat16,
        quant_scales,
        ep_group=groups[("ep", ep, tp)][tp_rank] if ep > 1 else None,
        tp_group=groups[("tp", ep, tp)][ep_rank] if tp > 1 else None,
    )


def _worker(rank: int, world: int, init_file: str, out_dir: str, names: list) -> None:
    """One rank: run every case of this world size, save the outputs (top level: it pickles)."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        # every rank creates every group, in the same order (torch.distributed's rule);
        # rank = ep_rank * tp + tp_rank
        groups = {}
        for ep, tp in sorted({CASES[n][:2] for n in names}):
            if ep > 1 and tp > 1:
                groups[("ep", ep, tp)] = [
                    dist.new_group([e * tp + t for e in range(ep)]) for t in range(tp)
                ]
                groups[("tp", ep, tp)] = [
                    dist.new_group([e * tp + t for t in range(tp)]) for e in range(ep)
                ]
            else:
                groups[("ep", ep, tp)] = [dist.group.WORLD]
                groups[("tp", ep, tp)] = [dist.group.WORLD]
        outputs = {name: _run_case(name, rank, groups) for name in names}
        torch.save(outputs, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _spawn(world: int, tmp_path_factory) -> list[dict]:
    d = tmp_path_factory.mktemp(f"gloo{world}")
    names = [n for n in CASES if _world(n) == world]
    mp.spawn(_worker, args=(world, str(d / "init"), str(d), names), nprocs=world, join=True)
    return [torch.load(d / f"rank{r}.pt") for r in range(world)]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return {w: _spawn(w, tmp_path_factory) for w in (2, 4)}


@pytest.mark.parametrize("name", list(CASES))
def test_parallel_matches_one_process(results, name):
    ep, tp, counts, experts, idle, fp8 = CASES[name]
    xs, ids, scales, fc1, fc2, quant_scales = _inputs(name)
    reference = flashinfer.cutlass_fused_moe(
        torch.cat(xs), torch.cat(ids), torch.cat(scales), fc1, fc2, torch.float32, quant_scales
    )[0]
    rows = torch.split(reference, counts)
    total = sum(counts)
    budget = error_budget(
        out_dtype=torch.bfloat16,
        k1=H,
        k2=INTER,
        top_k=K,
        requant=[("e4m3", total * INTER)] if fp8 else (),
    )
    for rank, outputs in enumerate(results[_world(name)]):
        ep_rank = rank // tp
        out = outputs[name]
        assert out.dtype == torch.bfloat16
        assert_within_budget(out, rows[ep_rank].double(), budget, what=f"{name} rank {rank}")
    if idle:  # the other ranks' experts really got nothing: rank 0's experts alone give it all
        r0 = local_expert_range(experts, ep, 0)
        assert all(int(e) in r0 for e in torch.cat(ids).flatten())


@pytest.mark.parametrize("name", ["ep_size", "tp_rank", "output", "input_sf"])
def test_arguments_parallel_moe_sets_are_refused(name):
    """The rank arguments and the output belong to parallel_moe: passing them is a ValueError
    naming the argument (checked before any collective, so no process group is needed)."""
    xs, ids, scales, fc1, fc2, _ = _inputs("tp2_bf16")
    with pytest.raises(ValueError, match=f"^{name}: set by parallel_moe"):
        parallel_moe(xs[0], ids[0], scales[0], fc1, fc2, torch.bfloat16, **{name: None})
