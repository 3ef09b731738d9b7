"""The CPU executor (``_C.run_cpu``) against the float64 reference on canonical MoeProblems.

Problems are built in canonical form by tests/moe_builders.py (no API translation), so this
file tests the executor and the reference against each other. Every output is poisoned before
the call, so an element the executor does not write fails. Two tiers (tests/numeric.py): error
budget on random data (the sweeps, checked by tests/moe_checks.py) and exact (small integers,
bitwise). Properties (inputs untouched, determinism, workspace) are in
test_executor_properties.py.
"""

from __future__ import annotations

import pytest
import torch
from flashinfer.fused_moe.enums import ActivationType as Act
from flashinfer.fused_moe.enums import ElemFormat, ScaleFormat
from flashinfer.fused_moe.problem import QuantTensor
from flashinfer.fused_moe.reference import reference_moe, reference_moe_permuted
from moe_builders import E4M3, build_problem, make_weights
from moe_checks import check_against_reference, run_native
from numeric import assert_exact, rand_float

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
    Act.Situ,
]


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=lambda a: a.name)
def test_activations(activation):
    check_against_reference(build_problem(activation=activation, weights="f32"))


@pytest.mark.parametrize(
    "activation", [Act.SwigluBias, Act.SwigluStep, Act.Situ], ids=lambda a: a.name
)
def test_activation_parameters_per_expert(activation):
    p = build_problem(activation=activation, weights="f32", act_params=True, E=4, k=2, T=16)
    if activation == Act.SwigluStep:
        p.act_alpha = p.act_beta = None  # SwigluStep takes only the limit
    check_against_reference(p)


@pytest.mark.parametrize("which", ["gate", "linear", "both"])
def test_situ_infinite_cap_leaves_that_half_uncapped(which):
    # An infinite cap is the limit c tanh(x / c) -> x: an infinite linear cap is plain SiTU
    # times up. Mixed per expert: experts 0 and 2 uncapped, 1 and 3 capped at 0.5.
    p = build_problem(activation=Act.Situ, weights="f32", E=4, T=16, act_params=True)
    caps = torch.tensor([float("inf"), 0.5, float("inf"), 0.5])
    if which in ("gate", "both"):
        p.act_alpha = caps
    if which in ("linear", "both"):
        p.act_beta = caps
    check_against_reference(p)


# The GEMM1 delta (LoRA) with every kind of GEMM1 output: float, FP8 and FP4 weights,
# quantized inputs and intermediates, biases, capacity, EP, routing weight on input, permuted
# output; the activated intermediate is checked too (inter_output).
LORA = [
    dict(),
    dict(activation=Act.Situ, act_params=True),
    dict(activation=Act.Relu2, biases=True),
    dict(weights="e4m3:16x0", input_quant="fp8_token", inter_quant="fp8_group:16"),
    dict(weights="nvfp4:packed:swizzled", inter_quant="nvfp4", activation=Act.Situ),
    dict(capacity=2, offset=2, local=5, routing="precomputed", biases=True),
    dict(rw_on_input=True, k=2, biases=True),
    dict(permuted=True, routing="packed", k=3),
    dict(T=1, E=1, k=1),
]


@pytest.mark.parametrize(
    "kw", LORA, ids=lambda kw: "-".join(f"{k}={getattr(v, 'name', v)}" for k, v in kw.items())
)
def test_gemm1_delta_and_inter_output(kw):
    check_against_reference(build_problem(lora=True, inter_out=True, seed=5, **kw))


def test_inter_output_bf16_without_delta():
    p = build_problem(activation=Act.Situ, inter_quant="fp8_token", weights="e4m3:16x0",
                      capacity=3, T=12)  # fmt: skip
    p.inter_output = torch.full((p.num_tokens * p.top_k, p.intermediate_size), float("nan"),
                                dtype=torch.bfloat16)  # fmt: skip
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


def _exact_problem(**kw):
    """An exact-tier problem: small-integer data, fp32 input / compute / output, routing
    weights 1 (precomputed ids), 9 tokens over 4 experts with top-2."""
    return build_problem(
        exact=True,
        in_dtype=torch.float32,
        out_dtype=torch.float32,
        compute=torch.float32,
        routing="precomputed_ones",
        T=9,
        E=4,
        k=2,
        **kw,
    )


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
    p = _exact_problem(weights=weights, activation=activation, H=40, I=24, seed=3)
    run_native(p)
    ref = reference_moe(p)
    assert ref.abs().max() > 0
    assert_exact(p.output, ref, f"{weights} {activation.name}")


@pytest.mark.parametrize("weights,activation", [("f32", Act.Identity), ("e4m3:3x5", Act.Relu2),
                                               ("nvfp4:packed:swizzled", Act.Identity)],
                         ids=["f32-Identity", "e4m3-Relu2", "nvfp4-Identity"])  # fmt: skip
def test_exact_gemm1_delta(weights, activation):
    """Exact tier with a small-integer delta (|d| <= 2) on every GEMM1 output: the delta of
    assignment (t, j) must land on its row, so output and inter_output equal the reference
    bitwise (bounds as in test_exact_small_integers, each GEMM1 sum grown by at most 2)."""
    p = _exact_problem(weights=weights, activation=activation, H=40, I=24, seed=6, lora=True,
                       inter_out=True)  # fmt: skip
    run_native(p)
    ref = reference_moe_permuted(p)
    assert ref.output.abs().max() > 0
    assert_exact(p.output, ref.output, f"{weights} {activation.name} output")
    assert_exact(p.inter_output, ref.intermediate, f"{weights} {activation.name} inter_output")
    # Without the delta the result differs: the delta is not silently dropped.
    q = _exact_problem(weights=weights, activation=activation, H=40, I=24, seed=6)
    run_native(q)
    assert not torch.equal(q.output, p.output)


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
    p = _exact_problem(
        weights=weights,
        activation=Act.Identity,
        H=72,
        I=40,
        seed=4,
        input_quant=input_quant,
        inter_quant=inter_quant,
    )
    run_native(p)
    assert_exact(p.output, reference_moe(p), f"{input_quant}/{inter_quant} {weights}")
