"""The benchmark CLI (the project's main job) runs end to end on the CPU smoke shapes, writes its
results files with the card, commit and date, and rejects bad options. It never asserts speed."""

from __future__ import annotations

import json

import pytest
from flashinfer.fused_moe import bench
from flashinfer.fused_moe.bench_peers import parse_tactics


def test_cpu_smoke_run_writes_results(tmp_path, capsys):
    bench.main(
        ["--device", "cpu", "--presets", "qwen3-30b", "--tokens", "1,4", "--out", str(tmp_path)]
    )
    data = json.loads((tmp_path / "results.json").read_text())
    assert {"card", "git_commit", "date"} <= set(data["meta"])
    rows = data["rows"]
    assert [r["tokens"] for r in rows] == [1, 4]
    for r in rows:
        assert r["ours_ms"] is not None and r["ours_ms"] > 0
        # The peers are checked against our output once per preset: bf16-level agreement.
        assert float(r["eager_rel_err"]) < 2e-2
    assert (tmp_path / "results.md").read_text().count("Qwen3-30B-A3B") >= 2
    assert "Qwen3-30B-A3B" in capsys.readouterr().out


def test_parse_tactics():
    assert parse_tactics("auto,sm80_decode,sm90") == ["auto", "sm80_decode", "sm90"]
    assert parse_tactics(None) == []
    with pytest.raises((ValueError, SystemExit)):
        parse_tactics("auto,fastest")


def test_unknown_preset_is_rejected(tmp_path):
    with pytest.raises((ValueError, SystemExit)):
        bench.main(["--device", "cpu", "--presets", "no-such-model", "--out", str(tmp_path)])
