"""Benchmark CLI of the fused MoE layer: ``python -m flashinfer.fused_moe.bench``.

For every model preset (bench_presets.py) and token count it times, in one run (the layer, its
peers and their check live in bench_peers.py):
  * ours: ``route`` (the routing kernel) + ``cutlass_fused_moe`` full form on bf16 weights;
  * peer "grouped_mm": a PyTorch pipeline (routing in torch ops, sort by expert,
    ``torch._grouped_mm`` GEMM1, activation, ``torch._grouped_mm`` GEMM2, weighted combine);
  * peer "eager": the PyTorch per-expert loop (host syncs inside, so never graph-captured);
and prints them next to the floor: max(bytes of the expert weights the routing touched /
datasheet bandwidth, FLOPs / datasheet bf16 rate), with the card's measured copy bandwidth and
bf16 GEMM rate. Small token counts (<= 64) are timed as CUDA-graph replays, larger ones with
events (the routing-only column always as a graph replay); each time is a median. Once per
preset, outside the timing, every peer's output is compared with ours (or, while our GPU path
is not implemented, with our CPU executor on a few tokens): a wrong peer would make the
comparison meaningless, so its relative error is printed.
``--tactics auto,sm80_decode,sm80_prefill,sm90`` also times ours once per forced GEMM family
(FLASHINFER_MOE_GEMM_TACTIC), one column each ("n/a" where the family cannot run the point), plus
the fastest one; each forced family is checked against ours like a peer.
``--dtype fp8`` runs the FP8 presets instead (``all``: both tables; bench_fp8.py): ours is
``trtllm_fp8_block_scale_moe`` (DeepSeekFp8) or ``trtllm_fp8_per_tensor_scale_moe`` on e4m3
weights, next to our bf16 engine on the same (dequantized) weights, the FP8 torch pipeline
(``torch._scaled_grouped_mm``, CUDA only) and the bf16 eager loop; the floor counts 1 byte per
weight plus the scales and the datasheet FP8 rate. A point ours cannot run (e.g. the FP8 engine
raising NotImplementedError) shows "n/a" with the reason, and the run goes on.
``--dtype fp4`` runs the FP4 presets (bench_fp4.py): ours is ``trtllm_fp4_block_scale_moe`` on
e2m1 weights with bf16 activations (W4A16), next to our bf16 engine on the dequantized weights
and the torch pipeline that dequantizes on every call; the floor counts 4.25 (MXFP4) or 4.5
(NVFP4) bits per weight and the bf16 rate.
Without a GPU the CPU executor and the eager peer run on shrunk "CPU smoke" shapes.
Results (bench_table.py formats them): a table on stdout, and <prefix>results.json, .md and .png
under ``--out`` (``--out-prefix``, default empty). Benchmarks measure; they never assert.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import statistics
import subprocess
import time
from collections.abc import Callable

import torch

from .bench_fp8 import make_layer
from .bench_peers import check_peers, parse_tactics
from .bench_presets import (
    CPU_SMOKE_TOKENS,
    DEFAULT_TOKENS,
    DTYPES,
    Preset,
    cpu_smoke,
    datasheet_for,
    dense_flops_for,
    find_presets,
)
from .bench_table import (
    columns,
    format_row,
    fp4_summary,
    fp8_summary,
    result_paths,
    save,
    table_kind,
)
from .bench_vllm import load_vllm_peer, vllm_peer
from .timing import capture_graph, replay_ms

GRAPH_MAX_TOKENS = 64


# ---- timing -----------------------------------------------------------------------------------


def _median_ms_events(fn: Callable, reps: int) -> float:
    """Per-call time of back-to-back calls, as a serving loop issues them: the host may run
    ahead of the device (no sync between calls), so a call costs max(host launch work, device
    work), not their sum. Each call still gets its own pair of events."""
    pairs = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        pairs.append((start, end))
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in pairs)


def _median_ms_graph(fn: Callable, batches: int = 7, per_batch: int = 20) -> float:
    graph = capture_graph(fn)
    try:
        return replay_ms(graph, batches, per_batch)
    finally:
        del graph


def _median_ms_cpu(fn: Callable, budget_s: float = 0.3, max_reps: int = 5) -> float:
    fn()  # warm-up
    times = []
    while len(times) < max_reps and (not times or sum(times) < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def time_ms(fn: Callable, device: torch.device, num_tokens: int, graph: str):
    """(milliseconds, method) or (None, reason). ``graph``: "never", "small" (T <= 64) or "always"."""
    try:
        if device.type == "cpu":
            return _median_ms_cpu(fn), "wall"
        for _ in range(2):
            fn()
        torch.cuda.synchronize()
        if graph == "always" or (graph == "small" and num_tokens <= GRAPH_MAX_TOKENS):
            return _median_ms_graph(fn), "graph"
        return _median_ms_events(fn, reps=10 if num_tokens <= 1024 else 5), "events"
    except NotImplementedError:
        return None, "n/a (not implemented)"
    except Exception as e:  # noqa: BLE001  (out of memory, a peer this card cannot run...)
        return None, f"n/a ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:60]})"


# ---- device characterization ---------------------------------------------------------------------


def _fp8_gemm_rate(device: torch.device, n: int = 8192) -> float | None:
    """Dense e4m3 GEMM rate: ``torch._scaled_mm`` on n^3 random codes, tensorwise fp32 scales,
    bf16 out, fp32 accumulation (no fast accumulation, like block-scaled FP8 kernels that promote
    their sums). None where the op or the card's FP8 tensor cores are missing (A100)."""
    try:
        a = torch.randn(n, n, device=device).to(torch.float8_e4m3fn)
        b = torch.randn(n, n, device=device).to(torch.float8_e4m3fn).t()  # column-major operand
        one = torch.ones((), device=device)
        fn = functools.partial(torch._scaled_mm, a, b, one, one, out_dtype=torch.bfloat16)
        fn()
        return 2 * n**3 / (_median_ms_events(fn, reps=10) * 1e-3)
    except (AttributeError, RuntimeError):
        return None


def measure_card(device: torch.device) -> dict[str, float]:
    """Copy bandwidth (bytes read + written per second), bf16 and FP8 GEMM rates, measured once."""
    if device.type != "cuda":
        return {}
    n_bytes, n = 1 << 30, 8192
    src = torch.empty(n_bytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    copy_ms = _median_ms_events(functools.partial(dst.copy_, src), reps=10)
    src = dst = None  # free the 2 GiB before the GEMM operands
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    gemm_ms = _median_ms_events(functools.partial(torch.matmul, a, torch.randn_like(a)), reps=10)
    a = None  # free the bf16 operand before the FP8 GEMM's
    return {
        "copy_bytes_per_s": 2 * n_bytes / (copy_ms * 1e-3),
        "bf16_flops_per_s": 2 * n**3 / (gemm_ms * 1e-3),
        "fp8_flops_per_s": _fp8_gemm_rate(device, n),
    }


def floor_ms(p: Preset, num_tokens: int, experts_touched: int, sheet) -> float | None:
    """max(touched experts' weight bytes in the preset's format / datasheet bandwidth, FLOPs /
    datasheet dense rate of the format); None where the card or its rate is not listed."""
    flops = dense_flops_for(sheet, p.quant)
    if flops is None:
        return None
    weight_bytes = experts_touched * p.expert_weight_bytes()
    return max(weight_bytes / sheet[1], p.flops(num_tokens) / flops) * 1e3


# ---- the run --------------------------------------------------------------------------------------


def run_preset(p: Preset, tokens, device, sheet, rows: list[dict], tactics=(), vllm=None):
    """Times every point of one preset; ``tactics``: forced GEMM families timed besides ours;
    ``vllm``: vLLM's functions (bench_vllm.py), timed as the "vllm" peer where they apply."""
    layer = make_layer(p, device)
    peers = layer.peers()
    vllm_fn = vllm_peer(layer, vllm)
    if vllm_fn is not None:
        peers["vllm"] = vllm_fn
    forced = {f"tactic_{t}": layer.ours_forced(t) for t in tactics}
    check_tokens = min(4 if device.type == "cuda" else 16, max(tokens))
    # A forced family must agree with ours as closely as a peer: checked the same way, once.
    check = check_peers(layer, {**peers, **forced}, check_tokens)
    print(
        f"# {p.name}: peers checked against {check['against']} on {check_tokens} tokens", flush=True
    )
    for t in tokens:
        x, logits = layer.inputs(t)
        ids, _ = layer.route_ours(logits)
        touched = int(torch.unique(ids).numel())
        row = {
            "preset": p.name,
            "quant": p.quant,
            "tokens": t,
            "experts_touched": touched,
            "floor_ms": floor_ms(p, t, touched, sheet),
            "note": p.note,
        }
        timed = {"ours": layer.ours, **forced, "route": lambda _x, s: layer.route_ours(s), **peers}
        for name, fn in timed.items():
            # The routing kernel alone is always a graph replay: with events its few microseconds
            # would be hidden behind the host's Python overhead of route(). The FP4 torch peer
            # dequantizes every expert per call (~100 ms): events, not 145 graph replays.
            mode = {"eager": "never", "route": "always", "deq_grouped_mm": "never"}.get(
                name, "small"
            )
            ms, how = time_ms(functools.partial(fn, x, logits), device, t, graph=mode)
            row[f"{name}_ms"], row[f"{name}_how"] = ms, how
        for name in (*peers, *forced):
            row[f"{name}_rel_err"] = check.get(name)
        row["check_against"] = check["against"]
        rows.append(row)
        print(format_row(row, tactics), flush=True)


def git_commit() -> str:
    """The commit the results belong to: FLASHINFER_MOE_BENCH_COMMIT when set (a copied working
    tree, e.g. on a remote GPU machine, may carry a stale .git), else git's HEAD."""
    if os.environ.get("FLASHINFER_MOE_BENCH_COMMIT"):
        return os.environ["FLASHINFER_MOE_BENCH_COMMIT"]
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _tflops(rate: float | None, what: str) -> str:
    return f"{what} n/a" if rate is None else f"{rate / 1e12:.0f} TFLOP/s {what}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m flashinfer.fused_moe.bench", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--presets", help="comma-separated preset names (default: all)")
    ap.add_argument(
        "--tokens", help="comma-separated token counts (default: 1,4,...,16384; CPU: up to 256)"
    )
    ap.add_argument("--out", default="bench_results", help="directory for results.json/.md/.png")
    ap.add_argument(
        "--out-prefix",
        default="",
        help="prefix of the result file names: <out>/<prefix>results.json/.md/.png",
    )
    ap.add_argument(
        "--dtype",
        choices=tuple(DTYPES),
        default="bf16",
        help="weight format of the presets: bf16 (default), fp8 (the '-fp8' presets: block and "
        "per-tensor e4m3), fp4 (the '-mxfp4' / '-nvfp4' W4A16 presets) or all; also the pool "
        "--presets name prefixes are looked up in",
    )
    ap.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    ap.add_argument(
        "--tactics",
        help="comma list of GEMM tactics (auto,sm80_decode,sm80_prefill,sm90): also time ours "
        "with FLASHINFER_MOE_GEMM_TACTIC forced to each, one column per tactic",
    )
    ap.add_argument(
        "--vllm-peer",
        metavar="PATH",
        help="a Python file exposing vLLM's fused_experts / fused_topk, timed as the 'vllm' peer "
        "of the bf16 and FP8-block presets (default: the installed vllm, if any)",
    )
    args = ap.parse_args(argv)
    try:
        tactics = parse_tactics(args.tactics)
        vllm = load_vllm_peer(args.vllm_peer)
    except ValueError as e:
        ap.error(str(e))

    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda") if use_cuda else torch.device("cpu")
    try:
        presets = find_presets(args.presets, args.dtype)
    except ValueError as e:
        ap.error(str(e))
    if args.tokens:
        tokens = [int(t) for t in args.tokens.split(",") if t.strip()]
    else:
        tokens = list(DEFAULT_TOKENS if use_cuda else CPU_SMOKE_TOKENS)
    if not use_cuda:
        presets = [cpu_smoke(p) for p in presets]
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    card = (
        torch.cuda.get_device_name(device) if use_cuda else "CPU (no CUDA device): CPU smoke shapes"
    )
    sheet = datasheet_for(card) if use_cuda else None
    measured = measure_card(device)
    meta = {
        "card": card,
        "datasheet": sheet
        and {
            "label": sheet[0],
            "bytes_per_s": sheet[1],
            "bf16_flops_per_s": sheet[2],
            "fp8_flops_per_s": dense_flops_for(sheet, "fp8_block"),
        },
        "measured": measured,
        "git_commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "tokens": tokens,
        "tactics": tactics,
        "vllm_peer": args.vllm_peer or ("vllm package" if vllm is not None else None),
    }
    print(f"card: {card}; commit {meta['git_commit']}; {meta['date']}")
    if sheet is None and use_cuda:
        print("datasheet: card not listed (H100/H200/A100): no floor column")
    elif sheet:
        print(
            f"datasheet {sheet[0]}: {sheet[1] / 1e12:.2f} TB/s, {sheet[2] / 1e12:.0f} TFLOP/s bf16, "
            + _tflops(dense_flops_for(sheet, "fp8_block"), "FP8")
        )
    if measured:
        print(
            f"measured: copy {measured['copy_bytes_per_s'] / 1e12:.2f} TB/s (read+write), "
            f"bf16 GEMM {measured['bf16_flops_per_s'] / 1e12:.0f} TFLOP/s (8192^3), "
            + _tflops(measured["fp8_flops_per_s"], "FP8 GEMM (torch._scaled_mm, 8192^3)")
        )
    if not use_cuda:
        print(
            "no CUDA device: timing the CPU executor on CPU smoke shapes (experts and sizes scaled down)"
        )
    print(
        "times in us ('g' = CUDA-graph replay, else events/wall clock median); eager is never graphed"
    )
    if tactics and not use_cuda:
        print("--tactics: the CPU executor ignores the GEMM tactic (the columns repeat ours)")
    rows: list[dict] = []
    header = None
    for p in presets:
        kind = table_kind({"quant": p.quant})
        with_vllm = vllm is not None and kind != "fp4"
        if columns(tactics, kind, with_vllm) != header:  # each table gets its header
            header = columns(tactics, kind, with_vllm)
            print(" | ".join(header))
        run_preset(p, tokens, device, sheet, rows, tactics, vllm)
        # Saved after every preset: a run cut short by a time limit keeps what it measured.
        save(args.out, meta, rows, args.out_prefix, tactics)
        if use_cuda:
            torch.cuda.empty_cache()  # the preset's weights are gone: free them for the next one
    if any(table_kind(r) == "fp8" for r in rows):
        print(fp8_summary(rows))
    if any(table_kind(r) == "fp4" for r in rows):
        print(fp4_summary(rows))
    paths = result_paths(args.out, args.out_prefix)
    print(f"results: {paths['json']}, {paths['md']}")


if __name__ == "__main__":
    main()
