"""The routing helpers of flashinfer.fused_moe.routing on the CPU: ``route`` against
``reference_routing`` for each routing method family, its argument checks, and the packed
(id << 16 | bf16 weight) top-k words of ``pack_topk_ids`` / ``unpack_topk_ids``.
"""

from __future__ import annotations

import pytest
import torch
from flashinfer.fused_moe import RoutingMethodType
from flashinfer.fused_moe.reference import reference_routing
from flashinfer.fused_moe.routing import pack_topk_ids, route, unpack_topk_ids
from numeric import rand_float

# ---- routing helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, k, kw",
    [
        (RoutingMethodType.Default, 2, {}),
        (RoutingMethodType.Renormalize, 3, {}),
        (
            RoutingMethodType.DeepSeekV3,
            4,
            dict(n_group=4, topk_group=2, routed_scaling_factor=2.5, bias=True),
        ),
        (RoutingMethodType.Llama4, 1, {}),
        (RoutingMethodType.RoundRobin, 2, {}),
        (RoutingMethodType.SigmoidRenorm, 2, dict(norm_topk_prob=False)),
    ],
)
def test_route_matches_reference(method, k, kw):
    t, e = 7, 16
    logits = rand_float((t, e), torch.bfloat16, seed=100)
    bias = rand_float((e,), torch.float32, seed=101) if kw.pop("bias", False) else None
    ids, weights = route(logits, k, method, routing_bias=bias, **kw)
    assert ids.dtype == torch.int32 and weights.dtype == torch.float32 and ids.shape == (t, k)
    from flashinfer.fused_moe.problem import RoutingSpec

    spec = RoutingSpec(
        method=method,
        logits=logits,
        bias=bias,
        n_group=kw.get("n_group", 0),
        topk_group=kw.get("topk_group", 0),
        routed_scaling_factor=kw.get("routed_scaling_factor", 1.0),
        norm_topk_prob=kw.get("norm_topk_prob", True),
    )
    ref_ids, ref_w = reference_routing(spec, t, e, k)
    assert torch.equal(ids.long(), ref_ids)
    assert torch.allclose(weights.double(), ref_w, rtol=1e-6, atol=1e-7)


def test_route_repeated_calls_rebind_every_tensor():
    """``route`` keeps one native problem per (device, T, E) and rebinds its tensors per call:
    calls of one shape with new logits, top_k and bias, interleaved with another shape, each
    match the reference, and an earlier call's outputs are never written again."""
    from flashinfer.fused_moe.problem import RoutingSpec

    seen = []
    for n, (t, k, biased) in enumerate([(5, 2, False), (9, 2, False), (5, 3, True), (5, 2, False)]):
        e = 12
        logits = rand_float((t, e), torch.float32, seed=200 + n)
        bias = rand_float((e,), torch.float32, seed=300 + n) if biased else None
        method = RoutingMethodType.DeepSeekV3 if biased else RoutingMethodType.Renormalize
        ids, weights = route(logits, k, method, routing_bias=bias)
        spec = RoutingSpec(method=method, logits=logits, bias=bias)
        ref_ids, ref_w = reference_routing(spec, t, e, k)
        assert torch.equal(ids.long(), ref_ids)
        assert torch.allclose(weights.double(), ref_w, rtol=1e-6, atol=1e-7)
        seen.append((ids, weights, ids.clone(), weights.clone()))
    for ids, weights, ids0, weights0 in seen:
        assert torch.equal(ids, ids0) and torch.equal(weights, weights0)


@pytest.mark.parametrize("id_dtype", [torch.int16, torch.int32, torch.int64])
@pytest.mark.parametrize("w_dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_pack_topk_ids_words(id_dtype, w_dtype):
    """Every word is (id << 16) | bf16_bits(weight) as Python integers compute it, for each id
    and weight dtype, transposed (non-contiguous) inputs and a contiguous [T, k] int32 result."""
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(-32768, 32768, (5, 9), generator=g).to(id_dtype).t()
    weights = (torch.randn(5, 9, generator=g) * 100).to(w_dtype).t()
    packed = pack_topk_ids(ids, weights)
    assert packed.dtype == torch.int32 and packed.shape == (9, 5) and packed.is_contiguous()
    bits = weights.to(torch.bfloat16).view(torch.int16).tolist()
    for row_ids, row_bits, row_words in zip(ids.tolist(), bits, packed.tolist()):
        for i, b, word in zip(row_ids, row_bits, row_words):
            want = ((i & 0xFFFF) << 16) | (b & 0xFFFF)
            assert word == (want - (1 << 32) if want >= 1 << 31 else want)
    # And back, from a transposed (non-contiguous) packed tensor too.
    for words in (packed, packed.t()):
        got_ids, got_w = unpack_topk_ids(words)
        want_ids = ids.long() if words is packed else ids.long().t()
        want_w = (
            weights.to(torch.bfloat16).float()
            if words is packed
            else weights.t().to(torch.bfloat16).float()
        )
        assert got_ids.dtype == torch.int32 and got_w.dtype == torch.float32
        assert torch.equal(got_ids.long(), want_ids)
        assert torch.equal(got_w.view(torch.int32), want_w.view(torch.int32))


def test_route_bad_arguments():
    logits = torch.zeros(3, 8)
    with pytest.raises(ValueError, match="top_k"):
        route(logits, 9)
    with pytest.raises(ValueError, match="top_k"):
        route(logits, 2, RoutingMethodType.Llama4)
    with pytest.raises(TypeError, match="routing_logits"):
        route(logits.to(torch.int32), 2)
    with pytest.raises(ValueError, match="routing_bias"):
        route(logits, 2, RoutingMethodType.DeepSeekV3, routing_bias=torch.zeros(7))
    ids, wts = route(torch.zeros(0, 8), 2)
    assert ids.shape == (0, 2) and wts.shape == (0, 2)


def test_pack_unpack_topk_ids():
    ids = torch.tensor([[0, 5], [255, -1], [32767, 7]], dtype=torch.int32)
    weights = torch.tensor([[0.5, -1.25], [3.0e-3, 0.0], [-7.0, 1e30]], dtype=torch.float32)
    packed = pack_topk_ids(ids, weights)
    assert packed.dtype == torch.int32
    # (id << 16) | bf16 bits: e.g. id 5 with weight -1.25 = bf16 0xBFA0.
    assert int(packed[0, 1]) == (5 << 16) | 0xBFA0
    got_ids, got_w = unpack_topk_ids(packed)
    assert torch.equal(got_ids, ids)
    assert torch.equal(got_w, weights.to(torch.bfloat16).float())
    # -1 with weight 0: the high half all ones, the low half zero.
    assert int(packed[1, 1]) == -(1 << 16)
    with pytest.raises(ValueError, match="topk_ids"):
        pack_topk_ids(torch.tensor([[40000]], dtype=torch.int32), torch.ones(1, 1))
    with pytest.raises(ValueError, match="topk_weights"):
        pack_topk_ids(ids, torch.ones(3, 3))
