"""The LoRA deltas of a routed MoE layer's two GEMMs, built from ``bgmv_moe_shrink`` /
``bgmv_moe_expand`` (flashinfer's ``bgmv_moe_gemm{1,2}_lora_delta``).

  * FC1 (gate and up): ``bgmv_moe_gemm1_lora_delta`` gives ``[T, top_k, 2I]``, passed as the
    routed trtllm functions' ``gemm1_lora_delta`` (added to GEMM1's output before the
    activation, per pair and unweighted).
  * FC2 (down): ``bgmv_moe_gemm2_lora_delta`` gives ``[T, H]``, added to the layer's output; it
    reads the permuted activation that such a call returns.

The pairs are token-major (pair ``t * top_k + j`` is token ``t``'s slot ``j``) and ``topk_ids``
are the unpacked expert ids. Banks and tables as in ``bgmv_moe.py`` (``fill_w_ptr``).
"""

from __future__ import annotations

import torch

from .bgmv_moe import bgmv_moe_expand, bgmv_moe_shrink, slice_starts, table_record
from .validation import check_dtype_arg, check_float, check_int, check_tensor

Tensor = torch.Tensor
_LORA_DTYPES = (torch.bfloat16, torch.float16, torch.float32)
_OUT_DTYPES = (torch.bfloat16, torch.float16, torch.float32)


def _token_major_pairs(topk_ids: Tensor, device) -> tuple[Tensor, Tensor]:
    check_tensor("topk_ids", topk_ids, dtypes=(torch.int32, torch.int64), ndim=2, device=device)
    t, k = topk_ids.shape
    tokens = torch.arange(t * k, device=device, dtype=torch.int64) // max(k, 1)
    return tokens, topk_ids.reshape(-1).long()


def _check_options(w_ptr_a, w_ptr_b, slices: int, what: str, lora_dtype, out_dtype, rank, scale):
    """The builders' shared checks: both tables filled by fill_w_ptr with ``slices`` slices, and
    ``lora_dtype`` the dtype of their banks (flashinfer's kernels read the banks as that type).
    Returns (lora_dtype, out_dtype, rank, scale)."""
    lora_dtype = check_dtype_arg("lora_dtype", lora_dtype, _LORA_DTYPES)
    for name, table in (("w_ptr_a", w_ptr_a), ("w_ptr_b", w_ptr_b)):
        banks = table_record(name, table).banks
        if table.shape[0] != slices:
            raise ValueError(f"{name}: expected {slices} slice(s) ({what}), got {table.shape[0]}")
        for bank, _ in banks.values():
            if bank.dtype != lora_dtype:
                raise ValueError(
                    f"lora_dtype: expected the dtype of the banks in the tables "
                    f"({bank.dtype}), got {lora_dtype}"
                )
    out_dtype = check_dtype_arg("out_dtype", out_dtype, _OUT_DTYPES)
    return lora_dtype, out_dtype, check_int("rank", rank, 1), check_float("scale", scale)


def bgmv_moe_gemm1_lora_delta(
    hidden_states: Tensor,
    w_ptr_a: Tensor,
    lora_stride_a: int,
    w_ptr_b: Tensor,
    lora_stride_b: int,
    topk_ids: Tensor,
    lora_ids: Tensor,
    rank: int,
    intermediate_size: int,
    *,
    lora_dtype: torch.dtype = torch.bfloat16,
    scale: float = 1.0,
    out_dtype: torch.dtype = torch.bfloat16,
) -> Tensor:
    """FC1's LoRA delta per (token t, slot j), expert ``e = topk_ids[t, j]``, adapter
    ``l = lora_ids[t]`` (zero where ``l < 0``)::

        delta[t, j] = scale * concat(B_0[l, e] @ (A_0[l, e] @ x[t]), B_1[l, e] @ (A_1[l, e] @ x[t]))

    with the two slices of ``w_ptr_a`` (A banks ``[L, E, rank, H]``) and ``w_ptr_b`` (B banks
    ``[L, E, I, rank]``) in the order they were filled (flashinfer: gate, then up). ``x`` is
    ``hidden_states`` rounded to ``lora_dtype``, and so is the rank-sized intermediate.
    Returns ``[T, top_k, 2 * intermediate_size]`` in ``out_dtype``."""
    check_tensor("hidden_states", hidden_states, dtypes=_LORA_DTYPES, ndim=2)
    device = hidden_states.device
    lora_dtype, out_dtype, rank, scale = _check_options(
        w_ptr_a, w_ptr_b, 2, "gate and up", lora_dtype, out_dtype, rank, scale
    )
    inter = check_int("intermediate_size", intermediate_size, 1)
    tokens, experts = _token_major_pairs(topk_ids, device)
    check_tensor("topk_ids", topk_ids, shape=(hidden_states.shape[0], None))
    check_tensor("lora_ids", lora_ids, shape=(hidden_states.shape[0],))
    t, k = topk_ids.shape
    shrunk = torch.zeros(2, t * k, rank, dtype=lora_dtype, device=device)
    bgmv_moe_shrink(
        shrunk, hidden_states.to(lora_dtype), w_ptr_a, tokens, experts, lora_ids, lora_stride_a
    )
    y = torch.zeros(t * k, 2 * inter, dtype=torch.float32, device=device)
    unused_weights = torch.ones(t * k, dtype=torch.float32, device=device)
    bgmv_moe_expand(
        y, shrunk, w_ptr_b, tokens, experts, unused_weights, lora_ids,
        slice_starts([inter, inter], device), [inter, inter], lora_stride_b, finalize=False,
    )  # fmt: skip
    return (y * scale).view(t, k, 2 * inter).to(out_dtype)


def bgmv_moe_gemm2_lora_delta(
    gemm1_activation_output: Tensor,
    expanded_idx_to_permuted_idx: Tensor,
    w_ptr_a: Tensor,
    lora_stride_a: int,
    w_ptr_b: Tensor,
    lora_stride_b: int,
    topk_ids: Tensor,
    topk_weights: Tensor,
    lora_ids: Tensor,
    rank: int,
    hidden_size: int,
    *,
    lora_dtype: torch.dtype = torch.bfloat16,
    scale: float = 1.0,
    out_dtype: torch.dtype = torch.bfloat16,
) -> Tensor:
    """FC2's LoRA delta, to add to the layer's output: for each token ``t``::

        delta[t] = scale * sum_j topk_weights[t, j] * B[l, e] @ (A[l, e] @ a[t, j])

    where ``a[t, j] = gemm1_activation_output[expanded_idx_to_permuted_idx[t * top_k + j]]``
    (the permuted activation rows a routed trtllm call with ``gemm1_lora_delta`` returns; an
    index below 0 or past its rows is an inactive slot, as is ``l < 0``), rounded to
    ``lora_dtype``. One slice each: A bank ``[L, E, rank, I]``, B bank ``[L, E, H, rank]``.
    ``topk_weights``: the weights the layer combined with. Returns ``[T, hidden_size]``."""
    check_tensor("gemm1_activation_output", gemm1_activation_output, ndim=2)
    device = gemm1_activation_output.device
    lora_dtype, out_dtype, rank, scale = _check_options(
        w_ptr_a, w_ptr_b, 1, "down", lora_dtype, out_dtype, rank, scale
    )
    hidden = check_int("hidden_size", hidden_size, 1)
    tokens, experts = _token_major_pairs(topk_ids, device)
    t, k = topk_ids.shape
    check_tensor("topk_weights", topk_weights, shape=(t, k), device=device)
    check_tensor("lora_ids", lora_ids, shape=(t,))
    check_tensor(
        "expanded_idx_to_permuted_idx", expanded_idx_to_permuted_idx,
        dtypes=(torch.int32, torch.int64), shape=(t * k,), device=device,
    )  # fmt: skip
    rows = gemm1_activation_output.shape[0]
    perm = expanded_idx_to_permuted_idx.long()
    active = (perm >= 0) & (perm < rows)
    gathered = gemm1_activation_output[torch.where(active, perm, 0)].to(lora_dtype)
    per_pair = torch.where(active.unsqueeze(-1), gathered, torch.zeros_like(gathered))
    shrunk = torch.zeros(1, t * k, rank, dtype=lora_dtype, device=device)
    bgmv_moe_shrink(
        shrunk, per_pair, w_ptr_a, tokens, experts, lora_ids, lora_stride_a, per_pair_input=True
    )
    y = torch.zeros(t, hidden, dtype=torch.float32, device=device)
    bgmv_moe_expand(
        y, shrunk, w_ptr_b, tokens, experts, topk_weights.reshape(-1).float(), lora_ids,
        slice_starts([hidden], device), [hidden], lora_stride_b, finalize=True,
    )  # fmt: skip
    return (y * scale).to(out_dtype)
