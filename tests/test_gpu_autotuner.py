"""The autotuner on the GPU (flashinfer/fused_moe/tuner.py): it measures the families on the
call's own inputs, keeps the fastest, runs it with that family's bits and within the tolerance
every family is tested to, writes the cache file a later process reads, and measures nothing
while a CUDA graph is captured or above ``tune_max_num_tokens``.

Each test runs on a fresh tuner (the process's own is swapped out), with its cache file under
pytest's tmp_path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import flashinfer
import pytest
import torch
from flashinfer.autotuner import autotune
from flashinfer.fused_moe import tuner
from flashinfer.fused_moe.enums import GemmTactic
from flashinfer.fused_moe.runner import run_problem
from gpu_cases import check, gpu_only, prepare, run_on_device, with_fresh_outputs
from moe_builders import build_problem

pytestmark = [pytest.mark.gpu, gpu_only]


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    t = tuner.Tuner()
    monkeypatch.setattr(tuner, "TUNER", t)
    monkeypatch.setattr("flashinfer.autotuner.TUNER", t)
    monkeypatch.setenv(tuner.CACHE_ENV, str(tmp_path / "default.json"))
    monkeypatch.delenv(tuner.TUNED_ENV, raising=False)
    monkeypatch.delenv("FLASHINFER_MOE_GEMM_TACTIC", raising=False)
    return t


def _entries(path) -> dict:
    return json.loads(open(path).read())["entries"]


def test_tuned_call_runs_the_winner_within_tolerance(fresh, tmp_path):
    seed = int(torch.randint(0, 2**31 - 1, ()).item())
    case = prepare(build_problem(T=48, E=8, k=2, H=256, I=128, seed=seed))
    cache = tmp_path / "t.json"
    with autotune(cache=str(cache)):
        got = with_fresh_outputs(case.on_device)
        run_problem(got)
    (key, entry), = _entries(cache).items()  # fmt: skip
    assert "T<=64" in key and torch.cuda.get_device_name() in key
    assert set(entry["us"]) >= {"sm80_decode", "sm80_prefill"}, "the portable families must run"
    winner = {tuner.tactic_name(t): t for t in tuner.CANDIDATES}[entry["tactic"]]
    assert entry["us"][entry["tactic"]] == min(entry["us"].values())
    check(case, got, "tuned")  # Auto's budget covers every family
    forced = run_on_device(case, winner)
    assert torch.equal(got.output.view(torch.uint8), forced.output.view(torch.uint8))
    # Outside the block the choice stays: an Auto call now gives the winner's bits too.
    again = run_on_device(case, GemmTactic.Auto)
    assert torch.equal(again.output.view(torch.uint8), forced.output.view(torch.uint8))


def test_a_later_process_reads_the_cache(fresh, tmp_path):
    cache = tmp_path / "t.json"
    p = build_problem(T=5, E=8, k=2, H=256, I=128, seed=3)
    from gpu_cases import to_device

    with autotune(cache=str(cache)):
        run_problem(to_device(p, "cuda"))
    (entry,) = _entries(cache).values()
    code = (
        "import torch; from moe_builders import build_problem; from gpu_cases import to_device\n"
        "from flashinfer.fused_moe import tuner\n"
        "p = to_device(build_problem(T=7, E=8, k=2, H=256, I=128, seed=9), 'cuda')\n"
        "print(tuner.tactic_name(tuner.TUNER.lookup(p)))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    env[tuner.CACHE_ENV] = str(cache)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    assert out.stdout.strip().splitlines()[-1] == entry["tactic"]


def _public_call(t: int, **kw):
    g = torch.Generator(device="cuda").manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()))
    e, h, i, k = 8, 256, 128, 2
    x = torch.randn(t, h, device="cuda", generator=g).bfloat16()
    w1 = (torch.randn(e, 2 * i, h, device="cuda", generator=g) / 16).bfloat16()
    w2 = (torch.randn(e, h, i, device="cuda", generator=g) / 16).bfloat16()
    ids = torch.randint(0, e, (t, k), device="cuda", generator=g, dtype=torch.int32)
    scales = torch.rand(t, k, device="cuda", generator=g)

    def call():
        return flashinfer.cutlass_fused_moe(x, ids, scales, w1, w2, torch.bfloat16, None, **kw)[0]

    return call


def test_capture_measures_nothing_and_replays_equal(fresh):
    with autotune():
        _public_call(24)()  # warm-up outside a capture: measured
        assert len(fresh._entries) == 1
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        graph = torch.cuda.CUDAGraph()
        call = _public_call(300)  # a bucket nothing measured yet
        with torch.cuda.graph(graph, stream=stream):
            out = call()
        assert len(fresh._entries) == 1, "a capture must not measure"
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out.view(torch.uint8), call().view(torch.uint8))


def test_tune_max_num_tokens_is_honoured(fresh):
    with autotune():
        _public_call(40, tune_max_num_tokens=16)()
        assert fresh._entries == {}
        _public_call(16, tune_max_num_tokens=16)()
        assert len(fresh._entries) == 1


def test_calls_cached_before_the_block_are_measured_inside(fresh):
    call = _public_call(12)
    before = call()
    with autotune():
        inside = call()
    assert len(fresh._entries) == 1, "the call cache must not keep the untuned template"
    torch.cuda.synchronize()
    assert inside.shape == before.shape and torch.isfinite(inside.float()).all()
