"""The trtllm_* seed call forms (python/flashinfer/fused_moe/seed_forms.py) on the CPU executor.

As in test_seed_forms.py, each form is checked against ``reference_moe`` of the problem it was
translated into and against the independent float64 model of tests/seed_semantics.py: fp8 block
scales read from the scale's shape (rows or row x column blocks), fp8 per-tensor scales, fp4
(packed or one code per byte) with bf16 or ue8m0 block scales, and bf16.
"""

from __future__ import annotations

import warnings

import flashinfer
import pytest
import torch
from flashinfer.fused_moe import GatedActType, seed_forms
from moe_checks import assert_matches_reference
from numeric import assert_close_to_reference, rand_float
from quant_models import fp8_group_quant
from seed_semantics import E4M3, decode_fp4, expand_blocks, seed_moe

# ---- trtllm seed translations ------------------------------------------------------------------


@pytest.mark.parametrize("scale_shape", ["rows", "blocks"])
def test_fp8_block_two_matrix(scale_shape):
    t, e, h, i, k = 5, 3, 256, 64, 2
    x = rand_float((t, h), torch.float32, seed=20)
    gating = rand_float((t, e), torch.float32, seed=21)
    w = rand_float((e, 2, i, h), torch.float32, seed=22, scale=4.0).to(E4M3)
    shape = (e, 2, i // 16) if scale_shape == "rows" else (e, 2, i // 32, h // 128)
    scale = torch.rand(shape, generator=torch.Generator().manual_seed(23)) + 0.25
    problem = seed_forms.fp8_block_scale_seed_problem(x, gating, w, scale, num_experts=e, top_k=k)
    out = seed_forms.fp8_block_scale_seed(x, gating, w, scale, num_experts=e, top_k=k)
    assert_matches_reference(
        problem,
        out,
        out_dtype=torch.bfloat16,  # the trtllm functions' result dtype, whatever x is
        k1=h,
        k2=i,
        top_k=k,
        requant=[("e4m3", h), ("e4m3", i)],
    )
    w_in = torch.stack([w[ex, 0].double() * expand_blocks(scale[ex, 0], i, h) for ex in range(e)])
    w_out = torch.stack([w[ex, 1].double() * expand_blocks(scale[ex, 1], i, h) for ex in range(e)])
    expected = seed_moe(
        x,
        gating,
        w_in,
        w_out.transpose(1, 2),
        top_k=k,
        gated=False,
        quant=lambda v, stage: fp8_group_quant(v, 128),
    )
    assert_close_to_reference(out, expected, rel_l2=3e-2, what="fp8 block two-matrix")


def test_fp8_block_pair_and_float_weights_warn_once():
    t, e, h, i, k = 4, 2, 128, 32, 1
    x = rand_float((t, h), torch.bfloat16, seed=24)
    gating = rand_float((t, e), torch.float32, seed=25)
    fc1 = rand_float((e, 2 * i, h), torch.float32, seed=26, scale=2.0)
    fc2 = rand_float((e, h, i), torch.float32, seed=27, scale=2.0)
    s1 = torch.rand(e, 2 * i // 32, h // 64) + 0.5  # 32 x 64 blocks of fc1
    s2 = torch.rand(e, h // 16) + 0.5  # 16 rows x all columns of fc2
    seed_forms._warned_fp8_rounding = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        problem = seed_forms.fp8_block_scale_seed_problem(
            x, gating, (fc1, fc2), (s1, s2), num_experts=e, top_k=k
        )
        seed_forms.fp8_block_scale_seed_problem(
            x, gating, (fc1, fc2), (s1, s2), num_experts=e, top_k=k
        )
    assert sum("slow path" in str(c.message) for c in caught) == 1
    out = seed_forms.fp8_block_scale_seed(
        x, gating, (fc1.to(E4M3), fc2.to(E4M3)), (s1, s2), num_experts=e, top_k=k
    )
    assert_matches_reference(
        problem,
        out,
        out_dtype=torch.bfloat16,
        k1=h,
        k2=i,
        top_k=k,
        requant=[("e4m3", h), ("e4m3", i)],
    )
    w1 = torch.stack(
        [fc1[ex].to(E4M3).double() * expand_blocks(s1[ex], 2 * i, h) for ex in range(e)]
    )
    w2 = torch.stack([fc2[ex].to(E4M3).double() * expand_blocks(s2[ex], h, i) for ex in range(e)])
    expected = seed_moe(
        x,
        gating,
        w1,
        w2,
        top_k=k,
        gated=True,
        quant=lambda v, stage: fp8_group_quant(v, 128),
    )
    assert_close_to_reference(out, expected, rel_l2=3e-2, what="fp8 block pair")


def test_fp8_per_tensor():
    t, e, h, i, k = 6, 4, 64, 32, 2
    x = rand_float((t, h), torch.float16, seed=30)
    gating = rand_float((t, e), torch.float16, seed=31)
    w = rand_float((e, 2, i, h), torch.float32, seed=32, scale=8.0).to(E4M3)
    scale = (torch.rand(e, 2, generator=torch.Generator().manual_seed(33)) * 0.1 + 0.01).half()
    problem = seed_forms.fp8_per_tensor_scale_seed_problem(
        x, gating, w, scale, num_experts=e, top_k=k
    )
    out = flashinfer.trtllm_fp8_per_tensor_scale_moe(
        x, gating, w, scale, num_experts=e, top_k=k, hidden_size=h, intermediate_size=i
    )
    assert_matches_reference(
        problem,
        out,
        out_dtype=torch.bfloat16,
        k1=h,
        k2=i,
        top_k=k,
        requant=[("e4m3", h), ("e4m3", i)],
    )
    w_in = w[:, 0].double() * scale[:, 0].double()[:, None, None]
    w_out = w[:, 1].double() * scale[:, 1].double()[:, None, None]
    expected = seed_moe(
        x,
        gating,
        w_in,
        w_out.transpose(1, 2),
        top_k=k,
        gated=False,
        quant=lambda v, stage: fp8_group_quant(v, v.shape[0]),
    )
    assert_close_to_reference(out, expected, rel_l2=3e-2, what="fp8 per tensor")


@pytest.mark.parametrize("packed", [False, True])
def test_fp4_two_matrix(packed):
    t, e, h, i, k = 5, 3, 64, 32, 2
    x = rand_float((t, h), torch.float32, seed=40)
    gating = rand_float((t, e), torch.float32, seed=41)
    g = torch.Generator().manual_seed(42)
    w = torch.randint(0, 256, (e, 2, i, h // 2 if packed else h), dtype=torch.uint8, generator=g)
    scale = (torch.rand(e, 2, i // 16, h // 32, generator=g) + 0.5).to(torch.bfloat16)
    problem = seed_forms.fp4_block_scale_seed_problem(x, gating, w, scale, num_experts=e, top_k=k)
    out = flashinfer.trtllm_fp4_block_scale_moe(
        x, gating, w, scale, num_experts=e, top_k=k, hidden_size=h, intermediate_size=i
    )
    if isinstance(out, (list, tuple)):
        out = out[0]
    assert out.dtype == torch.bfloat16
    assert_matches_reference(problem, out, out_dtype=torch.bfloat16, k1=h, k2=i, top_k=k)
    vals = decode_fp4(w, packed)  # [E, 2, I, H]
    w_in = torch.stack([vals[ex, 0] * expand_blocks(scale[ex, 0], i, h) for ex in range(e)])
    w_out = torch.stack([vals[ex, 1] * expand_blocks(scale[ex, 1], i, h) for ex in range(e)])
    expected = seed_moe(
        x,
        gating,
        w_in,
        w_out.transpose(1, 2),
        top_k=k,
        gated=False,
    )
    # the bf16 result (the trtllm dtype rule) rounds once: at most 2^-8 relative
    assert_close_to_reference(out, expected, rel_l2=2.0**-8, what="fp4 two-matrix")


def test_fp4_pair_packed_with_ue8m0_scales():
    t, e, h, i, k = 4, 2, 64, 32, 2
    x = rand_float((t, h), torch.float32, seed=43)
    gating = rand_float((t, e), torch.float32, seed=44)
    g = torch.Generator().manual_seed(45)
    fc1 = torch.randint(0, 256, (e, 2 * i, h // 2), dtype=torch.uint8, generator=g)
    fc2 = torch.randint(0, 256, (e, h, i // 2), dtype=torch.uint8, generator=g)
    s1 = torch.randint(124, 130, (e, 2 * i, h // 32), dtype=torch.uint8, generator=g)
    s2 = torch.randint(124, 130, (e, h, i // 32), dtype=torch.uint8, generator=g)
    # An fp32 output (x's dtype, which the trtllm forms accept besides bf16) keeps the check
    # at fp32 accuracy.
    out = seed_forms.fp4_block_scale_seed(
        x,
        gating,
        (fc1, fc2),
        (s1, s2),
        num_experts=e,
        top_k=k,
        act_type=GatedActType.GeGlu,
        output=torch.empty(t, h),
    )
    p2 = lambda s: torch.pow(2.0, s.double() - 127)  # noqa: E731
    w1 = torch.stack(
        [decode_fp4(fc1[ex], True) * expand_blocks(p2(s1[ex]), 2 * i, h) for ex in range(e)]
    )
    w2 = torch.stack(
        [decode_fp4(fc2[ex], True) * expand_blocks(p2(s2[ex]), h, i) for ex in range(e)]
    )
    expected = seed_moe(x, gating, w1, w2, top_k=k, gated=True, act="gelu")
    assert_close_to_reference(out, expected, rel_l2=1e-5, what="fp4 pair")


def test_bf16_seed():
    t, e, h, i, k = 4, 4, 32, 16, 2
    x = rand_float((t, h), torch.bfloat16, seed=50)
    gating = rand_float((t, e), torch.bfloat16, seed=51)
    fc1 = rand_float((e, 2 * i, h), torch.bfloat16, seed=52, scale=0.2)
    fc2 = rand_float((e, h, i), torch.bfloat16, seed=53, scale=0.2)
    problem = seed_forms.bf16_seed_problem(x, gating, (fc1, fc2), num_experts=e, top_k=k)
    out = seed_forms.bf16_seed(x, gating, (fc1, fc2), num_experts=e, top_k=k)
    assert_matches_reference(
        problem, out, out_dtype=torch.bfloat16, k1=h, k2=i, top_k=k, requant=[(torch.bfloat16, i)]
    )
    with pytest.raises(ValueError, match="experts_scale"):
        seed_forms.bf16_seed(x, gating, (fc1, fc2), torch.ones(e, 2), num_experts=e, top_k=k)


@pytest.mark.parametrize("x_dtype", [torch.float16, torch.float32])
def test_trtllm_seed_result_dtype_rule(x_dtype):
    """The trtllm seed forms return bfloat16 whatever x is (flashinfer's trtllm convention; fp16
    sums past 65504 stay finite); a caller's ``output`` may be bfloat16 or x's dtype, nothing
    else."""
    t, e, h, i, k = 3, 2, 64, 32, 1
    x = rand_float((t, h), x_dtype, seed=60)
    gating = rand_float((t, e), torch.float32, seed=61)
    w = torch.randint(
        0, 256, (e, 2, i, h), dtype=torch.uint8, generator=torch.Generator().manual_seed(62)
    )
    scale = torch.full((e, 2, i // 16), 0.5)
    kw = dict(num_experts=e, top_k=k, hidden_size=h, intermediate_size=i)
    out = flashinfer.trtllm_fp4_block_scale_moe(x, gating, w, scale, **kw)
    assert out.dtype == torch.bfloat16
    for dtype in (torch.bfloat16, x_dtype):
        buf = torch.empty(t, h, dtype=dtype)
        got = flashinfer.trtllm_fp4_block_scale_moe(x, gating, w, scale, output=buf, **kw)
        assert got is buf
        assert_close_to_reference(buf.double(), out.double(), rel_l2=1e-2, what=str(dtype))
    other = torch.float32 if x_dtype == torch.float16 else torch.float16
    with pytest.raises(TypeError, match="output"):
        flashinfer.trtllm_fp4_block_scale_moe(
            x, gating, w, scale, output=torch.empty(t, h, dtype=other), **kw
        )
