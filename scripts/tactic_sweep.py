#!/usr/bin/env python3
"""The shipped tactic tables (python/flashinfer/fused_moe/tactic_tables/): the autotuner run over
the benchmark presets on one GPU, twice, and merged.

Measure (on the GPU machine; each run writes the tuner's cache file for every preset and token
count, keys as tuner.py makes them):

    PYTHONPATH=python python3 scripts/tactic_sweep.py --out $OUT/sweep1.json \
        [--presets Mixtral-8x7B,...] [--tokens 1,2,4,...]

Merge two runs into the card's table (here, no GPU needed): a choice enters the table only where
both runs picked the same family; where they disagree the heuristic keeps the point.

    python3 scripts/tactic_sweep.py --merge sweep1.json sweep2.json \
        --table python/flashinfer/fused_moe/tactic_tables/nvidia_h100_80gb_hbm3.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

DEFAULT_PRESETS = (
    "Mixtral-8x7B,Qwen3-30B-A3B,Qwen3-235B-A22B,DeepSeek-V3,gpt-oss-120b,Llama-4-Scout,"
    "DeepSeek-V3-fp8,Qwen3-30B-A3B-fp8,Qwen3.5-35B-A3B-fp8,Mixtral-8x7B-fp8,"
    "gpt-oss-120b-mxfp4,Qwen3-235B-A22B-nvfp4"
)
DEFAULT_TOKENS = ",".join(str(1 << i) for i in range(15))  # 1 .. 16384: every bucket


def sweep(out: str, presets: str, tokens: str) -> None:
    import os

    # Only this run's measurements: no default cache file read or written.
    os.environ["FLASHINFER_MOE_AUTOTUNE_CACHE"] = ""
    import torch
    from flashinfer.autotuner import autotune
    from flashinfer.fused_moe.bench_fp8 import make_layer
    from flashinfer.fused_moe.bench_presets import find_presets

    device = torch.device("cuda")
    counts = [int(t) for t in tokens.split(",")]
    for p in find_presets(presets, "all"):
        t0 = time.perf_counter()
        layer = make_layer(p, device)
        for t in counts:
            x, logits = layer.inputs(t)
            with autotune(True, cache=out):
                layer.ours(x, logits)
        del layer
        torch.cuda.empty_cache()
        print(f"{p.name}: {time.perf_counter() - t0:.1f} s", flush=True)


def merge(runs: list[str], table: str) -> None:
    entries = [json.load(open(r))["entries"] for r in runs]
    keep, differ = {}, []
    for key in sorted(set.intersection(*(set(e) for e in entries))):
        picks = [e[key]["tactic"] for e in entries]
        if len(set(picks)) == 1:
            keep[key] = {"tactic": picks[0], "us": [e[key]["us"] for e in entries]}
        else:
            differ.append((key, picks))
    with open(table, "w") as f:
        json.dump({"format": "flashinfer_moe tactic table 1", "entries": keep}, f, indent=1)
        f.write("\n")
    print(f"{len(keep)} choices kept, {len(differ)} left to the heuristic (the runs disagree):")
    for key, picks in differ:
        print(f"  {key}: {picks}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="the sweep's cache file (JSON)")
    ap.add_argument("--presets", default=DEFAULT_PRESETS)
    ap.add_argument("--tokens", default=DEFAULT_TOKENS)
    ap.add_argument("--merge", nargs="+", metavar="RUN", help="sweep files to merge")
    ap.add_argument("--table", help="with --merge: the table file to write")
    args = ap.parse_args()
    if args.merge:
        if not args.table:
            ap.error("--merge needs --table")
        merge(args.merge, args.table)
        return 0
    if not args.out:
        ap.error("--out is required to sweep")
    sweep(args.out, args.presets, args.tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
