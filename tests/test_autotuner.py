"""The tactic autotuner's bookkeeping (flashinfer/fused_moe/tuner.py), on the CPU.

The measurement itself needs a GPU (test_gpu_autotuner.py). Here a fake card name and a fake
timer stand in for the device, so what is checked is everything around it: buckets, keys, which
source wins, when nothing is measured, the cache file (written, merged, read by a fresh tuner as
a later process would, a broken file ignored), the shipped table, and the API's
``tune_max_num_tokens`` argument.
"""

from __future__ import annotations

import json
import logging

import flashinfer
import pytest
import torch
from flashinfer.autotuner import autotune
from flashinfer.fused_moe import tuner
from flashinfer.fused_moe.enums import GemmTactic
from moe_builders import build_problem

CARD = "Test Card 80GB"


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A fresh tuner on a fake card, its default cache file and shipped tables under tmp_path,
    and a fake timer: each tactic's time comes from ``times`` (None: the family refuses)."""
    t = tuner.Tuner()
    monkeypatch.setattr(tuner, "TUNER", t)
    monkeypatch.setattr("flashinfer.autotuner.TUNER", t)
    monkeypatch.setattr(tuner, "card_name", lambda device: CARD)
    monkeypatch.setattr(tuner, "_capturing", lambda: False)
    monkeypatch.setattr(tuner, "TABLE_DIR", tmp_path / "tables")
    monkeypatch.setenv(tuner.CACHE_ENV, str(tmp_path / "default.json"))
    monkeypatch.delenv(tuner.TUNED_ENV, raising=False)
    times = {"sm80_decode": 30.0, "sm80_prefill": 20.0, "sm90": None}
    ran = []

    def fake_time(run, best_us=None):
        run()
        return times[ran[-1]]

    monkeypatch.setattr(tuner, "_time_us", fake_time)

    def run(tactic):
        name = tuner.tactic_name(tactic)
        ran.append(name)
        if times[name] is None:
            raise ValueError("tactic: this family cannot run the problem")

    t.times, t.ran, t.run = times, ran, run
    return t


def _problem(T=8, **kw):
    return build_problem(T=T, H=32, I=16, E=4, k=2, **kw)


def test_token_buckets():
    assert [tuner.token_bucket(t, 8192) for t in (0, 1, 2, 3, 5, 64, 65)] == [
        1,
        1,
        2,
        4,
        8,
        64,
        128,
    ]
    assert tuner.token_bucket(20000, 8192) == 8192
    assert tuner.token_bucket(100, 64) == 64
    assert tuner.token_bucket(5, 8192, buckets=(16, 1, 4)) == 16
    assert tuner.token_bucket(5, 8192, buckets=(16, 1, 4), round_up=False) == 4
    assert tuner.token_bucket(40, 8192, buckets=(1, 16)) == 16  # above every bucket: the largest
    assert tuner.token_bucket(0, 8192, buckets=(4, 16), round_up=False) == 4


def test_problem_class_tells_shapes_and_formats_apart_not_data_or_tokens():
    a, b = _problem(T=3, seed=1), _problem(T=900, seed=2)
    assert tuner.problem_class(a) == tuner.problem_class(b)
    for other in (build_problem(T=3, H=64, I=16, E=4, k=2), build_problem(T=3, H=32, I=16, E=4, k=1),
                  _problem(T=3, weights="e4m3:0x0"), _problem(T=3, biases=True),
                  _problem(T=3, capacity=5)):  # fmt: skip
        assert tuner.problem_class(other) != tuner.problem_class(a)


def test_measures_once_keeps_the_fastest_and_skips_refusing_families(fresh):
    p = _problem()
    assert fresh.choose(p, fresh.run) == GemmTactic.Auto, "outside a tuning block: no measuring"
    assert fresh.ran == []
    with autotune():
        assert fresh.choose(p, fresh.run) == GemmTactic.Sm80Prefill
        assert fresh.ran.count("sm80_prefill") >= 1 and "sm90" in fresh.ran
        n = len(fresh.ran)
        assert fresh.choose(_problem(T=7, seed=3), fresh.run) == GemmTactic.Sm80Prefill
        assert len(fresh.ran) == n, "the same bucket is measured once"
    assert fresh.lookup(p) == GemmTactic.Sm80Prefill, "kept after the block"
    assert fresh.lookup(_problem(T=9)) == GemmTactic.Auto, "another bucket"


def test_nothing_is_measured_while_capturing_when_skipped_or_above_the_limit(fresh, monkeypatch):
    with autotune(skip_ops={"fused_moe"}):
        assert fresh.choose(_problem(), fresh.run) == GemmTactic.Auto
    with autotune(tune_mode=False):
        assert fresh.choose(_problem(), fresh.run) == GemmTactic.Auto
    with autotune():
        assert fresh.choose(_problem(T=64), fresh.run, max_tokens=32) == GemmTactic.Auto
        monkeypatch.setattr(tuner, "_capturing", lambda: True)
        assert fresh.choose(_problem(), fresh.run) == GemmTactic.Auto
    assert fresh.ran == []


def test_tune_max_num_tokens_buckets_larger_calls_with_it(fresh):
    with autotune():
        assert fresh.choose(_problem(T=30), fresh.run, max_tokens=32) == GemmTactic.Sm80Prefill
    # T = 500 is never measured with a limit of 32, but takes the choice of the T <= 32 bucket.
    assert fresh.lookup(_problem(T=500), max_tokens=32) == GemmTactic.Sm80Prefill
    assert fresh.lookup(_problem(T=500)) == GemmTactic.Auto


def test_no_family_runs_it_leaves_the_heuristic(fresh):
    fresh.times.update(sm80_decode=None, sm80_prefill=None)
    with autotune():
        assert fresh.choose(_problem(), fresh.run) == GemmTactic.Auto


def test_cache_file_is_written_merged_and_read_by_a_later_process(fresh, tmp_path, monkeypatch):
    path = tmp_path / "mine.json"
    other = f"{CARD} | H=1 I=1 E=1 k=1 in=x | T<=1"
    path.write_text(json.dumps({"entries": {other: {"tactic": "sm90"}}}))
    with autotune(cache=str(path)):
        fresh.choose(_problem(), fresh.run)
    data = json.loads(path.read_text())["entries"]
    assert data[other]["tactic"] == "sm90", "the file's earlier entries are kept"
    mine = [k for k in data if k != other]
    assert len(mine) == 1 and data[mine[0]]["tactic"] == "sm80_prefill"
    assert set(data[mine[0]]["us"]) == {"sm80_decode", "sm80_prefill"}
    assert not (tmp_path / "default.json").exists(), "a given cache replaces the default file"

    later = tuner.Tuner()  # a later process: nothing in memory
    monkeypatch.setattr(tuner, "TUNER", later)
    monkeypatch.setattr("flashinfer.autotuner.TUNER", later)
    assert later.lookup(_problem()) == GemmTactic.Auto, "the default file does not have it"
    with autotune(False, cache=str(path)):
        assert later.lookup(_problem()) == GemmTactic.Sm80Prefill


def test_default_file_without_a_cache_argument(fresh, tmp_path, monkeypatch):
    with autotune():
        fresh.choose(_problem(), fresh.run)
    saved = json.loads((tmp_path / "default.json").read_text())["entries"]
    assert [v["tactic"] for v in saved.values()] == ["sm80_prefill"]
    later = tuner.Tuner()
    assert later.lookup(_problem()) == GemmTactic.Sm80Prefill, "read at the first lookup"
    monkeypatch.setenv(tuner.TUNED_ENV, "0")
    assert later.lookup(_problem()) == GemmTactic.Auto, "the A/B switch: the heuristic alone"


def test_empty_cache_variable_keeps_tuning_in_memory(fresh, tmp_path, monkeypatch):
    monkeypatch.setenv(tuner.CACHE_ENV, "")
    with autotune():
        fresh.choose(_problem(), fresh.run)
    assert fresh.lookup(_problem()) == GemmTactic.Sm80Prefill
    assert list(tmp_path.iterdir()) == []


def test_shipped_table_is_used_and_tuning_measures_over_it(fresh, tmp_path):
    key = fresh.key(_problem(), torch.device("cpu"), 8192)
    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "test_card_80gb.json").write_text(json.dumps({"entries": {key: {"tactic": "sm90"}}}))
    assert fresh.lookup(_problem()) == GemmTactic.Sm90
    assert fresh.ran == []
    with autotune():
        # Tuning measures this machine even where the table has a choice, and that wins.
        assert fresh.choose(_problem(), fresh.run) == GemmTactic.Sm80Prefill
    assert fresh.ran and fresh.lookup(_problem()) == GemmTactic.Sm80Prefill


def test_broken_files_are_logged_and_ignored(fresh, tmp_path, caplog):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger=tuner.__name__):
        with autotune(False, cache=str(path)):
            assert fresh.lookup(_problem()) == GemmTactic.Auto
    assert "ignoring" in caplog.text
    key = fresh.key(_problem(), torch.device("cpu"), 8192)
    path.write_text(json.dumps({"entries": {key: {"tactic": "sm100"}}}))
    with autotune(False, cache=str(path)):
        assert fresh.lookup(_problem()) == GemmTactic.Auto
    assert "skipping" in caplog.text


def test_an_unwritable_cache_is_logged_not_raised(fresh, tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger=tuner.__name__):
        with autotune(cache=str(blocker / "sub" / "t.json")):
            fresh.choose(_problem(), fresh.run)
    assert "could not save" in caplog.text


def test_saved_even_when_the_block_raises(fresh, tmp_path):
    path = tmp_path / "t.json"
    with pytest.raises(KeyError):
        with autotune(cache=str(path)):
            fresh.choose(_problem(), fresh.run)
            raise KeyError("x")
    assert json.loads(path.read_text())["entries"]


def test_generation_moves_with_every_change(fresh):
    g = fresh.generation
    with autotune(False):
        assert fresh.generation > g
    g = fresh.generation
    with autotune():
        fresh.choose(_problem(), fresh.run)
    assert fresh.generation >= g + 3  # enter, a measurement, exit


@pytest.mark.parametrize("bad", [0, -1, 2.5, "8"])
def test_tune_max_num_tokens_is_checked(bad):
    x = torch.randn(3, 32).bfloat16()
    w1, w2 = torch.randn(4, 32, 32).bfloat16(), torch.randn(4, 32, 16).bfloat16()
    ids = torch.randint(0, 4, (3, 2), dtype=torch.int32)
    with pytest.raises((ValueError, TypeError), match="tune_max_num_tokens"):
        flashinfer.cutlass_fused_moe(x, ids, torch.rand(3, 2), w1, w2, torch.bfloat16, None,
                                     tune_max_num_tokens=bad)  # fmt: skip


def test_shipped_tables_are_well_formed():
    tables = sorted(tuner.TABLE_DIR.glob("*.json"))
    assert tables, "the H100 table ships with the package"
    for path in tables:
        raw = json.loads(path.read_text())["entries"]
        good = tuner._read_entries(path)
        assert good.keys() == raw.keys(), f"{path.name}: an entry with an unknown tactic"
        for key in good:
            card, cls, bucket = key.split(" | ")
            assert tuner._table_file(card) == path, key
            assert cls.startswith("H=") and bucket.startswith("T<="), key
