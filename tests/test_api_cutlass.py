"""``cutlass_fused_moe`` full form, ``cutlass_fused_moe_workspace_size``, form detection, and the
routing helpers (``route``, ``pack_topk_ids``), on the CPU executor.

Each quantization mode is run against ``reference_moe`` of the problem it was translated into,
and the modes whose scale conventions are easy to get wrong (float, W8A8, DeepSeek block, NVFP4)
also against an independent float64 computation in flashinfer's own conventions
(shared/reference/flashinfer_api.md section 4: quant multipliers, ``fc1_dequant``, ...).
"""

from __future__ import annotations

import math

import flashinfer
import pytest
import torch
from flashinfer.fused_moe import (
    ActivationType,
    RoutingMethodType,
    api_cutlass,
    cutlass_fused_moe_workspace_size,
)
from flashinfer.fused_moe.reference import reference_moe, reference_routing
from flashinfer.fused_moe.routing import pack_topk_ids, route, unpack_topk_ids
from flashinfer.quantization import fp4_quantize, mxfp4_quantize, mxfp8_quantize
from numeric import assert_close_to_reference, error_budget, poison, rand_float

E4M3 = torch.float8_e4m3fn
E2M1_VALUES = torch.tensor(
    [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], dtype=torch.float64
)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def routing_inputs(t, e_global, k, seed):
    """Distinct random global ids per token and random positive weights."""
    ids = torch.stack(
        [torch.randperm(e_global, generator=_gen(seed + r))[:k] for r in range(t)]
    ).to(torch.int32)
    return ids, torch.rand(t, k, generator=_gen(seed)) + 0.1


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


def assert_rel(actual, expected, tol, what=""):
    err = ((actual.double() - expected).norm() / expected.norm()).item()
    assert err <= tol, f"{what}: relative L2 error {err:.3e} > {tol:.1e}"


def check_reference(problem, out, **budget):
    assert_close_to_reference(out, reference_moe(problem), rel_l2=error_budget(**budget).rel_l2)


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
    assert_rel(out[0], expected, 1e-5, "tp_rank 0")
    out1 = flashinfer.cutlass_fused_moe(
        x, ids, w, fc1, fc2, torch.float32, [], tp_rank=1, **common
    )[0]
    expected1 = independent_moe(
        x, ids, w, fc1, fc2, swiglu, b1=b1, offset=ep_rank * e_local
    )  # no fc2 bias
    assert_rel(out1, expected1, 1e-5, "tp_rank 1")


@pytest.mark.parametrize("params", ["alpha", "alpha_beta_limit", "step"])
def test_swiglu_parameters(params):
    t, e, h, i, k = 5, 2, 16, 8, 2
    x = rand_float((t, h), torch.float32, seed=10, scale=2.0)
    ids, w = routing_inputs(t, e, k, seed=11)
    fc1 = rand_float((e, 2 * i, h), torch.float32, seed=12)
    fc2 = rand_float((e, h, i), torch.float32, seed=13)
    alpha = torch.rand(e, generator=_gen(14)) + 1.0
    beta = torch.rand(e, generator=_gen(15))
    limit = torch.rand(e, generator=_gen(16)) + 1.0
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
    assert_rel(out, expected, 1e-5, params)


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
    check_reference(
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
    check_reference(
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
    assert_rel(out, expected, 3e-2, "W8A8")


def test_deepseek_block_scales():
    t, e, h, i, k = 5, 2, 256, 192, 2  # ragged: I = 192 -> ceil(192/128) = 2 column blocks
    x = rand_float((t, h), torch.bfloat16, seed=40)
    ids, w = routing_inputs(t, e, k, seed=41)
    w1q = e4m3(rand_float((e, 2 * i, h), torch.float32, seed=42, scale=50.0))
    w2q = e4m3(rand_float((e, h, i), torch.float32, seed=43, scale=50.0))
    s1 = (
        torch.rand(e, math.ceil(2 * i / 128), math.ceil(h / 128), generator=_gen(44)) * 0.01 + 0.001
    )
    s2 = torch.rand(e, math.ceil(h / 128), math.ceil(i / 128), generator=_gen(45)) * 0.01 + 0.001
    args = (x, ids, w, w1q, w2q, torch.bfloat16, [s1, s2])
    problem = api_cutlass.cutlass_full_problem(*args, use_deepseek_fp8_block_scale=True)
    out = flashinfer.cutlass_fused_moe(*args, use_deepseek_fp8_block_scale=True)[0]
    check_reference(
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

    def group_quant(v):
        out_ = torch.empty_like(v)
        for c in range(0, v.shape[0], 128):
            g = v[c : c + 128].float()
            sc = g.abs().max() / 448
            out_[c : c + 128] = (e4m3(g / sc).float() * sc).double()
        return out_

    expected = independent_moe(
        x,
        ids,
        w,
        w1q.double() * blocks(s1, 2 * i, h),
        w2q.double() * blocks(s2, h, i),
        swiglu,
        quant1=lambda t_: group_quant(x[t_].double()),
        quant2=lambda h_, ex: group_quant(h_),
    )
    assert_rel(out, expected, 3e-2, "DeepSeek")


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
    check_reference(problem, out, out_dtype=torch.bfloat16, k1=h, k2=i, top_k=k, requant=requant)
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
    assert_rel(out, expected, 5e-2, "NVFP4")


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
    g1 = torch.rand(e, generator=_gen(64)) + 0.5
    g2 = torch.rand(e, generator=_gen(65)) + 0.5
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
    check_reference(problem, out, out_dtype=torch.bfloat16, k1=h, k2=i, top_k=k, requant=requant)


def test_fp8_activations_mxfp4_weights():
    t, e, h, i, k = 4, 2, 128, 128, 1
    xq = e4m3(rand_float((t, h), torch.float32, seed=70, scale=20.0))
    ids, w = routing_inputs(t, e, k, seed=71)
    w1q, sf1 = quantize_weights_fp4(
        rand_float((e, 2 * i, h), torch.float32, seed=72), None, 32, True
    )
    w2q, sf2 = quantize_weights_fp4(rand_float((e, h, i), torch.float32, seed=73), None, 32, True)
    g1 = torch.rand(e, generator=_gen(74)) * 0.01
    g2 = torch.rand(e, generator=_gen(75)) * 0.01
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
    check_reference(
        problem, out, out_dtype=torch.float16, k1=h, k2=i, top_k=k, requant=[("e4m3", i)]
    )
    # flashinfer convention: the intermediate code is e4m3(h * a2) and GEMM2 is scaled by fc2_global.
    assert problem.inter_quant.static_scale.item() == pytest.approx(1 / 8.0)
    assert torch.allclose(problem.w2.global_scale, g2 * 8.0)


# ---- workspace, detection, errors ----------------------------------------------------------------


def test_workspace_size_and_buffer():
    h, i, e, k = 64, 32, 4, 2
    kw = dict(x_dtype=torch.bfloat16, weight_dtype=torch.bfloat16, device="cpu")
    sizes = [cutlass_fused_moe_workspace_size(n, h, i, e, k, **kw) for n in (0, 1, 16, 256)]
    assert sizes[0] == 0 and sizes == sorted(sizes)
    for wd, xd, flags in [
        (torch.int64, torch.bfloat16, {}),
        (torch.int64, E4M3, dict(use_mxfp8_act_scaling=True)),
        (E4M3, torch.bfloat16, dict(use_deepseek_fp8_block_scale=True)),
        (E4M3, E4M3, {}),
        (torch.int64, torch.uint8, {}),
    ]:
        assert (
            cutlass_fused_moe_workspace_size(
                16, h, i, e, k, x_dtype=xd, weight_dtype=wd, device="cpu", **flags
            )
            >= 0
        )
    t = 16
    x = rand_float((t, h), torch.bfloat16, seed=80)
    ids, w = routing_inputs(t, e, k, seed=81)
    fc1 = rand_float((e, 2 * i, h), torch.bfloat16, seed=82)
    fc2 = rand_float((e, h, i), torch.bfloat16, seed=83)
    need = cutlass_fused_moe_workspace_size(t, h, i, e, k, **kw)
    ref = flashinfer.cutlass_fused_moe(x, ids, w, fc1, fc2, torch.bfloat16, None)[0]
    got = flashinfer.cutlass_fused_moe(
        x,
        ids,
        w,
        fc1,
        fc2,
        torch.bfloat16,
        None,
        workspace_buffer=torch.empty(need, dtype=torch.int8),
    )[0]
    assert torch.equal(got, ref)
    if need > 0:
        with pytest.raises(ValueError, match="workspace_buffer"):
            flashinfer.cutlass_fused_moe(
                x,
                ids,
                w,
                fc1,
                fc2,
                torch.bfloat16,
                None,
                workspace_buffer=torch.empty(need - 1, dtype=torch.uint8),
            )
    with pytest.raises(ValueError, match="num_experts_total"):
        cutlass_fused_moe_workspace_size(4, h, i, 5, k, ep_size=2, **kw)


def test_form_detection_and_zero_tokens():
    e, h, i = 2, 16, 8
    assert api_cutlass.is_seed_call(
        (torch.zeros(1, h), torch.zeros(1, e), torch.zeros(e, 2, i, h)), {}
    )
    assert api_cutlass.is_seed_call((torch.zeros(1, h),), {"gating_output": torch.zeros(1, e)})
    assert not api_cutlass.is_seed_call(
        (torch.zeros(1, h), torch.zeros(1, 2, dtype=torch.int32)), {}
    )
    out = flashinfer.cutlass_fused_moe(
        torch.empty(0, h),
        torch.empty(0, 2, dtype=torch.int32),
        torch.empty(0, 2),
        torch.ones(e, 2 * i, h),
        torch.ones(e, h, i),
        torch.float32,
        None,
    )
    assert out[0].shape == (0, h)


def _full_args(t=3, e=2, h=16, i=8, k=2):
    ids, w = routing_inputs(t, e, k, seed=90)
    return [
        rand_float((t, h), torch.bfloat16, seed=91),
        ids,
        w,
        rand_float((e, 2 * i, h), torch.bfloat16, seed=92),
        rand_float((e, h, i), torch.bfloat16, seed=93),
        torch.bfloat16,
        None,
    ]


@pytest.mark.parametrize(
    "change, exc, match",
    [
        (dict(min_latency_mode=True), NotImplementedError, "min_latency_mode"),
        (dict(use_w4_group_scaling=True), NotImplementedError, "use_w4_group_scaling"),
        (dict(use_packed_weights=True), NotImplementedError, "use_packed_weights"),
        (dict(activation_type=ActivationType.Situ), NotImplementedError, "Situ"),
        (dict(cluster_size=2), ValueError, "cluster_size"),
        (dict(ep_rank=1), ValueError, "ep_rank"),
        (dict(tp_size=2, tp_rank=2), ValueError, "tp_rank"),
        (
            dict(fc1_expert_biases=torch.zeros(2, 16, dtype=torch.bfloat16)),
            ValueError,
            "fc2_expert_biases",
        ),
        (
            dict(fc1_expert_biases=torch.zeros(2, 16), fc2_expert_biases=torch.zeros(2, 16)),
            TypeError,
            "fc1_expert_biases",
        ),
        (dict(swiglu_alpha=torch.ones(3)), ValueError, "swiglu_alpha"),
        (dict(activation_type=ActivationType.Gelu), ValueError, "fc1_expert_weights"),
        (dict(output=torch.empty(3, 16)), TypeError, "output"),
        (dict(use_deepseek_fp8_block_scale=True), ValueError, "use_deepseek_fp8_block_scale"),
        ({6: [torch.ones(1)]}, ValueError, "quant_scales"),
        ({5: torch.int8}, TypeError, "output_dtype"),
        ({1: torch.zeros(3, 2, dtype=torch.int64)}, TypeError, "token_selected_experts"),
        ({2: torch.ones(3, 3)}, ValueError, "token_final_scales"),
        ({4: torch.zeros(2, 16, 8, dtype=torch.float16)}, TypeError, "fc2_expert_weights"),
    ],
)
def test_full_form_bad_arguments(change, exc, match):
    args = _full_args()
    kwargs = {}
    for key, value in change.items():
        if isinstance(key, int):
            args[key] = value
        else:
            kwargs[key] = value
    with pytest.raises(exc, match=match):
        flashinfer.cutlass_fused_moe(*args, **kwargs)


def test_quantized_modes_bad_scales():
    t, e, h, i, k = 2, 2, 128, 128, 1
    ids, w = routing_inputs(t, e, k, seed=95)
    w1q = torch.zeros(e, 2 * i, h, dtype=E4M3)
    w2q = torch.zeros(e, h, i, dtype=E4M3)
    x = torch.zeros(t, h, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="quant_scales"):  # wrong grid for 128x128 blocks
        flashinfer.cutlass_fused_moe(
            x,
            ids,
            w,
            w1q,
            w2q,
            torch.bfloat16,
            [torch.ones(e, 2, 2), torch.ones(e, 1, 1)],
            use_deepseek_fp8_block_scale=True,
        )
    with pytest.raises(NotImplementedError, match="float8_e4m3fn weights"):
        flashinfer.cutlass_fused_moe(x, ids, w, w1q, w2q, torch.bfloat16, [])
    p1 = torch.zeros(e, 2 * i, h // 2, dtype=torch.uint8)
    p2 = torch.zeros(e, h, i // 2, dtype=torch.uint8)
    small = torch.zeros(10, dtype=torch.uint8)
    one = torch.ones(1)
    with pytest.raises(ValueError, match="block scales"):
        flashinfer.cutlass_fused_moe(
            x,
            ids,
            w,
            p1,
            p2,
            torch.bfloat16,
            [one, small, torch.ones(e), one, small, torch.ones(e)],
        )
    with pytest.raises(ValueError, match="input_sf"):  # pre-quantized fp4 input without its scales
        flashinfer.cutlass_fused_moe(
            torch.zeros(t, h // 2, dtype=torch.uint8),
            ids,
            w,
            p1,
            p2,
            torch.bfloat16,
            [
                one,
                torch.zeros(e * 256 * 8, dtype=torch.uint8),
                torch.ones(e),
                one,
                torch.zeros(e * 128 * 8, dtype=torch.uint8),
                torch.ones(e),
            ],
        )


def test_inputs_not_modified():
    args = _full_args()
    copies = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    flashinfer.cutlass_fused_moe(*args)
    for a, b in zip(args, copies):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)


# ---- routing helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, k, kw",
    [
        (RoutingMethodType.Default, 2, {}),
        (RoutingMethodType.Renormalize, 3, {}),
        (
            RoutingMethodType.DeepSeekV3,
            4,
            dict(n_group=4, topk_group=2, routed_scaling_factor=2.5, bias=True),
        ),
        (RoutingMethodType.Llama4, 1, {}),
        (RoutingMethodType.RoundRobin, 2, {}),
        (RoutingMethodType.SigmoidRenorm, 2, dict(norm_topk_prob=False)),
    ],
)
def test_route_matches_reference(method, k, kw):
    t, e = 7, 16
    logits = rand_float((t, e), torch.bfloat16, seed=100)
    bias = rand_float((e,), torch.float32, seed=101) if kw.pop("bias", False) else None
    ids, weights = route(logits, k, method, routing_bias=bias, **kw)
    assert ids.dtype == torch.int32 and weights.dtype == torch.float32 and ids.shape == (t, k)
    from flashinfer.fused_moe.problem import RoutingSpec

    spec = RoutingSpec(
        method=method,
        logits=logits,
        bias=bias,
        n_group=kw.get("n_group", 0),
        topk_group=kw.get("topk_group", 0),
        routed_scaling_factor=kw.get("routed_scaling_factor", 1.0),
        norm_topk_prob=kw.get("norm_topk_prob", True),
    )
    ref_ids, ref_w = reference_routing(spec, t, e, k)
    assert torch.equal(ids.long(), ref_ids)
    assert torch.allclose(weights.double(), ref_w, rtol=1e-6, atol=1e-7)


def test_route_bad_arguments():
    logits = torch.zeros(3, 8)
    with pytest.raises(ValueError, match="top_k"):
        route(logits, 9)
    with pytest.raises(ValueError, match="top_k"):
        route(logits, 2, RoutingMethodType.Llama4)
    with pytest.raises(TypeError, match="routing_logits"):
        route(logits.to(torch.int32), 2)
    with pytest.raises(ValueError, match="routing_bias"):
        route(logits, 2, RoutingMethodType.DeepSeekV3, routing_bias=torch.zeros(7))
    ids, wts = route(torch.zeros(0, 8), 2)
    assert ids.shape == (0, 2) and wts.shape == (0, 2)


def test_pack_unpack_topk_ids():
    ids = torch.tensor([[0, 5], [255, -1], [32767, 7]], dtype=torch.int32)
    weights = torch.tensor([[0.5, -1.25], [3.0e-3, 0.0], [-7.0, 1e30]], dtype=torch.float32)
    packed = pack_topk_ids(ids, weights)
    assert packed.dtype == torch.int32
    # (id << 16) | bf16 bits: e.g. id 5 with weight -1.25 = bf16 0xBFA0.
    assert int(packed[0, 1]) == (5 << 16) | 0xBFA0
    got_ids, got_w = unpack_topk_ids(packed)
    assert torch.equal(got_ids, ids)
    assert torch.equal(got_w, weights.to(torch.bfloat16).float())
    with pytest.raises(ValueError, match="topk_ids"):
        pack_topk_ids(torch.tensor([[40000]], dtype=torch.int32), torch.ones(1, 1))
    with pytest.raises(ValueError, match="topk_weights"):
        pack_topk_ids(ids, torch.ones(3, 3))
