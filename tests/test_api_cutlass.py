"""``cutlass_fused_moe`` full form on the CPU executor: float, FP8 and FP4 quantization modes.

Each quantization mode is run against ``reference_moe`` of the problem it was translated into,
and the modes whose scale conventions are easy to get wrong (float, W8A8, DeepSeek block, NVFP4)
also against an independent float64 computation in flashinfer's own conventions
(shared/reference/flashinfer_api.md section 4: quant multipliers, ``fc1_dequant``, ...). The
workspace, form detection and argument checks are in test_api_cutlass_args.py.
"""

from __future__ import annotations

import math

import flashinfer
import pytest
import torch
from flashinfer.fused_moe import ActivationType, api_cutlass
from flashinfer.quantization import fp4_quantize, mxfp4_quantize, mxfp8_quantize
from moe_builders import E4M3, routing_inputs, seeded_generator
from moe_checks import assert_matches_reference
from numeric import assert_close_to_reference, poison, rand_float
from quant_models import fp8_group_quant


def independent_moe(
    x, ids, w, w1, w2, act, *, b1=None, b2=None, offset=0, quant1=None, quant2=None, post2=None
):
    """flashinfer's math in float64: sum_k w * (W2 act(W1 x + b1) + b2) over local experts."""
    t_count, k = ids.shape
    out = torch.zeros(t_count, w2.shape[1], dtype=torch.float64)
    for t in range(t_count):
        for j in range(k):
            e = int(ids[t, j]) - offset
            if not 0 <= e < w1.shape[0]:
                continue
            xv = x[t].double() if quant1 is None else quant1(t)
            a = w1[e].double() @ xv
            if b1 is not None:
                a = a + b1[e].double()
            h = act(a, e)
            if quant2 is not None:
                h = quant2(h, e)
            y = w2[e].double() @ h
            if post2 is not None:
                y = post2(y, e)
            if b2 is not None:
                y = y + b2[e].double()
            out[t] += float(w[t, j]) * y
    return out


def swiglu(a, e):
    i = a.shape[0] // 2
    return torch.nn.functional.silu(a[i:]) * a[:i]


# ---- float ------------------------------------------------------------------------------------


def test_float_with_biases_ep_tp():
    t, e_local, ep_size, ep_rank, h, i, k = 8, 3, 2, 1, 32, 16, 3
    x = rand_float((t, h), torch.float32, seed=1)
    ids, w = routing_inputs(t, e_local * ep_size, k, seed=2)
    fc1 = rand_float((e_local, 2 * i, h), torch.float32, seed=3, scale=0.2)
    fc2 = rand_float((e_local, h, i), torch.float32, seed=4, scale=0.2)
    b1 = rand_float((e_local, 2 * i), torch.float32, seed=5)
    b2 = rand_float((e_local, h), torch.float32, seed=6)
    common = dict(
        fc1_expert_biases=b1, fc2_expert_biases=b2, ep_size=ep_size, ep_rank=ep_rank, tp_size=2
    )
    out = flashinfer.cutlass_fused_moe(
        x, ids, w, fc1, fc2, torch.float32, None, tp_rank=0, **common
    )
    assert isinstance(out, list) and len(out) == 1
    expected = independent_moe(x, ids, w, fc1, fc2, swiglu, b1=b1, b2=b2, offset=ep_rank * e_local)
    assert_close_to_reference(out[0], expected, rel_l2=1e-5, what="tp_rank 0")
    out1 = flashinfer.cutlass_fused_moe(
        x, ids, w, fc1, fc2, torch.float32, [], tp_rank=1, **common
    )[0]
    expected1 = independent_moe(
        x, ids, w, fc1, fc2, swiglu, b1=b1, offset=ep_rank * e_local
    )  # no fc2 bias
    assert_close_to_reference(out1, expected1, rel_l2=1e-5, what="tp_rank 1")


@pytest.mark.parametrize("params", ["alpha", "alpha_beta_limit", "step"])
def test_swiglu_parameters(params):
    t, e, h, i, k = 5, 2, 16, 8, 2
    x = rand_float((t, h), torch.float32, seed=10, scale=2.0)
    ids, w = routing_inputs(t, e, k, seed=11)
    fc1 = rand_float((e, 2 * i, h), torch.float32, seed=12)
    fc2 = rand_float((e, h, i), torch.float32, seed=13)
    alpha = torch.rand(e, generator=seeded_generator(14)) + 1.0
    beta = torch.rand(e, generator=seeded_generator(15))
    limit = torch.rand(e, generator=seeded_generator(16)) + 1.0
    if params == "step":
        out = flashinfer.cutlass_fused_moe(
            x, ids, w, fc1, fc2, torch.float32, None, activation_type=ActivationType.SwigluStep
        )[0]

        def act(a, ex):
            gate, up, lim = a[i:], a[:i], 7.0
            return torch.clamp(torch.nn.functional.silu(gate), max=lim) * up.clamp(-lim, lim)
    else:
        kw = (
            dict(swiglu_alpha=alpha)
            if params == "alpha"
            else dict(swiglu_alpha=alpha, swiglu_beta=beta, swiglu_limit=limit)
        )
        out = flashinfer.cutlass_fused_moe(x, ids, w, fc1, fc2, torch.float32, None, **kw)[0]

        def act(a, ex):
            al = float(alpha[ex])
            be = float(beta[ex]) if params != "alpha" else 0.0
            lim = float(limit[ex]) if params != "alpha" else math.inf
            g = a[i:].clamp(max=lim)
            u = a[:i].clamp(-lim, lim)
            return g * torch.sigmoid(al * g) * (u + be)

    expected = independent_moe(x, ids, w, fc1, fc2, act)
    assert_close_to_reference(out, expected, rel_l2=1e-5, what=params)


def situ(beta, linear_beta):
    """CUTLASS SituAdaptor in float64 on a = [up ; gate]: beta tanh(gate / beta) sigmoid(gate)
    * linear_beta tanh(up / linear_beta), with per-expert caps (lists indexed by the expert)."""

    def act(a, ex):
        i = a.shape[0] // 2
        b, lb = float(beta[ex]), float(linear_beta[ex])
        up, gate = a[:i], a[i:]
        return b * torch.tanh(gate / b) * torch.sigmoid(gate) * lb * torch.tanh(up / lb)

    return act


@pytest.mark.parametrize("params", ["defaults", "situ_beta", "both"])
def test_situ(params):
    t, e, h, i, k = 7, 3, 24, 8, 2
    x = rand_float((t, h), torch.float32, seed=30, scale=2.0)
    ids, w = routing_inputs(t, e, k, seed=31)
    fc1 = rand_float((e, 2 * i, h), torch.float32, seed=32)
    fc2 = rand_float((e, h, i), torch.float32, seed=33)
    beta = torch.tensor([0.5, 1.5, 6.0])  # small caps, so the tanh bites on |a| ~ 5
    linear_beta = torch.tensor([2.0, 0.75, 25.0])
    kw, want_beta, want_linear = {}, [4.0] * e, [25.0] * e  # flashinfer's DEFAULT_SITU_*
    if params in ("situ_beta", "both"):
        kw["situ_beta"], want_beta = beta, beta
    if params == "both":
        kw["situ_linear_beta"], want_linear = linear_beta, linear_beta
    out = flashinfer.cutlass_fused_moe(x, ids, w, fc1, fc2, torch.float32, None,
        activation_type=ActivationType.Situ, **kw)[0]  # fmt: skip
    expected = independent_moe(x, ids, w, fc1, fc2, situ(want_beta, want_linear))
    assert_close_to_reference(out, expected, rel_l2=1e-5, what=params)
    assert flashinfer.fused_moe.enums.DEFAULT_SITU_BETA == 4.0
    assert flashinfer.fused_moe.enums.DEFAULT_SITU_LINEAR_BETA == 25.0


def test_situ_with_nvfp4_weights_and_bf16_output():
    """Situ on the NVFP4 W4A4 mode: the caps act on the dequantized GEMM1 output (checked
    against the reference of the translated problem)."""
    t, e, h, i, k = 6, 2, 64, 32, 2
    x = rand_float((t, h), torch.bfloat16, seed=40)
    ids, w = routing_inputs(t, e, k, seed=41)
    fc1 = rand_float((e, 2 * i, h), torch.float32, seed=42, scale=0.3)
    fc2 = rand_float((e, h, i), torch.float32, seed=43, scale=0.3)
    a1_gs, a2_gs = torch.tensor(448.0 * 6 / 4), torch.tensor(448.0 * 6 / 3)
    w1_gs, w2_gs = 448.0 * 6 / fc1.abs().amax(dim=(1, 2)), 448.0 * 6 / fc2.abs().amax(dim=(1, 2))
    q1 = [fp4_quantize(fc1[ex], w1_gs[ex], 16, False, True) for ex in range(e)]
    q2 = [fp4_quantize(fc2[ex], w2_gs[ex], 16, False, True) for ex in range(e)]
    w1q, sf1 = torch.stack([q[0] for q in q1]), torch.stack([q[1] for q in q1])
    w2q, sf2 = torch.stack([q[0] for q in q2]), torch.stack([q[1] for q in q2])
    scales = [a1_gs, sf1.view(torch.int32), (1 / (a1_gs * w1_gs)).float(), a2_gs,
              sf2.view(torch.int32), (1 / (a2_gs * w2_gs)).float()]  # fmt: skip
    args = (x, ids, w, w1q, w2q, torch.bfloat16, scales)
    kw = dict(activation_type=ActivationType.Situ, situ_beta=torch.tensor([1.0, 2.0]),
              situ_linear_beta=torch.tensor([0.5, 3.0]))  # fmt: skip
    problem = api_cutlass.cutlass_full_problem(*args, **kw)
    assert problem.activation == ActivationType.Situ
    out = flashinfer.cutlass_fused_moe(*args, **kw)[0]
    assert_matches_reference(problem, out, out_dtype=torch.bfloat16, k1=h, k2=i, top_k=k,
                             requant=[("e2m1", t * k * i)])  # fmt: skip


@pytest.mark.parametrize(
    "activation", [ActivationType.Relu2, ActivationType.Gelu, ActivationType.Identity]
)
def test_non_gated_bf16_against_reference(activation):
    t, e, h, i, k = 6, 4, 64, 32, 2
    x = rand_float((t, h), torch.bfloat16, seed=20)
    ids, w = routing_inputs(t, e, k, seed=21)
    fc1 = rand_float((e, i, h), torch.bfloat16, seed=22, scale=0.2)
    fc2 = rand_float((e, h, i), torch.bfloat16, seed=23, scale=0.2)
    args = (x, ids, w, fc1, fc2, torch.bfloat16, None)
    problem = api_cutlass.cutlass_full_problem(*args, activation_type=activation)
    out = poison((t, h), torch.bfloat16)
    got = flashinfer.cutlass_fused_moe(*args, activation_type=activation, output=out)[0]
    assert got is out
    assert_matches_reference(
        problem, out, out_dtype=torch.bfloat16, k1=h, k2=i, top_k=k, requant=[(torch.bfloat16, i)]
    )


# ---- FP8 ----------------------------------------------------------------------------------------


def e4m3(v):
    return v.clamp(-448, 448).to(E4M3)


def test_w8a8_per_tensor_flashinfer_conventions():
    t, e, h, i, k = 6, 3, 64, 32, 2
    xf = rand_float((t, h), torch.float32, seed=30)
    ids, w = routing_inputs(t, e, k, seed=31)
    w1f = rand_float((e, 2 * i, h), torch.float32, seed=32, scale=0.1)
    w2f = rand_float((e, h, i), torch.float32, seed=33, scale=0.1)
    in_scale = xf.abs().max() / 448  # dequant scales (x ~ code * scale)
    w1_scale = w1f.abs().amax(dim=(1, 2)) / 448
    w2_scale = w2f.abs().amax(dim=(1, 2)) / 448
    xq = e4m3(xf / in_scale)
    w1q = e4m3(w1f / w1_scale[:, None, None])
    w2q = e4m3(w2f / w2_scale[:, None, None])
    fc2_act_quant = torch.tensor(4.0)  # quant multiplier of the intermediate
    quant_scales = [
        (w1_scale * in_scale).float(),  # fc1_dequant
        fc2_act_quant,
        (w2_scale / fc2_act_quant).float(),  # fc2_dequant = w2 scale times the act dequant
        in_scale.reshape(()).float(),
    ]
    problem = api_cutlass.cutlass_full_problem(xq, ids, w, w1q, w2q, torch.bfloat16, quant_scales)
    out = flashinfer.cutlass_fused_moe(xq, ids, w, w1q, w2q, torch.bfloat16, quant_scales)[0]
    assert_matches_reference(
        problem, out, out_dtype=torch.bfloat16, k1=h, k2=i, top_k=k, requant=[("e4m3", i)]
    )
    # flashinfer: GEMM1 on codes times fc1_dequant; h quantized as e4m3(h * fc2_act_quant);
    # GEMM2 on codes times fc2_dequant.
    expected = independent_moe(
        xq.double(),
        ids,
        w,
        w1q.double() * quant_scales[0].double()[:, None, None],
        w2q,
        swiglu,
        quant2=lambda h_, ex: e4m3(h_.float() * 4.0).double(),
        post2=lambda y, ex: y * float(quant_scales[2][ex]),
    )
    assert_close_to_reference(out, expected, rel_l2=3e-2, what="W8A8")


def test_deepseek_block_scales():
    t, e, h, i, k = 5, 2, 256, 192, 2  # ragged: I = 192 -> ceil(192/128) = 2 column blocks
    x = rand_float((t, h), torch.bfloat16, seed=40)
    ids, w = routing_inputs(t, e, k, seed=41)
    w1q = e4m3(rand_float((e, 2 * i, h), torch.float32, seed=42, scale=50.0))
    w2q = e4m3(rand_float((e, h, i), torch.float32, seed=43, scale=50.0))
    s1 = (
        torch.rand(e, math.ceil(2 * i / 128), math.ceil(h / 128), generator=seeded_generator(44))
        * 0.01
        + 0.001
    )
    s2 = (
        torch.rand(e, math.ceil(h / 128), math.ceil(i / 128), generator=seeded_generator(45)) * 0.01
        + 0.001
    )
    args = (x, ids, w, w1q, w2q, torch.bfloat16, [s1, s2])
    problem = api_cutlass.cutlass_full_problem(*args, use_deepseek_fp8_block_scale=True)
    out = flashinfer.cutlass_fused_moe(*args, use_deepseek_fp8_block_scale=True)[0]
    assert_matches_reference(
        problem,
        out,
        out_dtype=torch.bfloat16,
        k1=h,
        k2=i,
        top_k=k,
        requant=[("e4m3", h), ("e4m3", i)],
    )

    def blocks(s, rows, cols):
        return s.double().repeat_interleave(128, 1)[:, :rows].repeat_interleave(128, 2)[:, :, :cols]

    expected = independent_moe(
        x,
        ids,
        w,
        w1q.double() * blocks(s1, 2 * i, h),
        w2q.double() * blocks(s2, h, i),
        swiglu,
        quant1=lambda t_: fp8_group_quant(x[t_].double(), 128),
        quant2=lambda h_, ex: fp8_group_quant(h_, 128),
    )
    assert_close_to_reference(out, expected, rel_l2=3e-2, what="DeepSeek")


# ---- FP4 ----------------------------------------------------------------------------------------


def quantize_weights_fp4(wf, gs, block, ue8m0):
    """Per expert: packed codes [E, M, K/2] and 128x4-swizzled scale bytes (concatenated)."""
    codes, sfs = [], []
    for ex in range(wf.shape[0]):
        if ue8m0:
            c, s = mxfp4_quantize(wf[ex])
        else:
            c, s = fp4_quantize(wf[ex], gs[ex], block)
        codes.append(c)
        sfs.append(s.reshape(-1))
    return torch.stack(codes), torch.cat(sfs)


def decode_nvfp4(codes, sf_bytes, rows, cols, block):
    """Dequantize packed codes + swizzled e4m3 scales of one matrix (no global)."""
    return flashinfer.e2m1_and_ufp8sf_scale_to_float(codes, sf_bytes, None, block, 1, True).double()


@pytest.mark.parametrize("prequantized_input", [False, True])
def test_nvfp4_w4a4(prequantized_input):
    t, e, h, i, k = 6, 2, 128, 128, 2
    xf = rand_float((t, h), torch.bfloat16, seed=50)
    ids, w = routing_inputs(t, e, k, seed=51)
    w1f = rand_float((e, 2 * i, h), torch.float32, seed=52, scale=0.1)
    w2f = rand_float((e, h, i), torch.float32, seed=53, scale=0.1)
    w1_gs = 448 * 6 / w1f.abs().amax(dim=(1, 2))
    w2_gs = 448 * 6 / w2f.abs().amax(dim=(1, 2))
    a1_gs = torch.tensor([448 * 6 / xf.float().abs().max().item()])
    a2_gs = torch.tensor(448 * 6 / 2.0)
    w1q, sf1 = quantize_weights_fp4(w1f, w1_gs, 16, False)
    w2q, sf2 = quantize_weights_fp4(w2f, w2_gs, 16, False)
    quant_scales = [
        a1_gs,
        sf1.view(torch.int32),
        (1 / (a1_gs * w1_gs)).float(),
        a2_gs,
        sf2.view(torch.int32),
        (1 / (a2_gs * w2_gs)).float(),
    ]
    w1v, w2v = w1q.view(torch.int64), w2q.view(torch.int64)  # flashinfer passes int64 views
    if prequantized_input:
        x_in, x_sf = fp4_quantize(xf, a1_gs, 16)
        kw = dict(input_sf=x_sf)
    else:
        x_in, kw = xf, {}
    args = (x_in, ids, w, w1v, w2v, torch.bfloat16, quant_scales)
    problem = api_cutlass.cutlass_full_problem(*args, **kw)
    out = flashinfer.cutlass_fused_moe(*args, **kw)[0]
    requant = [("e2m1", i)] if prequantized_input else [("e2m1", h), ("e2m1", i)]
    assert_matches_reference(
        problem, out, out_dtype=torch.bfloat16, k1=h, k2=i, top_k=k, requant=requant
    )
    # flashinfer's convention: x ~ e2m1 * sf / a1_gs, W ~ e2m1 * sf / w_gs.
    w1d = torch.stack(
        [
            decode_nvfp4(w1q[ex], sf1.view(e, -1)[ex], 2 * i, h, 16) / float(w1_gs[ex])
            for ex in range(e)
        ]
    )
    w2d = torch.stack(
        [decode_nvfp4(w2q[ex], sf2.view(e, -1)[ex], h, i, 16) / float(w2_gs[ex]) for ex in range(e)]
    )
    xq, xsf = fp4_quantize(xf, a1_gs, 16)
    xd = decode_nvfp4(xq, xsf, t, h, 16) / float(a1_gs)

    def nvfp4_requant(v, ex):  # dynamic per 16 block scale with global 1/a2_gs
        q, s = fp4_quantize(v.float().unsqueeze(0), a2_gs, 16)
        return decode_nvfp4(q, s, 1, v.shape[0], 16)[0] / float(a2_gs)

    expected = independent_moe(
        xd, ids, w, w1d, w2d, swiglu, quant1=lambda t_: xd[t_], quant2=nvfp4_requant
    )
    assert_close_to_reference(out, expected, rel_l2=5e-2, what="NVFP4")


@pytest.mark.parametrize("weights", ["mxfp4", "mxfp8"])
@pytest.mark.parametrize("input_kind", ["fp8", "bf16"])
def test_mxfp8_activations(weights, input_kind):
    t, e, h, i, k = 4, 2, 128, 128, 2
    xf = rand_float((t, h), torch.bfloat16, seed=60)
    ids, w = routing_inputs(t, e, k, seed=61)
    w1f = rand_float((e, 2 * i, h), torch.float32, seed=62, scale=0.1)
    w2f = rand_float((e, h, i), torch.float32, seed=63, scale=0.1)
    if weights == "mxfp4":
        w1q, sf1 = quantize_weights_fp4(w1f, None, 32, True)
        w2q, sf2 = quantize_weights_fp4(w2f, None, 32, True)
        w1q, w2q = w1q.view(torch.int64), w2q.view(torch.int64)
    else:
        q1 = [mxfp8_quantize(w1f[ex]) for ex in range(e)]
        q2 = [mxfp8_quantize(w2f[ex]) for ex in range(e)]
        w1q, sf1 = torch.stack([a for a, _ in q1]), torch.cat([b.reshape(-1) for _, b in q1])
        w2q, sf2 = torch.stack([a for a, _ in q2]), torch.cat([b.reshape(-1) for _, b in q2])
    g1 = torch.rand(e, generator=seeded_generator(64)) + 0.5
    g2 = torch.rand(e, generator=seeded_generator(65)) + 0.5
    quant_scales = [sf1.view(torch.int32), g1, sf2.view(torch.int32), g2]
    if input_kind == "fp8":
        x_in, x_sf = mxfp8_quantize(xf)
        kw = dict(input_sf=x_sf)
    else:
        x_in, kw = xf, {}
    args = (x_in, ids, w, w1q, w2q, torch.bfloat16, quant_scales)
    problem = api_cutlass.cutlass_full_problem(*args, use_mxfp8_act_scaling=True, **kw)
    out = flashinfer.cutlass_fused_moe(*args, use_mxfp8_act_scaling=True, **kw)[0]
    requant = [("e4m3", i)] if input_kind == "fp8" else [("e4m3", h), ("e4m3", i)]
    assert_matches_reference(
        problem, out, out_dtype=torch.bfloat16, k1=h, k2=i, top_k=k, requant=requant
    )


def test_fp8_activations_mxfp4_weights():
    t, e, h, i, k = 4, 2, 128, 128, 1
    xq = e4m3(rand_float((t, h), torch.float32, seed=70, scale=20.0))
    ids, w = routing_inputs(t, e, k, seed=71)
    w1q, sf1 = quantize_weights_fp4(
        rand_float((e, 2 * i, h), torch.float32, seed=72), None, 32, True
    )
    w2q, sf2 = quantize_weights_fp4(rand_float((e, h, i), torch.float32, seed=73), None, 32, True)
    g1 = torch.rand(e, generator=seeded_generator(74)) * 0.01
    g2 = torch.rand(e, generator=seeded_generator(75)) * 0.01
    a2 = torch.tensor(8.0)
    quant_scales = [
        sf1,
        g1,
        a2,
        sf2,
        g2,
    ]  # uint8 scale bytes and uint8 packed weights are accepted too
    problem = api_cutlass.cutlass_full_problem(xq, ids, w, w1q, w2q, torch.float16, quant_scales)
    out = flashinfer.cutlass_fused_moe(xq, ids, w, w1q, w2q, torch.float16, quant_scales)[0]
    assert_matches_reference(
        problem, out, out_dtype=torch.float16, k1=h, k2=i, top_k=k, requant=[("e4m3", i)]
    )
    # flashinfer convention: the intermediate code is e4m3(h * a2) and GEMM2 is scaled by fc2_global.
    assert problem.inter_quant.static_scale.item() == pytest.approx(1 / 8.0)
    assert torch.allclose(problem.w2.global_scale, g2 * 8.0)
