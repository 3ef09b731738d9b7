"""The seed call form of ``cutlass_fused_moe`` (python/flashinfer/fused_moe/seed_forms.py) on
the CPU executor, and the argument checks of the seed forms.

Each call is checked two ways: the executor output against ``reference_moe`` of the very problem
the form was translated into (the translation is then the only thing left to check), and against
the independent float64 model of the seed semantics in tests/seed_semantics.py (two-matrix
[E, 2, I, H] experts with W_out stored transposed, [up ; gate] pairs). The trtllm_* seed forms
are in test_seed_forms_trtllm.py.
"""

from __future__ import annotations

import flashinfer
import pytest
import torch
from flashinfer.fused_moe import GatedActType, RoutingMethodType, seed_forms
from moe_checks import assert_matches_reference
from numeric import assert_close_to_reference, poison, rand_float
from seed_semantics import E4M3, seed_moe

# ---- cutlass_fused_moe seed form ---------------------------------------------------------------


@pytest.mark.parametrize(
    "method",
    [RoutingMethodType.Default, RoutingMethodType.Renormalize, RoutingMethodType.RoundRobin],
)
@pytest.mark.parametrize("act", [GatedActType.SwiGlu, GatedActType.GeGlu])
def test_cutlass_two_matrix_matches_seed_semantics(method, act):
    t, e, h, i, k = 6, 4, 32, 16, 2
    x = rand_float((t, h), torch.float32, seed=1)
    gating = rand_float((t, e), torch.float16, seed=2)
    experts = rand_float((e, 2, i, h), torch.float32, seed=3, scale=0.2)
    out = flashinfer.cutlass_fused_moe(
        x,
        gating,
        experts,
        num_experts=e,
        top_k=k,
        hidden_size=h,
        intermediate_size=i,
        act_type=act,
        routing_method=method,
    )
    assert out.shape == (t, h) and out.dtype == torch.float32
    name = "silu" if act == GatedActType.SwiGlu else "gelu"
    # W_out is stored [I, H] and used transposed: y = W_out^T h.
    expected = seed_moe(
        x,
        gating,
        experts[:, 0],
        experts[:, 1].transpose(1, 2),
        top_k=k,
        method=method,
        gated=False,
        act=name,
    )
    assert_close_to_reference(out, expected, rel_l2=1e-5, what="two-matrix")


def test_cutlass_pair_matches_seed_semantics_with_capacity():
    t, e, h, i, k, cap = 9, 3, 16, 8, 2, 3
    x = rand_float((t, h), torch.float32, seed=4)
    gating = rand_float((t, e), torch.float32, seed=5)
    fc1 = rand_float((e, 2 * i, h), torch.float32, seed=6, scale=0.3)
    fc2 = rand_float((e, h, i), torch.float32, seed=7, scale=0.3)
    out = flashinfer.cutlass_fused_moe(
        x, gating, (fc1, fc2), num_experts=e, top_k=k, expert_capacity=cap
    )
    expected = seed_moe(x, gating, fc1, fc2, top_k=k, gated=True, capacity=cap)
    assert_close_to_reference(out, expected, rel_l2=1e-5, what="pair with capacity")
    # Capacity really dropped something: unlimited capacity gives another answer.
    full = seed_moe(x, gating, fc1, fc2, top_k=k, gated=True)
    assert (full - expected).abs().max() > 1e-3


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cutlass_seed_low_precision_against_reference(dtype):
    t, e, h, i, k = 7, 4, 64, 32, 2
    x = rand_float((t, h), dtype, seed=8)
    gating = rand_float((t, e), dtype, seed=9)
    experts = rand_float((e, 2, i, h), dtype, seed=10, scale=0.1)
    problem = seed_forms.cutlass_seed_problem(
        x,
        gating,
        experts,
        num_experts=e,
        top_k=k,
        expert_capacity=64,
        act_type=GatedActType.SILU,
        routing_method=RoutingMethodType.ROUND_ROBIN,
    )
    out = flashinfer.cutlass_fused_moe(
        x,
        gating,
        experts,
        num_experts=e,
        top_k=k,
        expert_capacity=64,
        act_type=GatedActType.SILU,
        routing_method=RoutingMethodType.ROUND_ROBIN,
    )
    assert out.dtype == dtype
    assert_matches_reference(
        problem, out, out_dtype=dtype, k1=h, k2=i, top_k=k, requant=[(dtype, i)]
    )
    # The translation views the weights: no copy of the expert tensor.
    assert problem.w2.data.data_ptr() == experts[:, 1].data_ptr()
    assert problem.w2.data.stride() == experts[:, 1].transpose(1, 2).stride()


def test_output_argument_is_filled_and_returned():
    t, e, h, i = 3, 2, 16, 8
    x = rand_float((t, h), torch.bfloat16, seed=11)
    gating = rand_float((t, e), torch.float32, seed=12)
    experts = rand_float((e, 2, i, h), torch.bfloat16, seed=13)
    out = poison((t, h), torch.bfloat16)
    got = flashinfer.cutlass_fused_moe(x, gating, experts, num_experts=e, top_k=1, output=out)
    assert got is out and torch.isfinite(out.float()).all()


def test_zero_tokens_and_inputs_unchanged():
    e, h, i = 2, 16, 8
    x = torch.empty(0, h, dtype=torch.bfloat16)
    out = flashinfer.cutlass_fused_moe(
        x, torch.empty(0, e), torch.ones(e, 2, i, h, dtype=torch.bfloat16), num_experts=e, top_k=1
    )
    assert out.shape == (0, h)
    x = rand_float((4, h), torch.bfloat16, seed=14)
    g = rand_float((4, e), torch.float32, seed=15)
    w = rand_float((e, 2, i, h), torch.float32, seed=16)
    copies = [x.clone(), g.clone(), w.clone()]
    seed_forms.fp8_block_scale_seed(x, g, w.to(E4M3), torch.ones(e, 2, 1), num_experts=e, top_k=2)
    for a, b in zip((x, g, w), copies):
        assert torch.equal(a, b)


# ---- bad input -----------------------------------------------------------------------------------


def _args(t=3, e=4, h=16, i=8):
    return (
        rand_float((t, h), torch.bfloat16, seed=60),
        rand_float((t, e), torch.float32, seed=61),
        rand_float((e, 2, i, h), torch.bfloat16, seed=62),
    )


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(num_experts=5, top_k=2), ValueError, "num_experts"),
        (dict(num_experts=4, top_k=0), ValueError, "top_k"),
        (dict(num_experts=4, top_k=5), ValueError, "top_k"),
        (dict(num_experts=4, top_k=2, hidden_size=17), ValueError, "hidden_size"),
        (dict(num_experts=4, top_k=2, intermediate_size=9), ValueError, "intermediate_size"),
        (dict(num_experts=4, top_k=2, expert_capacity=-1), ValueError, "expert_capacity"),
        (dict(num_experts=4, top_k=2, expert_capacity=1.5), TypeError, "expert_capacity"),
        (dict(num_experts=4, top_k=2, act_type=7), ValueError, "act_type"),
        (
            dict(num_experts=4, top_k=2, routing_method=RoutingMethodType.Unspecified),
            ValueError,
            "routing_method",
        ),
        (
            dict(num_experts=4, top_k=2, routing_method=RoutingMethodType.Llama4),
            ValueError,
            "top_k",
        ),
        (dict(num_experts=4, top_k=2, output=torch.empty(3, 16)), TypeError, "output"),
        (
            dict(num_experts=4, top_k=2, output=torch.empty(3, 15, dtype=torch.bfloat16)),
            ValueError,
            "output",
        ),
    ],
)
def test_cutlass_seed_bad_arguments(kwargs, exc, match):
    x, gating, experts = _args()
    with pytest.raises(exc, match=match):
        flashinfer.cutlass_fused_moe(x, gating, experts, **kwargs)


def test_seed_bad_tensors():
    x, gating, experts = _args()
    with pytest.raises(ValueError, match="gating_output"):
        flashinfer.cutlass_fused_moe(x, gating[:, :3], experts, num_experts=4, top_k=1)
    with pytest.raises(ValueError, match="experts"):
        flashinfer.cutlass_fused_moe(x, gating, experts[:, :, :, :15], num_experts=4, top_k=1)
    with pytest.raises(ValueError, match="experts"):
        flashinfer.cutlass_fused_moe(x, gating, experts[:, :1], num_experts=4, top_k=1)
    with pytest.raises(TypeError, match="experts"):
        flashinfer.cutlass_fused_moe(x, gating, experts.to(E4M3), num_experts=4, top_k=1)
    with pytest.raises(TypeError, match="x"):
        flashinfer.cutlass_fused_moe(x.to(torch.int32), gating, experts, num_experts=4, top_k=1)
    e, i, h = 4, 8, 16
    with pytest.raises(ValueError, match="experts_scale"):  # 8 rows are not divisible into 3 blocks
        seed_forms.fp8_block_scale_seed(
            x, gating, experts.to(E4M3), torch.ones(e, 2, 3), num_experts=e, top_k=1
        )
    with pytest.raises(ValueError, match="experts_scale"):  # 16 columns not divisible into 5
        seed_forms.fp8_block_scale_seed(
            x, gating, experts.to(E4M3), torch.ones(e, 2, 2, 5), num_experts=e, top_k=1
        )
    with pytest.raises(TypeError, match="experts_scale"):
        seed_forms.fp8_block_scale_seed(
            x,
            gating,
            experts.to(E4M3),
            torch.ones(e, 2, 2, dtype=torch.int32),
            num_experts=e,
            top_k=1,
        )
    with pytest.raises(ValueError, match="experts_scale"):
        seed_forms.fp8_per_tensor_scale_seed(
            x, gating, experts.to(E4M3), torch.ones(e, 3), num_experts=e, top_k=1
        )
    with pytest.raises(ValueError, match="experts"):  # fp4: last dim must be H or H/2
        seed_forms.fp4_block_scale_seed(
            x,
            gating,
            torch.zeros(e, 2, i, 5, dtype=torch.uint8),
            torch.ones(e, 2, 1),
            num_experts=e,
            top_k=1,
        )
    with pytest.raises(TypeError, match="experts"):
        seed_forms.fp4_block_scale_seed(
            x, gating, experts, torch.ones(e, 2, 1), num_experts=e, top_k=1
        )
    with pytest.raises(
        TypeError, match="experts_scale"
    ):  # a pair of experts needs a pair of scales
        seed_forms.fp8_block_scale_seed(
            x,
            gating,
            (torch.zeros(e, 2 * i, h, dtype=E4M3), torch.zeros(e, h, i, dtype=E4M3)),
            torch.ones(e, 2, 1),
            num_experts=e,
            top_k=1,
        )


@pytest.mark.parametrize("x_dtype,w_dtype", [(torch.bfloat16, torch.float16),
                                             (torch.float16, torch.float32)])  # fmt: skip
def test_unquantized_experts_in_another_dtype_are_a_type_error(x_dtype, w_dtype):
    """Both executors take the same calls: unquantized weights in x's dtype (the GPU's MMAs have
    one operand type), else a TypeError naming experts, before anything runs."""
    t, e, h, i = 3, 2, 32, 16
    x = rand_float((t, h), x_dtype, seed=80)
    gating = rand_float((t, e), torch.float32, seed=81)
    kw = dict(num_experts=e, top_k=1)
    with pytest.raises(TypeError, match="experts"):
        flashinfer.cutlass_fused_moe(x, gating, rand_float((e, 2, i, h), w_dtype, seed=82), **kw)
    pair = (rand_float((e, 2 * i, h), x_dtype, seed=83), rand_float((e, h, i), w_dtype, seed=84))
    with pytest.raises(TypeError, match=r"experts\[1\]"):
        flashinfer.trtllm_bf16_moe(x, gating, pair, **kw, hidden_size=h, intermediate_size=i)
