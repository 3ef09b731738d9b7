"""The CUDA routing kernel (src/cuda/routing/routing_kernel.cu) against the CPU executor and the reference.

GPU routing must give the CPU's ids and weights bit for bit (both use the same fp32 formulas,
in the same order, with the shared routing_math exp), and agree with the float64 reference
(``reference_routing``) up to fp32 rounding. Also: CUDA-graph capture and replay, the current
torch stream, precomputed (plain and packed) ids, the kernel's limits, inputs left unmodified,
expert counts that are not a multiple of the warp, and precomputed routing read by the layer's
permutation directly (strided, packed, out of range; the one-block path and the chunked one).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from flashinfer import _C
from flashinfer.fused_moe.enums import ActivationType
from flashinfer.fused_moe.enums import RoutingMethodType as R
from flashinfer.fused_moe.problem import MoeProblem, QuantTensor, RoutingSpec
from flashinfer.fused_moe.reference import reference_routing
from flashinfer.fused_moe.routing import pack_topk_ids, route
from flashinfer.fused_moe.runner import run_problem
from gpu_cases import capture_after_warmup
from moe_builders import build_problem

pytestmark = pytest.mark.gpu

METHODS = [m for m in R if m != R.Unspecified]  # iteration skips the upper-case aliases
# E = 40 and 96: E / 32 not a power of two (a lane's last register holds no expert).
SHAPES = [(t, e) for t in (1, 3, 64, 1000) for e in (8, 64, 256)] + [(5, 40), (9, 96)]


def _kwargs(method: R, num_experts: int, gen: torch.Generator) -> dict:
    """Method-specific routing arguments: a bias, groups and a scaling where the method has them."""
    kw = {}
    if method in (R.DeepSeekV3, R.MiniMax2):
        kw["routing_bias"] = torch.randn(num_experts, generator=gen) * 0.5
        kw["routed_scaling_factor"] = 2.5
    if method == R.DeepSeekV3 and num_experts >= 8:
        kw["n_group"], kw["topk_group"] = (8, 4) if num_experts >= 64 else (4, 2)
    if method == R.SigmoidRenorm:
        kw["norm_topk_prob"] = bool(torch.randint(2, (1,), generator=gen))  # both, over the runs
    return kw


def _top_ks(method: R, num_experts: int):
    if method == R.Llama4:
        return [1]
    return [k for k in (1, 2, 8) if k <= num_experts]


def _logits(num_tokens, num_experts, gen, *, ties: bool, dtype=torch.float32):
    if ties:  # small multiples of 1/4: many exact ties, so the lower-index rule is exercised
        x = torch.randint(-6, 7, (num_tokens, num_experts), generator=gen).float() / 4
    else:
        x = torch.randn(num_tokens, num_experts, generator=gen) * 2
    return x.to(dtype)


def _on(kw: dict, device) -> dict:
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}


def _reference(logits, k, method, kw):
    spec = RoutingSpec(
        method=method,
        logits=logits,
        bias=kw.get("routing_bias"),
        n_group=kw.get("n_group", 0),
        topk_group=kw.get("topk_group", 0),
        routed_scaling_factor=kw.get("routed_scaling_factor", 1.0),
        norm_topk_prob=kw.get("norm_topk_prob", True),
    )
    return reference_routing(spec, logits.shape[0], logits.shape[1], k)


def _assert_bitwise(gpu, cpu):
    (gi, gw), (ci, cw) = gpu, cpu
    assert torch.equal(gi.cpu(), ci), "ids differ between GPU and CPU"
    gw = gw.cpu()
    mismatch = (gw.view(torch.int32) != cw.view(torch.int32)).nonzero()
    assert mismatch.numel() == 0, (
        f"weights differ in bits at {mismatch[:4].tolist()}: gpu {gw[tuple(mismatch[0])].item()!r} "
        f"cpu {cw[tuple(mismatch[0])].item()!r}"
    )


@pytest.mark.parametrize("num_tokens,num_experts", SHAPES)
@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_gpu_route_equals_cpu_bitwise_and_reference(method, num_tokens, num_experts, gen):
    for k in _top_ks(method, num_experts):
        for ties in (False, True):
            dtype = torch.bfloat16 if (num_tokens == 64 and not ties) else torch.float32
            logits = _logits(num_tokens, num_experts, gen, ties=ties, dtype=dtype)
            kw = _kwargs(method, num_experts, gen)
            if method == R.DeepSeekV3 and k > kw.get("topk_group", 1) * num_experts // kw.get(
                "n_group", 1
            ):
                continue
            logits_gpu = logits.cuda()
            before = logits_gpu.clone()
            gpu = route(logits_gpu, k, method, **_on(kw, "cuda"))
            torch.cuda.synchronize()
            assert torch.equal(logits_gpu, before), "route modified its input"
            cpu = route(logits, k, method, **kw)
            _assert_bitwise(gpu, cpu)

            # Exact ties resolve to the lower index everywhere; random draws never put two
            # scores within fp32 rounding of each other, so the selections agree exactly.
            ref_ids, ref_w = _reference(logits, k, method, kw)
            assert torch.equal(gpu[0].cpu().long(), ref_ids)
            torch.testing.assert_close(gpu[1].cpu().double(), ref_w, rtol=4e-6, atol=1e-7)


def _native_route(spec: RoutingSpec, num_tokens: int, num_experts: int, top_k: int, device):
    """Routing alone through _C.route_cpu / _C.route_cuda with any RoutingSpec (precomputed too)."""
    ids = torch.full((num_tokens, top_k), 12345, dtype=torch.int32, device=device)
    weights = torch.full((num_tokens, top_k), 7.0, dtype=torch.float32, device=device)
    dim = 16
    dummy = lambda *shape: torch.zeros(1, device=device).expand(*shape)  # noqa: E731
    problem = MoeProblem(
        num_tokens=num_tokens,
        hidden_size=dim,
        intermediate_size=dim,
        num_experts=num_experts,
        local_expert_offset=0,
        local_num_experts=num_experts,
        top_k=top_k,
        routing=spec,
        input=QuantTensor(dummy(num_tokens, dim)),
        w1=QuantTensor(dummy(num_experts, 2 * dim, dim)),
        w2=QuantTensor(dummy(num_experts, dim, dim)),
        activation=ActivationType.Swiglu,
        compute_dtype=torch.float32,
        topk_ids_out=ids,
        topk_weights_out=weights,
    )
    native = problem.to_native()
    if torch.device(device).type == "cpu":
        _C.route_cpu(native, 0)
    else:
        _C.route_cuda(native, torch.cuda.current_stream().cuda_stream)
        torch.cuda.synchronize()
    return ids.cpu(), weights.cpu()


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("weight_dtype", [torch.float32, torch.bfloat16])
def test_gpu_precomputed_routing_equals_cpu(packed, weight_dtype, gen):
    t, e, k = 50, 16, 4
    ids = torch.randint(-3, e + 3, (t, k), generator=gen, dtype=torch.int32)  # some out of range
    weights = torch.rand(t, k, generator=gen).to(weight_dtype)
    results = []
    for device in ("cpu", "cuda"):
        if packed:
            spec = RoutingSpec(topk_ids=pack_topk_ids(ids, weights).to(device), packed=True)
        else:
            spec = RoutingSpec(topk_ids=ids.to(device), topk_weights=weights.to(device))
        results.append(_native_route(spec, t, e, k, device))
    _assert_bitwise(results[1], results[0])
    got_ids, got_w = results[1]
    valid = (ids >= 0) & (ids < e)
    assert torch.equal(got_ids, torch.where(valid, ids, torch.full_like(ids, -1)))
    assert torch.equal(got_w, weights.bfloat16().float() if packed else weights.float())


@pytest.mark.parametrize(
    "method", [R.Renormalize, R.Default, R.DeepSeekV3, R.TopK], ids=lambda m: m.name
)
def test_gpu_route_largest_supported_shape(method, gen):
    """E = 2048 and top_k = 32, the kernel's limits (64 candidates a lane, a full warp of slots)."""
    logits = _logits(40, 2048, gen, ties=method == R.TopK)
    kw = {"n_group": 8, "topk_group": 4} if method == R.DeepSeekV3 else {}
    _assert_bitwise(route(logits.cuda(), 32, method, **kw), route(logits, 32, method, **kw))


def test_gpu_route_strided_logits(gen):
    """A non-contiguous logits view (every other column of a wider matrix) is read through its strides."""
    wide = _logits(33, 128, gen, ties=False)
    logits = wide[:, ::2]
    _assert_bitwise(route(logits.cuda(), 8, R.Renormalize), route(logits, 8, R.Renormalize))


def test_gpu_route_kernel_limits_raise_value_error(gen):
    with pytest.raises(ValueError, match="top_k"):
        route(_logits(2, 64, gen, ties=False).cuda(), 33, R.TopK)
    with pytest.raises(ValueError, match="num_experts"):
        route(_logits(2, 4096, gen, ties=False).cuda(), 4, R.TopK)


def test_gpu_route_mixed_devices_raise_value_error(gen):
    with pytest.raises(ValueError, match="routing_bias|routing.bias"):
        route(_logits(2, 8, gen, ties=False).cuda(), 2, R.DeepSeekV3, routing_bias=torch.zeros(8))


def test_gpu_route_cuda_graph_replay_equals_eager(gen):
    logits = _logits(64, 256, gen, ties=False).cuda()
    kw = {
        "routing_bias": torch.randn(256, generator=gen).cuda(),
        "n_group": 8,
        "topk_group": 4,
        "routed_scaling_factor": 2.5,
    }
    graph, (ids, weights) = capture_after_warmup(lambda: route(logits, 8, R.DeepSeekV3, **kw))
    for _ in range(2):  # new logits each replay, written into the captured input
        logits.copy_(_logits(64, 256, gen, ties=False).cuda())
        graph.replay()
        torch.cuda.synchronize()
        eager_ids, eager_w = route(logits, 8, R.DeepSeekV3, **kw)
        assert torch.equal(ids, eager_ids)
        assert torch.equal(weights.view(torch.int32), eager_w.view(torch.int32))


def test_gpu_route_runs_on_current_stream(gen):
    """Work queued before route() on the current (non-default) stream must be visible to it: a
    launch on any other stream would read the stale logits while the sleep holds the copy back."""
    fresh = _logits(256, 64, gen, ties=False).cuda()
    logits = torch.zeros_like(fresh)
    stream = torch.cuda.Stream()
    torch.cuda.synchronize()
    with torch.cuda.stream(stream):
        torch.cuda._sleep(50_000_000)  # ~tens of ms of GPU time
        logits.copy_(fresh)
        ids, weights = route(logits, 4, R.Renormalize)
    stream.synchronize()
    expect_ids, expect_w = route(fresh, 4, R.Renormalize)
    assert torch.equal(ids, expect_ids)
    assert torch.equal(weights, expect_w)


# ---- precomputed routing inside the layer (read by the permutation, no routing launch) ---------


def _on_gpu(obj):
    """A copy of a problem (or a part of it) with every tensor moved to the GPU."""
    if isinstance(obj, torch.Tensor):
        return obj.cuda()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: _on_gpu(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        return dataclasses.replace(obj, **fields)
    return obj


def _layer_with_routing(spec: RoutingSpec, t: int, e: int, k: int):
    """A small bf16 layer on the GPU routed by ``spec`` (already on the GPU): its outputs."""
    p = _on_gpu(build_problem(T=t, E=e, k=k, H=64, I=32, routing="precomputed", seed=5))
    p = dataclasses.replace(p, routing=spec)
    run_problem(p)
    torch.cuda.synchronize()
    return [p.output.cpu(), p.topk_ids_out.cpu(), p.topk_weights_out.cpu(),
            p.expanded_to_permuted_out.cpu()]  # fmt: skip


@pytest.mark.parametrize("num_tokens", [40, 300], ids=["one_block", "chunked"])
@pytest.mark.parametrize("form", ["strided_f16", "packed"])
def test_gpu_layer_reads_precomputed_routing_directly(num_tokens, form, gen):
    """The permutation decodes the caller's ids itself (strides, packed words, ids out of range
    -> -1) and copies the weights (f16, or the packed bf16 half) for finalize and the routing
    outputs: the layer must equal the same layer fed the clean int32 ids and fp32 weights."""
    t, e, k = num_tokens, 16, 4  # 300 * 4 = 1200 slots: past the one-block path (1024)
    ids = torch.randint(-3, e + 3, (t, k), generator=gen, dtype=torch.int32)
    weights = (torch.rand(t, k, generator=gen) + 0.1).to(torch.float16)
    valid = (ids >= 0) & (ids < e)
    clean_ids = torch.where(valid, ids, torch.full_like(ids, -1)).cuda()
    if form == "packed":
        weights = weights.to(torch.bfloat16)
        spec = RoutingSpec(topk_ids=pack_topk_ids(ids, weights).cuda(), packed=True)
    else:  # every other column of wider tensors: both strides differ from the contiguous ones
        wide_ids = torch.zeros(t, 2 * k, dtype=torch.int32)
        wide_ids[:, ::2] = ids
        wide_w = torch.zeros(t, 2 * k, dtype=torch.float16)
        wide_w[:, ::2] = weights
        spec = RoutingSpec(topk_ids=wide_ids.cuda()[:, ::2], topk_weights=wide_w.cuda()[:, ::2])
    got = _layer_with_routing(spec, t, e, k)
    clean = RoutingSpec(topk_ids=clean_ids, topk_weights=weights.float().cuda())
    want = _layer_with_routing(clean, t, e, k)
    for name, g, w in zip(("output", "topk_ids_out", "topk_weights_out", "map"), got, want):
        assert torch.equal(g.view(torch.int8) if g.is_floating_point() else g,
                           w.view(torch.int8) if w.is_floating_point() else w), name  # fmt: skip
    assert torch.equal(got[1], clean_ids.cpu())
    assert torch.equal(got[2], weights.float())
