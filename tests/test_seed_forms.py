"""The seed call forms (python/flashinfer/fused_moe/seed_forms.py) on the CPU executor.

Each form is checked two ways: the executor output against ``reference_moe`` of the very problem
the form was translated into (the translation is then the only thing left to check), and against
an independent float64 computation of the seed semantics written out here from DESIGN.md 4.4 /
4.5 (two-matrix [E, 2, I, H] experts with W_out stored transposed, [up ; gate] pairs, block
scales read from the scale's shape, packed fp4). Plus the argument checks.
"""

from __future__ import annotations

import math
import warnings

import flashinfer
import pytest
import torch
from flashinfer.fused_moe import GatedActType, RoutingMethodType, seed_forms
from flashinfer.fused_moe.reference import reference_moe
from numeric import assert_close_to_reference, error_budget, poison, rand_float

E4M3 = torch.float8_e4m3fn
E2M1_VALUES = torch.tensor(
    [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], dtype=torch.float64
)


# ---- an independent float64 model of the seed semantics --------------------------------------


def seed_routing(gating: torch.Tensor, top_k: int, method: RoutingMethodType):
    """(ids [T, k], weights [T, k]) for the methods these tests use."""
    s = gating.double()
    t, e = s.shape
    if method == RoutingMethodType.Default:
        p = torch.softmax(s, dim=-1)
        w, ids = p.topk(top_k, dim=-1)
        return ids, w
    if method == RoutingMethodType.Renormalize:
        v, ids = s.topk(top_k, dim=-1)
        return ids, torch.softmax(v, dim=-1)
    if method == RoutingMethodType.RoundRobin:
        ids = (torch.arange(t).unsqueeze(1) * top_k + torch.arange(top_k).unsqueeze(0)) % e
        return ids, torch.softmax(s.gather(1, ids), dim=-1)
    raise AssertionError(method)


def act_fn(name: str, v: torch.Tensor) -> torch.Tensor:
    if name == "silu":
        return v * torch.sigmoid(v)
    return 0.5 * v * (1 + torch.erf(v / math.sqrt(2)))


def seed_moe(x, gating, w1, w2, *, top_k, method, gated, act, capacity=0, quant=None):
    """out[t] = sum_j w[t,j] * W2_e h, h = act(W1_e x) (gated: act(gate) * up), all float64.

    ``w1`` [E, M1, H] and ``w2`` [E, H, I] are real-valued (already dequantized); ``quant``
    optionally maps (vector, stage) -> its quantized value before each GEMM.
    """
    ids, wts = seed_routing(gating, top_k, method)
    t_count, e = gating.shape
    used = [0] * e
    out = torch.zeros(t_count, w2.shape[1], dtype=torch.float64)
    for t in range(t_count):
        for j in range(top_k):
            ex = int(ids[t, j])
            used[ex] += 1
            if capacity and used[ex] > capacity:
                continue
            xv = x[t].double()
            if quant is not None:
                xv = quant(xv, 1)
            a = w1[ex].double() @ xv
            if gated:
                i = a.shape[0] // 2
                h = act_fn(act, a[i:]) * a[:i]
            else:
                h = act_fn(act, a)
            if quant is not None:
                h = quant(h, 2)
            out[t] += wts[t, j] * (w2[ex].double() @ h)
    return out


def fp8_group_quant(v: torch.Tensor, group: int) -> torch.Tensor:
    """Dynamic e4m3 quantization per group of columns (scale amax / 448 in fp32)."""
    out = torch.empty_like(v)
    for c0 in range(0, v.shape[0], group):
        g = v[c0 : c0 + group].float()
        s = g.abs().max() / 448.0
        s = torch.where(s == 0, torch.ones_like(s), s)
        out[c0 : c0 + group] = ((g / s).clamp(-448, 448).to(E4M3).float() * s).double()
    return out


def expand_blocks(scale: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """A per-matrix scale grid [nr] or [nr, nc] expanded to [rows, cols]."""
    if scale.dim() == 1:
        scale = scale.unsqueeze(-1)
    s = scale.double().repeat_interleave(rows // scale.shape[0], 0)
    return s.repeat_interleave(cols // scale.shape[1], 1)


def assert_rel(actual, expected, tol, what=""):
    err = ((actual.double() - expected).norm() / expected.norm()).item()
    assert err <= tol, f"{what}: relative L2 error {err:.3e} > {tol:.1e}"


def check_reference(problem, out, budget_terms):
    assert_close_to_reference(
        out, reference_moe(problem), rel_l2=error_budget(**budget_terms).rel_l2
    )


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
    assert_rel(out, expected, 1e-5, "two-matrix")


def test_cutlass_pair_matches_seed_semantics_with_capacity():
    t, e, h, i, k, cap = 9, 3, 16, 8, 2, 3
    x = rand_float((t, h), torch.float32, seed=4)
    gating = rand_float((t, e), torch.float32, seed=5)
    fc1 = rand_float((e, 2 * i, h), torch.float32, seed=6, scale=0.3)
    fc2 = rand_float((e, h, i), torch.float32, seed=7, scale=0.3)
    out = flashinfer.cutlass_fused_moe(
        x, gating, (fc1, fc2), num_experts=e, top_k=k, expert_capacity=cap
    )
    expected = seed_moe(
        x,
        gating,
        fc1,
        fc2,
        top_k=k,
        method=RoutingMethodType.Default,
        gated=True,
        act="silu",
        capacity=cap,
    )
    assert_rel(out, expected, 1e-5, "pair with capacity")
    # Capacity really dropped something: unlimited capacity gives another answer.
    full = seed_moe(
        x, gating, fc1, fc2, top_k=k, method=RoutingMethodType.Default, gated=True, act="silu"
    )
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
    check_reference(problem, out, dict(out_dtype=dtype, k1=h, k2=i, top_k=k, requant=[(dtype, i)]))
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
    check_reference(
        problem,
        out,
        dict(out_dtype=torch.float32, k1=h, k2=i, top_k=k, requant=[("e4m3", h), ("e4m3", i)]),
    )
    w_in = torch.stack([w[ex, 0].double() * expand_blocks(scale[ex, 0], i, h) for ex in range(e)])
    w_out = torch.stack([w[ex, 1].double() * expand_blocks(scale[ex, 1], i, h) for ex in range(e)])
    expected = seed_moe(
        x,
        gating,
        w_in,
        w_out.transpose(1, 2),
        top_k=k,
        method=RoutingMethodType.Default,
        gated=False,
        act="silu",
        quant=lambda v, stage: fp8_group_quant(v, 128),
    )
    assert_rel(out, expected, 3e-2, "fp8 block two-matrix")


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
    check_reference(
        problem,
        out,
        dict(out_dtype=torch.bfloat16, k1=h, k2=i, top_k=k, requant=[("e4m3", h), ("e4m3", i)]),
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
        method=RoutingMethodType.Default,
        gated=True,
        act="silu",
        quant=lambda v, stage: fp8_group_quant(v, 128),
    )
    assert_rel(out, expected, 3e-2, "fp8 block pair")


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
    check_reference(
        problem,
        out,
        dict(out_dtype=torch.float16, k1=h, k2=i, top_k=k, requant=[("e4m3", h), ("e4m3", i)]),
    )
    w_in = w[:, 0].double() * scale[:, 0].double()[:, None, None]
    w_out = w[:, 1].double() * scale[:, 1].double()[:, None, None]
    expected = seed_moe(
        x,
        gating,
        w_in,
        w_out.transpose(1, 2),
        top_k=k,
        method=RoutingMethodType.Default,
        gated=False,
        act="silu",
        quant=lambda v, stage: fp8_group_quant(v, v.shape[0]),
    )
    assert_rel(out, expected, 3e-2, "fp8 per tensor")


def decode_fp4(w: torch.Tensor, packed: bool) -> torch.Tensor:
    codes = torch.stack((w & 15, w >> 4), -1).flatten(-2) if packed else (w & 15)
    return E2M1_VALUES[codes.long()]


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
    check_reference(problem, out, dict(out_dtype=torch.float32, k1=h, k2=i, top_k=k))
    vals = decode_fp4(w, packed)  # [E, 2, I, H]
    w_in = torch.stack([vals[ex, 0] * expand_blocks(scale[ex, 0], i, h) for ex in range(e)])
    w_out = torch.stack([vals[ex, 1] * expand_blocks(scale[ex, 1], i, h) for ex in range(e)])
    expected = seed_moe(
        x,
        gating,
        w_in,
        w_out.transpose(1, 2),
        top_k=k,
        method=RoutingMethodType.Default,
        gated=False,
        act="silu",
    )
    assert_rel(out, expected, 1e-5, "fp4 two-matrix")


def test_fp4_pair_packed_with_ue8m0_scales():
    t, e, h, i, k = 4, 2, 64, 32, 2
    x = rand_float((t, h), torch.float32, seed=43)
    gating = rand_float((t, e), torch.float32, seed=44)
    g = torch.Generator().manual_seed(45)
    fc1 = torch.randint(0, 256, (e, 2 * i, h // 2), dtype=torch.uint8, generator=g)
    fc2 = torch.randint(0, 256, (e, h, i // 2), dtype=torch.uint8, generator=g)
    s1 = torch.randint(124, 130, (e, 2 * i, h // 32), dtype=torch.uint8, generator=g)
    s2 = torch.randint(124, 130, (e, h, i // 32), dtype=torch.uint8, generator=g)
    out = seed_forms.fp4_block_scale_seed(
        x, gating, (fc1, fc2), (s1, s2), num_experts=e, top_k=k, act_type=GatedActType.GeGlu
    )
    p2 = lambda s: torch.pow(2.0, s.double() - 127)  # noqa: E731
    w1 = torch.stack(
        [decode_fp4(fc1[ex], True) * expand_blocks(p2(s1[ex]), 2 * i, h) for ex in range(e)]
    )
    w2 = torch.stack(
        [decode_fp4(fc2[ex], True) * expand_blocks(p2(s2[ex]), h, i) for ex in range(e)]
    )
    expected = seed_moe(
        x, gating, w1, w2, top_k=k, method=RoutingMethodType.Default, gated=True, act="gelu"
    )
    assert_rel(out, expected, 1e-5, "fp4 pair")


def test_bf16_seed():
    t, e, h, i, k = 4, 4, 32, 16, 2
    x = rand_float((t, h), torch.bfloat16, seed=50)
    gating = rand_float((t, e), torch.bfloat16, seed=51)
    fc1 = rand_float((e, 2 * i, h), torch.bfloat16, seed=52, scale=0.2)
    fc2 = rand_float((e, h, i), torch.bfloat16, seed=53, scale=0.2)
    problem = seed_forms.bf16_seed_problem(x, gating, (fc1, fc2), num_experts=e, top_k=k)
    out = seed_forms.bf16_seed(x, gating, (fc1, fc2), num_experts=e, top_k=k)
    check_reference(
        problem,
        out,
        dict(out_dtype=torch.bfloat16, k1=h, k2=i, top_k=k, requant=[(torch.bfloat16, i)]),
    )
    with pytest.raises(ValueError, match="experts_scale"):
        seed_forms.bf16_seed(x, gating, (fc1, fc2), torch.ones(e, 2), num_experts=e, top_k=k)


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
