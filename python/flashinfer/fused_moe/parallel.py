"""Expert and tensor parallelism for ``cutlass_fused_moe`` over ``torch.distributed``.

A pattern a serving engine can copy: each rank calls the library's own kernel (the full form of
``cutlass_fused_moe``, whose ``ep_size/ep_rank/tp_size/tp_rank`` arguments select the rank's
share of the work) and torch.distributed's collectives move tokens and partial outputs. The
same code runs on gloo (CPU, the tests) and NCCL (GPU): every tensor stays on the input's
device; the only host read is the per-rank token count needed to size the gather, and a caller
that already knows the counts passes ``tokens_per_rank`` to skip it.

* **EP** (``expert_parallel_moe``): rank r holds experts ``[r * E_local, (r + 1) * E_local)``
  (``shard_experts``) and its own tokens, routed with *global* expert ids. One ``all_gather``
  of the tokens with their routing (packed as bytes into one row per token, padded to the
  largest token count: one collective, exact for every dtype, fp8 included), then the local
  MoE over all gathered tokens in float32 (tokens routed to no local expert give zero rows),
  then the partial outputs are summed across ranks and each rank keeps its own tokens (one
  ``all_reduce`` and a slice; ``reduce_scatter_tensor`` would halve the bytes on NCCL, left
  until it can be measured on GPUs). Finally one cast to ``output_dtype``.
* **TP** (``tensor_parallel_moe``): every rank has the same tokens and a shard of every expert
  along the intermediate dimension I (``shard_intermediate``: rows of both halves of a gated
  ``[up ; gate]`` fc1, columns of fc2). The local MoE gives a float32 partial sum over its I
  slice; one ``all_reduce`` (sum) and one cast. fc2's bias is added by TP rank 0 only (the
  kernel's rule), so it is counted once.
* **EP x TP** (``parallel_moe`` with both groups): gather over the EP group, local MoE with both
  rank pairs, reduce over the EP group back to the own tokens, then ``all_reduce`` over the TP
  group on those (smaller) rows.

Tolerance: the cross-rank sum is done in float32 and rounded to ``output_dtype`` once, like the
one-process kernel's own finalize, but the order of the fp32 additions differs (experts summed
per rank and then across ranks; with TP, GEMM2's K is split into per-rank partial sums). The
result therefore matches the one-process call within the fp32 accumulation budget plus one
rounding to ``output_dtype`` (``tests/numeric.error_budget``), not bitwise; with bf16 output
some elements differ by one bf16 ulp where the fp32 sums straddle a rounding midpoint. Where the
compute dtype follows ``output_dtype`` (W8A8, FP8 x MXFP4), the float32 local call computes the
intermediate in float32, i.e. it matches the one-process call with a float32 output, rounded.
Tested on gloo with 2 and 4 processes (tests/test_parallel_gloo.py); not yet run on GPUs with
NCCL (no multi-GPU machine was lent).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.distributed as dist

from .api_cutlass import cutlass_fused_moe

__all__ = [
    "expert_parallel_moe",
    "local_expert_range",
    "parallel_moe",
    "shard_experts",
    "shard_intermediate",
    "tensor_parallel_moe",
]

Tensor = torch.Tensor


# ---- weight sharding -----------------------------------------------------------------------------


def local_expert_range(num_experts: int, ep_size: int, ep_rank: int) -> range:
    """Global ids of the experts EP rank ``ep_rank`` holds (the kernel's rule: contiguous,
    starting at ``ep_rank * num_experts / ep_size``). Slice per-expert tensors with it too
    (``quant_scales`` of shape [E], ``swiglu_alpha`` ...)."""
    if ep_size < 1 or not 0 <= ep_rank < ep_size:
        raise ValueError(f"ep_rank: expected 0 <= ep_rank < ep_size = {ep_size}, got {ep_rank}")
    if num_experts % ep_size:
        raise ValueError(
            f"num_experts: expected a multiple of ep_size {ep_size}, got {num_experts}"
        )
    e_local = num_experts // ep_size
    return range(ep_rank * e_local, (ep_rank + 1) * e_local)


def shard_experts(fc1: Tensor, fc2: Tensor, ep_size: int, ep_rank: int) -> tuple[Tensor, Tensor]:
    """EP rank ``ep_rank``'s experts of the full weights ``fc1 [E, M1, H]``, ``fc2 [E, H, I]``."""
    r = local_expert_range(fc1.shape[0], ep_size, ep_rank)
    return fc1[r.start : r.stop].contiguous(), fc2[r.start : r.stop].contiguous()


def shard_intermediate(
    fc1: Tensor, fc2: Tensor, tp_size: int, tp_rank: int, gated: bool = True
) -> tuple[Tensor, Tensor]:
    """TP rank ``tp_rank``'s shard along I of ``fc1 [E, M1, H]`` and ``fc2 [E, H, I]``.

    A gated fc1 is ``[up ; gate]`` (M1 = 2 I): the shard takes the same I slice of both halves
    and stacks them again, so the activation pairs ``up[i]`` with ``gate[i]`` on one rank. fc2
    takes the matching columns. Unquantized or per-tensor-fp8 weights only (block-scaled
    weights need their scale grids sliced alike, on block boundaries).
    """
    if tp_size < 1 or not 0 <= tp_rank < tp_size:
        raise ValueError(f"tp_rank: expected 0 <= tp_rank < tp_size = {tp_size}, got {tp_rank}")
    inter = fc2.shape[2]
    if inter % tp_size:
        raise ValueError(f"fc2_expert_weights: I = {inter} is not a multiple of tp_size {tp_size}")
    if fc1.shape[1] != (2 if gated else 1) * inter:
        raise ValueError(
            f"fc1_expert_weights: expected {(2 if gated else 1) * inter} rows "
            f"({'gated' if gated else 'not gated'}, I = {inter}), got {fc1.shape[1]}"
        )
    i_local = inter // tp_size
    cols = slice(tp_rank * i_local, (tp_rank + 1) * i_local)
    if gated:
        up, gate = fc1[:, :inter], fc1[:, inter:]
        fc1_shard = torch.cat([up[:, cols], gate[:, cols]], dim=1)
    else:
        fc1_shard = fc1[:, cols]
    return fc1_shard.contiguous(), fc2[:, :, cols].contiguous()


# ---- collectives ---------------------------------------------------------------------------------


def _as_bytes(t: Tensor) -> Tensor:
    """[T, ...] -> uint8 [T, nbytes per row]: a view, exact for every dtype (fp8 included)."""
    t = t.contiguous()
    return t.view(t.shape[0], math.prod(t.shape[1:])).view(torch.uint8)


def _from_bytes(b: Tensor, dtype: torch.dtype, cols: int) -> Tensor:
    return b.contiguous().view(dtype).view(b.shape[0], cols)


def _token_counts(num_tokens: int, device: torch.device, group) -> list[int]:
    """Every rank's token count (one small all_gather and one host read)."""
    size = dist.get_world_size(group)
    mine = torch.tensor([num_tokens], dtype=torch.int64, device=device)
    counts = [torch.empty_like(mine) for _ in range(size)]
    dist.all_gather(counts, mine, group=group)
    return [int(c) for c in torch.cat(counts).tolist()]


def _gather_tokens(rows: Tensor, counts: Sequence[int], group) -> Tensor:
    """All ranks' byte rows [T_r, B], concatenated in rank order: [sum T_r, B]."""
    t_max = max(counts)
    padded = rows.new_zeros((t_max, rows.shape[1]))
    padded[: rows.shape[0]] = rows
    gathered = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(gathered, padded, group=group)
    return torch.cat([g[:n] for g, n in zip(gathered, counts)])


def _sum_back_to_owners(partial: Tensor, counts: Sequence[int], rank: int, group) -> Tensor:
    """Sum the float32 partial outputs [sum T_r, H] across the group; rank keeps its rows."""
    t_max = max(counts)
    padded = partial.new_zeros((len(counts), t_max, partial.shape[1]))
    for r, chunk in enumerate(torch.split(partial, list(counts))):
        padded[r, : counts[r]] = chunk
    # One all_reduce and the own slice, on every backend: gloo has no reduce_scatter, and this is
    # the path the tests run. On NCCL, reduce_scatter_tensor moves half the bytes; it is left
    # for when it can be measured and tested on GPUs.
    dist.all_reduce(padded, op=dist.ReduceOp.SUM, group=group)
    return padded[rank, : counts[rank]]


# ---- the parallel MoE ----------------------------------------------------------------------------


def _local_kwargs(moe_kwargs: dict) -> dict:
    for name in ("output", "ep_size", "ep_rank", "tp_size", "tp_rank", "input_sf"):
        if name in moe_kwargs:
            raise ValueError(f"{name}: set by parallel_moe, not accepted as a keyword")
    kw = dict(moe_kwargs)
    # biases come in output_dtype; the local call outputs float32, so widen them (exact)
    for name in ("fc1_expert_biases", "fc2_expert_biases"):
        if kw.get(name) is not None:
            kw[name] = kw[name].to(torch.float32)
    return kw


def parallel_moe(
    x: Tensor,
    token_selected_experts: Tensor,
    token_final_scales: Tensor | None,
    fc1_expert_weights: Tensor,
    fc2_expert_weights: Tensor,
    output_dtype: torch.dtype,
    quant_scales: Sequence[Tensor] | None = None,
    *,
    ep_group=None,
    tp_group=None,
    tokens_per_rank: Sequence[int] | None = None,
    **moe_kwargs,
) -> Tensor:
    """MoE over an EP group, a TP group, or both (module docstring); returns [T_r, H].

    ``x`` / ``token_selected_experts`` (int32, *global* expert ids) / ``token_final_scales`` are
    this rank's tokens (the same on every rank of a TP group); ``fc1/fc2_expert_weights`` hold
    this rank's experts (``shard_experts``) sharded along I (``shard_intermediate``), and
    ``quant_scales`` / per-expert keywords the matching local slices. ``ep_group`` / ``tp_group``
    None means size 1 (not the default group). ``tokens_per_rank``: every EP rank's token count,
    if known, saves the count exchange. Other keywords go to ``cutlass_fused_moe`` unchanged.
    """
    ep_size = 1 if ep_group is None else dist.get_world_size(ep_group)
    ep_rank = 0 if ep_group is None else dist.get_rank(ep_group)
    tp_size = 1 if tp_group is None else dist.get_world_size(tp_group)
    tp_rank = 0 if tp_group is None else dist.get_rank(tp_group)
    kw = _local_kwargs(moe_kwargs)
    num_tokens, hidden = x.shape[0], x.shape[1]
    top_k = token_selected_experts.shape[1]

    if ep_size > 1:
        if tokens_per_rank is None:
            counts = _token_counts(num_tokens, x.device, ep_group)
        else:
            counts = [int(n) for n in tokens_per_rank]
            if len(counts) != ep_size or counts[ep_rank] != num_tokens:
                raise ValueError(
                    f"tokens_per_rank: expected {ep_size} counts with {num_tokens} at rank "
                    f"{ep_rank}, got {counts}"
                )
        parts = [_as_bytes(x), _as_bytes(token_selected_experts)]
        if token_final_scales is not None:
            parts.append(_as_bytes(token_final_scales))
        widths = [p.shape[1] for p in parts]
        rows = _gather_tokens(torch.cat(parts, dim=1), counts, ep_group)
        pieces = torch.split(rows, widths, dim=1)
        x_all = _from_bytes(pieces[0], x.dtype, hidden)
        ids_all = _from_bytes(pieces[1], token_selected_experts.dtype, top_k)
        scales_all = (
            None
            if token_final_scales is None
            else _from_bytes(pieces[2], token_final_scales.dtype, top_k)
        )
    else:
        x_all, ids_all, scales_all = x, token_selected_experts, token_final_scales

    partial = cutlass_fused_moe(
        x_all,
        ids_all,
        scales_all,
        fc1_expert_weights,
        fc2_expert_weights,
        torch.float32,
        quant_scales,
        ep_size=ep_size,
        ep_rank=ep_rank,
        tp_size=tp_size,
        tp_rank=tp_rank,
        **kw,
    )[0]

    if ep_size > 1:
        partial = _sum_back_to_owners(partial, counts, ep_rank, ep_group)
    if tp_size > 1:
        partial = partial.contiguous()
        dist.all_reduce(partial, op=dist.ReduceOp.SUM, group=tp_group)
    return partial.to(output_dtype)


def expert_parallel_moe(
    x: Tensor,
    token_selected_experts: Tensor,
    token_final_scales: Tensor | None,
    fc1_expert_weights: Tensor,
    fc2_expert_weights: Tensor,
    output_dtype: torch.dtype,
    quant_scales: Sequence[Tensor] | None = None,
    *,
    group=None,
    tokens_per_rank: Sequence[int] | None = None,
    **moe_kwargs,
) -> Tensor:
    """EP over ``group`` (None: the default group): all_gather tokens, local MoE on this rank's
    ``E / ep_size`` experts in float32, one all_reduce keeping this rank's rows, cast once.
    Token counts may differ per rank. Returns this rank's [T_r, H] in ``output_dtype``."""
    return parallel_moe(
        x,
        token_selected_experts,
        token_final_scales,
        fc1_expert_weights,
        fc2_expert_weights,
        output_dtype,
        quant_scales,
        ep_group=dist.group.WORLD if group is None else group,
        tokens_per_rank=tokens_per_rank,
        **moe_kwargs,
    )


def tensor_parallel_moe(
    x: Tensor,
    token_selected_experts: Tensor,
    token_final_scales: Tensor | None,
    fc1_expert_weights: Tensor,
    fc2_expert_weights: Tensor,
    output_dtype: torch.dtype,
    quant_scales: Sequence[Tensor] | None = None,
    *,
    group=None,
    **moe_kwargs,
) -> Tensor:
    """TP over ``group`` (None: the default group): every rank has the same tokens and its I
    shard of every expert (``shard_intermediate``); local MoE in float32, all_reduce (sum), cast
    once. Returns [T, H] in ``output_dtype`` (the same on every rank)."""
    return parallel_moe(
        x,
        token_selected_experts,
        token_final_scales,
        fc1_expert_weights,
        fc2_expert_weights,
        output_dtype,
        quant_scales,
        tp_group=dist.group.WORLD if group is None else group,
        **moe_kwargs,
    )
