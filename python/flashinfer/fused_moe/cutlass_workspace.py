"""``cutlass_fused_moe_workspace_size``: the scratch bytes of a full-form call, without its data.

It builds the full-form problem of the requested sizes from stride-0 placeholder tensors (no
memory) and asks the executor of the device how much workspace that problem needs.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .cutlass_modes import FP4_WEIGHT_DTYPES
from .enums import ActivationType, ElemFormat, ScaleLayout
from .problem import QuantTensor
from .runner import workspace_bytes
from .validation import FLOAT_DTYPES, FP8_E4M3, check_enum, check_int

Tensor = torch.Tensor


def _placeholder(shape, dtype, device) -> Tensor:
    """A stride-0 view of one zero: the shape of an argument without its memory."""
    return torch.zeros(1, dtype=dtype, device=device).expand(*shape)


def cutlass_fused_moe_workspace_size(
    max_num_tokens,
    hidden_size,
    intermediate_size,
    num_experts_total,
    top_k,
    *,
    x_dtype,
    weight_dtype,
    output_dtype=torch.bfloat16,
    activation_type=ActivationType.Swiglu,
    tp_size=1,
    tp_rank=0,
    ep_size=1,
    ep_rank=0,
    min_latency_mode=False,
    use_deepseek_fp8_block_scale=False,
    use_w4_group_scaling=False,
    use_mxfp8_act_scaling=False,
    use_fused_finalize=True,
    use_packed_weights=False,
    use_wfp4afp8_humming=False,
    device=None,
) -> int:
    """Bytes of ``workspace_buffer`` a full-form call with these sizes needs (up to max_num_tokens).

    ``intermediate_size`` is the logical (unpacked) I, ``num_experts_total`` the global count
    (divisible by ``ep_size``). ``device`` defaults to the current CUDA device when CUDA is
    available, else the CPU. The answer comes from the executor of that device for a problem of
    the same mode built from stride-0 placeholder tensors; it is monotonic in ``max_num_tokens``.
    """
    t = check_int("max_num_tokens", max_num_tokens, 0)
    h = check_int("hidden_size", hidden_size, 1)
    i = check_int("intermediate_size", intermediate_size, 1)
    e_total = check_int("num_experts_total", num_experts_total, 1)
    ep = check_int("ep_size", ep_size, 1)
    if e_total % ep != 0:
        raise ValueError(f"num_experts_total: expected a multiple of ep_size {ep}, got {e_total}")
    e = e_total // ep
    k = check_int("top_k", top_k, 1, e_total)
    if not isinstance(x_dtype, torch.dtype):
        raise TypeError(f"x_dtype: expected a torch.dtype, got {type(x_dtype).__name__}")
    if not isinstance(weight_dtype, torch.dtype):
        raise TypeError(f"weight_dtype: expected a torch.dtype, got {type(weight_dtype).__name__}")
    if device is None:
        device = (
            torch.device("cuda", torch.cuda.current_device())
            if torch.cuda.is_available()
            else torch.device("cpu")
        )
    device = torch.device(device)
    activation = check_enum("activation_type", activation_type, ActivationType)
    m1 = (2 if activation.is_gated else 1) * i

    fp4 = weight_dtype in FP4_WEIGHT_DTYPES
    if fp4 and (h % 32 or i % 32):
        raise ValueError(
            f"hidden_size: expected H and I multiples of 32 for packed fp4 weights, got {h} and {i}"
        )
    if fp4:  # packed bytes (the int64 view needs real storage, a placeholder cannot be viewed)
        fc1 = _placeholder((e, m1, h // 2), torch.uint8, device)
        fc2 = _placeholder((e, h, i // 2), torch.uint8, device)
    else:
        fc1 = _placeholder((e, m1, h), weight_dtype, device)
        fc2 = _placeholder((e, h, i), weight_dtype, device)

    def scalar():
        return _placeholder((1,), torch.float32, device)

    def per_expert():
        return _placeholder((e,), torch.float32, device)

    def block_bytes(rows, cols):
        return _placeholder(
            (e * math.ceil(rows / 128) * 128 * math.ceil(cols / 4) * 4,), torch.uint8, device
        )

    x_shape = (t, h // 2) if x_dtype == torch.uint8 else (t, h)
    x = _placeholder(x_shape, x_dtype, device)
    input_sf = None
    blk = 32 if (use_mxfp8_act_scaling or x_dtype == FP8_E4M3) else 16
    if fp4 or use_mxfp8_act_scaling:
        sf1, sf2 = block_bytes(m1, h // blk), block_bytes(h, i // blk)
    if x_dtype == torch.uint8 or (use_mxfp8_act_scaling and x_dtype == FP8_E4M3):
        input_sf = _placeholder(
            (math.ceil(t / 128) * 128 * math.ceil(h // blk / 4) * 4,), torch.uint8, device
        )

    if weight_dtype in FLOAT_DTYPES:
        qs = []
    elif use_deepseek_fp8_block_scale:
        qs = [
            _placeholder((e, math.ceil(m1 / 128), math.ceil(h / 128)), torch.float32, device),
            _placeholder((e, math.ceil(h / 128), math.ceil(i / 128)), torch.float32, device),
        ]
    elif use_mxfp8_act_scaling:
        qs = [sf1, per_expert(), sf2, per_expert()]
    elif weight_dtype == FP8_E4M3:
        qs = [per_expert(), scalar(), per_expert(), scalar()]
    elif x_dtype == FP8_E4M3:
        qs = [sf1, per_expert(), scalar(), sf2, per_expert()]
    else:
        qs = [scalar(), sf1, per_expert(), scalar(), sf2, per_expert()]

    from .api_cutlass import cutlass_full_problem  # api_cutlass re-exports this module's function

    problem = cutlass_full_problem(
        x,
        _placeholder((t, k), torch.int32, device),
        _placeholder((t, k), torch.float32, device),
        fc1,
        fc2,
        output_dtype,
        qs,
        input_sf=input_sf,
        tp_size=tp_size,
        tp_rank=tp_rank,
        ep_size=ep,
        ep_rank=ep_rank,
        use_deepseek_fp8_block_scale=use_deepseek_fp8_block_scale,
        use_w4_group_scaling=use_w4_group_scaling,
        use_mxfp8_act_scaling=use_mxfp8_act_scaling,
        min_latency_mode=min_latency_mode,
        use_packed_weights=use_packed_weights,
        use_wfp4afp8_humming=use_wfp4afp8_humming,
        activation_type=activation,
    )
    problem.output = _placeholder((t, h), output_dtype, device)
    problem.input = _linear_scale_placeholder(problem.input, None)
    problem.w1 = _linear_scale_placeholder(problem.w1, e)
    problem.w2 = _linear_scale_placeholder(problem.w2, e)
    return workspace_bytes(problem)


def _linear_scale_placeholder(q: QuantTensor, experts: int | None) -> QuantTensor:
    """Swap a swizzled scale buffer (which must be real, contiguous memory) for a stride-0 linear
    grid of the same scale format and blocks: the workspace does not depend on the layout."""
    if q.scale is None or q.scale_layout != ScaleLayout.Swizzled128x4:
        return q
    rows = q.data.shape[-2]
    cols = q.data.shape[-1] * (2 if q.format == ElemFormat.E2M1Packed else 1)
    grid = (math.ceil(rows / q.block_rows), math.ceil(cols / q.block_cols))
    shape = grid if experts is None else (experts,) + grid
    return dataclasses.replace(
        q, scale=_placeholder(shape, torch.uint8, q.data.device), scale_layout=ScaleLayout.Linear
    )
