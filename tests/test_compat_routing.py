"""flashinfer.fused_moe.trtllm_gen_routing: selection against direct formulas, and the
permutation metadata against a loop transcription of the reference's permutation (each local
expert's slots in expanded order, its segment padded to the tile), plus flashinfer's invariants,
expert parallelism, fused shared experts, errors and the signature."""

from __future__ import annotations

import inspect

import pytest
import torch
from flashinfer.fused_moe import RoutingMethodType as R
from flashinfer.fused_moe import route
from flashinfer.fused_moe.trtllm_gen_routing import (
    TrtllmGenRoutingResult,
    max_num_padded_tokens,
    trtllm_gen_routing,
)


def _tie_free_logits(gen, t, e, dtype=torch.float32):
    """A per-row permutation of {0, 1/32, ..}: distinct values, exact in bfloat16."""
    perm = torch.argsort(torch.rand(t, e, generator=gen), dim=1)
    return (perm.float() / 32.0 - e / 64.0).to(dtype)


def _loop_permutation(ids, offset, num_local, tile, max_padded):
    """The reference's permutation, written with Python loops."""
    t, k = ids.shape
    counts = [0] * num_local
    rank = {}
    for tok in range(t):
        for s in range(k):
            e = int(ids[tok, s]) - offset
            if 0 <= e < num_local:
                rank[(tok, s)] = counts[e]
                counts[e] += 1
    starts, total = [], 0
    for c in counts:
        starts.append(total)
        total += -(-c // tile) * tile
    e2p = [[-1] * k for _ in range(t)]
    p2t = [-1] * max_padded
    for (tok, s), r in rank.items():
        p = starts[int(ids[tok, s]) - offset] + r
        e2p[tok][s] = p
        p2t[p] = tok
    batch, limit = [], []
    for e, c in enumerate(counts):
        for j in range(-(-c // tile)):
            batch.append(e)
            limit.append(min(starts[e] + (j + 1) * tile, starts[e] + c))
    return counts, total, e2p, p2t, batch, limit


def _check_against_loops(res: TrtllmGenRoutingResult, global_ids, offset, num_local, tile):
    t, k = global_ids.shape
    max_padded = res.permuted_idx_to_token_idx.numel()
    counts, total, e2p, p2t, batch, limit = _loop_permutation(
        global_ids, offset, num_local, tile, max_padded
    )
    assert res.total_num_padded_tokens.tolist() == [total]
    assert res.expanded_idx_to_permuted_idx.tolist() == e2p
    assert res.permuted_idx_to_token_idx.tolist() == p2t
    n_cta = len(batch)
    assert res.num_non_exiting_ctas.tolist() == [n_cta]
    pad = res.cta_idx_xy_to_batch_idx.numel() - n_cta
    assert pad >= 0
    assert res.cta_idx_xy_to_batch_idx.tolist() == batch + [-1] * pad
    assert res.cta_idx_xy_to_mn_limit.tolist() == limit + [-1] * pad
    for field in res:
        assert field.device == global_ids.device
    for name in TrtllmGenRoutingResult._fields:
        if name != "topk_weights":
            assert getattr(res, name).dtype == torch.int32, name


@pytest.mark.parametrize(
    "t,e,k,tile", [(1, 16, 4, 8), (9, 16, 1, 8), (37, 8, 3, 4), (50, 32, 8, 32)]
)
def test_renormalize_selection_and_permutation(gen, t, e, k, tile):
    logits = _tie_free_logits(gen, t, e)
    res = trtllm_gen_routing(logits, None, R.Renormalize, k, tile_tokens_dim=tile)
    # Renormalize: top-k of the logits (descending), softmax over the k selected
    top = torch.topk(logits.double(), k, dim=1)
    assert res.topk_ids.tolist() == top.indices.tolist()
    assert res.topk_weights.dtype == torch.bfloat16
    want = torch.softmax(top.values, dim=1)
    assert torch.allclose(res.topk_weights.double(), want, rtol=2**-8, atol=0)
    _check_against_loops(res, res.topk_ids, 0, e, tile)
    # flashinfer's invariants: unique in-range slots, round trip through permuted -> token
    e2p = res.expanded_idx_to_permuted_idx.flatten().long()
    assert e2p.unique().numel() == e2p.numel()
    assert (e2p < res.total_num_padded_tokens.item()).all()
    tokens = torch.arange(t).repeat_interleave(k)
    assert torch.equal(res.permuted_idx_to_token_idx.long()[e2p], tokens)
    assert res.permuted_idx_to_token_idx.numel() == max_num_padded_tokens(t, k, e, tile)


def test_sigmoid_and_default_selection(gen):
    logits = _tie_free_logits(gen, 6, 12, torch.bfloat16)
    x = logits.double()
    res = trtllm_gen_routing(logits, None, R.Sigmoid, 3)
    top = torch.topk(torch.sigmoid(x), 3, dim=1)
    assert res.topk_ids.tolist() == top.indices.tolist()
    assert torch.allclose(res.topk_weights.double(), top.values, rtol=2**-8, atol=0)
    res = trtllm_gen_routing(logits, None, R.Default, 2)
    top = torch.topk(torch.softmax(x, dim=1), 2, dim=1)
    assert res.topk_ids.tolist() == top.indices.tolist()
    assert torch.allclose(res.topk_weights.double(), top.values, rtol=2**-8, atol=0)


def test_deepseek_v3_groups_are_route_rounded_to_bf16(gen):
    t, e, k = 11, 32, 4
    logits = _tie_free_logits(gen, t, e)
    bias = (torch.randperm(e, generator=gen).float() - e / 2) / 64
    kw = dict(n_group=4, topk_group=2, routed_scaling_factor=2.5)
    res = trtllm_gen_routing(logits, bias, R.DeepSeekV3, k, tile_tokens_dim=16, **kw)
    ids, w = route(logits, k, R.DeepSeekV3, routing_bias=bias, **kw)
    assert torch.equal(res.topk_ids, ids)
    assert torch.equal(res.topk_weights, w.to(torch.bfloat16))
    # selected experts lie in at most topk_group of the 4 groups
    groups = (res.topk_ids // (e // 4)).tolist()
    assert all(len(set(row)) <= 2 for row in groups)
    _check_against_loops(res, res.topk_ids, 0, e, 16)


def test_expert_parallel_shard(gen):
    t, e, k, tile = 20, 16, 3, 8
    logits = _tie_free_logits(gen, t, e)
    full = trtllm_gen_routing(logits, None, R.TopK, k, tile_tokens_dim=tile)
    res = trtllm_gen_routing(
        logits, None, R.TopK, k, local_expert_offset=4, local_num_experts=6, tile_tokens_dim=tile
    )
    local = (full.topk_ids >= 4) & (full.topk_ids < 10)
    assert torch.equal(res.topk_ids, torch.where(local, full.topk_ids, -1))
    assert torch.equal(res.topk_weights, full.topk_weights)  # weights of every slot
    assert torch.equal(res.expanded_idx_to_permuted_idx < 0, ~local)
    _check_against_loops(res, full.topk_ids, 4, 6, tile)


def test_fused_shared_experts(gen):
    t, e, k, s = 7, 16, 4, 2
    logits = _tie_free_logits(gen, t, e)
    res = trtllm_gen_routing(
        logits, None, R.DeepSeekV3, k, num_fused_shared_experts=s, tile_tokens_dim=8
    )
    assert res.topk_ids.shape == (t, k + s)
    assert res.topk_ids[:, k:].tolist() == [[e, e + 1]] * t
    assert (res.topk_weights[:, k:] == 1).all()
    ids, _ = route(logits, k, R.DeepSeekV3)
    assert torch.equal(res.topk_ids[:, :k], ids)
    _check_against_loops(res, res.topk_ids, 0, e + s, 8)
    assert res.permuted_idx_to_token_idx.numel() == max_num_padded_tokens(t, k + s, e + s, 8)


def test_zero_tokens():
    res = trtllm_gen_routing(torch.zeros(0, 8), None, R.Renormalize, 2)
    assert res.topk_ids.shape == (0, 2) and res.expanded_idx_to_permuted_idx.shape == (0, 2)
    assert res.total_num_padded_tokens.tolist() == [0]
    assert res.num_non_exiting_ctas.tolist() == [0]
    assert res.permuted_idx_to_token_idx.numel() == 0


def test_max_num_padded_tokens():
    # min(E, n) partly filled tiles plus whole tiles for the remaining slots, times the tile
    assert max_num_padded_tokens(1, 8, 256, 8) == 8 * 8
    assert max_num_padded_tokens(100, 2, 16, 8) == (16 + (200 - 16) // 8) * 8
    assert max_num_padded_tokens(0, 4, 16, 8) == 0


def test_invalid_arguments(gen):
    logits = _tie_free_logits(gen, 4, 16)
    with pytest.raises(ValueError, match="top_k"):
        trtllm_gen_routing(logits, None, R.Renormalize, 17)
    with pytest.raises(ValueError, match="power of two"):
        trtllm_gen_routing(logits, None, R.Renormalize, 4, tile_tokens_dim=12)
    with pytest.raises(ValueError, match="concrete"):
        trtllm_gen_routing(logits, None, R.Unspecified, 4)
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        trtllm_gen_routing(logits.half(), None, R.Renormalize, 4)
    with pytest.raises(ValueError, match="2D"):
        trtllm_gen_routing(logits[0], None, R.Renormalize, 4)
    with pytest.raises(ValueError, match="num_experts \\(16\\) elements"):
        trtllm_gen_routing(logits, torch.zeros(8), R.DeepSeekV3, 4)
    with pytest.raises(ValueError, match="DeepSeekV3"):
        trtllm_gen_routing(logits, None, R.Renormalize, 4, num_fused_shared_experts=1)
    with pytest.raises(ValueError, match="expert parallelism"):
        trtllm_gen_routing(
            logits, None, R.DeepSeekV3, 4, num_fused_shared_experts=1, local_num_experts=8
        )
    with pytest.raises(ValueError, match="at most num_experts"):
        trtllm_gen_routing(logits, None, R.TopK, 4, local_expert_offset=8, local_num_experts=9)
    with pytest.raises(ValueError, match="top_k"):
        trtllm_gen_routing(logits, None, R.Llama4, 2)


def test_signature_matches_flashinfer():
    P, KW = inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY
    E = inspect.Parameter.empty
    params = [
        (p.name, p.default, p.kind)
        for p in inspect.signature(trtllm_gen_routing).parameters.values()
    ]
    assert params == [
        ("routing_logits", E, P),
        ("routing_bias", E, P),
        ("routing_method", E, P),
        ("top_k", E, P),
        ("num_fused_shared_experts", 0, KW),
        ("n_group", 0, KW),
        ("topk_group", 0, KW),
        ("local_expert_offset", 0, KW),
        ("local_num_experts", None, KW),
        ("routed_scaling_factor", 1.0, KW),
        ("tile_tokens_dim", 8, KW),
        ("norm_topk_prob", True, KW),
        ("enable_pdl", None, KW),
    ]
    assert TrtllmGenRoutingResult._fields == (
        "topk_ids",
        "topk_weights",
        "total_num_padded_tokens",
        "expanded_idx_to_permuted_idx",
        "permuted_idx_to_token_idx",
        "cta_idx_xy_to_batch_idx",
        "cta_idx_xy_to_mn_limit",
        "num_non_exiting_ctas",
    )


def test_import_paths():
    import flashinfer.fused_moe as fm
    from flashinfer.fused_moe import trtllm_gen_routing as fn

    assert fn is trtllm_gen_routing and fm.TrtllmGenRoutingResult is TrtllmGenRoutingResult
