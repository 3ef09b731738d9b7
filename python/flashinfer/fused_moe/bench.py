"""Benchmark CLI of the fused MoE layer: ``python -m flashinfer.fused_moe.bench``.

For every model preset (bench_presets.py) and token count it times, in one run:
  * ours: ``route`` (the routing kernel) + ``cutlass_fused_moe`` full form on bf16 weights;
  * peer "grouped_mm": a PyTorch pipeline (routing in torch ops, sort by expert,
    ``torch._grouped_mm`` GEMM1, activation, ``torch._grouped_mm`` GEMM2, weighted combine);
  * peer "eager": the PyTorch per-expert loop (host syncs inside, so never graph-captured);
and prints them next to the floor: max(bytes of the expert weights the routing touched /
datasheet bandwidth, FLOPs / datasheet bf16 rate), with the card's measured copy bandwidth and
bf16 GEMM rate. Small token counts (<= 64) are timed as CUDA-graph replays, larger ones with
events (the routing-only column always as a graph replay); each time is a median. Once per preset, outside the timing, every peer's output is
compared with ours (or, while our GPU path is not implemented, with our CPU executor on a few
tokens): a wrong peer would make the comparison meaningless, so its relative error is printed.
Without a GPU the CPU executor and the eager peer run on shrunk "CPU smoke" shapes.
Results: a table on stdout, and results.json, results.md and results.png under ``--out``.
Benchmarks measure; they never assert.
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
import torch.nn.functional as F

from .bench_presets import (
    CPU_SMOKE_TOKENS,
    DEFAULT_TOKENS,
    Preset,
    cpu_smoke,
    datasheet_for,
    find_presets,
)
from .enums import ActivationType, RoutingMethodType
from .routing import route

GRAPH_MAX_TOKENS = 64
PEER_TOLERANCE = 2e-2  # relative L2 error a bf16 pipeline stays well inside


# ---- the layer, three ways ----------------------------------------------------------------------


class Layer:
    """One preset's weights and inputs on one device (weights N(0, 1/fan_in) so outputs stay O(1))."""

    def __init__(self, p: Preset, device: torch.device, seed: int = 0):
        self.p, self.device = p, device
        g = torch.Generator(device=device).manual_seed(seed)
        e, h, i = p.num_experts, p.hidden_size, p.intermediate_size
        self.fc1 = (
            torch.randn(e, p.gemm1_rows(), h, generator=g, device=device, dtype=torch.bfloat16)
            * h**-0.5
        )
        self.fc2 = torch.randn(e, h, i, generator=g, device=device, dtype=torch.bfloat16) * i**-0.5
        self.swiglu = None
        if p.swiglu is not None:
            self.swiglu = [
                torch.full((e,), v, dtype=torch.float32, device=device) for v in p.swiglu
            ]
        self.bias = None
        if p.routing_method in (RoutingMethodType.DeepSeekV3, RoutingMethodType.MiniMax2):
            self.bias = torch.randn(e, generator=g, device=device) * 0.1

    def inputs(self, num_tokens: int, seed: int = 1):
        g = torch.Generator(device=self.device).manual_seed(seed)
        x = torch.randn(
            num_tokens, self.p.hidden_size, generator=g, device=self.device, dtype=torch.bfloat16
        )
        logits = torch.randn(num_tokens, self.p.num_experts, generator=g, device=self.device)
        return x, logits

    # ours --------------------------------------------------------------------------------------
    def route_ours(self, logits):
        return route(
            logits,
            self.p.top_k,
            self.p.routing_method,
            routing_bias=self.bias,
            **self.p.routing_kwargs,
        )

    def ours(self, x, logits):
        ids, weights = self.route_ours(logits)
        return self.ours_routed(x, ids, weights)

    def ours_routed(self, x, ids, weights):
        from .api_cutlass import cutlass_fused_moe

        kw = {}
        if self.swiglu is not None:
            kw = dict(zip(("swiglu_alpha", "swiglu_beta", "swiglu_limit"), self.swiglu))
        return cutlass_fused_moe(
            x,
            ids,
            weights,
            self.fc1,
            self.fc2,
            torch.bfloat16,
            None,
            activation_type=ActivationType.Swiglu,
            **kw,
        )[0]

    # peers ---------------------------------------------------------------------------------------
    def route_torch(self, logits):
        """The preset's routing in plain torch ops (fp32), graph-capturable."""
        p, s = self.p, logits.float()
        if p.routing_method == RoutingMethodType.Renormalize:
            vals, ids = torch.topk(s, p.top_k, dim=-1)
            return ids, torch.softmax(vals, dim=-1)
        if p.routing_method == RoutingMethodType.Llama4:
            vals, ids = torch.topk(s, 1, dim=-1)
            return ids, torch.sigmoid(vals)
        if p.routing_method == RoutingMethodType.DeepSeekV3:
            kw = p.routing_kwargs
            u = torch.sigmoid(s)
            b = u + (self.bias if self.bias is not None else 0.0)
            t, e, groups = s.shape[0], s.shape[1], int(kw["n_group"])
            group_score = b.view(t, groups, e // groups).topk(2, dim=-1).values.sum(-1)
            keep = torch.zeros_like(group_score).scatter_(
                1, group_score.topk(int(kw["topk_group"]), dim=-1).indices, 1.0
            )
            mask = keep.repeat_interleave(e // groups, dim=1) > 0
            ids = b.masked_fill(~mask, float("-inf")).topk(p.top_k, dim=-1).indices
            sel = u.gather(1, ids)
            return ids, sel * float(kw["routed_scaling_factor"]) / (
                sel.sum(-1, keepdim=True) + 1e-20
            )
        raise NotImplementedError(f"no torch routing for {p.routing_method!r} in the benchmark")

    def activation(self, h1):
        """[up ; gate] -> act(gate) * up in fp32, rounded to bf16 (our order and rounding point)."""
        i = self.p.intermediate_size
        up, gate = h1[:, :i].float(), h1[:, i:].float()
        if self.p.swiglu is None:
            return (F.silu(gate) * up).to(torch.bfloat16)
        alpha, beta, limit = self.p.swiglu
        gate = gate.clamp(max=limit)
        up = up.clamp(-limit, limit)
        return (gate * torch.sigmoid(alpha * gate) * (up + beta)).to(torch.bfloat16)

    def grouped_mm(self, x, logits):
        ids, weights = self.route_torch(logits)
        t, k, e = ids.shape[0], ids.shape[1], self.p.num_experts
        flat = ids.reshape(-1)
        order = torch.argsort(flat, stable=True)
        counts = torch.zeros(e, dtype=torch.int32, device=x.device).scatter_add_(
            0, flat, torch.ones_like(flat, dtype=torch.int32)
        )
        offs = torch.cumsum(counts, 0, dtype=torch.int32)
        xs = x[order // k]
        h1 = torch._grouped_mm(xs, self.fc1.transpose(-2, -1), offs=offs)
        h2 = torch._grouped_mm(self.activation(h1), self.fc2.transpose(-2, -1), offs=offs)
        unsorted = torch.empty_like(h2)
        unsorted[order] = h2
        out = (unsorted.view(t, k, -1).float() * weights.unsqueeze(-1)).sum(1)
        return out.to(torch.bfloat16)

    def eager(self, x, logits):
        ids, weights = self.route_torch(logits)
        out = torch.zeros(x.shape[0], self.p.hidden_size, dtype=torch.float32, device=x.device)
        hit = torch.unique(ids).tolist()  # host sync: the loop visits only the experts in use
        for e in hit:
            tok, slot = torch.where(ids == e)
            h1 = x[tok] @ self.fc1[e].t()
            y = (self.activation(h1) @ self.fc2[e].t()).float()
            out.index_add_(0, tok, y * weights[tok, slot].unsqueeze(-1))
        return out.to(torch.bfloat16)


# ---- timing -----------------------------------------------------------------------------------


def _median_ms_events(fn: Callable, reps: int) -> float:
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


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


def measure_card(device: torch.device) -> dict[str, float]:
    """Copy bandwidth (bytes read + written per second) and bf16 GEMM rate, measured once."""
    if device.type != "cuda":
        return {}
    n_bytes, n = 1 << 30, 8192
    src = torch.empty(n_bytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    copy_ms = _median_ms_events(functools.partial(dst.copy_, src), reps=10)
    src = dst = None  # free the 2 GiB before the GEMM operands
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    gemm_ms = _median_ms_events(functools.partial(torch.matmul, a, torch.randn_like(a)), reps=10)
    return {
        "copy_bytes_per_s": 2 * n_bytes / (copy_ms * 1e-3),
        "bf16_flops_per_s": 2 * n**3 / (gemm_ms * 1e-3),
    }


def floor_ms(p: Preset, num_tokens: int, experts_touched: int, sheet) -> float | None:
    if sheet is None:
        return None
    _, bandwidth, flops = sheet
    weight_bytes = experts_touched * p.expert_weight_elems() * 2  # bf16
    return max(weight_bytes / bandwidth, p.flops(num_tokens) / flops) * 1e3


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


# ---- the run --------------------------------------------------------------------------------------


def check_peers(layer: Layer, peers: dict[str, Callable], num_tokens: int) -> dict[str, str]:
    """Relative error of each peer against ours, once per preset, outside any timing."""
    x, logits = layer.inputs(num_tokens, seed=7)
    try:
        ours, against = layer.ours(x, logits), "ours"
    except NotImplementedError:
        ours, against = _ours_on_cpu(layer, x, logits), "ours (CPU executor)"
    result = {}
    for name, fn in peers.items():
        try:
            err = rel_err(fn(x, logits), ours)
            flag = "" if err <= PEER_TOLERANCE else " MISMATCH"
            result[name] = f"{err:.1e}{flag}"
        except Exception as e:  # noqa: BLE001  (a peer this machine cannot run)
            result[name] = f"n/a ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:40]})"
    result["against"] = against
    return result


def _ours_on_cpu(layer: Layer, x, logits):
    """Our CPU executor on the experts the tokens use (copied to the host), with the GPU's routing."""
    ids, weights = layer.route_ours(logits)
    used = torch.unique(ids)
    remap = torch.full((layer.p.num_experts,), -1, dtype=torch.int32, device=ids.device)
    remap[used] = torch.arange(used.numel(), dtype=torch.int32, device=ids.device)
    sub = Layer.__new__(Layer)
    sub.p, sub.device = layer.p, torch.device("cpu")
    sub.fc1, sub.fc2 = layer.fc1[used].cpu(), layer.fc2[used].cpu()
    sub.swiglu = None if layer.swiglu is None else [v[used].cpu() for v in layer.swiglu]
    return sub.ours_routed(x.cpu(), remap[ids.long()].cpu(), weights.cpu())


def run_preset(p: Preset, tokens, device, sheet, rows: list[dict]):
    layer = Layer(p, device)
    peers = {"eager": layer.eager}
    if hasattr(torch, "_grouped_mm"):
        peers["grouped_mm"] = layer.grouped_mm
    check_tokens = min(4 if device.type == "cuda" else 16, max(tokens))
    check = check_peers(layer, peers, check_tokens)
    print(
        f"# {p.name}: peers checked against {check['against']} on {check_tokens} tokens", flush=True
    )
    for t in tokens:
        x, logits = layer.inputs(t)
        ids, _ = layer.route_ours(logits)
        touched = int(torch.unique(ids).numel())
        row = {
            "preset": p.name,
            "tokens": t,
            "experts_touched": touched,
            "floor_ms": floor_ms(p, t, touched, sheet),
            "note": p.note,
        }
        timed = {"ours": layer.ours, "route": lambda _x, s: layer.route_ours(s), **peers}
        for name, fn in timed.items():
            # The routing kernel alone is always a graph replay: with events its few microseconds
            # would be hidden behind the host's Python overhead of route().
            mode = {"eager": "never", "route": "always"}.get(name, "small")
            ms, how = time_ms(functools.partial(fn, x, logits), device, t, graph=mode)
            row[f"{name}_ms"], row[f"{name}_how"] = ms, how
        for name in peers:
            row[f"{name}_rel_err"] = check.get(name)
        row["check_against"] = check["against"]
        rows.append(row)
        print(format_row(row), flush=True)


COLUMNS = (
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


def _us(ms, how=None) -> str:
    if ms is None:
        return how or "n/a"
    return f"{ms * 1e3:.1f}" + ("g" if how == "graph" else "")


def _ratio(floor, ms) -> str:
    return "n/a" if floor is None or ms is None else f"{floor / ms:.2f}"


def format_row(r: dict) -> str:
    cells = (
        r["preset"],
        str(r["tokens"]),
        str(r["experts_touched"]),
        _us(r["floor_ms"]),
        _us(r["ours_ms"], r["ours_how"]),
        _us(r["route_ms"], r["route_how"]),
        _us(r.get("grouped_mm_ms"), r.get("grouped_mm_how", "skipped (no torch._grouped_mm)")),
        _us(r["eager_ms"], r["eager_how"]),
        _ratio(r["floor_ms"], r["ours_ms"]),
        _ratio(r["floor_ms"], r.get("grouped_mm_ms")),
        str(r.get("grouped_mm_rel_err")),
        str(r.get("eager_rel_err")),
    )
    return " | ".join(cells)


def git_commit() -> str:
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


def save(out_dir: str, meta: dict, rows: list[dict]) -> None:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(f"# fused MoE benchmark\n\n{json.dumps(meta, indent=1)}\n\n")
        f.write(
            "Times in microseconds; 'g' = CUDA-graph replay; err = relative L2 error of the peer "
            f"against {rows[0]['check_against'] if rows else 'ours'}.\n\n"
        )
        f.write("| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n")
        for r in rows:
            f.write("| " + format_row(r) + " |\n")
    plot(out_dir, rows)


def plot(out_dir: str, rows: list[dict]) -> None:
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
    for ax, name in zip(axes.flat, presets):
        rs = [r for r in rows if r["preset"] == name]
        for key, label in (
            ("floor_ms", "floor"),
            ("ours_ms", "ours"),
            ("grouped_mm_ms", "torch grouped_mm"),
            ("eager_ms", "torch eager"),
            ("route_ms", "ours: routing only"),
        ):
            pts = [(r["tokens"], r[key] * 1e3) for r in rs if r.get(key) is not None]
            if pts:
                ax.plot(
                    *zip(*pts),
                    marker="o",
                    label=label,
                    linestyle="--" if key == "floor_ms" else "-",
                )
        ax.set(xscale="log", yscale="log", title=name, xlabel="tokens", ylabel="time (us)")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(presets) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "results.png"), dpi=110)
    print(f"plot: {os.path.join(out_dir, 'results.png')}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m flashinfer.fused_moe.bench", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--presets", help="comma-separated preset names (default: all)")
    ap.add_argument(
        "--tokens", help="comma-separated token counts (default: 1,4,...,16384; CPU: up to 256)"
    )
    ap.add_argument("--out", default="bench_results", help="directory for results.json/.md/.png")
    ap.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    args = ap.parse_args(argv)

    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda") if use_cuda else torch.device("cpu")
    presets = find_presets(args.presets)
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
        and {"label": sheet[0], "bytes_per_s": sheet[1], "bf16_flops_per_s": sheet[2]},
        "measured": measured,
        "git_commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "tokens": tokens,
    }
    print(f"card: {card}; commit {meta['git_commit']}; {meta['date']}")
    if sheet is None and use_cuda:
        print("datasheet: card not listed (H100/H200/A100): no floor column")
    elif sheet:
        print(
            f"datasheet {sheet[0]}: {sheet[1] / 1e12:.2f} TB/s, {sheet[2] / 1e12:.0f} TFLOP/s bf16"
        )
    if measured:
        print(
            f"measured: copy {measured['copy_bytes_per_s'] / 1e12:.2f} TB/s (read+write), "
            f"bf16 GEMM {measured['bf16_flops_per_s'] / 1e12:.0f} TFLOP/s (8192^3)"
        )
    if not use_cuda:
        print(
            "no CUDA device: timing the CPU executor on CPU smoke shapes (experts and sizes scaled down)"
        )
    print(
        "times in us ('g' = CUDA-graph replay, else events/wall clock median); eager is never graphed"
    )
    print(" | ".join(COLUMNS))
    rows: list[dict] = []
    for p in presets:
        run_preset(p, tokens, device, sheet, rows)
        if use_cuda:
            torch.cuda.empty_cache()  # the preset's weights are gone: free them for the next one
    save(args.out, meta, rows)
    print(f"results: {os.path.join(args.out, 'results.json')}, results.md")


if __name__ == "__main__":
    main()
