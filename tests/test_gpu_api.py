"""The public API forms on CUDA tensors, CUDA graphs, caller workspaces and the tactic override.

GPU tests (marker ``gpu``): ``cutlass_fused_moe`` seed and full forms and ``trtllm_bf16_moe``
seed, full and routed forms run on the GPU and are compared with the float64 reference of the
canonical problem they translate into (cutlass forms) or with the same call on CPU copies (the
CPU executor, itself checked against the reference by the API test files), within the error
budget of tests/numeric.py; outputs are poisoned first and inputs must come back unchanged.
FP8 / FP4 forms on CUDA must raise NotImplementedError (there is never a CPU fallback). A
captured CUDA graph of the API call (with a caller workspace) replays to the eager result bit
for bit, and a caller workspace full of garbage gives the same bits as an internal one. The
MXINT4 forms raise NotImplementedError naming ``w1.format`` (not on the CUDA engine yet).

CPU tests (no marker): ``FLASHINFER_MOE_GEMM_TACTIC`` parsing and its precedence (runner.py).
``FLASHINFER_MOE_TEST_DEVICE=cpu`` runs the GPU tests' calls on the CPU (see test_gpu_moe.py).
"""

from __future__ import annotations

import dataclasses

import flashinfer
import pytest
import torch
import trtllm_math
from flashinfer.fused_moe import api_cutlass, runner, seed_forms
from flashinfer.fused_moe.enums import ActivationType, GatedActType, GemmTactic, RoutingMethodType
from flashinfer.fused_moe.reference import reference_moe
from gpu_cases import DEVICE, ON_GPU, capture_after_warmup, prepare, run_on_device
from moe_builders import build_problem, routing_inputs
from numeric import assert_close_to_reference, error_budget, poison, rand_float
from trtllm_math import common, deepseek_case, fp8_per_tensor_case

# GPU tests; in the CPU dry run (ON_GPU False) they run unmarked on the CPU executor.
gpu = pytest.mark.gpu if ON_GPU else (lambda fn: fn)


def gpu_only(fn):
    """A test that needs the CUDA executor itself (graphs, devices): skipped in the dry run."""
    return pytest.mark.gpu(pytest.mark.skipif(not ON_GPU, reason="needs the CUDA executor")(fn))


BF16, F16 = torch.bfloat16, torch.float16
RENORM = int(RoutingMethodType.Renormalize)


def _move(v, device):
    """A tensor, or a tuple / list of them (weight pairs, routed ids), copied to ``device``."""
    if isinstance(v, torch.Tensor):
        return v.to(device, copy=True)
    if isinstance(v, (tuple, list)):
        return tuple(_move(x, device) for x in v)
    return v


def _tensors(values):
    out = []
    for v in values:
        out.extend(_tensors(v) if isinstance(v, (tuple, list)) else [v])
    return [v for v in out if isinstance(v, torch.Tensor)]


def _budget(out_dtype, h, i, k, t, compute=None):
    return error_budget(out_dtype=out_dtype, k1=h, k2=i, top_k=k,
                        requant=[(compute or out_dtype, t * k * i)])  # fmt: skip


def _snapshot(values) -> list:
    return [(t, t.clone()) for t in _tensors(values)]


def _assert_unchanged(snapshot, what):
    for n, (t, before) in enumerate(snapshot):
        assert torch.equal(t, before), f"{what}: input tensor {n} was modified"


# ---- public forms on the GPU ------------------------------------------------------------------


@gpu
@pytest.mark.parametrize("two_matrix", [True, False])
def test_cutlass_seed_form(two_matrix):
    t, e, k, h, i = 64, 8, 2, 256, 128
    dtype = F16 if two_matrix else BF16
    x = rand_float((t, h), dtype, 1)
    gating = rand_float((t, e), dtype, 2)
    if two_matrix:  # [E, 2, I, H]: W_in and the stored-transposed W_out
        experts = rand_float((e, 2, i, h), dtype, 3, scale=h**-0.5)
        kw = dict(act_type=GatedActType.SILU, routing_method=RoutingMethodType.ROUND_ROBIN,
                  expert_capacity=12)  # fmt: skip
    else:  # (fc1 [E, 2I, H] in [up ; gate] order, fc2 [E, H, I])
        experts = (rand_float((e, 2 * i, h), dtype, 3, scale=h**-0.5),
                   rand_float((e, h, i), dtype, 4, scale=i**-0.5))  # fmt: skip
        kw = dict(act_type=GatedActType.SwiGlu, routing_method=RoutingMethodType.Renormalize)
    kw.update(num_experts=e, top_k=k, hidden_size=h, intermediate_size=i)
    xd, gd, ed = (_move(v, DEVICE) for v in (x, gating, experts))
    snap = _snapshot([xd, gd, ed])
    out = poison((t, h), dtype).to(DEVICE)
    got = flashinfer.cutlass_fused_moe(xd, gd, ed, output=out, **kw)
    assert got is out
    _assert_unchanged(snap, "cutlass seed form")
    problem = seed_forms.cutlass_seed_problem(x, gating, experts, **kw)
    assert_close_to_reference(out, reference_moe(problem), rel_l2=_budget(dtype, h, i, k, t).rel_l2)


@gpu
@pytest.mark.parametrize("ep", [False, True])
def test_cutlass_full_form(ep):
    t, e, k, h, i = 100, 8, 4, 200, 72
    x = rand_float((t, h), BF16, 10)
    ids, w = routing_inputs(t, e, k, 11)
    n_local = e // 2 if ep else e
    fc1 = rand_float((n_local, 2 * i, h), BF16, 12, scale=h**-0.5)
    fc2 = rand_float((n_local, h, i), BF16, 13, scale=i**-0.5)
    b1 = rand_float((n_local, 2 * i), BF16, 14, scale=0.3)
    b2 = rand_float((n_local, h), BF16, 15, scale=0.3)
    kw = dict(fc1_expert_biases=b1, fc2_expert_biases=b2)
    if ep:
        kw.update(ep_size=2, ep_rank=1)
    args = (x, ids, w, fc1, fc2, BF16, None)
    dargs = [_move(a, DEVICE) for a in args]
    dkw = {n: _move(v, DEVICE) for n, v in kw.items()}
    snap = _snapshot(dargs + list(dkw.values()))
    out = poison((t, h), BF16).to(DEVICE)
    got = flashinfer.cutlass_fused_moe(*dargs, output=out, **dkw)[0]
    assert got is out
    _assert_unchanged(snap, "cutlass full form")
    problem = api_cutlass.cutlass_full_problem(*args, **kw)
    assert_close_to_reference(out, reference_moe(problem), rel_l2=_budget(BF16, h, i, k, t).rel_l2)


def _trtllm_sizes(e, k, i, n_local=None, offset=0):
    return dict(num_experts=e, top_k=k, n_group=None, topk_group=None, intermediate_size=i,
                local_expert_offset=offset, local_num_experts=n_local or e,
                routed_scaling_factor=None)  # fmt: skip


def _gpu_vs_cpu(fn, args, kw, budget, what):
    """``fn`` on DEVICE copies against ``fn`` on CPU copies (the CPU executor)."""
    dargs, cargs = [_move(a, DEVICE) for a in args], [_move(a, "cpu") for a in args]
    snap = _snapshot(dargs)
    got = fn(*dargs, **kw)
    _assert_unchanged(snap, what)
    expect = fn(*cargs, **kw)
    got, expect = (got[0], expect[0]) if isinstance(got, list) else (got, expect)
    assert got.device.type == torch.device(DEVICE).type
    assert_close_to_reference(got, expect.double(), rel_l2=2 * budget.rel_l2, what=what)


@gpu
@pytest.mark.parametrize("layout", ["major_k", "prepared"])
def test_trtllm_bf16_full_form(layout):
    t, e, k, h, i = 64, 8, 2, 256, 128
    x = rand_float((t, h), BF16, 20)
    w1 = rand_float((e, 2 * i, h), BF16, 21, scale=h**-0.5)
    w2 = rand_float((e, h, i), BF16, 22, scale=i**-0.5)
    logits = rand_float((t, e), torch.float32, 23)
    kw = dict(_trtllm_sizes(e, k, i), routing_method_type=RENORM)
    if layout == "major_k":
        kw.update(use_shuffled_weight=False, weight_layout=0)
    else:  # flashinfer's default prepared layout, restored per call
        from trtllm_math import prepare_stack

        w1, w2 = (prepare_stack(w1, gated=True, block_major_k=True),
                  prepare_stack(w2, block_major_k=True))  # fmt: skip
    _gpu_vs_cpu(flashinfer.trtllm_bf16_moe, (logits, None, x, w1, w2), kw,
                _budget(BF16, h, i, k, t), f"trtllm_bf16_moe {layout}")  # fmt: skip


@gpu
@pytest.mark.parametrize("packed", [True, False])
def test_trtllm_bf16_routed_form(packed):
    t, e, k, h, i, offset, n_local = 64, 16, 4, 256, 128, 4, 8
    x = rand_float((t, h), BF16, 30)
    w1 = rand_float((n_local, 2 * i, h), BF16, 31, scale=h**-0.5)
    w2 = rand_float((n_local, h, i), BF16, 32, scale=i**-0.5)
    ids, w = routing_inputs(t, e, k, 33)
    if packed:
        bits = w.to(BF16).view(torch.int16).to(torch.int32) & 0xFFFF
        topk = (ids << 16) | bits
    else:
        topk = (ids, w.to(BF16))
    kw = dict(_trtllm_sizes(e, k, i, n_local, offset), use_shuffled_weight=False, weight_layout=0)
    _gpu_vs_cpu(flashinfer.trtllm_bf16_routed_moe, (topk, x, w1, w2), kw,
                _budget(BF16, h, i, k, t), f"trtllm_bf16_routed_moe packed={packed}")  # fmt: skip


@gpu
def test_cutlass_full_form_situ():
    t, e, k, h, i = 100, 8, 4, 200, 72
    x = rand_float((t, h), BF16, 50)
    ids, w = routing_inputs(t, e, k, 51)
    fc1 = rand_float((e, 2 * i, h), BF16, 52, scale=3 * h**-0.5)
    fc2 = rand_float((e, h, i), BF16, 53, scale=i**-0.5)
    kw = dict(activation_type=ActivationType.Situ, situ_beta=torch.linspace(0.5, 4.0, e),
              situ_linear_beta=torch.linspace(0.75, 25.0, e))  # fmt: skip
    args = (x, ids, w, fc1, fc2, BF16, None)
    out = flashinfer.cutlass_fused_moe(*[_move(a, DEVICE) for a in args],
                                       **{n: _move(v, DEVICE) for n, v in kw.items()})[0]  # fmt: skip
    problem = api_cutlass.cutlass_full_problem(*args, **kw)
    assert_close_to_reference(out, reference_moe(problem), rel_l2=_budget(BF16, h, i, k, t).rel_l2)


@gpu
@pytest.mark.parametrize("params", ["defaults", "clamped"])
def test_trtllm_bf16_situ(params):
    t, e, k, h, i = 64, 8, 2, 256, 128
    x = rand_float((t, h), BF16, 60)
    w1 = rand_float((e, 2 * i, h), BF16, 61, scale=3 * h**-0.5)
    w2 = rand_float((e, h, i), BF16, 62, scale=i**-0.5)
    logits = rand_float((t, e), torch.float32, 63)
    kw = dict(_trtllm_sizes(e, k, i), routing_method_type=RENORM, use_shuffled_weight=False,
              weight_layout=0, activation_type=10)  # fmt: skip
    args = [logits, None, x, w1, w2]
    if params == "clamped":  # gemm1_alpha .. gemm1_clamp_limit, positional after output=None
        kw.update(gemm1_alpha=_move(torch.linspace(0.5, 4.0, e), DEVICE),
                  gemm1_beta=_move(torch.linspace(1.0, 25.0, e), DEVICE),
                  gemm1_clamp_limit=_move(torch.linspace(0.5, 3.0, e), DEVICE))  # fmt: skip
        cpu_kw = {n: _move(v, "cpu") for n, v in kw.items()}
        got = flashinfer.trtllm_bf16_moe(*[_move(a, DEVICE) for a in args], **kw)
        expect = flashinfer.trtllm_bf16_moe(*[_move(a, "cpu") for a in args], **cpu_kw)
        assert_close_to_reference(got, expect.double(),
                                  rel_l2=2 * _budget(BF16, h, i, k, t).rel_l2)  # fmt: skip
    else:
        _gpu_vs_cpu(flashinfer.trtllm_bf16_moe, args, kw, _budget(BF16, h, i, k, t),
                    "trtllm_bf16_moe Situ")  # fmt: skip


@gpu
@pytest.mark.parametrize("act", [ActivationType.Swiglu, ActivationType.Situ], ids=lambda a: a.name)
@pytest.mark.parametrize("do_finalize", [True, False])
def test_trtllm_bf16_routed_gemm1_lora_delta(act, do_finalize):
    """gemm1_lora_delta on CUDA: every result (output or permuted rows, the expanded-to-permuted
    map, gemm1_activation_output) against the same call on the CPU executor."""
    t, e, k, h, i, offset, n_local = 64, 16, 4, 256, 128, 4, 8
    x = rand_float((t, h), BF16, 70)
    w1 = rand_float((n_local, 2 * i, h), BF16, 71, scale=h**-0.5)
    w2 = rand_float((n_local, h, i), BF16, 72, scale=i**-0.5)
    ids, w = routing_inputs(t, e, k, 73)
    delta = rand_float((t, k, 2 * i), BF16, 74, scale=0.5)
    kw = dict(_trtllm_sizes(e, k, i, n_local, offset), use_shuffled_weight=False, weight_layout=0,
              activation_type=act, do_finalize=do_finalize)  # fmt: skip
    args = ((ids, w.to(BF16)), x, w1, w2)
    dargs = [_move(a, DEVICE) for a in args]
    snap = _snapshot(dargs)
    got = flashinfer.trtllm_bf16_routed_moe(*dargs, gemm1_lora_delta=_move(delta, DEVICE), **kw)
    _assert_unchanged(snap, "trtllm_bf16_routed_moe with gemm1_lora_delta")
    expect = flashinfer.trtllm_bf16_routed_moe(*args, gemm1_lora_delta=delta, **kw)
    assert len(got) == len(expect) == (3 if do_finalize else 4)
    budget = 2 * _budget(BF16, h, i, k, t).rel_l2
    assert_close_to_reference(got[0], expect[0].double(), rel_l2=budget, what="output")
    assert torch.equal(got[-2].cpu(), expect[-2]), "expanded_idx_to_permuted_idx"
    assert_close_to_reference(got[-1], expect[-1].double(), rel_l2=4 * 2.0**-8,
                              what="gemm1_activation_output")  # fmt: skip


@gpu
def test_trtllm_bf16_seed_form():
    t, e, k, h, i = 64, 8, 2, 256, 128
    x = rand_float((t, h), BF16, 40)
    gating = rand_float((t, e), BF16, 41)
    experts = rand_float((e, 2, i, h), BF16, 42, scale=h**-0.5)
    kw = dict(num_experts=e, top_k=k, hidden_size=h, intermediate_size=i)
    _gpu_vs_cpu(flashinfer.trtllm_bf16_moe, (x, gating, experts), kw,
                _budget(BF16, h, i, k, t), "trtllm_bf16_moe seed")  # fmt: skip


# ---- FP8 forms on the GPU; FP4 not implemented yet, never a CPU fallback ----------------------


def _fp8_calls():
    """(name, fn, args, kwargs) of every FP8 public form, on inputs valid for both executors."""
    t, e, k, h, i = 8, 4, 2, 128, 64
    x = rand_float((t, h), F16, 50)
    gating = rand_float((t, e), F16, 51)
    fp8 = rand_float((e, 2, i, h), torch.float32, 52, scale=8.0).to(torch.float8_e4m3fn)
    scale16 = (torch.rand(e, 2, i // 16) * 0.1 + 0.01).half()
    per_tensor = (torch.rand(e, 2) * 0.1 + 0.01).half()
    seed_kw = dict(num_experts=e, top_k=k, hidden_size=h, intermediate_size=i)
    ids, w = routing_inputs(t, e, k, 53)
    xq = rand_float((t, h), torch.float32, 54, scale=8.0).to(torch.float8_e4m3fn)
    w1q = rand_float((e, 2 * i, h), torch.float32, 55, scale=8.0).to(torch.float8_e4m3fn)
    w2q = rand_float((e, h, i), torch.float32, 56, scale=8.0).to(torch.float8_e4m3fn)
    s = torch.full((e,), 0.01)
    w8a8 = [s, torch.tensor(2.0), s, torch.tensor(0.05)]
    blocks = [torch.rand(e, 1, 1) * 0.01 + 0.005, torch.rand(e, 1, 1) * 0.01 + 0.005]
    pt = fp8_per_tensor_case(57, gated=True)  # flashinfer's recipes, T x 128 x 64
    ds = deepseek_case(58)  # T x 128 x 128
    shared = deepseek_case(60, e=trtllm_math.E + 2)  # two fused shared experts appended
    logits = rand_float((pt[0].shape[0], trtllm_math.E), torch.float32, 59)
    full = dict(common(), routing_method_type=RoutingMethodType.Renormalize)
    return [
        ("trtllm_fp8_per_tensor seed", flashinfer.trtllm_fp8_per_tensor_scale_moe,
         (x, gating, fp8, per_tensor), seed_kw),
        ("trtllm_fp8_block seed", flashinfer.trtllm_fp8_block_scale_moe,
         (x, gating, fp8, scale16), seed_kw),
        ("cutlass W8A8", flashinfer.cutlass_fused_moe, (xq, ids, w, w1q, w2q, BF16, w8a8), {}),
        ("cutlass DeepSeek FP8 block", flashinfer.cutlass_fused_moe,
         (x.to(BF16), ids, w, w1q, w2q, BF16, blocks), dict(use_deepseek_fp8_block_scale=True)),
        ("trtllm_fp8_per_tensor full", flashinfer.trtllm_fp8_per_tensor_scale_moe,
         (logits, None, pt[0], pt[1], pt[3], pt[4], pt[2], pt[5]),
         dict(full, use_routing_scales_on_input=False)),
        ("trtllm_fp8_block full", flashinfer.trtllm_fp8_block_scale_moe,
         (logits, None, ds[0], ds[1].t().contiguous(), *ds[2:]), dict(common(i=128),
         routing_method_type=RoutingMethodType.Renormalize)),
        ("trtllm_fp8_block fused shared experts", flashinfer.trtllm_fp8_block_scale_moe,
         (logits, None, shared[0], shared[1].t().contiguous(), *shared[2:]),
         dict(common(i=128), routing_method_type=RoutingMethodType.DeepSeekV3,
              num_fused_shared_experts=2)),
    ]  # fmt: skip


@gpu
def test_fp8_forms_on_cuda_match_the_cpu_executor():
    """Every FP8 public form runs on CUDA and agrees with the CPU executor (itself checked
    against the float64 math in test_api_trtllm_fp8.py / test_api_cutlass.py)."""
    for name, fn, args, kw in _fp8_calls():
        budget = error_budget(out_dtype=BF16, k1=128, k2=128, top_k=2, requant=[("e4m3", 1024)])
        _gpu_vs_cpu(fn, args, kw, budget, name)


def _fp4_calls():
    """(name, fn, args, kwargs, intermediate format) of FP4 calls, each valid on the CPU
    executor and on CUDA: W4A16 (seed and full forms), W4A8 (per-tensor FP8, MxFP8) and W4A4
    (NvFP4 x NvFP4). The format sizes the budget for flips of the requantized intermediate."""
    from flashinfer.quantization import fp4_quantize, mxfp8_quantize

    t, e, k, h, i = 8, 4, 2, 128, 64
    x = rand_float((t, h), F16, 50)
    gating = rand_float((t, e), F16, 51)
    codes = torch.randint(0, 16, (e, 2, i, h), dtype=torch.uint8)
    scale16 = (torch.rand(e, 2, i // 16) * 0.1 + 0.01).half()
    seed_kw = dict(num_experts=e, top_k=k, hidden_size=h, intermediate_size=i)
    # The full form with flashinfer-prepared MxFP4 weights (shuffled rows, swizzled scales).
    ft, fh, fi, fe = trtllm_math.T, 128, 128, trtllm_math.E
    w1 = rand_float((fe, 2 * fi, fh), torch.float32, 52, fh**-0.5)
    w2 = rand_float((fe, fh, fi), torch.float32, 53, fi**-0.5)
    _, _, g1, g1sf = trtllm_math.fp4_weights(w1, 32, True)
    _, _, g2, g2sf = trtllm_math.fp4_weights(w2, 32, False)
    logits = rand_float((ft, fe), torch.float32, 54)
    xb = rand_float((ft, fh), BF16, 55)
    swiglu = [torch.full((fe,), v) for v in (1.702, 1.0, 7.0)]
    full = dict(common(i=fi), routing_method_type=RoutingMethodType.Renormalize)
    mxfp4 = (g1, g1sf, None, *swiglu, g2, g2sf, None, None, None, None)
    xq = xb.float().to(torch.float8_e4m3fn)  # per-tensor FP8 activations (W4A8)
    xmx, xmx_sf = mxfp8_quantize(xb.float(), is_sf_swizzled_layout=False)
    ones = torch.ones(fe)
    # NvFP4 x NvFP4 (W4A4): global scales from the amax, as flashinfer's recipe.
    hs = 448.0 * 6 / xb.float().abs().max()
    w1_gs, w2_gs = (448.0 * 6 / w.abs().amax(dim=(1, 2)) for w in (w1, w2))
    xnv, xnv_sf = fp4_quantize(xb.float(), hs, 16, False, is_sf_swizzled_layout=False)
    _, _, n1, n1sf = trtllm_math.fp4_weights(w1, 16, True, w1_gs)
    _, _, n2, n2sf = trtllm_math.fp4_weights(w2, 16, False, w2_gs)
    c = torch.tensor(448.0 * 6 / 4.0)  # the intermediate's global scale, fixed offline
    gate = (1.0 / (w1_gs * hs)).float()
    nvfp4 = (n1, n1sf, None, None, None, None, n2, n2sf, None, (c * gate).float(), gate,
             (1.0 / (c * w2_gs)).float())  # fmt: skip
    e4m3 = torch.float8_e4m3fn
    return [
        ("trtllm_fp4_block seed (W4A16 fp16)", flashinfer.trtllm_fp4_block_scale_moe,
         (x, gating, codes, scale16), seed_kw, BF16),
        ("trtllm_fp4_block full MxFP4 x bf16, prepared", flashinfer.trtllm_fp4_block_scale_moe,
         (logits, None, xb, None, *mxfp4), full, BF16),
        ("trtllm_fp4_block full MxFP4 x FP8 (W4A8)", flashinfer.trtllm_fp4_block_scale_moe,
         (logits, None, xq, None, g1, g1sf, None, None, None, None, g2, g2sf, None, ones, ones,
          ones), full, "e4m3"),
        ("trtllm_fp4_block full MxFP4 x MxFP8 (W4A8)", flashinfer.trtllm_fp4_block_scale_moe,
         (logits, None, xmx, xmx_sf.reshape(ft, -1).view(e4m3), *mxfp4), full, "e4m3"),
        ("trtllm_fp4_block full NvFP4 x NvFP4 (W4A4)", flashinfer.trtllm_fp4_block_scale_moe,
         (logits, None, xnv, xnv_sf.view(e4m3), *nvfp4), full, "e2m1"),
    ]  # fmt: skip


@gpu
def test_fp4_forms_on_cuda():
    """Every FP4 public form runs on CUDA (W4A16, W4A8, W4A4) and agrees with the CPU executor
    (itself checked against flashinfer's documented math in test_api_trtllm_fp4.py)."""
    for name, fn, args, kw, inter in _fp4_calls():
        budget = error_budget(out_dtype=BF16, k1=128, k2=128, top_k=2, requant=[(inter, 1024)])
        _gpu_vs_cpu(fn, args, kw, budget, name)


@gpu
@pytest.mark.parametrize("t", [5, 300])
def test_mxint4_forms_on_cuda(t):
    """MXINT4 weights (canonical ``Int4Packed``, bf16 scales per 32) run on CUDA in the sm80
    family's W4A16 kernels (int4 codes widened in registers): both public forms, in flashinfer's
    prepared layout and in the native one, agree with the CPU executor and leave their inputs
    unchanged. T = 5 runs the decode tile, T = 300 the prefill tile."""
    from flashinfer.fused_moe.enums import WeightLayout
    from flashinfer.quantization import block_scale_interleave, mxint4_quantize
    from trtllm_math import packed_words, prepare_rows, prepare_stack

    e, h, i = 4, 256, 256
    w1, s1 = mxint4_quantize(rand_float((e, 2 * i, h), BF16, 90 + t, h**-0.5))
    w2, s2 = mxint4_quantize(rand_float((e, h, i), BF16, 91 + t, i**-0.5))

    def prepared(w, s, gated):
        ss = [block_scale_interleave(prepare_rows(m, 128, gated)) for m in s]
        return prepare_stack(w, gated=gated, block_major_k=True), torch.stack(ss)

    layouts = {
        "prepared": (*prepared(w1, s1, True), *prepared(w2, s2, False), {}),
        "native": (w1, s1, w2, s2,
                   dict(use_shuffled_weight=False, weight_layout=WeightLayout.MajorK)),
    }  # fmt: skip
    x = rand_float((t, h), BF16, 92 + t)
    logits = rand_float((t, e), torch.float32, 93 + t)
    g = torch.Generator().manual_seed(94 + t)
    ids = packed_words(torch.stack([torch.randperm(e, generator=g)[:2] for _ in range(t)]),
                       torch.rand(t, 2, generator=g) + 0.5)  # fmt: skip
    common_kw = dict(num_experts=e, top_k=2, n_group=None, topk_group=None, intermediate_size=i,
                     local_expert_offset=0, local_num_experts=e, routed_scaling_factor=None)  # fmt: skip
    budget = _budget(BF16, h, i, 2, t)
    for name, (g1, gs1, g2, gs2, kw) in layouts.items():
        _gpu_vs_cpu(flashinfer.fused_moe.trtllm_mxint4_block_scale_moe,
                    (logits, None, x, g1, gs1, None, None, None, g2, gs2),
                    dict(common_kw, routing_method_type=RENORM, **kw), budget,
                    f"trtllm_mxint4_block_scale_moe {name} T={t}")  # fmt: skip
        _gpu_vs_cpu(flashinfer.fused_moe.trtllm_mxint4_block_scale_routed_moe,
                    (ids, x, g1, gs1, None, None, None, g2, gs2), dict(common_kw, **kw), budget,
                    f"trtllm_mxint4_block_scale_routed_moe {name} T={t}")  # fmt: skip


# ---- CUDA graphs and caller workspaces ----------------------------------------------------------


def _full_form_inputs(t, seed, e=8, k=2, h=256, i=128):
    x = rand_float((t, h), BF16, seed).to(DEVICE)
    ids, w = (v.to(DEVICE) for v in routing_inputs(t, e, k, seed + 1))
    return x, ids, w


def _full_form_weights(e=8, h=256, i=128):
    return (rand_float((e, 2 * i, h), BF16, 60, scale=h**-0.5).to(DEVICE),
            rand_float((e, h, i), BF16, 61, scale=i**-0.5).to(DEVICE))  # fmt: skip


def _ws_size(t, e=8, k=2, h=256, i=128):
    return flashinfer.fused_moe.cutlass_fused_moe_workspace_size(
        t, h, i, e, k, x_dtype=BF16, weight_dtype=BF16, output_dtype=BF16, device=DEVICE)  # fmt: skip


@gpu
@pytest.mark.parametrize("t", [1, 64, 256])
def test_caller_workspace_full_of_garbage_gives_the_same_bits(t):
    fc1, fc2 = _full_form_weights()
    size = _ws_size(256)  # sized for the largest call: any smaller one must fit too
    ws = torch.full((size,), 0xFF, dtype=torch.uint8, device=DEVICE)
    x, ids, w = _full_form_inputs(t, 70)
    own = flashinfer.cutlass_fused_moe(x, ids, w, fc1, fc2, BF16, None)[0]
    theirs = flashinfer.cutlass_fused_moe(x, ids, w, fc1, fc2, BF16, None, workspace_buffer=ws)[0]
    assert torch.equal(own.view(torch.uint8), theirs.view(torch.uint8))
    if size > 0 and t == 256:
        with pytest.raises(ValueError, match="workspace_buffer"):
            flashinfer.cutlass_fused_moe(x, ids, w, fc1, fc2, BF16, None, workspace_buffer=ws[:-1])


@gpu_only
def test_workspace_on_another_device_is_rejected():
    fc1, fc2 = _full_form_weights()
    x, ids, w = _full_form_inputs(16, 80)
    ws = torch.empty(_ws_size(16), dtype=torch.uint8)  # CPU
    with pytest.raises(ValueError, match="workspace_buffer"):
        flashinfer.cutlass_fused_moe(x, ids, w, fc1, fc2, BF16, None, workspace_buffer=ws)


@gpu_only
@pytest.mark.parametrize("t", [1, 64, 1000])
def test_cuda_graph_of_the_full_form_with_a_caller_workspace(t):
    fc1, fc2 = _full_form_weights()
    x, ids, w = _full_form_inputs(t, 90)
    ws = torch.empty(_ws_size(t), dtype=torch.uint8, device=DEVICE)
    out = torch.empty(t, 256, dtype=BF16, device=DEVICE)
    graph, result = capture_after_warmup(lambda: flashinfer.cutlass_fused_moe(
        x, ids, w, fc1, fc2, BF16, None, output=out, workspace_buffer=ws))  # fmt: skip
    assert result[0] is out
    for r in range(2):  # fresh inputs written into the captured buffers, then a replay
        nx, nids, nw = _full_form_inputs(t, 91 + 10 * r)
        x.copy_(nx), ids.copy_(nids), w.copy_(nw)
        out.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        eager = flashinfer.cutlass_fused_moe(nx, nids, nw, fc1, fc2, BF16, None)[0]
        assert torch.equal(out.view(torch.uint8), eager.view(torch.uint8)), f"replay {r}"


@gpu_only
def test_cuda_graph_of_trtllm_bf16_moe_routing_from_logits():
    t, e, k, h, i = 64, 8, 2, 256, 128
    x = rand_float((t, h), BF16, 100).to(DEVICE)
    logits = rand_float((t, e), torch.float32, 101).to(DEVICE)
    w1, w2 = _full_form_weights(e, h, i)
    kw = dict(_trtllm_sizes(e, k, i), routing_method_type=RENORM, use_shuffled_weight=False,
              weight_layout=0)  # fmt: skip
    graph, out = capture_after_warmup(
        lambda: flashinfer.trtllm_bf16_moe(logits, None, x, w1, w2, **kw)
    )
    for r in range(2):
        logits.copy_(rand_float((t, e), torch.float32, 102 + r))
        x.copy_(rand_float((t, h), BF16, 104 + r))
        graph.replay()
        torch.cuda.synchronize()
        eager = flashinfer.trtllm_bf16_moe(logits, None, x, w1, w2, **kw)
        assert torch.equal(out.view(torch.uint8), eager.view(torch.uint8)), f"replay {r}"


@gpu_only
@pytest.mark.parametrize("t", [1, 300])
def test_cuda_graph_of_trtllm_fp8_block_scale_moe(t):
    """The DeepSeek FP8 form (quantized input + 1x128 scales, 128x128 weight blocks, grouped
    requantization) captured and replayed with fresh inputs: the eager result, bit for bit."""
    e, h, i = 8, 256, 128
    w1 = rand_float((e, 2 * i, h), torch.float32, 110, scale=16.0).to(torch.float8_e4m3fn)
    w2 = rand_float((e, h, i), torch.float32, 111, scale=16.0).to(torch.float8_e4m3fn)
    s1 = rand_float((e, 2 * i // 128, h // 128), torch.float32, 112).abs() / 256
    s2 = rand_float((e, h // 128, i // 128), torch.float32, 113).abs() / 256
    w1, w2, s1, s2 = (v.to(DEVICE) for v in (w1, w2, s1, s2))

    def inputs(seed):
        xq = rand_float((t, h), torch.float32, seed, scale=16.0).to(torch.float8_e4m3fn)
        xs = rand_float((h // 128, t), torch.float32, seed + 1).abs() / 32
        logits = rand_float((t, e), torch.float32, seed + 2)
        return [v.to(DEVICE) for v in (logits, xq, xs)]

    logits, xq, xs = inputs(120)
    kw = dict(_trtllm_sizes(e, 2, i), routing_method_type=RENORM)

    def call(lg, x, sx):
        return flashinfer.trtllm_fp8_block_scale_moe(lg, None, x, sx, w1, s1, w2, s2, **kw)

    graph, out = capture_after_warmup(lambda: call(logits, xq, xs))
    for r in range(2):
        fresh = inputs(130 + 10 * r)
        for dst, src in zip((logits, xq, xs), fresh):
            dst.copy_(src)
        graph.replay()
        torch.cuda.synchronize()
        eager = call(*fresh)
        assert torch.equal(out.view(torch.uint8), eager.view(torch.uint8)), f"replay {r}"


@gpu_only
@pytest.mark.parametrize("t", [1, 300])
def test_cuda_graph_of_trtllm_fp8_per_tensor_scale_moe(t):
    """The FP8 per-tensor form on MajorK weights: the capture is a call-cache hit, whose folded
    output scalars are recomputed from the call's scalars (call_cache.derived) inside the graph.
    Inputs and the three scalars updated in place before each replay: the eager result, bit for
    bit."""
    e, h, i = 8, 256, 128
    w1 = rand_float((e, 2 * i, h), torch.float32, 140, scale=16.0).to(torch.float8_e4m3fn)
    w2 = rand_float((e, h, i), torch.float32, 141, scale=16.0).to(torch.float8_e4m3fn)
    w1, w2 = w1.to(DEVICE), w2.to(DEVICE)

    def inputs(seed):
        xq = rand_float((t, h), torch.float32, seed, scale=16.0).to(torch.float8_e4m3fn)
        logits = rand_float((t, e), torch.float32, seed + 1)
        gate = rand_float((e,), torch.float32, seed + 2).abs() / 256 + 1e-4
        out1 = gate * (rand_float((e,), torch.float32, seed + 3).abs() + 0.5)
        out2 = rand_float((e,), torch.float32, seed + 4).abs() / 256 + 1e-4
        return [v.to(DEVICE) for v in (logits, xq, out1, gate, out2)]

    held = inputs(150)
    kw = dict(_trtllm_sizes(e, 2, i), use_routing_scales_on_input=False,
              routing_method_type=RENORM, use_shuffled_weight=False)  # fmt: skip

    def call(lg, x, o1, g, o2):
        return flashinfer.trtllm_fp8_per_tensor_scale_moe(lg, None, x, w1, o1, g, w2, o2, **kw)

    graph, out = capture_after_warmup(lambda: call(*held))
    for r in range(2):
        fresh = inputs(160 + 10 * r)
        for dst, src in zip(held, fresh):
            dst.copy_(src)
        graph.replay()
        torch.cuda.synchronize()
        eager = call(*fresh)
        assert torch.equal(out.view(torch.uint8), eager.view(torch.uint8)), f"replay {r}"


@gpu_only
@pytest.mark.parametrize("t", [1, 300])
def test_cuda_graph_of_trtllm_fp4_block_scale_moe(t):
    """The gpt-oss-style MXFP4 form (bf16 hidden states, MajorK packed weights with linear ue8m0
    scales, biases, clamped SwiGLU) captured and replayed with fresh inputs: the eager result,
    bit for bit."""
    e, h, i = trtllm_math.E, 128, 128
    w1 = rand_float((e, 2 * i, h), torch.float32, 150, h**-0.5)
    w2 = rand_float((e, h, i), torch.float32, 151, i**-0.5)
    q1, s1, _, _ = trtllm_math.fp4_weights(w1, 32, True)
    q2, s2, _, _ = trtllm_math.fp4_weights(w2, 32, False)
    b1 = rand_float((e, 2 * i), torch.float32, 152, scale=0.1)
    b2 = rand_float((e, h), torch.float32, 153, scale=0.1)
    swiglu = [torch.full((e,), v) for v in (1.702, 1.0, 7.0)]
    q1, s1, q2, s2, b1, b2, *swiglu = (v.to(DEVICE) for v in (q1, s1, q2, s2, b1, b2, *swiglu))
    kw = dict(_trtllm_sizes(e, trtllm_math.K, i), routing_method_type=RENORM,
              use_shuffled_weight=False, weight_layout=0)  # fmt: skip

    def inputs(seed):
        return (rand_float((t, e), torch.float32, seed).to(DEVICE),
                rand_float((t, h), BF16, seed + 1).to(DEVICE))  # fmt: skip

    def call(logits, x):
        return flashinfer.trtllm_fp4_block_scale_moe(
            logits, None, x, None, q1, s1, b1, *swiglu, q2, s2, b2, None, None, None, **kw
        )[0]

    logits, x = inputs(160)
    graph, out = capture_after_warmup(lambda: call(logits, x))
    for r in range(2):
        fresh = inputs(170 + 10 * r)
        logits.copy_(fresh[0]), x.copy_(fresh[1])
        graph.replay()
        torch.cuda.synchronize()
        eager = call(*fresh)
        assert torch.equal(out.view(torch.uint8), eager.view(torch.uint8)), f"replay {r}"


# ---- the tactic override (runner.py) ------------------------------------------------------------


def test_tactic_env_values(monkeypatch):
    for raw, expect in [("", GemmTactic.Auto), ("auto", GemmTactic.Auto),
                        ("SM80_DECODE", GemmTactic.Sm80Decode), (" sm80_prefill ", GemmTactic.Sm80Prefill),
                        ("sm90", GemmTactic.Sm90)]:  # fmt: skip
        monkeypatch.setenv(runner.TACTIC_ENV, raw)
        assert runner.tactic_from_env() == expect, raw
    monkeypatch.delenv(runner.TACTIC_ENV)
    assert runner.tactic_from_env() == GemmTactic.Auto


def test_bad_tactic_env_raises_value_error_naming_the_variable(monkeypatch):
    monkeypatch.setenv(runner.TACTIC_ENV, "sm100")
    p = build_problem(T=4, H=32, I=16)
    with pytest.raises(ValueError, match=runner.TACTIC_ENV):
        runner.run_problem(p)
    with pytest.raises(ValueError, match=runner.TACTIC_ENV):
        runner.workspace_bytes(p)


def test_tactic_env_replaces_only_auto(monkeypatch):
    monkeypatch.setenv(runner.TACTIC_ENV, "sm80_prefill")
    p = build_problem(T=4, H=32, I=16)
    assert runner.with_resolved_tactic(p).tactic == GemmTactic.Sm80Prefill
    assert p.tactic == GemmTactic.Auto, "the caller's problem must not change"
    forced = dataclasses.replace(p, tactic=GemmTactic.Sm90)
    assert runner.with_resolved_tactic(forced).tactic == GemmTactic.Sm90
    assert int(p.to_native().tactic.value) == 0
    assert int(forced.to_native().tactic.value) == int(GemmTactic.Sm90)


@gpu_only
@pytest.mark.parametrize("env,tactic", [("sm80_decode", GemmTactic.Sm80Decode),
                                        ("sm80_prefill", GemmTactic.Sm80Prefill),
                                        ("sm90", GemmTactic.Sm90)])  # fmt: skip
def test_tactic_env_reaches_the_executor(env, tactic, monkeypatch):
    """The override gives the forced tactic's bits (or the same refusal naming ``tactic``)."""
    case = prepare(build_problem(T=200, E=8, k=2, H=256, I=128, seed=110), cpu_executor=False)
    forced = run_on_device(case, tactic)
    monkeypatch.setenv(runner.TACTIC_ENV, env)
    via_env = run_on_device(case, GemmTactic.Auto)
    assert (forced is None) == (via_env is None)
    if forced is not None:
        assert torch.equal(forced.output.view(torch.uint8), via_env.output.view(torch.uint8))
