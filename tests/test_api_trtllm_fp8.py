"""The public trtllm_* FP8 paths: per-tensor scales (full, Llama4 scales on input, routed
packed) and block scales (DeepSeek 1x128 / 128x128 in every weight layout, grouped routing with
EP, routed without finalize, MxFp8), on the CPU executor, against the float64 computation of
flashinfer's documented math (tests/trtllm_math.py): raw accumulators of the codes, the three
output scalars, requantization of the GEMM1 output as the kernel does it.
"""

from __future__ import annotations

import pytest
import torch
from flashinfer.fused_moe import api_trtllm as api
from flashinfer.fused_moe.enums import (
    ActivationType,
    Fp8QuantizationType,
    RoutingMethodType,
    WeightLayout,
)
from flashinfer.quantization import (
    block_scale_interleave,
    mxfp8_quantize,
)
from numeric import assert_close_to_reference, rand_float
from quant_models import fp8_group_quant, mx_requant
from trtllm_math import (
    BF16,
    E4M3,
    F64,
    RENORM,
    E,
    K,
    T,
    common,
    deepseek_case,
    fp8_per_tensor_case,
    moe64,
    mx_dequant,
    packed_words,
    prepare_rows,
    prepare_stack,
    relu2,
    renormalize_routing,
    silu,
    situ,
    swiglu,
)

# ---- FP8 per-tensor ----------------------------------------------------------------------------------


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


def test_fp8_per_tensor_situ_scalars():
    """Situ on the per-tensor path: the tanh of the linear half needs it dequantized, so both
    halves take output1_scales_gate_scalar (1 / (w1 hs)) and output1_scales_scalar is c alone
    (flashinfer's SiTU recipe; its default caps are 1)."""
    xq, w1q, w2q, _, gate, out2 = fp8_per_tensor_case(85, True)
    c = torch.tensor(40.0)
    out1 = c.expand(E).clone().float()
    logits = rand_float((T, E), torch.float32, 86)
    out = api.trtllm_fp8_per_tensor_scale_moe(logits, None, xq, prepare_stack(w1q, gated=True),
        out1, gate, prepare_stack(w2q), out2, **common(), use_routing_scales_on_input=False,
        routing_method_type=RENORM, activation_type=ActivationType.Situ)  # fmt: skip

    def expert(t, e, _):
        acc = (w1q[e].double() @ xq[t].double()) * gate[e].double()  # both halves dequantized
        y1 = situ(acc) * out1[e].double()
        return (w2q[e].double() @ y1.float().to(E4M3).double()) * out2[e].double()

    ids, w = renormalize_routing(logits)
    assert_close_to_reference(out, moe64(ids, w, expert, xq.shape[1]), rel_l2=2e-2)


# ---- FP8 block scale ------------------------------------------------------------------------------------


def block_dequant(q, s, bm, bk):
    return (q.double() * s.double() .repeat_interleave(bm, -2)[..., : q.shape[-2],
        :] .repeat_interleave(bk, -1)[..., : q.shape[-1]] )  # fmt: skip


def deepseek_expected(xq, xs, w1q, w1s, w2q, w2s, ids, w, offset=0, n_local=E, **clamp):
    x = block_dequant(xq, xs, 1, 128)
    w1, w2 = block_dequant(w1q, w1s, 128, 128), block_dequant(w2q, w2s, 128, 128)

    def expert(t, e, _):
        return w2[e] @ fp8_group_quant(swiglu(w1[e] @ x[t], **clamp), 128)

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


def test_fp8_block_scale_fused_shared_experts():
    """num_fused_shared_experts = S: E + S expert stacks (shared last); every token adds the S
    shared experts with weight 1.0 to its DeepSeekV3 top-k (flashinfer_api.md, routing 5)."""
    s = 2
    xq, xs, w1q, w1s, w2q, w2s = deepseek_case(120, e=E + s)
    logits = rand_float((T, E), torch.float32, 121)
    bias = rand_float((E,), BF16, 122, 0.1)
    out = api.trtllm_fp8_block_scale_moe(logits, bias, xq, xs.t().contiguous(), w1q, w1s, w2q,
        w2s, **dict(common(i=128), routed_scaling_factor=2.5), num_fused_shared_experts=s,
        routing_method_type=RoutingMethodType.DeepSeekV3)  # fmt: skip
    u = torch.sigmoid(logits.double())
    ids = torch.topk(u + bias.double(), K, dim=1).indices  # n_group None: one group
    sel = u.gather(1, ids)
    w = sel * 2.5 / (sel.sum(1, keepdim=True) + 1e-20)
    ids = torch.cat([ids, torch.arange(E, E + s).expand(T, s)], dim=1)
    w = torch.cat([w, torch.ones(T, s, dtype=F64)], dim=1)
    ref = deepseek_expected(xq, xs, w1q, w1s, w2q, w2s, ids, w, 0, E + s)
    assert_close_to_reference(out, ref, rel_l2=2e-2)


@pytest.mark.parametrize(
    "bad,match",
    [(dict(routing_method_type=RoutingMethodType.Renormalize), "num_fused_shared_experts"),
     (dict(num_fused_shared_experts=-1), "num_fused_shared_experts"),
     (dict(local_expert_offset=1, local_num_experts=E - 1), "num_fused_shared_experts"),
     (dict(routing_replay_out=torch.empty(T, K, dtype=torch.int16)), "routing_replay_out")],
    ids=["not_deepseek", "negative", "expert_parallel", "routing_replay"],
)  # fmt: skip
def test_fp8_block_scale_fused_shared_experts_bad_input(bad, match):
    xq, xs, w1q, w1s, w2q, w2s = deepseek_case(125, e=E + 2)
    kw = dict(common(i=128), num_fused_shared_experts=2,
              routing_method_type=RoutingMethodType.DeepSeekV3)  # fmt: skip
    kw.update(bad)
    with pytest.raises(ValueError, match=match):
        api.trtllm_fp8_block_scale_moe(rand_float((T, E), torch.float32, 126), None, xq,
                                       xs.t().contiguous(), w1q, w1s, w2q, w2s, **kw)  # fmt: skip


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


@pytest.mark.parametrize("act", [ActivationType.Swiglu, ActivationType.Situ], ids=lambda a: a.name)
def test_fp8_block_scale_deepseek_routed_gemm1_lora_delta(act, gen):
    xq, xs, w1q, w1s, w2q, w2s = deepseek_case(115)
    ids = torch.stack([torch.randperm(E, generator=gen)[:K] for _ in range(T)]).to(torch.int32)
    w = torch.rand(T, K, generator=gen) + 0.1
    delta = rand_float((T, K, 256), BF16, 116, 0.25)
    kw = dict(gemm1_alpha=torch.full((E,), 2.0), gemm1_beta=torch.full((E,), 0.5)) if (
        act == ActivationType.Situ) else {}  # fmt: skip
    out, e2p, act_out = api.trtllm_fp8_block_scale_routed_moe((ids, w), None, xq,
        xs.t().contiguous(), w1q, w1s, w2q, w2s, **common(i=128), activation_type=act,
        gemm1_lora_delta=delta, **kw)  # fmt: skip
    x = block_dequant(xq, xs, 1, 128)
    w1, w2 = block_dequant(w1q, w1s, 128, 128), block_dequant(w2q, w2s, 128, 128)
    ref = torch.zeros(T, xq.shape[1], dtype=F64)
    for t in range(T):
        for j in range(K):
            e = int(ids[t, j])
            a = w1[e] @ x[t] + delta[t, j].double()
            hid = situ(a, 2.0, 0.5) if act == ActivationType.Situ else swiglu(a)
            assert_close_to_reference(act_out[int(e2p[t, j])], hid, rel_l2=1e-2)
            ref[t] += float(w[t, j]) * (w2[e] @ fp8_group_quant(hid, 128))
    assert_close_to_reference(out, ref, rel_l2=2e-2)


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
