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
Without a GPU the CPU executor and the eager peer run on shrunk "CPU smoke" shapes.
Results: a table on stdout, and <prefix>results.json, .md and .png under ``--out``
(``--out-prefix``, default empty). Benchmarks measure; they never assert.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
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
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()  # warm-up (allocator, lazy init) outside capture
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    graph.replay()
    torch.cuda.synchronize()
    per_replay = []
    for _ in range(batches):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(per_batch):
            graph.replay()
        end.record()
        end.synchronize()
        per_replay.append(start.elapsed_time(end) / per_batch)
    del graph
    return statistics.median(per_replay)


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


def run_preset(p: Preset, tokens, device, sheet, rows: list[dict], tactics=()):
    """Times every point of one preset; ``tactics``: forced GEMM families timed besides ours."""
    layer = make_layer(p, device)
    peers = layer.peers()
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
            # would be hidden behind the host's Python overhead of route().
            mode = {"eager": "never", "route": "always"}.get(name, "small")
            ms, how = time_ms(functools.partial(fn, x, logits), device, t, graph=mode)
            row[f"{name}_ms"], row[f"{name}_how"] = ms, how
        for name in (*peers, *forced):
            row[f"{name}_rel_err"] = check.get(name)
        row["check_against"] = check["against"]
        rows.append(row)
        print(format_row(row, tactics), flush=True)


BASE_COLUMNS = (
    "preset",
    "T",
    "touched",
    "floor us",
    "ours us",
    "route us",
    "grouped_mm us",
    "eager us",
    "floor/ours",
    "floor/grouped",
    "err grouped",
    "err eager",
)


# The FP8 table: "ours bf16" is our bf16 engine on the same (dequantized) weights, bf16/ours its
# time over ours (> 1: FP8 is faster); err bf16 / err scaled / err eager: each one's relative L2
# difference from ours (FP8 quantization error included).
FP8_COLUMNS = (
    "preset",
    "T",
    "touched",
    "floor us",
    "ours us",
    "ours bf16 us",
    "route us",
    "scaled_grouped_mm us",
    "eager us",
    "floor/ours",
    "bf16/ours",
    "floor/scaled",
    "err bf16",
    "err scaled",
    "err eager",
)


def columns(tactics=(), fp8: bool = False) -> tuple[str, ...]:
    """The table's header (``fp8``: the FP8 table's): the base columns, with one column per
    forced tactic after "ours us" and the fastest tactic with its floor ratio at the end (only
    when ``--tactics`` is given)."""
    base = FP8_COLUMNS if fp8 else BASE_COLUMNS
    if not tactics:
        return base
    at = base.index("ours us") + 1
    extra = tuple(f"{t} us" for t in tactics)
    return base[:at] + extra + base[at:] + ("best tactic", "floor/best")


def _us(ms, how=None) -> str:
    if ms is None:
        return how or "n/a"
    return f"{ms * 1e3:.1f}" + ("g" if how == "graph" else "")


def _ratio(floor, ms) -> str:
    return "n/a" if floor is None or ms is None else f"{floor / ms:.2f}"


def _tactic_cell(r: dict, tactic: str) -> str:
    """A forced tactic's time; "n/a" when the family cannot run the point (the reason is in
    results.json); flagged when its output disagreed with ours in the preset's check."""
    key = f"tactic_{tactic}"
    ms = r.get(f"{key}_ms")
    cell = "n/a" if ms is None else _us(ms, r.get(f"{key}_how"))
    return cell + (" MISMATCH" if "MISMATCH" in str(r.get(f"{key}_rel_err")) else "")


def best_tactic(r: dict, tactics) -> tuple[str, float | None]:
    """(name, ms) of the fastest forced tactic that ran the point, or ("n/a", None)."""
    timed = [(r[f"tactic_{t}_ms"], t) for t in tactics if r.get(f"tactic_{t}_ms") is not None]
    if not timed:
        return "n/a", None
    ms, name = min(timed)
    return name, ms


def _is_fp8(r: dict) -> bool:
    return r.get("quant", "bf16") != "bf16"


def _format_fp8_row(r: dict, tactics=()) -> list[str]:
    no_op = "skipped (no torch._scaled_grouped_mm on CUDA)"
    return [
        r["preset"],
        str(r["tokens"]),
        str(r["experts_touched"]),
        _us(r["floor_ms"]),
        _us(r["ours_ms"], r["ours_how"]),
        *(_tactic_cell(r, t) for t in tactics),
        _us(r["ours_bf16_ms"], r["ours_bf16_how"]),
        _us(r["route_ms"], r["route_how"]),
        _us(r.get("scaled_grouped_mm_ms"), r.get("scaled_grouped_mm_how", no_op)),
        _us(r["eager_ms"], r["eager_how"]),
        _ratio(r["floor_ms"], r["ours_ms"]),
        _ratio(r["ours_bf16_ms"], r["ours_ms"]),
        _ratio(r["floor_ms"], r.get("scaled_grouped_mm_ms")),
        *(str(r.get(f"{k}_rel_err") or "n/a") for k in ("ours_bf16", "scaled_grouped_mm", "eager")),
    ]


def format_row(r: dict, tactics=()) -> str:
    """One table row (the FP8 table's columns for an FP8 preset's row)."""
    if _is_fp8(r):
        cells = _format_fp8_row(r, tactics)
        if tactics:
            name, ms = best_tactic(r, tactics)
            cells += [name, _ratio(r["floor_ms"], ms)]
        return " | ".join(cells)
    cells = [
        r["preset"],
        str(r["tokens"]),
        str(r["experts_touched"]),
        _us(r["floor_ms"]),
        _us(r["ours_ms"], r["ours_how"]),
        *(_tactic_cell(r, t) for t in tactics),
        _us(r["route_ms"], r["route_how"]),
        _us(r.get("grouped_mm_ms"), r.get("grouped_mm_how", "skipped (no torch._grouped_mm)")),
        _us(r["eager_ms"], r["eager_how"]),
        _ratio(r["floor_ms"], r["ours_ms"]),
        _ratio(r["floor_ms"], r.get("grouped_mm_ms")),
        str(r.get("grouped_mm_rel_err")),
        str(r.get("eager_rel_err")),
    ]
    if tactics:
        name, ms = best_tactic(r, tactics)
        cells += [name, _ratio(r["floor_ms"], ms)]
    return " | ".join(cells)


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


def result_paths(out_dir: str, prefix: str = "") -> dict[str, str]:
    """Where a run writes its results: ``<out>/<prefix>results.{json,md,png}`` (stable names, so
    a run can write straight into a folder that is collected, e.g. the device's $OUT)."""
    return {ext: os.path.join(out_dir, f"{prefix}results.{ext}") for ext in ("json", "md", "png")}


def save(out_dir: str, meta: dict, rows: list[dict], prefix: str = "", tactics=()) -> None:
    paths = result_paths(out_dir, prefix)
    os.makedirs(out_dir, exist_ok=True)
    with open(paths["json"], "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    with open(paths["md"], "w") as f:
        f.write(f"# fused MoE benchmark\n\n{json.dumps(meta, indent=1)}\n\n")
        f.write(
            "Times in microseconds; 'g' = CUDA-graph replay; err = relative L2 error of the peer "
            f"against {rows[0]['check_against'] if rows else 'ours'}.\n\n"
        )
        if tactics:
            f.write(
                "Tactic columns: ours with FLASHINFER_MOE_GEMM_TACTIC forced; n/a = that family "
                "cannot run the point (reason in results.json).\n\n"
            )
        for fp8 in (False, True):
            table = [r for r in rows if _is_fp8(r) == fp8]
            if not table:
                continue
            if fp8:
                f.write(FP8_TABLE_NOTE + "\n\n")
            cols = columns(tactics, fp8)
            f.write("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n")
            for r in table:
                f.write("| " + format_row(r, tactics) + " |\n")
            f.write("\n" + (fp8_summary(table) + "\n\n" if fp8 else ""))
    plot(paths["png"], rows, tactics)


FP8_TARGET_TOKENS = 4096  # issue 4: FP8 must beat our bf16 engine from this many tokens on


def fp8_summary(rows: list[dict]) -> str:
    """The issue's FP8 target over the FP8 rows: ours faster than our bf16 engine at T >= 4096."""
    big = [r for r in rows if _is_fp8(r) and r["tokens"] >= FP8_TARGET_TOKENS]
    timed = [r for r in big if r["ours_ms"] is not None and r.get("ours_bf16_ms") is not None]
    faster = sum(r["ours_ms"] < r["ours_bf16_ms"] for r in timed)
    return (
        f"FP8 target (ours faster than our bf16 engine at T >= {FP8_TARGET_TOKENS}): met at "
        f"{faster} of {len(big)} points ({len(big) - len(timed)} without both times)."
    )


FP8_TABLE_NOTE = (
    "FP8 presets: ours = trtllm_fp8_block_scale_moe (DeepSeekFp8) or "
    "trtllm_fp8_per_tensor_scale_moe on e4m3 weights; floor = max(touched experts' e4m3 weight "
    "+ scale bytes / datasheet bandwidth, FLOPs / datasheet FP8 rate); ours bf16 = our bf16 "
    "engine on the dequantized weights, bf16/ours > 1 = FP8 faster; scaled_grouped_mm = torch "
    "FP8 pipeline (rowwise scales); eager = bf16 per-expert loop; err = relative L2 difference "
    "from ours (FP8 quantization included)."
)


def plot(path: str, rows: list[dict], tactics=()) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not importable: no results.png (pip install matplotlib)")
        return
    presets = list(dict.fromkeys(r["preset"] for r in rows))
    cols = min(3, len(presets))
    fig, axes = plt.subplots(
        (len(presets) + cols - 1) // cols,
        cols,
        figsize=(5 * cols, 4 * ((len(presets) + cols - 1) // cols)),
        squeeze=False,
    )
    lines = (
        ("floor_ms", "floor", "--"),
        ("ours_ms", "ours", "-"),
        *((f"tactic_{t}_ms", f"ours, {t} forced", ":") for t in tactics),
        ("ours_bf16_ms", "ours, bf16 engine", "-."),
        ("grouped_mm_ms", "torch grouped_mm", "-"),
        ("scaled_grouped_mm_ms", "torch scaled_grouped_mm (FP8)", "-"),
        ("eager_ms", "torch eager", "-"),
        ("route_ms", "ours: routing only", "-"),
    )
    for ax, name in zip(axes.flat, presets):
        rs = [r for r in rows if r["preset"] == name]
        for key, label, style in lines:
            pts = [(r["tokens"], r[key] * 1e3) for r in rs if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=label, linestyle=style)
        ax.set(xscale="log", yscale="log", title=name, xlabel="tokens", ylabel="time (us)")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(presets) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


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
        "per-tensor e4m3) or all; also the pool --presets name prefixes are looked up in",
    )
    ap.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    ap.add_argument(
        "--tactics",
        help="comma list of GEMM tactics (auto,sm80_decode,sm80_prefill,sm90): also time ours "
        "with FLASHINFER_MOE_GEMM_TACTIC forced to each, one column per tactic",
    )
    args = ap.parse_args(argv)
    try:
        tactics = parse_tactics(args.tactics)
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
        if columns(tactics, p.is_fp8) != header:  # each table (bf16, FP8) gets its header
            header = columns(tactics, p.is_fp8)
            print(" | ".join(header))
        run_preset(p, tokens, device, sheet, rows, tactics)
        if use_cuda:
            torch.cuda.empty_cache()  # the preset's weights are gone: free them for the next one
    save(args.out, meta, rows, args.out_prefix, tactics)
    if any(_is_fp8(r) for r in rows):
        print(fp8_summary(rows))
    paths = result_paths(args.out, args.out_prefix)
    print(f"results: {paths['json']}, {paths['md']}")


if __name__ == "__main__":
    main()
