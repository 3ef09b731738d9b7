"""A torch model of vLLM's fused-MoE entry points, for testing the benchmark's vLLM peer
(``--vllm-peer``, bench_vllm.py) without vLLM: the same signatures and conventions (w1 rows
``[gate ; up]``, FP8 block weights with ``[E, rows / 128, cols / 128]`` fp32 scales), computed
per token in fp32. Written from vLLM's documented API, not from its code."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fused_topk(gating_output, topk, renormalize=True):
    probs = torch.softmax(gating_output.float(), dim=-1)
    weights, ids = torch.topk(probs, topk, dim=-1)
    if renormalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights, ids.to(torch.int32)


def _dequantize(w, scale, block):
    if scale is None:
        return w.float()
    rows = torch.repeat_interleave(scale, block[0], dim=0)[: w.shape[0]]
    return w.float() * torch.repeat_interleave(rows, block[1], dim=1)[:, : w.shape[1]]


def fused_experts(x, w1, w2, topk_weights, topk_ids, use_fp8_w8a8=False, block_shape=None,
                  w1_scale=None, w2_scale=None):  # fmt: skip
    out = torch.zeros(x.shape[0], w2.shape[1], dtype=torch.float32, device=x.device)
    inter = w1.shape[1] // 2
    for t in range(x.shape[0]):
        for j in range(topk_ids.shape[1]):
            e = int(topk_ids[t, j])
            g1 = _dequantize(w1[e], w1_scale[e] if use_fp8_w8a8 else None, block_shape)
            g2 = _dequantize(w2[e], w2_scale[e] if use_fp8_w8a8 else None, block_shape)
            h = g1 @ x[t].float()
            y = g2 @ (F.silu(h[:inter]) * h[inter:])
            out[t] += float(topk_weights[t, j]) * y
    return out.to(x.dtype)
