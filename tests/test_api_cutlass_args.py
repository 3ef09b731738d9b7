"""``cutlass_fused_moe`` full form: ``cutlass_fused_moe_workspace_size`` and the caller's
workspace buffer, seed / full form detection, zero tokens, argument and scale checks, and inputs
left untouched (CPU executor). The numerics of each mode are in test_api_cutlass.py.
"""

from __future__ import annotations

import flashinfer
import pytest
import torch
from flashinfer.fused_moe import ActivationType, api_cutlass, cutlass_fused_moe_workspace_size
from moe_builders import E4M3, routing_inputs
from numeric import rand_float

# ---- workspace, detection, errors ----------------------------------------------------------------


def test_workspace_size_and_buffer():
    h, i, e, k = 64, 32, 4, 2
    kw = dict(x_dtype=torch.bfloat16, weight_dtype=torch.bfloat16, device="cpu")
    sizes = [cutlass_fused_moe_workspace_size(n, h, i, e, k, **kw) for n in (0, 1, 16, 256)]
    assert sizes[0] == 0 and sizes == sorted(sizes)
    for wd, xd, flags in [
        (torch.int64, torch.bfloat16, {}),
        (torch.int64, E4M3, dict(use_mxfp8_act_scaling=True)),
        (E4M3, torch.bfloat16, dict(use_deepseek_fp8_block_scale=True)),
        (E4M3, E4M3, {}),
        (torch.int64, torch.uint8, {}),
    ]:
        assert (
            cutlass_fused_moe_workspace_size(
                16, h, i, e, k, x_dtype=xd, weight_dtype=wd, device="cpu", **flags
            )
            >= 0
        )
    t = 16
    x = rand_float((t, h), torch.bfloat16, seed=80)
    ids, w = routing_inputs(t, e, k, seed=81)
    fc1 = rand_float((e, 2 * i, h), torch.bfloat16, seed=82)
    fc2 = rand_float((e, h, i), torch.bfloat16, seed=83)
    need = cutlass_fused_moe_workspace_size(t, h, i, e, k, **kw)
    ref = flashinfer.cutlass_fused_moe(x, ids, w, fc1, fc2, torch.bfloat16, None)[0]
    got = flashinfer.cutlass_fused_moe(
        x,
        ids,
        w,
        fc1,
        fc2,
        torch.bfloat16,
        None,
        workspace_buffer=torch.empty(need, dtype=torch.int8),
    )[0]
    assert torch.equal(got, ref)
    if need > 0:
        with pytest.raises(ValueError, match="workspace_buffer"):
            flashinfer.cutlass_fused_moe(
                x,
                ids,
                w,
                fc1,
                fc2,
                torch.bfloat16,
                None,
                workspace_buffer=torch.empty(need - 1, dtype=torch.uint8),
            )
    with pytest.raises(ValueError, match="num_experts_total"):
        cutlass_fused_moe_workspace_size(4, h, i, 5, k, ep_size=2, **kw)


def test_form_detection_and_zero_tokens():
    e, h, i = 2, 16, 8
    assert api_cutlass.is_seed_call(
        (torch.zeros(1, h), torch.zeros(1, e), torch.zeros(e, 2, i, h)), {}
    )
    assert api_cutlass.is_seed_call((torch.zeros(1, h),), {"gating_output": torch.zeros(1, e)})
    assert not api_cutlass.is_seed_call(
        (torch.zeros(1, h), torch.zeros(1, 2, dtype=torch.int32)), {}
    )
    out = flashinfer.cutlass_fused_moe(
        torch.empty(0, h),
        torch.empty(0, 2, dtype=torch.int32),
        torch.empty(0, 2),
        torch.ones(e, 2 * i, h),
        torch.ones(e, h, i),
        torch.float32,
        None,
    )
    assert out[0].shape == (0, h)


def _full_args(t=3, e=2, h=16, i=8, k=2):
    ids, w = routing_inputs(t, e, k, seed=90)
    return [
        rand_float((t, h), torch.bfloat16, seed=91),
        ids,
        w,
        rand_float((e, 2 * i, h), torch.bfloat16, seed=92),
        rand_float((e, h, i), torch.bfloat16, seed=93),
        torch.bfloat16,
        None,
    ]


@pytest.mark.parametrize(
    "change, exc, match",
    [
        (dict(min_latency_mode=True), NotImplementedError, "min_latency_mode"),
        (dict(use_w4_group_scaling=True), NotImplementedError, "use_w4_group_scaling"),
        (dict(use_packed_weights=True), NotImplementedError, "use_packed_weights"),
        (dict(situ_beta=torch.ones(2)), ValueError, "situ_beta"),  # Swiglu takes none
        (dict(situ_linear_beta=torch.ones(2)), ValueError, "situ_linear_beta"),
        (
            dict(activation_type=ActivationType.Situ, situ_beta=torch.ones(3)),
            ValueError,
            "situ_beta",
        ),  # fmt: skip
        (
            dict(activation_type=ActivationType.Situ, situ_linear_beta=torch.ones(2, 1)),
            ValueError,
            "situ_linear_beta",
        ),  # fmt: skip
        (
            dict(activation_type=ActivationType.Situ, situ_beta=torch.ones(2, dtype=torch.float64)),
            TypeError,
            "situ_beta",
        ),  # fmt: skip
        (
            dict(activation_type=ActivationType.Situ, swiglu_alpha=torch.ones(2)),
            ValueError,
            "swiglu_alpha",
        ),  # fmt: skip
        (dict(cluster_size=2), ValueError, "cluster_size"),
        (dict(ep_rank=1), ValueError, "ep_rank"),
        (dict(tp_size=2, tp_rank=2), ValueError, "tp_rank"),
        (
            dict(fc1_expert_biases=torch.zeros(2, 16, dtype=torch.bfloat16)),
            ValueError,
            "fc2_expert_biases",
        ),
        (
            dict(fc1_expert_biases=torch.zeros(2, 16), fc2_expert_biases=torch.zeros(2, 16)),
            TypeError,
            "fc1_expert_biases",
        ),
        (dict(swiglu_alpha=torch.ones(3)), ValueError, "swiglu_alpha"),
        (dict(activation_type=ActivationType.Gelu), ValueError, "fc1_expert_weights"),
        (dict(output=torch.empty(3, 16)), TypeError, "output"),
        (dict(use_deepseek_fp8_block_scale=True), ValueError, "use_deepseek_fp8_block_scale"),
        ({6: [torch.ones(1)]}, ValueError, "quant_scales"),
        ({5: torch.int8}, TypeError, "output_dtype"),
        ({1: torch.zeros(3, 2, dtype=torch.int64)}, TypeError, "token_selected_experts"),
        ({2: torch.ones(3, 3)}, ValueError, "token_final_scales"),
        ({4: torch.zeros(2, 16, 8, dtype=torch.float16)}, TypeError, "fc2_expert_weights"),
    ],
)
def test_full_form_bad_arguments(change, exc, match):
    args = _full_args()
    kwargs = {}
    for key, value in change.items():
        if isinstance(key, int):
            args[key] = value
        else:
            kwargs[key] = value
    with pytest.raises(exc, match=match):
        flashinfer.cutlass_fused_moe(*args, **kwargs)


def test_quantized_modes_bad_scales():
    t, e, h, i, k = 2, 2, 128, 128, 1
    ids, w = routing_inputs(t, e, k, seed=95)
    w1q = torch.zeros(e, 2 * i, h, dtype=E4M3)
    w2q = torch.zeros(e, h, i, dtype=E4M3)
    x = torch.zeros(t, h, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="quant_scales"):  # wrong grid for 128x128 blocks
        flashinfer.cutlass_fused_moe(
            x,
            ids,
            w,
            w1q,
            w2q,
            torch.bfloat16,
            [torch.ones(e, 2, 2), torch.ones(e, 1, 1)],
            use_deepseek_fp8_block_scale=True,
        )
    with pytest.raises(NotImplementedError, match="float8_e4m3fn weights"):
        flashinfer.cutlass_fused_moe(x, ids, w, w1q, w2q, torch.bfloat16, [])
    p1 = torch.zeros(e, 2 * i, h // 2, dtype=torch.uint8)
    p2 = torch.zeros(e, h, i // 2, dtype=torch.uint8)
    small = torch.zeros(10, dtype=torch.uint8)
    one = torch.ones(1)
    with pytest.raises(ValueError, match="block scales"):
        flashinfer.cutlass_fused_moe(
            x,
            ids,
            w,
            p1,
            p2,
            torch.bfloat16,
            [one, small, torch.ones(e), one, small, torch.ones(e)],
        )
    with pytest.raises(ValueError, match="input_sf"):  # pre-quantized fp4 input without its scales
        flashinfer.cutlass_fused_moe(
            torch.zeros(t, h // 2, dtype=torch.uint8),
            ids,
            w,
            p1,
            p2,
            torch.bfloat16,
            [
                one,
                torch.zeros(e * 256 * 8, dtype=torch.uint8),
                torch.ones(e),
                one,
                torch.zeros(e * 128 * 8, dtype=torch.uint8),
                torch.ones(e),
            ],
        )


def test_inputs_not_modified():
    args = _full_args()
    copies = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    flashinfer.cutlass_fused_moe(*args)
    for a, b in zip(args, copies):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)
