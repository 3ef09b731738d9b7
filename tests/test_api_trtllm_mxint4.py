"""MXINT4 (W4A16): ``trtllm_mxint4_block_scale_moe`` / ``_routed_moe`` on the CPU executor, the
canonical ``Int4Packed`` weight format, and ``mxint4_quantize`` / ``mxint4_dequantize``.

The API tests build weights as flashinfer's MXINT4 test does (quantize, gated row interleave,
shuffle with tile 128, BlockMajorK with 128-byte blocks, bf16 scales row-permuted alike and
128x4-interleaved) or pass native MajorK weights, and compare with a float64 model of
flashinfer's math written here from the format's description (shared/reference/flashinfer_api.md
5.6: two's complement int4 codes, low nibble first, times one bf16 scale per 32 of K; bf16
activations; SwiGLU; a bf16 GEMM1 output): the int4 decoding in this file is independent of the
library's. The canonical tests run ``Int4Packed`` problems through ``_C.run_cpu`` against the
float64 reference: bitwise on small integers with power-of-two scales, within the error budget
on random data. The CUDA refusal is checked by tests/test_gpu_api.py.
"""

from __future__ import annotations

import inspect

import flashinfer
import flashinfer.fused_moe as fused_moe
import pytest
import torch
from flashinfer import _C, quantization
from flashinfer.fused_moe import core, trtllm_mxint4
from flashinfer.fused_moe.enums import ActivationType as Act
from flashinfer.fused_moe.enums import ElemFormat, ScaleFormat, WeightLayout
from flashinfer.fused_moe.problem import QuantTensor
from flashinfer.fused_moe.reference import dequantize, reference_moe
from flashinfer.quantization import block_scale_interleave, mxint4_dequantize, mxint4_quantize
from moe_builders import build_problem, seeded_generator
from moe_checks import check_against_reference, run_native
from numeric import assert_close_to_reference, assert_exact, rand_float
from trtllm_math import (
    BF16,
    RENORM,
    E,
    K,
    T,
    common,
    moe64,
    packed_words,
    prepare_rows,
    prepare_stack,
    renormalize_routing,
    swiglu,
)

moe = trtllm_mxint4.trtllm_mxint4_block_scale_moe
routed = trtllm_mxint4.trtllm_mxint4_block_scale_routed_moe
NATIVE = dict(use_shuffled_weight=False, weight_layout=WeightLayout.MajorK)


# ---- the format, written from its description (independent of the library) -----------------------


def int4_codes(packed: torch.Tensor) -> torch.Tensor:
    """uint8 [..., K/2] -> int64 [..., K]: low nibble = even element, two's complement."""
    nib = torch.stack((packed & 0xF, packed >> 4), dim=-1).flatten(-2).long()
    return torch.where(nib >= 8, nib - 16, nib)


def pack_int4(codes: torch.Tensor) -> torch.Tensor:
    """int [..., K] in -8..7 -> uint8 [..., K/2], low nibble = even element."""
    nib = (codes.long() & 0xF).to(torch.uint8)
    return nib[..., 0::2] | (nib[..., 1::2] << 4)


def mxint4_values(packed: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """float64 code * scale, one scale per 32 elements of K (the last block may be short)."""
    codes = int4_codes(packed).double()
    return codes * scales.double().repeat_interleave(32, -1)[..., : codes.shape[-1]]


def random_mxint4(n, m, k, seed, scale=None):
    """Random codes -8..7 (packed) and positive bf16 scales [n, m, ceil(k/32)]."""
    g = seeded_generator(seed)
    codes = torch.randint(-8, 8, (n, m, k), generator=g)
    s = rand_float((n, m, -(-k // 32)), torch.float32, seed + 1).abs()
    s = (s * (scale if scale is not None else 0.4 * k**-0.5)).to(BF16)
    return pack_int4(codes), s


def prepare_mxint4(packed, scales, gated):
    """flashinfer's MXINT4 recipe: weights interleaved (gated) + shuffled (tile 128), then
    BlockMajorK of 128 bytes; bf16 scales with the same rows, then ``block_scale_interleave``."""
    w = prepare_stack(packed, gated=gated, block_major_k=True)
    s = torch.stack([block_scale_interleave(prepare_rows(sc, 128, gated)) for sc in scales])
    return w, s


def model(x, w1, s1, w2, s2, ids, weights, offset=0, n_local=E, **clamp):
    """flashinfer's MXINT4 math in float64: bf16 x, SwiGLU of GEMM1 rounded to bf16, GEMM2."""
    w1r, w2r = mxint4_values(w1, s1), mxint4_values(w2, s2)
    xd = x.double()

    def expert(t, e, _):
        return w2r[e] @ swiglu(w1r[e] @ xd[t], **clamp).to(BF16).double()

    return moe64(ids, weights, expert, w2.shape[1], offset, n_local)


# ---- signatures and exports ---------------------------------------------------------------------------

FLASHINFER_PARAMS = {
    "trtllm_mxint4_block_scale_moe": [
        ("routing_logits", inspect.Parameter.empty), ("routing_bias", inspect.Parameter.empty),
        ("hidden_states", inspect.Parameter.empty), ("gemm1_weights", inspect.Parameter.empty),
        ("gemm1_weights_scale", inspect.Parameter.empty), ("gemm1_alpha", inspect.Parameter.empty),
        ("gemm1_beta", inspect.Parameter.empty), ("gemm1_clamp_limit", inspect.Parameter.empty),
        ("gemm2_weights", inspect.Parameter.empty),
        ("gemm2_weights_scale", inspect.Parameter.empty), ("num_experts", inspect.Parameter.empty),
        ("top_k", inspect.Parameter.empty), ("n_group", inspect.Parameter.empty),
        ("topk_group", inspect.Parameter.empty), ("intermediate_size", inspect.Parameter.empty),
        ("local_expert_offset", inspect.Parameter.empty),
        ("local_num_experts", inspect.Parameter.empty),
        ("routed_scaling_factor", inspect.Parameter.empty), ("routing_method_type", 0),
        ("do_finalize", True), ("enable_pdl", None), ("output", None),
        ("tune_max_num_tokens", 8192), ("norm_topk_prob", True), ("routing_replay_out", None),
    ],
    "trtllm_mxint4_block_scale_routed_moe": [
        ("topk_ids", inspect.Parameter.empty), ("hidden_states", inspect.Parameter.empty),
        ("gemm1_weights", inspect.Parameter.empty),
        ("gemm1_weights_scale", inspect.Parameter.empty), ("gemm1_alpha", inspect.Parameter.empty),
        ("gemm1_beta", inspect.Parameter.empty), ("gemm1_clamp_limit", inspect.Parameter.empty),
        ("gemm2_weights", inspect.Parameter.empty),
        ("gemm2_weights_scale", inspect.Parameter.empty), ("num_experts", inspect.Parameter.empty),
        ("top_k", inspect.Parameter.empty), ("n_group", inspect.Parameter.empty),
        ("topk_group", inspect.Parameter.empty), ("intermediate_size", inspect.Parameter.empty),
        ("local_expert_offset", inspect.Parameter.empty),
        ("local_num_experts", inspect.Parameter.empty),
        ("routed_scaling_factor", inspect.Parameter.empty), ("routing_method_type", 0),
        ("do_finalize", True), ("enable_pdl", None), ("gemm1_lora_delta", None), ("output", None),
        ("tune_max_num_tokens", 8192),
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(FLASHINFER_PARAMS))
def test_signatures_match_flashinfer(name):
    """flashinfer's parameters and defaults, in order; then only the keyword-only layout
    extension (flashinfer's kernel takes the prepared layout alone)."""
    params = inspect.signature(getattr(trtllm_mxint4, name)).parameters.values()
    positional = [(p.name, p.default) for p in params if p.kind == p.POSITIONAL_OR_KEYWORD]
    assert positional == FLASHINFER_PARAMS[name]
    extra = [(p.name, p.default) for p in params if p.kind == p.KEYWORD_ONLY]
    assert extra == [("use_shuffled_weight", True), ("weight_layout", WeightLayout.BlockMajorK)]


def test_exported_where_flashinfer_exports_them():
    """flashinfer.fused_moe and flashinfer.fused_moe.core (the same objects), not the top level."""
    for name in FLASHINFER_PARAMS:
        fn = getattr(trtllm_mxint4, name)
        assert getattr(fused_moe, name) is fn and getattr(core, name) is fn
        assert name in fused_moe.__all__ and name in core.__all__
        assert not hasattr(flashinfer, name)
    assert quantization.mxint4_quantize is mxint4_quantize
    assert fused_moe.mxint4_dequantize is mxint4_dequantize


# ---- the public functions against flashinfer's math ---------------------------------------------------


def test_prepared_layout_matches_flashinfer_math():
    """flashinfer's MXINT4 test recipe end to end: mxint4_quantize per expert, the prepared
    layout (the default), routing from logits; returns [output]."""
    h, i = 256, 256  # BlockMajorK: K bytes multiples of 128
    x = rand_float((T, h), BF16, 300)
    w1f = rand_float((E, 2 * i, h), BF16, 301, h**-0.5)
    w2f = rand_float((E, h, i), BF16, 302, i**-0.5)
    (w1, s1), (w2, s2) = mxint4_quantize(w1f), mxint4_quantize(w2f)
    assert w1.shape == (E, 2 * i, h // 2) and s1.shape == (E, 2 * i, h // 32) and s1.dtype == BF16
    g1, gs1 = prepare_mxint4(w1, s1, gated=True)
    g2, gs2 = prepare_mxint4(w2, s2, gated=False)
    assert g1.shape == (E, h // 256, 2 * i, 128) and gs1.dtype == BF16
    logits = rand_float((T, E), torch.float32, 303)
    res = moe(logits, None, x, g1, gs1, None, None, None, g2, gs2, **common(i=i),
              routing_method_type=RENORM)  # fmt: skip
    assert isinstance(res, list) and len(res) == 1 and res[0].dtype == BF16
    ids, w = renormalize_routing(logits)
    ref = model(x, w1, s1, w2, s2, ids, w)
    assert_close_to_reference(res[0], ref, rel_l2=1e-2)
    # The quantized weights are close to the originals, so this is also a real MoE of them.
    assert_close_to_reference(mxint4_values(w1, s1), w1f.double(), rel_l2=0.2)


def test_native_majork_routed_with_ep_and_clamped_swiglu():
    """The keyword-only extension (MajorK, unshuffled, linear scales; K a multiple of 32 only),
    packed precomputed routing, an expert-parallel window, the gpt-oss clamp parameters and a
    caller's output tensor."""
    h, i, off, nl = 96, 64, 1, 2
    x = rand_float((T, h), BF16, 310)
    w1, s1 = random_mxint4(nl, 2 * i, h, 311)
    w2, s2 = random_mxint4(nl, h, i, 312)
    g = seeded_generator(313)
    ids = torch.stack([torch.randperm(E, generator=g)[:K] for _ in range(T)]).to(torch.int32)
    wts = (torch.rand(T, K, generator=g) + 0.1).to(BF16)
    alpha, beta, limit = (torch.full((nl,), v) for v in (1.702, 1.0, 7.0))
    out = torch.full((T, h), float("nan"), dtype=BF16)
    res = routed(packed_words(ids, wts), x, w1, s1, alpha, beta, limit, w2, s2,
                 **common(num_local=nl, offset=off, i=i), output=out, **NATIVE)  # fmt: skip
    assert len(res) == 1 and res[0] is out
    ref = model(x, w1, s1, w2, s2, ids, wts.double(), off, nl, alpha=1.702, beta=1.0, limit=7.0)
    assert_close_to_reference(out, ref, rel_l2=1e-2)


def test_do_finalize_false_and_routing_replay():
    h, i = 64, 32
    x = rand_float((T, h), BF16, 320)
    w1, s1 = random_mxint4(E, 2 * i, h, 321)
    w2, s2 = random_mxint4(E, h, i, 322)
    logits = rand_float((T, E), torch.float32, 323)
    replay = torch.full((T + 2, K), -7, dtype=torch.int16)
    res = moe(logits, None, x, w1, s1, None, None, None, w2, s2, **common(i=i),
              routing_method_type=RENORM, do_finalize=False, routing_replay_out=replay,
              **NATIVE)  # fmt: skip
    assert len(res) == 3
    gemm2_out, expert_w, e2p = res
    ids, w = renormalize_routing(logits)
    assert torch.equal(replay[:T].long(), ids) and (replay[T:] == -7).all()
    assert_close_to_reference(expert_w, w, rel_l2=1e-2)
    combined = torch.zeros(T, h, dtype=torch.float64)
    for t in range(T):
        for j in range(K):
            combined[t] += expert_w[t, j].double() * gemm2_out[int(e2p[t, j])].double()
    assert_close_to_reference(combined, model(x, w1, s1, w2, s2, ids, w), rel_l2=1e-2)


def test_fresh_random_inputs():
    """New data on every run (the seed is in the failure message): any shape that is a
    multiple of 32, prepared or native, from logits or routed."""
    seed = int(torch.randint(0, 2**30, (1,)).item())
    g = seeded_generator(seed)
    h, i = (int(v) * 256 for v in torch.randint(1, 3, (2,), generator=g))
    prepared = bool(torch.randint(0, 2, (1,), generator=g))
    x = rand_float((T, h), BF16, seed)
    w1, s1 = random_mxint4(E, 2 * i, h, seed + 1)
    w2, s2 = random_mxint4(E, h, i, seed + 2)
    args1, args2 = (w1, s1), (w2, s2)
    kw = {} if prepared else NATIVE
    if prepared:
        args1, args2 = prepare_mxint4(w1, s1, True), prepare_mxint4(w2, s2, False)
    logits = rand_float((T, E), torch.float32, seed + 3)
    res = moe(logits, None, x, *args1, None, None, None, *args2, **common(i=i),
              routing_method_type=RENORM, **kw)  # fmt: skip
    ids, w = renormalize_routing(logits)
    assert_close_to_reference(res[0], model(x, w1, s1, w2, s2, ids, w), rel_l2=1e-2,
                              what=f"seed {seed}, H {h}, I {i}, prepared {prepared}")  # fmt: skip


def _call(**over):
    h, i = 64, 32
    w1, s1 = random_mxint4(E, 2 * i, h, 330)
    w2, s2 = random_mxint4(E, h, i, 331)
    kw = dict(routing_logits=torch.ones(T, E), routing_bias=None,
              hidden_states=torch.ones(T, h, dtype=BF16), gemm1_weights=w1,
              gemm1_weights_scale=s1, gemm1_alpha=None, gemm1_beta=None, gemm1_clamp_limit=None,
              gemm2_weights=w2, gemm2_weights_scale=s2, **common(i=i), **NATIVE)  # fmt: skip
    kw.update(over)
    return moe(**kw)


@pytest.mark.parametrize(
    "over, exc, match",
    [
        (dict(hidden_states=torch.ones(T, 64)), TypeError, "hidden_states"),
        (dict(hidden_states=torch.ones(T, 48, dtype=BF16)), ValueError, "hidden_states"),
        (dict(gemm1_weights=torch.zeros(E, 64, 32)), TypeError, "gemm1_weights"),
        (dict(gemm1_weights=torch.zeros(E, 60, 32, dtype=torch.uint8)), ValueError, "gemm1_weights"),
        (dict(gemm2_weights=torch.zeros(E, 64, 32, dtype=torch.uint8)), ValueError, "gemm2_weights"),
        (dict(gemm1_weights_scale=torch.ones(E, 64, 2)), TypeError, "gemm1_weights_scale"),
        (dict(gemm2_weights_scale=torch.ones(E, 64, 2, dtype=BF16)), ValueError,
         "gemm2_weights_scale"),
        (dict(use_shuffled_weight=True, gemm1_weights_scale=torch.ones(E, 64, 2, dtype=BF16)),
         ValueError, "gemm1_weights_scale"),
        (dict(intermediate_size=16), ValueError, "intermediate_size"),
        (dict(weight_layout=WeightLayout.BlockMajorK), ValueError, "gemm1_weights"),
        (dict(weight_layout=WeightLayout.MajorMn), ValueError, "weight_layout"),
        (dict(gemm1_alpha=torch.ones(E + 1)), ValueError, "gemm1_alpha"),
        (dict(gemm1_beta=torch.ones(E, dtype=torch.float64)), TypeError, "gemm1_beta"),
        (dict(output=torch.empty(T, 32, dtype=BF16)), ValueError, "output"),
        (dict(output=torch.empty(T, 64)), TypeError, "output"),
        (dict(routing_logits=torch.ones(T, E + 1)), ValueError, "routing_logits"),
        (dict(top_k=E + 1), ValueError, "top_k"),
        (dict(routing_method_type=10), ValueError, "routing_method_type"),
    ],
)  # fmt: skip
def test_bad_input_names_the_argument(over, exc, match):
    with pytest.raises(exc, match=match):
        _call(**over)


def test_lora_delta_not_supported_yet():
    w1, s1 = random_mxint4(E, 64, 64, 340)
    w2, s2 = random_mxint4(E, 64, 32, 341)
    ids = packed_words(torch.zeros(T, K, dtype=torch.int32), torch.ones(T, K))
    with pytest.raises(NotImplementedError, match="gemm1_lora_delta"):
        routed(ids, torch.ones(T, 64, dtype=BF16), w1, s1, None, None, None, w2, s2,
               **common(i=32), gemm1_lora_delta=torch.zeros(T, K, 64, dtype=BF16),
               **NATIVE)  # fmt: skip


# ---- the canonical Int4Packed format: executor vs float64 reference --------------------------------


def int4_quant_tensor(n, m, k, seed, exact):
    """An Int4Packed QuantTensor [n, m, k] with linear bf16 scales per 1 x 32 (ragged last
    block when k % 32). Exact tier: scales 2^-1 or 2^0."""
    if exact:
        g = seeded_generator(seed)
        codes = torch.randint(-8, 8, (n, m, k), generator=g)
        scale = torch.pow(2.0, -torch.randint(0, 2, (n, m, -(-k // 32)), generator=g).float())
        packed, scale = pack_int4(codes), scale.to(BF16)
    else:
        packed, scale = random_mxint4(n, m, k, seed)
    return QuantTensor(packed, ElemFormat.Int4Packed, scale, ScaleFormat.Float, block_rows=1,
                       block_cols=32)  # fmt: skip


def int4_problem(*, exact, activation=Act.Swiglu, H=64, I=48, **kw):  # noqa: E741
    extra = dict(in_dtype=torch.float32, out_dtype=torch.float32, compute=torch.float32,
                 routing="precomputed_ones", T=9, E=4, k=2) if exact else {}  # fmt: skip
    p = build_problem(weights="f32", exact=exact, activation=activation, H=H, I=I, **extra, **kw)
    m1 = 2 * I if Act(activation).is_gated else I
    p.w1 = int4_quant_tensor(p.local_num_experts, m1, H, 350, exact)
    p.w2 = int4_quant_tensor(p.local_num_experts, H, I, 351, exact)
    return p


def test_reference_dequantizes_int4_codes_times_scale():
    q = int4_quant_tensor(2, 5, 48, 360, exact=False)
    want = mxint4_values(q.data, q.scale)  # ragged: 48 = 32 + 16
    assert torch.equal(dequantize(q).double(), want)
    assert torch.equal(mxint4_dequantize(q.data[..., :16], q.scale[..., :1]).double(),
                       want[..., :32])  # fmt: skip


@pytest.mark.parametrize("activation", [Act.Identity, Act.Relu])
def test_exact_small_integers(activation):
    """Codes -8..7 with scales 2^-1 / 2^0, inputs |x| <= 2, fp32 compute and output, routing
    weights 1: GEMM1 sums |x w| <= 2 * 8 * 64 at a resolution of 2^-1, GEMM2 <= 1024 * 8 * 48
    < 2^19 at 2^-2, the top-2 sum < 2^20: all exact in fp32, so the executor must equal the
    float64 reference bitwise (a wrong nibble, sign or scale block is a hard mismatch)."""
    p = int4_problem(exact=True, activation=activation)
    run_native(p)
    ref = reference_moe(p)
    assert ref.abs().max() > 0
    assert_exact(p.output, ref, f"Int4Packed {activation.name}")


@pytest.mark.parametrize(
    "kw",
    [dict(), dict(offset=2, local=4, capacity=2), dict(act_params=True, activation=Act.SwigluBias),
     dict(H=96, I=64, routing="packed", permuted=True)],
    ids=["plain", "ep-capacity", "clamped", "packed-permuted"],
)  # fmt: skip
def test_random_against_reference(kw):
    check_against_reference(int4_problem(exact=False, **kw))


def test_validation_of_int4_operands():
    p = int4_problem(exact=False)
    p.w1 = QuantTensor(p.w1.data[..., :-1], ElemFormat.Int4Packed, p.w1.scale,
                       block_rows=1, block_cols=32)  # fmt: skip
    with pytest.raises(ValueError, match=r"w1\.data"):
        _C.validate(p.to_native())
    p = int4_problem(exact=False)
    p.w2 = QuantTensor(p.w2.data.float(), ElemFormat.Int4Packed, p.w2.scale,
                       block_rows=1, block_cols=32)  # fmt: skip
    with pytest.raises(TypeError, match=r"w2\.data"):
        _C.validate(p.to_native())


# ---- mxint4_quantize / mxint4_dequantize ----------------------------------------------------------------


def flashinfer_test_quantizer(x, g=32):
    """The arithmetic of flashinfer's test helper, restated: amax of (max * 8/7, -min),
    s = amax / 8, codes = clamp(round(x / s), -8, 7) computed with the fp32 s."""
    xr = x.reshape(-1, g)
    hi = xr.amax(-1, keepdim=True).float() * 8.0 / 7.0
    lo = xr.amin(-1, keepdim=True).float()
    s = torch.where(hi > -lo, hi, -lo) / 8.0
    codes = (xr * s.reciprocal()).round().clamp(-8, 7).long()
    return codes.reshape(x.shape), s.reshape(*x.shape[:-1], -1)


@pytest.mark.parametrize("dtype", [BF16, torch.float32, torch.float16])
def test_quantizer_codes_scales_and_round_trip(dtype):
    x = rand_float((3, 8, 128), dtype, 370, 2.0)
    packed, scales = mxint4_quantize(x)
    assert packed.dtype == torch.uint8 and packed.shape == (3, 8, 64)
    assert scales.dtype == BF16 and scales.shape == (3, 8, 4)
    codes, s32 = flashinfer_test_quantizer(x)
    assert torch.equal(int4_codes(packed), codes)
    assert torch.equal(scales, s32.to(BF16))
    # Range: the positive maximum of a group maps to 7, a dominant negative minimum to -8.
    groups, cg = x.reshape(-1, 32).float(), codes.reshape(-1, 32)
    pos = groups.amax(-1) * 8 / 7 > -groups.amin(-1)
    assert (cg[pos].amax(-1) == 7).all() and (cg[~pos].amin(-1) == -8).all()
    assert cg.min() >= -8 and cg.max() <= 7
    # Round trip: half a code step, plus the bf16 rounding of the scale (at most 8 codes of it).
    back = mxint4_dequantize(packed, scales)
    sf, sb = s32.double().repeat_interleave(32, -1), scales.double().repeat_interleave(32, -1)
    bound = 0.5 * sf + 8 * (sf - sb).abs() + 1e-6 * sf
    assert ((back.double() - x.double()).abs() <= bound).all()


def test_quantizer_exact_round_trip_and_nibble_order():
    """Codes times a power of two, each group holding a 7: quantized back exactly."""
    g = seeded_generator(380)
    codes = torch.randint(-8, 8, (4, 64), generator=g)
    codes[:, 0], codes[:, 32] = 7, 7
    s = torch.pow(2.0, torch.randint(-4, 4, (4, 2), generator=g).float())
    x = (codes.double() * s.repeat_interleave(32, -1)).to(BF16)
    packed, scales = mxint4_quantize(x)
    assert torch.equal(scales.float(), s) and torch.equal(int4_codes(packed), codes)
    assert torch.equal(mxint4_dequantize(packed, scales), x.float())
    one = torch.zeros(1, 32, dtype=BF16)
    one[0, 0], one[0, 1] = 7, -8  # byte 0: low nibble 7 (element 0), high nibble 0x8 (-8)
    assert mxint4_quantize(one)[0][0, 0].item() == 0x87


def test_quantizer_zero_groups_and_errors():
    x = torch.zeros(2, 64, dtype=BF16)
    x[1, 32:] = 1.0
    packed, scales = mxint4_quantize(x)
    assert torch.equal(scales[0], torch.zeros(2, dtype=BF16)) and scales[1, 0] == 0
    assert torch.equal(mxint4_dequantize(packed, scales)[0], torch.zeros(64))
    assert torch.equal(int4_codes(packed)[1, 32:], torch.full((32,), 7))
    with pytest.raises(TypeError, match="x"):
        mxint4_quantize(torch.ones(2, 32, dtype=torch.int32))
    with pytest.raises(ValueError, match="sf_vec_size"):
        mxint4_quantize(torch.ones(2, 48))
    with pytest.raises(ValueError, match="sf_vec_size"):
        mxint4_quantize(torch.ones(2, 48), sf_vec_size=3)
    with pytest.raises(ValueError, match="scales"):
        mxint4_dequantize(packed, scales[:, :1])
    with pytest.raises(TypeError, match="x"):
        mxint4_dequantize(packed.to(torch.int8), scales)
