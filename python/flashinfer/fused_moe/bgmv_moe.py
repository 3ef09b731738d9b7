"""Multi-LoRA for MoE layers: flashinfer's ``bgmv_moe`` family (``flashinfer.fused_moe.bgmv_moe``).

A serving stack keeps LoRA adapters for the experts in weight banks ``[max_loras, num_experts,
rows, cols]`` (A banks ``[L, E, rank, in]``, B banks ``[L, E, out, rank]``), one bank per slice
(FC1: gate and up; FC2: down). For each routed pair ``p`` (token ``sorted_token_ids[p]``, expert
``expert_ids[p]``, adapter ``l = lora_indices[token]``):

    bgmv_moe_shrink:  y[s, p, :] += A_s[l, e] @ x[token]            (x[p] with per_pair_input)
    bgmv_moe_expand:  y[token, cols_s] += w[p] * (B_s[l, e] @ x[s, p])   (finalize=True)
                      y[p, cols_s] = B_s[l, e] @ x[s, p]                 (finalize=False)

``cols_s`` starts at ``slice_start_loc[s]`` and spans ``output_slices[s]`` columns.

Pointer tables. flashinfer's kernels find the banks through int64 tables ``w_ptr[num_slices,
num_experts]`` of raw base addresses that ``fill_w_ptr`` writes, and ``lora_stride`` elements
between adapters. Reading memory at a number a caller wrote is what this library never does: a
wrong number would be an illegal memory access, not an error. ``fill_w_ptr`` here writes the same
addresses into the table (so a table still means what it means in flashinfer) and also records,
on the table object, which bank each slice holds (the bank is kept alive as long as the table).
The bgmv functions read the banks through that record, as tensors:
  * a table that ``fill_w_ptr`` did not fill, a slice it never filled, or a table changed since
    (its torch version counter moved: every in-place write moves it) raises ValueError; tables
    made under ``torch.inference_mode`` keep no version counter, so there a change by other code
    is caught on CPU tables only (their addresses are compared with the record);
  * ``lora_stride`` must be the bank's adapter stride (``fill_w_ptr``'s return value).

Pairs whose adapter is negative are skipped, as in flashinfer; so are pairs whose token, expert
(``>= num_experts`` given to ``fill_w_ptr``) or adapter (``>= max_loras``) is out of range,
instead of reading outside the banks (DESIGN section 6). Arithmetic is fp32 (products and sums
over ``in`` / ``rank``); ``y`` is updated once per element, rounded to its dtype. The
``finalize`` sum over a token's pairs runs in pair order (``index_put_`` with accumulate, which
on CUDA sorts the indices stably): bitwise reproducible. Elements no pair reaches get ``+ 0.0``.

The work is torch operations on the tensors' device (CPU or CUDA; no kernel of this library),
with no host synchronization so that CUDA graphs can capture them (README: which CUDA tests of
tests/test_bgmv_moe.py have run on a GPU). The per-pair weights are gathered in chunks
of at most ``_GATHER_BYTES``, so memory stays bounded at prefill sizes.
"""

from __future__ import annotations

import torch

from .validation import FLOAT_DTYPES, check_bool, check_int, check_tensor

Tensor = torch.Tensor

_GATHER_BYTES = 1 << 26  # gathered adapter matrices per chunk of pairs (64 MiB)
_TABLE_RECORD = "_flashinfer_moe_lora_banks"  # attribute of a table: its _TableRecord
_INDEX_DTYPES = (torch.int32, torch.int64)


class _TableRecord:
    """What ``fill_w_ptr`` wrote into one table: per slice, the bank and its expert count."""

    def __init__(self):
        self.banks: dict[int, tuple[Tensor, int]] = {}
        self.version: int | None = None


def _version(t: Tensor) -> int | None:
    try:
        return t._version
    except RuntimeError:  # inference tensors keep no version counter
        return None


def _bank_addresses(bank: Tensor, num_experts: int) -> Tensor:
    step = bank.stride(1) * bank.element_size()
    return torch.arange(num_experts, dtype=torch.int64, device=bank.device) * step + bank.data_ptr()


def has_bgmv_moe() -> bool:
    """Whether the multi-LoRA MoE functions are available: always, on every device."""
    return True


def fill_w_ptr(w_ptr: Tensor, weights: Tensor, num_experts: int, slice_id: int) -> int:
    """Fill ``w_ptr[slice_id, :num_experts]`` with the address of each expert's adapter 0 in
    ``weights`` (``[max_loras, num_experts, rows, cols]``) and record the bank for the bgmv
    functions (module docstring). Returns the adapter stride in elements (``weights.stride(0)``),
    the ``lora_stride`` those functions take."""
    check_tensor("w_ptr", w_ptr, dtypes=torch.int64, ndim=2)
    check_tensor("weights", weights, dtypes=FLOAT_DTYPES, ndim=4, device=w_ptr.device)
    if weights.shape[0] == 0:
        raise ValueError(
            f"weights: expected at least one adapter, got shape {tuple(weights.shape)}"
        )
    num_experts = check_int("num_experts", num_experts, 1, min(w_ptr.shape[1], weights.shape[1]))
    slice_id = check_int("slice_id", slice_id, 0, w_ptr.shape[0] - 1)
    w_ptr[slice_id, :num_experts] = _bank_addresses(weights, num_experts)
    record = getattr(w_ptr, _TABLE_RECORD, None)
    if record is None:
        record = _TableRecord()
        setattr(w_ptr, _TABLE_RECORD, record)
    record.banks[slice_id] = (weights, num_experts)
    record.version = _version(w_ptr)
    return weights.stride(0)


def table_record(name: str, w_ptr: Tensor) -> _TableRecord:
    """What ``fill_w_ptr`` recorded on the int64 table ``w_ptr`` (ValueError when it filled none)."""
    check_tensor(name, w_ptr, dtypes=torch.int64, ndim=2)
    record = getattr(w_ptr, _TABLE_RECORD, None)
    if record is None:
        raise ValueError(
            f"{name}: expected a table filled by fill_w_ptr (this library reads the banks it "
            "recorded, never addresses written by other code), got one it did not fill"
        )
    return record


def _table_banks(name: str, w_ptr: Tensor, lora_stride: int, stride_name: str) -> list:
    """The banks a table holds, slice by slice, as (bank, num_experts); checks the record."""
    record = table_record(name, w_ptr)
    version = _version(w_ptr)
    if version != record.version:
        raise ValueError(
            f"{name}: the table changed after fill_w_ptr last wrote it (version {version}, "
            f"expected {record.version}); fill it again with fill_w_ptr"
        )
    banks = []
    for s in range(w_ptr.shape[0]):
        if s not in record.banks:
            raise ValueError(f"{name}: slice {s} was never filled by fill_w_ptr")
        bank, num_experts = record.banks[s]
        if bank.stride(0) != lora_stride:
            raise ValueError(
                f"{stride_name}: expected {bank.stride(0)} (the adapter stride of slice {s}'s "
                f"bank, which fill_w_ptr returned), got {lora_stride}"
            )
        if version is None and w_ptr.device.type == "cpu":
            if not torch.equal(w_ptr[s, :num_experts], _bank_addresses(bank, num_experts)):
                raise ValueError(f"{name}: slice {s} changed after fill_w_ptr wrote it")
        banks.append((bank, num_experts))
    return banks


def _pair_routing(sorted_token_ids, expert_ids, lora_indices, num_tokens, device):
    """Checked index tensors of the pairs: (token, expert, adapter) as int64, adapter -1 where the
    token is out of range ([0, num_tokens) and [0, len(lora_indices)); ``num_tokens`` None: the
    latter alone). The caller masks experts and adapters against each bank."""
    check_tensor("sorted_token_ids", sorted_token_ids, dtypes=_INDEX_DTYPES, ndim=1, device=device)
    pairs = sorted_token_ids.shape[0]
    check_tensor("expert_ids", expert_ids, dtypes=_INDEX_DTYPES, shape=(pairs,), device=device)
    check_tensor("lora_indices", lora_indices, dtypes=_INDEX_DTYPES, ndim=1, device=device)
    limit = lora_indices.shape[0] if num_tokens is None else min(num_tokens, lora_indices.shape[0])
    token = sorted_token_ids.long()
    token_ok = (token >= 0) & (token < limit)
    token = torch.where(token_ok, token, 0)
    if limit == 0:
        lora = torch.full_like(token, -1)
    else:
        lora = torch.where(token_ok, lora_indices.long()[token], -1)
    return token, expert_ids.long(), lora


def _chunks(pairs: int, matrix_bytes: int):
    step = max(1, _GATHER_BYTES // max(1, matrix_bytes))
    return [(p0, min(pairs, p0 + step)) for p0 in range(0, pairs, step)]


def _project(bank, num_experts, expert, lora, vectors) -> tuple[Tensor, Tensor]:
    """For each pair, bank[lora, expert] @ vector in fp32, and whether the pair is valid (0 where
    it is not). ``vectors``: [P, cols] (the bank's last dimension)."""
    valid = (lora >= 0) & (lora < bank.shape[0]) & (expert >= 0) & (expert < num_experts)
    l_idx, e_idx = torch.where(valid, lora, 0), torch.where(valid, expert, 0)
    rows = bank.shape[2]
    out = torch.empty(lora.shape[0], rows, dtype=torch.float32, device=vectors.device)
    for p0, p1 in _chunks(lora.shape[0], rows * bank.shape[3] * 4):
        mats = bank[l_idx[p0:p1], e_idx[p0:p1]].float()  # [chunk, rows, cols]
        out[p0:p1] = torch.bmm(mats, vectors[p0:p1].float().unsqueeze(-1)).squeeze(-1)
    return torch.where(valid.unsqueeze(-1), out, 0.0), valid


def bgmv_moe_shrink(
    y: Tensor,
    x: Tensor,
    w_ptr: Tensor,
    sorted_token_ids: Tensor,
    expert_ids: Tensor,
    lora_indices: Tensor,
    lora_stride: int,
    *,
    per_pair_input: bool = False,
) -> None:
    """LoRA-A projection of each pair, added in place: ``y[s, p] += A_s[l, e] @ x[token]``
    (``x[p]`` with ``per_pair_input``). ``y``: ``[num_slices, num_pairs, rank]`` (any float
    dtype), ``x``: ``[num_tokens, in]`` or ``[num_pairs, in]``; the A banks ``[L, E, rank, in]``
    through ``w_ptr`` (``fill_w_ptr``). Skipped pairs (module docstring) leave ``y`` unchanged."""
    check_tensor("y", y, dtypes=FLOAT_DTYPES, ndim=3)
    device = y.device
    check_tensor("x", x, dtypes=FLOAT_DTYPES, ndim=2, device=device)
    per_pair_input = check_bool("per_pair_input", per_pair_input)
    banks = _table_banks("w_ptr", w_ptr, check_int("lora_stride", lora_stride, 0), "lora_stride")
    check_tensor("w_ptr", w_ptr, shape=(y.shape[0], None), device=device)
    pairs = sorted_token_ids.shape[0] if isinstance(sorted_token_ids, Tensor) else None
    check_tensor("y", y, shape=(None, pairs, None))
    token, expert, lora = _pair_routing(
        sorted_token_ids, expert_ids, lora_indices, None if per_pair_input else x.shape[0], device
    )
    if per_pair_input:
        check_tensor("x", x, shape=(pairs, None))
    for s, (bank, num_experts) in enumerate(banks):
        check_tensor(f"A bank of slice {s}", bank, shape=(None, None, y.shape[2], x.shape[1]))
        vectors = x if per_pair_input else x[token]
        delta, valid = _project(bank, num_experts, expert, lora, vectors)
        y[s] = torch.where(valid.unsqueeze(-1), (y[s].float() + delta).to(y.dtype), y[s])


def bgmv_moe_expand(
    y: Tensor,
    x: Tensor,
    w_ptr: Tensor,
    sorted_token_ids: Tensor,
    expert_ids: Tensor,
    topk_weights: Tensor,
    lora_indices: Tensor,
    slice_start_loc: Tensor,
    output_slices: list[int],
    lora_stride: int,
    *,
    finalize: bool = True,
) -> None:
    """LoRA-B projection of each pair into columns ``slice_start_loc[s] + [0, output_slices[s])``
    of ``y``. ``finalize=True``: ``y[token] += topk_weights[p] * (B_s[l, e] @ x[s, p])``, ``y``
    ``[num_tokens, out]`` (the sum over a token's pairs in pair order); ``finalize=False``:
    ``y[p] = B_s[l, e] @ x[s, p]`` (plain store, ``topk_weights`` unused), ``y`` ``[num_pairs,
    out]``. ``x``: ``[num_slices, num_pairs, rank]``; the B banks ``[L, E, out_s, rank]`` through
    ``w_ptr``. ``output_slices``: one width per slice (one value: the same for every slice).
    Skipped pairs leave ``y`` unchanged."""
    check_tensor("y", y, dtypes=FLOAT_DTYPES, ndim=2)
    device = y.device
    finalize = check_bool("finalize", finalize)
    check_tensor("x", x, dtypes=FLOAT_DTYPES, ndim=3, device=device)
    banks = _table_banks("w_ptr", w_ptr, check_int("lora_stride", lora_stride, 0), "lora_stride")
    num_slices, pairs = x.shape[0], x.shape[1]
    check_tensor("w_ptr", w_ptr, shape=(num_slices, None), device=device)
    check_tensor("topk_weights", topk_weights, dtypes=FLOAT_DTYPES, shape=(pairs,), device=device)
    check_tensor("slice_start_loc", slice_start_loc, dtypes=_INDEX_DTYPES, shape=(num_slices,))
    check_tensor("slice_start_loc", slice_start_loc, device=device)
    widths = _slice_widths(output_slices, num_slices)
    check_tensor("sorted_token_ids", sorted_token_ids, ndim=1, shape=(pairs,))
    if not finalize:
        check_tensor("y", y, shape=(pairs, None))
    token, expert, lora = _pair_routing(
        sorted_token_ids, expert_ids, lora_indices, y.shape[0] if finalize else pairs, device
    )
    pair_index = torch.arange(pairs, device=device)
    # Columns outside y are dropped: they index a scratch column past y's last one.
    work = torch.cat([y, y.new_zeros(y.shape[0], 1)], dim=1)
    for s, (bank, num_experts) in enumerate(banks):
        check_tensor(f"B bank of slice {s}", bank, shape=(None, None, widths[s], x.shape[2]))
        delta, valid = _project(bank, num_experts, expert, lora, x[s])
        cols = slice_start_loc[s].long() + torch.arange(widths[s], device=device)
        col_ok = (cols >= 0) & (cols < y.shape[1])
        cols = torch.where(col_ok, cols, y.shape[1]).unsqueeze(0)
        keep = valid.unsqueeze(-1) & col_ok.unsqueeze(0)
        if finalize:
            rows = token.unsqueeze(-1).expand(-1, widths[s])
            add = torch.where(keep, topk_weights.float().unsqueeze(-1) * delta, 0.0)
            total = torch.zeros(work.shape, dtype=torch.float32, device=device)
            total.index_put_((rows, cols.expand_as(rows)), add, accumulate=True)
            work = (work.float() + total).to(y.dtype)  # + 0.0 where no pair lands
        else:
            rows = pair_index.unsqueeze(-1).expand(-1, widths[s])
            index = (rows, cols.expand_as(rows))
            work.index_put_(index, torch.where(keep, delta.to(y.dtype), work[index]))
    y.copy_(work[:, :-1])


def slice_starts(widths: list[int], device) -> Tensor:
    """``slice_start_loc`` for slices side by side, built on ``device`` by fills (no host copy,
    so it can be made while a CUDA graph is captured: ``starts[s] = value`` would copy a CPU
    scalar, which capture refuses, while ``fill_`` passes the value as a kernel argument)."""
    starts = torch.zeros(len(widths), dtype=torch.int64, device=device)
    for s in range(1, len(widths)):
        starts[s].fill_(sum(widths[:s]))
    return starts


def _slice_widths(output_slices, num_slices: int) -> list[int]:
    if isinstance(output_slices, int):
        output_slices = [output_slices]
    if not isinstance(output_slices, (list, tuple)) or len(output_slices) not in (1, num_slices):
        raise ValueError(
            f"output_slices: expected a list of 1 or {num_slices} widths, got {output_slices!r}"
        )
    widths = [check_int(f"output_slices[{i}]", w, 1) for i, w in enumerate(output_slices)]
    return widths * num_slices if len(widths) == 1 else widths


def bgmv_moe(
    x: Tensor,
    lora_a_weights: list[Tensor],
    lora_b_weights: list[Tensor],
    sorted_token_ids: Tensor,
    expert_ids: Tensor,
    lora_indices: Tensor,
    topk_weights: Tensor,
    num_experts: int,
    output_dim: int | None = None,
) -> Tensor:
    """Shrink then expand in one call: ``out[token] = sum over its pairs of topk_weights[p] *
    B_s[l, e] @ (A_s[l, e] @ x[token])`` for each slice ``s``, the slices side by side in the
    columns. Banks ``lora_a_weights[s]`` ``[L, E, rank, in]``, ``lora_b_weights[s]`` ``[L, E,
    out_s, rank]``. Returns ``[num_tokens, output_dim or sum(out_s)]`` in ``x.dtype`` (the
    shrink result rounded to ``x.dtype`` in between, as flashinfer does)."""
    check_tensor("x", x, dtypes=FLOAT_DTYPES, ndim=2)
    if not isinstance(lora_a_weights, (list, tuple)) or not lora_a_weights:
        raise TypeError("lora_a_weights: expected a non-empty list of tensors")
    if not isinstance(lora_b_weights, (list, tuple)) or len(lora_b_weights) != len(lora_a_weights):
        raise TypeError(f"lora_b_weights: expected a list of {len(lora_a_weights)} tensors")
    num_slices = len(lora_a_weights)
    for s in range(num_slices):
        check_tensor(f"lora_a_weights[{s}]", lora_a_weights[s], ndim=4, device=x.device)
        check_tensor(f"lora_b_weights[{s}]", lora_b_weights[s], ndim=4, device=x.device)
    rank = lora_a_weights[0].shape[2]
    widths = [int(b.shape[2]) for b in lora_b_weights]
    total = sum(widths) if output_dim is None else check_int("output_dim", output_dim, 1)
    pairs = sorted_token_ids.shape[0] if isinstance(sorted_token_ids, Tensor) else 0
    y = torch.zeros(x.shape[0], total, dtype=torch.float32, device=x.device)
    # One table per slice and bank: slices of different widths have different adapter strides.
    for s in range(num_slices):
        table_a = torch.zeros(1, num_experts, dtype=torch.int64, device=x.device)
        stride_a = fill_w_ptr(table_a, lora_a_weights[s], num_experts, 0)
        shrunk = torch.zeros(1, pairs, rank, dtype=x.dtype, device=x.device)
        bgmv_moe_shrink(shrunk, x, table_a, sorted_token_ids, expert_ids, lora_indices, stride_a)
        table_b = torch.zeros(1, num_experts, dtype=torch.int64, device=x.device)
        stride_b = fill_w_ptr(table_b, lora_b_weights[s], num_experts, 0)
        start = torch.full((1,), sum(widths[:s]), dtype=torch.int64, device=x.device)
        bgmv_moe_expand(
            y, shrunk, table_b, sorted_token_ids, expert_ids, topk_weights, lora_indices,
            start, [widths[s]], stride_b,
        )  # fmt: skip
    return y.to(x.dtype)
