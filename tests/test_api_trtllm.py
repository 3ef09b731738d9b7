"""The public trtllm_* functions (full forms, routed variants, seed-form dispatch).

Each test builds weights with the quantization helpers and flashinfer's preparation recipe
(MajorK, or rows interleaved + shuffled, BlockMajorK, 128x4-swizzled scales), runs the public
function and compares with a float64 computation of flashinfer's documented math for that path,
written here from shared/reference/flashinfer_api.md section 5 (raw accumulators of the codes,
the three output scalars, requantization of the GEMM1 output as the kernel does it). It never
uses the canonical problem or its reference, so a translation error shows up as a mismatch.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from flashinfer.fused_moe import api_trtllm as api
from flashinfer.fused_moe.enums import (
    ActivationType,
    Fp8QuantizationType,
    RoutingMethodType,
    WeightLayout,
)
from flashinfer.fused_moe.layout import (
    convert_to_block_layout,
    reorder_rows_for_gated_act_gemm,
    shuffle_matrix_a,
)
from flashinfer.quantization import (
    block_scale_interleave,
    e2m1_and_ufp8sf_scale_to_float,
    fp4_quantize,
    mxfp8_quantize,
    quantize_fp8_block,
    quantize_fp8_per_token_group,
)
from flashinfer.quantization.codecs import e2m1_round, e4m3_round
from numeric import assert_close_to_reference, rand_float

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


def renormalize_routing(logits):
    top = torch.topk(logits.double(), K, dim=1)
    return top.indices, torch.softmax(top.values, dim=1)


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


def e4m3_requant_per_group(h, group):
    """DeepSeek's activation kernel: per token and 128 columns, s = amax / 448 (fp32)."""
    g = h.float().reshape(-1, group)
    s = g.abs().amax(dim=1, keepdim=True) / 448.0
    s = torch.where(s == 0, torch.ones_like(s), s)
    return ((g / s).to(E4M3).float() * s).reshape(-1).double()


def mx_requant(h):
    """MXFP8 of a row: e4m3 codes with power-of-two scales 2^ceil(log2(amax / 448)) per 32."""
    g = h.float().reshape(-1, 32)
    amax = g.abs().amax(dim=1, keepdim=True)
    s = torch.where(
        amax > 0, torch.exp2(torch.ceil(torch.log2(amax / 448.0))), torch.ones_like(amax)
    )
    return ((g / s).to(E4M3).float() * s).reshape(-1).double()


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


# ---- BF16 ------------------------------------------------------------------------------------------


def bf16_case(seed, act=ActivationType.Swiglu, h=128, i=64):
    gated = act == ActivationType.Swiglu
    m1 = 2 * i if gated else i
    x = rand_float((T, h), BF16, seed)
    w1 = rand_float((E, m1, h), BF16, seed + 1, h**-0.5)
    w2 = rand_float((E, h, i), BF16, seed + 2, i**-0.5)
    logits = rand_float((T, E), torch.float32, seed + 3)
    return x, w1, w2, logits


def bf16_expected(x, w1, w2, ids, w, act, offset=0, n_local=E, **clamp):
    def expert(t, e, _):
        a = w1[e].double() @ x[t].double()
        hid = swiglu(a, **clamp) if act == ActivationType.Swiglu else relu2(a)
        return w2[e].double() @ hid.to(BF16).double()  # the GEMM1 output is bf16

    return moe64(ids, w, expert, x.shape[1], offset, n_local)


@pytest.mark.parametrize("act", [ActivationType.Swiglu, ActivationType.Relu2])
@pytest.mark.parametrize("prepared", [False, True])
def test_bf16_moe_layouts(act, prepared):
    x, w1, w2, logits = bf16_case(10, act)
    if prepared:  # flashinfer's default: shuffled + BlockMajorK
        g1, g2 = (
            prepare_stack(w1, gated=act.is_gated, block_major_k=True),
            prepare_stack(w2, block_major_k=True),
        )
        assert g1.shape == (E, 128 // 64, w1.shape[1], 64)
        layout = dict()
    else:
        g1, g2 = w1, w2
        layout = dict(use_shuffled_weight=False, weight_layout=WeightLayout.MajorK)
    before = [t.clone() for t in (x, g1, g2, logits)]
    out = api.trtllm_bf16_moe(logits, None, x, g1, g2, **common(),
        routing_method_type=RENORM, activation_type=act, **layout)  # fmt: skip
    assert out.dtype == BF16 and out.shape == x.shape
    ids, w = renormalize_routing(logits)
    assert_close_to_reference(out, bf16_expected(x, w1, w2, ids, w, act), rel_l2=1e-2)
    for a, b in zip(before, (x, g1, g2, logits)):
        assert torch.equal(a.view(torch.uint8), b.view(torch.uint8)), "an input was modified"


def test_bf16_swiglu_clamp_parameters():
    x, w1, w2, logits = bf16_case(20)
    alpha, beta, limit = (torch.full((E,), v) for v in (1.702, 1.0, 0.5))
    out = api.trtllm_bf16_moe(logits, None, x, w1, w2, **common(),
        routing_method_type=RENORM, use_shuffled_weight=False, weight_layout=0,
        gemm1_alpha=alpha, gemm1_beta=beta, gemm1_clamp_limit=limit)  # fmt: skip
    ids, w = renormalize_routing(logits)
    ref = bf16_expected(x, w1, w2, ids, w, ActivationType.Swiglu, alpha=1.702, beta=1.0, limit=0.5)
    assert_close_to_reference(out, ref, rel_l2=1e-2)


def packed_words(ids, w):
    return (ids.to(torch.int32) << 16) | (w.to(BF16).view(torch.int16).to(torch.int32) & 0xFFFF)


@pytest.mark.parametrize("packed", [True, False])
def test_bf16_routed_with_expert_parallelism(packed, gen):
    x, w1, w2, _ = bf16_case(30)
    ids = torch.stack([torch.randperm(E, generator=gen)[:K] for _ in range(T)]).to(torch.int32)
    w = torch.rand(T, K, generator=gen) + 0.1
    ids[0, 1] = E  # an id outside [0, num_experts) is skipped
    offset, n_local = 1, 2  # this rank owns experts 1 and 2
    topk = packed_words(ids, w) if packed else (ids, w)
    out = api.trtllm_bf16_routed_moe(topk, x, w1[offset : offset + n_local],
        w2[offset : offset + n_local], **common(n_local, offset),
        use_shuffled_weight=False, weight_layout=0)  # fmt: skip
    w_used = w.to(BF16).double() if packed else w.double()  # packed weights travel as bf16
    ref = bf16_expected(
        x, w1[offset:], w2[offset:], ids, w_used, ActivationType.Swiglu, offset, n_local
    )
    assert_close_to_reference(out, ref, rel_l2=1e-2)


def test_bf16_without_finalize_and_outputs():
    x, w1, w2, logits = bf16_case(40)
    kw = dict(routing_method_type=RENORM, use_shuffled_weight=False, weight_layout=0)
    replay = torch.full((T + 3, K), -7, dtype=torch.int16)
    gemm2, weights, e2p = api.trtllm_bf16_moe(logits, None, x, w1[:3], w2[:3],
        **common(3), do_finalize=False, routing_replay_out=replay, **kw)  # fmt: skip
    ids, w = renormalize_routing(logits)
    assert gemm2.dtype == BF16 and gemm2.shape == (T * K, x.shape[1])
    assert weights.dtype == BF16 and e2p.dtype == torch.int32 and e2p.shape == (T, K)
    assert torch.equal(replay[:T].long(), ids) and (replay[T:] == -7).all()
    assert_close_to_reference(weights, w, rel_l2=4e-3)
    assert ((e2p >= 0) == (ids < 3)).all(), "non-local slots must map to -1"
    # Finalizing the permuted rows by hand gives the fused output.
    fin = torch.zeros(T, x.shape[1], dtype=F64)
    for t in range(T):
        for j in range(K):
            if e2p[t, j] >= 0:
                fin[t] += w[t, j] * gemm2[e2p[t, j]].double()
    ref = bf16_expected(x, w1, w2, ids, w, ActivationType.Swiglu, n_local=3)
    assert_close_to_reference(fin, ref, rel_l2=1e-2)
    out = torch.empty(T, x.shape[1], dtype=BF16)
    res = api.trtllm_bf16_moe(logits, None, x, w1[:3], w2[:3], **common(3), output=out, **kw)
    assert res is out
    assert_close_to_reference(out, ref, rel_l2=1e-2)


def test_zero_tokens_give_empty_output():
    x, w1, w2, logits = bf16_case(50)
    out = api.trtllm_bf16_moe(logits[:0], None, x[:0], w1, w2, **common(),
        routing_method_type=RENORM, use_shuffled_weight=False, weight_layout=0)  # fmt: skip
    assert out.shape == (0, x.shape[1]) and out.dtype == BF16


# ---- FP8 per-tensor ----------------------------------------------------------------------------------


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


def fp8_per_tensor_expected(xq, w1q, w2q, out1, gate, out2, ids, w, gated, weight_on_input=False):
    def expert(t, e, w_in):
        acc = w1q[e].double() @ xq[t].double()  # raw accumulator of the codes
        if w_in is not None:
            acc = acc * w_in
        if gated:
            up, g = acc.chunk(2)
            y1 = silu(g * gate[e].double()) * up * out1[e].double()
        else:
            y1 = relu2(acc * gate[e].double()) * out1[e].double()
        q = y1.float().to(E4M3).double()  # FC1 output requantized to e4m3 with no extra scale
        return (w2q[e].double() @ q) * out2[e].double()

    return moe64(ids, w, expert, xq.shape[1], weight_on_input=weight_on_input)


@pytest.mark.parametrize("gated", [True, False])
@pytest.mark.parametrize("shuffled", [True, False])
def test_fp8_per_tensor_scale_moe(gated, shuffled):
    xq, w1q, w2q, out1, gate, out2 = fp8_per_tensor_case(60, gated)
    logits = rand_float((T, E), torch.float32, 61)
    act = ActivationType.Swiglu if gated else ActivationType.Relu2
    g1 = prepare_stack(w1q, gated=gated) if shuffled else w1q
    g2 = prepare_stack(w2q) if shuffled else w2q
    out = api.trtllm_fp8_per_tensor_scale_moe(logits, None, xq, g1, out1, gate, g2,
        out2, **common(), use_routing_scales_on_input=False,
        routing_method_type=RENORM, activation_type=act, use_shuffled_weight=shuffled)  # fmt: skip
    ids, w = renormalize_routing(logits)
    ref = fp8_per_tensor_expected(xq, w1q, w2q, out1, gate, out2, ids, w, gated)
    assert_close_to_reference(out, ref, rel_l2=2e-2)


def test_fp8_per_tensor_llama4_routing_scales_on_input():
    xq, w1q, w2q, out1, gate, out2 = fp8_per_tensor_case(70, True)
    logits = rand_float((T, E), BF16, 71)
    kw = dict(common(), top_k=1)
    out = api.trtllm_fp8_per_tensor_scale_moe(logits, None, xq, prepare_stack(w1q,
        gated=True), out1, gate, prepare_stack(w2q), out2, **kw,
        use_routing_scales_on_input=True,
        routing_method_type=RoutingMethodType.Llama4)  # fmt: skip
    top = logits.double().max(dim=1)
    ids, w = top.indices[:, None], torch.sigmoid(top.values)[:, None]
    ref = fp8_per_tensor_expected(
        xq, w1q, w2q, out1, gate, out2, ids, w, True, weight_on_input=True
    )
    assert_close_to_reference(out, ref, rel_l2=2e-2)


def test_fp8_per_tensor_routed_packed(gen):
    xq, w1q, w2q, out1, gate, out2 = fp8_per_tensor_case(80, True)
    ids = torch.stack([torch.randperm(E, generator=gen)[:K] for _ in range(T)]).to(torch.int32)
    w = (torch.rand(T, K, generator=gen) + 0.1).to(BF16)
    out = api.trtllm_fp8_per_tensor_scale_routed_moe(packed_words(ids, w), None, xq,
        prepare_stack(w1q, gated=True), out1, gate, prepare_stack(w2q), out2,
        **common(), use_routing_scales_on_input=False)  # fmt: skip
    ref = fp8_per_tensor_expected(xq, w1q, w2q, out1, gate, out2, ids, w.double(), True)
    assert_close_to_reference(out, ref, rel_l2=2e-2)


# ---- FP8 block scale ------------------------------------------------------------------------------------


def deepseek_case(seed, h=128, i=128):
    x = rand_float((T, h), torch.float32, seed)
    w1 = rand_float((E, 2 * i, h), torch.float32, seed + 1, h**-0.5)
    w2 = rand_float((E, h, i), torch.float32, seed + 2, i**-0.5)
    xq, xs = quantize_fp8_per_token_group(x, 128)  # xs [T, H/128]
    (w1q, w1s), (w2q, w2s) = quantize_fp8_block(w1), quantize_fp8_block(w2)
    return xq, xs, w1q, w1s, w2q, w2s


def block_dequant(q, s, bm, bk):
    return (q.double() * s.double() .repeat_interleave(bm, -2)[..., : q.shape[-2],
        :] .repeat_interleave(bk, -1)[..., : q.shape[-1]] )  # fmt: skip


def deepseek_expected(xq, xs, w1q, w1s, w2q, w2s, ids, w, offset=0, n_local=E, **clamp):
    x = block_dequant(xq, xs, 1, 128)
    w1, w2 = block_dequant(w1q, w1s, 128, 128), block_dequant(w2q, w2s, 128, 128)

    def expert(t, e, _):
        return w2[e] @ e4m3_requant_per_group(swiglu(w1[e] @ x[t], **clamp), 128)

    return moe64(ids, w, expert, xq.shape[1], offset, n_local)


@pytest.mark.parametrize("layout", ["major_k", "shuffled", "block_major_k"])
def test_fp8_block_scale_deepseek(layout):
    xq, xs, w1q, w1s, w2q, w2s = deepseek_case(90)
    logits = rand_float((T, E), torch.float32, 91)
    shuffled, bmk = layout != "major_k", layout == "block_major_k"
    g1 = prepare_stack(w1q, tile=64, block_major_k=bmk) if shuffled else w1q  # no row interleave
    g2 = prepare_stack(w2q, tile=64, block_major_k=bmk) if shuffled else w2q
    out = api.trtllm_fp8_block_scale_moe(logits, None, xq, xs.t().contiguous(), g1,
        w1s, g2, w2s, **common(i=128), routing_method_type=RENORM,
        use_shuffled_weight=shuffled,
        weight_layout=WeightLayout.BlockMajorK if bmk else WeightLayout.MajorK)  # fmt: skip
    ids, w = renormalize_routing(logits)
    assert_close_to_reference(
        out, deepseek_expected(xq, xs, w1q, w1s, w2q, w2s, ids, w), rel_l2=2e-2
    )


def test_fp8_block_scale_deepseek_v3_grouped_routing_and_ep():
    xq, xs, w1q, w1s, w2q, w2s = deepseek_case(100)
    logits = rand_float((T, E), torch.float32, 101)
    bias = rand_float((E,), BF16, 102, 0.1)
    offset, n_local = 2, 2
    out = api.trtllm_fp8_block_scale_moe(logits, bias, xq, xs.t().contiguous(),
        w1q[offset:], w1s[offset:], w2q[offset:], w2s[offset:], **dict(common(n_local,
        offset, 128), n_group=2, topk_group=1, routed_scaling_factor=2.5),
        routing_method_type=RoutingMethodType.DeepSeekV3)  # fmt: skip
    # DeepSeekV3: groups of 2 experts scored by their top-2 biased sigmoid, keep 1 group.
    u = torch.sigmoid(logits.double())
    b = u + bias.double()
    best_group = b.reshape(T, 2, 2).sum(-1).argmax(dim=1)
    masked = torch.where(
        torch.arange(E)[None, :] // 2 == best_group[:, None], b, torch.tensor(-torch.inf, dtype=F64)
    )
    ids = torch.topk(masked, K, dim=1).indices
    sel = u.gather(1, ids)
    w = sel * 2.5 / (sel.sum(1, keepdim=True) + 1e-20)
    ref = deepseek_expected(
        xq, xs, w1q[offset:], w1s[offset:], w2q[offset:], w2s[offset:], ids, w, offset, n_local
    )
    assert_close_to_reference(out, ref, rel_l2=2e-2)


def test_fp8_block_scale_deepseek_routed_unpacked_without_finalize(gen):
    xq, xs, w1q, w1s, w2q, w2s = deepseek_case(110)
    ids = torch.stack([torch.randperm(E, generator=gen)[:K] for _ in range(T)]).to(torch.int32)
    w = torch.rand(T, K, generator=gen) + 0.1
    gemm2, weights, e2p = api.trtllm_fp8_block_scale_routed_moe((ids, w), None, xq,
        xs.t().contiguous(), w1q, w1s, w2q, w2s, **common(i=128), do_finalize=False)  # fmt: skip
    assert weights is w  # caller-supplied fp32 weights come back as they are
    assert sorted(e2p.flatten().tolist()) == list(range(T * K))
    fin = torch.zeros(T, xq.shape[1], dtype=F64)
    for t in range(T):
        for j in range(K):
            fin[t] += w[t, j] * gemm2[e2p[t, j]].double()
    assert_close_to_reference(
        fin, deepseek_expected(xq, xs, w1q, w1s, w2q, w2s, ids, w), rel_l2=2e-2
    )


def mx_weights(w, gated):
    """flashinfer's MxFp8 recipe: linear mxfp8_quantize, interleave + shuffle codes and scales."""
    codes, scales, prepared = [], [], []
    for e in range(w.shape[0]):
        q, sf = mxfp8_quantize(w[e], is_sf_swizzled_layout=False)
        codes.append(q)
        scales.append(sf.reshape(w.shape[1], -1))
    codes, scales = torch.stack(codes), torch.stack(scales)
    for e in range(w.shape[0]):
        sf = scales[e]
        prepared.append(block_scale_interleave(prepare_rows(sf, 128, gated)))
    return codes, scales, prepare_stack(codes, gated=gated), torch.stack(prepared)


def mx_dequant(q, sf):
    return q.double() * torch.exp2(sf.double() - 127).repeat_interleave(32, -1)


@pytest.mark.parametrize("shuffled", [True, False])
def test_fp8_block_scale_mxfp8(shuffled):
    h, i = 128, 128
    x = rand_float((T, h), torch.float32, 120)
    w1 = rand_float((E, 2 * i, h), torch.float32, 121, h**-0.5)
    w2 = rand_float((E, h, i), torch.float32, 122, i**-0.5)
    xq, xsf = mxfp8_quantize(x, is_sf_swizzled_layout=False)
    w1q, w1sf, g1, g1sf = mx_weights(w1, True)
    w2q, w2sf, g2, g2sf = mx_weights(w2, False)
    logits = rand_float((T, E), torch.float32, 123)
    out = api.trtllm_fp8_block_scale_moe(logits, None, xq, xsf.reshape(T, -1), *((g1,
        g1sf, g2, g2sf) if shuffled else (w1q, w1sf, w2q, w2sf)), **common(i=i),
        routing_method_type=RENORM, use_shuffled_weight=shuffled, weight_layout=0,
        fp8_quantization_type=Fp8QuantizationType.MxFp8)  # fmt: skip
    xd, w1d, w2d = mx_dequant(xq, xsf.reshape(T, -1)), mx_dequant(w1q, w1sf), mx_dequant(w2q, w2sf)
    ids, w = renormalize_routing(logits)
    ref = moe64(ids, w, lambda t, e, _: w2d[e] @ mx_requant(swiglu(w1d[e] @ xd[t])), h)
    assert_close_to_reference(out, ref, rel_l2=2e-2)


# ---- FP4 block scale ------------------------------------------------------------------------------------


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


def fp4_raw(packed, sf, sfv):
    """e2m1 code * block scale (the kernel's raw operand, before any global scale)."""
    flat = e2m1_and_ufp8sf_scale_to_float(packed.reshape(-1, packed.shape[-1]),
        sf.reshape(-1, sf.shape[-1]), None, sfv, 1 if sfv == 16 else 0,
        is_sf_swizzled_layout=False)  # fmt: skip
    return flat.reshape(*packed.shape[:-1], -1).double()


@pytest.mark.parametrize("shuffled", [True, False])
def test_fp4_nvfp4_with_biases(shuffled):
    h, i = 128, 64
    x = rand_float((T, h), torch.float32, 130)
    w1 = rand_float((E, 2 * i, h), torch.float32, 131, h**-0.5)
    w2 = rand_float((E, h, i), torch.float32, 132, i**-0.5)
    hs = 448.0 * 6 / x.abs().max()
    w1_gs = 448.0 * 6 / w1.abs().amax(dim=(1, 2))
    w2_gs = 448.0 * 6 / w2.abs().amax(dim=(1, 2))
    c = torch.tensor(448.0 * 6 / 4.0)  # FC1 output global scale, fixed offline
    xq, xsf = fp4_quantize(x, hs, 16, False, is_sf_swizzled_layout=False)
    w1q, w1sf, g1, g1sf = fp4_weights(w1, 16, True, w1_gs)
    w2q, w2sf, g2, g2sf = fp4_weights(w2, 16, False, w2_gs)
    gate = (1.0 / (w1_gs * hs)).float()
    out1, out2 = (c * gate).float(), (1.0 / (c * w2_gs)).float()
    b1_real, b2_real = (
        rand_float((E, 2 * i), torch.float32, 133, 0.3),
        rand_float((E, h), torch.float32, 134, 0.3),
    )
    b1_raw, b2_raw = (
        b1_real / gate[:, None],
        b2_real / out2[:, None],
    )  # the caller's raw-accumulator units
    if shuffled:
        gb1 = torch.stack([prepare_rows(b1_raw[e][:, None], 128, True)[:, 0] for e in range(E)])
        gb2 = torch.stack([prepare_rows(b2_raw[e][:, None], 128, False)[:, 0] for e in range(E)])
        args = (g1, g1sf, gb1, None, None, None, g2, g2sf, gb2)
    else:
        args = (w1q, w1sf.view(E4M3), b1_raw, None, None, None, w2q, w2sf.view(E4M3), b2_raw)
    logits = rand_float((T, E), torch.float32, 135)
    res = api.trtllm_fp4_block_scale_moe(logits, None, xq, xsf.view(E4M3), *args,
        out1, gate, out2, **common(), routing_method_type=RENORM,
        use_shuffled_weight=shuffled)  # fmt: skip
    assert isinstance(res, list) and len(res) == 1
    xr, w1r, w2r = fp4_raw(xq, xsf, 16), fp4_raw(w1q, w1sf, 16), fp4_raw(w2q, w2sf, 16)

    def expert(t, e, _):
        up, g = (w1r[e] @ xr[t] + b1_raw[e].double()).chunk(2)
        y1 = silu(g * gate[e].double()) * up * out1[e].double()
        return (w2r[e] @ nvfp4_requant(y1) + b2_raw[e].double()) * out2[e].double()

    ids, w = renormalize_routing(logits)
    assert_close_to_reference(res[0], moe64(ids, w, expert, h), rel_l2=3e-2)


@pytest.mark.parametrize("act_kind", ["mxfp8", "bf16"])
def test_fp4_mxfp4_weights_routed(act_kind, gen):
    h, i = 128, 128
    x = rand_float((T, h), torch.float32, 140)
    w1 = rand_float((E, 2 * i, h), torch.float32, 141, h**-0.5)
    w2 = rand_float((E, h, i), torch.float32, 142, i**-0.5)
    w1q, w1sf, g1, g1sf = fp4_weights(w1, 32, True)
    w2q, w2sf, g2, g2sf = fp4_weights(w2, 32, False)
    alpha, beta, limit = (torch.full((E,), v) for v in (1.702, 1.0, 7.0))
    if act_kind == "mxfp8":
        xq, xsf = mxfp8_quantize(x, is_sf_swizzled_layout=False)
        xsf = xsf.reshape(T, -1)
        hidden, hidden_scale, xd = xq, xsf.view(E4M3), mx_dequant(xq, xsf)
        requant = mx_requant
    else:
        hidden, hidden_scale = x.to(BF16), None
        xd = hidden.double()
        requant = lambda v: v.to(BF16).double()  # noqa: E731
    ids = torch.stack([torch.randperm(E, generator=gen)[:K] for _ in range(T)]).to(torch.int32)
    w = (torch.rand(T, K, generator=gen) + 0.1).to(BF16)
    out = torch.empty(T, h - 32, dtype=BF16)  # flashinfer lets output trim a padded hidden size
    res = api.trtllm_fp4_block_scale_routed_moe(packed_words(ids, w), None, hidden,
        hidden_scale, g1, g1sf, None, alpha, beta, limit, g2, g2sf, None, None, None,
        None, **common(i=i), output=out)  # fmt: skip
    assert res[0] is out
    w1r, w2r = fp4_raw(w1q, w1sf, 32), fp4_raw(w2q, w2sf, 32)
    ref = moe64(ids, w.double(), lambda t, e,
        _: w2r[e] @ requant(swiglu(w1r[e] @ xd[t], 1.702, 1.0, 7.0)), h)  # fmt: skip
    assert_close_to_reference(out, ref[:, : h - 32], rel_l2=2e-2)


# ---- seed-form dispatch ------------------------------------------------------------------------------


def test_seed_form_two_matrix_experts():
    h, i = 64, 32
    x = rand_float((T, h), BF16, 150)
    gating = rand_float((T, E), torch.float32, 151)
    experts = rand_float((E, 2, i, h), BF16, 152, h**-0.5)
    out = api.trtllm_bf16_moe(
        x, gating, experts, num_experts=E, top_k=K, hidden_size=h, intermediate_size=i
    )
    p = torch.softmax(gating.double(), dim=1)
    top = torch.topk(p, K, dim=1)  # Default routing: softmax, top-k, no renormalization

    def expert(t, e, _):
        hid = silu(experts[e, 0].double() @ x[t].double()).to(BF16).double()
        return experts[e, 1].double().T @ hid

    assert_close_to_reference(out, moe64(top.indices, top.values, expert, h), rel_l2=1e-2)


@pytest.mark.parametrize(
    "name, seed_name",
    [
        ("trtllm_bf16_moe", "bf16_seed"),
        ("trtllm_fp8_per_tensor_scale_moe", "fp8_per_tensor_scale_seed"),
        ("trtllm_fp8_block_scale_moe", "fp8_block_scale_seed"),
        ("trtllm_fp4_block_scale_moe", "fp4_block_scale_seed"),
    ],
)
def test_seed_form_detection(name, seed_name, monkeypatch):
    from flashinfer.fused_moe import seed_forms

    calls = []
    monkeypatch.setattr(seed_forms, seed_name, lambda *a, **kw: calls.append((a, kw)) or "seed")
    fn = getattr(api, name)
    x, g = torch.ones(2, 8), torch.ones(2, 4)
    four_d, pair = torch.ones(4, 2, 16, 8), (torch.ones(4, 32, 8), torch.ones(4, 8, 16))
    assert fn(x, g, four_d, num_experts=4, top_k=1) == "seed"  # a 4-D [E, 2, I, H] third argument
    assert fn(x, g, pair, None, num_experts=4, top_k=1) == "seed"  # an (fc1, fc2) pair
    assert fn(x, g, x, hidden_size=8, num_experts=4, top_k=1) == "seed"  # the hidden_size keyword
    assert len(calls) == 3 and calls[2][1]["hidden_size"] == 8
    # The full form's third argument is the 2-D hidden_states: it never reaches the seed path.
    with pytest.raises(TypeError):
        fn(x, g, x)
    assert len(calls) == 3
    params = list(inspect.signature(fn).parameters)
    assert params[:3] == ["routing_logits", "routing_bias", "hidden_states"]


# ---- signatures and bad input ---------------------------------------------------------------------------

FLASHINFER_PARAMS = { "trtllm_bf16_moe": "routing_logits routing_bias hidden_states gemm1_weights gemm2_weights num_experts top_k " "n_group topk_group intermediate_size local_expert_offset local_num_experts routed_scaling_factor " "routing_method_type use_shuffled_weight weight_layout do_finalize enable_pdl tune_max_num_tokens " "activation_type norm_topk_prob routing_replay_out gemm1_alpha gemm1_beta gemm1_clamp_limit output",
    "trtllm_bf16_routed_moe": "topk_ids hidden_states gemm1_weights gemm2_weights num_experts top_k n_group " "topk_group intermediate_size local_expert_offset local_num_experts routed_scaling_factor routing_method_type " "use_shuffled_weight weight_layout do_finalize enable_pdl gemm1_lora_delta tune_max_num_tokens activation_type " "routing_replay_out gemm1_alpha gemm1_beta gemm1_clamp_limit output",
    "trtllm_fp8_per_tensor_scale_moe": "routing_logits routing_bias hidden_states gemm1_weights " "output1_scales_scalar output1_scales_gate_scalar gemm2_weights output2_scales_scalar num_experts top_k " "n_group topk_group intermediate_size local_expert_offset local_num_experts routed_scaling_factor " "use_routing_scales_on_input routing_method_type do_finalize enable_pdl tune_max_num_tokens activation_type " "norm_topk_prob routing_replay_out output",
    "trtllm_fp8_block_scale_routed_moe": "topk_ids routing_bias hidden_states hidden_states_scale gemm1_weights " "gemm1_weights_scale gemm2_weights gemm2_weights_scale num_experts top_k n_group topk_group intermediate_size " "local_expert_offset local_num_experts routed_scaling_factor routing_method_type use_shuffled_weight " "weight_layout do_finalize enable_pdl gemm1_lora_delta output tune_max_num_tokens fp8_quantization_type " "activation_type gemm1_alpha gemm1_beta gemm1_clamp_limit",
    "trtllm_fp4_block_scale_moe": "routing_logits routing_bias hidden_states hidden_states_scale gemm1_weights " "gemm1_weights_scale gemm1_bias gemm1_alpha gemm1_beta gemm1_clamp_limit gemm2_weights gemm2_weights_scale " "gemm2_bias output1_scale_scalar output1_scale_gate_scalar output2_scale_scalar num_experts top_k n_group " "topk_group intermediate_size local_expert_offset local_num_experts routed_scaling_factor routing_method_type " "do_finalize enable_pdl activation_type per_token_scale output tune_max_num_tokens norm_topk_prob " "routing_replay_out num_fused_shared_experts",
    }  # fmt: skip


@pytest.mark.parametrize("name", sorted(FLASHINFER_PARAMS))
def test_signatures_match_flashinfer(name):
    """flashinfer's parameters come first, in order (keyword-only extensions may follow)."""
    params = inspect.signature(getattr(api, name)).parameters
    positional = [p for p, v in params.items() if v.kind == v.POSITIONAL_OR_KEYWORD]
    assert positional == FLASHINFER_PARAMS[name].split()


def bf16_call(**over):
    x, w1, w2, logits = bf16_case(160)
    kw = dict(routing_logits=logits, routing_bias=None, hidden_states=x,
        gemm1_weights=w1, gemm2_weights=w2, **common(), routing_method_type=RENORM,
        use_shuffled_weight=False, weight_layout=0)  # fmt: skip
    kw.update(over)
    return api.trtllm_bf16_moe(**kw)


@pytest.mark.parametrize(
    "over, exc, match",
    [
        (dict(hidden_states=torch.ones(T, 128)), TypeError, "hidden_states"),
        (dict(gemm1_weights=torch.ones(E, 100, 128, dtype=BF16)), ValueError, "gemm1_weights"),
        (dict(gemm2_weights=torch.ones(E, 128, 64)), TypeError, "gemm2_weights"),
        (dict(routing_logits=torch.ones(T, E + 1)), ValueError, "routing_logits"),
        (dict(top_k=E + 1), ValueError, "top_k"),
        (dict(local_expert_offset=2), ValueError, "local_num_experts"),
        (dict(intermediate_size=0), ValueError, "intermediate_size"),
        (dict(routing_method_type=10), ValueError, "routing_method_type"),
        (dict(routing_method_type=RoutingMethodType.Llama4), ValueError, "top_k"),
        (dict(n_group=2, topk_group=1), ValueError, "n_group"),
        (dict(weight_layout=WeightLayout.MajorMn), ValueError, "weight_layout"),
        (dict(weight_layout=WeightLayout.BlockMajorK), ValueError, "gemm1_weights"),
        (dict(activation_type=ActivationType.Situ), NotImplementedError, "Situ"),
        (
            dict(activation_type=ActivationType.Relu2, gemm1_alpha=torch.ones(E)),
            ValueError,
            "gemm1_alpha",
        ),
        (dict(gemm1_beta=torch.ones(E + 1)), ValueError, "gemm1_beta"),
        (dict(output=torch.empty(T, 64, dtype=BF16)), ValueError, "output"),
        (dict(output=torch.empty(T, 128)), TypeError, "output"),
        (
            dict(routing_replay_out=torch.empty(T, K, dtype=torch.int32)),
            TypeError,
            "routing_replay_out",
        ),
        (
            dict(routing_replay_out=torch.empty(T - 1, K, dtype=torch.int16)),
            ValueError,
            "routing_replay_out",
        ),
        (dict(num_experts=2.0), TypeError, "num_experts"),
    ],
)
def test_bf16_bad_input(over, exc, match):
    with pytest.raises(exc, match=match):
        bf16_call(**over)


def test_unsupported_features_raise_not_implemented():
    x, w1, w2, _ = bf16_case(170)
    ids = torch.zeros(T, K, dtype=torch.int32)
    with pytest.raises(NotImplementedError, match="gemm1_lora_delta"):
        api.trtllm_bf16_routed_moe(ids, x, w1, w2, **common(),
            use_shuffled_weight=False, weight_layout=0,
            gemm1_lora_delta=torch.zeros(T, K, 128, dtype=BF16))  # fmt: skip
    xq, xs, w1q, w1s, w2q, w2s = deepseek_case(171)
    with pytest.raises(NotImplementedError, match="num_fused_shared_experts"):
        api.trtllm_fp8_block_scale_moe(torch.ones(T, E), None, xq, xs.t(), w1q, w1s,
            w2q, w2s, **common(i=128), num_fused_shared_experts=1)  # fmt: skip
    with pytest.raises(NotImplementedError, match="per_token_scale"):
        api.trtllm_fp4_block_scale_moe(torch.ones(T, E), None, xq, None, w1q, w1s,
            None, None, None, None, w2q, w2s, None, None, None, None, **common(),
            per_token_scale=torch.ones(T))  # fmt: skip


def test_routed_without_ids():
    x, w1, w2, _ = bf16_case(175)
    with pytest.raises(TypeError, match="topk_ids"):
        api.trtllm_bf16_routed_moe(None, x, w1, w2, **common(), use_shuffled_weight=False,
                                   weight_layout=0)  # fmt: skip
    with pytest.raises(ValueError, match="topk_ids"):
        api.trtllm_bf16_routed_moe(torch.zeros(T, K + 1, dtype=torch.int32), x, w1, w2, **common(),
                                   use_shuffled_weight=False, weight_layout=0)  # fmt: skip


def test_quantized_paths_bad_input():
    xq, w1q, w2q, out1, gate, out2 = fp8_per_tensor_case(180, True)
    logits = torch.ones(T, E)
    kw = dict(**common(), use_routing_scales_on_input=False, use_shuffled_weight=False)
    with pytest.raises(ValueError, match="output1_scales_scalar"):
        api.trtllm_fp8_per_tensor_scale_moe(logits, None, xq, w1q, None, gate, w2q, out2, **kw)
    with pytest.raises(ValueError, match="output2_scales_scalar"):
        api.trtllm_fp8_per_tensor_scale_moe(logits, None, xq, w1q, out1, gate, w2q, out2[:2], **kw)
    with pytest.raises(TypeError, match="hidden_states"):
        api.trtllm_fp8_per_tensor_scale_moe(
            logits, None, xq.float(), w1q, out1, gate, w2q, out2, **kw
        )
    xq, xs, w1q, w1s, w2q, w2s = deepseek_case(181)
    with pytest.raises(ValueError, match="hidden_states_scale"):  # [T, H/128] instead of [H/128, T]
        api.trtllm_fp8_block_scale_moe(logits, None, xq, xs, w1q, w1s, w2q, w2s, **common(i=128))
    with pytest.raises(ValueError, match="fp8_quantization_type"):
        api.trtllm_fp8_block_scale_moe(logits, None, xq, xs.t(), w1q, w1s, w2q, w2s,
            **common(i=128), fp8_quantization_type=Fp8QuantizationType.NoneFp8)  # fmt: skip
    w1f, _, g1, g1sf = fp4_weights(
        rand_float((E, 128, 128), torch.float32, 182), 16, True, torch.full((E,), 100.0)
    )
    w2f, _, g2, g2sf = fp4_weights(
        rand_float((E, 128, 64), torch.float32, 183), 16, False, torch.full((E,), 100.0)
    )
    with pytest.raises(
        NotImplementedError, match="hidden_states"
    ):  # bf16 activations with NvFP4 weights
        api.trtllm_fp4_block_scale_moe(logits, None, torch.ones(T, 128, dtype=BF16),
            None, g1, g1sf, None, None, None, None, g2, g2sf, None, None, None, None,
            **common())  # fmt: skip


def test_fp4_mxfp4_weights_per_tensor_fp8_activations():
    h, i = 128, 128
    x = rand_float((T, h), torch.float32, 190)
    w1 = rand_float((E, 2 * i, h), torch.float32, 191, h**-0.5)
    w2 = rand_float((E, h, i), torch.float32, 192, i**-0.5)
    w1q, w1sf, g1, g1sf = fp4_weights(w1, 32, True)
    w2q, w2sf, g2, g2sf = fp4_weights(w2, 32, False)
    hs, c = 448.0 / x.abs().max(), 40.0  # activation and FC1-output quant multipliers
    xq = (x * hs).to(E4M3)
    gate = torch.full((E,), 1.0 / hs.item())
    out1, out2 = gate * c, torch.full((E,), 1.0 / c)
    logits = rand_float((T, E), torch.float32, 193)
    res = api.trtllm_fp4_block_scale_moe(
        logits, None, xq, None, g1, g1sf, None, None, None, None, g2, g2sf, None, out1, gate, out2,
        **common(i=i), routing_method_type=RENORM,
    )  # fmt: skip
    w1r, w2r = fp4_raw(w1q, w1sf, 32), fp4_raw(w2q, w2sf, 32)

    def expert(t, e, _):
        up, g = (w1r[e] @ xq[t].double()).chunk(2)
        y1 = silu(g * gate[e].double()) * up * out1[e].double()
        return (w2r[e] @ y1.float().to(E4M3).double()) * out2[e].double()

    ids, w = renormalize_routing(logits)
    assert_close_to_reference(res[0], moe64(ids, w, expert, h), rel_l2=2e-2)
