"""The sm90 mixed-input weight preparation helpers: layouts against loop transcriptions of the
reference's kernels and formulas, inverses, the Humming preprocessing against direct value
computations, errors and flashinfer's signatures."""

from __future__ import annotations

import inspect
from fractions import Fraction

import pytest
import torch
from flashinfer.fused_moe import core, prepare
from flashinfer.fused_moe.prepare import (
    deinterleave_moe_scales_for_sm90_mixed_gemm,
    deinterleave_moe_weights_for_sm90_mixed_gemm,
    interleave_moe_scales_for_sm90_mixed_gemm,
    interleave_moe_weights_for_sm90_mixed_gemm,
    preprocess_moe_weights_for_sm90_mixed_gemm_humming,
)

# ---- weights: a per-thread transcription of the interleave kernels -----------------------------

# "fp4": where each source nibble's 3 magnitude bits (m0, m1, m2) and sign go in the output word
FP4_FIELDS = {
    0: ((6, 7, 8), 15),
    1: ((22, 23, 24), 31),
    2: ((3, 4, 5), 12),
    3: ((19, 20, 21), 28),
    4: ((0, 1, 2), 9),
    5: ((16, 17, 18), 25),
    6: ((13, 10, 11), 14),
    7: ((29, 26, 27), 30),
}
# "fp4_fp8": output nibble j keeps its magnitude and takes the sign of source nibble SIGN_FROM[j]
SIGN_FROM = (4, 0, 5, 1, 6, 2, 7, 3)


def _fp4_bits(word: int) -> int:
    out = 0
    for nib, (mag_dest, sign_dest) in FP4_FIELDS.items():
        for b, d in enumerate(mag_dest):
            out |= ((word >> (4 * nib + b)) & 1) << d
        out |= ((word >> (4 * nib + 3)) & 1) << sign_dest
    return out


def _fp4_fp8_bits(word: int) -> int:
    out = word & 0x77777777
    for j, src in enumerate(SIGN_FROM):
        out |= ((word >> (4 * src + 3)) & 1) << (4 * j + 3)
    return out


def _loop_interleave(w: torch.Tensor, quant_type: str) -> torch.Tensor:
    e_count, n, half_k = w.shape
    k = 2 * half_k
    src = w.tolist()
    out = [[[None] * half_k for _ in range(n)] for _ in range(e_count)]
    for e in range(e_count):
        for block in range(n // 2):
            row = block // 8 * 16 + block % 8
            for part in range(k // 64):
                for lane in range(16):
                    if quant_type == "fp4":
                        mma = lane // 4
                        dst_row = row + (mma % 2) * 8
                        col = part * 32 + mma * 8 + lane % 4
                        dst_col = part * 32 + lane // 8 * 16 + (lane % 4) * 4
                        b = [
                            src[e][row][col],
                            src[e][row + 8][col],
                            src[e][row][col + 4],
                            src[e][row + 8][col + 4],
                        ]
                        word = _fp4_bits(b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24)
                    else:  # 16-bit units
                        dst_row = row + (lane % 8) // 4 * 8
                        col = 2 * (part * 16 + lane)
                        dst_col = 2 * (part * 16 + lane // 8 * 8 + (lane % 4) * 2)
                        a = src[e][row][col] | src[e][row][col + 1] << 8
                        c = src[e][row + 8][col] | src[e][row + 8][col + 1] << 8
                        word = a | c << 16
                        if quant_type == "fp4_fp8":
                            word = _fp4_fp8_bits(word)
                    for j in range(4):
                        assert out[e][dst_row][dst_col + j] is None, "written twice"
                        out[e][dst_row][dst_col + j] = (word >> (8 * j)) & 0xFF
    return torch.tensor(out, dtype=torch.uint8)


@pytest.mark.parametrize("quant_type", ["fp4", "fp4_fp8", "int4"])
@pytest.mark.parametrize("shape", [(1, 16, 32), (2, 32, 64)])
def test_weights_match_kernel_transcription(gen, quant_type, shape):
    w = torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)
    got = interleave_moe_weights_for_sm90_mixed_gemm(w, quant_type)
    assert got.shape == w.shape and got.dtype == torch.uint8
    assert torch.equal(got, _loop_interleave(w, quant_type))
    assert torch.equal(w, w.clone())  # input untouched (a copy is returned)
    assert got.data_ptr() != w.data_ptr()


@pytest.mark.parametrize("quant_type", ["fp4", "fp4_fp8", "int4"])
def test_weights_inverse(gen, quant_type):
    w = torch.randint(0, 256, (3, 48, 96), dtype=torch.uint8, generator=gen)
    inter = interleave_moe_weights_for_sm90_mixed_gemm(w, quant_type)
    assert not torch.equal(inter, w)
    assert torch.equal(deinterleave_moe_weights_for_sm90_mixed_gemm(inter, quant_type), w)


def test_weight_argument_errors():
    w = torch.zeros(2, 16, 32, dtype=torch.uint8)
    with pytest.raises(ValueError, match="quant_type must be one of"):
        interleave_moe_weights_for_sm90_mixed_gemm(w, "mxfp4")
    with pytest.raises(ValueError, match="uint8"):
        interleave_moe_weights_for_sm90_mixed_gemm(w.to(torch.int8))
    with pytest.raises(ValueError, match="3D"):
        interleave_moe_weights_for_sm90_mixed_gemm(w[0])
    with pytest.raises(ValueError, match="divisible by 16"):
        interleave_moe_weights_for_sm90_mixed_gemm(torch.zeros(1, 24, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="divisible by 64"):
        interleave_moe_weights_for_sm90_mixed_gemm(torch.zeros(1, 16, 48, dtype=torch.uint8))


# ---- scales ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype,group,folded_m,cols", [(torch.uint8, 32, 16, 16), (torch.bfloat16, 128, 8, 8)]
)
def test_scales_fold_each_64x128_block(gen, dtype, group, folded_m, cols):
    e, rows, k = 2, 128, 512
    s = torch.randint(0, 256, (e, rows, k // group), dtype=torch.uint8, generator=gen)
    if dtype == torch.bfloat16:
        s = torch.randn(e, rows, k // group, generator=gen).bfloat16()
    got = interleave_moe_scales_for_sm90_mixed_gemm(s, group)
    assert got.shape == (e, rows // 64, k // 128, folded_m, cols) and got.dtype == dtype
    a = 128 // group
    for ei in range(e):
        for rb in range(rows // 64):
            for kb in range(k // 128):
                for f in range(folded_m):
                    for c in range(cols):
                        i, g = divmod(c, a)  # slice i of the 64 rows, group g of the 128 K
                        want = s[ei, rb * 64 + i * folded_m + f, kb * a + g]
                        assert got[ei, rb, kb, f, c] == want
    assert torch.equal(deinterleave_moe_scales_for_sm90_mixed_gemm(got, group), s)


def test_scale_argument_errors():
    with pytest.raises(ValueError, match="3D"):
        interleave_moe_scales_for_sm90_mixed_gemm(torch.zeros(64, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="divide 128"):
        interleave_moe_scales_for_sm90_mixed_gemm(torch.zeros(1, 64, 4, dtype=torch.uint8), 48)
    with pytest.raises(ValueError, match="divisible by 64"):
        interleave_moe_scales_for_sm90_mixed_gemm(torch.zeros(1, 32, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="K128"):
        interleave_moe_scales_for_sm90_mixed_gemm(torch.zeros(1, 64, 6, dtype=torch.uint8))
    with pytest.raises(ValueError, match="folded M slice"):
        interleave_moe_scales_for_sm90_mixed_gemm(torch.zeros(1, 64, 4, dtype=torch.complex128))


# ---- Humming -----------------------------------------------------------------------------------

GRID = [Fraction(v) for v in (0, 0.5, 1, 1.5, 2, 3, 4, 6)]


def _round_half_away(x: Fraction) -> int:
    """The e2m1 code nearest to x, ties to the larger magnitude; the sign bit (8) is kept for
    x < 0 even when the magnitude rounds to 0 (a float's -0.0)."""
    mag = abs(x)
    best = min(range(8), key=lambda i: (abs(GRID[i] - mag), -GRID[i]))
    return best | (8 if x < 0 else 0)


def _e2m1(code: int) -> Fraction:
    v = GRID[code & 7]
    return -v if code & 8 else v


@pytest.mark.parametrize("max_range", [0, 2, 11])
def test_humming_scales_and_codes(gen, max_range):
    e, rows, k = 2, 64, 128
    w = torch.randint(0, 256, (e, rows, k // 2), dtype=torch.uint8, generator=gen)
    base = torch.randint(110, 130, (e, 1, 1), generator=gen)
    raw = (base + torch.randint(0, max_range + 5, (e, rows, k // 32), generator=gen)).to(
        torch.uint8
    )
    w2, offset, residual = preprocess_moe_weights_for_sm90_mixed_gemm_humming(
        w, raw, max_range, interleave=False
    )
    assert w2.shape == w.shape and offset.shape == raw.shape and residual.shape == (e,)
    assert residual.dtype == torch.float32 and offset.dtype == torch.uint8
    raw_l, w_l, w2_l, off_l = raw.tolist(), w.tolist(), w2.tolist(), offset.tolist()
    for ei in range(e):
        flat = [b for r in raw_l[ei] for b in r]
        low = max(flat) - min(max(flat) - min(flat), max_range)
        assert residual[ei].item() == 2.0 ** (low - 127) / 2
        for r in range(rows):
            for blk in range(k // 32):
                clamped = max(raw_l[ei][r][blk], low)
                assert off_l[ei][r][blk] == clamped - low + 1
                delta = clamped - raw_l[ei][r][blk]
                for i in range(32 * blk, 32 * blk + 32):
                    old = (w_l[ei][r][i // 2] >> (4 * (i % 2))) & 0xF
                    new = (w2_l[ei][r][i // 2] >> (4 * (i % 2))) & 0xF
                    if old == 8:  # an input -0 is written as +0
                        want = 0
                    else:
                        want = old if delta == 0 else _round_half_away(_e2m1(old) / 2**delta)
                    assert new == want, (old, delta, new, want)


def test_humming_interleaved_outputs_compose(gen):
    w = torch.randint(0, 256, (2, 64, 128), dtype=torch.uint8, generator=gen)
    raw = torch.randint(118, 127, (2, 64, 8), dtype=torch.uint8, generator=gen)
    logical = preprocess_moe_weights_for_sm90_mixed_gemm_humming(w, raw, interleave=False)
    ready = preprocess_moe_weights_for_sm90_mixed_gemm_humming(w, raw)
    assert torch.equal(ready[0], interleave_moe_weights_for_sm90_mixed_gemm(logical[0], "fp4_fp8"))
    assert torch.equal(ready[1], interleave_moe_scales_for_sm90_mixed_gemm(logical[1]))
    assert torch.equal(ready[2], logical[2])
    assert ready[1].shape == (2, 1, 2, 16, 16)


def test_humming_argument_errors():
    w = torch.zeros(1, 16, 32, dtype=torch.uint8)
    raw = torch.zeros(1, 16, 2, dtype=torch.uint8)
    with pytest.raises(ValueError, match="raw_scale must have shape"):
        preprocess_moe_weights_for_sm90_mixed_gemm_humming(w, raw[:, :, :1])
    with pytest.raises(ValueError, match="max_range"):
        preprocess_moe_weights_for_sm90_mixed_gemm_humming(w, raw, 12)
    with pytest.raises(ValueError, match="uint8 E8M0"):
        preprocess_moe_weights_for_sm90_mixed_gemm_humming(w, raw.float())
    with pytest.raises(ValueError, match="divisible by 32"):
        preprocess_moe_weights_for_sm90_mixed_gemm_humming(w[..., :8], raw)


# ---- names and signatures ----------------------------------------------------------------------


def test_exports_and_signatures():
    import flashinfer.fused_moe as fm

    for name in (
        "interleave_moe_weights_for_sm90_mixed_gemm",
        "interleave_moe_scales_for_sm90_mixed_gemm",
        "preprocess_moe_weights_for_sm90_mixed_gemm_humming",
    ):
        assert getattr(fm, name) is getattr(prepare, name)
    assert (
        core.interleave_moe_weights_for_sm90_mixed_gemm
        is interleave_moe_weights_for_sm90_mixed_gemm
    )
    assert (
        core.interleave_moe_scales_for_sm90_mixed_gemm is interleave_moe_scales_for_sm90_mixed_gemm
    )

    def params(fn):
        return [(p.name, p.default, p.kind) for p in inspect.signature(fn).parameters.values()]

    P, KW, E = (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
        inspect.Parameter.empty,
    )
    assert params(interleave_moe_weights_for_sm90_mixed_gemm) == [
        ("weight", E, P),
        ("quant_type", "fp4", P),
    ]
    assert params(interleave_moe_scales_for_sm90_mixed_gemm) == [
        ("scales", E, P),
        ("group_size", 32, P),
    ]
    assert params(preprocess_moe_weights_for_sm90_mixed_gemm_humming) == [
        ("weight", E, P),
        ("raw_scale", E, P),
        ("max_range", 11, P),
        ("interleave", True, KW),
    ]


def test_docstrings_say_cutlass_fused_moe_cannot_consume_them():
    for fn in (
        interleave_moe_weights_for_sm90_mixed_gemm,
        interleave_moe_scales_for_sm90_mixed_gemm,
        preprocess_moe_weights_for_sm90_mixed_gemm_humming,
    ):
        doc = " ".join(fn.__doc__.split())
        assert "cannot consume" in doc and "NotImplementedError" in doc


@pytest.mark.parametrize("flag", ["use_w4_group_scaling", "use_wfp4afp8_humming"])
def test_cutlass_fused_moe_refuses_the_prepared_layouts(gen, flag):
    from flashinfer import cutlass_fused_moe

    e, h, i, t = 2, 128, 128, 3
    w1 = torch.randint(0, 256, (e, 2 * i, h // 2), dtype=torch.uint8, generator=gen)
    w2 = torch.randint(0, 256, (e, h, i // 2), dtype=torch.uint8, generator=gen)
    s1 = torch.full((e, 2 * i, h // 32), 127, dtype=torch.uint8)
    s2 = torch.full((e, h, i // 32), 127, dtype=torch.uint8)
    scales = [
        interleave_moe_scales_for_sm90_mixed_gemm(s1).view(torch.int32),
        interleave_moe_scales_for_sm90_mixed_gemm(s2).view(torch.int32),
    ]
    with pytest.raises(NotImplementedError, match=flag):
        cutlass_fused_moe(
            torch.randn(t, h, generator=gen).bfloat16(),
            torch.zeros(t, 1, dtype=torch.int32),
            torch.ones(t, 1),
            interleave_moe_weights_for_sm90_mixed_gemm(w1),
            interleave_moe_weights_for_sm90_mixed_gemm(w2),
            torch.bfloat16,
            scales,
            **{flag: True},
        )
