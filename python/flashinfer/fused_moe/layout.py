"""Weight-layout helpers for the fused MoE kernels, each with its inverse (pure torch).

- `reorder_rows_for_gated_act_gemm`: interleave the [up ; gate] halves of a gated GEMM1 weight
  so both halves of output channel i sit in adjacent rows (flashinfer's form), or, given expert
  indices, group rows by expert (the seed doc's form).
- `shuffle_matrix_a` / `shuffle_matrix_sf_a`: the row shuffle a transposed-MMA epilogue expects,
  for data rows and for block-scale rows (the latter then 128x4-swizzled).
- `convert_to_block_layout`: [M, K] -> [K / blockK, M, blockK] ("BlockMajorK").
- `_maybe_get_cached_w3_w1_permute_indices` / `get_w2_permute_indices_with_cache`: the combined
  reorder + shuffle row indices of a GEMM1 / GEMM2 weight, memoized by shape in a caller's dict
  (flashinfer's `fused_moe.core` helpers that engines import to prepare shuffled weights).
Rows are always dimension 0 of the data tensors (for a weight stack, call per expert or on a
[E * M, K] view when M is a multiple of the block).
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence

import torch

from ..quantization.sf_layout import block_scale_deinterleave, block_scale_interleave

Tensor = torch.Tensor


def _check_tensor(name: str, x, min_dim: int = 1, max_dim: int | None = None) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < min_dim or (max_dim is not None and x.dim() > max_dim):
        want = f"{min_dim}" if max_dim == min_dim else f"{min_dim}..{max_dim or 'any'}"
        raise ValueError(f"{name} must have {want} dims, got shape {tuple(x.shape)}")


# ---- gated-GEMM row order -----------------------------------------------------------------------


def get_reorder_rows_for_gated_act_gemm_row_indices(x: Tensor) -> Tensor:
    """int64 [M]: output row 2i takes input row i, output row 2i+1 takes input row M/2 + i."""
    _check_tensor("x", x)
    m = x.shape[0]
    if m % 2 != 0:
        raise ValueError(f"x must have an even number of rows, got {m}")
    half = torch.arange(m // 2, dtype=torch.int64, device=x.device)
    return torch.stack((half, half + m // 2), dim=1).reshape(-1)


def _stable_expert_order(x: Tensor, expert_indices) -> Tensor:
    if not isinstance(expert_indices, torch.Tensor):
        raise TypeError(
            f"expert_indices must be a torch.Tensor, got {type(expert_indices).__name__}"
        )
    if expert_indices.dtype not in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
        raise TypeError(f"expert_indices must be an integer tensor, got {expert_indices.dtype}")
    if tuple(expert_indices.shape) != (x.shape[0],):
        raise ValueError(
            f"expert_indices must have shape ({x.shape[0]},) (one per row of x), got "
            f"{tuple(expert_indices.shape)}"
        )
    keys = expert_indices.to(device=x.device, dtype=torch.int64)
    return torch.sort(keys, stable=True).indices


def reorder_rows_for_gated_act_gemm(
    x: Tensor, expert_indices: Tensor | None = None, *, return_permutation: bool = False
) -> Tensor | tuple[Tensor, Tensor]:
    """Reorder the rows (dim 0) of x; always returns a copy.

    Without `expert_indices`: flashinfer's interleave, output row 2i = input row i and row
    2i+1 = input row M/2 + i (M must be even). With `expert_indices` (int [M]): the rows stably
    grouped by ascending expert index. `return_permutation=True` also returns the int64 row
    indices `perm` with `out == x[perm]` (pass it to `undo_reorder_rows_for_gated_act_gemm`).
    """
    _check_tensor("x", x)
    if expert_indices is None:
        perm = get_reorder_rows_for_gated_act_gemm_row_indices(x)
    else:
        perm = _stable_expert_order(x, expert_indices)
    out = x[perm].contiguous()
    return (out, perm) if return_permutation else out


def undo_reorder_rows_for_gated_act_gemm(x: Tensor, permutation: Tensor | None = None) -> Tensor:
    """Inverse of `reorder_rows_for_gated_act_gemm`: without `permutation`, undo the [up ; gate]
    interleave; with it (as returned by `return_permutation=True`), put row i back at perm[i]."""
    _check_tensor("x", x)
    if permutation is None:
        permutation = get_reorder_rows_for_gated_act_gemm_row_indices(x)
    elif not isinstance(permutation, torch.Tensor) or permutation.shape != (x.shape[0],):
        raise ValueError(f"permutation must be an int tensor of shape ({x.shape[0]},)")
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    out[permutation.to(device=x.device, dtype=torch.int64)] = x
    return out


# ---- transposed-MMA row shuffle --------------------------------------------------------------------


def _shuffle_block_rows(epilogue_tile_m: int) -> int:
    if not isinstance(epilogue_tile_m, int) or epilogue_tile_m <= 0:
        raise ValueError(f"epilogue_tile_m must be a positive int, got {epilogue_tile_m!r}")
    return 32 if epilogue_tile_m % 128 == 0 else 16


def get_shuffle_matrix_a_row_indices(input_tensor: Tensor, epilogue_tile_m: int) -> Tensor:
    """int64 [M] with shuffled = input[idx]: inside each block of B rows (B = 32 when
    epilogue_tile_m % 128 == 0, else 16), output row d takes source row (d % 8) * (B/8) + d // 8."""
    _check_tensor("input_tensor", input_tensor)
    b = _shuffle_block_rows(epilogue_tile_m)
    m = input_tensor.shape[0]
    if m % b != 0:
        raise ValueError(
            f"input_tensor rows must be a multiple of {b} for epilogue_tile_m={epilogue_tile_m}, got {m}"
        )
    d = torch.arange(m, dtype=torch.int64, device=input_tensor.device)
    local = d % b
    return d - local + (local % 8) * (b // 8) + local // 8


def shuffle_matrix_a(input_tensor: Tensor, epilogue_tile_m: int) -> Tensor:
    """Rows of `input_tensor` (dim 0) in the transposed-MMA epilogue order (a copy)."""
    return input_tensor[
        get_shuffle_matrix_a_row_indices(input_tensor, epilogue_tile_m)
    ].contiguous()


def unshuffle_matrix_a(input_tensor: Tensor, epilogue_tile_m: int) -> Tensor:
    """Inverse of `shuffle_matrix_a`."""
    idx = get_shuffle_matrix_a_row_indices(input_tensor, epilogue_tile_m)
    out = torch.empty_like(input_tensor, memory_format=torch.contiguous_format)
    out[idx] = input_tensor
    return out


def _check_sf_args(name: str, sf: Tensor, num_elts_per_sf: int) -> None:
    if num_elts_per_sf not in (16, 32):
        raise ValueError(f"num_elts_per_sf must be 16 or 32, got {num_elts_per_sf}")
    if sf.dtype not in (torch.uint8, torch.bfloat16, torch.float8_e4m3fn):
        raise TypeError(f"{name} must be uint8, float8_e4m3fn or bfloat16 scales, got {sf.dtype}")


def shuffle_matrix_sf_a(
    input_tensor: Tensor, epilogue_tile_m: int, num_elts_per_sf: int = 16
) -> Tensor:
    """Linear block scales [M, K/sfv] (M % 128 == 0) -> row-shuffled, then 128x4-swizzled
    (flat buffer). The shuffle is `shuffle_matrix_a`'s."""
    _check_tensor("input_tensor", input_tensor, 2, 2)
    _check_sf_args("input_tensor", input_tensor, num_elts_per_sf)
    if input_tensor.shape[0] % 128 != 0:
        raise ValueError(
            f"input_tensor rows must be a multiple of 128, got {input_tensor.shape[0]}"
        )
    sf = (
        input_tensor.view(torch.uint8)
        if input_tensor.dtype == torch.float8_e4m3fn
        else input_tensor
    )
    return block_scale_interleave(shuffle_matrix_a(sf, epilogue_tile_m))


def unshuffle_matrix_sf_a(
    input_tensor: Tensor, epilogue_tile_m: int, shape: Sequence[int], num_elts_per_sf: int = 16
) -> Tensor:
    """Inverse of `shuffle_matrix_sf_a`: the linear scales of `shape` = (M, K/sfv)."""
    _check_tensor("input_tensor", input_tensor)
    _check_sf_args("input_tensor", input_tensor, num_elts_per_sf)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or shape[0] % 128 != 0:
        raise ValueError(f"shape must be (M, K/sfv) with M a multiple of 128, got {shape}")
    sf = (
        input_tensor.view(torch.uint8)
        if input_tensor.dtype == torch.float8_e4m3fn
        else input_tensor
    )
    return unshuffle_matrix_a(block_scale_deinterleave(sf, shape), epilogue_tile_m)


def get_shuffle_matrix_sf_a_row_indices(
    input_tensor: Tensor, epilogue_tile_m: int, num_elts_per_sf: int = 16
) -> Tensor:
    """The row indices of `shuffle_matrix_sf_a`'s shuffle for linear block scales
    [M, K/sfv] (2-D, M % 128 == 0, K/sfv % 4 == 0): the same indices as
    `get_shuffle_matrix_a_row_indices`, after the checks a scale matrix must pass."""
    _check_tensor("input_tensor", input_tensor, 2, 2)
    _check_sf_args("input_tensor", input_tensor, num_elts_per_sf)
    m, k = input_tensor.shape
    if m % 128 != 0 or k % 4 != 0:
        raise ValueError(
            f"input_tensor (linear block scales) must be [M, K/sfv] with M % 128 == 0 and "
            f"K/sfv % 4 == 0, got shape {tuple(input_tensor.shape)}"
        )
    return get_shuffle_matrix_a_row_indices(input_tensor, epilogue_tile_m)


# ---- cached weight-preparation permutations (flashinfer's fused_moe.core helpers) ----------------
#
# Engines prepare trtllm weights expert by expert; recomputing the row permutation for every
# expert made loading take minutes, so the caller passes a dict that memoizes it by shape. The
# key holds every argument that changes the permutation, and the device the indices live on.


def _check_cache(cache) -> None:
    if not isinstance(cache, MutableMapping):
        raise TypeError(
            f"_cache_permute_indices must be a dict (or other mutable mapping), got "
            f"{type(cache).__name__}"
        )


def _maybe_get_cached_w3_w1_permute_indices(
    _cache_permute_indices,
    dst_w3_w1_weight: Tensor,
    epilogue_tile_m: int,
    num_elts_per_sf: int | None = None,
    is_gated_act_gemm: bool = True,
) -> Tensor:
    """int64 row indices `perm` of a GEMM1 weight [2I (or I), K] (or of its linear block scales
    when `num_elts_per_sf` is given) such that `w[perm]` equals
    `shuffle_matrix_a(reorder_rows_for_gated_act_gemm(w), epilogue_tile_m)` (without the
    reorder when `is_gated_act_gemm=False`). Computed once per (shape, tile, sfv, gated,
    device) and kept in `_cache_permute_indices`; a later call returns the same tensor."""
    _check_cache(_cache_permute_indices)
    _check_tensor("dst_w3_w1_weight", dst_w3_w1_weight)
    key = (
        "w3_w1",
        tuple(dst_w3_w1_weight.shape),
        epilogue_tile_m,
        num_elts_per_sf,
        bool(is_gated_act_gemm),
        dst_w3_w1_weight.device,
    )
    perm = _cache_permute_indices.get(key)
    if perm is None:
        if num_elts_per_sf is None:
            shuffle = get_shuffle_matrix_a_row_indices(dst_w3_w1_weight, epilogue_tile_m)
        else:
            shuffle = get_shuffle_matrix_sf_a_row_indices(
                dst_w3_w1_weight, epilogue_tile_m, num_elts_per_sf
            )
        if is_gated_act_gemm:
            perm = get_reorder_rows_for_gated_act_gemm_row_indices(dst_w3_w1_weight)[shuffle]
        else:
            perm = shuffle
        _cache_permute_indices[key] = perm
    return perm


def get_w2_permute_indices_with_cache(
    _cache_permute_indices,
    dst_w2_weight: Tensor,
    epilogue_tile_m: int,
    num_elts_per_sf: int | None = None,
) -> Tensor:
    """int64 row indices of `shuffle_matrix_a(w2, epilogue_tile_m)` for a GEMM2 weight [H, K]
    (or of its linear block scales when `num_elts_per_sf` is given), memoized in
    `_cache_permute_indices` by (shape, tile, sfv, device) like
    `_maybe_get_cached_w3_w1_permute_indices`."""
    _check_cache(_cache_permute_indices)
    _check_tensor("dst_w2_weight", dst_w2_weight)
    key = (
        "w2",
        tuple(dst_w2_weight.shape),
        epilogue_tile_m,
        num_elts_per_sf,
        dst_w2_weight.device,
    )
    perm = _cache_permute_indices.get(key)
    if perm is None:
        if num_elts_per_sf is None:
            perm = get_shuffle_matrix_a_row_indices(dst_w2_weight, epilogue_tile_m)
        else:
            perm = get_shuffle_matrix_sf_a_row_indices(
                dst_w2_weight, epilogue_tile_m, num_elts_per_sf
            )
        _cache_permute_indices[key] = perm
    return perm


# ---- BlockMajorK -------------------------------------------------------------------------------------


def _check_block_k(block_k: int) -> None:
    if not isinstance(block_k, int) or block_k <= 0:
        raise ValueError(f"blockK must be a positive int, got {block_k!r}")


def convert_to_block_layout(input_tensor: Tensor, blockK: int) -> Tensor:
    """[..., M, K] -> [..., K / blockK, M, blockK] contiguous (K % blockK == 0)."""
    _check_tensor("input_tensor", input_tensor, 2)
    _check_block_k(blockK)
    m, k = input_tensor.shape[-2], input_tensor.shape[-1]
    if k % blockK != 0:
        raise ValueError(
            f"input_tensor's last dimension ({k}) must be a multiple of blockK={blockK}"
        )
    v = input_tensor.reshape(*input_tensor.shape[:-2], m, k // blockK, blockK)
    return v.transpose(-3, -2).contiguous()


def convert_from_block_layout(input_tensor: Tensor, blockK: int) -> Tensor:
    """Inverse of `convert_to_block_layout`: [..., K / blockK, M, blockK] -> [..., M, K]."""
    _check_tensor("input_tensor", input_tensor, 3)
    _check_block_k(blockK)
    if input_tensor.shape[-1] != blockK:
        raise ValueError(
            f"input_tensor's last dimension must equal blockK={blockK}, got {input_tensor.shape[-1]}"
        )
    kb, m = input_tensor.shape[-3], input_tensor.shape[-2]
    v = input_tensor.transpose(-3, -2).contiguous()
    return v.reshape(*input_tensor.shape[:-3], m, kb * blockK)
