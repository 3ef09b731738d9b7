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


def is_fp8_row(r: dict) -> bool:
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
    if is_fp8_row(r):
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
            table = [r for r in rows if is_fp8_row(r) == fp8]
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
    big = [r for r in rows if is_fp8_row(r) and r["tokens"] >= FP8_TARGET_TOKENS]
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
