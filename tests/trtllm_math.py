"""flashinfer's trtllm_* math in float64 and its weight preparation recipe, for the API tests.

Written from shared/reference/flashinfer_api.md section 5, never from the library's canonical
problem or reference: activations, routing, the float64 MoE sum ``moe64``, the NvFP4
requantization of the GEMM1 output (the e4m3 and MXFP8 ones are in tests/quant_models.py), the
preparation recipe (gated row interleave, epilogue shuffle, BlockMajorK, 128x4 scale
interleave), the shared problem sizes and the quantized test cases (FP8 per-tensor, DeepSeek FP8
block, FP4 weights).
Used by test_api_trtllm.py, test_api_trtllm_fp8.py and test_api_trtllm_fp4.py.
"""

from __future__ import annotations

import torch
from flashinfer.fused_moe.enums import (
    RoutingMethodType,
)
from flashinfer.fused_moe.layout import (
    convert_to_block_layout,
    reorder_rows_for_gated_act_gemm,
    shuffle_matrix_a,
)
from flashinfer.quantization import (
    block_scale_interleave,
    fp4_quantize,
    quantize_fp8_block,
    quantize_fp8_per_token_group,
)
from flashinfer.quantization.codecs import e2m1_round, e4m3_round
from numeric import rand_float

F64, BF16, E4M3 = torch.float64, torch.bfloat16, torch.float8_e4m3fn
T, E, K = 6, 4, 2
RENORM = int(RoutingMethodType.Renormalize)


# ---- flashinfer's math in float64 ----------------------------------------------------------------


def silu(x):
    return x / (1 + torch.exp(-x))


def swiglu(a, alpha=1.0, beta=0.0, limit=float("inf")):
    """a = [up ; gate] GEMM1 output; the clamped form is flashinfer's gpt-oss SwiGLU."""
    up, gate = a.chunk(2)
    gate, up = gate.clamp(max=limit), up.clamp(-limit, limit)
    return gate * torch.sigmoid(alpha * gate) * (up + beta)


def relu2(a):
    return torch.relu(a) ** 2


def situ(a, alpha=1.0, beta=1.0, limit=float("inf")):
    """trtllm-gen's SiTU (activation_type 10) on a = [x0 = linear / up ; x1 = gate]: x0 clamped
    to +-limit and x1 from above, then beta tanh(x0 / beta) * alpha tanh(x1 / alpha) sigmoid(x1)
    (gemm1_alpha = alpha, gemm1_beta = beta, both 1 by default)."""
    x0, x1 = a.chunk(2)
    x0, x1 = x0.clamp(-limit, limit), x1.clamp(max=limit)
    return beta * torch.tanh(x0 / beta) * alpha * torch.tanh(x1 / alpha) * torch.sigmoid(x1)


def renormalize_routing(logits):
    # Equal logits rank by the lower expert index, as the executors do (docs/semantics.md):
    # torch.topk leaves the order of ties open, a stable descending sort does not.
    values, indices = torch.sort(logits.double(), dim=1, descending=True, stable=True)
    return indices[:, :K], torch.softmax(values[:, :K], dim=1)


def moe64(ids, weights, expert_fn, hidden, offset=0, n_local=E, weight_on_input=False):
    """out[t] = sum_j w[t, j] * expert(t, local e) over local experts, in float64."""
    out = torch.zeros(ids.shape[0], hidden, dtype=F64)
    for t in range(ids.shape[0]):
        for j in range(ids.shape[1]):
            e = int(ids[t, j]) - offset
            if 0 <= e < n_local:
                w = float(weights[t, j])
                out[t] += expert_fn(t, e, w) if weight_on_input else w * expert_fn(t, e, None)
    return out


def nvfp4_requant(y):
    """NvFP4 of the kernel's FC1 output (already in quantized units): sf = e4m3(amax / 6)."""
    g = y.float().reshape(-1, 16)
    sf = e4m3_round(g.abs().amax(dim=1, keepdim=True) / 6.0)
    q = torch.where(
        sf > 0, e2m1_round(g / torch.where(sf > 0, sf, torch.ones_like(sf))), torch.zeros_like(g)
    )
    return (q * sf).reshape(-1).double()


# ---- flashinfer's weight preparation recipe -------------------------------------------------------


def prepare_rows(m, tile, gated):
    """One matrix (any dtype): gated row interleave, then the epilogue shuffle, on its bytes."""
    u = m.contiguous().view(torch.uint8) if m.dtype != torch.uint8 else m.contiguous()
    if gated:
        u = reorder_rows_for_gated_act_gemm(u)
    return shuffle_matrix_a(u, tile).view(m.dtype)


def prepare_stack(w, tile=128, gated=False, block_major_k=False):
    mats = []
    for e in range(w.shape[0]):
        u = prepare_rows(w[e], tile, gated).view(torch.uint8)
        mats.append(convert_to_block_layout(u, 128) if block_major_k else u)
    return torch.stack(mats).view(w.dtype)


def prepare_scales(sf, gated):
    """Linear scale rows [E, M, C]: the weights' row permutation, then 128x4 interleave."""
    out = [
        block_scale_interleave(prepare_rows(sf[e], 128, gated)).reshape(sf.shape[1:])
        for e in range(sf.shape[0])
    ]
    return torch.stack(out)


def common(num_local=E, offset=0, i=64):
    return dict(num_experts=E, top_k=K, n_group=None, topk_group=None,
        intermediate_size=i, local_expert_offset=offset, local_num_experts=num_local,
        routed_scaling_factor=None)  # fmt: skip


def packed_words(ids, w):
    return (ids.to(torch.int32) << 16) | (w.to(BF16).view(torch.int16).to(torch.int32) & 0xFFFF)


# ---- quantized test cases (flashinfer's recipes) ----------------------------------------


def fp8_per_tensor_case(seed, gated, h=128, i=64):
    """flashinfer's per-tensor recipe: quant multipliers hs, w1[e], w2[e], c; x_q = e4m3(x * hs)."""
    m1 = 2 * i if gated else i
    x = rand_float((T, h), torch.float32, seed)
    w1 = rand_float((E, m1, h), torch.float32, seed + 1, h**-0.5)
    w2 = rand_float((E, h, i), torch.float32, seed + 2, i**-0.5)
    hs = 448.0 / x.abs().max()
    w1_gs = 448.0 / w1.abs().amax(dim=(1, 2))
    w2_gs = 448.0 / w2.abs().amax(dim=(1, 2))
    c = torch.tensor(40.0)
    xq = (x * hs).to(E4M3)
    w1q = (w1 * w1_gs[:, None, None]).to(E4M3)
    w2q = (w2 * w2_gs[:, None, None]).to(E4M3)
    gate = 1.0 / (w1_gs * hs)
    out1 = c * gate if gated else c.expand(E).clone()
    out2 = 1.0 / (c * w2_gs)
    return xq, w1q, w2q, out1.float(), gate.float(), out2.float()


def deepseek_case(seed, h=128, i=128, e=E):
    x = rand_float((T, h), torch.float32, seed)
    w1 = rand_float((e, 2 * i, h), torch.float32, seed + 1, h**-0.5)
    w2 = rand_float((e, h, i), torch.float32, seed + 2, i**-0.5)
    xq, xs = quantize_fp8_per_token_group(x, 128)  # xs [T, H/128]
    (w1q, w1s), (w2q, w2s) = quantize_fp8_block(w1), quantize_fp8_block(w2)
    return xq, xs, w1q, w1s, w2q, w2s


def mx_dequant(q, sf):
    return q.double() * torch.exp2(sf.double() - 127).repeat_interleave(32, -1)


def fp4_weights(w, sfv, gated, global_scale=None):
    """fp4_quantize per expert with linear scales -> (packed, linear scales, prepared packed,
    prepared scales [E, M, K/sfv] holding the 128x4-swizzled bytes), flashinfer's recipe."""
    packed, scales = [], []
    for e in range(w.shape[0]):
        gs = None if global_scale is None else global_scale[e]
        q, sf = fp4_quantize(w[e], gs, sfv, sfv == 32, is_sf_swizzled_layout=False)
        packed.append(q)
        scales.append(sf.reshape(w.shape[1], -1))
    packed, scales = torch.stack(packed), torch.stack(scales)
    return (packed, scales, prepare_stack(packed, gated=gated), prepare_scales(scales,
        gated).view(E4M3))  # fmt: skip
