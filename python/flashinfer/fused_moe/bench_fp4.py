"""The FP4 presets' layer for the benchmark CLI (``bench.py``): e2m1 weights with block scales,
bf16 activations (W4A16), ours through ``trtllm_fp4_block_scale_moe``, and the FP4 peers.

``Fp4Layer`` extends the bf16 ``Layer`` (bench_peers.py) and keeps the dequantized weights as
that layer's ``fc1``/``fc2`` (exact in bf16: an e2m1 value times an e4m3 or ue8m0 scale has at
most 6 significant bits), so the same object also runs, on the same weight values,
  * "ours_bf16": our bf16 engine (``route`` + ``cutlass_fused_moe``), the time 4-bit weights
    must beat (issue 10: faster at every T <= 1024, at most 1.3x slower above);
  * peer "deq_grouped_mm": the torch pipeline a user without an FP4 kernel writes: dequantize
    every expert's codes to bf16 on each call, then routing, sort, ``torch._grouped_mm`` GEMM1
    (+ bias), the activation, ``torch._grouped_mm`` GEMM2 (+ bias) and the weighted combine.
Ours is
  * MXFP4 (``mxfp4`` presets, gpt-oss): the full form with bf16 hidden states, packed codes
    and linear ue8m0 scales per 32 (MajorK, unshuffled), fc1 / fc2 biases and the clamped SwiGLU
    parameters; the routing from the logits runs inside the call;
  * NVFP4 (``nvfp4`` presets): e4m3 scales per 16. flashinfer's full form pairs NvFP4 weights
    with NvFP4 activations (W4A4, which reaches the same GEMMs as widened bf16 values after an
    extra quantizing pass); the W4A16 point is the seed form's pair ``(fc1, fc2)`` with bf16
    activations, the same weights and scales (no global scale).
Weights are N(0, 1/fan_in) quantized once per preset, a chunk of experts at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..quantization import fp4_quantize
from .bench_peers import Layer
from .enums import ActivationType, RoutingMethodType, WeightLayout

# Both sides compute with the same dequantized weights and round the intermediate to bf16: they
# differ by fp32 summation order and a few bf16 flips.
FP4_PEER_TOLERANCE = 2e-2
_CHUNK_BYTES = 1 << 30
_E2M1_MAGNITUDES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def _decode_scales(scale: torch.Tensor, mx: bool) -> torch.Tensor:
    """Scale bytes -> fp32: ue8m0 (2^(b - 127)) or e4m3."""
    if mx:
        return torch.exp2(scale.float() - 127.0)
    return scale.view(torch.float8_e4m3fn).float()


def e2m1_table(device) -> torch.Tensor:
    """The 8 e2m1 magnitudes on ``device`` (made outside any graph capture: a host copy)."""
    return torch.tensor(_E2M1_MAGNITUDES, dtype=torch.float32, device=device)


def dequantize_fp4(codes: torch.Tensor, scale: torch.Tensor, block: int, mx: bool,
                   table: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Packed e2m1 [..., K/2] with linear scales [..., K/block] -> bf16 [..., K], exactly.
    ``table``: ``e2m1_table`` of the device (pass it when capturing a graph)."""
    table = e2m1_table(codes.device) if table is None else table
    nib = torch.stack((codes & 0x0F, codes >> 4), dim=-1).flatten(-2).long()
    v = table[nib & 7] * (1.0 - 2.0 * (nib >> 3).float())
    return (v * _decode_scales(scale, mx).repeat_interleave(block, dim=-1)).to(torch.bfloat16)


class Fp4Layer(Layer):
    """One FP4 preset's weights on one device: packed codes and scale bytes (``q1, s1, q2, s2``),
    the dequantized bf16 weights (``fc1, fc2``) and, for presets with biases, fp32 ``b1, b2``."""

    peer_tolerance = FP4_PEER_TOLERANCE

    def __init__(self, p, device: torch.device, seed: int = 0):
        if not p.gated:
            raise ValueError(f"{p.name}: the FP4 benchmark layer runs gated activations only")
        self.p, self.device = p, device
        self.mx = p.quant == "mxfp4"
        self.block = 32 if self.mx else 16
        g = torch.Generator(device=device).manual_seed(seed)
        e, h, i = p.num_experts, p.hidden_size, p.intermediate_size
        self.q1, self.s1, self.fc1 = self._expert_stack(e, p.gemm1_rows(), h, g)
        self.q2, self.s2, self.fc2 = self._expert_stack(e, h, i, g)
        self.swiglu = None
        if p.swiglu is not None:
            self.swiglu = [
                torch.full((e,), v, dtype=torch.float32, device=device) for v in p.swiglu
            ]
        # Biases: bf16 values (cutlass_fused_moe's bf16 engine takes bf16 biases), also kept as
        # fp32 for the trtllm FP4 form (which takes fp32): both sides add the same numbers.
        self.b1 = self.b2 = self.b1_f32 = self.b2_f32 = None
        if p.gemm_biases:
            self.b1 = (torch.randn(e, p.gemm1_rows(), generator=g, device=device) * 0.1).bfloat16()
            self.b2 = (torch.randn(e, h, generator=g, device=device) * 0.1).bfloat16()
            self.b1_f32, self.b2_f32 = self.b1.float(), self.b2.float()
        self.bias = None
        if p.routing_method in (RoutingMethodType.DeepSeekV3, RoutingMethodType.MiniMax2):
            self.bias = torch.randn(e, generator=g, device=device) * 0.1
        self.table = e2m1_table(device)

    def _expert_stack(self, e: int, rows: int, cols: int, g):
        """(packed codes [e, rows, cols/2], linear scale bytes [e, rows, cols/block], bf16
        dequantized [e, rows, cols]) of N(0, 1/cols) weights."""
        dev = self.device
        codes = torch.empty(e, rows, cols // 2, dtype=torch.uint8, device=dev)
        scales = torch.empty(e, rows, cols // self.block, dtype=torch.uint8, device=dev)
        deq = torch.empty(e, rows, cols, dtype=torch.bfloat16, device=dev)
        chunk = max(1, _CHUNK_BYTES // (4 * rows * cols))
        for lo in range(0, e, chunk):
            hi = min(e, lo + chunk)
            w = torch.randn(hi - lo, rows, cols, generator=g, device=dev) * cols**-0.5
            q, s = fp4_quantize(w, None, self.block, self.mx, is_sf_swizzled_layout=False)
            codes[lo:hi], scales[lo:hi] = q, s.view(hi - lo, rows, -1)
            deq[lo:hi] = dequantize_fp4(codes[lo:hi], scales[lo:hi], self.block, self.mx)
            del w, q, s
        return codes, scales, deq

    # ours ----------------------------------------------------------------------------------------
    def ours(self, x, logits):
        from .api_trtllm import trtllm_fp4_block_scale_moe

        p, kw, e = self.p, self.p.routing_kwargs, self.p.num_experts
        if not self.mx:  # NVFP4 W4A16: the seed form's pair (module docstring)
            return trtllm_fp4_block_scale_moe(
                x, logits, (self.q1, self.q2),
                (self.s1.view(torch.float8_e4m3fn), self.s2.view(torch.float8_e4m3fn)),
                num_experts=e, top_k=p.top_k, hidden_size=p.hidden_size,
                intermediate_size=p.intermediate_size, routing_method=p.routing_method,
            )  # fmt: skip
        alpha, beta, limit = self.swiglu if self.swiglu is not None else (None, None, None)
        return trtllm_fp4_block_scale_moe(
            logits, self.bias, x, None, self.q1, self.s1, self.b1_f32, alpha, beta, limit,
            self.q2, self.s2, self.b2_f32, None, None, None, e, p.top_k, kw.get("n_group"),
            kw.get("topk_group"), p.intermediate_size, 0, e, kw.get("routed_scaling_factor"),
            routing_method_type=int(p.routing_method), use_shuffled_weight=False,
            weight_layout=WeightLayout.MajorK,
        )[0]  # fmt: skip

    def ours_routed(self, x, ids, weights):
        """Our bf16 engine (``cutlass_fused_moe``) on the dequantized weights, biases included."""
        from .api_cutlass import cutlass_fused_moe

        kw = {}
        if self.swiglu is not None:
            kw = dict(zip(("swiglu_alpha", "swiglu_beta", "swiglu_limit"), self.swiglu))
        return cutlass_fused_moe(
            x, ids, weights, self.fc1, self.fc2, torch.bfloat16, None,
            fc1_expert_biases=self.b1, fc2_expert_biases=self.b2,
            activation_type=ActivationType.Swiglu, **kw,
        )[0]  # fmt: skip

    def ours_bf16(self, x, logits):
        """Our bf16 engine on the dequantized weights: the time 4-bit weights must beat."""
        return Layer.ours(self, x, logits)

    # peers ---------------------------------------------------------------------------------------
    def peers(self) -> dict[str, Callable]:
        peers = {"ours_bf16": self.ours_bf16}
        if self.device.type == "cuda" and hasattr(torch, "_grouped_mm"):
            peers["deq_grouped_mm"] = self.deq_grouped_mm
        return peers

    def deq_grouped_mm(self, x, logits):
        """Dequantize every expert (one expert at a time, into one bf16 stack), then the torch
        grouped-GEMM pipeline; graph-capturable (no host syncs)."""
        e = self.p.num_experts
        w1 = torch.empty_like(self.fc1)
        w2 = torch.empty_like(self.fc2)
        for ex in range(e):
            w1[ex] = dequantize_fp4(self.q1[ex], self.s1[ex], self.block, self.mx, self.table)
            w2[ex] = dequantize_fp4(self.q2[ex], self.s2[ex], self.block, self.mx, self.table)
        ids, weights = self.route_torch(logits)
        t, k = ids.shape
        flat = ids.reshape(-1)
        order = torch.argsort(flat, stable=True)
        counts = torch.zeros(e, dtype=torch.int32, device=x.device).scatter_add_(
            0, flat, torch.ones_like(flat, dtype=torch.int32)
        )
        offs = torch.cumsum(counts, 0, dtype=torch.int32)
        rows_expert = flat[order]
        h1 = torch._grouped_mm(x[order // k], w1.transpose(-2, -1), offs=offs)
        if self.b1 is not None:
            h1 = (h1.float() + self.b1_f32[rows_expert]).to(torch.bfloat16)
        h2 = torch._grouped_mm(self.activation(h1), w2.transpose(-2, -1), offs=offs)
        if self.b2 is not None:
            h2 = h2.float() + self.b2_f32[rows_expert]
        unsorted = torch.empty(h2.shape, dtype=h2.dtype, device=h2.device)
        unsorted[order] = h2
        out = (unsorted.view(t, k, -1).float() * weights.unsqueeze(-1)).sum(1)
        return out.to(torch.bfloat16)
