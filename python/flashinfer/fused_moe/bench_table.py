"""The benchmark's results: the stdout table (one row per point, bf16 or FP8 columns), the
results.json / .md files and the plot. Formatting only: bench.py times and calls these.
"""

from __future__ import annotations

import json
import os

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


# The FP4 (W4A16) table: "ours bf16" as in the FP8 table; deq_grouped_mm = dequantize every
# expert to bf16 on each call + the torch grouped-GEMM pipeline (bench_fp4.py).
FP4_COLUMNS = (
    "preset",
    "T",
    "touched",
    "floor us",
    "ours us",
    "ours bf16 us",
    "route us",
    "deq_grouped_mm us",
    "floor/ours",
    "bf16/ours",
    "err bf16",
    "err deq",
)
_COLUMNS = {"bf16": BASE_COLUMNS, "fp8": FP8_COLUMNS, "fp4": FP4_COLUMNS}
FP4_QUANTS = ("mxfp4", "nvfp4")


def table_kind(r: dict) -> str:
    """Which table a result row belongs to: "bf16", "fp8" or "fp4"."""
    quant = r.get("quant", "bf16")
    return "bf16" if quant == "bf16" else ("fp4" if quant in FP4_QUANTS else "fp8")


# The vLLM peer's columns (bench_vllm.py), last when it ran: its time, its time over ours (> 1:
# we are faster) and its relative L2 difference from ours.
VLLM_COLUMNS = ("vllm us", "vllm/ours", "err vllm")


def columns(tactics=(), kind="bf16", vllm=False) -> tuple[str, ...]:
    """The header of table ``kind`` ("bf16", "fp8", "fp4"; a bool means "fp8" or not): the base
    columns, with one column per forced tactic after "ours us" and the fastest tactic with its
    floor ratio at the end (only when ``--tactics`` is given), then the vLLM peer's (``vllm``)."""
    if isinstance(kind, bool):
        kind = "fp8" if kind else "bf16"
    cols = _COLUMNS[kind]
    if tactics:
        at = cols.index("ours us") + 1
        extra = tuple(f"{t} us" for t in tactics)
        cols = cols[:at] + extra + cols[at:] + ("best tactic", "floor/best")
    return cols + (VLLM_COLUMNS if vllm else ())


def has_vllm(rows) -> bool:
    """Whether the vLLM peer ran on these rows (a "vllm_ms" key, None when it failed)."""
    return any("vllm_ms" in r for r in rows)


def _vllm_cells(r: dict) -> list[str]:
    return [_us(r.get("vllm_ms"), r.get("vllm_how")), _ratio(r.get("vllm_ms"), r["ours_ms"]),
            str(r.get("vllm_rel_err") or "n/a")]  # fmt: skip


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


def is_fp8_row(r: dict) -> bool:
    return table_kind(r) == "fp8"


def _format_fp4_row(r: dict, tactics=()) -> list[str]:
    return [
        r["preset"],
        str(r["tokens"]),
        str(r["experts_touched"]),
        _us(r["floor_ms"]),
        _us(r["ours_ms"], r["ours_how"]),
        *(_tactic_cell(r, t) for t in tactics),
        _us(r["ours_bf16_ms"], r["ours_bf16_how"]),
        _us(r["route_ms"], r["route_how"]),
        _us(r.get("deq_grouped_mm_ms"), r.get("deq_grouped_mm_how", "skipped (no CUDA op)")),
        _ratio(r["floor_ms"], r["ours_ms"]),
        _ratio(r["ours_bf16_ms"], r["ours_ms"]),
        *(str(r.get(f"{k}_rel_err") or "n/a") for k in ("ours_bf16", "deq_grouped_mm")),
    ]


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


def format_row(r: dict, tactics=(), vllm=None) -> str:
    """One table row (the FP8 / FP4 table's columns for an FP8 / FP4 preset's row), with the
    vLLM peer's cells when ``vllm`` (default: when the row has them)."""
    vllm = "vllm_ms" in r if vllm is None else vllm
    kind = table_kind(r)
    if kind != "bf16":
        cells = (_format_fp8_row if kind == "fp8" else _format_fp4_row)(r, tactics)
        if tactics:
            name, ms = best_tactic(r, tactics)
            cells += [name, _ratio(r["floor_ms"], ms)]
        return " | ".join(cells + (_vllm_cells(r) if vllm else []))
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
    return " | ".join(cells + (_vllm_cells(r) if vllm else []))


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
        notes = {"fp8": FP8_TABLE_NOTE, "fp4": FP4_TABLE_NOTE}
        summaries = {"fp8": fp8_summary, "fp4": fp4_summary}
        for kind in ("bf16", "fp8", "fp4"):
            table = [r for r in rows if table_kind(r) == kind]
            if not table:
                continue
            if kind in notes:
                f.write(notes[kind] + "\n\n")
            vllm = has_vllm(table)
            cols = columns(tactics, kind, vllm)
            f.write("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n")
            for r in table:
                f.write("| " + format_row(r, tactics, vllm) + " |\n")
            f.write("\n" + (summaries[kind](table) + "\n\n" if kind in summaries else ""))
    plot(paths["png"], rows, tactics)


FP8_TARGET_TOKENS = 4096  # issue 4: FP8 must beat our bf16 engine from this many tokens on


def fp8_summary(rows: list[dict]) -> str:
    """The issue's FP8 target over the FP8 rows: ours faster than our bf16 engine at T >= 4096."""
    big = [r for r in rows if is_fp8_row(r) and r["tokens"] >= FP8_TARGET_TOKENS]
    timed = [r for r in big if r["ours_ms"] is not None and r.get("ours_bf16_ms") is not None]
    faster = sum(r["ours_ms"] < r["ours_bf16_ms"] for r in timed)
    return (
        f"FP8 target (ours faster than our bf16 engine at T >= {FP8_TARGET_TOKENS}): met at "
        f"{faster} of {len(big)} points ({len(big) - len(timed)} without both times)."
    )


def fp4_summary(rows: list[dict]) -> str:
    """Issue 10's W4A16 targets over the FP4 rows: floor/ours >= 0.60 at T = 1 and >= 0.75 at
    T = 16..256; faster than our bf16 engine at T <= 1024, at most 1.3x slower above."""
    fp4 = [r for r in rows if table_kind(r) == "fp4" and r["ours_ms"] is not None]

    def count(sel, ok):
        chosen = [r for r in fp4 if sel(r["tokens"])]
        return f"{sum(ok(r) for r in chosen)} of {len(chosen)}"

    def floor(goal):
        return lambda r: r["floor_ms"] is not None and r["floor_ms"] / r["ours_ms"] >= goal

    bf16 = [r for r in fp4 if r.get("ours_bf16_ms") is not None]
    faster = sum(r["ours_ms"] < r["ours_bf16_ms"] for r in bf16 if r["tokens"] <= 1024)
    within = sum(r["ours_ms"] <= 1.3 * r["ours_bf16_ms"] for r in bf16 if r["tokens"] > 1024)
    return (
        f"FP4 targets: floor/ours >= 0.60 at T = 1: {count(lambda t: t == 1, floor(0.60))}; "
        f">= 0.75 at T = 16..256: {count(lambda t: 16 <= t <= 256, floor(0.75))}; faster than "
        f"our bf16 engine at T <= 1024: {faster} of {sum(r['tokens'] <= 1024 for r in bf16)}; "
        f"within 1.3x of it above: {within} of {sum(r['tokens'] > 1024 for r in bf16)}."
    )


FP4_TABLE_NOTE = (
    "FP4 presets (W4A16): ours = trtllm_fp4_block_scale_moe on e2m1 weights (MXFP4: full form, "
    "bf16 hidden states; NVFP4: the seed pair form) with bf16 activations; floor = max(touched "
    "experts' 4-bit codes + scale bytes (4.25 / 4.5 bits per weight) / datasheet bandwidth, "
    "FLOPs / datasheet bf16 rate); ours bf16 = our bf16 engine on the dequantized weights, "
    "bf16/ours > 1 = FP4 faster; deq_grouped_mm = dequantize to bf16 on every call + the torch "
    "grouped-GEMM pipeline; err = relative L2 difference from ours."
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
        ("deq_grouped_mm_ms", "torch dequantize + grouped_mm (FP4)", "-"),
        ("eager_ms", "torch eager", "-"),
        ("vllm_ms", "vLLM fused MoE (Triton)", "-"),
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
