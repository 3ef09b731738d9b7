"""The benchmark CLI (the project's main job) runs end to end on the CPU smoke shapes, writes its
results files with the card, commit and date, and rejects bad options. It never asserts speed."""

from __future__ import annotations

import json
from pathlib import Path

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


# ---- FP8 presets -----------------------------------------------------------------------------


def test_fp8_presets_are_selected_by_dtype_and_name():
    from flashinfer.fused_moe.bench_presets import find_presets

    names = [p.name for p in find_presets(None, "fp8")]
    assert names == [
        "DeepSeek-V3-fp8",
        "Qwen3-30B-A3B-fp8",
        "Qwen3.5-35B-A3B-fp8",
        "Mixtral-8x7B-fp8",
    ]
    assert [p.name for p in find_presets("qwen3-30b")] == ["Qwen3-30B-A3B"]  # bf16 stays default
    assert [p.name for p in find_presets("qwen3-30b", "fp8")] == ["Qwen3-30B-A3B-fp8"]
    assert [p.name for p in find_presets("mixtral-8x7b-fp8")] == ["Mixtral-8x7B-fp8"]  # full name
    ds = find_presets("deepseek", "fp8")[0]
    assert (ds.num_experts, ds.top_k, ds.hidden_size, ds.intermediate_size) == (256, 8, 7168, 2048)
    assert ds.routing_kwargs["n_group"] == 8 and ds.quant == "fp8_block"
    # 1 byte per weight + fp32 128x128 block scales: [2I/128, H/128] + [H/128, I/128].
    assert ds.expert_weight_bytes() == 3 * 2048 * 7168 + 4 * (32 * 56 + 56 * 16)


def test_fp8_floor_uses_fp8_bytes_and_rate():
    from flashinfer.fused_moe.bench_presets import datasheet_for, find_presets

    sheet = datasheet_for("NVIDIA H100 80GB HBM3")
    bf16, fp8 = find_presets("Qwen3-30B-A3B", "all")[0], find_presets("Qwen3-30B-A3B-fp8")[0]
    # Memory-bound point: about half the bf16 bytes; compute-bound point: half the bf16 time.
    assert 0.45 < bench.floor_ms(fp8, 1, 8, sheet) / bench.floor_ms(bf16, 1, 8, sheet) < 0.55
    assert bench.floor_ms(fp8, 1 << 20, 128, sheet) == pytest.approx(
        bench.floor_ms(bf16, 1 << 20, 128, sheet) * 989 / 1979
    )
    assert bench.floor_ms(fp8, 1, 8, datasheet_for("NVIDIA A100-SXM4-80GB")) is None


def test_fp8_cpu_smoke_run(tmp_path):
    bench.main(
        ["--device", "cpu", "--dtype", "fp8", "--presets", "mixtral,qwen3.5", "--tokens", "1,4",
         "--out", str(tmp_path)]
    )  # fmt: skip
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [(r["preset"], r["tokens"]) for r in rows] == [
        ("Mixtral-8x7B-fp8", 1), ("Mixtral-8x7B-fp8", 4),
        ("Qwen3.5-35B-A3B-fp8", 1), ("Qwen3.5-35B-A3B-fp8", 4),
    ]  # fmt: skip
    for r in rows:
        assert r["ours_ms"] > 0 and r["ours_bf16_ms"] > 0
        # FP8 ours against the bf16 computations on the same weights: quantization-level error.
        assert 1e-3 < float(r["ours_bf16_rel_err"]) < 6e-2
        assert float(r["eager_rel_err"]) < 6e-2
    md = (tmp_path / "results.md").read_text()
    assert "bf16/ours" in md and "scaled_grouped_mm us" in md


def test_fp8_point_shows_na_while_the_engine_is_missing(tmp_path, monkeypatch):
    """Ours raising NotImplementedError (the GPU FP8 engine before it lands): the point reads
    n/a with the reason, the peers are checked against the CPU executor, the run goes on."""
    from flashinfer.fused_moe import bench_fp8

    def missing(self, inp, logits):
        raise NotImplementedError("FP8 on CUDA")

    monkeypatch.setattr(bench_fp8.Fp8Layer, "ours", missing)
    bench.main(["--device", "cpu", "--presets", "qwen3-30b-a3b-fp8", "--tokens", "1",
                "--out", str(tmp_path)])  # fmt: skip
    (row,) = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert row["ours_ms"] is None and row["ours_how"] == "n/a (not implemented)"
    assert row["check_against"] == "ours (CPU executor)"
    assert float(row["ours_bf16_rel_err"]) < 6e-2
    assert "n/a (not implemented)" in (tmp_path / "results.md").read_text()


@pytest.mark.parametrize("name", ["DeepSeek-V3-fp8", "Mixtral-8x7B-fp8"])
def test_scaled_grouped_mm_peer_pipeline_agrees_with_ours(name):
    """The peer's pipeline (route, sort, FP8 GEMM1, SwiGLU, row requantization, GEMM2, combine)
    with an fp32 emulation of torch._scaled_grouped_mm (CUDA-only) agrees with ours on the CPU."""
    import torch
    from flashinfer.fused_moe import bench_fp8
    from flashinfer.fused_moe.bench_peers import rel_err
    from flashinfer.fused_moe.bench_presets import cpu_smoke, find_presets

    layer = bench_fp8.make_layer(cpu_smoke(find_presets(name)[0]), torch.device("cpu"))
    layer.grouped_gemm = bench_fp8.emulated_scaled_grouped_gemm
    x, logits = layer.inputs(8, seed=3)
    ours = layer.ours(x, logits)
    assert rel_err(layer.scaled_grouped_mm(x, logits), ours) < layer.peer_tolerance
    assert rel_err(layer.ours_on_cpu(x, logits), ours) < 1e-6  # the GPU run's fallback reference


def test_scaled_grouped_gemm_operands_pass_torch_checks():
    """The operand layouts the FP8 peer hands torch._scaled_grouped_mm pass torch's own shape
    and stride checks (meta tensors: no GPU needed)."""
    import torch
    from flashinfer.fused_moe.bench_fp8 import scaled_grouped_gemm

    if not hasattr(torch, "_scaled_grouped_mm"):
        pytest.skip("this torch has no _scaled_grouped_mm")
    meta = dict(device="meta")
    a = torch.empty(100, 256, dtype=torch.float8_e4m3fn, **meta)
    b = torch.empty(8, 384, 256, dtype=torch.float8_e4m3fn, **meta)
    offs = torch.empty(8, dtype=torch.int32, **meta)
    out = scaled_grouped_gemm(a, torch.empty(100, **meta), b, torch.empty(8, 384, **meta), offs)
    assert out.shape == (100, 384) and out.dtype == torch.bfloat16


def test_dtype_all_runs_both_tables(tmp_path, capsys):
    bench.main(["--device", "cpu", "--dtype", "all", "--presets", "qwen3-30b", "--tokens", "1",
                "--out", str(tmp_path)])  # fmt: skip
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [r["preset"] for r in rows] == ["Qwen3-30B-A3B", "Qwen3-30B-A3B-fp8"]
    md = (tmp_path / "results.md").read_text()
    assert md.count("| preset | T |") == 2  # the bf16 table, then the FP8 table
    assert capsys.readouterr().out.count("preset | T |") == 2


# ---- FP4 presets -----------------------------------------------------------------------------


def test_fp4_presets_floor_counts_four_and_a_quarter_bits():
    from flashinfer.fused_moe.bench_presets import datasheet_for, find_presets

    assert [p.name for p in find_presets(None, "fp4")] == [
        "gpt-oss-120b-mxfp4",
        "Qwen3-235B-A22B-nvfp4",
    ]
    mx, nv = find_presets("gpt-oss", "fp4")[0], find_presets("qwen3-235b", "fp4")[0]
    elems = (2 * 2880 + 2880) * 2880
    assert mx.expert_weight_bytes() == elems // 2 + elems // 32  # 4.25 bits per weight
    elems = (2 * 1536 + 1536) * 4096
    assert nv.expert_weight_bytes() == elems // 2 + elems // 16  # 4.5 bits
    assert mx.gemm_biases and mx.swiglu is not None
    sheet = datasheet_for("NVIDIA H100 80GB HBM3")
    bf16 = find_presets("gpt-oss-120b")[0]
    # W4A16: the bf16 tensor rate bounds the compute term, 4.25 / 16 of the bytes the memory term.
    assert bench.floor_ms(mx, 1, 4, sheet) / bench.floor_ms(bf16, 1, 4, sheet) == pytest.approx(
        4.25 / 16, rel=1e-6
    )
    assert bench.floor_ms(mx, 1 << 20, 128, sheet) == pytest.approx(
        bench.floor_ms(bf16, 1 << 20, 128, sheet)
    )


def test_fp4_cpu_smoke_run(tmp_path, capsys):
    bench.main(["--device", "cpu", "--dtype", "fp4", "--tokens", "1,4", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [(r["preset"], r["tokens"]) for r in rows] == [
        ("gpt-oss-120b-mxfp4", 1), ("gpt-oss-120b-mxfp4", 4),
        ("Qwen3-235B-A22B-nvfp4", 1), ("Qwen3-235B-A22B-nvfp4", 4),
    ]  # fmt: skip
    for r in rows:
        assert r["ours_ms"] > 0 and r["ours_bf16_ms"] > 0
        # the bf16 engine runs the dequantized weights: the same function up to fp32 rounding
        assert float(r["ours_bf16_rel_err"]) < 2e-2
    md = (tmp_path / "results.md").read_text()
    assert "deq_grouped_mm us" in md and "FP4 targets" in md
    assert "FP4 targets" in capsys.readouterr().out


@pytest.mark.parametrize("mx", [True, False], ids=["mxfp4", "nvfp4"])
def test_fp4_torch_dequantization_is_the_library_decode(mx):
    """The deq_grouped_mm peer's dequantization equals the library's fp32 decoder, rounded."""
    import torch
    from flashinfer.fused_moe.bench_fp4 import dequantize_fp4
    from flashinfer.quantization import e2m1_and_ufp8sf_scale_to_float, fp4_quantize

    block = 32 if mx else 16
    w = torch.randn(48, 256, generator=torch.Generator().manual_seed(3)) * 0.1
    q, s = fp4_quantize(w, None, block, mx, is_sf_swizzled_layout=False)
    ref = e2m1_and_ufp8sf_scale_to_float(q, s, None, block, 0 if mx else 1, False)
    got = dequantize_fp4(q, s.view(48, -1), block, mx)
    assert got.dtype == torch.bfloat16 and torch.equal(got.float(), ref)  # exact in bf16


def test_vllm_peer_column(tmp_path, capsys):
    """--vllm-peer loads a file exposing vLLM's fused_experts / fused_topk and times it as the
    "vllm" peer: the reordered [gate ; up] weights (and FP8 block scales) must give our result."""
    model = str(Path(__file__).with_name("vllm_peer_model.py"))
    bench.main(["--device", "cpu", "--dtype", "all", "--presets", "qwen3-30b,qwen3.5",
                "--tokens", "1,4", "--vllm-peer", model, "--out", str(tmp_path)])  # fmt: skip
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["meta"]["vllm_peer"] == model
    by_quant = {}
    for r in data["rows"]:
        by_quant.setdefault(r["quant"], []).append(r)
    for r in by_quant["bf16"]:
        assert r["vllm_ms"] > 0 and float(r["vllm_rel_err"]) < 2e-2
    for r in by_quant["fp8_block"]:  # ours quantizes the activations, the model does not
        assert r["vllm_ms"] > 0 and float(r["vllm_rel_err"]) < 6e-2
    for r in by_quant.get("fp8_tensor", []) + by_quant.get("nvfp4", []):
        assert "vllm_ms" not in r  # no vLLM counterpart in this peer
    md = (tmp_path / "results.md").read_text()
    assert "vllm/ours" in md
    assert "vllm us" in capsys.readouterr().out


def test_vllm_peer_bad_path_names_the_option(tmp_path):
    with pytest.raises(SystemExit):
        bench.main(["--device", "cpu", "--presets", "qwen3-30b", "--tokens", "1",
                    "--vllm-peer", str(tmp_path / "missing.py"), "--out", str(tmp_path)])  # fmt: skip
