#!/usr/bin/env python3
"""A/B of the W4A16 decode kernels on one GPU, in one run: the FP4 presets' layer
(``trtllm_fp4_block_scale_moe``, as the benchmark calls it) timed under each kernel choice.

    python3 scripts/fp4_decode_ab.py [--tokens 1,4,16,64,256] [--rounds 2] [--out FILE.json]

The decode tile's kernel is read from the environment once per process, so every variant runs
in its own child process, and the variants alternate for ``--rounds`` rounds (a second round of
the same build is what tells a speedup from noise):
  staged     FLASHINFER_MOE_DISABLE_FP4_STREAM=1: the smem-staged kernel
             (sm80_w4a16_grouped_gemm_kernel.cuh)
  stream     the stream kernel (sm80_w4a16_stream_kernel.cuh), the default where it applies
             (where T * k <= 8 its 8-row tile with 8 warps)
  rows16     FLASHINFER_MOE_FP4_STREAM_16_ROWS=1: the stream kernel's 16-row tile at every T
  heuristic  FLASHINFER_MOE_TUNED_TACTICS=0: no tuned or shipped tactic (the default variant
             "stream" uses them); with ``--presets`` of any format this A/Bs the shipped table
Each child also reports the relative L2 difference of its output from our bf16 engine on the
same (dequantized) weights, so a wrong kernel cannot pass as a fast one. ``--profile T`` also
prints each variant's kernels at T tokens (torch.profiler, one eager call after warm-up).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys

VARIANTS = {
    "staged": {"FLASHINFER_MOE_DISABLE_FP4_STREAM": "1"},
    "stream": {},
    "rows16": {"FLASHINFER_MOE_FP4_STREAM_16_ROWS": "1"},
    "heuristic": {"FLASHINFER_MOE_TUNED_TACTICS": "0"},
}
PRESETS = "gpt-oss-120b-mxfp4,Qwen3-235B-A22B-nvfp4"


def kernel_times(fn) -> list[tuple[str, float]]:
    """(kernel name, microseconds) of one eager call of ``fn``, in launch order."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    events = [e for e in prof.events() if e.device_type.name == "CUDA"]
    return [(e.name[:60], e.device_time) for e in events]


def child(presets: str, tokens: list[int], profile_tokens: int | None) -> None:
    import torch
    from flashinfer.fused_moe.bench import floor_ms, time_ms
    from flashinfer.fused_moe.bench_fp8 import make_layer
    from flashinfer.fused_moe.bench_peers import rel_err
    from flashinfer.fused_moe.bench_presets import datasheet_for, find_presets

    device = torch.device("cuda")
    sheet = datasheet_for(torch.cuda.get_device_name(device))
    for p in find_presets(presets, "all"):
        layer = make_layer(p, device)
        for t in tokens:
            x, logits = layer.inputs(t)
            ids, _ = layer.route_ours(logits)
            touched = int(torch.unique(ids).numel())
            bf16 = getattr(layer, "ours_bf16", None)  # the bf16 presets are the bf16 engine
            err = rel_err(layer.ours(x, logits), bf16(x, logits)) if bf16 else 0.0
            ms, how = time_ms(functools.partial(layer.ours, x, logits), device, t, graph="small")
            row = dict(preset=p.name, tokens=t, touched=touched, us=ms * 1e3 if ms else None,
                       how=how, floor_us=floor_ms(p, t, touched, sheet) * 1e3, err_vs_bf16=err)  # fmt: skip
            print("ROW " + json.dumps(row), flush=True)
            if t == profile_tokens:
                try:
                    for name, us in kernel_times(functools.partial(layer.ours, x, logits)):
                        print(f"KERNEL {p.name} T={t} {us:9.1f} us  {name}", flush=True)
                except Exception as e:  # noqa: BLE001  (a profiler API change must not cost the timings)
                    print(f"KERNEL {p.name} T={t} profiler failed: {e!r}", flush=True)
        layer = None  # free the preset's weights before the next one
        torch.cuda.empty_cache()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", default="1,4,16,64,256")
    ap.add_argument("--presets", default=PRESETS)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--profile", type=int, default=None, help="print the kernels at this T")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    tokens = [int(t) for t in args.tokens.split(",")]
    if args.child:
        child(args.presets, tokens, args.profile)
        return 0
    results = []
    for rnd in range(args.rounds):
        for name in args.variants.split(","):
            env = {**os.environ, **VARIANTS[name]}
            cmd = [sys.executable, __file__, "--child", "--tokens", args.tokens,
                   "--presets", args.presets]  # fmt: skip
            if args.profile is not None and rnd == 0:
                cmd += ["--profile", str(args.profile)]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{name} round {rnd}: rc={proc.returncode}\n{proc.stderr[-2000:]}")
                continue
            for line in proc.stdout.splitlines():
                if line.startswith("KERNEL "):
                    print(f"{name}: {line[7:]}", flush=True)
                if line.startswith("ROW "):
                    results.append(dict(json.loads(line[4:]), variant=name, round=rnd))
                    r = results[-1]
                    print(f"{name} round {rnd}: {r['preset']} T={r['tokens']} {r['us']} us "
                          f"err {r['err_vs_bf16']:.1e}", flush=True)  # fmt: skip
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    names = args.variants.split(",")
    print("| preset | T | floor us | " + " | ".join(names) + " | err vs bf16 |")
    print("|---|---|---|" + "---|" * len(names) + "---|")
    keys = sorted({(r["preset"], r["tokens"]) for r in results})
    for preset, t in keys:
        rows = [r for r in results if r["preset"] == preset and r["tokens"] == t]
        cells = []
        for n in names:
            us = [f"{r['us']:.1f}" for r in rows if r["variant"] == n and r["us"] is not None]
            cells.append(" / ".join(us) or "n/a")
        err = max((r["err_vs_bf16"] for r in rows), default=float("nan"))
        print(
            f"| {preset} | {t} | {rows[0]['floor_us']:.1f} | "
            + " | ".join(cells)
            + f" | {err:.1e} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
