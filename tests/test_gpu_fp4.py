"""The CUDA executor on FP4-weight (e2m1) MoeProblems: W4A16, every GEMM tactic.

Same method as test_gpu_fp8.py (tests/gpu_cases.py): each problem is built on the CPU with
poisoned outputs, run on the device with Auto, Sm80Decode, Sm80Prefill and Sm90, and checked
against the float64 reference (which decodes exactly the codes and scales the kernel sees) and
against the CPU executor. The sm80 family (and Auto) must run every problem; Sm90 has no FP4
kernel and must refuse with a ValueError naming ``tactic``.

Covered: NVFP4 (e4m3 scales per 16 + per-expert global; packed and one code per byte; linear
and 128x4-swizzled scales) and MXFP4 (ue8m0 per 32) weights with bf16 and fp16 activations; the
exact small-integer tier; decode and prefill sizes; H and I not multiples of 128 (H = 2880 as
gpt-oss); gpt-oss's clamped SwiGLU with biases; EP and capacity; determinism; the fused gather
and activation epilogue bitwise equal to the unfused path; W4A8 / W4A4 (FP8, MXFP8 and NVFP4
activations and intermediates, static scales per expert); bad FP4 input names the argument; NaN
scales give NaN rows.
"""

from __future__ import annotations

import os
import subprocess
import sys

import flashinfer
import pytest
import torch
from flashinfer.fused_moe.enums import ActivationType as Act
from flashinfer.fused_moe.enums import GemmTactic
from flashinfer.fused_moe.runner import run_problem
from gpu_cases import (
    DEVICE,
    ON_GPU,
    check_all_tactics,
    check_repeated_calls_bitwise_identical,
    gpu_only,
    to_device,
    with_fresh_outputs,
)
from moe_builders import build_problem

pytestmark = [pytest.mark.gpu] if ON_GPU else []

FORMATS = ["nvfp4:packed:linear", "nvfp4:packed:swizzled", "nvfp4:unpacked:linear", "mxfp4"]
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def fp4_problem(weights="mxfp4", dtype="bf16", **kw):
    d = DTYPES[dtype]
    kw = dict(dict(T=16, H=256, I=128, E=8, k=2, seed=0), **kw)
    return build_problem(weights=weights, in_dtype=d, compute=d, out_dtype=d, **kw)


def _ran_families(ran):
    # (The CPU dry run ignores tactics, so every one "runs" there.)
    assert not ON_GPU or GemmTactic.Sm90 not in ran, "Sm90 has no FP4 kernel: it must refuse"
    return ran


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("weights", FORMATS)
def test_formats(weights, dtype):
    _ran_families(check_all_tactics(fp4_problem(weights, dtype, T=40, seed=1)))


@pytest.mark.parametrize("weights", ["nvfp4:packed:linear", "mxfp4", "nvfp4:unpacked:linear"])
def test_exact_small_integers(weights):
    """Codes of magnitude 0.5..2, power-of-two scales, small-integer inputs: every sum is exact
    in fp32, so an indexing slip in codes or scales is a large error, not noise."""
    check_all_tactics(fp4_problem(weights, T=33, exact=True, seed=2))


# (T, E, k, H, I, extra): decode and prefill; ragged K tiles and scale blocks.
SHAPES = [
    (1, 8, 2, 256, 128, {}),
    (3, 16, 8, 512, 384, {}),
    (5, 4, 4, 2880, 2880, {}),  # gpt-oss sizes: H = I = 2880, not a multiple of 128
    (64, 8, 2, 384, 200, {}),  # I = 200: the last 32-block of GEMM2's K is 8 wide
    (1000, 8, 2, 512, 256, {}),
    (1000, 64, 8, 256, 128, dict(activation=Act.Relu2)),
    # H = 2896, I = 144: the end of K cuts a thread's 32-code slice (sm80_w4a16_stream_kernel.cuh);
    # about 12 rows per expert: both 8-row halves of a work item.
    (24, 2, 1, 2896, 144, {}),
    # T * k <= 8: the stream kernel's 8-row tile of 8 warps (gpt-oss at T = 1; the
    # ragged end of K of the shape above).
    (1, 4, 4, 2880, 2880, {}),
    (2, 2, 2, 2896, 144, {}),
]


@pytest.mark.parametrize("weights", ["nvfp4:packed:linear", "mxfp4"])
@pytest.mark.parametrize("T,E,k,H,I,extra", SHAPES,
                         ids=["T{}-E{}-k{}-H{}-I{}".format(*s[:5]) for s in SHAPES])  # fmt: skip
def test_shapes(T, E, k, H, I, extra, weights):  # noqa: E741
    check_all_tactics(fp4_problem(weights, T=T, E=E, k=k, H=H, I=I, seed=T + E + H, **extra))


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "random"])
@pytest.mark.parametrize("T", [3, 40, 300])
def test_mxint4_weights(T, exact):
    """MXINT4 weights (Int4Packed: two's-complement int4 codes, bf16 scales per 32, the last
    block of GEMM2's K = 48 ragged) through the W4A16 kernels, every tactic, bf16 compute:
    small-integer codes and inputs with power-of-two scales (an indexing or sign slip is a large
    error) and random data (test_api_trtllm_mxint4 builds both tiers)."""
    from test_api_trtllm_mxint4 import int4_quant_tensor

    p = build_problem(weights="bf16", T=T, E=8, k=2, H=256, I=48, exact=exact, seed=30 + T)
    p.w1 = int4_quant_tensor(8, 96, 256, 31 + T, exact)
    p.w2 = int4_quant_tensor(8, 256, 48, 32 + T, exact)
    _ran_families(check_all_tactics(p))


@pytest.mark.parametrize("T", [4, 300])
def test_gpt_oss_options(T):
    """MXFP4 W4A16 as gpt-oss runs it: fc1 / fc2 biases, clamped SwiGLU (alpha, beta, limit),
    top-4 of the logits then softmax (Renormalize)."""
    p = fp4_problem("mxfp4", T=T, E=16, k=4, H=320, I=192, activation=Act.SwigluBias,
                    biases=True, act_params=True, routing="Renormalize", seed=3)  # fmt: skip
    check_all_tactics(p)


# Situ and the GEMM1 delta (LoRA) with FP4 weights: W4A16 (the fused sm80 epilogue for Situ
# alone, the activation kernel with a delta) and W4A4 / W4A8 (the widened activation kernel).
FP4_SITU_LORA = {
    "situ-w4a16-decode": dict(weights="mxfp4", T=4, activation=Act.Situ, act_params=True),
    "situ-w4a16-prefill": dict(weights="nvfp4:packed:linear", T=300, activation=Act.Situ),
    "lora-w4a16-situ-biases": dict(weights="mxfp4", T=40, activation=Act.Situ, act_params=True,
                                   biases=True, lora=True, inter_out=True),
    "lora-w4a4": dict(weights="nvfp4:packed:linear", T=40, input_quant="nvfp4",
                      inter_quant="nvfp4", lora=True, inter_out=True),
    "lora-w4a8-situ-ep": dict(weights="mxfp4", T=24, input_quant="mxfp8", inter_quant="mxfp8",
                              activation=Act.Situ, offset=2, local=4, lora=True, inter_out=True),
}  # fmt: skip


@pytest.mark.parametrize("kw", FP4_SITU_LORA.values(), ids=FP4_SITU_LORA.keys())
def test_situ_and_gemm1_delta(kw):
    _ran_families(check_all_tactics(fp4_problem(**dict(dict(seed=13), **kw))))


@pytest.mark.parametrize(
    "extra",
    [
        dict(offset=4, local=4),
        dict(capacity=3),
        dict(permuted=True),
        dict(rw_on_input=True, k=1, routing="Llama4"),
    ],
    ids=["ep", "capacity", "permuted", "llama4"],
)
def test_ep_capacity_outputs(extra):
    check_all_tactics(fp4_problem("nvfp4:packed:linear", T=24, **dict(dict(seed=4), **extra)))


def test_deterministic():
    check_repeated_calls_bitwise_identical(fp4_problem("mxfp4", T=64, seed=5))


# (weights, input_quant, inter_quant, extra): FP4 weights with quantized activations, widened
# exactly to bf16 before the W4A16 kernel (src/cuda/act_widen.cuh).
QUANTIZED_ACTIVATIONS = [
    ("mxfp4", "mxfp8", "mxfp8", dict(T=40)),  # W4A8 as trtllm's MxFP8 x MxFP4
    ("nvfp4:packed:linear", "nvfp4", "nvfp4", dict(T=40)),  # W4A4
    ("nvfp4:packed:swizzled", "nvfp4_per_expert", "nvfp4_per_expert", dict(T=3, offset=2, local=4)),
    ("mxfp4", "fp8_static", "fp8_static_per_expert", dict(T=300, H=2880, I=200)),
    ("mxfp4", "none", "mxfp8", dict(T=17, activation=Act.SwigluBias, biases=True, act_params=True)),
    ("nvfp4:unpacked:linear", "nvfp4", "none", dict(T=9, dtype="fp16", capacity=3)),
]


@pytest.mark.parametrize("weights,input_quant,inter_quant,extra", QUANTIZED_ACTIVATIONS)
def test_quantized_activations(weights, input_quant, inter_quant, extra):
    """W4A8 / W4A4: every tactic that runs FP4 matches the float64 reference of the quantized
    values and the CPU executor."""
    p = fp4_problem(weights, input_quant=input_quant, inter_quant=inter_quant,
                    **dict(dict(seed=6), **extra))  # fmt: skip
    _ran_families(check_all_tactics(p))


@pytest.mark.parametrize("weights", ["mxfp4", "nvfp4:packed:linear"])
def test_quantized_activations_exact_small_integers(weights):
    """Small-integer inputs survive MXFP8 exactly and the weights are small integers times
    powers of two, so GEMM1's sums are exact: a misplaced widened value or row factor is a
    large error, not noise."""
    check_all_tactics(fp4_problem(weights, T=21, exact=True, input_quant="mxfp8", seed=12))


@gpu_only
def test_per_token_fp8_with_fp4_weights_names_the_field():
    """Per-token / per-group FP8 activations with e2m1 weights (no public form makes them) stay
    NotImplementedError naming the field, never a run elsewhere."""
    for quant in ("fp8_token", "fp8_group:128"):
        p = to_device(fp4_problem("nvfp4:packed:linear", input_quant=quant, seed=6), "cuda")
        with pytest.raises(NotImplementedError, match=r"input_quant\.mode"):
            run_problem(with_fresh_outputs(p))


_DECODE_KERNEL_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_gpu_fp4 import fp4_problem
from gpu_cases import check_all_tactics
from flashinfer.fused_moe.enums import ActivationType as Act
check_all_tactics(fp4_problem("mxfp4", T=5, E=4, k=4, H=2880, I=192, activation=Act.SwigluBias,
                              biases=True, act_params=True, routing="Renormalize", seed=21))
check_all_tactics(fp4_problem("nvfp4:packed:swizzled", "fp16", T=40, I=200, seed=22))
check_all_tactics(fp4_problem("nvfp4:packed:linear", T=33, exact=True, seed=23))
check_all_tactics(fp4_problem("mxfp4", T=24, E=2, k=1, H=2896, I=144, seed=24))
"""


@gpu_only
def test_staged_decode_kernel():
    """The W4A16 decode tile's smem-staged kernel, which still runs every problem the stream
    kernel does not take, on the problems the stream kernel runs by default: in its own process
    with FLASHINFER_MOE_DISABLE_FP4_STREAM (the choice is read once)."""
    script = _DECODE_KERNEL_SCRIPT.format(tests=os.path.dirname(__file__))
    env = {**os.environ, "FLASHINFER_MOE_DISABLE_FP4_STREAM": "1"}
    subprocess.run([sys.executable, "-c", script], env=env, check=True)


_FUSION_SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
from test_gpu_fp4 import fp4_problem
from gpu_cases import to_device, with_fresh_outputs
from flashinfer.fused_moe.enums import ActivationType as Act
from flashinfer.fused_moe.runner import run_problem
outs = []
for T, act in ((3, Act.Swiglu), (200, Act.SwigluBias), (40, Act.Relu2)):
    p = fp4_problem("mxfp4", T=T, H=256, I=192, activation=act, biases=True,
                    act_params=act == Act.SwigluBias, seed=T)
    p = with_fresh_outputs(to_device(p, "cuda"))
    run_problem(p)
    outs.append(p.output.cpu().view(torch.int16))
torch.save(outs, sys.argv[1])
"""


@gpu_only
def test_fused_gemm1_bitwise_equal_to_unfused(tmp_path):
    """GEMM1 with the gather and the activation fused gives the bits of the unfused pipeline
    (FLASHINFER_MOE_DISABLE_GEMM1_FUSION); each run in its own process, as the switch is read
    once."""
    script = _FUSION_SCRIPT.format(tests=os.path.dirname(__file__))
    results = []
    for disabled in (False, True):
        env = dict(os.environ)
        env.pop("FLASHINFER_MOE_DISABLE_GEMM1_FUSION", None)
        if disabled:
            env["FLASHINFER_MOE_DISABLE_GEMM1_FUSION"] = "1"
        out = tmp_path / f"out{int(disabled)}.pt"
        subprocess.run([sys.executable, "-c", script, str(out)], env=env, check=True)
        results.append(torch.load(out))
    for fused, unfused in zip(*results):
        assert torch.equal(fused, unfused), "the fused FP4 GEMM1 differs from the unfused path"


def _seed_fp4_args(dtype=torch.float16, h=64, packed=True, seed=7):
    """A valid seed-form FP4 call on DEVICE: (x, gating, codes, scales), keywords."""
    g = torch.Generator().manual_seed(seed)
    t, e, i = 3, 2, 32
    x = torch.randn(t, h, generator=g).to(dtype)
    gating = torch.randn(t, e, generator=g)
    codes = torch.randint(0, 256, (e, 2, i, h // 2 if packed else h), dtype=torch.uint8,
                          generator=g)  # fmt: skip
    scale = (torch.rand(e, 2, i // 16, generator=g) + 0.5).half()
    args = [v.to(DEVICE) for v in (x, gating, codes, scale)]
    return args, dict(num_experts=e, top_k=1, hidden_size=h, intermediate_size=i)


@pytest.mark.parametrize(
    "case,error,field",
    [
        ("scale shape", ValueError, "experts_scale"),
        ("codes dtype", TypeError, "experts"),
        ("odd packed K", ValueError, "experts"),
    ],
)
def test_bad_fp4_input_names_the_argument(case, error, field):
    """Bad FP4 input is a ValueError / TypeError naming the argument on CUDA as on the CPU (the
    same checks run before anything is launched)."""
    (x, gating, codes, scale), kw = _seed_fp4_args()
    if case == "scale shape":
        scale = scale[:, :, :1].repeat(1, 1, 5)  # 5 row blocks do not divide I = 32
    elif case == "codes dtype":
        codes = codes.half()
    else:  # H = 63: a packed last dimension of 32 is neither 63 nor 63 / 2
        x = x[:, :63]
        kw["hidden_size"] = 63
    with pytest.raises(error, match=field):
        flashinfer.trtllm_fp4_block_scale_moe(x, gating, codes, scale, **kw)


def test_nan_scales_give_nan_rows_not_errors():
    """A NaN block scale is data, not a checkable argument (reading it would sync the host with
    the device): the rows of the tokens routed to that expert come out NaN, the others finite."""
    (x, gating, codes, scale), kw = _seed_fp4_args(seed=8)
    gating = torch.tensor([[9.0, -9.0], [-9.0, 9.0], [9.0, -9.0]], device=x.device)
    scale = scale.clone()
    scale[0, 0, 0] = float("nan")  # expert 0, W_in rows 0..15
    out = flashinfer.trtllm_fp4_block_scale_moe(x, gating, codes, scale, **kw).float().cpu()
    assert torch.isnan(out[[0, 2]]).any(dim=1).all()  # tokens 0 and 2 go to expert 0
    assert torch.isfinite(out[1]).all()
