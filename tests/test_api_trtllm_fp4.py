"""The public trtllm_* FP4 paths: NvFP4 x NvFP4 with biases (linear or prepared weights),
MxFP4 weights with MxFP8 or BF16 activations (routed, trimmed output) and with per-tensor FP8
activations, on the CPU executor, against the float64 computation of flashinfer's documented
math (tests/trtllm_math.py): e2m1 code times block scale as the raw operand, the three output
scalars, and the NvFP4 / MxFP8 requantization of the GEMM1 output.
"""

from __future__ import annotations

import pytest
import torch
from flashinfer.fused_moe import api_trtllm as api
from flashinfer.quantization import (
    e2m1_and_ufp8sf_scale_to_float,
    fp4_quantize,
    mxfp8_quantize,
)
from numeric import assert_close_to_reference, rand_float
from quant_models import mx_requant
from trtllm_math import (
    BF16,
    E4M3,
    RENORM,
    E,
    K,
    T,
    common,
    fp4_weights,
    moe64,
    mx_dequant,
    nvfp4_requant,
    packed_words,
    prepare_rows,
    renormalize_routing,
    silu,
    situ,
    swiglu,
)

# ---- FP4 block scale ------------------------------------------------------------------------------------


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


@pytest.mark.parametrize("routed", [False, True])
def test_fp4_nvfp4_situ_clamp_and_lora_delta(routed, gen):
    """NvFP4 x NvFP4 Situ with flashinfer's SiTU recipe: output1_scale_scalar = c alone (the
    dequant 1 / (w1 hs) stays inside the tanh, as output1_scale_gate_scalar on both halves),
    gemm1_clamp_limit in raw-accumulator units (the kernel clamps before the dequant, so the
    caller divides the real limit by the gate scalar), the caps gemm1_alpha / gemm1_beta in real
    units. Routed: plus a gemm1_lora_delta in real units (flashinfer's wrapper converts it)."""
    h, i = 128, 64
    x = rand_float((T, h), torch.float32, 150)
    w1 = rand_float((E, 2 * i, h), torch.float32, 151, 3 * h**-0.5)
    w2 = rand_float((E, h, i), torch.float32, 152, i**-0.5)
    hs = 448.0 * 6 / x.abs().max()
    w1_gs = 448.0 * 6 / w1.abs().amax(dim=(1, 2))
    w2_gs = 448.0 * 6 / w2.abs().amax(dim=(1, 2))
    c = torch.tensor(448.0 * 6 / 2.0)
    xq, xsf = fp4_quantize(x, hs, 16, False, is_sf_swizzled_layout=False)
    w1q, w1sf, g1, g1sf = fp4_weights(w1, 16, True, w1_gs)
    w2q, w2sf, g2, g2sf = fp4_weights(w2, 16, False, w2_gs)
    gate = (1.0 / (w1_gs * hs)).float()
    out1, out2 = c.expand(E).clone().float(), (1.0 / (c * w2_gs)).float()
    alpha, beta = torch.tensor([0.5, 1.0, 2.0, 4.0]), torch.tensor([25.0, 3.0, 1.0, 0.5])
    real_limit = torch.tensor([2.0, 1.0, 0.75, 1.5])
    raw_limit = (real_limit / gate).float()
    delta = rand_float((T, K, 2 * i), BF16, 153, 0.5) if routed else None
    args = (g1, g1sf, None, alpha, beta, raw_limit, g2, g2sf, None, out1, gate, out2)
    if routed:
        ids = torch.stack([torch.randperm(E, generator=gen)[:K] for _ in range(T)])
        w = (torch.rand(T, K, generator=gen) + 0.1).to(BF16)
        res = api.trtllm_fp4_block_scale_routed_moe(packed_words(ids, w), None, xq,
            xsf.view(E4M3), *args, **common(), activation_type=10,
            gemm1_lora_delta=delta)  # fmt: skip
        assert len(res) == 3
        w = w.double()
    else:
        logits = rand_float((T, E), torch.float32, 154)
        res = api.trtllm_fp4_block_scale_moe(logits, None, xq, xsf.view(E4M3), *args,
            **common(), routing_method_type=RENORM, activation_type=10)  # fmt: skip
        assert len(res) == 1
        ids, w = renormalize_routing(logits)
    xr, w1r, w2r = fp4_raw(xq, xsf, 16), fp4_raw(w1q, w1sf, 16), fp4_raw(w2q, w2sf, 16)
    clamped = 0
    ref = torch.zeros(T, h, dtype=torch.float64)
    for t in range(T):
        for j in range(K):
            e = int(ids[t, j])
            a = (w1r[e] @ xr[t]) * gate[e].double()  # real GEMM1 output, both halves
            if routed:
                a = a + delta[t, j].double()
            clamped += int((a.abs() > float(real_limit[e])).sum())
            hid = situ(a, float(alpha[e]), float(beta[e]), float(real_limit[e]))
            y1 = hid * out1[e].double()
            ref[t] += float(w[t, j]) * (w2r[e] @ nvfp4_requant(y1)) * out2[e].double()
            if routed:
                row = int(res[1][t, j])
                assert_close_to_reference(res[2][row], hid, rel_l2=1e-2, what=f"row {t},{j}")
    assert clamped > 0  # the limits bite
    assert_close_to_reference(res[0], ref, rel_l2=3e-2)
