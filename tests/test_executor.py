"""The CPU executor (``_C.run_cpu``) against the float64 reference on canonical MoeProblems.

Problems are built here directly in canonical form (python/flashinfer/fused_moe/problem.py), so
this file tests the executor and the reference against each other without any API translation.
Every output is poisoned before the call, so an element the executor does not write fails.
Two tiers (tests/numeric.py): exact (small integers, bitwise) and error budget (random data).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from flashinfer import _C
from flashinfer.fused_moe.enums import ActivationType as Act
from flashinfer.fused_moe.enums import ActQuant, ElemFormat, ScaleFormat, ScaleLayout
from flashinfer.fused_moe.enums import RoutingMethodType as RM
from flashinfer.fused_moe.problem import ActQuantSpec, MoeProblem, QuantTensor, RoutingSpec
from flashinfer.fused_moe.reference import reference_moe, reference_routing
from numeric import (
    assert_close_to_reference,
    assert_exact,
    assert_within_budget,
    error_budget,
    poison,
    rand_float,
    small_int,
)

E4M3 = torch.float8_e4m3fn
_OUTPUT_FIELDS = (
    "output",
    "permuted_output",
    "topk_ids_out",
    "topk_weights_out",
    "expanded_to_permuted_out",
)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _gen(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


# ---- builders ---------------------------------------------------------------------------------


def swizzle_128x4(linear: torch.Tensor) -> torch.Tensor:
    """[E, R, C] uint8 scales -> the flat 128x4-tile buffer of docs/semantics.md. Padding bytes
    are 0xFF (NaN in e4m3 and ue8m0), so an executor that reads one produces NaN."""
    n, rows, cols = linear.shape
    rp, cp = _cdiv(rows, 128) * 128, _cdiv(cols, 4) * 4
    r = torch.arange(rows).view(rows, 1)
    c = torch.arange(cols).view(1, cols)
    off = ((r // 128) * (cp // 4) + c // 4) * 512 + (r % 32) * 16 + ((r % 128) // 32) * 4 + c % 4
    out = torch.full((n * rp * cp,), 0xFF, dtype=torch.uint8)
    for e in range(n):
        out[e * rp * cp + off.reshape(-1)] = linear[e].reshape(-1)
    return out


def _pow2(shape, lo: int, hi: int, seed: int) -> torch.Tensor:
    return torch.pow(2.0, torch.randint(lo, hi + 1, tuple(shape), generator=_gen(seed)).float())


def _fp4_codes(shape, exact: bool, seed: int) -> torch.Tensor:
    """Random e2m1 codes (one per byte). Exact tier: magnitudes 0.5..2 only (codes 1..4)."""
    g = _gen(seed)
    if not exact:
        return torch.randint(0, 16, tuple(shape), generator=g, dtype=torch.uint8)
    mag = torch.randint(1, 5, tuple(shape), generator=g, dtype=torch.uint8)
    return mag | (torch.randint(0, 2, tuple(shape), generator=g, dtype=torch.uint8) << 3)


def make_weights(fmt: str, n: int, m: int, k: int, seed: int, exact: bool = False) -> QuantTensor:
    """A weight stack [n, m, k] in format ``fmt``:
    f32 / f16 / bf16; e4m3:BRxBC (block rows x cols of the scale, 0 = whole dimension);
    nvfp4:{packed,unpacked}:{linear,swizzled} (e4m3 scales per 1x16 + global); mxfp4 (ue8m0 1x32)."""
    if fmt in ("f32", "f16", "bf16"):
        dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[fmt]
        data = (
            small_int((n, m, k), -2, 2, dtype, seed)
            if exact
            else rand_float((n, m, k), dtype, seed, scale=k**-0.5)
        )
        return QuantTensor(data=data)
    if fmt.startswith("e4m3:"):
        br, bc = (int(v) for v in fmt[5:].split("x"))
        sshape = (n, _cdiv(m, br) if br else 1, _cdiv(k, bc) if bc else 1)
        if exact:
            data, scale = small_int((n, m, k), -4, 4, E4M3, seed), _pow2(sshape, -1, 1, seed + 1)
        else:
            data = rand_float((n, m, k), torch.float32, seed, scale=16.0).clamp(-448, 448).to(E4M3)
            scale = rand_float(sshape, torch.float32, seed + 1).abs() / (16.0 * k**0.5)
        return QuantTensor(
            data=data, format=ElemFormat.E4M3, scale=scale, block_rows=br, block_cols=bc
        )
    if fmt.startswith("nvfp4:") or fmt == "mxfp4":
        mx = fmt == "mxfp4"
        packed = mx or fmt.split(":")[1] == "packed"
        swizzled = not mx and fmt.split(":")[2] == "swizzled"
        codes = _fp4_codes((n, m, k), exact, seed)
        if packed:
            assert k % 2 == 0, "packed e2m1 needs an even K"
            data = codes[..., 0::2] | (codes[..., 1::2] << 4)
        else:  # the high nibble must be ignored: fill it with garbage
            data = codes | (
                torch.randint(0, 16, codes.shape, generator=_gen(seed + 9), dtype=torch.uint8) << 4
            )
        block = 32 if mx else 16
        sshape = (n, m, _cdiv(k, block))
        if mx:
            lo, hi = (126, 128) if exact else (122, 126)
            scale = torch.randint(lo, hi + 1, sshape, generator=_gen(seed + 1), dtype=torch.uint8)
            gscale = None
        else:
            s = (
                _pow2(sshape, -1, 1, seed + 1)
                if exact
                else rand_float(sshape, torch.float32, seed + 1).abs().clamp(0.25, 4.0)
            )
            scale = s.to(E4M3).view(torch.uint8)
            gscale = (
                _pow2((n,), -1, 0, seed + 2)
                if exact
                else (rand_float((n,), torch.float32, seed + 2).abs() + 0.5) / (3.0 * k**0.5)
            )
        return QuantTensor(
            data=data,
            format=ElemFormat.E2M1Packed if packed else ElemFormat.E2M1Unpacked,
            scale=swizzle_128x4(scale) if swizzled else scale,
            scale_format=ScaleFormat.UE8M0 if mx else ScaleFormat.E4M3,
            scale_layout=ScaleLayout.Swizzled128x4 if swizzled else ScaleLayout.Linear,
            block_rows=1,
            block_cols=block,
            global_scale=gscale,
        )
    raise ValueError(f"unknown weight format {fmt!r}")


def make_act_quant(mode: str, n_local: int, amax: float, seed: int) -> ActQuantSpec:
    """none / fp8_static / fp8_static_per_expert / fp8_token / fp8_group:G / mxfp8 / nvfp4 /
    nvfp4_per_expert. ``amax`` is the expected magnitude, used to pick static scales."""
    if mode == "none":
        return ActQuantSpec()
    if mode.startswith("fp8_static"):
        per_expert = mode.endswith("per_expert")
        s = (torch.linspace(0.8, 1.2, n_local) if per_expert else torch.tensor(1.0)) * amax / 448
        return ActQuantSpec(mode=ActQuant.Fp8Static, static_scale=s.float())
    if mode == "fp8_token":
        return ActQuantSpec(mode=ActQuant.Fp8PerToken)
    if mode.startswith("fp8_group:"):
        return ActQuantSpec(mode=ActQuant.Fp8PerGroup, group_size=int(mode.split(":")[1]))
    if mode == "mxfp8":
        return ActQuantSpec(mode=ActQuant.MxFp8)
    if mode.startswith("nvfp4"):
        per_expert = mode.endswith("per_expert")
        g = (
            (torch.linspace(0.9, 1.1, n_local) if per_expert else torch.tensor(1.0))
            * amax
            / (6 * 448)
        )
        return ActQuantSpec(mode=ActQuant.NvFp4, static_scale=g.float())
    raise ValueError(f"unknown activation quantization {mode!r}")


def make_routing(name: str, t: int, e: int, k: int, seed: int, exact: bool = False) -> RoutingSpec:
    """Routing from logits for every RoutingMethodType, or precomputed ids (plain / packed,
    with some ids outside [0, E) that must be skipped)."""
    logits = rand_float((t, e), torch.float32, seed, scale=2.0)
    bias = rand_float((e,), torch.float32, seed + 1, scale=0.5)
    if name in ("precomputed", "precomputed_bf16", "packed", "precomputed_ones"):
        g = _gen(seed)
        # ids from [-1, E + 2): distinct per token, some out of range (skipped)
        lo = 0 if exact else -1
        ids = torch.stack([torch.randperm(e + 2 - lo, generator=g)[:k] + lo for _ in range(t)])
        ids = ids.reshape(t, k).to(torch.int32)
        w = torch.ones(t, k) if exact else rand_float((t, k), torch.float32, seed + 2).abs()
        if name == "packed":
            bits = w.to(torch.bfloat16).view(torch.int16).to(torch.int64) & 0xFFFF
            word = (ids.to(torch.int64) << 16) | bits
            return RoutingSpec(method=RM.Default, topk_ids=word.to(torch.int32), packed=True)
        if name == "precomputed_bf16":
            w = w.to(torch.bfloat16)
        return RoutingSpec(method=RM.Default, topk_ids=ids, topk_weights=w)
    table = {
        "Default": dict(method=RM.Default),
        "Renormalize": dict(method=RM.Renormalize),
        "Renormalize_bf16_logits": dict(method=RM.Renormalize, logits=logits.to(torch.bfloat16)),
        "RenormalizeNaive": dict(method=RM.RenormalizeNaive),
        "TopK": dict(method=RM.TopK),
        "TopK_f16_logits": dict(method=RM.TopK, logits=logits.to(torch.float16)),
        "Sigmoid": dict(method=RM.Sigmoid),
        "TopKSigmoid": dict(method=RM.TopKSigmoid),
        "SigmoidRenorm": dict(method=RM.SigmoidRenorm),
        "SigmoidRenorm_no_norm": dict(method=RM.SigmoidRenorm, norm_topk_prob=False),
        "MiniMax2": dict(method=RM.MiniMax2, bias=bias, routed_scaling_factor=1.5),
        "DeepSeekV3": dict(method=RM.DeepSeekV3, bias=bias, routed_scaling_factor=2.5),
        "DeepSeekV3_grouped": dict(
            method=RM.DeepSeekV3,
            bias=bias.to(torch.bfloat16),
            n_group=4,
            topk_group=2,
            routed_scaling_factor=2.5,
        ),
        "Llama4": dict(method=RM.Llama4),
        "RoundRobin": dict(method=RM.RoundRobin),
    }
    kw = dict(logits=logits)
    kw.update(table[name])
    return RoutingSpec(**kw)


def build_problem(
    *,
    T=7,
    H=40,
    I=24,  # noqa: E741  (I: intermediate size, as in the docs)
    E=8,
    k=2,
    activation=Act.Swiglu,
    weights="bf16",
    in_dtype=torch.bfloat16,
    input_quant="none",
    inter_quant="none",
    routing="Renormalize",
    offset=0,
    local=None,
    capacity=0,
    biases=False,
    act_params=False,
    out_dtype=torch.bfloat16,
    compute=torch.bfloat16,
    rw_on_input=False,
    permuted=False,
    exact=False,
    seed=0,
) -> MoeProblem:
    """A canonical problem with poisoned outputs (all optional routing outputs requested)."""
    local = E - offset if local is None else local
    gated = Act(activation).is_gated
    m1 = 2 * I if gated else I
    x = small_int((T, H), -2, 2, in_dtype, seed) if exact else rand_float((T, H), in_dtype, seed)
    p = MoeProblem(
        num_tokens=T,
        hidden_size=H,
        intermediate_size=I,
        num_experts=E,
        local_expert_offset=offset,
        local_num_experts=local,
        top_k=k,
        routing=make_routing(routing, T, E, k, seed + 10, exact=exact),
        input=QuantTensor(data=x),
        w1=make_weights(weights, local, m1, H, seed + 20, exact),
        w2=make_weights(weights, local, H, I, seed + 30, exact),
        expert_capacity=capacity,
        input_quant=make_act_quant(input_quant, local, 3.0, seed + 40),
        inter_quant=make_act_quant(inter_quant, local, 2.0, seed + 50),
        activation=Act(activation),
        routing_weight_on_input=rw_on_input,
        compute_dtype=compute,
    )
    if biases:
        p.w1_bias = rand_float((local, m1), torch.float32, seed + 60, scale=0.3)
        p.w2_bias = rand_float((local, H), torch.bfloat16, seed + 61, scale=0.3)
    if act_params:
        p.act_alpha = torch.linspace(0.8, 1.7, local)
        p.act_beta = torch.linspace(-0.5, 1.0, local)
        p.act_limit = torch.linspace(0.4, 1.2, local)  # small enough that the clamps bite
    if permuted:
        p.permuted_output = poison((T * k, H), torch.float32)
    else:
        p.output = poison((T, H), out_dtype)
    p.topk_ids_out = poison((T, k), torch.int32)
    p.topk_weights_out = poison((T, k), torch.float32)
    p.expanded_to_permuted_out = poison((T, k), torch.int32)
    return p


# ---- running and checking ---------------------------------------------------------------------


def run_native(p: MoeProblem, num_threads: int = 0) -> int:
    """validate + workspace query + run_cpu; returns the workspace size used."""
    native = p.to_native()
    _C.validate(native)
    need = int(_C.workspace_size(native, _C.DeviceKind.CPU))
    _C.run_cpu(native, torch.empty(need, dtype=torch.uint8), num_threads)
    return need


def budget_for(p: MoeProblem):
    fmt = {
        ActQuant.Fp8Static: "e4m3",
        ActQuant.Fp8PerToken: "e4m3",
        ActQuant.Fp8PerGroup: "e4m3",
        ActQuant.MxFp8: "e4m3",
        ActQuant.NvFp4: "e2m1",
    }
    # GEMM1's input is rounded / quantized from the same stored values with the same fp32 scale
    # math in the executor and the reference, so it rounds identically: no flip term. The
    # intermediate comes out of fp32 sums that differ in the last bits, so it can flip.
    requant = []
    count = max(p.num_tokens, 1) * p.top_k * p.intermediate_size
    if p.inter_quant.mode != ActQuant.None_:
        requant.append((fmt[ActQuant(p.inter_quant.mode)], count))
    elif p.compute_dtype != torch.float32:
        requant.append((p.compute_dtype, count))
    out_dtype = p.output.dtype if p.output is not None else torch.float32
    return error_budget(
        out_dtype=out_dtype,
        k1=p.hidden_size,
        k2=p.intermediate_size,
        top_k=p.top_k,
        requant=requant,
    )


def expected_permutation(ids: torch.Tensor, p: MoeProblem) -> torch.Tensor:
    """expanded (t, j) -> permuted row: local experts in order, then token, then slot; an
    expert keeps its first ``capacity`` assignments by (token, slot); -1 when not kept."""
    t_count, k = ids.shape
    rows = torch.full((t_count, k), -1, dtype=torch.int32)
    nxt = 0
    for le in range(p.local_num_experts):
        taken = 0
        for t in range(t_count):
            for j in range(k):
                if int(ids[t, j]) == p.local_expert_offset + le and (
                    p.expert_capacity == 0 or taken < p.expert_capacity
                ):
                    rows[t, j] = nxt
                    nxt += 1
                    taken += 1
    return rows


def check_against_reference(p: MoeProblem, num_threads: int = 0) -> None:
    run_native(p, num_threads)
    ref = reference_moe(p)
    budget = budget_for(p)
    ids, weights = reference_routing(p.routing, p.num_tokens, p.num_experts, p.top_k)
    ids = ids.to(torch.int64)
    valid = (ids >= 0) & (ids < p.num_experts)
    assert_exact(p.topk_ids_out, torch.where(valid, ids, -1), "topk_ids_out")
    w_out = p.topk_weights_out.to(torch.float64)
    ref_w = weights.to(torch.float64)
    assert_close_to_reference(w_out[valid], ref_w[valid], rel_l2=1e-5, what="topk_weights_out")
    rows = expected_permutation(ids, p)
    assert_exact(p.expanded_to_permuted_out, rows, "expanded_to_permuted_out")
    if p.output is not None:
        assert_within_budget(p.output, ref, budget, what=str(budget))
    if p.permuted_output is not None:
        perm = p.permuted_output.to(torch.float64)
        kept = int((rows >= 0).sum())
        assert_exact(
            perm[kept:], torch.zeros_like(perm[kept:]), "permuted rows past the kept count"
        )
        scale = torch.ones_like(ref_w) if p.routing_weight_on_input else ref_w
        combined = torch.zeros(p.num_tokens, p.hidden_size, dtype=torch.float64)
        for t in range(p.num_tokens):
            for j in range(p.top_k):
                if rows[t, j] >= 0:
                    combined[t] += scale[t, j] * perm[int(rows[t, j])]
        assert_within_budget(combined, ref, budget, what="permuted " + str(budget))


# ---- sweeps -----------------------------------------------------------------------------------

ROUTINGS = [
    ("Default", {}),
    ("Renormalize", {}),
    ("Renormalize_bf16_logits", {}),
    ("RenormalizeNaive", {}),
    ("TopK", {}),
    ("TopK_f16_logits", {}),
    ("Sigmoid", {}),
    ("TopKSigmoid", {}),
    ("SigmoidRenorm", {}),
    ("SigmoidRenorm_no_norm", {}),
    ("MiniMax2", dict(k=3)),
    ("DeepSeekV3", dict(k=4)),
    ("DeepSeekV3_grouped", dict(E=16, k=4)),
    ("Llama4", dict(k=1)),
    ("RoundRobin", dict(k=3)),
    ("precomputed", {}),
    ("precomputed_bf16", dict(k=3)),
    ("packed", dict(k=3)),
]


@pytest.mark.parametrize("routing,kw", ROUTINGS, ids=[r for r, _ in ROUTINGS])
def test_routing_methods(routing, kw):
    check_against_reference(build_problem(routing=routing, **kw))


ACTIVATIONS = [
    Act.Swiglu,
    Act.Geglu,
    Act.GegluTanh,
    Act.SwigluBias,
    Act.SwigluStep,
    Act.Relu2,
    Act.Silu,
    Act.Gelu,
    Act.Relu,
    Act.Identity,
]


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=lambda a: a.name)
def test_activations(activation):
    check_against_reference(build_problem(activation=activation, weights="f32"))


@pytest.mark.parametrize("activation", [Act.SwigluBias, Act.SwigluStep], ids=lambda a: a.name)
def test_activation_parameters_per_expert(activation):
    p = build_problem(activation=activation, weights="f32", act_params=True, E=4, k=2, T=16)
    if activation == Act.SwigluStep:
        p.act_alpha = p.act_beta = None  # SwigluStep takes only the limit
    check_against_reference(p)


WEIGHT_FORMATS = [
    ("f32", {}),
    ("f16", dict(in_dtype=torch.float16, out_dtype=torch.float16, compute=torch.float16)),
    ("bf16", {}),
    ("e4m3:0x0", {}),
    ("e4m3:16x0", {}),
    ("e4m3:3x5", {}),
    ("e4m3:128x128", dict(H=256, I=128)),
    ("nvfp4:packed:linear", {}),
    ("nvfp4:packed:swizzled", {}),
    ("nvfp4:unpacked:linear", {}),
    ("nvfp4:unpacked:swizzled", dict(H=48, I=20)),
    ("mxfp4", dict(H=72, I=40)),
]


@pytest.mark.parametrize("weights,kw", WEIGHT_FORMATS, ids=[w for w, _ in WEIGHT_FORMATS])
def test_weight_formats(weights, kw):
    check_against_reference(build_problem(weights=weights, **kw))


ACT_QUANTS = [
    ("fp8_static", "fp8_static_per_expert"),
    ("fp8_static_per_expert", "none"),
    ("fp8_token", "fp8_token"),
    ("fp8_group:16", "fp8_group:16"),
    ("fp8_group:128", "fp8_token"),
    ("mxfp8", "mxfp8"),
    ("nvfp4", "nvfp4"),
    ("nvfp4_per_expert", "fp8_token"),
    ("none", "nvfp4"),
]


@pytest.mark.parametrize(
    "input_quant,inter_quant", ACT_QUANTS, ids=[f"{a}-{b}" for a, b in ACT_QUANTS]
)
@pytest.mark.parametrize("weights", ["e4m3:16x0", "nvfp4:packed:swizzled"])
def test_activation_quantization(input_quant, inter_quant, weights):
    # fp32 output: the bf16 output rounding would otherwise dominate the budget
    check_against_reference(
        build_problem(
            weights=weights,
            input_quant=input_quant,
            inter_quant=inter_quant,
            H=80,
            I=48,
            T=9,
            out_dtype=torch.float32,
        )
    )


def test_prequantized_e4m3_input_with_transposed_scale():
    # DeepSeek-FP8 style: e4m3 input with 1x128 block scales stored [H/128, T] (token-minor)
    T, H = 9, 256
    p = build_problem(weights="e4m3:128x128", H=H, I=128, T=T, inter_quant="fp8_group:128")
    codes = rand_float((T, H), torch.float32, 5, scale=40.0).clamp(-448, 448).to(E4M3)
    scale_t = rand_float((H // 128, T), torch.float32, 6).abs() / 40.0
    p.input = QuantTensor(
        data=codes, format=ElemFormat.E4M3, scale=scale_t.t(), block_rows=1, block_cols=128
    )
    assert not p.input.scale.is_contiguous()
    check_against_reference(p)


@pytest.mark.parametrize("layout", ["linear", "swizzled"])
def test_prequantized_nvfp4_input(layout):
    # NvFP4 input: packed e2m1 [T, H/2], e4m3 scales per 1x16 (ragged last block), global scalar
    T, H = 9, 40
    p = build_problem(weights="e4m3:16x0", H=H, T=T, out_dtype=torch.float32)
    q = make_weights(f"nvfp4:packed:{layout}", 1, T, H, seed=8)
    scale = q.scale if layout == "swizzled" else q.scale[0]
    p.input = QuantTensor(
        data=q.data[0],
        format=ElemFormat.E2M1Packed,
        scale=scale,
        scale_format=ScaleFormat.E4M3,
        scale_layout=q.scale_layout,
        block_rows=1,
        block_cols=16,
        global_scale=torch.tensor([0.25]),
    )
    check_against_reference(p)


CAPACITY_EP = [
    dict(capacity=1),
    dict(capacity=3, T=16),
    dict(offset=2, local=3),
    dict(offset=4, local=4, capacity=2),
    dict(biases=True),
    dict(biases=True, offset=5, local=3, weights="nvfp4:packed:linear"),
    dict(rw_on_input=True, routing="Llama4", k=1, weights="e4m3:0x0", input_quant="fp8_static"),
    dict(rw_on_input=True, k=2, biases=True),
    dict(routing="precomputed", offset=3, local=4, capacity=1),
]


@pytest.mark.parametrize(
    "kw", CAPACITY_EP, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items())
)
def test_capacity_ep_bias_routing_on_input(kw):
    check_against_reference(build_problem(**kw))


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(capacity=2, offset=1, local=5, routing="precomputed"),
        dict(rw_on_input=True, weights="e4m3:16x0", inter_quant="fp8_token"),
    ],
    ids=["plain", "capacity-ep-precomputed", "weight-on-input"],
)
def test_permuted_output(kw):
    check_against_reference(build_problem(permuted=True, **kw))


SHAPES = [(0, 4, 2), (1, 1, 1), (1, 16, 16), (7, 4, 4), (7, 8, 8), (64, 16, 3), (64, 4, 1)]


@pytest.mark.parametrize("T,E,k", SHAPES, ids=[f"T{t}-E{e}-k{k}" for t, e, k in SHAPES])
def test_shapes(T, E, k):
    check_against_reference(build_problem(T=T, E=E, k=k, H=40, I=24))


def test_odd_sizes_float():
    # H and I not multiples of 16 (or even of 8) are fine for float weights
    check_against_reference(build_problem(H=37, I=13, weights="f32", T=5))


# ---- exact tier ---------------------------------------------------------------------------------

EXACT = [
    ("f32", Act.Identity),
    ("f32", Act.Relu),
    ("f32", Act.Relu2),
    ("bf16", Act.Identity),
    ("e4m3:3x5", Act.Identity),
    ("e4m3:16x0", Act.Relu),
    ("nvfp4:packed:linear", Act.Identity),
    ("nvfp4:unpacked:swizzled", Act.Relu),
    ("nvfp4:packed:swizzled", Act.Identity),
    ("mxfp4", Act.Identity),
]


@pytest.mark.parametrize("weights,activation", EXACT, ids=[f"{w}-{a.name}" for w, a in EXACT])
def test_exact_small_integers(weights, activation):
    """Small integers (and dyadic fp4/fp8 values with power-of-two scales), fp32 compute and
    output, routing weights 1: every partial sum is exact in fp32 (see the bounds below), so
    the executor must equal the float64 reference bitwise, whatever its summation order.
    Bounds: |x| <= 2, |w| <= 8, H = 40, I = 24, k = 2 -> |sums| < 2^18 at a resolution of
    2^-6, inside fp32's 24-bit significand (Relu2 with integer weights: < 2^22, integers)."""
    p = build_problem(
        weights=weights,
        activation=activation,
        exact=True,
        in_dtype=torch.float32,
        out_dtype=torch.float32,
        compute=torch.float32,
        routing="precomputed_ones",
        T=9,
        E=4,
        k=2,
        H=40,
        I=24,
        seed=3,
    )
    run_native(p)
    ref = reference_moe(p)
    assert ref.abs().max() > 0
    assert_exact(p.output, ref, f"{weights} {activation.name}")


EXACT_QUANT = [
    ("mxfp8", "mxfp8", "f32"),
    ("mxfp8", "none", "e4m3:3x5"),
    ("none", "mxfp8", "nvfp4:packed:swizzled"),
    ("mxfp8", "mxfp8", "mxfp4"),
]


@pytest.mark.parametrize(
    "input_quant,inter_quant,weights", EXACT_QUANT, ids=[f"{a}-{b}-{w}" for a, b, w in EXACT_QUANT]
)
def test_exact_mxfp8_requantization(input_quant, inter_quant, weights):
    """MxFp8 scales are powers of two, so on exact-tier data the quantized values are short
    dyadic numbers and every later product and sum stays exact: the group boundaries, the
    exponent choice and the e4m3 rounding (of identical fp32 values) must match bitwise."""
    p = build_problem(
        weights=weights,
        activation=Act.Identity,
        exact=True,
        in_dtype=torch.float32,
        out_dtype=torch.float32,
        compute=torch.float32,
        routing="precomputed_ones",
        T=9,
        E=4,
        k=2,
        H=72,
        I=40,
        seed=4,
        input_quant=input_quant,
        inter_quant=inter_quant,
    )
    run_native(p)
    assert_exact(p.output, reference_moe(p), f"{input_quant}/{inter_quant} {weights}")


# ---- properties ---------------------------------------------------------------------------------


def _input_tensors(p: MoeProblem):
    """(name, tensor) for every input tensor reachable from the problem."""
    out = []

    def walk(prefix, obj):
        for f in dataclasses.fields(obj):
            if f.name in _OUTPUT_FIELDS:
                continue
            v = getattr(obj, f.name)
            if isinstance(v, torch.Tensor):
                out.append((prefix + f.name, v))
            elif dataclasses.is_dataclass(v):
                walk(prefix + f.name + ".", v)

    walk("", p)
    return out


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().reshape(-1).view(torch.uint8).clone()


def test_inputs_not_modified():
    p = build_problem(
        weights="nvfp4:packed:swizzled",
        biases=True,
        input_quant="fp8_token",
        inter_quant="fp8_group:16",
        routing="DeepSeekV3_grouped",
        E=16,
        k=4,
    )
    before = [(name, _bits(t), t.stride()) for name, t in _input_tensors(p)]
    assert len(before) >= 8
    run_native(p)
    for (name, bits, stride), (_, t) in zip(before, _input_tensors(p)):
        assert t.stride() == stride, name
        assert torch.equal(_bits(t), bits), f"{name} was modified"


@pytest.mark.parametrize("weights", ["bf16", "e4m3:16x0", "nvfp4:packed:linear"])
def test_deterministic_across_calls_and_threads(weights):
    results = []
    for threads in (1, 2, 2):
        p = build_problem(weights=weights, T=64, E=8, k=2, H=48, I=32, seed=11)
        run_native(p, num_threads=threads)
        results.append([_bits(getattr(p, f)) for f in _OUTPUT_FIELDS if getattr(p, f) is not None])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b), "outputs differ between calls / thread counts"


def test_workspace_too_small_raises():
    p = build_problem(T=64, E=8, k=2)
    native = p.to_native()
    need = int(_C.workspace_size(native, _C.DeviceKind.CPU))
    assert need > 0, "a 64-token problem needs scratch for its permutation"
    with pytest.raises(ValueError, match="workspace"):
        _C.run_cpu(native, torch.empty(need - 1, dtype=torch.uint8), 1)
    with pytest.raises(ValueError, match="workspace"):
        _C.run_cpu(native, None, 1)


def test_workspace_size_monotonic_in_tokens():
    sizes = [
        int(_C.workspace_size(build_problem(T=t).to_native(), _C.DeviceKind.CPU))
        for t in (1, 7, 64)
    ]
    assert sizes == sorted(sizes), sizes
