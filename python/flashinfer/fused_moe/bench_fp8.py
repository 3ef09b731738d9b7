"""The FP8 presets' layer for the benchmark CLI (``bench.py``): e4m3 weights with their scales,
realistic inputs, ours through the trtllm FP8 entry points, and the FP8 peers.

``Fp8Layer`` extends the bf16 ``Layer`` (bench_peers.py) and keeps the dequantized weights as
that layer's ``fc1``/``fc2``, so the same object also runs, on the same weight values,
  * "ours_bf16": our bf16 engine (``route`` + ``cutlass_fused_moe``), the time FP8 must beat
    (issue 4: FP8 faster than bf16 at T >= 4096);
  * peer "eager": the PyTorch per-expert bf16 loop (its error against ours is the FP8
    pipeline's own quantization error, measured).
It adds
  * ours: ``trtllm_fp8_block_scale_moe`` (DeepSeekFp8: e4m3 hidden states with [H/128, T] fp32
    scales, e4m3 weights with 128x128 fp32 block scales) or ``trtllm_fp8_per_tensor_scale_moe``
    (static per-tensor input and intermediate scales, per-expert weight scales), full form:
    the routing from the logits runs inside the call, as in a serving step;
  * peer "scaled_grouped_mm": routing in torch ops, sort by expert, ``torch._scaled_grouped_mm``
    GEMM1 (e4m3 rows with rowwise fp32 scales, weights with per-output-channel scales), SwiGLU,
    requantization of each row to e4m3, ``torch._scaled_grouped_mm`` GEMM2, weighted combine.
    It needs CUDA (sm90) and a torch that has the op; elsewhere its column reads n/a.
Every quantization is done once per layer or per point (``inputs``), never inside a timed call.
Codes come from quantizing N(0, 1) data (weights N(0, 1/fan_in)), scales are amax / 448.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..quantization import (
    dequantize_fp8,
    quantize_fp8_block,
    quantize_fp8_per_token,
    quantize_fp8_per_token_group,
)
from ..quantization.codecs import E4M3_MAX, e4m3_encode
from .bench_peers import Layer
from .bench_presets import FP8_BLOCK, Preset
from .enums import RoutingMethodType, WeightLayout

E4M3 = torch.float8_e4m3fn
# FP8 pipelines quantize the input and the intermediate (3 mantissa bits, relative rounding up
# to 1/16): peers that quantize differently (per row vs per 128 columns) differ by a few %.
FP8_PEER_TOLERANCE = 1e-1
# Bytes of fp32 weights generated at a time while quantizing (bounds the temporaries).
_CHUNK_BYTES = 1 << 30
_CALIBRATION_TOKENS = 256


def make_layer(p: Preset, device: torch.device) -> Layer:
    """The benchmarked layer of a preset: ``Fp8Layer`` for the FP8 formats, ``Fp4Layer``
    (bench_fp4.py) for the FP4 ones, else ``Layer``."""
    if p.is_fp4:
        from .bench_fp4 import Fp4Layer

        return Fp4Layer(p, device)
    return Fp8Layer(p, device) if p.is_fp8 else Layer(p, device)


def _rows(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """t[idx] for any dtype: e4m3 rows are gathered as bytes (indexing float8 tensors is not
    implemented on every torch build)."""
    if t.dtype == E4M3:
        return t.view(torch.uint8)[idx].view(E4M3)
    return t[idx]


def scaled_grouped_gemm(a, a_scale, b, b_scale, offs):
    """torch's FP8 grouped GEMM: a e4m3 [M, K] (rows sorted by group) with fp32 [M] row scales,
    b e4m3 [G, N, K] with fp32 [G, N] scales, offs int32 [G] cumulative row ends -> bf16 [M, N].
    The op wants b column-major: the transpose of our [G, N, K] storage is exactly that."""
    return torch._scaled_grouped_mm(
        a, b.transpose(-2, -1), a_scale, b_scale, offs=offs, out_dtype=torch.bfloat16
    )


def emulated_scaled_grouped_gemm(a, a_scale, b, b_scale, offs):
    """``scaled_grouped_gemm`` in fp32 torch ops, any device: the tests run the peer's pipeline
    on the CPU with it (the real op is CUDA-only)."""
    out = torch.empty(a.shape[0], b.shape[1], dtype=torch.float32, device=a.device)
    va = a.float() * a_scale.unsqueeze(-1)
    start = 0
    for g, end in enumerate(offs.tolist()):
        out[start:end] = va[start:end] @ (b[g].float() * b_scale[g].unsqueeze(-1)).t()
        start = end
    return out.to(torch.bfloat16)


@dataclass
class Fp8Inputs:
    """One point's activations in every form a timed function takes (built outside timing)."""

    bf16: torch.Tensor  # [T, H] the dequantized input (the bf16 engine and the eager loop)
    codes: torch.Tensor  # e4m3 [T, H], ours
    scale: torch.Tensor  # ours: block [H/128, T] fp32 (token fastest); per tensor: 0-dim fp32
    row_codes: torch.Tensor  # e4m3 [T, H], the scaled_grouped_mm peer (one scale per row)
    row_scale: torch.Tensor  # fp32 [T]


def _swiglu_fp32(h1: torch.Tensor, i: int) -> torch.Tensor:
    """[up ; gate] -> silu(gate) * up in fp32 (the value an FP8 pipeline requantizes)."""
    return F.silu(h1[:, i:].float()) * h1[:, :i].float()


def _quantize_rows(h: torch.Tensor):
    """fp32 [M, K] -> (e4m3 [M, K], fp32 [M]): one amax / 448 scale per row, in torch ops
    (graph-capturable; the library helper validates its input with host checks)."""
    amax = h.abs().amax(dim=-1, keepdim=True)
    s = torch.where(amax == 0, torch.ones_like(amax), amax / E4M3_MAX)
    return e4m3_encode(h / s), s.squeeze(-1)


class Fp8Layer(Layer):
    """One FP8 preset's weights on one device: e4m3 codes with ours' scales (``q1, s1, q2, s2``),
    the peer's per-output-channel copy (``q1_row, s1_row, ...``) and the dequantized bf16 weights
    (``fc1, fc2``, from which the bf16 engine and the eager loop run)."""

    peer_tolerance = FP8_PEER_TOLERANCE

    def __init__(self, p: Preset, device: torch.device, seed: int = 0):
        if p.swiglu is not None or not p.gated:
            raise ValueError(f"{p.name}: the FP8 benchmark layer runs plain SwiGLU only")
        self.p, self.device, self.swiglu = p, device, None
        self.block = p.quant == "fp8_block"
        g = torch.Generator(device=device).manual_seed(seed)
        e, h, i = p.num_experts, p.hidden_size, p.intermediate_size
        self.q1, self.s1, self.fc1, self.q1_row, self.s1_row = self._expert_stack(e, 2 * i, h, g)
        self.q2, self.s2, self.fc2, self.q2_row, self.s2_row = self._expert_stack(e, h, i, g)
        self.bias = None
        if p.routing_method in (RoutingMethodType.DeepSeekV3, RoutingMethodType.MiniMax2):
            self.bias = torch.randn(e, generator=g, device=device) * 0.1
        # The gemm the peer calls (tests swap in the emulation to run it on the CPU).
        self.grouped_gemm: Callable = scaled_grouped_gemm
        if not self.block:
            self._calibrate_static_scales(g)

    def _expert_stack(self, e: int, rows: int, cols: int, g):
        """E experts' [rows, cols] weights N(0, 1/cols), quantized a chunk of experts at a time:
        (codes, ours' scales, dequantized bf16, per-output-channel codes, their [E, rows] scales).
        Block format: 128x128 scales [E, rows/128, cols/128], and the peer's codes requantized
        per row from the dequantized values (what a rowwise checkpoint of them would hold).
        Per tensor: one scale per expert [E], and the peer reads the same codes."""
        dev = self.device
        codes = torch.empty(e, rows, cols, dtype=E4M3, device=dev)
        deq = torch.empty(e, rows, cols, dtype=torch.bfloat16, device=dev)
        row_codes = torch.empty_like(codes) if self.block else codes
        row_scale = torch.empty(e, rows, dtype=torch.float32, device=dev)
        scales = []
        chunk = max(1, _CHUNK_BYTES // (4 * rows * cols))
        for lo in range(0, e, chunk):
            hi = min(e, lo + chunk)
            w = torch.randn(hi - lo, rows, cols, generator=g, device=dev) * cols**-0.5
            if self.block:
                q, s = quantize_fp8_block(w, (FP8_BLOCK, FP8_BLOCK))
                v = dequantize_fp8(q, s, (FP8_BLOCK, FP8_BLOCK))
                rq, rs = quantize_fp8_per_token(v)
                row_codes[lo:hi], row_scale[lo:hi] = rq, rs.squeeze(-1)
            else:
                amax = w.abs().amax(dim=(1, 2))
                s = torch.where(amax == 0, torch.ones_like(amax), amax / E4M3_MAX)
                q = e4m3_encode(w / s.view(-1, 1, 1))
                v = q.float() * s.view(-1, 1, 1)
                row_scale[lo:hi] = s.view(-1, 1)
            codes[lo:hi], deq[lo:hi] = q, v.to(torch.bfloat16)
            scales.append(s)
            del w, q, v
        return codes, torch.cat(scales), deq, row_codes, row_scale

    def _calibrate_static_scales(self, g) -> None:
        """Per-tensor FP8 needs static scales for the input and the intermediate, as a
        calibrated checkpoint has: amax / 448 over a calibration batch (N(0, 1) tokens through
        the dequantized weights), then trtllm's three per-expert output scalars from them."""
        p, dev = self.p, self.device
        x = torch.randn(_CALIBRATION_TOKENS, p.hidden_size, generator=g, device=dev)
        logits = torch.randn(_CALIBRATION_TOKENS, p.num_experts, generator=g, device=dev)
        self.hs_scale = (x.abs().amax() / E4M3_MAX).float()
        ids, _ = self.route_torch(logits)
        inter_amax = torch.zeros((), device=dev)
        for e in torch.unique(ids).tolist():
            tok = torch.where(ids == e)[0]
            h = _swiglu_fp32(x[tok] @ self.fc1[e].float().t(), p.intermediate_size)
            inter_amax = torch.maximum(inter_amax, h.abs().amax())
        self.inter_scale = (inter_amax / E4M3_MAX).float()
        # Dequant multipliers: GEMM1's is input scale x weight scale; the intermediate's codes
        # are value / inter_scale; trtllm's scalars fold these (api_trtllm: gate = g1,
        # out1 = g1 / inter_scale, out2 = inter_scale x w2 scale).
        self.gate_scalar = (self.hs_scale * self.s1).float().contiguous()
        self.out1_scalar = (self.gate_scalar / self.inter_scale).contiguous()
        self.out2_scalar = (self.inter_scale * self.s2).float().contiguous()

    def inputs(self, num_tokens: int, seed: int = 1):
        """(Fp8Inputs, fp32 logits [T, E]) from N(0, 1) tokens: block format quantized per
        token and 128 columns (ours) and per token (the peer); per tensor with the static scale."""
        p, dev = self.p, self.device
        g = torch.Generator(device=dev).manual_seed(seed)
        x = torch.randn(num_tokens, p.hidden_size, generator=g, device=dev)
        logits = torch.randn(num_tokens, p.num_experts, generator=g, device=dev)
        if self.block:
            q, s = quantize_fp8_per_token_group(x, FP8_BLOCK)
            v = dequantize_fp8(q, s, (1, FP8_BLOCK))
            rq, rs = quantize_fp8_per_token(v)
            inp = Fp8Inputs(v.to(torch.bfloat16), q, s.t().contiguous(), rq, rs.view(-1))
        else:
            q = e4m3_encode(x / self.hs_scale)
            v = q.float() * self.hs_scale
            row_scale = self.hs_scale.expand(num_tokens).contiguous()
            inp = Fp8Inputs(v.to(torch.bfloat16), q, self.hs_scale, q, row_scale)
        return inp, logits

    # ours ----------------------------------------------------------------------------------------
    def ours(self, inp: Fp8Inputs, logits):
        from .api_trtllm import trtllm_fp8_block_scale_moe, trtllm_fp8_per_tensor_scale_moe

        p, kw, e = self.p, self.p.routing_kwargs, self.p.num_experts
        layout = dict(use_shuffled_weight=False, weight_layout=WeightLayout.MajorK)
        method = int(p.routing_method)
        if self.block:
            return trtllm_fp8_block_scale_moe(
                logits, self.bias, inp.codes, inp.scale, self.q1, self.s1, self.q2, self.s2,
                e, p.top_k, kw.get("n_group"), kw.get("topk_group"), p.intermediate_size, 0, e,
                kw.get("routed_scaling_factor"), routing_method_type=method, **layout,
            )  # fmt: skip
        return trtllm_fp8_per_tensor_scale_moe(
            logits, self.bias, inp.codes, self.q1, self.out1_scalar, self.gate_scalar, self.q2,
            self.out2_scalar, e, p.top_k, None, None, p.intermediate_size, 0, e, None, False,
            routing_method_type=method, **layout,
        )  # fmt: skip

    def ours_bf16(self, inp: Fp8Inputs, logits):
        """Our bf16 engine on the dequantized weights and input: the time FP8 must beat."""
        return Layer.ours(self, inp.bf16, logits)

    def ours_on_cpu(self, inp: Fp8Inputs, logits):
        """Our CPU executor (the routed FP8 entry point) on the experts the tokens use, copied to
        the host, with the GPU's routing: the reference while our GPU FP8 path is missing."""
        from .api_trtllm import (
            trtllm_fp8_block_scale_routed_moe,
            trtllm_fp8_per_tensor_scale_routed_moe,
        )

        ids, weights = self.route_ours(logits)
        used = torch.unique(ids)
        remap = torch.full((self.p.num_experts,), -1, dtype=torch.int32, device=ids.device)
        remap[used] = torch.arange(used.numel(), dtype=torch.int32, device=ids.device)
        routed = (remap[ids.long()].cpu(), weights.float().cpu())
        sub = lambda t: _rows(t, used).cpu()  # noqa: E731
        n, k, i = used.numel(), self.p.top_k, self.p.intermediate_size
        layout = dict(use_shuffled_weight=False, weight_layout=WeightLayout.MajorK)
        if self.block:
            return trtllm_fp8_block_scale_routed_moe(
                routed, None, inp.codes.cpu(), inp.scale.cpu(), sub(self.q1), sub(self.s1),
                sub(self.q2), sub(self.s2), n, k, None, None, i, 0, n, None, **layout,
            )  # fmt: skip
        return trtllm_fp8_per_tensor_scale_routed_moe(
            routed, None, inp.codes.cpu(), sub(self.q1), sub(self.out1_scalar),
            sub(self.gate_scalar), sub(self.q2), sub(self.out2_scalar), n, k, None, None, i, 0, n,
            None, False, **layout,
        )  # fmt: skip

    # peers ---------------------------------------------------------------------------------------
    def peers(self) -> dict[str, Callable]:
        """ours_bf16 (timed and checked like a peer), the FP8 torch pipeline where this machine
        has it, and the bf16 eager loop."""
        peers = {"ours_bf16": self.ours_bf16}
        if self.device.type == "cuda" and hasattr(torch, "_scaled_grouped_mm"):
            peers["scaled_grouped_mm"] = self.scaled_grouped_mm
        peers["eager"] = self.eager_bf16
        return peers

    def eager_bf16(self, inp: Fp8Inputs, logits):
        return Layer.eager(self, inp.bf16, logits)

    def scaled_grouped_mm(self, inp: Fp8Inputs, logits):
        """The FP8 torch pipeline (graph-capturable: no host syncs)."""
        ids, weights = self.route_torch(logits)
        t, k, e, i = ids.shape[0], ids.shape[1], self.p.num_experts, self.p.intermediate_size
        flat = ids.reshape(-1)
        order = torch.argsort(flat, stable=True)
        counts = torch.zeros(e, dtype=torch.int32, device=flat.device).scatter_add_(
            0, flat, torch.ones_like(flat, dtype=torch.int32)
        )
        offs = torch.cumsum(counts, 0, dtype=torch.int32)
        src = order // k
        a, a_scale = _rows(inp.row_codes, src), inp.row_scale[src]
        h = _swiglu_fp32(self.grouped_gemm(a, a_scale, self.q1_row, self.s1_row, offs), i)
        if self.block:
            q, q_scale = _quantize_rows(h)
        else:  # per-tensor checkpoints quantize the intermediate with their static scale
            q = e4m3_encode(h / self.inter_scale)
            q_scale = self.inter_scale.expand(h.shape[0]).contiguous()
        h2 = self.grouped_gemm(q, q_scale, self.q2_row, self.s2_row, offs)
        unsorted = torch.empty_like(h2)
        unsorted[order] = h2
        out = (unsorted.view(t, k, -1).float() * weights.unsqueeze(-1)).sum(1)
        return out.to(torch.bfloat16)
