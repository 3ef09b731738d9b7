"""The float64 reference of the canonical MoE problem (docs/semantics.md), shipped so users can
validate any executor too.

It computes from exactly the low-precision values a kernel sees: weights and inputs are
dequantized as the contract writes it (fp32 products), activation (re)quantization makes its
scale decisions in fp32, and routing runs in fp32 so the expert selection matches an fp32
implementation. GEMMs, biases, activations and the finalize sum run in float64, so the result is
the exact answer to the rounded problem, before the final rounding to the output dtype.

Pure torch (no flashinfer._C); vectorized per local expert.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..quantization.codecs import (
    as_code_bytes,
    e2m1_decode,
    e4m3_decode,
    e4m3_round,
    int4_decode,
    round_to_dtype,
    ue8m0_decode,
    unpack_e2m1,
)
from ..quantization.fp4 import e2m1_and_ufp8sf_scale_to_float, fp4_quantize
from ..quantization.fp8 import dequantize_fp8, quantize_fp8_per_token, quantize_fp8_per_token_group
from ..quantization.mx import mxfp8_dequantize_host, mxfp8_quantize
from ..quantization.sf_layout import swizzled_sf_offsets, swizzled_sf_size
from .enums import (
    DEFAULT_SITU_BETA,
    DEFAULT_SITU_LINEAR_BETA,
    ActivationType,
    ActQuant,
    ElemFormat,
    RoutingMethodType,
    ScaleFormat,
    ScaleLayout,
)
from .problem import ActQuantSpec, MoeProblem, QuantTensor, RoutingSpec

Tensor = torch.Tensor

__all__ = [
    "PermutedReference",
    "dequantize",
    "quantize_activation",
    "reference_moe",
    "reference_moe_permuted",
    "reference_routing",
]


# ---- dequantization -----------------------------------------------------------------------------


def _decode_elements(q: QuantTensor) -> Tensor:
    fmt = ElemFormat(q.format)
    if fmt == ElemFormat.Float:
        if not q.data.is_floating_point() or q.data.dtype == torch.float8_e4m3fn:
            raise TypeError(
                f"data must be float32/float16/bfloat16 for ElemFormat.Float, got {q.data.dtype}"
            )
        return q.data.float()
    if fmt == ElemFormat.E4M3:
        return e4m3_decode(q.data)
    codes = as_code_bytes("data", q.data)
    if fmt == ElemFormat.Int4Packed:
        return int4_decode(unpack_e2m1(codes))  # same nibble order as packed e2m1
    if fmt == ElemFormat.E2M1Packed:
        codes = unpack_e2m1(codes)
    return e2m1_decode(codes)


def _decode_scale(scale: Tensor, fmt: ScaleFormat) -> Tensor:
    fmt = ScaleFormat(fmt)
    if fmt == ScaleFormat.Float:
        if not scale.is_floating_point() or scale.dtype == torch.float8_e4m3fn:
            raise TypeError(
                f"scale must be a float tensor for ScaleFormat.Float, got {scale.dtype}"
            )
        return scale.float()
    if fmt == ScaleFormat.E4M3:
        return e4m3_decode(scale)
    return ue8m0_decode(scale)


def dequantize(q: QuantTensor) -> Tensor:
    """float64 value of a weight stack [E, M, K] or an activation matrix [T, K]:
    (decode(data) * scale[.., r // block_rows, c // block_cols]) * global, in fp32."""
    if not isinstance(q.data, torch.Tensor) or q.data.dim() not in (2, 3):
        raise ValueError("QuantTensor.data must be a 2-D [T, K] or 3-D [E, M, K] tensor")
    v = _decode_elements(q)  # [.., M, K] fp32
    rows, cols = v.shape[-2], v.shape[-1]
    br, bc = int(q.block_rows), int(q.block_cols)
    if br < 0 or bc < 0:
        raise ValueError(f"block_rows/block_cols must be >= 0, got {(br, bc)}")
    nrb = 1 if br == 0 else -(-rows // br)
    ncb = 1 if bc == 0 else -(-cols // bc)
    lead = tuple(v.shape[:-2])
    if q.scale is not None:
        if ScaleLayout(q.scale_layout) == ScaleLayout.Swizzled128x4:
            flat = as_code_bytes("scale", q.scale).reshape(-1)
            n = math.prod(lead) if lead else 1
            size = swizzled_sf_size(nrb, ncb)
            if flat.numel() < n * size:
                raise ValueError(
                    f"swizzled scale must hold at least {n * size} bytes, got {flat.numel()}"
                )
            offs = swizzled_sf_offsets(nrb, ncb, flat.device)
            grid = flat[: n * size].reshape(n, size)[:, offs.reshape(-1)].reshape(*lead, nrb, ncb)
            s = _decode_scale(grid, q.scale_format)
        else:
            s = _decode_scale(q.scale, q.scale_format)
            want = (*lead, nrb, ncb)
            if s.dim() != len(want):
                if s.numel() != math.prod(want):
                    raise ValueError(
                        f"scale must have shape [.., {nrb}, {ncb}], got {tuple(q.scale.shape)}"
                    )
                s = s.reshape(want)
            if tuple(s.shape[:-2]) != lead or s.shape[-2] < nrb or s.shape[-1] < ncb:
                raise ValueError(
                    f"scale must cover a [{', '.join(map(str, want))}] block grid, got {tuple(q.scale.shape)}"
                )
        ri = (
            torch.arange(rows, device=v.device) // br
            if br
            else torch.zeros(rows, dtype=torch.int64, device=v.device)
        )
        ci = (
            torch.arange(cols, device=v.device) // bc
            if bc
            else torch.zeros(cols, dtype=torch.int64, device=v.device)
        )
        v = v * s.index_select(-2, ri).index_select(-1, ci)
    if q.global_scale is not None:
        g = q.global_scale.float().reshape(-1)
        if v.dim() == 3:
            if g.numel() != v.shape[0]:
                raise ValueError(
                    f"global_scale must have {v.shape[0]} entries (one per expert), got {g.numel()}"
                )
            g = g.reshape(-1, 1, 1)
        elif g.numel() != 1:
            raise ValueError(
                f"an activation's global_scale must be a scalar, got shape {tuple(q.global_scale.shape)}"
            )
        else:
            g = g.reshape(())
        v = v * g
    return v.double()


# ---- activation (re)quantization ---------------------------------------------------------------------


def _static_scale(spec: ActQuantSpec, expert: int | None, device) -> Tensor:
    """The static dequant scale as a 0-dim fp32 tensor (absent = 1)."""
    s = spec.static_scale
    if s is None:
        return torch.ones((), dtype=torch.float32, device=device)
    flat = s.float().reshape(-1).to(device)
    if flat.numel() == 1:
        return flat[0]
    if expert is None:
        raise ValueError(
            f"static_scale has {flat.numel()} entries (per expert) but no expert was given"
        )
    if not 0 <= expert < flat.numel():
        raise ValueError(f"expert must be in [0, {flat.numel()}), got {expert}")
    return flat[expert]


def _pad_cols(x: Tensor, multiple: int) -> Tensor:
    k = x.shape[-1]
    return torch.nn.functional.pad(x, (0, -(-k // multiple) * multiple - k))


def quantize_activation(
    x: Tensor,
    spec: ActQuantSpec,
    expert: int | None = None,
    compute_dtype: torch.dtype = torch.bfloat16,
) -> Tensor:
    """The float64 values a kernel sees after (re)quantizing the rows [R, K] of x (taken as
    fp32) per `spec`; `expert` (local index) picks a per-expert static scale."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(
            f"x must be a 2-D tensor [R, K], got {type(x).__name__} {getattr(x, 'shape', '')}"
        )
    xf = x.float()
    mode = ActQuant(spec.mode)
    k = xf.shape[1]
    if mode == ActQuant.None_:
        out = round_to_dtype(xf, compute_dtype)
    elif xf.numel() == 0:
        out = xf
    elif mode == ActQuant.Fp8Static:
        s = _static_scale(spec, expert, xf.device)
        out = e4m3_round(xf / s) * s
    elif mode == ActQuant.Fp8PerToken:
        out = dequantize_fp8(*quantize_fp8_per_token(xf))
    elif mode == ActQuant.Fp8PerGroup:
        g = int(spec.group_size)
        if g <= 0:
            raise ValueError(f"group_size must be > 0, got {g}")
        q, s = quantize_fp8_per_token_group(xf, g)
        out = dequantize_fp8(q, s, (1, g))
    elif mode == ActQuant.MxFp8:
        # Zero padding to whole 32-blocks never changes a block amax.
        q, sf = mxfp8_quantize(_pad_cols(xf, 32), is_sf_swizzled_layout=False)
        out = mxfp8_dequantize_host(q, sf, is_sf_swizzled_layout=False)[:, :k]
    elif mode == ActQuant.NvFp4:
        g = _static_scale(spec, expert, xf.device)
        xp = _pad_cols(xf, 16)
        q, sf = fp4_quantize(xp, g, 16, False, False, is_global_scale_inversed=True)
        out = e2m1_and_ufp8sf_scale_to_float(q, sf, g, 16, 1, False)[:, :k]
    else:  # pragma: no cover - IntEnum conversion above rejects unknown modes
        raise ValueError(f"unknown ActQuant mode {mode}")
    return out.double()


# ---- routing -----------------------------------------------------------------------------------------


def _topk_desc(keys: Tensor, k: int) -> Tensor:
    """Indices of the k largest keys per row, descending; equal keys -> lower index first."""
    return torch.sort(keys, dim=-1, descending=True, stable=True).indices[:, :k]


def _sigmoid32(x: Tensor) -> Tensor:
    return 1.0 / (1.0 + torch.exp(-x))


def _softmax32(x: Tensor) -> Tensor:
    e = torch.exp(x - x.amax(dim=-1, keepdim=True))
    return e / e.sum(dim=-1, keepdim=True)


def _seq_sum(x: Tensor) -> Tensor:
    """Sum over the k slots in slot order (fp32), [T, k] -> [T, 1]."""
    acc = x[:, :1].clone()
    for j in range(1, x.shape[1]):
        acc = acc + x[:, j : j + 1]
    return acc


def _precomputed(r: RoutingSpec, t: int, e: int, k: int) -> tuple[Tensor, Tensor]:
    ids = r.topk_ids
    if ids is None or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise TypeError(
            f"routing.topk_ids must be an integer tensor, got {None if ids is None else ids.dtype}"
        )
    if tuple(ids.shape) != (t, k):
        raise ValueError(f"routing.topk_ids must have shape {(t, k)}, got {tuple(ids.shape)}")
    if r.packed:
        words = ids.to(torch.int64) & 0xFFFFFFFF
        hi = (words >> 16) & 0xFFFF
        expert = torch.where(hi >= 0x8000, hi - 0x10000, hi)
        lo = words & 0xFFFF
        lo16 = torch.where(lo >= 0x8000, lo - 0x10000, lo).to(torch.int16)
        weights = lo16.view(torch.bfloat16).float()
    else:
        expert = ids.to(torch.int64)
        w = r.topk_weights
        if w is None or not w.is_floating_point():
            raise TypeError(
                "routing.topk_weights must be a float tensor when topk_ids is not packed"
            )
        if tuple(w.shape) != (t, k):
            raise ValueError(f"routing.topk_weights must have shape {(t, k)}, got {tuple(w.shape)}")
        weights = w.float()
    expert = torch.where((expert >= 0) & (expert < e), expert, torch.full_like(expert, -1))
    return expert, weights


def _deepseek(s: Tensor, r: RoutingSpec, bias: Tensor, k: int) -> tuple[Tensor, Tensor]:
    t, e = s.shape
    u = _sigmoid32(s)
    b = u + bias
    ng, tg = int(r.n_group or 0), int(r.topk_group or 0)
    keys = b
    if ng > 1:
        if e % ng != 0:
            raise ValueError(f"n_group={ng} must divide num_experts={e}")
        if not 1 <= tg <= ng:
            raise ValueError(f"topk_group must be in [1, n_group={ng}], got {tg}")
        if k > tg * (e // ng):
            raise ValueError(f"top_k={k} exceeds the {tg * (e // ng)} experts of the kept groups")
        grouped = b.reshape(t, ng, e // ng)
        top2 = torch.sort(grouped, dim=-1, descending=True).values[..., :2]
        gscore = top2[..., 0] + top2[..., 1] if e // ng > 1 else top2[..., 0]
        keep = torch.zeros(t, ng, dtype=torch.bool, device=s.device)
        keep.scatter_(1, _topk_desc(gscore, tg), True)
        mask = keep.repeat_interleave(e // ng, dim=1)
        keys = torch.where(mask, b, torch.full_like(b, -math.inf))
    idx = _topk_desc(keys, k)
    us = u.gather(1, idx)
    scale = torch.tensor(float(1.0 if r.routed_scaling_factor is None else r.routed_scaling_factor))
    return idx, us * scale / (_seq_sum(us) + 1e-20)


def reference_routing(
    routing: RoutingSpec, num_tokens: int, num_experts: int, top_k: int
) -> tuple[Tensor, Tensor]:
    """(global expert ids int64 [T, k], weights float64 [T, k]) per docs/semantics.md "Routing".

    All math in fp32, the weights widened at the end. Skipped precomputed slots get id -1 (their
    weight is returned as given). Method-specific limits raise ValueError.
    """
    t, e, k = int(num_tokens), int(num_experts), int(top_k)
    if e <= 0 or not 1 <= k <= e:
        raise ValueError(f"top_k must be in [1, num_experts={e}], got {k}")
    if routing.logits is None:
        ids, w = _precomputed(routing, t, e, k)
        return ids, w.double()
    s = routing.logits
    if not s.is_floating_point() or tuple(s.shape) != (t, e):
        raise ValueError(
            f"routing.logits must be a float tensor of shape {(t, e)}, got {s.dtype} {tuple(s.shape)}"
        )
    s = s.float()
    method = RoutingMethodType(routing.method)
    bias = torch.zeros(e) if routing.bias is None else routing.bias.float().reshape(-1)
    if bias.numel() != e:
        raise ValueError(f"routing.bias must have {e} entries, got {bias.numel()}")
    bias = bias.to(s.device)
    scale = torch.tensor(
        float(1.0 if routing.routed_scaling_factor is None else routing.routed_scaling_factor)
    )
    if method == RoutingMethodType.Default:
        p = _softmax32(s)
        idx = _topk_desc(p, k)
        w = p.gather(1, idx)
    elif method in (RoutingMethodType.Renormalize, RoutingMethodType.RenormalizeNaive):
        idx = _topk_desc(s, k)
        w = _softmax32(s.gather(1, idx))
    elif method == RoutingMethodType.TopK:
        idx = _topk_desc(s, k)
        w = s.gather(1, idx)
    elif method in (RoutingMethodType.Sigmoid, RoutingMethodType.SigmoidRenorm):
        sg = _sigmoid32(s)
        idx = _topk_desc(sg, k)
        w = sg.gather(1, idx)
        if method == RoutingMethodType.SigmoidRenorm and routing.norm_topk_prob:
            w = w / torch.clamp(_seq_sum(w), min=1e-20)
    elif method == RoutingMethodType.TopKSigmoid:
        idx = _topk_desc(s, k)
        w = _sigmoid32(s.gather(1, idx))
    elif method == RoutingMethodType.MiniMax2:
        sg = _sigmoid32(s)
        idx = _topk_desc(sg + bias, k)
        w = sg.gather(1, idx)
        w = w / (_seq_sum(w) + 1e-20) * scale
    elif method == RoutingMethodType.DeepSeekV3:
        idx, w = _deepseek(s, routing, bias, k)
    elif method == RoutingMethodType.Llama4:
        if k != 1:
            raise ValueError(f"Llama4 routing needs top_k == 1, got {k}")
        idx = _topk_desc(s, 1)
        w = _sigmoid32(s.gather(1, idx))
    elif method == RoutingMethodType.RoundRobin:
        flat = torch.arange(t * k, dtype=torch.int64, device=s.device).reshape(t, k)
        idx = flat % e
        w = _softmax32(s.gather(1, idx))
    else:
        raise ValueError(f"routing.method {method!r} is not a usable routing method")
    return idx.to(torch.int64), w.double()


# ---- the MoE layer ------------------------------------------------------------------------------------


class PermutedReference(NamedTuple):
    """Everything the reference computes besides the finalized output."""

    rows: Tensor  # float64 [T*k, H]: GEMM2 rows (incl. b2, no finalize weight) in permuted order
    expanded_to_permuted: Tensor  # int64 [T, k], -1 when not local, dropped or invalid
    topk_ids: Tensor  # int64 [T, k], global ids, -1 for skipped precomputed slots
    topk_weights: Tensor  # float64 [T, k] (fp32 values)
    output: Tensor  # float64 [T, H], the finalized sum before rounding to the output dtype
    # float64 [T*k, I]: the activation's output h per permuted row, before inter_quant (what
    # ``inter_output`` receives, rounded); rows past the kept ones are zero.
    intermediate: Tensor | None = None


def _silu(x: Tensor) -> Tensor:
    return x / (1.0 + torch.exp(-x))


def _gelu(x: Tensor) -> Tensor:
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _gelu_tanh(x: Tensor) -> Tensor:
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _tanh_cap(x: Tensor, cap: float) -> Tensor:
    """cap * tanh(x / cap); an infinite cap leaves x unchanged (its limit)."""
    return x if math.isinf(cap) else cap * torch.tanh(x / cap)


def _activate(acc: Tensor, p: MoeProblem, e: int) -> Tensor:
    act = ActivationType(p.activation)
    if act == ActivationType.InvalidType:
        raise ValueError("activation InvalidType is not an activation")

    def param(t: Tensor | None, default: float) -> float:
        return default if t is None else float(t.reshape(-1)[e])

    silu, gelu, gelu_tanh = _silu, _gelu, _gelu_tanh
    if not act.is_gated:
        table = {
            ActivationType.Gelu: gelu,
            ActivationType.Relu: torch.relu,
            ActivationType.Silu: silu,
            ActivationType.Relu2: lambda x: torch.relu(x) ** 2,
            ActivationType.Identity: lambda x: x,
        }
        return table[act](acc)
    i = acc.shape[1] // 2
    up, gate = acc[:, :i], acc[:, i:]
    if act == ActivationType.Swiglu:
        return silu(gate) * up
    if act == ActivationType.Geglu:
        return gelu(gate) * up
    if act == ActivationType.GegluTanh:
        return gelu_tanh(gate) * up
    if act == ActivationType.SwigluBias:
        alpha, beta, lim = (
            param(p.act_alpha, 1.0),
            param(p.act_beta, 0.0),
            param(p.act_limit, math.inf),
        )
        g = torch.clamp(gate, max=lim)
        u = torch.clamp(up, min=-lim, max=lim)
        return g * torch.sigmoid(alpha * g) * (u + beta)
    if act == ActivationType.Situ:
        gate_cap, linear_cap, lim = (
            param(p.act_alpha, DEFAULT_SITU_BETA),
            param(p.act_beta, DEFAULT_SITU_LINEAR_BETA),
            param(p.act_limit, math.inf),
        )
        g = torch.clamp(gate, max=lim)
        u = torch.clamp(up, min=-lim, max=lim)
        return _tanh_cap(g, gate_cap) * torch.sigmoid(g) * _tanh_cap(u, linear_cap)
    lim = param(p.act_limit, 7.0)  # SwigluStep
    return torch.clamp(silu(gate), max=lim) * torch.clamp(up, min=-lim, max=lim)


def _check_problem(p: MoeProblem) -> None:
    t, h, i = int(p.num_tokens), int(p.hidden_size), int(p.intermediate_size)
    el = int(p.local_num_experts)
    m1 = 2 * i if ActivationType(p.activation).is_gated else i
    if el <= 0 or p.local_expert_offset < 0 or p.local_expert_offset + el > p.num_experts:
        raise ValueError(
            f"local experts [{p.local_expert_offset}, {p.local_expert_offset + el}) must lie in "
            f"[0, num_experts={p.num_experts})"
        )
    if p.expert_capacity < 0:
        raise ValueError(f"expert_capacity must be >= 0, got {p.expert_capacity}")
    packed = (ElemFormat.E2M1Packed, ElemFormat.Int4Packed)
    k_in = h // 2 if ElemFormat(p.input.format) in packed else h
    if tuple(p.input.data.shape) != (t, k_in):
        raise ValueError(f"input.data must have shape {(t, k_in)}, got {tuple(p.input.data.shape)}")
    for name, q, rows, cols in (("w1", p.w1, m1, h), ("w2", p.w2, h, i)):
        c = cols // 2 if ElemFormat(q.format) in packed else cols
        if tuple(q.data.shape) != (el, rows, c):
            raise ValueError(
                f"{name}.data must have shape {(el, rows, c)}, got {tuple(q.data.shape)}"
            )
    for name, b, n in (("w1_bias", p.w1_bias, m1), ("w2_bias", p.w2_bias, h)):
        if b is not None and tuple(b.shape) != (el, n):
            raise ValueError(f"{name} must have shape {(el, n)}, got {tuple(b.shape)}")
    d = p.gemm1_delta
    if d is not None and tuple(d.shape) != (t, int(p.top_k), m1):
        raise ValueError(
            f"gemm1_delta must have shape {(t, int(p.top_k), m1)}, got {tuple(d.shape)}"
        )


def _keep_and_permute(p: MoeProblem, ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(local expert per kept assignment in permuted order, flat assignment index of each
    permuted row, expanded_to_permuted [T, k])."""
    t, k = ids.shape
    el, off = int(p.local_num_experts), int(p.local_expert_offset)
    flat = ids.reshape(-1)
    local = (flat >= off) & (flat < off + el)
    key = torch.where(local, flat - off, torch.full_like(flat, el))  # el = "not local", sorts last
    order = torch.sort(key, stable=True).indices  # by local expert, then (token, slot)
    sorted_key = key[order]
    counts = torch.bincount(sorted_key, minlength=el + 1)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(flat.numel(), device=flat.device) - starts[sorted_key]
    kept = sorted_key < el
    if p.expert_capacity > 0:
        kept &= rank < int(p.expert_capacity)
    rows_flat = order[kept]
    e2p = torch.full((t * k,), -1, dtype=torch.int64, device=flat.device)
    e2p[rows_flat] = torch.arange(rows_flat.numel(), dtype=torch.int64, device=flat.device)
    return sorted_key[kept], rows_flat, e2p.reshape(t, k)


def reference_moe_permuted(problem: MoeProblem) -> PermutedReference:
    """Run the reference and return the GEMM2 rows in permuted order, the index map, the routing
    and the finalized float64 output (see `PermutedReference`)."""
    p = problem
    _check_problem(p)
    t, h, k = int(p.num_tokens), int(p.hidden_size), int(p.top_k)
    ids, w = reference_routing(p.routing, t, p.num_experts, k)
    row_expert, rows_flat, e2p = _keep_and_permute(p, ids)
    w1, w2 = dequantize(p.w1), dequantize(p.w2)
    b1 = None if p.w1_bias is None else p.w1_bias.double()
    b2 = None if p.w2_bias is None else p.w2_bias.double()
    delta = None if p.gemm1_delta is None else p.gemm1_delta.double()
    quantized_input = ElemFormat(p.input.format) != ElemFormat.Float
    per_expert_input = not quantized_input and (
        ActQuant(p.input_quant.mode) in (ActQuant.Fp8Static, ActQuant.NvFp4)
        and p.input_quant.static_scale is not None
        and p.input_quant.static_scale.numel() > 1
    )
    if quantized_input:
        x_all = dequantize(p.input)
    elif not per_expert_input:
        x_all = quantize_activation(p.input.data, p.input_quant, None, p.compute_dtype)
    rows = torch.zeros(t * k, h, dtype=torch.float64, device=w1.device)
    inter = torch.zeros(t * k, int(p.intermediate_size), dtype=torch.float64, device=w1.device)
    tok_of_row, slot_of_row = rows_flat // k, rows_flat % k
    w_of_row = w.reshape(-1)[rows_flat]
    bounds = torch.cumsum(
        torch.bincount(row_expert, minlength=int(p.local_num_experts)), 0
    ).tolist()
    start = 0
    for e, end in enumerate(bounds):
        if end == start:
            continue
        toks = tok_of_row[start:end]
        if per_expert_input:
            x = quantize_activation(p.input.data[toks], p.input_quant, e, p.compute_dtype)
        else:
            x = x_all[toks]
        acc1 = x @ w1[e].T
        if p.routing_weight_on_input:
            acc1 = acc1 * w_of_row[start:end].unsqueeze(1)
        if b1 is not None:
            acc1 = acc1 + b1[e]
        if delta is not None:
            acc1 = acc1 + delta[toks, slot_of_row[start:end]]
        act = _activate(acc1, p, e)
        inter[start:end] = act
        hid = quantize_activation(act, p.inter_quant, e, p.compute_dtype)
        acc2 = hid @ w2[e].T
        if b2 is not None:
            acc2 = acc2 + b2[e]
        rows[start:end] = acc2
        start = end
    n = rows_flat.numel()
    fin_w = (
        torch.ones(n, dtype=torch.float64, device=rows.device)
        if p.routing_weight_on_input
        else w_of_row
    )
    out = torch.zeros(t, h, dtype=torch.float64, device=rows.device)
    # Adding slot by slot keeps the contract's j = 0..k-1 order (exact anyway in float64).
    for j in range(k):
        sel = slot_of_row == j
        out.index_add_(0, tok_of_row[sel], rows[:n][sel] * fin_w[sel].unsqueeze(1))
    return PermutedReference(rows, e2p, ids, w, out, inter)


def reference_moe(problem: MoeProblem) -> Tensor:
    """float64 [T, H]: the finalized MoE output before rounding to the output dtype."""
    return reference_moe_permuted(problem).output
