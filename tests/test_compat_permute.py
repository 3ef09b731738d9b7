"""flashinfer.fused_moe.core's cached weight permutations (what vLLM imports to prepare shuffled
trtllm weights): the indices against a direct computation from the reference's row maps and
against the layout helpers, the caching, and flashinfer's signatures."""

from __future__ import annotations

import inspect

import pytest
import torch
from flashinfer.fused_moe import core, layout
from flashinfer.quantization import block_scale_interleave


def _direct_shuffle(m: int, epilogue_tile_m: int) -> list[int]:
    """Reference section 6.2: block B = 32 if tile % 128 == 0 else 16; inside a block, source
    row s goes to destination (s % (B/8)) * 8 + s // (B/8); returns out-row -> source-row."""
    b = 32 if epilogue_tile_m % 128 == 0 else 16
    per = b // 8
    src_of = [0] * m
    for s in range(m):
        base, local = divmod(s, b)
        dst = base * b + (local % per) * 8 + local // per
        src_of[dst] = s
    return src_of


def _direct_reorder(m: int) -> list[int]:
    """Reference section 6.1: output row 2i = input row i, 2i+1 = input row M/2 + i."""
    out = []
    for i in range(m // 2):
        out += [i, m // 2 + i]
    return out


@pytest.mark.parametrize("m,tile", [(32, 128), (64, 128), (48, 64), (96, 256)])
@pytest.mark.parametrize("gated", [True, False])
def test_w3_w1_indices_match_direct_computation(gen, m, tile, gated):
    w = torch.randint(0, 256, (m, 24), dtype=torch.uint8, generator=gen)
    perm = core._maybe_get_cached_w3_w1_permute_indices({}, w, tile, is_gated_act_gemm=gated)
    shuffle = _direct_shuffle(m, tile)
    reorder = _direct_reorder(m) if gated else list(range(m))
    # shuffle(reorder(w)) row d = reorder(w) row shuffle[d] = w row reorder[shuffle[d]]
    assert perm.tolist() == [reorder[shuffle[d]] for d in range(m)]
    assert perm.dtype == torch.int64
    assert torch.equal(w[perm], _prepared_w31(w, tile, gated))


def _prepared_w31(w, tile, gated):
    src = layout.reorder_rows_for_gated_act_gemm(w) if gated else w
    return layout.shuffle_matrix_a(src, tile)


@pytest.mark.parametrize("m,tile", [(32, 128), (48, 64), (128, 128)])
def test_w2_indices_match_direct_computation(gen, m, tile):
    w = torch.randn(m, 16, generator=gen).to(torch.bfloat16)
    perm = core.get_w2_permute_indices_with_cache({}, w, tile)
    assert perm.tolist() == _direct_shuffle(m, tile)
    assert torch.equal(w[perm], layout.shuffle_matrix_a(w, tile))


@pytest.mark.parametrize("sfv", [16, 32])
def test_scale_variants_match_shuffle_matrix_sf_a(gen, sfv):
    rows, cols = 256, 8  # linear scales [2I, H/sfv]
    sf = torch.randint(0, 256, (rows, cols), dtype=torch.uint8, generator=gen)
    perm1 = core._maybe_get_cached_w3_w1_permute_indices({}, sf, 128, num_elts_per_sf=sfv)
    want1 = layout.shuffle_matrix_sf_a(layout.reorder_rows_for_gated_act_gemm(sf), 128, sfv)
    assert torch.equal(block_scale_interleave(sf[perm1]), want1)
    perm2 = core.get_w2_permute_indices_with_cache({}, sf, 128, num_elts_per_sf=sfv)
    assert torch.equal(block_scale_interleave(sf[perm2]), layout.shuffle_matrix_sf_a(sf, 128, sfv))
    assert perm2.tolist() == _direct_shuffle(rows, 128)


def test_cache_returns_the_same_tensor_and_separates_every_argument(gen):
    cache: dict = {}
    w = torch.randint(0, 256, (256, 16), dtype=torch.uint8, generator=gen)
    a = core._maybe_get_cached_w3_w1_permute_indices(cache, w, 128)
    assert core._maybe_get_cached_w3_w1_permute_indices(cache, w.clone(), 128) is a
    assert len(cache) == 1
    variants = [
        core._maybe_get_cached_w3_w1_permute_indices(cache, w, 64),
        core._maybe_get_cached_w3_w1_permute_indices(cache, w, 128, is_gated_act_gemm=False),
        core._maybe_get_cached_w3_w1_permute_indices(cache, w, 128, num_elts_per_sf=16),
        core._maybe_get_cached_w3_w1_permute_indices(cache, w[:128], 128),
        core.get_w2_permute_indices_with_cache(cache, w, 128),
    ]
    assert len(cache) == 6
    assert all(v is not a for v in variants)
    assert not torch.equal(variants[0], a)  # tile 64 shuffles blocks of 16 rows
    assert core.get_w2_permute_indices_with_cache(cache, w, 128) is variants[-1]


def test_bad_arguments():
    w = torch.zeros(40, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="multiple of 32"):
        core.get_w2_permute_indices_with_cache({}, w, 128)
    with pytest.raises(ValueError, match="M % 128 == 0"):
        core.get_w2_permute_indices_with_cache({}, torch.zeros(64, 8, dtype=torch.uint8), 128, 16)
    with pytest.raises(ValueError, match="num_elts_per_sf"):
        core.get_w2_permute_indices_with_cache({}, torch.zeros(128, 8, dtype=torch.uint8), 128, 8)
    with pytest.raises(TypeError, match="_cache_permute_indices"):
        core.get_w2_permute_indices_with_cache([], torch.zeros(32, 8), 128)
    with pytest.raises(ValueError, match="multiple of 16"):
        core._maybe_get_cached_w3_w1_permute_indices({}, torch.zeros(33, 8), 64)


def _params(fn):
    return [(p.name, p.default, p.kind) for p in inspect.signature(fn).parameters.values()]


P, E = inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty


def test_signatures_match_flashinfer():
    assert _params(core._maybe_get_cached_w3_w1_permute_indices) == [
        ("_cache_permute_indices", E, P),
        ("dst_w3_w1_weight", E, P),
        ("epilogue_tile_m", E, P),
        ("num_elts_per_sf", None, P),
        ("is_gated_act_gemm", True, P),
    ]
    assert _params(core.get_w2_permute_indices_with_cache) == [
        ("_cache_permute_indices", E, P),
        ("dst_w2_weight", E, P),
        ("epilogue_tile_m", E, P),
        ("num_elts_per_sf", None, P),
    ]
    assert _params(core.get_shuffle_matrix_sf_a_row_indices) == [
        ("input_tensor", E, P),
        ("epilogue_tile_m", E, P),
        ("num_elts_per_sf", 16, P),
    ]
