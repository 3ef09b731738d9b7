#!/usr/bin/env python3
"""Turns a benchmark results.json (python -m flashinfer.fused_moe.bench --out DIR) into the
markdown table committed under docs/bench/: one row per point with its floor fraction against the
issue's target for that token count, and each peer as a speed ratio (peer time / ours).

    python3 scripts/bench_report.py RESULTS.json [--title-note TEXT] > docs/bench/<file>.md

Targets (floor / ours): bf16 (issue 3) T <= 16: 0.70, 64..1024: 0.90, >= 4096: 0.65;
FP8 (issue 4) the same but 0.50 at T >= 4096, where FP8 must also beat our bf16 engine.
"""

from __future__ import annotations

import argparse
import json
import sys


def target(quant: str, tokens: int) -> float:
    if tokens <= 16:
        return 0.70
    if tokens <= 1024:
        return 0.90
    return 0.65 if quant == "bf16" else 0.50


def us(ms, how="") -> str:
    if ms is None:
        return "n/a"
    return f"{ms * 1e3:.1f}" + ("g" if how == "graph" else "")


def ratio(peer_ms, ours_ms) -> str:
    return "n/a" if peer_ms is None or not ours_ms else f"{peer_ms / ours_ms:.2f}"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--title-note", default="", help="appended to the title line")
    args = ap.parse_args(argv)
    with open(args.results) as f:
        data = json.load(f)
    meta, rows = data["meta"], data["rows"]
    fp8 = any(r["quant"] != "bf16" for r in rows)
    sheet, measured = meta["datasheet"], meta["measured"]
    note = f" {args.title_note}" if args.title_note else ""
    print(f"# Fused MoE benchmark ({'FP8' if fp8 else 'bf16'}): {meta['card']}, commit "
          f"{meta['git_commit']}, {meta['date'][:10]}{note}\n")  # fmt: skip
    rates = f"{sheet['bf16_flops_per_s'] / 1e12:.0f} TFLOP/s bf16"
    if sheet.get("fp8_flops_per_s"):
        rates += f", {sheet['fp8_flops_per_s'] / 1e12:.0f} TFLOP/s FP8"
    got = f"copy {measured['copy_bytes_per_s'] / 1e12:.2f} TB/s (read+write), bf16 GEMM " \
          f"{measured['bf16_flops_per_s'] / 1e12:.0f} TFLOP/s (8192^3)"  # fmt: skip
    if measured.get("fp8_flops_per_s"):
        got += f", FP8 GEMM {measured['fp8_flops_per_s'] / 1e12:.0f} TFLOP/s (torch._scaled_mm)"
    print(f"`python -m flashinfer.fused_moe.bench{' --dtype fp8' if fp8 else ''}`, torch "
          f"{meta['torch']}. Datasheet {sheet['label']}: {sheet['bytes_per_s'] / 1e12:.2f} TB/s, "
          f"{rates}; measured in the same run: {got}.\n")  # fmt: skip
    print("Floor = max(touched expert weight bytes / datasheet bandwidth, FLOPs / datasheet dense "
          "rate of the format). 'g' = timed as CUDA-graph replays. Peers are shown as peer time / "
          "ours (above 1: ours is faster). 'target' is the issue's floor fraction for that T.\n")  # fmt: skip
    peers = ["ours_bf16", "scaled_grouped_mm", "eager"] if fp8 else ["grouped_mm", "eager"]
    head = ["preset", "T", "experts hit", "floor us", "ours us", "floor/ours", "target"]
    for peer in peers:
        head += [f"{peer} us", f"{peer}/ours"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    met = total = 0
    for r in rows:
        t, ours = r["tokens"], r.get("ours_ms")
        goal = target(r["quant"], t)
        frac = r["floor_ms"] / ours if ours and r.get("floor_ms") else None
        ok = frac is not None and frac >= goal
        if fp8 and t >= 4096 and r.get("ours_bf16_ms") is not None and ours:
            ok = ok and ours < r["ours_bf16_ms"]
        met, total = met + ok, total + 1
        cells = [r["preset"], str(t), str(r["experts_touched"]), us(r.get("floor_ms")),
                 us(ours, r.get("ours_how", "")),
                 "n/a" if frac is None else f"{frac:.2f}" + ("" if ok else " (miss)"), f"{goal:.2f}"]  # fmt: skip
        for peer in peers:
            ms = r.get(f"{peer}_ms")
            cells += [us(ms, r.get(f"{peer}_how", "")), ratio(ms, ours)]
        print("| " + " | ".join(cells) + " |")
    print(f"\nTargets met at {met} of {total} points"
          + (" (T >= 4096 also needs FP8 faster than our bf16 engine)." if fp8 else "."))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
