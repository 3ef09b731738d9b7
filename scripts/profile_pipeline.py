#!/usr/bin/env python3
"""Where the time of our fused MoE layer goes on CUDA: a per-kernel and per-phase breakdown.

For each preset (flashinfer/fused_moe/bench_presets.py) and token count T it builds the
benchmark's layer (bench_peers.Layer: bf16 weights, ``route`` + ``cutlass_fused_moe`` full form;
bench_fp8.Fp8Layer for the '-fp8' presets: the trtllm FP8 full forms),
captures one call into a CUDA graph, replays it under torch.profiler (CUDA activity) and prints:
  * the end-to-end time of one graph replay (median, no profiler attached), the sum of the
    kernel times per call and the difference (launch gaps and bubbles inside the graph);
  * one row per kernel: pipeline phase, short name, launches per call, microseconds per call;
  * per GEMM: time against its own floor (its weight bytes / datasheet bandwidth, or its FLOPs /
    datasheet rate), so a slow GEMM stands out from a slow small kernel;
and at the end one summary line per point with the time of every phase.

Phases, in pipeline order (from the kernel names in src/cuda and their launch order):
  route     routing_kernel of ``route()`` on the logits (the bench's "ours" includes it);
  ids_in    routing_kernel inside cutlass_fused_moe (precomputed ids passed through);
  permute   count_chunk / scan_chunks / expert_offsets / scatter kernels;
  gather    gather_kernel (GEMM1's input rows);
  GEMM1     the grouped GEMM's setup (build_schedule_kernel / prepare_groups) and main kernel
            (sm80 grouped_gemm_kernel<TileConfig...> or CUTLASS device_kernel) before ...
  act       activation_kernel, then GEMM2 likewise;
  finalize  finalize / permuted_output / routing_outputs kernels;
  other     anything else (torch kernels, memsets): shown by name, so a new kernel is never lost.
GEMMs are numbered in launch order after each gather, so the split stays right if the
activation is fused away. ``--routed`` profiles cutlass_fused_moe alone (ids precomputed outside).
``--tactics`` forces FLASHINFER_MOE_GEMM_TACTIC per run (auto, sm80_decode, sm80_prefill, sm90);
``--peer`` also breaks down the torch._grouped_mm pipeline (its GEMM kernels vs the rest).

Run on the GPU machine after scripts/gpu_check.sh has built and linked the module:
    PYTHONPATH=python python3 scripts/profile_pipeline.py [--presets qwen3-30b,mixtral]
        [--tokens 1,16,256,4096] [--tactics auto,sm90] [--peer] [--json $OUT/profile.json]
Without a CUDA device (or with a CPU-only build) it exits with status 2 and says why.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys

PHASES = ("route", "ids_in", "permute", "gather", "GEMM1", "act", "GEMM2", "finalize", "other")
DEFAULT_PRESETS = "Qwen3-30B-A3B,Mixtral-8x7B"
DEFAULT_TOKENS = "1,16,256,4096"

# Kernel base name (the function's own name, namespaces and template arguments removed) -> kind.
_KIND_BY_NAME = {
    "routing_kernel": "routing",
    "count_chunk_kernel": "permute",
    "scan_chunks_kernel": "permute",
    "expert_offsets_kernel": "permute",
    "scatter_kernel": "permute",
    "small_permute_kernel": "permute",
    "gather_kernel": "gather",
    "activation_kernel": "act",
    "finalize_kernel": "finalize",
    "permuted_output_kernel": "finalize",
    "routing_outputs_kernel": "finalize",
    "build_schedule_kernel": "gemm_setup",
    "prepare_groups": "gemm_setup",
    "grouped_gemm_kernel": "gemm_main",
}


def _import_flashinfer():
    """``flashinfer`` from this checkout's python/ folder (where gpu_check.sh links the module),
    ahead of any installed copy, which may be older than these scripts."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python")
    if os.path.isdir(os.path.join(here, "flashinfer")):
        sys.path.insert(0, os.path.abspath(here))
    from flashinfer import _C
    from flashinfer.fused_moe import bench, bench_fp8, bench_peers, bench_presets

    bench_peers.make_layer = bench_fp8.make_layer  # FP8 presets get their own layer

    return _C, bench, bench_peers, bench_presets


def cuda_unavailable_reason(torch, _C) -> str | None:
    """Why this machine cannot profile the CUDA engine, or None when it can."""
    if not torch.cuda.is_available():
        return "no CUDA device (torch.cuda.is_available() is False); run it on the GPU machine"
    if not _C.built_with_cuda():
        return "flashinfer._C was built without CUDA: build it first (scripts/gpu_check.sh)"
    return None


# ---- kernel names -----------------------------------------------------------------------------


def _strip_namespaces(name: str) -> str:
    name = name.replace("(anonymous namespace)::", "")
    return re.sub(r"\b(?:[A-Za-z_]\w*::)+", "", name)


def base_name(name: str) -> str:
    """``void ns::(anonymous namespace)::f<A, B>(P)`` -> ``f``."""
    m = re.match(r"^(?:void\s+)?([A-Za-z_][\w:]*)", name.replace("(anonymous namespace)::", ""))
    return m.group(1).rsplit("::", 1)[-1] if m else name


def short_name(name: str, width: int = 60) -> str:
    """The base name with its first template argument (the tile config tells sm80 decode from
    prefill), namespaces removed, cut to ``width`` characters."""
    base = base_name(name)
    plain = _strip_namespaces(name)
    if base == "device_kernel":  # CUTLASS: its static shapes (tile, cluster) say which config
        shapes = re.findall(r"tuple<C<(\d+)>, C<(\d+)>, C<(\d+)> ?>", plain)
        shapes = list(dict.fromkeys("x".join(s) for s in shapes))[:2]
        return f"cutlass device_kernel {' '.join(shapes)}".strip()[:width]
    at = plain.find(base + "<")
    if at >= 0:  # keep the first top-level template argument
        depth, i = 0, at + len(base)
        for i in range(at + len(base), len(plain)):
            c = plain[i]
            depth += c == "<"
            depth -= c == ">"
            if (c == "," and depth == 1) or depth == 0:
                break
        base = plain[at:i] + ">"
    return base if len(base) <= width else base[: width - 3] + "..."


# Fallbacks for kernels added after this table: a word of the base name gives the kind.
_KIND_BY_WORD = (
    ("schedule", "gemm_setup"),
    ("prepare_groups", "gemm_setup"),
    ("gemm", "gemm_main"),
    ("routing", "routing"),
    ("permute", "permute"),
    ("gather", "gather"),
    ("activation", "act"),
    ("finalize", "finalize"),
)


def kernel_kind(name: str) -> str:
    base = base_name(name)
    if base in _KIND_BY_NAME:
        return _KIND_BY_NAME[base]
    if "cutlass" in name and base == "device_kernel":
        return "gemm_main"
    if "flashinfer_moe" in name:  # one of ours that the table does not know yet
        for word, kind in _KIND_BY_WORD:
            if word in base.lower():
                return kind
    return "other"


def attribute(kernels, with_route: bool):
    """Pipeline phase of each kernel of a chronological list [(name, start_us, dur_us)]: the
    name gives the kind, the launch order tells route from ids_in and GEMM1 from GEMM2."""
    out = []
    routing_seen, gemm_no, setup_open = 0, 0, False
    for name, _start, dur in kernels:
        kind = kernel_kind(name)
        if kind == "routing":
            phase = "route" if with_route and routing_seen == 0 else "ids_in"
            routing_seen += 1
        elif kind == "gemm_setup":
            gemm_no += 1
            phase = f"GEMM{gemm_no}"
        elif kind == "gemm_main":
            gemm_no += 0 if setup_open else 1  # a main kernel after its setup is the same GEMM
            phase = f"GEMM{gemm_no}"
        else:
            phase = kind
        if kind in ("routing", "permute", "gather"):
            gemm_no = 0  # GEMMs are counted from the gather of the call
        if kind == "finalize":
            routing_seen = 0  # the next routing kernel belongs to the next call
        if kind != "other":  # a memset between setup and main does not split the GEMM
            setup_open = kind == "gemm_setup"
        out.append((phase, name, dur))
    return out


# ---- measuring -----------------------------------------------------------------------------------


def profiled_kernels(torch, run, iters: int):
    """[(name, start_us, dur_us)] of the device activity of ``iters`` calls of ``run``."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    run()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            run()
        torch.cuda.synchronize()
    found = [
        (e.name, e.time_range.start, e.time_range.elapsed_us())
        for e in prof.events()
        if e.device_type == DeviceType.CUDA
    ]
    return sorted(found, key=lambda k: k[1])


def kernels_per_call(torch, fn, graph, iters: int):
    """Kernels of one call, from graph replays; from eager calls if the profiler saw no kernel
    inside the graph (older CUPTI). Returns (kernels, source)."""
    found = profiled_kernels(torch, graph.replay, iters)
    if found:
        return found, f"{iters} graph replays"
    return profiled_kernels(torch, fn, iters), f"{iters} eager calls (no kernels seen in graphs)"


def summarize(attributed, iters: int):
    """Per-call totals: {(phase, name): [launches, us]} and {phase: us}."""
    by_kernel: dict[tuple[str, str], list[float]] = {}
    by_phase = dict.fromkeys(PHASES, 0.0)
    for phase, name, dur in attributed:
        slot = by_kernel.setdefault((phase, name), [0.0, 0.0])
        slot[0] += 1 / iters
        slot[1] += dur / iters
        by_phase[phase] = by_phase.get(phase, 0.0) + dur / iters
    return by_kernel, by_phase


def gemm_floor_us(p, touched: int, tokens: int, which: int, sheet) -> float | None:
    """One GEMM's floor: max(weight bytes of the touched experts / bandwidth, FLOPs / rate)."""
    if sheet is None:
        return None
    bandwidth = sheet[1]
    from flashinfer.fused_moe.bench import dense_flops_for  # the format's datasheet rate

    flops = dense_flops_for(sheet, p.quant)
    rows = p.gemm1_rows() if which == 1 else p.intermediate_size
    elems = rows * p.hidden_size
    elem_bytes = 1 if p.is_fp8 else 2
    return (
        max(touched * elems * elem_bytes / bandwidth, 2.0 * tokens * p.top_k * elems / flops) * 1e6
    )


# ---- one point ------------------------------------------------------------------------------------


def profile_point(ctx, layer, tokens: int, tactic: str, args) -> dict:
    torch, bench, bench_peers = ctx["torch"], ctx["bench"], ctx["bench_peers"]
    timing, p, sheet = ctx["timing"], layer.p, ctx["sheet"]
    x, logits = layer.inputs(tokens)
    ids, weights = layer.route_ours(logits)
    touched = int(torch.unique(ids).numel())
    if args.routed:
        fn = functools.partial(layer.ours_routed, x, ids, weights)
    else:
        fn = functools.partial(layer.ours, x, logits)
    point = {"preset": p.name, "tokens": tokens, "tactic": tactic, "experts_touched": touched}
    floor_ms = bench.floor_ms(p, tokens, touched, sheet)
    point["floor_us"] = None if floor_ms is None else floor_ms * 1e3
    try:
        # Forced for the eager fallback of kernels_per_call too (a graph keeps its kernels).
        with bench_peers.forced_tactic(tactic):
            fn()  # a tactic that cannot run the point raises here, before any capture
            graph = timing.capture_graph(fn)
            point["graph_us"] = timing.replay_ms(graph) * 1e3
            kernels, point["source"] = kernels_per_call(torch, fn, graph, args.iters)
    except Exception as e:  # noqa: BLE001  (a forced family that cannot run the point, OOM...)
        point["error"] = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:120]}"
        return point
    del graph
    by_kernel, by_phase = summarize(attribute(kernels, not args.routed), args.iters)
    point["kernels"] = [
        {"phase": ph, "name": name, "launches": n, "us": us}
        for (ph, name), (n, us) in by_kernel.items()
    ]
    point["phases_us"] = by_phase
    point["kernels_us"] = sum(by_phase.values())
    point["gemm_floor_us"] = {
        f"GEMM{w}": gemm_floor_us(p, touched, tokens, w, sheet) for w in (1, 2)
    }
    if args.peer and hasattr(torch, "_grouped_mm"):
        point["peer"] = profile_peer(ctx, layer, x, logits, args.iters)
    return point


def profile_peer(ctx, layer, x, logits, iters: int) -> dict:
    """The torch._grouped_mm pipeline's kernels: its GEMMs (the "two GEMMs alone" target) and
    the rest."""
    torch, timing = ctx["torch"], ctx["timing"]
    fn = functools.partial(layer.grouped_mm, x, logits)
    try:
        graph = timing.capture_graph(fn)
        graph_us = timing.replay_ms(graph) * 1e3
        kernels, _ = kernels_per_call(torch, fn, graph, iters)
    except Exception as e:  # noqa: BLE001
        return {"error": f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:120]}"}
    is_gemm = lambda n: kernel_kind(n) == "gemm_main" or "gemm" in n.lower() or "xmma" in n  # noqa: E731
    gemm = sum(d for n, _, d in kernels if is_gemm(n)) / iters
    total = sum(d for _, _, d in kernels) / iters
    return {"graph_us": graph_us, "kernels_us": total, "gemm_us": gemm}


# ---- printing -----------------------------------------------------------------------------------


def _f(v, digits: int = 1) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def print_point(pt: dict) -> None:
    head = f"== {pt['preset']} T={pt['tokens']} tactic={pt['tactic']} ({pt['experts_touched']} experts touched)"
    if "error" in pt:
        print(f"{head}: n/a ({pt['error']})\n", flush=True)
        return
    floor, e2e, ksum = pt["floor_us"], pt["graph_us"], pt["kernels_us"]
    print(f"{head}; kernels from {pt['source']}")
    ratio = f"{floor / e2e:.2f}" if floor else "n/a"
    print(
        f"graph replay {e2e:.1f} us | kernels {ksum:.1f} us | gaps {e2e - ksum:.1f} us | "
        f"floor {_f(floor)} us | floor/replay {ratio}"
    )
    print(f"  {'phase':<9} {'kernel':<60} {'launch':>6} {'us/call':>8} {'%':>5}")
    order = {ph: i for i, ph in enumerate(PHASES)}
    # Stable sort: within a phase the kernels stay in launch order.
    rows = sorted(pt["kernels"], key=lambda k: order.get(k["phase"], len(PHASES)))
    for k in rows:
        share = 100 * k["us"] / ksum if ksum else 0
        print(
            f"  {k['phase']:<9} {short_name(k['name']):<60} {k['launches']:>6.2g} "
            f"{k['us']:>8.1f} {share:>5.1f}"
        )
    for gemm, gfloor in pt["gemm_floor_us"].items():
        us = pt["phases_us"].get(gemm, 0.0)
        if us and gfloor:
            print(
                f"  {gemm}: {us:.1f} us vs its floor {gfloor:.1f} us ({gfloor / us:.2f} of floor)"
            )
    if "peer" in pt:
        peer = pt["peer"]
        if "error" in peer:
            print(f"  torch grouped_mm pipeline: n/a ({peer['error']})")
        else:
            print(
                f"  torch grouped_mm pipeline: replay {peer['graph_us']:.1f} us, kernels "
                f"{peer['kernels_us']:.1f} us, its GEMM kernels alone {peer['gemm_us']:.1f} us"
            )
    print(flush=True)


SUMMARY_COLS = ("preset", "T", "tactic", "replay", "kernels", *PHASES, "floor", "fl/replay")


def print_summary(points) -> None:
    print("== summary (us per call; phases are kernel time, replay = end-to-end graph replay)")
    print(" | ".join(SUMMARY_COLS) + " | peer GEMMs")
    for pt in points:
        if "error" in pt:
            print(f"{pt['preset']} | {pt['tokens']} | {pt['tactic']} | n/a ({pt['error'][:60]})")
            continue
        floor, e2e = pt["floor_us"], pt["graph_us"]
        cells = [pt["preset"], str(pt["tokens"]), pt["tactic"], _f(e2e), _f(pt["kernels_us"])]
        cells += [_f(pt["phases_us"].get(ph, 0.0)) for ph in PHASES]
        cells += [_f(floor), f"{floor / e2e:.2f}" if floor else "n/a"]
        cells.append(_f(pt.get("peer", {}).get("gemm_us")))
        print(" | ".join(cells))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", default=DEFAULT_PRESETS, help="comma list (unique prefixes ok)")
    ap.add_argument("--tokens", default=DEFAULT_TOKENS, help="comma list of token counts")
    ap.add_argument(
        "--tactics", default="auto", help="comma list: auto,sm80_decode,sm80_prefill,sm90"
    )
    ap.add_argument("--iters", type=int, default=20, help="graph replays under the profiler")
    ap.add_argument("--routed", action="store_true", help="profile cutlass_fused_moe alone")
    ap.add_argument(
        "--peer", action="store_true", help="also profile the torch grouped_mm pipeline"
    )
    ap.add_argument("--json", help="also write every point (all kernels, full names) to this file")
    args = ap.parse_args(argv)

    import torch

    _C, bench, bench_peers, bench_presets = _import_flashinfer()
    try:
        presets = bench_presets.find_presets(args.presets)
        tactics = bench_peers.parse_tactics(args.tactics) or ["auto"]
        tokens = [int(t) for t in args.tokens.split(",") if t.strip()]
    except ValueError as e:
        ap.error(str(e))
    reason = cuda_unavailable_reason(torch, _C)
    if reason is not None:
        print(f"profile_pipeline.py: {reason}; nothing profiled.", file=sys.stderr)
        return 2
    card = torch.cuda.get_device_name()
    from flashinfer.fused_moe import timing  # the graph timing bench.py uses

    ctx = {"torch": torch, "bench": bench, "bench_peers": bench_peers, "timing": timing}
    ctx["sheet"] = bench_presets.datasheet_for(card)
    print(f"card: {card}; commit {bench.git_commit()}; torch {torch.__version__}\n")
    points = []
    for p in presets:
        layer = bench_peers.make_layer(p, torch.device("cuda"))
        for t in tokens:
            for tactic in tactics:
                points.append(profile_point(ctx, layer, t, tactic, args))
                print_point(points[-1])
        del layer
        torch.cuda.empty_cache()
    print_summary(points)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"card": card, "points": points}, f, indent=1)
        print(f"json: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
