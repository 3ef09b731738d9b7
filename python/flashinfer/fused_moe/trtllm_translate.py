"""Shared pieces of the ``trtllm_*`` full forms: argument checks, routing, weight layouts, outputs.

``api_trtllm.py`` translates each public function into one canonical ``MoeProblem``
(docs/semantics.md). What every trtllm function has in common lives here:

* the routing arguments (logits + method, or precomputed ids: packed words or an (ids, weights)
  pair) and the expert-parallel range become a ``RoutingSpec`` and checked integers;
* weights prepared with flashinfer's recipe (gated row interleave, ``shuffle_matrix_a``,
  ``BlockMajorK``) are brought back to the canonical ``[E, M, K]`` MajorK layout. That is a copy
  per call (the slow path): MajorK, unshuffled weights are the native layout and cost nothing;
* scale factors stored 128x4-swizzled with permuted rows are restored to a linear layout;
* outputs are allocated (or the caller's ``output=`` is checked), the problem is run and the
  results are packaged as flashinfer returns them.

The FP4 path's operands (``trtllm_fp4_block_scale_moe``) are translated in ``trtllm_fp4``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence

import torch

from .call_cache import derived
from .enums import ActivationType, RoutingMethodType
from .problem import MoeProblem, RoutingSpec
from .validation import check_enum, check_float, check_int, check_tensor, user_stacklevel

Tensor = torch.Tensor

BLOCK_K_BYTES = 128  # BlockMajorK blocks hold 128 bytes of K (64 bf16, 128 fp8, 256 fp4 values)


# ---- argument checks (on top of validation.py) ----------------------------------------------


def optional_int(name: str, v, default: int = 0) -> int:
    """n_group / topk_group: None means 0."""
    return default if v is None else check_int(name, v, 0)


def per_expert_f32(name: str, t, num_local: int, *, required: bool = False) -> Tensor | None:
    """A float32 ``[local_num_experts]`` vector (output scalars, SwiGLU parameters)."""
    if t is None:
        if required:
            raise ValueError(
                f"{name}: expected a float32 [{num_local}] tensor on this quantization path, got None"
            )
        return None
    return check_tensor(name, t, dtypes=torch.float32, shape=(num_local,))


def activation_of(activation_type, allowed: Sequence[ActivationType]) -> ActivationType:
    """The activation argument as an enum; values outside ``allowed`` are rejected for this path."""
    act = check_enum("activation_type", activation_type, ActivationType)
    if act not in allowed:
        names = ", ".join(a.name for a in allowed)
        raise ValueError(f"activation_type: expected one of ({names}) on this path, got {act.name}")
    return act


def gemm1_act_params(act: ActivationType, alpha, beta, limit, num_local: int, device=None):
    """gemm1_alpha / gemm1_beta / gemm1_clamp_limit -> (activation, alpha, beta, limit).

    flashinfer allows them with Swiglu only; any subset selects the clamped SwiGLU (SwigluBias),
    missing ones keep their defaults (alpha 1, beta 0, no clamp). As extensions SwigluBias takes
    all three and SwigluStep takes the limit (its default is 7).

    Situ (activation_type 10) is trtllm's SiTU-GLU: gemm1_alpha is the gate's tanh cap,
    gemm1_beta the linear half's, each 1 when None (flashinfer's trtllm defaults, unlike
    cutlass_fused_moe's 4 / 25, which are the canonical defaults: ones are passed explicitly),
    and gemm1_clamp_limit clamps the gate from above and the linear half both ways.
    """
    alpha = per_expert_f32("gemm1_alpha", alpha, num_local)
    beta = per_expert_f32("gemm1_beta", beta, num_local)
    limit = per_expert_f32("gemm1_clamp_limit", limit, num_local)
    if act == ActivationType.Situ:

        def ones():
            return torch.ones(num_local, dtype=torch.float32, device=device)

        return act, ones() if alpha is None else alpha, ones() if beta is None else beta, limit
    if alpha is None and beta is None and limit is None:
        return act, None, None, None
    if act == ActivationType.SwigluStep and alpha is None and beta is None:
        return act, None, None, limit
    if act not in (ActivationType.Swiglu, ActivationType.SwigluBias):
        raise ValueError(
            "gemm1_alpha/gemm1_beta/gemm1_clamp_limit: expected activation_type Swiglu or Situ, "
            f"got {act.name}"
        )
    return ActivationType.SwigluBias, alpha, beta, limit


def up_scaled_by_output1(act: ActivationType) -> bool:
    """Whether trtllm folds the up half's dequantization into ``output1_scale(s)_scalar``
    (activations linear in up: the SwiGLU family); Situ takes the tanh of up, so both halves
    are dequantized by the gate scalar and output1 only scales the output (fold_output_scalars)."""
    return act.is_gated and act != ActivationType.Situ


def gemm1_lora_delta_of(delta, *, num_tokens: int, top_k: int, m1: int, device) -> Tensor | None:
    """The routed functions' ``gemm1_lora_delta``: bf16 (or f16 / f32) ``[T, top_k, M1]``, in
    GEMM1's output order ([up ; gate] when gated), real (dequantized) units."""
    if delta is None:
        return None
    floats = (torch.bfloat16, torch.float16, torch.float32)
    return check_tensor(
        "gemm1_lora_delta", delta, dtypes=floats, shape=(num_tokens, top_k, m1), device=device
    )


def reject_unsupported(**kwargs) -> None:
    """Features flashinfer has that this library does not implement yet."""
    for name, value in kwargs.items():
        if value is None or (name == "num_fused_shared_experts" and value == 0):
            continue
        raise NotImplementedError(
            f"{name}: not supported by flashinfer-moe yet (expected None, got a value)"
        )


# ---- routing and expert parallelism ---------------------------------------------------------


def expert_range(
    num_experts, top_k, local_expert_offset, local_num_experts
) -> tuple[int, int, int, int]:
    e = check_int("num_experts", num_experts, 1)
    k = check_int("top_k", top_k, 1, e)
    off = check_int("local_expert_offset", local_expert_offset, 0, e - 1)
    nl = check_int("local_num_experts", local_num_experts, 1, e - off)
    return e, k, off, nl


def routing_from_logits(
    routing_logits, routing_bias, *, num_tokens: int, num_experts: int, top_k: int, n_group,
    topk_group, routed_scaling_factor, routing_method_type, norm_topk_prob,
) -> RoutingSpec:  # fmt: skip
    floats = (torch.float32, torch.bfloat16, torch.float16)
    check_tensor("routing_logits", routing_logits, dtypes=floats, shape=(num_tokens, num_experts))
    if routing_bias is not None:
        check_tensor("routing_bias", routing_bias, dtypes=floats, shape=(num_experts,))
    method = routing_method(routing_method_type)
    if method == RoutingMethodType.Llama4 and top_k != 1:
        raise ValueError(f"top_k: expected 1 with routing_method_type Llama4, got {top_k}")
    ng = optional_int("n_group", n_group)
    tg = optional_int("topk_group", topk_group)
    if ng > 1:
        if method != RoutingMethodType.DeepSeekV3:
            raise ValueError(
                f"n_group: expected <= 1 unless routing_method_type is DeepSeekV3, got {ng} with {method.name}"
            )
        if num_experts % ng:
            raise ValueError(f"num_experts: expected a multiple of n_group={ng}, got {num_experts}")
        check_int("topk_group", tg, 1, ng)
        check_int("top_k", top_k, 1, tg * (num_experts // ng))
    scale = (
        1.0
        if routed_scaling_factor is None
        else check_float("routed_scaling_factor", routed_scaling_factor)
    )
    return RoutingSpec(
        method=method,
        logits=routing_logits,
        bias=routing_bias,
        n_group=ng,
        topk_group=tg,
        routed_scaling_factor=float(scale),
        norm_topk_prob=bool(norm_topk_prob),
    )


def routing_method(routing_method_type) -> RoutingMethodType:
    method = check_enum("routing_method_type", routing_method_type, RoutingMethodType)
    if method == RoutingMethodType.Unspecified:
        raise ValueError("routing_method_type: expected a routing method, got Unspecified")
    return method


def routing_precomputed(topk_ids, *, num_tokens: int, top_k: int) -> RoutingSpec:
    """``topk_ids``: packed int32 words ``(id << 16) | bf16 bits`` [T, k], or a tuple
    ``(ids int32 [T, k], weights bf16/f32 [T, k])``. Ids outside [0, num_experts) are skipped."""
    if isinstance(topk_ids, (tuple, list)):
        if len(topk_ids) != 2:
            raise ValueError(
                f"topk_ids: expected a packed tensor or an (ids, weights) pair, got {len(topk_ids)} items"
            )
        ids, weights = topk_ids
        check_tensor("topk_ids[0] (ids)", ids, dtypes=(torch.int32,), shape=(num_tokens, top_k))
        check_tensor(
            "topk_ids[1] (weights)",
            weights,
            dtypes=(torch.bfloat16, torch.float32),
            shape=(num_tokens, top_k),
        )
        return RoutingSpec(topk_ids=ids, topk_weights=weights, packed=False)
    check_tensor("topk_ids", topk_ids, dtypes=(torch.int32,), shape=(num_tokens, top_k))
    return RoutingSpec(topk_ids=topk_ids, packed=True)


# ---- weight and scale layouts ----------------------------------------------------------------


def stored_to_logical_rows(
    rows: int, *, epilogue_tile_m: int, gated_interleave: bool, device
) -> Tensor:
    """int64 [rows] with logical = stored[idx] for rows prepared as flashinfer does: the gated
    (up_i, gate_i) interleave (``reorder_rows_for_gated_act_gemm``) when it applies, then
    ``shuffle_matrix_a``. Computed from layout.py's forward index helpers, then inverted."""
    from . import layout

    probe = torch.empty(rows, 1, dtype=torch.uint8, device=device)
    perm = torch.arange(rows, device=device)
    if gated_interleave:
        perm = perm[layout.get_reorder_rows_for_gated_act_gemm_row_indices(probe)]
    perm = perm[layout.get_shuffle_matrix_a_row_indices(probe, epilogue_tile_m)]
    return torch.argsort(perm)


_warned_restoring = False


def _warn_restoring_once(name: str) -> None:
    """The one warning a process gets for weights restored on every call (the slow path)."""
    global _warned_restoring
    if not _warned_restoring:
        _warned_restoring = True
        warnings.warn(
            f"{name}: flashinfer-prepared weights (shuffled rows or BlockMajorK) are restored to "
            "MajorK on every call (a copy of the weights: the slow path); pass MajorK weights "
            "with use_shuffled_weight=False, weight_layout=WeightLayout.MajorK to avoid it",
            stacklevel=user_stacklevel(),
        )


def restore_weight_stack(
    name: str, w: Tensor, *, num_local: int, rows: int, k_bytes: int, shuffled: bool,
    block_major_k: bool, epilogue_tile_m: int, gated_interleave: bool,
) -> Tensor:  # fmt: skip
    """A weight stack as prepared by flashinfer's recipe -> canonical MajorK ``[E, rows, K]``.

    MajorK and unshuffled weights are returned as they are (no copy). Otherwise the layout is
    undone on the uint8 view, in reverse order of the recipe: BlockMajorK blocks of 128 bytes
    (``convert_from_block_layout``), then the row order (epilogue shuffle, gated interleave).
    This copies the weights on every call: it is the slow path.
    """
    elt_bytes = w.element_size()
    if block_major_k:
        if k_bytes % BLOCK_K_BYTES:
            raise ValueError(
                f"{name}: expected K to be a multiple of 128 bytes for BlockMajorK, got {k_bytes} bytes"
            )
        check_tensor(
            name, w, shape=(num_local, k_bytes // BLOCK_K_BYTES, rows, BLOCK_K_BYTES // elt_bytes)
        )
    else:
        check_tensor(name, w, shape=(num_local, rows, k_bytes // elt_bytes))
    if not shuffled and not block_major_k:
        return w
    _warn_restoring_once(name)
    block = 32 if epilogue_tile_m % 128 == 0 else 16
    if shuffled and rows % block:
        raise ValueError(
            f"{name}: expected rows to be a multiple of {block} for shuffled weights, got {rows}"
        )
    from . import layout

    dtype = w.dtype
    u8 = (w if w.stride(-1) == 1 else w.contiguous()).view(torch.uint8)
    if block_major_k:
        u8 = layout.convert_from_block_layout(u8, BLOCK_K_BYTES)
    if shuffled:
        idx = stored_to_logical_rows(
            rows,
            epilogue_tile_m=epilogue_tile_m,
            gated_interleave=gated_interleave,
            device=w.device,
        )
        u8 = u8.index_select(1, idx)
    return u8.contiguous().view(dtype)


def restore_rows(
    name: str, x: Tensor, *, shuffled: bool, epilogue_tile_m: int, gated_interleave: bool
) -> Tensor:
    """Per-row data ([E, M] biases, [E, M, C] linear scales) that followed the weight rows."""
    if not shuffled:
        return x
    idx = stored_to_logical_rows(
        x.shape[1],
        epilogue_tile_m=epilogue_tile_m,
        gated_interleave=gated_interleave,
        device=x.device,
    )
    return x.index_select(1, idx)


def restore_swizzled_scales(
    name: str, sf: Tensor, *, num_local: int, rows: int, cols: int, epilogue_tile_m: int,
    gated_interleave: bool,
) -> Tensor:  # fmt: skip
    """Scales prepared as flashinfer does (rows permuted like the weights, then 128x4-swizzled by
    ``block_scale_interleave``) -> linear ``[E, rows, cols]`` uint8, one copy per call."""
    from ..quantization.sf_layout import block_scale_deinterleave

    rp, cp = -(-rows // 128) * 128, -(-cols // 4) * 4
    if sf.numel() != num_local * rp * cp:
        raise ValueError(
            f"{name}: expected {num_local} x {rp} x {cp} swizzled scale bytes "
            f"([E, {rows}, {cols}] padded to 128 x 4), got shape {tuple(sf.shape)}"
        )
    lin = block_scale_deinterleave(sf.contiguous().view(torch.uint8), (num_local, rows, cols))
    return restore_rows(
        name, lin, shuffled=True, epilogue_tile_m=epilogue_tile_m, gated_interleave=gated_interleave
    )


# ---- per-tensor output scalars ----------------------------------------------------------------


def fold_output_scalars(
    out1: Tensor | None, out1_gate: Tensor | None, out2: Tensor | None, gated: bool
):
    """trtllm's three per-expert output scalars -> canonical (w1 global, inter scale s2, w2 global).

    ``gated`` is ``up_scaled_by_output1(act)``: Situ counts as non-gated here. The kernel
    computes (acc = raw accumulator of quantized codes, per local expert e)
        gated:     y1 = act(acc_gate * out1_gate[e]) * acc_up * out1[e]
        non-gated: y1 = act(acc * out1_gate[e]) * out1[e]
        Situ:      y1 = situ(acc_gate * out1_gate[e], acc_up * out1_gate[e]) * out1[e]
    then quantizes y1 (codes scaled by nothing else), and y2 = acc2 * out2[e].
    Canonically the GEMM1 accumulator is real valued, so W1's per-expert dequant global is
    g = out1_gate[e] (it folds the input's quantization scale). Then the real intermediate is
    h = act(gate) * up with gate = acc_gate * g, up = acc_up * g, and the kernel quantizes
    h * c with c = out1 / g (gated) or c = out1 (non-gated). A static dequant scale s2 = 1 / c
    quantizes h the same way: q = sat(h / s2) = sat(h * c), value = q * s2.
    GEMM2 then sees codes q = value / s2, so y2 = sum(q * W2codes) * out2 = sum(value * W2codes
    * out2 / s2): W2's dequant global is out2 / s2.
    Missing scalars mean 1 (the MX paths may pass None). The results are ``derived`` marked, so
    the call cache recomputes them from the call's scalars on a hit.
    """
    recipe = functools.partial(_fold_output_scalars, gated=gated)
    return derived(recipe(out1, out1_gate, out2), recipe, (out1, out1_gate, out2))


def _fold_output_scalars(out1, out1_gate, out2, *, gated: bool):
    g = out1_gate
    s2 = None
    if out1 is not None:
        s2 = (g / out1) if (gated and g is not None) else (1.0 / out1)
    w2g = out2
    if s2 is not None:
        w2g = (1.0 / s2) if out2 is None else out2 / s2
    return _f32(g), _f32(s2), _f32(w2g)


def _f32(t: Tensor | None) -> Tensor | None:
    """``t`` as contiguous float32; itself when it is already (the check is 5x cheaper than
    ``to`` and ``contiguous`` returning it, and this runs on every call-cache hit)."""
    if t is None or (t.dtype == torch.float32 and t.is_contiguous()):
        return t
    return t.to(torch.float32).contiguous()


def scale_bias(bias: Tensor | None, scalar: Tensor | None) -> Tensor | None:
    """A bias in raw-accumulator units -> real units (times the GEMM's dequant scalar)."""
    if bias is None:
        return None
    b = bias.to(torch.float32)
    return b if scalar is None else b * scalar.reshape(-1, 1)


# ---- outputs -----------------------------------------------------------------------------------


def attach_outputs(
    problem: MoeProblem, *, do_finalize: bool, output, routing_replay_out,
    allow_narrow_output: bool = False,
):  # fmt: skip
    """Allocates the problem's outputs; returns the caller's output tensor (or None). With a
    ``gemm1_delta`` (a routed call's ``gemm1_lora_delta``) also the expanded-to-permuted map and
    the activated intermediate (``inter_output``, bf16 [T*k, I]) that such a call returns."""
    t, h, k = problem.num_tokens, problem.hidden_size, problem.top_k
    dev = problem.device
    if output is not None:
        check_tensor("output", output, dtypes=(torch.bfloat16,), ndim=2)
        width_ok = output.shape[1] <= h if allow_narrow_output else output.shape[1] == h
        if output.shape[0] != t or not width_ok:
            want = f"[{t}, <= {h}]" if allow_narrow_output else f"[{t}, {h}]"
            raise ValueError(f"output: expected shape {want}, got {tuple(output.shape)}")
        if output.device != dev:
            raise ValueError(f"output: expected a tensor on {dev}, got one on {output.device}")
    if routing_replay_out is not None:
        check_tensor("routing_replay_out", routing_replay_out, dtypes=(torch.int16,), ndim=2)
        if routing_replay_out.shape[0] < t or routing_replay_out.shape[1] != k:
            raise ValueError(
                f"routing_replay_out: expected shape [>= {t}, {k}], got {tuple(routing_replay_out.shape)}"
            )
        if not routing_replay_out.is_contiguous():
            raise ValueError("routing_replay_out: expected a contiguous tensor, got a strided one")
        problem.topk_ids_out = torch.empty(t, k, dtype=torch.int32, device=dev)
    if do_finalize:
        direct = output is not None and output.is_contiguous() and output.shape[1] == h
        problem.output = output if direct else torch.empty(t, h, dtype=torch.bfloat16, device=dev)
    else:
        problem.permuted_output = torch.zeros(t * k, h, dtype=torch.float32, device=dev)
        problem.topk_weights_out = torch.empty(t, k, dtype=torch.float32, device=dev)
    if not do_finalize or problem.gemm1_delta is not None:
        problem.expanded_to_permuted_out = torch.empty(t, k, dtype=torch.int32, device=dev)
    if problem.gemm1_delta is not None:
        i = problem.intermediate_size
        problem.inter_output = torch.empty(t * k, i, dtype=torch.bfloat16, device=dev)
    return output


def run_and_package(
    problem: MoeProblem, *, do_finalize: bool, output, routing_replay_out, as_list: bool,
    allow_narrow_output: bool = False,
):  # fmt: skip
    """Runs the problem and returns what flashinfer returns: the output tensor ([output] for the
    FP4 path) with do_finalize, else [gemm2_output bf16 [T*k, H] (permuted rows),
    expert_weights bf16 [T, k], expanded_idx_to_permuted_idx int32 [T, k]].

    With a ``gemm1_lora_delta`` (problem.gemm1_delta): ``[output, expanded_idx_to_permuted_idx,
    gemm1_activation_output]`` with do_finalize, else the three above plus
    ``gemm1_activation_output``: bf16 [T*k, I], the activated GEMM1 output of each permuted row
    (row ``expanded_idx_to_permuted_idx[t, j]`` for assignment (t, j); rows past the kept ones
    are zero) before GEMM2's input quantization.
    """
    attach_outputs(
        problem,
        do_finalize=do_finalize,
        output=output,
        routing_replay_out=routing_replay_out,
        allow_narrow_output=allow_narrow_output,
    )
    if problem.num_tokens > 0:
        from .custom_ops import run_problem

        run_problem(problem)
    if routing_replay_out is not None and problem.num_tokens > 0:
        routing_replay_out[: problem.num_tokens].copy_(problem.topk_ids_out.to(torch.int16))
    lora = [problem.inter_output] if problem.inter_output is not None else []
    if not do_finalize:
        weights = problem.topk_weights_out.to(torch.bfloat16)
        rs = problem.routing
        if rs.topk_weights is not None and rs.topk_weights.dtype == torch.float32:
            weights = rs.topk_weights  # flashinfer hands caller-supplied fp32 weights back as-is
        return [
            problem.permuted_output.to(torch.bfloat16),
            weights,
            problem.expanded_to_permuted_out,
            *lora,
        ]
    result = problem.output
    if output is not None and result is not output:
        output.copy_(result[:, : output.shape[1]])
        result = output
    if lora:
        return [result, problem.expanded_to_permuted_out, *lora]
    return [result] if as_list else result
