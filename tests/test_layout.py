"""Tests of flashinfer.fused_moe.layout: exact index maps on small arange inputs, each helper
against its inverse on random data, and bad-input errors."""

from __future__ import annotations

import pytest
import torch
from flashinfer.fused_moe.layout import (
    convert_from_block_layout,
    convert_to_block_layout,
    get_reorder_rows_for_gated_act_gemm_row_indices,
    get_shuffle_matrix_a_row_indices,
    reorder_rows_for_gated_act_gemm,
    shuffle_matrix_a,
    shuffle_matrix_sf_a,
    undo_reorder_rows_for_gated_act_gemm,
    unshuffle_matrix_a,
    unshuffle_matrix_sf_a,
)
from flashinfer.quantization import block_scale_interleave


def test_reorder_rows_interleaves_up_and_gate():
    x = torch.arange(8 * 3).reshape(8, 3)
    out = reorder_rows_for_gated_act_gemm(x)
    assert out[:, 0].tolist() == [0, 12, 3, 15, 6, 18, 9, 21]
    assert get_reorder_rows_for_gated_act_gemm_row_indices(x).tolist() == [0, 4, 1, 5, 2, 6, 3, 7]
    assert out.data_ptr() != x.data_ptr()
    assert torch.equal(undo_reorder_rows_for_gated_act_gemm(out), x)
    bias = torch.arange(6.0)  # bias rows work as 1-D
    assert reorder_rows_for_gated_act_gemm(bias).tolist() == [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]


def test_reorder_rows_round_trip_random(gen):
    x = torch.randn(64, 16, generator=gen, dtype=torch.bfloat16)
    x_orig = x.clone()
    out, perm = reorder_rows_for_gated_act_gemm(x, return_permutation=True)
    assert torch.equal(out, x[perm])
    assert torch.equal(undo_reorder_rows_for_gated_act_gemm(out), x)
    assert torch.equal(undo_reorder_rows_for_gated_act_gemm(out, perm), x)
    assert torch.equal(x, x_orig)


def test_reorder_rows_by_expert_is_stable(gen):
    x = torch.randn(6, 4, generator=gen)
    experts = torch.tensor([2, 0, 2, 1, 0, 2], dtype=torch.int32)
    out, perm = reorder_rows_for_gated_act_gemm(x, experts, return_permutation=True)
    assert perm.tolist() == [1, 4, 3, 0, 2, 5]
    assert torch.equal(out, x[perm])
    assert torch.equal(reorder_rows_for_gated_act_gemm(x, experts), out)
    assert torch.equal(undo_reorder_rows_for_gated_act_gemm(out, perm), x)
    # Odd row counts are fine for the grouping form.
    assert reorder_rows_for_gated_act_gemm(x[:5], experts[:5]).shape == (5, 4)


def test_reorder_rows_bad_inputs():
    with pytest.raises(ValueError, match="x"):
        reorder_rows_for_gated_act_gemm(torch.zeros(5, 2))
    with pytest.raises(TypeError, match="x"):
        reorder_rows_for_gated_act_gemm([1, 2])
    with pytest.raises(ValueError, match="expert_indices"):
        reorder_rows_for_gated_act_gemm(torch.zeros(4, 2), torch.zeros(3, dtype=torch.int32))
    with pytest.raises(TypeError, match="expert_indices"):
        reorder_rows_for_gated_act_gemm(torch.zeros(4, 2), torch.zeros(4))


@pytest.mark.parametrize(
    "tile,block,first",
    [
        (64, 16, [0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15]),
        (128, 32, [0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29]),
    ],
)
def test_shuffle_matrix_a_index_map(tile, block, first):
    x = torch.arange(64 * 2, dtype=torch.int32).reshape(64, 2)
    idx = get_shuffle_matrix_a_row_indices(x, tile)
    assert idx[:16].tolist() == first
    # Source row s goes to destination (s % (B/8)) * 8 + s // (B/8) within each block.
    for s in range(64):
        base, local = s - s % block, s % block
        d = base + (local % (block // 8)) * 8 + local // (block // 8)
        assert idx[d] == s
    out = shuffle_matrix_a(x, tile)
    assert torch.equal(out, x[idx])
    assert torch.equal(unshuffle_matrix_a(out, tile), x)


def test_shuffle_matrix_a_random_round_trip(gen):
    w = torch.randint(0, 256, (96, 40), generator=gen, dtype=torch.uint8)
    for tile in (64, 128, 256):
        if 96 % (32 if tile % 128 == 0 else 16):
            continue
        assert torch.equal(unshuffle_matrix_a(shuffle_matrix_a(w, tile), tile), w)
    with pytest.raises(ValueError, match="input_tensor"):
        shuffle_matrix_a(torch.zeros(40, 2), 128)
    with pytest.raises(ValueError, match="epilogue_tile_m"):
        shuffle_matrix_a(torch.zeros(32, 2), 0)


def test_shuffle_matrix_sf_a(gen):
    sf = torch.randint(1, 255, (256, 6), generator=gen, dtype=torch.uint8)
    out = shuffle_matrix_sf_a(sf, 128)
    assert torch.equal(out, block_scale_interleave(shuffle_matrix_a(sf, 128)))
    assert out.shape == (256 * 8,)
    assert torch.equal(unshuffle_matrix_sf_a(out, 128, sf.shape), sf)
    sf_bf16 = torch.randn(128, 4, generator=gen).to(torch.bfloat16)
    assert torch.equal(
        unshuffle_matrix_sf_a(shuffle_matrix_sf_a(sf_bf16, 64, 32), 64, (128, 4), 32), sf_bf16
    )
    with pytest.raises(ValueError, match="rows"):
        shuffle_matrix_sf_a(sf[:100], 128)
    with pytest.raises(ValueError, match="num_elts_per_sf"):
        shuffle_matrix_sf_a(sf, 128, 8)
    with pytest.raises(TypeError, match="input_tensor"):
        shuffle_matrix_sf_a(sf.float(), 128)


def test_block_layout_index_map_and_round_trip(gen):
    x = torch.arange(3 * 8).reshape(3, 8)
    out = convert_to_block_layout(x, 4)
    assert out.shape == (2, 3, 4) and out.is_contiguous()
    for kb in range(2):
        for m in range(3):
            for j in range(4):
                assert out[kb, m, j] == x[m, kb * 4 + j]
    assert torch.equal(convert_from_block_layout(out, 4), x)
    w = torch.randint(0, 256, (5, 16, 256), generator=gen, dtype=torch.uint8)
    bw = convert_to_block_layout(w, 128)
    assert bw.shape == (5, 2, 16, 128)
    assert torch.equal(bw[3], convert_to_block_layout(w[3], 128))
    assert torch.equal(convert_from_block_layout(bw, 128), w)
    with pytest.raises(ValueError, match="blockK"):
        convert_to_block_layout(x, 3)
    with pytest.raises(ValueError, match="blockK"):
        convert_to_block_layout(x, 0)
    with pytest.raises(ValueError, match="input_tensor"):
        convert_to_block_layout(torch.zeros(8), 4)
    with pytest.raises(ValueError, match="blockK"):
        convert_from_block_layout(out, 2)
