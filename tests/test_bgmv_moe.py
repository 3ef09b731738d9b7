"""Multi-LoRA for MoE (flashinfer.fused_moe.bgmv_moe, lora_delta): fill_w_ptr's tables, the
shrink / expand projections, bgmv_moe and the GEMM1 / GEMM2 delta builders.

Each result is compared with a float64 loop over the pairs computed from exactly the values the
functions see (banks and inputs in their own dtype); small-integer cases must match exactly.
Out-of-range tokens, experts and adapters (and adapter -1) must be skipped, never read. Tables
that fill_w_ptr did not fill, or that changed since, must be refused. Every test runs on the CPU
and, where torch has a CUDA device, on it too (marker gpu), with a CUDA-graph replay there.
"""

from __future__ import annotations

import pytest
import torch
from flashinfer.fused_moe import (
    bgmv_moe,
    bgmv_moe_expand,
    bgmv_moe_gemm1_lora_delta,
    bgmv_moe_gemm2_lora_delta,
    bgmv_moe_shrink,
    fill_w_ptr,
    has_bgmv_moe,
)
from flashinfer.fused_moe.bgmv_moe import slice_starts
from gpu_cases import capture_after_warmup
from numeric import rand_float, small_int

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
        ],
    ),
]
L, E = 3, 5  # adapters, experts


def table(banks, device, num_experts=E):
    """A filled pointer table for ``banks`` (one slice each) and its adapter stride."""
    w_ptr = torch.zeros(len(banks), num_experts, dtype=torch.int64, device=device)
    strides = [fill_w_ptr(w_ptr, b, num_experts, s) for s, b in enumerate(banks)]
    return w_ptr, strides[0]


def routing(device, t=6, pairs=14, seed=0):
    """Pairs with some out-of-range tokens / experts and adapters -1 or past L."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, t, (pairs,), generator=g)
    experts = torch.randint(0, E, (pairs,), generator=g)
    tokens[3], experts[5], experts[6] = t + 2, E, -1  # skipped: token / expert out of range
    lora = torch.randint(0, L, (t,), generator=g)
    lora[1], lora[2] = -1, L  # skipped: no adapter / adapter past the banks
    return tokens.to(device), experts.to(device), lora.to(device)


def valid_pairs(tokens, experts, lora, num_tokens):
    out = []
    for p, (tok, e) in enumerate(zip(tokens.tolist(), experts.tolist())):
        if 0 <= tok < min(num_tokens, lora.numel()) and 0 <= e < E and 0 <= lora[tok] < L:
            out.append((p, tok, e, int(lora[tok])))
    return out


def ref_shrink(y, x, banks, tokens, experts, lora, per_pair_input=False):
    out = y.cpu().double().clone()
    num_tokens = lora.numel() if per_pair_input else x.shape[0]
    for p, tok, e, lo in valid_pairs(tokens.cpu(), experts.cpu(), lora.cpu(), num_tokens):
        row = x[p if per_pair_input else tok].cpu().double()
        for s, bank in enumerate(banks):
            out[s, p] += bank[lo, e].cpu().double() @ row
    return out


def ref_expand(y, x, banks, tokens, experts, weights, lora, starts, finalize):
    out = y.cpu().double().clone()
    num_tokens = y.shape[0] if finalize else x.shape[1]
    for p, tok, e, lo in valid_pairs(tokens.cpu(), experts.cpu(), lora.cpu(), num_tokens):
        for s, bank in enumerate(banks):
            v = bank[lo, e].cpu().double() @ x[s, p].cpu().double()
            for i, col in enumerate(range(starts[s], starts[s] + bank.shape[2])):
                if not 0 <= col < out.shape[1]:
                    continue  # outside y: dropped
                if finalize:
                    out[tok, col] += float(weights[p]) * v[i]
                else:
                    out[p, col] = v[i]
    return out


def test_has_bgmv_moe():
    assert has_bgmv_moe() is True


@pytest.mark.parametrize("device", DEVICES)
def test_fill_w_ptr_writes_each_experts_address(device):
    bank = rand_float((L, E, 4, 8), torch.bfloat16, seed=1).to(device)
    w_ptr = torch.full((2, E + 1), -7, dtype=torch.int64, device=device)
    stride = fill_w_ptr(w_ptr, bank, E, 1)
    assert stride == bank.stride(0)
    step = bank.stride(1) * bank.element_size()
    assert w_ptr[1, :E].tolist() == [bank.data_ptr() + e * step for e in range(E)]
    assert w_ptr[0].tolist() == [-7] * (E + 1) and w_ptr[1, E].item() == -7


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("per_pair_input", [False, True])
def test_shrink_small_integers_exact(device, per_pair_input):
    tokens, experts, lora = routing(device)
    rows = tokens.numel() if per_pair_input else 6
    x = small_int((rows, 16), seed=2).to(device)
    banks = [small_int((L, E, 4, 16), seed=3 + s).to(device) for s in range(2)]
    w_ptr, stride = table(banks, device)
    y = small_int((2, tokens.numel(), 4), seed=9).to(device)
    want = ref_shrink(y, x, banks, tokens, experts, lora, per_pair_input)
    x_before = x.clone()
    bgmv_moe_shrink(y, x, w_ptr, tokens, experts, lora, stride, per_pair_input=per_pair_input)
    assert torch.equal(y.cpu().double(), want)
    assert torch.equal(x, x_before)


@pytest.mark.parametrize("device", DEVICES)
def test_shrink_bf16_close_to_reference(device):
    tokens, experts, lora = routing(device, seed=4)
    x = rand_float((6, 64), torch.bfloat16, seed=5).to(device)
    banks = [rand_float((L, E, 8, 64), torch.bfloat16, seed=6, scale=0.1).to(device)]
    w_ptr, stride = table(banks, device)
    y = rand_float((1, tokens.numel(), 8), torch.bfloat16, seed=7).to(device)
    want = ref_shrink(y, x, banks, tokens, experts, lora)
    bgmv_moe_shrink(y, x, w_ptr, tokens, experts, lora, stride)
    # One rounding to bf16 of an fp32 sum: within a bf16 half-ulp of the float64 value, plus fp32.
    assert torch.allclose(y.cpu().double(), want, rtol=2**-8, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("finalize", [True, False])
@pytest.mark.parametrize("starts", [[1, 6], [8, -1]], ids=["gaps", "past-y"])
def test_expand_small_integers_exact(device, finalize, starts):
    tokens, experts, lora = routing(device, seed=8)
    pairs = tokens.numel()
    widths = [3, 3]  # one lora_stride for every slice: banks of one shape
    banks = [small_int((L, E, w, 4), seed=10 + s).to(device) for s, w in enumerate(widths)]
    w_ptr, stride = table(banks, device)
    x = small_int((2, pairs, 4), seed=12).to(device)
    weights = small_int((pairs,), 1, 3, seed=13).to(device)
    # gaps: columns 0, 4, 5, 9 get nothing; past-y: columns 10 and -1 fall outside y (dropped)
    y = small_int((6 if finalize else pairs, 10), seed=14).to(device)
    want = ref_expand(y, x, banks, tokens, experts, weights, lora, starts, finalize)
    start_loc = torch.tensor(starts, dtype=torch.int64).to(device)
    bgmv_moe_expand(
        y, x, w_ptr, tokens, experts, weights, lora, start_loc, widths, stride, finalize=finalize
    )
    assert torch.equal(y.cpu().double(), want)


@pytest.mark.parametrize("device", DEVICES)
def test_expand_finalize_sums_many_pairs_of_a_token_deterministically(device):
    pairs, t = 64, 3
    g = torch.Generator().manual_seed(15)
    tokens = torch.randint(0, t, (pairs,), generator=g).to(device)
    experts = torch.randint(0, E, (pairs,), generator=g).to(device)
    lora = torch.tensor([0, 1, 2]).to(device)
    banks = [rand_float((L, E, 32, 8), seed=16).to(device)]
    w_ptr, stride = table(banks, device)
    x = rand_float((1, pairs, 8), seed=17).to(device)
    weights = rand_float((pairs,), seed=18).to(device)
    outs = []
    for _ in range(2):
        y = torch.zeros(t, 32, device=device)
        bgmv_moe_expand(
            y, x, w_ptr, tokens, experts, weights, lora, slice_starts([32], device), [32], stride
        )
        outs.append(y)
    assert torch.equal(outs[0], outs[1])
    want = ref_expand(torch.zeros(t, 32), x, banks, tokens, experts, weights, lora, [0], True)
    assert torch.allclose(outs[0].cpu().double(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_bgmv_moe_matches_reference(device):
    tokens, experts, lora = routing(device, seed=19)
    x = small_int((6, 16), seed=20).to(device)
    a = [small_int((L, E, 4, 16), -2, 2, seed=21 + s).to(device) for s in range(2)]
    b = [small_int((L, E, w, 4), -2, 2, seed=23 + s).to(device) for s, w in enumerate([5, 7])]
    weights = small_int((tokens.numel(),), 1, 2, seed=25).to(device)
    inputs = [x, *a, *b, tokens, experts, lora, weights]
    before = [t.clone() for t in inputs]
    got = bgmv_moe(x, a, b, tokens, experts, lora, weights, E)
    assert all(torch.equal(t, u) for t, u in zip(inputs, before)), "an input was modified"
    shrunk = ref_shrink(torch.zeros(2, tokens.numel(), 4), x, a, tokens, experts, lora)
    want = ref_expand(torch.zeros(6, 12), shrunk, b, tokens, experts, weights, lora, [0, 5], True)
    assert got.dtype == x.dtype and torch.equal(got.cpu().double(), want)


def moe_layout(device, t=5, k=3, seed=30):
    g = torch.Generator().manual_seed(seed)
    topk_ids = torch.stack([torch.randperm(E, generator=g)[:k] for _ in range(t)]).to(device)
    lora_ids = torch.tensor([0, -1, 2, 1, 0][:t]).to(device)
    return topk_ids, lora_ids


@pytest.mark.parametrize("device", DEVICES)
def test_gemm1_lora_delta(device):
    topk_ids, lora_ids = moe_layout(device)
    t, k = topk_ids.shape
    h, inter, rank = 16, 6, 4
    x = small_int((t, h), -2, 2, seed=31).to(torch.bfloat16).to(device)
    a = [small_int((L, E, rank, h), -1, 1, seed=32 + s).to(torch.bfloat16).to(device) for s in (0, 1)]  # fmt: skip
    b = [small_int((L, E, inter, rank), -2, 2, seed=34 + s).to(torch.bfloat16).to(device) for s in (0, 1)]  # fmt: skip
    wa, sa = table(a, device)
    wb, sb = table(b, device)
    got = bgmv_moe_gemm1_lora_delta(
        x, wa, sa, wb, sb, topk_ids, lora_ids, rank, inter, scale=0.5, out_dtype=torch.float32
    )
    assert got.shape == (t, k, 2 * inter) and got.dtype == torch.float32
    want = torch.zeros(t, k, 2 * inter, dtype=torch.float64)
    for tok in range(t):
        lo = int(lora_ids[tok])
        for j in range(k):
            e = int(topk_ids[tok, j])
            if lo < 0:
                continue
            for s in (0, 1):
                mid = a[s][lo, e].cpu().double() @ x[tok].cpu().double()
                want[tok, j, s * inter : (s + 1) * inter] = 0.5 * (b[s][lo, e].cpu().double() @ mid)
    assert torch.equal(got.cpu().double(), want)


@pytest.mark.parametrize("device", DEVICES)
def test_gemm2_lora_delta(device):
    topk_ids, lora_ids = moe_layout(device, seed=40)
    t, k = topk_ids.shape
    inter, h, rank = 8, 5, 4
    act = small_int((t * k + 2, inter), -2, 2, seed=41).to(torch.bfloat16).to(device)
    perm = torch.randperm(t * k, generator=torch.Generator().manual_seed(42))
    perm[4], perm[7] = -1, t * k + 9  # an inactive slot and one past the rows: both skipped
    perm = perm.to(torch.int32).to(device)
    weights = small_int((t, k), 1, 2, seed=43).to(device)
    a = [small_int((L, E, rank, inter), -1, 1, seed=44).to(torch.bfloat16).to(device)]
    b = [small_int((L, E, h, rank), -2, 2, seed=45).to(torch.bfloat16).to(device)]
    wa, sa = table(a, device)
    wb, sb = table(b, device)
    got = bgmv_moe_gemm2_lora_delta(
        act, perm, wa, sa, wb, sb, topk_ids, weights, lora_ids, rank, h, out_dtype=torch.float32
    )
    want = torch.zeros(t, h, dtype=torch.float64)
    for tok in range(t):
        lo = int(lora_ids[tok])
        for j in range(k):
            row = int(perm[tok * k + j])
            if lo < 0 or not 0 <= row < act.shape[0]:
                continue
            e = int(topk_ids[tok, j])
            mid = a[0][lo, e].cpu().double() @ act[row].cpu().double()
            want[tok] += float(weights[tok, j]) * (b[0][lo, e].cpu().double() @ mid)
    assert torch.equal(got.cpu().double(), want)


def test_tables_not_filled_or_changed_are_refused():
    bank = rand_float((L, E, 4, 8), seed=50)
    x, y = rand_float((2, 8), seed=51), torch.zeros(1, 2, 4)
    ids = torch.tensor([0, 1])
    lora = torch.tensor([0, 1])
    raw = torch.zeros(1, E, dtype=torch.int64)
    raw[0] = bank.data_ptr()
    with pytest.raises(ValueError, match="w_ptr: expected a table filled by fill_w_ptr"):
        bgmv_moe_shrink(y, x, raw, ids, ids, lora, bank.stride(0))
    w_ptr, stride = table([bank], "cpu")
    w_ptr[0, 1] += 64
    with pytest.raises(ValueError, match="w_ptr: the table changed"):
        bgmv_moe_shrink(y, x, w_ptr, ids, ids, lora, stride)
    w_ptr, stride = table([bank], "cpu")
    with pytest.raises(ValueError, match="lora_stride: expected"):
        bgmv_moe_shrink(y, x, w_ptr, ids, ids, lora, stride + 1)
    two = torch.zeros(2, E, dtype=torch.int64)
    fill_w_ptr(two, bank, E, 0)
    with pytest.raises(ValueError, match="slice 1 was never filled"):
        bgmv_moe_shrink(torch.zeros(2, 2, 4), x, two, ids, ids, lora, stride)
    with torch.inference_mode():  # no version counter: a CPU table is compared with the record
        w_ptr, stride = table([bank], "cpu")
        w_ptr[0, 2] = 0
        with pytest.raises(ValueError, match="slice 0 changed"):
            bgmv_moe_shrink(y, x, w_ptr, ids, ids, lora, stride)


def test_bad_arguments_name_the_argument():
    bank = rand_float((L, E, 4, 8), seed=52)
    w_ptr, stride = table([bank], "cpu")
    x, ids, lora = rand_float((2, 8), seed=53), torch.tensor([0, 1]), torch.tensor([0, 1])
    with pytest.raises(TypeError, match="w_ptr: expected dtype int64"):
        fill_w_ptr(torch.zeros(1, E), bank, E, 0)
    with pytest.raises(ValueError, match="num_experts"):
        fill_w_ptr(torch.zeros(1, E, dtype=torch.int64), bank, E + 1, 0)
    with pytest.raises(ValueError, match="slice_id"):
        fill_w_ptr(torch.zeros(1, E, dtype=torch.int64), bank, E, 1)
    with pytest.raises(ValueError, match="y: expected shape"):
        bgmv_moe_shrink(torch.zeros(1, 3, 4), x, w_ptr, ids, ids, lora, stride)
    with pytest.raises(ValueError, match="A bank of slice 0"):
        bgmv_moe_shrink(torch.zeros(1, 2, 4), rand_float((2, 9)), w_ptr, ids, ids, lora, stride)
    with pytest.raises(TypeError, match="expert_ids: expected dtype"):
        bgmv_moe_shrink(torch.zeros(1, 2, 4), x, w_ptr, ids, ids.float(), lora, stride)
    with pytest.raises(ValueError, match="output_slices"):
        bgmv_moe_expand(
            torch.zeros(2, 8), torch.zeros(1, 2, 8), w_ptr, ids, ids, torch.ones(2), lora,
            torch.zeros(1, dtype=torch.int64), [4, 4], stride,
        )  # fmt: skip
    with pytest.raises(ValueError, match="weights: expected at least one adapter"):
        fill_w_ptr(torch.zeros(1, E, dtype=torch.int64), rand_float((0, E, 4, 8)), E, 0)
    with pytest.raises(TypeError, match="lora_a_weights"):
        bgmv_moe(x, bank, [bank], ids, ids, lora, torch.ones(2), E)
    with pytest.raises(TypeError, match="lora_b_weights"):
        bgmv_moe(x, [bank], [], ids, ids, lora, torch.ones(2), E)
    topk, lo = torch.tensor([[0], [1]]), torch.tensor([0, 0])
    wa, sa = table([bank, bank], "cpu")
    with pytest.raises(ValueError, match="lora_dtype: expected the dtype of the banks"):
        bgmv_moe_gemm1_lora_delta(x, wa, sa, wa, sa, topk, lo, 4, 4, lora_dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="w_ptr_a: expected 2 slice"):
        bgmv_moe_gemm1_lora_delta(x, w_ptr, stride, wa, sa, topk, lo, 4, 4)
    with pytest.raises(ValueError, match="w_ptr_b: expected a table filled by fill_w_ptr"):
        bgmv_moe_gemm1_lora_delta(x, wa, sa, torch.zeros(2, E, dtype=torch.int64), sa, topk, lo,
                                  4, 4, lora_dtype=torch.float32)  # fmt: skip
    act = rand_float((2, 8), seed=54)
    with pytest.raises(ValueError, match="expanded_idx_to_permuted_idx: expected shape"):
        bgmv_moe_gemm2_lora_delta(act, torch.zeros(3, dtype=torch.int32), w_ptr, stride, w_ptr,
                                  stride, topk, torch.ones(2, 1), lo, 4, 8,
                                  lora_dtype=torch.float32)  # fmt: skip


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("which", ["gemm1_delta", "gemm2_delta", "bgmv_moe"])
def test_cuda_graph_replay_equals_eager(which):
    """Each composite call captured in a CUDA graph (no host copy, no sync) replays to the eager
    result, with fresh input values copied in before the replay."""
    device = "cuda"
    topk_ids, lora_ids = moe_layout(device, seed=60)
    t, k = topk_ids.shape
    x = rand_float((t, 32), torch.bfloat16, seed=61).to(device)
    act = rand_float((t * k, 32), torch.bfloat16, seed=66).to(device)
    perm = torch.randperm(t * k, generator=torch.Generator().manual_seed(67))
    perm = perm.to(torch.int32).to(device)
    weights = rand_float((t, k), torch.float32, seed=68).to(device)
    a = [rand_float((L, E, 4, 32), torch.bfloat16, seed=62 + s).to(device) for s in (0, 1)]
    b = [rand_float((L, E, 16, 4), torch.bfloat16, seed=64 + s).to(device) for s in (0, 1)]
    wa, sa = table(a, device)
    wb, sb = table(b, device)
    wa2, sa2 = table(a[:1], device)
    wb2, sb2 = table(b[:1], device)
    pairs_tok = torch.arange(t * k, device=device) // k
    pairs_exp = topk_ids.reshape(-1)

    def call():
        if which == "gemm1_delta":
            return bgmv_moe_gemm1_lora_delta(x, wa, sa, wb, sb, topk_ids, lora_ids, 4, 16)
        if which == "gemm2_delta":
            return bgmv_moe_gemm2_lora_delta(
                act, perm, wa2, sa2, wb2, sb2, topk_ids, weights, lora_ids, 4, 16
            )
        return bgmv_moe(x, a, b, pairs_tok, pairs_exp, lora_ids, weights.reshape(-1), E)

    graph, captured = capture_after_warmup(call)
    for src in (x, act, weights):  # new values in place: the replay must read them
        src.copy_(rand_float(tuple(src.shape), src.dtype, seed=69).to(device))
    eager = call()
    captured.fill_(float("nan"))  # poisoned: the replay must write every element
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(captured, eager)


def test_is_trtllm_moe_supported_lists_the_pairs_the_trtllm_functions_run():
    from flashinfer.fused_moe import is_trtllm_moe_supported
    from flashinfer.tllm_enums import DtypeTrtllmGen as D

    for pair in [(D.Bfloat16, D.Bfloat16), (D.E4m3, D.E4m3), (D.MxE4m3, D.MxE4m3),
                 (D.E2m1, D.E2m1), (D.MxE2m1, D.Bfloat16), (D.MxE2m1, D.MxE4m3),
                 (D.MxInt4, D.Bfloat16)]:  # fmt: skip
        assert is_trtllm_moe_supported(*pair) is True, pair
    for pair in [(D.Bfloat16, D.E4m3), (D.E4m3, D.Bfloat16), (D.MxE2m1, D.MxE2m1)]:
        assert is_trtllm_moe_supported(*pair, quant_method="any") is False, pair
    with pytest.raises(TypeError, match="dtype_act"):
        is_trtllm_moe_supported(D.Bfloat16, "bf16")
