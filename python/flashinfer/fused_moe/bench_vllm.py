"""vLLM's fused MoE as a benchmark peer: the "vllm" column of the benchmark CLI.

The kernel most serving engines run today is vLLM's Triton fused MoE; our users judge us by the
ratio to it at their batch sizes. ``load_vllm_peer`` finds its two functions,
``fused_topk(gating [T, E], topk, renormalize) -> (weights, ids)`` and ``fused_experts(x, w1,
w2, topk_weights, topk_ids, use_fp8_w8a8=False, block_shape=None, w1_scale=None,
w2_scale=None)``, in a file given with ``--vllm-peer PATH`` (any module exposing them, e.g. a
standalone copy of vLLM's Triton path) or in an installed ``vllm``. The library never imports
it; only the benchmark does, and only when asked or when vllm is installed.

``vllm_peer(layer, module)`` adapts one preset's layer, on the same weights and routing:
  * vLLM's w1 is ``[gate ; up]``, ours ``[up ; gate]``: the peer gets a reordered copy, made
    once (FP8 block scales move with their 128-row blocks);
  * bf16 presets: ``fused_experts`` on bf16 weights; FP8 block presets: e4m3 weights with their
    128 x 128 scales and ``block_shape=[128, 128]``, the bf16 input (vLLM quantizes it itself,
    1 x 128 groups, inside the timed call; ours gets the pre-quantized input);
  * routing: vLLM's ``fused_topk`` for Renormalize (top-k, then softmax), the layer's torch
    routing for the other methods (vLLM serves those with other kernels);
  * vLLM's path has SiLU only: the presets with clamped SwiGLU parameters (gpt-oss) time it
    with SiLU, the same work, so its error column there measures the different activation;
  * per-tensor FP8 and FP4 presets have no peer here (None).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from types import ModuleType, SimpleNamespace

import torch

from .bench_presets import FP8_BLOCK
from .enums import RoutingMethodType


def load_vllm_peer(path: str | None):
    """vLLM's ``fused_experts`` / ``fused_topk`` as a namespace: from ``path`` when given (a
    ValueError naming ``--vllm-peer`` if it cannot be loaded or lacks them), else from an
    installed vllm; None when neither is there."""
    if path:
        try:
            spec = importlib.util.spec_from_file_location("flashinfer_bench_vllm_peer", path)
            if spec is None or spec.loader is None:
                raise ImportError("not a Python module file")
            module: ModuleType | SimpleNamespace = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        except (ImportError, OSError, SyntaxError) as e:
            raise ValueError(f"--vllm-peer: cannot load {path!r}: {e}") from e
    else:
        try:
            fm = importlib.import_module("vllm.model_executor.layers.fused_moe")
        except ImportError:
            return None
        module = SimpleNamespace(fused_experts=fm.fused_experts, fused_topk=fm.fused_topk)
    missing = [n for n in ("fused_experts", "fused_topk") if not hasattr(module, n)]
    if missing:
        raise ValueError(f"--vllm-peer: {path or 'vllm'} has no {', '.join(missing)}")
    return module


def _gate_first(w: torch.Tensor, rows: int) -> torch.Tensor:
    """[E, 2R, ...] with [up ; gate] halves of R rows -> [gate ; up] (a new contiguous tensor)."""
    return torch.cat([w[:, rows:], w[:, :rows]], dim=1).contiguous()


def vllm_peer(layer, module) -> Callable | None:
    """``fn(inputs, logits) -> [T, H]`` running vLLM's path on ``layer``'s weights, or None when
    the preset has no vLLM counterpart here (see the module docstring)."""
    p = layer.p
    if module is None or p.is_fp4 or (p.is_fp8 and not getattr(layer, "block", False)):
        return None
    if p.is_fp8 and p.intermediate_size % FP8_BLOCK != 0:
        return None  # the [up ; gate] halves would split a 128-row scale block
    i, k = p.intermediate_size, p.top_k
    renormalize = p.routing_method == RoutingMethodType.Renormalize

    def route(logits):
        if renormalize:
            weights, ids = module.fused_topk(logits, k, renormalize=True)
            return weights, ids
        ids, weights = layer.route_torch(logits)
        return weights.float(), ids.to(torch.int32)

    if p.is_fp8:
        w1, w2 = _gate_first(layer.q1, i), layer.q2
        s1, s2 = _gate_first(layer.s1, i // FP8_BLOCK), layer.s2

        def run_fp8(inp, logits):
            weights, ids = route(logits)
            return module.fused_experts(inp.bf16, w1, w2, weights, ids, use_fp8_w8a8=True,
                                        block_shape=[FP8_BLOCK, FP8_BLOCK], w1_scale=s1,
                                        w2_scale=s2)  # fmt: skip

        return run_fp8
    w1, w2 = _gate_first(layer.fc1, i), layer.fc2

    def run(x, logits):
        weights, ids = route(logits)
        return module.fused_experts(x, w1, w2, weights, ids)

    return run
