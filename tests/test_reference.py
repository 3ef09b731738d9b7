"""Tests of the float64 reference (flashinfer.fused_moe.reference): routing on hand-made logits
for every method (ties, groups, round robin, precomputed and packed ids), dequantization of each
format, and the MoE layer against a per-assignment hand expansion (capacity, EP window, biases,
routing weight on input, activations, (re)quantization)."""

from __future__ import annotations

import math

import pytest
import torch
from flashinfer.fused_moe.enums import (
    ActivationType,
    ActQuant,
    ElemFormat,
    ScaleFormat,
    ScaleLayout,
)
from flashinfer.fused_moe.enums import (
    RoutingMethodType as RM,
)
from flashinfer.fused_moe.problem import ActQuantSpec, MoeProblem, QuantTensor, RoutingSpec
from flashinfer.fused_moe.reference import (
    dequantize,
    quantize_activation,
    reference_moe,
    reference_moe_permuted,
    reference_routing,
)
from flashinfer.quantization import (
    e2m1_and_ufp8sf_scale_to_float,
    fp4_quantize,
    quantize_fp8_block,
)


def _route(method, logits, k, **kw):
    logits = torch.tensor(logits, dtype=torch.float32)
    spec = RoutingSpec(method, logits=logits, **kw)
    return reference_routing(spec, logits.shape[0], logits.shape[1], k)


def _sig(x):
    return 1 / (1 + math.exp(-x))


def _softmax(v):
    m = max(v)
    e = [math.exp(a - m) for a in v]
    return [a / sum(e) for a in e]


def _check(w, want):
    assert torch.allclose(w, torch.tensor(want, dtype=torch.float64), rtol=1e-6, atol=1e-7), (
        w,
        want,
    )


# ---- routing --------------------------------------------------------------------------------------


def test_default_softmax_topk_ties_to_lower_index():
    ids, w = _route(RM.Default, [[1.0, 3.0, 3.0, 0.5]], 2)
    assert ids.tolist() == [[1, 2]] and ids.dtype == torch.int64 and w.dtype == torch.float64
    _check(w, [_softmax([1, 3, 3, 0.5])[1:3]])


def test_renormalize_and_naive():
    for m in (RM.Renormalize, RM.RenormalizeNaive):
        ids, w = _route(m, [[2.0, -1.0, 5.0, 5.0, 1.0], [0.25, 0.5, -3.0, 0.75, 0.0]], 3)
        assert ids.tolist() == [[2, 3, 0], [3, 1, 0]]
        _check(w, [_softmax([5, 5, 2]), _softmax([0.75, 0.5, 0.25])])


def test_topk_sigmoid_family():
    logits = [[-2.0, 1.5, 0.25, 1.5, -0.5]]
    ids, w = _route(RM.TopK, logits, 3)
    assert ids.tolist() == [[1, 3, 2]]
    _check(w, [[1.5, 1.5, 0.25]])
    ids, w = _route(RM.TopKSigmoid, logits, 2)
    assert ids.tolist() == [[1, 3]]
    _check(w, [[_sig(1.5)] * 2])
    ids, w = _route(RM.Sigmoid, logits, 3)
    assert ids.tolist() == [[1, 3, 2]]
    _check(w, [[_sig(1.5), _sig(1.5), _sig(0.25)]])
    ids, w = _route(RM.SigmoidRenorm, logits, 3)
    s = [_sig(1.5), _sig(1.5), _sig(0.25)]
    _check(w, [[v / sum(s) for v in s]])
    ids, w = _route(RM.SigmoidRenorm, logits, 3, norm_topk_prob=False)
    _check(w, [s])


def test_minimax2_bias_selects_sigmoid_weights():
    logits = [[0.0, 1.0, 2.0, 3.0]]
    bias = torch.tensor([10.0, 0.0, 0.0, 0.0])
    ids, w = _route(RM.MiniMax2, logits, 2, bias=bias, routed_scaling_factor=2.5)
    assert ids.tolist() == [[0, 3]]
    s = [_sig(0.0), _sig(3.0)]
    _check(w, [[v / (sum(s) + 1e-20) * 2.5 for v in s]])


def _logit(p):
    return math.log(p / (1 - p))


def test_deepseek_v3_groups():
    u = [0.95, 0.05, 0.6, 0.6, 0.7, 0.55, 0.1, 0.1]  # group sums 1.0, 1.2, 1.25, 0.2
    logits = [[_logit(p) for p in u]]
    ids, w = _route(RM.DeepSeekV3, logits, 3, n_group=4, topk_group=2, routed_scaling_factor=2.0)
    assert ids.tolist() == [[4, 2, 3]]
    us = [_sig(logits[0][i]) for i in (4, 2, 3)]
    _check(w, [[v * 2.0 / (sum(us) + 1e-20) for v in us]])
    ids, _ = _route(RM.DeepSeekV3, logits, 3, n_group=1, topk_group=1)
    assert ids.tolist() == [[0, 4, 2]]
    # Selection uses u + bias, the weights the unbiased u.
    bias = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0])
    ids, w = _route(RM.DeepSeekV3, logits, 2, n_group=4, topk_group=1, bias=bias)
    assert ids.tolist() == [[6, 7]]
    _check(w, [[0.5, 0.5]])


def test_deepseek_v3_group_ties_to_lower_group():
    logits = [[0.0] * 8]  # all groups equal: groups 0 and 1 kept
    ids, _ = _route(RM.DeepSeekV3, logits, 4, n_group=4, topk_group=2)
    assert ids.tolist() == [[0, 1, 2, 3]]
    with pytest.raises(ValueError, match="n_group"):
        _route(RM.DeepSeekV3, [[0.0] * 6], 2, n_group=4, topk_group=2)
    with pytest.raises(ValueError, match="topk_group"):
        _route(RM.DeepSeekV3, logits, 2, n_group=4, topk_group=5)


def test_llama4_and_round_robin():
    ids, w = _route(RM.Llama4, [[0.5, 2.0, 2.0], [-1.0, -3.0, -2.0]], 1)
    assert ids.tolist() == [[1], [0]]
    _check(w, [[_sig(2.0)], [_sig(-1.0)]])
    with pytest.raises(ValueError, match="top_k"):
        _route(RM.Llama4, [[0.5, 2.0, 2.0]], 2)
    logits = [[0.1, 0.2, 0.3, 0.4], [1.0, 2.0, 3.0, 4.0], [-1.0, 0.0, 1.0, 2.0]]
    ids, w = _route(RM.RoundRobin, logits, 3)
    assert ids.tolist() == [[0, 1, 2], [3, 0, 1], [2, 3, 0]]
    _check(w, [_softmax([0.1, 0.2, 0.3]), _softmax([4.0, 1.0, 2.0]), _softmax([1.0, 2.0, -1.0])])


def test_bf16_logits_are_widened_and_bad_methods_rejected(gen):
    logits = torch.randn(5, 8, generator=gen).to(torch.bfloat16)
    a = reference_routing(RoutingSpec(RM.Renormalize, logits=logits), 5, 8, 2)
    b = reference_routing(RoutingSpec(RM.Renormalize, logits=logits.float()), 5, 8, 2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="method"):
        reference_routing(RoutingSpec(RM.Unspecified, logits=logits), 5, 8, 2)
    with pytest.raises(ValueError, match="logits"):
        reference_routing(RoutingSpec(RM.Renormalize, logits=logits), 4, 8, 2)
    with pytest.raises(ValueError, match="top_k"):
        reference_routing(RoutingSpec(RM.Renormalize, logits=logits), 5, 8, 9)


def test_precomputed_plain_and_packed():
    ids = torch.tensor([[3, -1], [7, 100], [0, 2]], dtype=torch.int32)
    w = torch.tensor([[0.5, 0.25], [1.0, 2.0], [-0.75, 3.0]], dtype=torch.bfloat16)
    got_ids, got_w = reference_routing(RoutingSpec(topk_ids=ids, topk_weights=w), 3, 7, 2)
    assert got_ids.tolist() == [[3, -1], [-1, -1], [0, 2]]
    assert torch.equal(got_w, w.double())
    bits = w.view(torch.int16).to(torch.int64) & 0xFFFF
    words = ((ids.to(torch.int64) << 16) | bits).to(torch.int32)
    p_ids, p_w = reference_routing(RoutingSpec(topk_ids=words, packed=True), 3, 7, 2)
    assert torch.equal(p_ids, got_ids) and torch.equal(p_w, got_w)
    with pytest.raises(ValueError, match="topk_ids"):
        reference_routing(RoutingSpec(topk_ids=ids, topk_weights=w), 3, 7, 3)


# ---- dequantization and activation quantization ---------------------------------------------------


def test_dequantize_formats(gen):
    w = torch.randn(2, 40, 48, generator=gen)
    q, s = quantize_fp8_block(w, (16, 32))
    gsc = torch.tensor([0.5, 4.0])
    qt = QuantTensor(
        q.view(torch.uint8),
        ElemFormat.E4M3,
        s,
        ScaleFormat.Float,
        block_rows=16,
        block_cols=32,
        global_scale=gsc,
    )
    full = s.repeat_interleave(16, 1).repeat_interleave(32, 2)[:, :40, :48]
    want = (q.float() * full) * gsc.reshape(2, 1, 1)
    assert torch.equal(dequantize(qt), want.double())
    # NVFP4 activations, packed, swizzled e4m3 scales, dequant global.
    x = torch.randn(5, 64, generator=gen)
    g = x.abs().max() / (448 * 6)
    xq, sf = fp4_quantize(x, 1 / g)
    at = QuantTensor(
        xq,
        ElemFormat.E2M1Packed,
        sf,
        ScaleFormat.E4M3,
        ScaleLayout.Swizzled128x4,
        1,
        16,
        g.reshape(1),
    )
    assert torch.equal(dequantize(at), e2m1_and_ufp8sf_scale_to_float(xq, sf, g).double())
    # Unpacked codes with linear ue8m0 scales in a transposed (strided) view.
    codes = torch.randint(0, 256, (3, 32), generator=gen, dtype=torch.uint8)
    sc = torch.randint(120, 135, (2, 3), generator=gen, dtype=torch.uint8).t()  # [3, 2] strided
    ut = QuantTensor(
        codes, ElemFormat.E2M1Unpacked, sc, ScaleFormat.UE8M0, block_rows=1, block_cols=16
    )
    tbl = torch.tensor([0, 0.5, 1, 1.5, 2, 3, 4, 6])
    mag = tbl[(codes & 7).long()] * torch.where(codes & 8 > 0, -1.0, 1.0)
    want = mag * torch.exp2(sc.float() - 127).repeat_interleave(16, 1)
    assert torch.equal(dequantize(ut), want.double())


def test_quantize_activation_modes(gen):
    x = torch.randn(6, 40, generator=gen) * 3
    none = quantize_activation(x, ActQuantSpec(), None, torch.bfloat16)
    assert torch.equal(none, x.to(torch.bfloat16).double())
    spec = ActQuantSpec(ActQuant.Fp8Static, static_scale=torch.tensor([0.01, 0.02]))
    got = quantize_activation(x, spec, 1, torch.bfloat16)
    s = torch.tensor(0.02)
    assert torch.equal(got, ((x / s).clamp(-448, 448).to(torch.float8_e4m3fn).float() * s).double())
    tok = quantize_activation(x, ActQuantSpec(ActQuant.Fp8PerToken), None, torch.bfloat16)
    grp = quantize_activation(
        x, ActQuantSpec(ActQuant.Fp8PerGroup, group_size=40), None, torch.bfloat16
    )
    assert torch.equal(tok, grp)
    mx = quantize_activation(x, ActQuantSpec(ActQuant.MxFp8), None, torch.bfloat16)
    assert mx.shape == x.shape and ((mx - x.double()).abs() <= x.double().abs() / 16 + 1e-3).all()
    nv = quantize_activation(
        x, ActQuantSpec(ActQuant.NvFp4, static_scale=torch.tensor(0.01)), None, torch.bfloat16
    )
    assert nv.shape == x.shape and (nv - x.double()).abs().max() < 2.0
    with pytest.raises(ValueError, match="expert"):
        quantize_activation(x, spec, None, torch.bfloat16)


# ---- the MoE layer ------------------------------------------------------------------------------------


def _act(name, x, up=None):
    if name == "relu":
        return torch.relu(x)
    if name == "identity":
        return x
    return x / (1 + torch.exp(-x)) * up  # swiglu: x = gate


def _hand_moe(x, w1, w2, ids, w, act, off=0, cap=0, b1=None, b2=None, on_input=False, inter=None):
    """Per-assignment loop, straight from docs/semantics.md: returns (out, rows by (t, j))."""
    t_n, k = ids.shape
    el = w1.shape[0]
    out = torch.zeros(t_n, w2.shape[1], dtype=torch.float64)
    rows = {}
    count = [0] * el
    for t in range(t_n):
        for j in range(k):
            e = int(ids[t, j]) - off
            if not 0 <= e < el or (cap and count[e] >= cap):
                continue
            count[e] += 1
            a = w1[e] @ x[t]
            if on_input:
                a = a * w[t, j]
            if b1 is not None:
                a = a + b1[e]
            if act == "swiglu":
                i = a.shape[0] // 2
                h = _act(act, a[i:], a[:i])
            else:
                h = _act(act, a)
            if inter is not None:
                h = inter(h)
            r = w2[e] @ h + (0 if b2 is None else b2[e])
            rows[(t, j)] = r
            out[t] += (1.0 if on_input else w[t, j]) * r
    return out, rows


def _small_int(shape, gen, lo=-3, hi=3):
    v = torch.randint(lo, hi, shape, generator=gen).float()
    return torch.where(v == 0, torch.ones_like(v), v)  # nonzero


def _problem(x, w1, w2, ids, w, e_global, act, **kw):
    t, h = x.shape
    el = w1.shape[0]
    i = w2.shape[2]
    return MoeProblem(
        num_tokens=t,
        hidden_size=h,
        intermediate_size=i,
        num_experts=e_global,
        local_expert_offset=kw.pop("off", 0),
        local_num_experts=el,
        top_k=ids.shape[1],
        routing=RoutingSpec(topk_ids=ids.int(), topk_weights=w.float()),
        input=QuantTensor(x),
        w1=QuantTensor(w1),
        w2=QuantTensor(w2),
        activation=act,
        **kw,
    )


@pytest.mark.parametrize(
    "act,name", [(ActivationType.Relu, "relu"), (ActivationType.Identity, "identity")]
)
def test_small_integer_problem_exact(gen, act, name):
    t, h, i, e = 5, 8, 4, 4
    x = _small_int((t, h), gen)
    w1, w2 = _small_int((e, i, h), gen), _small_int((e, h, i), gen)
    ids = torch.tensor([[0, 3], [1, 1], [2, 0], [3, 5], [-1, 2]])
    w = torch.tensor([[0.5, 2.0], [1.0, -0.25], [1.5, 0.75], [4.0, 1.0], [1.0, 0.5]])
    b1, b2 = _small_int((e, i), gen), _small_int((e, h), gen)
    p = _problem(x, w1, w2, ids, w, 6, act, w1_bias=b1, w2_bias=b2, compute_dtype=torch.float32)
    want, _ = _hand_moe(
        x.double(), w1.double(), w2.double(), ids, w.double(), name, b1=b1.double(), b2=b2.double()
    )
    assert torch.equal(reference_moe(p), want)
    assert torch.equal(x, p.input.data)  # inputs untouched


def test_capacity_ep_window_and_permutation(gen):
    t, h, i, e_glob = 6, 4, 2, 8
    x = _small_int((t, h), gen)
    w1, w2 = _small_int((3, i, h), gen), _small_int((3, h, i), gen)
    ids = torch.tensor([[2, 3], [3, 2], [2, 0], [4, 2], [7, 3], [3, 3]])
    w = torch.tensor([[1.0, 0.5], [2.0, 1.0], [0.25, 1.0], [1.0, 1.5], [1.0, 2.0], [0.5, 0.5]])
    p = _problem(x, w1, w2, ids, w, e_glob, ActivationType.Relu, off=2, expert_capacity=2)
    res = reference_moe_permuted(p)
    want, rows = _hand_moe(
        x.double(), w1.double(), w2.double(), ids, w.double(), "relu", off=2, cap=2
    )
    assert torch.equal(res.output, want)
    # Local experts 2, 3, 4 (capacity 2, by token then slot):
    # e2: (0,0), (1,1); (2,0), (3,1) dropped.  e3: (0,1), (1,0); (4,1), (5,*) dropped.  e4: (3,0).
    assert res.expanded_to_permuted.tolist() == [
        [0, 2],
        [3, 1],
        [-1, -1],
        [4, -1],
        [-1, -1],
        [-1, -1],
    ]
    order = [(0, 0), (1, 1), (0, 1), (1, 0), (3, 0)]
    for r, tj in enumerate(order):
        assert torch.equal(res.rows[r], rows[tj])
    assert (res.rows[len(order) :] == 0).all()


def test_swiglu_bias_on_input_and_inter_quant(gen):
    t, h, i, e, k = 7, 32, 16, 4, 2
    x = torch.randn(t, h, generator=gen).to(torch.bfloat16)
    w1 = (torch.randn(e, 2 * i, h, generator=gen) * 0.2).to(torch.bfloat16)
    w2 = (torch.randn(e, h, i, generator=gen) * 0.2).to(torch.bfloat16)
    ids = torch.randint(0, e, (t, k), generator=gen)
    w = torch.rand(t, k, generator=gen) + 0.1
    b1 = torch.randn(e, 2 * i, generator=gen)
    inter = ActQuantSpec(ActQuant.Fp8PerToken)

    def fp8_token(hv):
        s = hv.float().abs().max() / 448
        return ((hv.float() / s).to(torch.float8_e4m3fn).float() * s).double()

    for on_input in (False, True):
        p = _problem(
            x,
            w1,
            w2,
            ids,
            w,
            e,
            ActivationType.Swiglu,
            w1_bias=b1,
            inter_quant=inter,
            routing_weight_on_input=on_input,
        )
        want, _ = _hand_moe(
            x.double(),
            w1.double(),
            w2.double(),
            ids,
            w.double(),
            "swiglu",
            b1=b1.double(),
            on_input=on_input,
            inter=fp8_token,
        )
        got = reference_moe(p)
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)


def test_per_expert_static_input_scale(gen):
    t, h, i, e = 4, 16, 8, 2
    x = torch.randn(t, h, generator=gen)
    w1, w2 = torch.randn(e, i, h, generator=gen), torch.randn(e, h, i, generator=gen)
    ids = torch.tensor([[0], [1], [0], [1]])
    w = torch.ones(t, 1)
    scales = torch.tensor([0.01, 0.003])
    p = _problem(
        x,
        w1,
        w2,
        ids,
        w,
        e,
        ActivationType.Identity,
        input_quant=ActQuantSpec(ActQuant.Fp8Static, static_scale=scales),
    )
    got = reference_moe(p)
    for tok in range(t):
        ex = int(ids[tok, 0])
        xq = ((x[tok] / scales[ex]).to(torch.float8_e4m3fn).float() * scales[ex]).double()
        # The intermediate is rounded to the compute dtype (bf16) before GEMM2.
        hid = (w1[ex].double() @ xq).to(torch.bfloat16).double()
        assert torch.allclose(got[tok], w2[ex].double() @ hid, rtol=1e-12, atol=1e-12)


def test_bad_problems(gen):
    x = torch.randn(2, 4, generator=gen)
    w1, w2 = torch.randn(1, 4, 4, generator=gen), torch.randn(1, 4, 2, generator=gen)
    ids, w = torch.zeros(2, 1, dtype=torch.int64), torch.ones(2, 1)
    with pytest.raises(ValueError, match="gemm1_delta"):
        reference_moe(
            _problem(x, w1, w2, ids, w, 1, ActivationType.Situ, gemm1_delta=torch.ones(2, 1, 3))
        )
    with pytest.raises(ValueError, match="w1"):
        reference_moe(_problem(x, w1[:, :3], w2, ids, w, 1, ActivationType.Swiglu))
    with pytest.raises(ValueError, match="local experts"):
        reference_moe(_problem(x, w1, w2, ids, w, 1, ActivationType.Swiglu, off=1))


# ---- Situ and the GEMM1 delta, against scalar math ------------------------------------------------


def _situ_cutlass(gate, up, beta, linear_beta):
    """CUTLASS SituAdaptor: beta tanh(gate / beta) sigmoid(gate) * linear_beta tanh(up / linear_beta)."""
    return beta * math.tanh(gate / beta) * _sig(gate) * linear_beta * math.tanh(up / linear_beta)


def _situ_trtllm(x0, x1, alpha, beta, limit):
    """trtllm-gen SiTU (x0 = linear / up, x1 = gate): clamp x0 to +-limit and x1 from above,
    then beta tanh(x0 / beta) * alpha tanh(x1 / alpha) sigmoid(x1)."""
    x0 = min(max(x0, -limit), limit)
    x1 = min(x1, limit)
    return beta * math.tanh(x0 / beta) * alpha * math.tanh(x1 / alpha) * _sig(x1)


@pytest.mark.parametrize("form", ["cutlass_defaults", "cutlass_per_expert", "trtllm_clamped",
                                  "uncapped_linear"])  # fmt: skip
def test_situ_matches_scalar_formulas(gen, form):
    t, h, i, e, k = 6, 12, 5, 3, 2
    x = torch.randn(t, h, generator=gen, dtype=torch.float64) * 0.8
    w1 = torch.randn(e, 2 * i, h, generator=gen, dtype=torch.float64)
    w2 = torch.randn(e, h, i, generator=gen, dtype=torch.float64)
    ids = torch.stack([torch.randperm(e, generator=gen)[:k] for _ in range(t)])
    w = torch.rand(t, k, generator=gen, dtype=torch.float64) + 0.1
    kw = {}
    alpha = torch.tensor([0.75, 2.0, 5.0])  # the gate's cap (situ_beta / gemm1_alpha)
    beta = torch.tensor([1.5, 0.5, 3.0])  # the linear half's (situ_linear_beta / gemm1_beta)
    limit = torch.tensor([1.25, 2.0, 0.5])
    if form == "cutlass_per_expert":
        kw = dict(act_alpha=alpha, act_beta=beta)
    elif form == "trtllm_clamped":
        kw = dict(act_alpha=alpha, act_beta=beta, act_limit=limit)
    elif form == "uncapped_linear":
        kw = dict(act_alpha=alpha, act_beta=torch.full((e,), math.inf))
    p = _problem(x.float(), w1.float(), w2.float(), ids, w, e, ActivationType.Situ,
                 compute_dtype=torch.float32, **kw)  # fmt: skip
    ref = reference_moe_permuted(p)
    got = ref.intermediate
    x32, w1_32 = x.float().double(), w1.float().double()
    for tok in range(t):
        for j in range(k):
            ex = int(ids[tok, j])
            acc = (w1_32[ex] @ x32[tok]).tolist()
            up, gate = acc[:i], acc[i:]
            row = int(ref.expanded_to_permuted[tok, j])
            for c in range(i):
                a, b, lim = float(alpha[ex]), float(beta[ex]), float(limit[ex])
                if form == "cutlass_defaults":
                    want = _situ_cutlass(gate[c], up[c], 4.0, 25.0)
                elif form == "cutlass_per_expert":
                    want = _situ_cutlass(gate[c], up[c], a, b)
                elif form == "trtllm_clamped":
                    want = _situ_trtllm(up[c], gate[c], a, b, lim)
                else:  # an infinite linear cap leaves up as it is: plain SiTU(gate) * up
                    want = a * math.tanh(gate[c] / a) * _sig(gate[c]) * up[c]
                assert math.isclose(float(got[row, c]), want, rel_tol=1e-12, abs_tol=1e-14), (
                    form, tok, j, c, float(got[row, c]), want,
                )  # fmt: skip


def test_gemm1_delta_is_added_per_assignment_before_the_activation(gen):
    t, h, i, e, k = 5, 8, 3, 3, 2
    x = torch.randn(t, h, generator=gen, dtype=torch.float64).float()
    w1 = torch.randn(e, 2 * i, h, generator=gen, dtype=torch.float64).float()
    w2 = torch.randn(e, h, i, generator=gen, dtype=torch.float64).float()
    # Token 1 sends both slots to expert 2 (two deltas, one expert); id 7 is skipped; the
    # capacity of 3 drops expert 2's last two: the delta goes with (t, j), not with the row.
    ids = torch.tensor([[0, 2], [2, 2], [1, 7], [2, 0], [2, 1]])
    w = torch.rand(t, k, generator=gen, dtype=torch.float64).float() + 0.1
    b1 = torch.randn(e, 2 * i, generator=gen, dtype=torch.float64).float()
    delta = torch.randn(t, k, 2 * i, generator=gen, dtype=torch.float64).to(torch.bfloat16)
    p = _problem(x, w1, w2, ids, w, e, ActivationType.Swiglu, w1_bias=b1, gemm1_delta=delta,
                 expert_capacity=3, compute_dtype=torch.float32)  # fmt: skip
    ref = reference_moe_permuted(p)
    out = torch.zeros(t, h, dtype=torch.float64)
    kept = 0
    for tok in range(t):
        for j in range(k):
            row = int(ref.expanded_to_permuted[tok, j])
            if row < 0:
                continue
            kept += 1
            ex = int(ids[tok, j])
            acc = w1[ex].double() @ x[tok].double() + b1[ex].double() + delta[tok, j].double()
            hid = torch.nn.functional.silu(acc[i:]) * acc[:i]
            assert torch.allclose(ref.intermediate[row], hid, rtol=1e-12, atol=1e-14)
            out[tok] += w[tok, j].double() * (w2[ex].double() @ hid.float().double())
    assert kept == 7  # 10 slots, one skipped id, two over capacity
    assert (ref.expanded_to_permuted == -1).sum() == 3
    assert torch.all(ref.intermediate[kept:] == 0)
    assert torch.allclose(ref.output, out, rtol=1e-12, atol=1e-12)
