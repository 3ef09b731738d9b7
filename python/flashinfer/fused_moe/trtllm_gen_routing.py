"""``trtllm_gen_routing``: the routing stage of flashinfer's trtllm-gen MoE on its own, with the
permutation metadata its grouped GEMMs consume (flashinfer's
``flashinfer.fused_moe.trtllm_gen_routing``), built on this library's ``route``.

Selection and weights are ``route``'s (docs/semantics.md, "Routing"; run natively on the CPU or
on the current CUDA stream), rounded to bfloat16 as flashinfer's routing kernels return them.
The permutation is then computed with torch ops on the logits' device, without reading device
memory on the host: each local expert owns a segment of the permuted buffer padded up to a
multiple of ``tile_tokens_dim``, local experts in ascending order; inside a segment the slots
follow the expanded index ``token * (top_k + S) + slot`` (flashinfer leaves that order to its
kernels and its tests check only the invariants; this order is deterministic).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .enums import RoutingMethodType
from .routing import route
from .validation import check_bool, check_int

Tensor = torch.Tensor


def _max_num_ctas_in_batch_dim(
    num_tokens: int, top_k: int, num_experts: int, tile_tokens_dim: int
) -> int:
    """Upper bound on the CTA tiles of the permuted buffer: every expert that receives a slot
    can need one partially filled tile, the remaining slots fill whole tiles."""
    slots = num_tokens * top_k
    filled = min(num_experts, slots)
    return filled + (slots - filled) // tile_tokens_dim


def max_num_padded_tokens(
    num_tokens: int, top_k: int, num_experts: int, tile_tokens_dim: int
) -> int:
    """Upper bound on ``total_num_padded_tokens`` (the size of ``permuted_idx_to_token_idx``):
    the CTA bound above times ``tile_tokens_dim`` (trtllm-gen's getMaxPermutedPaddedCount)."""
    return _max_num_ctas_in_batch_dim(num_tokens, top_k, num_experts, tile_tokens_dim) * (
        tile_tokens_dim
    )


class TrtllmGenRoutingResult(NamedTuple):
    """What ``trtllm_gen_routing`` returns (int32 unless said otherwise; K = top_k + S with S
    fused shared experts; "tiles" are CTA tiles of ``tile_tokens_dim`` permuted rows).

    - ``topk_ids`` [T, K]: global expert ids in selection order, -1 for non-local slots;
    - ``topk_weights`` [T, K] bfloat16 (also for non-local slots; 1.0 for shared experts);
    - ``total_num_padded_tokens`` [1]: the used size of the permuted buffer;
    - ``expanded_idx_to_permuted_idx`` [T, K]: each slot's permuted row, -1 if not local;
    - ``permuted_idx_to_token_idx`` [max_num_padded_tokens]: the token of each permuted row;
      -1 for padding rows and past ``total_num_padded_tokens``;
    - ``cta_idx_xy_to_batch_idx`` [max tiles]: the local expert index of each tile;
    - ``cta_idx_xy_to_mn_limit`` [max tiles]: the end (exclusive, in permuted rows) of the
      valid rows of each tile;
    - ``num_non_exiting_ctas`` [1]: the number of tiles in use. The two tile arrays hold -1
      past it (flashinfer leaves those entries undefined).
    """

    topk_ids: Tensor
    topk_weights: Tensor
    total_num_padded_tokens: Tensor
    expanded_idx_to_permuted_idx: Tensor
    permuted_idx_to_token_idx: Tensor
    cta_idx_xy_to_batch_idx: Tensor
    cta_idx_xy_to_mn_limit: Tensor
    num_non_exiting_ctas: Tensor


def _check_args(
    routing_logits,
    routing_bias,
    routing_method,
    top_k,
    num_fused_shared_experts,
    local_expert_offset,
    local_num_experts,
    tile_tokens_dim,
):
    # flashinfer's checks and messages first (its tests match them), then this library's.
    if not isinstance(routing_logits, torch.Tensor):
        raise TypeError(
            f"routing_logits: expected a torch.Tensor, got {type(routing_logits).__name__}"
        )
    if routing_logits.dim() != 2:
        raise ValueError(
            f"routing_logits must be 2D [num_tokens, num_experts], "
            f"got {tuple(routing_logits.shape)}"
        )
    if routing_logits.dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"routing_logits must be float32 or bfloat16, got {routing_logits.dtype}")
    num_experts = routing_logits.shape[1]
    if not isinstance(top_k, int) or not 1 <= top_k <= num_experts:
        raise ValueError(f"top_k must be in [1, num_experts], got {top_k}")
    if routing_bias is not None and routing_bias.numel() != num_experts:
        raise ValueError(
            f"routing_bias must have num_experts ({num_experts}) elements, "
            f"got {routing_bias.numel()}"
        )
    if (
        not isinstance(tile_tokens_dim, int)
        or tile_tokens_dim < 1
        or tile_tokens_dim & (tile_tokens_dim - 1)
    ):
        raise ValueError(f"tile_tokens_dim must be a positive power of two, got {tile_tokens_dim}")
    if int(routing_method) == int(RoutingMethodType.Unspecified):
        raise ValueError("routing_method must be a concrete RoutingMethodType")
    shared = check_int("num_fused_shared_experts", num_fused_shared_experts, 0)
    offset = check_int("local_expert_offset", local_expert_offset, 0, num_experts - 1)
    local = (
        num_experts
        if local_num_experts is None
        else check_int("local_num_experts", local_num_experts, 1, num_experts)
    )
    if offset + local > num_experts:
        raise ValueError(
            f"local_expert_offset + local_num_experts: expected at most num_experts "
            f"({num_experts}), got {offset} + {local}"
        )
    if shared:
        if int(routing_method) != int(RoutingMethodType.DeepSeekV3):
            raise ValueError(
                "num_fused_shared_experts: fused shared experts need RoutingMethodType.DeepSeekV3"
            )
        if offset != 0 or local != num_experts:
            raise ValueError(
                "num_fused_shared_experts: fused shared experts are not supported with expert "
                "parallelism (local_expert_offset must be 0 and local_num_experts num_experts)"
            )
    return num_experts, shared, offset, local


def trtllm_gen_routing(
    routing_logits: Tensor,
    routing_bias: Tensor | None,
    routing_method: RoutingMethodType,
    top_k: int,
    *,
    num_fused_shared_experts: int = 0,
    n_group: int = 0,
    topk_group: int = 0,
    local_expert_offset: int = 0,
    local_num_experts: int | None = None,
    routed_scaling_factor: float = 1.0,
    tile_tokens_dim: int = 8,
    norm_topk_prob: bool = True,
    enable_pdl: bool | None = None,
) -> TrtllmGenRoutingResult:
    """Route ``routing_logits`` [T, E] (float32 or bfloat16) and build the trtllm-gen
    permutation (flashinfer's signature; see ``TrtllmGenRoutingResult`` for the outputs).

    ``routing_method`` is any ``RoutingMethodType`` but ``Unspecified``; ``routing_bias`` [E]
    (DeepSeekV3 / MiniMax2 selection), ``n_group`` / ``topk_group`` (DeepSeekV3 groups; 0 = no
    groups), ``routed_scaling_factor`` and ``norm_topk_prob`` mean what they mean for ``route``.
    ``num_fused_shared_experts`` S (DeepSeekV3 only, no expert parallelism) appends S slots per
    token with expert ids E..E+S-1 and weight 1.0, which are local experts of the permutation.
    The rank owns experts [``local_expert_offset``, ``local_expert_offset + local_num_experts``)
    (default: all); other slots get -1 ids and permuted index. ``tile_tokens_dim`` (a power of
    two) is the token tile of the downstream grouped GEMM. ``enable_pdl`` is accepted for
    compatibility and has no effect. Unlike flashinfer (sm100/sm103/sm120/sm121 only), it runs
    on the CPU and on any CUDA device ``route`` runs on.
    """
    num_experts, shared, offset, local = _check_args(
        routing_logits,
        routing_bias,
        routing_method,
        top_k,
        num_fused_shared_experts,
        local_expert_offset,
        local_num_experts,
        tile_tokens_dim,
    )
    check_bool("norm_topk_prob", norm_topk_prob)
    device = routing_logits.device
    num_tokens = routing_logits.shape[0]
    bias = None if routing_bias is None else routing_bias.reshape(num_experts)
    ids, weights = route(
        routing_logits,
        top_k,
        routing_method,
        routing_bias=bias,
        n_group=n_group,
        topk_group=topk_group,
        routed_scaling_factor=1.0 if routed_scaling_factor is None else routed_scaling_factor,
        norm_topk_prob=norm_topk_prob,
    )
    ids = ids.to(torch.int64)
    weights = weights.to(torch.bfloat16)
    if shared:
        shared_ids = torch.arange(num_experts, num_experts + shared, device=device)
        ids = torch.cat((ids, shared_ids.expand(num_tokens, shared)), dim=1)
        ones = torch.ones(num_tokens, shared, dtype=torch.bfloat16, device=device)
        weights = torch.cat((weights, ones), dim=1)
    slots = top_k + shared
    num_local = local + shared  # shared experts follow the routed ones (offset is 0 then)
    tile = tile_tokens_dim

    flat = ids.reshape(-1)
    local_idx = flat - offset
    is_local = (local_idx >= 0) & (local_idx < num_local)
    key = torch.where(is_local, local_idx, torch.full_like(local_idx, num_local))  # last: skip
    n = flat.numel()

    counts = torch.zeros(num_local + 1, dtype=torch.int64, device=device)
    counts.scatter_add_(0, key, torch.ones_like(key))
    counts = counts[:num_local]
    padded = (counts + tile - 1) // tile * tile
    zero = torch.zeros(1, dtype=torch.int64, device=device)
    seg_start = torch.cat((zero, torch.cumsum(padded, 0)))  # [num_local + 1]
    group_start = torch.cat((zero, torch.cumsum(counts, 0)))  # start in the sorted order

    order = torch.sort(key, stable=True).indices  # slots grouped by local expert, in order
    position = torch.empty_like(order)
    position[order] = torch.arange(n, dtype=torch.int64, device=device)
    permuted = seg_start[key] + position - group_start[key]
    e2p = torch.where(is_local, permuted, torch.full_like(permuted, -1))

    max_ctas = _max_num_ctas_in_batch_dim(num_tokens, slots, num_experts + shared, tile)
    max_padded = max_ctas * tile
    tokens = torch.arange(num_tokens, dtype=torch.int64, device=device).repeat_interleave(slots)
    p2t = torch.full((max_padded + 1,), -1, dtype=torch.int64, device=device)
    p2t[torch.where(is_local, e2p, torch.full_like(e2p, max_padded))] = tokens
    p2t = p2t[:max_padded]

    tiles_end = torch.cumsum(padded // tile, 0)  # [num_local]
    num_tiles = tiles_end[-1:]
    cta = torch.arange(max_ctas, dtype=torch.int64, device=device)
    expert_of_cta = torch.searchsorted(tiles_end, cta, right=True)  # num_local past the end
    in_use = cta < num_tiles
    valid_end = seg_start[:-1] + counts  # end of each expert's real rows
    limit = torch.minimum((cta + 1) * tile, torch.cat((valid_end, zero))[expert_of_cta])
    minus_one = torch.full_like(cta, -1)

    i32 = torch.int32
    return TrtllmGenRoutingResult(
        topk_ids=torch.where(is_local, flat, -torch.ones_like(flat)).reshape(-1, slots).to(i32),
        topk_weights=weights,
        total_num_padded_tokens=seg_start[-1:].to(i32),
        expanded_idx_to_permuted_idx=e2p.reshape(-1, slots).to(i32),
        permuted_idx_to_token_idx=p2t.to(i32),
        cta_idx_xy_to_batch_idx=torch.where(in_use, expert_of_cta, minus_one).to(i32),
        cta_idx_xy_to_mn_limit=torch.where(in_use, limit, minus_one).to(i32),
        num_non_exiting_ctas=num_tiles.to(i32),
    )


__all__ = ["TrtllmGenRoutingResult", "max_num_padded_tokens", "trtllm_gen_routing"]
