"""The benchmarked MoE layer, three ways, for the benchmark CLI (``bench.py``) and the profiling
scripts (``scripts/profile_pipeline.py``).

``Layer`` holds one preset's bf16 weights and builds its inputs, and runs the layer as
  * ours: ``route`` (the routing kernel) + ``cutlass_fused_moe`` full form (``ours``), optionally
    with a forced grouped-GEMM family (``forced_tactic``, through FLASHINFER_MOE_GEMM_TACTIC);
  * peer "grouped_mm": routing in torch ops, sort by expert, ``torch._grouped_mm`` GEMM1,
    activation, ``torch._grouped_mm`` GEMM2, weighted combine (graph-capturable);
  * peer "eager": the PyTorch per-expert loop (host syncs inside).
``check_peers`` compares each peer (or a forced tactic) with ours once, outside any timing: a wrong
peer would make a timing comparison meaningless. The FP8 presets' layer (``bench_fp8.Fp8Layer``)
extends ``Layer`` and overrides ``ours``, ``inputs``, ``peers`` and ``ours_on_cpu``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from .bench_presets import Preset
from .enums import ActivationType, RoutingMethodType
from .routing import route
from .runner import _TACTIC_NAMES, TACTIC_ENV

PEER_TOLERANCE = 2e-2  # relative L2 error a bf16 pipeline stays well inside
TACTIC_NAMES = tuple(_TACTIC_NAMES)  # auto, sm80_decode, sm80_prefill, sm90


@contextlib.contextmanager
def forced_tactic(name: str | None) -> Iterator[None]:
    """Sets FLASHINFER_MOE_GEMM_TACTIC to ``name`` for the block (None: leave it as it is) and
    restores the previous value. The variable is read on every call, and a CUDA graph captured
    inside the block keeps the kernels of the forced family."""
    if name is None:
        yield
        return
    previous = os.environ.get(TACTIC_ENV)
    os.environ[TACTIC_ENV] = name
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(TACTIC_ENV, None)
        else:
            os.environ[TACTIC_ENV] = previous


def parse_tactics(text: str | None) -> list[str]:
    """A comma list of tactic names (``--tactics``), validated, in the given order, no repeats."""
    if not text:
        return []
    names = list(dict.fromkeys(t.strip().lower() for t in text.split(",") if t.strip()))
    unknown = [t for t in names if t not in TACTIC_NAMES]
    if unknown:
        raise ValueError(f"--tactics: unknown {unknown}; known: {', '.join(TACTIC_NAMES)}")
    return names


class Layer:
    """One preset's weights and inputs on one device (weights N(0, 1/fan_in) so outputs stay O(1))."""

    # Relative L2 error up to which a peer agrees with ours (see check_peers).
    peer_tolerance = PEER_TOLERANCE

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

    def ours_forced(self, tactic: str) -> Callable:
        """``ours`` with FLASHINFER_MOE_GEMM_TACTIC set to ``tactic`` during each call."""

        def run(x, logits):
            with forced_tactic(tactic):
                return self.ours(x, logits)

        return run

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

    def ours_on_cpu(self, x, logits):
        """Our CPU executor on the tokens' experts: the reference while our GPU path is missing."""
        return _ours_on_cpu(self, x, logits)

    # peers ---------------------------------------------------------------------------------------
    def peers(self) -> dict[str, Callable]:
        """The peers this machine can run, by column name (the bench times and checks each)."""
        peers = {"eager": self.eager}
        if hasattr(torch, "_grouped_mm"):
            peers["grouped_mm"] = self.grouped_mm
        return peers

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


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def check_peers(layer: Layer, peers: dict[str, Callable], num_tokens: int) -> dict[str, str]:
    """Relative error of each peer against ours, once per preset, outside any timing."""
    x, logits = layer.inputs(num_tokens, seed=7)
    try:
        ours, against = layer.ours(x, logits), "ours"
    except NotImplementedError:
        ours, against = layer.ours_on_cpu(x, logits), "ours (CPU executor)"
    result = {}
    for name, fn in peers.items():
        try:
            err = rel_err(fn(x, logits), ours)
            flag = "" if err <= layer.peer_tolerance else " MISMATCH"
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
