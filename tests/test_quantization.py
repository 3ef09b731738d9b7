"""Tests of flashinfer.quantization: the element codecs on every code, the scale formulas of
docs/semantics.md, quantize -> dequantize error bounds, the 128x4 swizzle against its formula,
and bad-input errors."""

from __future__ import annotations

import math

import pytest
import torch
from flashinfer.quantization import (
    SfLayout,
    block_scale_deinterleave,
    block_scale_interleave,
    dequantize_fp8,
    e2m1_and_ufp8sf_scale_to_float,
    e2m1_decode,
    e2m1_encode,
    e4m3_decode,
    e4m3_encode,
    fp4_quantize,
    mxfp4_dequantize,
    mxfp4_quantize,
    mxfp8_dequantize_host,
    mxfp8_quantize,
    nvfp4_quantize,
    pack_e2m1,
    quantize_fp8_block,
    quantize_fp8_per_tensor,
    quantize_fp8_per_token,
    quantize_fp8_per_token_group,
    ue8m0_decode,
    unpack_e2m1,
)

E2M1_VALUES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def _e4m3_from_bits(b: int) -> float:
    """e4m3fn decoded from its bit fields, written independently of torch."""
    sign = -1.0 if b & 0x80 else 1.0
    exp, man = (b >> 3) & 0xF, b & 7
    if exp == 0xF and man == 7:
        return math.nan
    if exp == 0:
        return sign * man / 8 * 2.0**-6
    return sign * (1 + man / 8) * 2.0 ** (exp - 7)


def _all_e4m3_values() -> torch.Tensor:
    return torch.tensor([_e4m3_from_bits(b) for b in range(256)], dtype=torch.float64)


# ---- e4m3 ----------------------------------------------------------------------------------------


def test_e4m3_decode_all_codes():
    got = e4m3_decode(torch.arange(256, dtype=torch.uint8)).double()
    want = _all_e4m3_values()
    assert torch.equal(torch.isnan(got), torch.isnan(want))
    ok = ~torch.isnan(want)
    assert torch.equal(got[ok], want[ok])
    assert got[0x7E] == 448 and got[0x7F].isnan() and got[0xFF].isnan()


def test_e4m3_encode_round_trip_all_codes():
    codes = torch.arange(256, dtype=torch.uint8)
    finite = ~torch.isnan(_all_e4m3_values())
    back = e4m3_encode(e4m3_decode(codes)).view(torch.uint8)
    assert torch.equal(back[finite], codes[finite])


def test_e4m3_ties_go_to_even_code_and_saturate():
    vals = _all_e4m3_values()[:0x7F]  # 0 .. 448, ascending
    mids = ((vals[:-1] + vals[1:]) / 2).float()  # every midpoint is exact in fp32
    got = e4m3_encode(mids).view(torch.uint8).long()
    lower = torch.arange(0x7E)
    want = torch.where(lower % 2 == 0, lower, lower + 1)
    assert torch.equal(got, want)
    assert torch.equal(e4m3_encode(-mids).view(torch.uint8).long(), want | 0x80)
    big = torch.tensor([448.0, 463.9, 464.0, 500.0, 1e30, math.inf, -1e9, -math.inf])
    assert e4m3_encode(big).float().tolist() == [448.0] * 6 + [-448.0] * 2
    assert e4m3_encode(torch.tensor([math.nan])).float().isnan().all()


def test_e4m3_encode_is_nearest(gen):
    x = torch.randn(2000, generator=gen) * torch.exp2(
        torch.randint(-12, 9, (2000,), generator=gen).float()
    )
    q = e4m3_encode(x).double()
    table = _all_e4m3_values()
    table = table[~torch.isnan(table)]
    best = (x.double().clamp(-448, 448).unsqueeze(1) - table.unsqueeze(0)).abs().amin(dim=1)
    assert torch.equal((x.double().clamp(-448, 448) - q).abs(), best)
    assert e4m3_encode(x.double()).dtype == torch.float8_e4m3fn


# ---- e2m1 and ue8m0 --------------------------------------------------------------------------------


def test_e2m1_decode_all_codes_and_ignore_high_nibble():
    codes = torch.arange(256, dtype=torch.uint8)
    got = e2m1_decode(codes)
    base = torch.tensor(E2M1_VALUES + [-v for v in E2M1_VALUES])
    assert torch.equal(got, base.repeat(16))
    assert torch.equal(torch.signbit(got[:16]), torch.arange(16) >= 8)


def test_e2m1_encode_round_trip_ties_and_saturation():
    codes = torch.arange(16, dtype=torch.uint8)
    assert torch.equal(e2m1_encode(e2m1_decode(codes)), codes)
    ties = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])
    assert e2m1_decode(e2m1_encode(ties)).tolist() == [0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0]
    assert e2m1_decode(e2m1_encode(-ties)).tolist() == [-0.0, -1.0, -1.0, -2.0, -2.0, -4.0, -4.0]
    sat = torch.tensor([6.0, 6.5, 100.0, math.inf, -7.0, -math.inf])
    assert e2m1_decode(e2m1_encode(sat)).tolist() == [6.0] * 4 + [-6.0] * 2


def test_e2m1_encode_is_nearest(gen):
    x = (torch.rand(3000, generator=gen) - 0.5) * 16
    got = e2m1_decode(e2m1_encode(x)).double()
    table = torch.tensor(E2M1_VALUES + [-v for v in E2M1_VALUES], dtype=torch.float64)
    best = (x.double().clamp(-6, 6).unsqueeze(1) - table).abs().amin(dim=1)
    assert torch.equal((x.double().clamp(-6, 6) - got).abs(), best)


def test_pack_unpack_e2m1(gen):
    codes = torch.randint(0, 16, (3, 10), generator=gen, dtype=torch.uint8)
    packed = pack_e2m1(codes)
    assert packed.shape == (3, 5)
    assert torch.equal(packed & 0xF, codes[:, 0::2]) and torch.equal(packed >> 4, codes[:, 1::2])
    assert torch.equal(unpack_e2m1(packed), codes)
    with pytest.raises(ValueError, match="codes"):
        pack_e2m1(codes[:, :3])
    with pytest.raises(TypeError, match="codes"):
        pack_e2m1(codes.float())


def test_ue8m0_decode():
    b = torch.arange(256, dtype=torch.uint8)
    got = ue8m0_decode(b)
    want = torch.tensor([2.0 ** (i - 127) for i in range(255)], dtype=torch.float32)
    assert torch.equal(got[:255], want) and got[255].isnan()


# ---- fp8 --------------------------------------------------------------------------------------------


def _fp8_bound(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Half an e4m3 ulp relative (2^-4) plus half the subnormal step (2^-10) times the scale,
    plus fp32 slack."""
    return x.abs() * 2.0**-4 + s * 2.0**-10 + x.abs() * 1e-6


def test_fp8_per_tensor(gen):
    x = torch.randn(7, 33, generator=gen, dtype=torch.float64) * 3
    x_orig = x.clone()
    q, s = quantize_fp8_per_tensor(x)
    assert q.dtype == torch.float8_e4m3fn and s.shape == () and s.dtype == torch.float32
    assert s == x.float().abs().max() / 448
    assert q.float().abs().max() == 448
    dq = dequantize_fp8(q, s)
    assert ((dq.double() - x).abs() <= _fp8_bound(x, s.double())).all()
    assert torch.equal(x, x_orig)
    q0, s0 = quantize_fp8_per_tensor(torch.zeros(3, 4))
    assert s0 == 1 and (q0.float() == 0).all()


def test_fp8_per_token(gen):
    x = torch.randn(9, 40, generator=gen) * torch.exp2(torch.arange(9.0)).unsqueeze(1)
    x[4] = 0
    q, s = quantize_fp8_per_token(x)
    assert s.shape == (9, 1)
    want = x.abs().amax(dim=1, keepdim=True) / 448
    want[4] = 1
    assert torch.equal(s, want)
    dq = dequantize_fp8(q, s)
    assert ((dq - x).abs() <= _fp8_bound(x, s)).all()


@pytest.mark.parametrize("k,group", [(256, 128), (200, 64), (37, 16)])
def test_fp8_per_token_group(gen, k, group):
    x = torch.randn(5, k, generator=gen, dtype=torch.bfloat16)
    q, s = quantize_fp8_per_token_group(x, group)
    ng = -(-k // group)
    assert q.shape == (5, k) and s.shape == (5, ng)
    for gi in range(ng):
        blk = x[:, gi * group : (gi + 1) * group].float()
        assert torch.equal(s[:, gi], blk.abs().amax(dim=1) / 448)
    dq = dequantize_fp8(q, s, (1, group))
    full = s.repeat_interleave(group, 1)[:, :k]
    assert ((dq - x.float()).abs() <= _fp8_bound(x.float(), full)).all()


@pytest.mark.parametrize("shape,block", [((256, 384), (128, 128)), ((3, 130, 70), (64, 32))])
def test_fp8_block(gen, shape, block):
    w = torch.randn(*shape, generator=gen)
    q, s = quantize_fp8_block(w, block)
    bm, bk = block
    m, k = shape[-2:]
    assert s.shape == (*shape[:-2], -(-m // bm), -(-k // bk))
    w3 = w.reshape(-1, m, k)
    s3 = s.reshape(-1, *s.shape[-2:])
    for e in range(w3.shape[0]):
        for i in range(s3.shape[1]):
            for j in range(s3.shape[2]):
                tile = w3[e, i * bm : (i + 1) * bm, j * bk : (j + 1) * bk]
                assert s3[e, i, j] == tile.abs().max() / 448
    dq = dequantize_fp8(q, s, block)
    full = s.repeat_interleave(bm, -2).repeat_interleave(bk, -1)[..., :m, :k]
    assert ((dq - w).abs() <= _fp8_bound(w, full)).all()


def test_fp8_bad_inputs():
    with pytest.raises(TypeError, match="x"):
        quantize_fp8_per_token(torch.ones(2, 3, dtype=torch.int32))
    with pytest.raises(ValueError, match="w"):
        quantize_fp8_block(torch.ones(4))
    with pytest.raises(ValueError, match="block"):
        quantize_fp8_block(torch.ones(4, 4), (0, 128))
    q, s = quantize_fp8_block(torch.randn(4, 8), (2, 4))
    with pytest.raises(ValueError, match="scale"):
        dequantize_fp8(q, s[:1], (2, 4))


# ---- fp4 ---------------------------------------------------------------------------------------------


def test_swizzle_matches_formula(gen):
    m, c = 130, 5
    sf = torch.randint(1, 255, (m, c), generator=gen, dtype=torch.uint8)
    out = block_scale_interleave(sf)
    mp, cp = 256, 8
    assert out.shape == (mp * cp,)
    want = torch.zeros(mp * cp, dtype=torch.uint8)
    for r in range(m):
        for col in range(c):
            off = (
                ((r // 128) * (cp // 4) + col // 4) * 512
                + (r % 32) * 16
                + ((r % 128) // 32) * 4
                + col % 4
            )
            want[off] = sf[r, col]
    assert torch.equal(out, want)
    assert torch.equal(block_scale_deinterleave(out, (m, c)), sf)
    stack = torch.randn(3, 40, 6, generator=gen).to(torch.bfloat16)
    inter = block_scale_interleave(stack)
    assert inter.shape == (3 * 128 * 8,) and inter.dtype == torch.bfloat16
    assert torch.equal(inter[128 * 8 : 2 * 128 * 8], block_scale_interleave(stack[1]))
    assert torch.equal(block_scale_deinterleave(inter, stack.shape), stack)


def test_nvfp4_exact_block():
    # Block amax 6 * 2 with gs 1: sf = 2 exactly, every value a code times 2.
    vals = torch.tensor(E2M1_VALUES + [-v for v in E2M1_VALUES]) * 2
    x = vals.reshape(1, 16)
    q, sf = fp4_quantize(x, 1.0, is_sf_swizzled_layout=False)
    assert sf.shape == (1, 1) and e4m3_decode(sf).item() == 2.0
    assert torch.equal(unpack_e2m1(q), torch.arange(16, dtype=torch.uint8).reshape(1, 16))
    dq = e2m1_and_ufp8sf_scale_to_float(q, sf, 1.0, is_sf_swizzled_layout=False)
    assert torch.equal(dq, x)


@pytest.mark.parametrize("swizzled", [True, False])
def test_nvfp4_round_trip(gen, swizzled):
    x = torch.randn(200, 64, generator=gen, dtype=torch.bfloat16) * 5
    x_orig = x.clone()
    gs = 448 * 6 / x.float().abs().max()
    q, sf = fp4_quantize(x, gs, is_sf_swizzled_layout=swizzled)
    assert q.shape == (200, 32) and q.dtype == torch.uint8 and sf.dtype == torch.uint8
    assert sf.shape == ((256, 4) if swizzled else (200, 4))
    lin = block_scale_deinterleave(sf, (200, 4)) if swizzled else sf
    amax = x.float().reshape(200, 4, 16).abs().amax(-1)
    assert torch.equal(e4m3_decode(lin), e4m3_encode(amax / 6 * gs).float())
    dq = e2m1_and_ufp8sf_scale_to_float(q, sf, 1 / gs, is_sf_swizzled_layout=swizzled)
    bound = (amax / 6).repeat_interleave(16, 1) * 1.07 + 1e-6
    assert ((dq - x.float()).abs() <= bound).all()
    assert torch.equal(x, x_orig)
    if swizzled:
        q2, sf2 = nvfp4_quantize(x, gs)
        assert torch.equal(q2, q) and torch.equal(sf2, sf)


def test_nvfp4_inverse_global_matches_semantics(gen):
    x = torch.randn(4, 32, generator=gen)
    g = torch.tensor([0.013])
    q, sf = fp4_quantize(x, g, is_sf_swizzled_layout=False, is_global_scale_inversed=True)
    amax = x.reshape(4, 2, 16).abs().amax(-1)
    want_sf = e4m3_encode(amax / 6 / g).float()
    assert torch.equal(e4m3_decode(sf), want_sf)
    step = (want_sf * g).repeat_interleave(16, 1)
    assert torch.equal(unpack_e2m1(q), e2m1_encode(x / step))


def test_mxfp4_round_trip(gen):
    x = torch.randn(130, 96, generator=gen)
    q, sf = mxfp4_quantize(x)
    assert sf.shape == (256, 4)
    lin = block_scale_deinterleave(sf, (130, 3))
    amax = x.reshape(130, 3, 32).abs().amax(-1)
    s = ue8m0_decode(lin)
    assert (s >= amax / 6).all() and (s / 2 < amax / 6).all()
    dq = mxfp4_dequantize(q, sf)
    assert ((dq - x).abs() <= s.repeat_interleave(32, 1) + 1e-6).all()
    q_lin, sf_lin = mxfp4_quantize(x, sfLayout=SfLayout.layout_linear)
    assert torch.equal(q_lin, q) and torch.equal(sf_lin, lin)


def test_mxfp8_round_trip_and_padding(gen):
    x = torch.randn(3, 50, generator=gen, dtype=torch.float16)
    q, sf = mxfp8_quantize(x, is_sf_swizzled_layout=False, alignment=64)
    assert q.shape == (3, 64) and sf.shape == (3, 2)
    assert (q[:, 50:].float() == 0).all()
    amax = torch.nn.functional.pad(x.float(), (0, 14)).reshape(3, 2, 32).abs().amax(-1)
    s = ue8m0_decode(sf)
    assert (s >= amax / 448).all() and (s / 2 < amax / 448).all()
    dq = mxfp8_dequantize_host(q, sf, is_sf_swizzled_layout=False)[:, :50]
    full = s.repeat_interleave(32, 1)[:, :50]
    assert ((dq - x.float()).abs() <= _fp8_bound(x.float(), full)).all()
    q2, sf2 = mxfp8_quantize(x, alignment=64)
    assert torch.equal(q2.view(torch.uint8), q.view(torch.uint8))
    assert torch.equal(block_scale_deinterleave(sf2, (3, 2)), sf)
    assert torch.equal(mxfp8_dequantize_host(q2, sf2), mxfp8_dequantize_host(q, sf, False))
    z, zsf = mxfp8_quantize(torch.zeros(1, 32), is_sf_swizzled_layout=False)
    assert zsf.item() == 127


def test_fp4_bad_inputs():
    with pytest.raises(ValueError, match="sf_vec_size"):
        fp4_quantize(torch.randn(2, 24))
    with pytest.raises(ValueError, match="sf_vec_size"):
        fp4_quantize(torch.randn(2, 32), sf_vec_size=8)
    with pytest.raises(TypeError, match="input"):
        fp4_quantize(torch.ones(2, 32, dtype=torch.int64))
    with pytest.raises(ValueError, match="input"):
        fp4_quantize(torch.randn(32))
    with pytest.raises(ValueError, match="global_scale"):
        fp4_quantize(torch.randn(2, 32), torch.ones(2))
    with pytest.raises(ValueError, match="swizzled_sf"):
        block_scale_deinterleave(torch.zeros(10, dtype=torch.uint8), (4, 4))
    with pytest.raises(ValueError, match="unswizzled_sf"):
        block_scale_interleave(torch.zeros(4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="alignment"):
        mxfp8_quantize(torch.randn(2, 32), alignment=48)


def test_nvfp4_quantize_shuffle_and_layouts(gen):
    from flashinfer.fused_moe.layout import shuffle_matrix_a, shuffle_matrix_sf_a

    x = torch.randn(128, 64, generator=gen)
    gs = 448 * 6 / x.abs().max()
    q_lin, sf_lin = nvfp4_quantize(x, gs, SfLayout.layout_linear)
    assert sf_lin.shape == (128, 4)
    q_sh, sf_sh = nvfp4_quantize(x, gs, do_shuffle=True)
    assert torch.equal(q_sh, shuffle_matrix_a(q_lin, 128))
    assert sf_sh.shape == sf_lin.shape  # flashinfer's form: the swizzled bytes, linear shape
    assert torch.equal(sf_sh.reshape(-1), shuffle_matrix_sf_a(sf_lin, 128))
    with pytest.raises(NotImplementedError, match="8x4"):
        nvfp4_quantize(x, gs, SfLayout.layout_8x4)
