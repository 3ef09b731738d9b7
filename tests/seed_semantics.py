"""An independent float64 model of the seed call forms' semantics (DESIGN.md 4.4 / 4.5).

Written out from the spec, not from the library: routing (Default, Renormalize, RoundRobin),
``seed_moe`` (out[t] = sum_j w * W2_e h, h = act(W1_e x), gated: act(gate) * up), block-scale
expansion and e2m1 decoding (the e4m3 requantization model is in tests/quant_models.py). Used by test_seed_forms.py and
test_seed_forms_trtllm.py to check the seed forms against what the user's spec says.
"""

from __future__ import annotations

import math

import torch
from flashinfer.fused_moe import RoutingMethodType

E4M3 = torch.float8_e4m3fn
E2M1_VALUES = torch.tensor(
    [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], dtype=torch.float64
)


def seed_routing(gating: torch.Tensor, top_k: int, method: RoutingMethodType):
    """(ids [T, k], weights [T, k]) for the methods these tests use."""
    s = gating.double()
    t, e = s.shape
    if method == RoutingMethodType.Default:
        p = torch.softmax(s, dim=-1)
        w, ids = p.topk(top_k, dim=-1)
        return ids, w
    if method == RoutingMethodType.Renormalize:
        v, ids = s.topk(top_k, dim=-1)
        return ids, torch.softmax(v, dim=-1)
    if method == RoutingMethodType.RoundRobin:
        ids = (torch.arange(t).unsqueeze(1) * top_k + torch.arange(top_k).unsqueeze(0)) % e
        return ids, torch.softmax(s.gather(1, ids), dim=-1)
    raise AssertionError(method)


def act_fn(name: str, v: torch.Tensor) -> torch.Tensor:
    if name == "silu":
        return v * torch.sigmoid(v)
    return 0.5 * v * (1 + torch.erf(v / math.sqrt(2)))


def seed_moe(
    x,
    gating,
    w1,
    w2,
    *,
    top_k,
    gated,
    method=RoutingMethodType.Default,
    act="silu",
    capacity=0,
    quant=None,
):
    """out[t] = sum_j w[t,j] * W2_e h, h = act(W1_e x) (gated: act(gate) * up), all float64.

    ``w1`` [E, M1, H] and ``w2`` [E, H, I] are real-valued (already dequantized); ``quant``
    optionally maps (vector, stage) -> its quantized value before each GEMM.
    """
    ids, wts = seed_routing(gating, top_k, method)
    t_count, e = gating.shape
    used = [0] * e
    out = torch.zeros(t_count, w2.shape[1], dtype=torch.float64)
    for t in range(t_count):
        for j in range(top_k):
            ex = int(ids[t, j])
            used[ex] += 1
            if capacity and used[ex] > capacity:
                continue
            xv = x[t].double()
            if quant is not None:
                xv = quant(xv, 1)
            a = w1[ex].double() @ xv
            if gated:
                i = a.shape[0] // 2
                h = act_fn(act, a[i:]) * a[:i]
            else:
                h = act_fn(act, a)
            if quant is not None:
                h = quant(h, 2)
            out[t] += wts[t, j] * (w2[ex].double() @ h)
    return out


def expand_blocks(scale: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """A per-matrix scale grid [nr] or [nr, nc] expanded to [rows, cols]."""
    if scale.dim() == 1:
        scale = scale.unsqueeze(-1)
    s = scale.double().repeat_interleave(rows // scale.shape[0], 0)
    return s.repeat_interleave(cols // scale.shape[1], 1)


def decode_fp4(w: torch.Tensor, packed: bool) -> torch.Tensor:
    codes = torch.stack((w & 15, w >> 4), -1).flatten(-2) if packed else (w & 15)
    return E2M1_VALUES[codes.long()]
