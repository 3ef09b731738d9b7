"""The CUDA executor on e4m3 (FP8) MoeProblems, every GEMM tactic, against the float64 reference.

Same method as test_gpu_moe.py (tests/gpu_cases.py): each problem is built on the CPU with
poisoned outputs, run on the device with Auto, Sm80Decode, Sm80Prefill and Sm90, and checked
against the float64 reference, which dequantizes exactly the codes and scales the kernels see
and requantizes where they do (docs/semantics.md), and against the CPU executor. The portable
sm80 families (and Auto) must run every problem; Sm90 may refuse one it was not compiled for,
with a ValueError naming ``tactic``.

Covered: every activation scale kind (static scalar and per expert, per token, per group of 128,
MXFP8 groups of 32) for GEMM1's input and the intermediate; every weight scale granularity
(per matrix, per row, row blocks of 16 as the seed form makes them, 128x128 blocks, 1x32, and
K blocks that differ from the activation groups: 16-column blocks under 1x128 groups);
pre-quantized e4m3 inputs with and without 1x128 scales; I and H not multiples of 128; tiny
weight scales (about 1e-8, flashinfer issue 2356); EP and capacity; the transposed W_out of the
seed form; the exact small-integer tier; determinism; GEMM1's fused activation + requantization
epilogues (sm80 family and the Hopper kernel), bitwise equal to the unfused path.
"""

from __future__ import annotations

import pytest
import torch
from flashinfer.fused_moe.enums import ActivationType as Act
from flashinfer.fused_moe.enums import ElemFormat, GemmTactic
from flashinfer.fused_moe.problem import QuantTensor
from flashinfer.fused_moe.runner import run_problem
from gpu_cases import (
    DEVICE,
    ON_GPU,
    check,
    check_all_tactics,
    check_repeated_calls_bitwise_identical,
    gpu_only,
    prepare,
    run_on_device,
    to_device,
    with_fresh_outputs,
)
from moe_builders import build_problem, make_weights
from numeric import rand_float

pytestmark = [pytest.mark.gpu] if ON_GPU else []

E4M3 = torch.float8_e4m3fn


def fp8_problem(w="e4m3:128x128", input_quant="fp8_group:128", inter_quant="fp8_group:128",
                **kw):  # fmt: skip
    """build_problem with e4m3 weights of format ``w`` for both stacks."""
    kw = dict(dict(T=16, H=256, I=128, E=8, k=2, seed=0), **kw)
    p = build_problem(input_quant=input_quant, inter_quant=inter_quant, **kw)
    local, h, i = p.local_num_experts, p.hidden_size, p.intermediate_size
    m1 = 2 * i if Act(p.activation).is_gated else i
    exact = kw.get("exact", False)
    p.w1 = make_weights(w, local, m1, h, kw["seed"] + 20, exact)
    p.w2 = make_weights(w, local, h, i, kw["seed"] + 30, exact)
    return p


# (weights, input_quant, inter_quant): every scale kind, K-varying ones paired with equal slices.
SCALES = [
    ("e4m3:128x128", "fp8_group:128", "fp8_group:128"),  # DeepSeek block FP8
    ("e4m3:128x128", "fp8_token", "fp8_token"),  # K-varying weights, per-row activations
    ("e4m3:0x0", "fp8_static", "fp8_static"),  # per-tensor (W8A8)
    ("e4m3:0x0", "fp8_static_per_expert", "fp8_static_per_expert"),
    ("e4m3:1x0", "fp8_token", "fp8_group:128"),  # per-channel weights
    ("e4m3:16x0", "fp8_token", "fp8_token"),  # the seed form's row blocks
    ("e4m3:1x32", "mxfp8", "mxfp8"),  # MXFP8-shaped slices of 32
    ("e4m3:0x0", "fp8_group:128", "fp8_static"),
    # Weight blocks along K that differ from the activation groups meet in slices of their gcd:
    # the seed form's transposed W_out ([all H] x 16 blocks) under 1x128 groups, and 1x16 vs 64.
    ("e4m3:0x16", "fp8_group:128", "fp8_group:128"),
    ("e4m3:1x16", "fp8_group:128", "fp8_group:64"),
]


@pytest.mark.parametrize("w,q1,q2", SCALES, ids=["-".join(s) for s in SCALES])
def test_scale_kinds(w, q1, q2):
    check_all_tactics(fp8_problem(w, q1, q2, T=64, seed=1))


@pytest.mark.parametrize("w,q1,q2", SCALES[:3], ids=["-".join(s) for s in SCALES[:3]])
def test_exact_small_integers(w, q1, q2):
    """Small-integer codes and power-of-two scales: every sum is exact in fp32, so an indexing
    slip in codes or scales is a large error, not noise."""
    check_all_tactics(fp8_problem(w, q1, q2, T=33, exact=True, seed=2))


# (T, E, k, H, I, extra): decode and prefill, H / I not multiples of 128 (ragged last block).
SHAPES = [
    (1, 8, 2, 256, 128, {}),
    (3, 16, 8, 512, 384, {}),
    (64, 256, 8, 256, 128, dict(routing="DeepSeekV3")),
    (64, 8, 2, 384, 200, {}),  # I = 200: GEMM2's last K slice is 72 wide
    (64, 8, 2, 200, 128, {}),  # H = 200: GEMM1's last K slice is 72 wide
    (1000, 8, 2, 512, 256, {}),
    (1000, 64, 8, 256, 128, dict(activation=Act.Relu2)),
]


@pytest.mark.parametrize("T,E,k,H,I,extra", SHAPES,
                         ids=["T{}-E{}-k{}-H{}-I{}".format(*s[:5]) for s in SHAPES])  # fmt: skip
def test_shapes(T, E, k, H, I, extra):  # noqa: E741
    check_all_tactics(fp8_problem(T=T, E=E, k=k, H=H, I=I, seed=T + E + H, **extra))


def test_large_prefill():
    p = fp8_problem(T=4096, E=8, k=2, H=1024, I=512, seed=3)
    check_all_tactics(p, cpu_executor=False)


def _quantized_input(p, block_cols):
    """Replaces ``p``'s float input by e4m3 codes (with [T, H/block_cols] fp32 scales when
    block_cols > 0, else none) and drops input_quant: the input arrives quantized."""
    t, h = p.num_tokens, p.hidden_size
    codes = rand_float((t, h), torch.float32, 70, scale=16.0).clamp(-448, 448).to(E4M3)
    if block_cols:
        scale = rand_float((t, -(-h // block_cols)), torch.float32, 71).abs() / 64
        p.input = QuantTensor(codes, ElemFormat.E4M3, scale=scale, block_rows=1,
                              block_cols=block_cols)  # fmt: skip
    else:
        p.input = QuantTensor(codes, ElemFormat.E4M3)
    p.input_quant = type(p.input_quant)()
    return p


@pytest.mark.parametrize("w,block", [("e4m3:128x128", 128), ("e4m3:0x0", 0)])
def test_prequantized_input(w, block):
    p = fp8_problem(w, "none", "fp8_group:128" if block else "fp8_static", T=64, seed=4)
    check_all_tactics(_quantized_input(p, block))


def test_prequantized_input_with_transposed_scales():
    """trtllm's hidden_states_scale is [H/128, T] (token fastest): a transposed view."""
    p = _quantized_input(fp8_problem(T=64, seed=5), 128)
    p.input.scale = p.input.scale.t().contiguous().t()
    assert p.input.scale.stride(0) == 1
    check_all_tactics(p)


def test_tiny_weight_scales():
    """Weight scales around 1e-8 (flashinfer issue 2356): dynamic activation scales follow the
    tiny magnitudes down; nothing underflows to zero or saturates."""
    p = fp8_problem(T=64, seed=6)
    for w in (p.w1, p.w2):
        w.scale = w.scale * 1e-8 / w.scale.mean()
    check_all_tactics(p)


@pytest.mark.parametrize(
    "kw",
    [dict(capacity=3, T=64), dict(E=16, offset=8, local=4, k=4, T=64),
     dict(E=16, offset=4, local=8, k=4, T=64, capacity=5)],
    ids=["cap3", "ep_middle", "ep_cap"],
)  # fmt: skip
def test_capacity_and_expert_parallel_window(kw):
    check_all_tactics(fp8_problem(seed=7, **kw))


@pytest.mark.parametrize(
    "activation", [Act.Swiglu, Act.SwigluBias, Act.Gelu, Act.Identity, Act.Situ]
)
def test_activations_biases_and_weight_on_input(activation):
    params = activation in (Act.SwigluBias, Act.Situ)
    p = fp8_problem(T=64, activation=activation, act_params=params, biases=True, seed=8,
                    routing="Llama4", k=1, rw_on_input=True)  # fmt: skip
    check_all_tactics(p)


# GEMM1's fused epilogue on the sm80 family (dequantization, bias, activation and GEMM2's
# requantization in the GEMM): every intermediate quantization whose groups fit one CTA (a gated
# CTA covers 32 intermediate columns in the decode tile, 64 in the prefill tile) with every
# activation path, ragged I (a short last tile and group) and EP.
FUSED_EPILOGUE = {
    "static-swiglubias-weights-on-input": dict(
        inter_quant="fp8_static", activation=Act.SwigluBias, act_params=True, biases=True,
        routing="Llama4", k=1, rw_on_input=True),
    "static-per-expert-relu2-I200": dict(
        w="e4m3:1x0", input_quant="fp8_token", inter_quant="fp8_static_per_expert",
        activation=Act.Relu2, I=200),
    "mxfp8-I200-ep": dict(
        w="e4m3:1x32", input_quant="mxfp8", inter_quant="mxfp8", I=200, E=16, offset=4, local=8,
        k=4),
    "token-row-inside-one-tile-I48": dict(w="e4m3:0x0", inter_quant="fp8_token", I=48),
    "group16-gelu-I80": dict(
        w="e4m3:0x0", input_quant="fp8_static", inter_quant="fp8_group:16", activation=Act.Gelu,
        I=80),
    "static-situ-I80": dict(
        w="e4m3:0x0", input_quant="fp8_static", inter_quant="fp8_static", activation=Act.Situ,
        act_params=True, I=80),
}  # fmt: skip


@pytest.mark.parametrize("kw", FUSED_EPILOGUE.values(), ids=FUSED_EPILOGUE.keys())
@pytest.mark.parametrize("T", [5, 300])
def test_fused_gemm1_epilogue(kw, T):
    check_all_tactics(fp8_problem(T=T, seed=T + 40 + len(kw), **kw))


# GEMM1's fused epilogue on Hopper (sm90_fp8_gated_gemm.h): Sm90 fuses FP8 GEMM1 with a gated
# activation for K >= 4096 and 4..64 rows per local expert (heuristics.h; T * k / E_local here),
# for the intermediate quantizations GEMM2 can take on Sm90 (1x128 groups, static, per token:
# the DeepSeek and Mixtral forms), with K-varying and K-constant weight scales, a ragged last K
# slice, bias + routing weight on the input, EP, and rows that leave a tile part empty. MXFP8 or
# narrower groups of the intermediate leave Sm90 for the sm80 family (GEMM2's scales), so they
# never reach this kernel.
SM90_FUSED = {
    "block-1x128": dict(T=150, I=256, H=4096),
    "block-1x128-ragged-k": dict(T=150, I=128, H=4176),
    "static-per-tensor": dict(
        T=150, w="e4m3:0x0", input_quant="fp8_static", inter_quant="fp8_static", I=256, H=4096),
    "static-per-expert-swiglubias-weights-on-input": dict(
        T=300, w="e4m3:0x0", input_quant="fp8_static", inter_quant="fp8_static_per_expert",
        activation=Act.SwigluBias, act_params=True, biases=True, routing="Llama4", k=1,
        rw_on_input=True, I=128, H=4096),
    "token-in-static-out-geglu-ep": dict(
        T=100, w="e4m3:1x0", input_quant="fp8_token", inter_quant="fp8_static",
        activation=Act.Geglu, E=16, offset=4, local=8, k=4, I=256, H=4096),
    "block-in-token-out-I128": dict(T=150, inter_quant="fp8_token", I=128, H=4096),
    "block-situ-defaults": dict(T=150, activation=Act.Situ, I=256, H=4096),
}  # fmt: skip


@pytest.mark.parametrize("kw", SM90_FUSED.values(), ids=SM90_FUSED.keys())
def test_sm90_fused_gemm1_epilogue(kw):
    check_all_tactics(fp8_problem(seed=50 + len(kw), **kw))


# The GEMM1 delta (LoRA) and inter_output on e4m3 problems: the activation kernel of its own
# (also where the sm80 / Sm90 fused epilogues would run otherwise), with every quantization of
# the intermediate it handles (static, per token, per group, MXFP8), EP and capacity.
FP8_LORA = {
    "block-situ": dict(activation=Act.Situ, act_params=True),
    "static-swiglu-decode": dict(T=5, w="e4m3:0x0", input_quant="fp8_static",
                                 inter_quant="fp8_static"),
    "token-relu2-ep-cap": dict(w="e4m3:1x0", input_quant="fp8_token", inter_quant="fp8_token",
                               activation=Act.Relu2, E=16, offset=4, local=8, k=4, capacity=3),
    "mxfp8": dict(w="e4m3:1x32", input_quant="mxfp8", inter_quant="mxfp8"),
    "sm90-fusable-shape": dict(T=150, I=256, H=4096),
}  # fmt: skip


@pytest.mark.parametrize("kw", FP8_LORA.values(), ids=FP8_LORA.keys())
def test_gemm1_delta_and_inter_output(kw):
    check_all_tactics(fp8_problem(**dict(dict(T=64, lora=True, inter_out=True, seed=60), **kw)))


_FUSION_PROBE = r"""
import sys, torch
sys.path.insert(0, sys.argv[1])
from flashinfer.fused_moe.enums import GemmTactic
from gpu_cases import prepare, run_on_device
from moe_builders import build_problem
from test_gpu_fp8 import FUSED_EPILOGUE, SM90_FUSED, fp8_problem
seed = int(sys.argv[3])
problems = [(name, fp8_problem(T=T, seed=seed + T, **kw))
            for name, kw in FUSED_EPILOGUE.items() for T in (5, 300)]
problems.append(("bf16", build_problem(T=40, H=256, I=96, E=8, k=2, seed=seed, biases=True)))
hopper = torch.cuda.get_device_capability() == (9, 0)
if hopper:
    problems += [("sm90-" + name, fp8_problem(seed=seed, **kw)) for name, kw in SM90_FUSED.items()]
runs = []
for name, p in problems:
    case = prepare(p, cpu_executor=False)
    tactics = (GemmTactic.Sm90,) if name.startswith("sm90-") else (
        GemmTactic.Sm80Decode, GemmTactic.Sm80Prefill)
    for tactic in tactics:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            got = run_on_device(case, tactic)
            torch.cuda.synchronize()
        kernels = sorted({e.name for e in prof.events() if "activation" in e.name})
        runs.append((name, tactic.name, kernels, None if got is None else got.output.cpu()))
torch.save(runs, sys.argv[2])
"""


@gpu_only
def test_fused_gemm1_epilogue_gives_the_unfused_bits(tmp_path):
    """The fused epilogue computes what the activation kernel computes, element for element:
    with FLASHINFER_MOE_DISABLE_GEMM1_FUSION set (a process-wide switch, hence the subprocesses)
    every output must be bitwise the fused one. Only the unfused run, and the one case whose
    per-token groups (48 columns) are wider than the decode tile's 32, launch the activation
    kernel. On Hopper the Sm90 cases compare the fused kernel with CUTLASS + the activation
    kernel (the same K-slice promotion arithmetic, hence the same bits)."""
    import os
    import random
    import subprocess
    import sys

    tests_dir = os.path.dirname(os.path.abspath(__file__))
    seed = random.randrange(1 << 20)
    runs = {}
    for mode in ("fused", "unfused"):
        env = dict(os.environ)
        env.pop("FLASHINFER_MOE_DISABLE_GEMM1_FUSION", None)
        if mode == "unfused":
            env["FLASHINFER_MOE_DISABLE_GEMM1_FUSION"] = "1"
        out = tmp_path / f"{mode}.pt"
        subprocess.run([sys.executable, "-c", _FUSION_PROBE, tests_dir, str(out), str(seed)],
                       env=env, check=True, timeout=600)  # fmt: skip
        runs[mode] = torch.load(out)
    hopper = torch.cuda.get_device_capability() == (9, 0)
    expected = 2 * (2 * len(FUSED_EPILOGUE) + 1) + (len(SM90_FUSED) if hopper else 0)
    assert len(runs["fused"]) == len(runs["unfused"]) == expected
    for fused, unfused in zip(runs["fused"], runs["unfused"]):
        name, tactic, kernels, out = fused
        what = f"{name} {tactic} (seed {seed})"
        assert out is not None and unfused[3] is not None, f"{what}: refused"
        unfusable = name.startswith("token-row") and tactic == "Sm80Decode"
        assert bool(kernels) == unfusable, f"{what}: fused run launched {kernels}"
        assert unfused[2], f"{what}: the unfused run never launched the activation kernel"
        assert torch.equal(out.view(torch.uint8), unfused[3].view(torch.uint8)), what


def test_transposed_w2_view():
    """The seed form's W_out: a transposed view of a stored [E, I, H] code tensor."""
    p = fp8_problem("e4m3:16x0", "fp8_token", "fp8_token", T=64, activation=Act.Silu, seed=9)
    stored = p.w2.data.transpose(1, 2).contiguous()
    p.w2.data = stored.transpose(1, 2)
    assert p.w2.data.stride()[1] == 1
    check_all_tactics(p)


def test_fp32_compute_dtype_and_output():
    """FP8 problems never round to the compute dtype, so a float32 one runs too."""
    p = fp8_problem(T=64, seed=10, compute=torch.float32, out_dtype=torch.float32,
                    in_dtype=torch.float32)  # fmt: skip
    check_all_tactics(p)


def test_permuted_output_without_finalize():
    check_all_tactics(fp8_problem(T=64, k=3, permuted=True, seed=11))


def test_repeated_calls_are_bitwise_identical():
    check_repeated_calls_bitwise_identical(fp8_problem(T=1000, E=64, k=8, seed=12))


def test_sm90_runs_the_deepseek_and_per_tensor_shapes_on_hopper():
    """Guards against the sm90 FP8 family silently never running where it should."""
    if not ON_GPU or torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("needs a Hopper GPU")
    from flashinfer import _C

    if "90a" not in _C.cuda_architectures().split(";"):
        pytest.skip("built without 90a")
    for args in (("e4m3:128x128", "fp8_group:128", "fp8_group:128"),
                 ("e4m3:0x0", "fp8_static", "fp8_static")):  # fmt: skip
        case = prepare(fp8_problem(*args, T=256, seed=13))
        got = run_on_device(case, GemmTactic.Sm90)
        assert got is not None, f"Sm90 refused {args}"
        check(case, got, f"Sm90 {args}")


def _mixed_formats():
    p = fp8_problem(seed=14)
    p.w2 = make_weights("bf16", 8, p.hidden_size, p.intermediate_size, 15)
    return p


# FP8 problems the CPU executor runs but the CUDA engine does not (yet): each must raise
# NotImplementedError naming the field, never run elsewhere or give a wrong result.
OUT_OF_SCOPE = [
    ("w2.format", _mixed_formats),  # e4m3 w1 with bf16 w2
    ("input_quant.mode", lambda: fp8_problem(input_quant="none", seed=16)),  # W8A16
    # gcd(128, 24) = 8: not a whole mma K step
    ("w1.block_cols", lambda: fp8_problem(input_quant="fp8_group:24", seed=17)),
]


@gpu_only
@pytest.mark.parametrize("field,make", OUT_OF_SCOPE, ids=[f for f, _ in OUT_OF_SCOPE])
def test_fp8_outside_the_cuda_scope_raises_not_implemented_naming_the_field(field, make):
    p = with_fresh_outputs(to_device(make(), DEVICE))
    with pytest.raises(NotImplementedError, match=field.replace(".", r"\.")):
        run_problem(p)
