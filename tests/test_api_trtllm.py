"""The public trtllm_* functions: BF16 full and routed forms, seed-form dispatch, flashinfer's
signatures, and the argument checks of every path (CPU executor).

Each test builds weights with flashinfer's preparation recipe (MajorK, or rows interleaved +
shuffled, BlockMajorK), runs the public function and compares with the float64 computation of
flashinfer's documented math in tests/trtllm_math.py. It never uses the canonical problem or its
reference, so a translation error shows up as a mismatch. The FP8 paths are in
test_api_trtllm_fp8.py, the FP4 paths in test_api_trtllm_fp4.py.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from flashinfer.fused_moe import api_trtllm as api
from flashinfer.fused_moe.enums import (
    ActivationType,
    Fp8QuantizationType,
    RoutingMethodType,
    WeightLayout,
)
from numeric import assert_close_to_reference, rand_float
from trtllm_math import (
    BF16,
    F64,
    RENORM,
    E,
    K,
    T,
    common,
    deepseek_case,
    fp4_weights,
    fp8_per_tensor_case,
    moe64,
    packed_words,
    prepare_stack,
    relu2,
    renormalize_routing,
    silu,
    situ,
    swiglu,
)

# ---- BF16 ------------------------------------------------------------------------------------------


def bf16_case(seed, act=ActivationType.Swiglu, h=128, i=64):
    gated = ActivationType(act).is_gated
    m1 = 2 * i if gated else i
    x = rand_float((T, h), BF16, seed)
    w1 = rand_float((E, m1, h), BF16, seed + 1, h**-0.5)
    w2 = rand_float((E, h, i), BF16, seed + 2, i**-0.5)
    logits = rand_float((T, E), torch.float32, seed + 3)
    return x, w1, w2, logits


def bf16_model(x, w1, w2, ids, w, act, offset=0, n_local=E, delta=None, **params):
    """flashinfer's BF16 math in float64 -> (output [T, H], {(t, j): activated GEMM1 row}).

    ``delta`` [T, k, M1] (gemm1_lora_delta) is added to the GEMM1 output of slot (t, j) before
    the activation; ``params`` are the activation's (a per-expert tensor is indexed by the
    local expert)."""
    out = torch.zeros(ids.shape[0], x.shape[1], dtype=F64)
    hids = {}
    for t in range(ids.shape[0]):
        for j in range(ids.shape[1]):
            e = int(ids[t, j]) - offset
            if not 0 <= e < n_local:
                continue
            a = w1[e].double() @ x[t].double()
            if delta is not None:
                a = a + delta[t, j].double()
            prm = {n: float(v[e]) if isinstance(v, torch.Tensor) else v for n, v in params.items()}
            if act == ActivationType.Swiglu:
                hid = swiglu(a, **prm)
            elif act == ActivationType.Situ:
                hid = situ(a, **prm)
            else:
                hid = relu2(a)
            hids[(t, j)] = hid
            out[t] += float(w[t, j]) * (w2[e].double() @ hid.to(BF16).double())  # bf16 GEMM1 out
    return out, hids


def bf16_expected(x, w1, w2, ids, w, act, offset=0, n_local=E, **params):
    return bf16_model(x, w1, w2, ids, w, act, offset, n_local, **params)[0]


@pytest.mark.parametrize("act", [ActivationType.Swiglu, ActivationType.Relu2])
@pytest.mark.parametrize("prepared", [False, True])
def test_bf16_moe_layouts(act, prepared):
    x, w1, w2, logits = bf16_case(10, act)
    if prepared:  # flashinfer's default: shuffled + BlockMajorK
        g1, g2 = (
            prepare_stack(w1, gated=act.is_gated, block_major_k=True),
            prepare_stack(w2, block_major_k=True),
        )
        assert g1.shape == (E, 128 // 64, w1.shape[1], 64)
        layout = dict()
    else:
        g1, g2 = w1, w2
        layout = dict(use_shuffled_weight=False, weight_layout=WeightLayout.MajorK)
    before = [t.clone() for t in (x, g1, g2, logits)]
    out = api.trtllm_bf16_moe(logits, None, x, g1, g2, **common(),
        routing_method_type=RENORM, activation_type=act, **layout)  # fmt: skip
    assert out.dtype == BF16 and out.shape == x.shape
    ids, w = renormalize_routing(logits)
    assert_close_to_reference(out, bf16_expected(x, w1, w2, ids, w, act), rel_l2=1e-2)
    for a, b in zip(before, (x, g1, g2, logits)):
        assert torch.equal(a.view(torch.uint8), b.view(torch.uint8)), "an input was modified"


def test_bf16_swiglu_clamp_parameters():
    x, w1, w2, logits = bf16_case(20)
    alpha, beta, limit = (torch.full((E,), v) for v in (1.702, 1.0, 0.5))
    out = api.trtllm_bf16_moe(logits, None, x, w1, w2, **common(),
        routing_method_type=RENORM, use_shuffled_weight=False, weight_layout=0,
        gemm1_alpha=alpha, gemm1_beta=beta, gemm1_clamp_limit=limit)  # fmt: skip
    ids, w = renormalize_routing(logits)
    ref = bf16_expected(x, w1, w2, ids, w, ActivationType.Swiglu, alpha=1.702, beta=1.0, limit=0.5)
    assert_close_to_reference(out, ref, rel_l2=1e-2)


@pytest.mark.parametrize("packed", [True, False])
def test_bf16_routed_with_expert_parallelism(packed, gen):
    x, w1, w2, _ = bf16_case(30)
    ids = torch.stack([torch.randperm(E, generator=gen)[:K] for _ in range(T)]).to(torch.int32)
    w = torch.rand(T, K, generator=gen) + 0.1
    ids[0, 1] = E  # an id outside [0, num_experts) is skipped
    offset, n_local = 1, 2  # this rank owns experts 1 and 2
    topk = packed_words(ids, w) if packed else (ids, w)
    out = api.trtllm_bf16_routed_moe(topk, x, w1[offset : offset + n_local],
        w2[offset : offset + n_local], **common(n_local, offset),
        use_shuffled_weight=False, weight_layout=0)  # fmt: skip
    w_used = w.to(BF16).double() if packed else w.double()  # packed weights travel as bf16
    ref = bf16_expected(
        x, w1[offset:], w2[offset:], ids, w_used, ActivationType.Swiglu, offset, n_local
    )
    assert_close_to_reference(out, ref, rel_l2=1e-2)


def test_bf16_without_finalize_and_outputs():
    x, w1, w2, logits = bf16_case(40)
    kw = dict(routing_method_type=RENORM, use_shuffled_weight=False, weight_layout=0)
    replay = torch.full((T + 3, K), -7, dtype=torch.int16)
    gemm2, weights, e2p = api.trtllm_bf16_moe(logits, None, x, w1[:3], w2[:3],
        **common(3), do_finalize=False, routing_replay_out=replay, **kw)  # fmt: skip
    ids, w = renormalize_routing(logits)
    assert gemm2.dtype == BF16 and gemm2.shape == (T * K, x.shape[1])
    assert weights.dtype == BF16 and e2p.dtype == torch.int32 and e2p.shape == (T, K)
    assert torch.equal(replay[:T].long(), ids) and (replay[T:] == -7).all()
    assert_close_to_reference(weights, w, rel_l2=4e-3)
    assert ((e2p >= 0) == (ids < 3)).all(), "non-local slots must map to -1"
    # Finalizing the permuted rows by hand gives the fused output.
    fin = torch.zeros(T, x.shape[1], dtype=F64)
    for t in range(T):
        for j in range(K):
            if e2p[t, j] >= 0:
                fin[t] += w[t, j] * gemm2[e2p[t, j]].double()
    ref = bf16_expected(x, w1, w2, ids, w, ActivationType.Swiglu, n_local=3)
    assert_close_to_reference(fin, ref, rel_l2=1e-2)
    out = torch.empty(T, x.shape[1], dtype=BF16)
    res = api.trtllm_bf16_moe(logits, None, x, w1[:3], w2[:3], **common(3), output=out, **kw)
    assert res is out
    assert_close_to_reference(out, ref, rel_l2=1e-2)


def test_zero_tokens_give_empty_output():
    x, w1, w2, logits = bf16_case(50)
    out = api.trtllm_bf16_moe(logits[:0], None, x[:0], w1, w2, **common(),
        routing_method_type=RENORM, use_shuffled_weight=False, weight_layout=0)  # fmt: skip
    assert out.shape == (0, x.shape[1]) and out.dtype == BF16


# ---- seed-form dispatch ------------------------------------------------------------------------------


def test_seed_form_two_matrix_experts():
    h, i = 64, 32
    x = rand_float((T, h), BF16, 150)
    gating = rand_float((T, E), torch.float32, 151)
    experts = rand_float((E, 2, i, h), BF16, 152, h**-0.5)
    out = api.trtllm_bf16_moe(
        x, gating, experts, num_experts=E, top_k=K, hidden_size=h, intermediate_size=i
    )
    p = torch.softmax(gating.double(), dim=1)
    top = torch.topk(p, K, dim=1)  # Default routing: softmax, top-k, no renormalization

    def expert(t, e, _):
        hid = silu(experts[e, 0].double() @ x[t].double()).to(BF16).double()
        return experts[e, 1].double().T @ hid

    assert_close_to_reference(out, moe64(top.indices, top.values, expert, h), rel_l2=1e-2)


@pytest.mark.parametrize(
    "name, seed_name",
    [
        ("trtllm_bf16_moe", "bf16_seed"),
        ("trtllm_fp8_per_tensor_scale_moe", "fp8_per_tensor_scale_seed"),
        ("trtllm_fp8_block_scale_moe", "fp8_block_scale_seed"),
        ("trtllm_fp4_block_scale_moe", "fp4_block_scale_seed"),
    ],
)
def test_seed_form_detection(name, seed_name, monkeypatch):
    from flashinfer.fused_moe import seed_forms

    calls = []
    monkeypatch.setattr(seed_forms, seed_name, lambda *a, **kw: calls.append((a, kw)) or "seed")
    fn = getattr(api, name)
    x, g = torch.ones(2, 8), torch.ones(2, 4)
    four_d, pair = torch.ones(4, 2, 16, 8), (torch.ones(4, 32, 8), torch.ones(4, 8, 16))
    assert fn(x, g, four_d, num_experts=4, top_k=1) == "seed"  # a 4-D [E, 2, I, H] third argument
    assert fn(x, g, pair, None, num_experts=4, top_k=1) == "seed"  # an (fc1, fc2) pair
    assert fn(x, g, x, hidden_size=8, num_experts=4, top_k=1) == "seed"  # the hidden_size keyword
    assert len(calls) == 3 and calls[2][1]["hidden_size"] == 8
    # The full form's third argument is the 2-D hidden_states: it never reaches the seed path.
    with pytest.raises(TypeError):
        fn(x, g, x)
    assert len(calls) == 3
    params = list(inspect.signature(fn).parameters)
    assert params[:3] == ["routing_logits", "routing_bias", "hidden_states"]


# ---- signatures and bad input ---------------------------------------------------------------------------

FLASHINFER_PARAMS = { "trtllm_bf16_moe": "routing_logits routing_bias hidden_states gemm1_weights gemm2_weights num_experts top_k " "n_group topk_group intermediate_size local_expert_offset local_num_experts routed_scaling_factor " "routing_method_type use_shuffled_weight weight_layout do_finalize enable_pdl tune_max_num_tokens " "activation_type norm_topk_prob routing_replay_out gemm1_alpha gemm1_beta gemm1_clamp_limit output",
    "trtllm_bf16_routed_moe": "topk_ids hidden_states gemm1_weights gemm2_weights num_experts top_k n_group " "topk_group intermediate_size local_expert_offset local_num_experts routed_scaling_factor routing_method_type " "use_shuffled_weight weight_layout do_finalize enable_pdl gemm1_lora_delta tune_max_num_tokens activation_type " "routing_replay_out gemm1_alpha gemm1_beta gemm1_clamp_limit output",
    "trtllm_fp8_per_tensor_scale_moe": "routing_logits routing_bias hidden_states gemm1_weights " "output1_scales_scalar output1_scales_gate_scalar gemm2_weights output2_scales_scalar num_experts top_k " "n_group topk_group intermediate_size local_expert_offset local_num_experts routed_scaling_factor " "use_routing_scales_on_input routing_method_type do_finalize enable_pdl tune_max_num_tokens activation_type " "norm_topk_prob routing_replay_out output",
    "trtllm_fp8_block_scale_routed_moe": "topk_ids routing_bias hidden_states hidden_states_scale gemm1_weights " "gemm1_weights_scale gemm2_weights gemm2_weights_scale num_experts top_k n_group topk_group intermediate_size " "local_expert_offset local_num_experts routed_scaling_factor routing_method_type use_shuffled_weight " "weight_layout do_finalize enable_pdl gemm1_lora_delta output tune_max_num_tokens fp8_quantization_type " "activation_type gemm1_alpha gemm1_beta gemm1_clamp_limit",
    "trtllm_fp4_block_scale_moe": "routing_logits routing_bias hidden_states hidden_states_scale gemm1_weights " "gemm1_weights_scale gemm1_bias gemm1_alpha gemm1_beta gemm1_clamp_limit gemm2_weights gemm2_weights_scale " "gemm2_bias output1_scale_scalar output1_scale_gate_scalar output2_scale_scalar num_experts top_k n_group " "topk_group intermediate_size local_expert_offset local_num_experts routed_scaling_factor routing_method_type " "do_finalize enable_pdl activation_type per_token_scale output tune_max_num_tokens norm_topk_prob " "routing_replay_out num_fused_shared_experts",
    }  # fmt: skip


@pytest.mark.parametrize("name", sorted(FLASHINFER_PARAMS))
def test_signatures_match_flashinfer(name):
    """flashinfer's parameters come first, in order (keyword-only extensions may follow)."""
    params = inspect.signature(getattr(api, name)).parameters
    positional = [p for p, v in params.items() if v.kind == v.POSITIONAL_OR_KEYWORD]
    assert positional == FLASHINFER_PARAMS[name].split()


def bf16_call(**over):
    x, w1, w2, logits = bf16_case(160)
    kw = dict(routing_logits=logits, routing_bias=None, hidden_states=x,
        gemm1_weights=w1, gemm2_weights=w2, **common(), routing_method_type=RENORM,
        use_shuffled_weight=False, weight_layout=0)  # fmt: skip
    kw.update(over)
    return api.trtllm_bf16_moe(**kw)


@pytest.mark.parametrize(
    "over, exc, match",
    [
        (dict(hidden_states=torch.ones(T, 128)), TypeError, "hidden_states"),
        (dict(gemm1_weights=torch.ones(E, 100, 128, dtype=BF16)), ValueError, "gemm1_weights"),
        (dict(gemm2_weights=torch.ones(E, 128, 64)), TypeError, "gemm2_weights"),
        (dict(routing_logits=torch.ones(T, E + 1)), ValueError, "routing_logits"),
        (dict(top_k=E + 1), ValueError, "top_k"),
        (dict(local_expert_offset=2), ValueError, "local_num_experts"),
        (dict(intermediate_size=0), ValueError, "intermediate_size"),
        (dict(routing_method_type=10), ValueError, "routing_method_type"),
        (dict(routing_method_type=RoutingMethodType.Llama4), ValueError, "top_k"),
        (dict(n_group=2, topk_group=1), ValueError, "n_group"),
        (dict(weight_layout=WeightLayout.MajorMn), ValueError, "weight_layout"),
        (dict(weight_layout=WeightLayout.BlockMajorK), ValueError, "gemm1_weights"),
        (
            dict(activation_type=ActivationType.Situ, gemm1_alpha=torch.ones(E, dtype=F64)),
            TypeError,
            "gemm1_alpha",
        ),
        (
            dict(activation_type=ActivationType.Situ, gemm1_clamp_limit=torch.ones(E + 1)),
            ValueError,
            "gemm1_clamp_limit",
        ),
        (
            dict(activation_type=ActivationType.Relu2, gemm1_alpha=torch.ones(E)),
            ValueError,
            "gemm1_alpha",
        ),
        (dict(gemm1_beta=torch.ones(E + 1)), ValueError, "gemm1_beta"),
        (dict(output=torch.empty(T, 64, dtype=BF16)), ValueError, "output"),
        (dict(output=torch.empty(T, 128)), TypeError, "output"),
        (
            dict(routing_replay_out=torch.empty(T, K, dtype=torch.int32)),
            TypeError,
            "routing_replay_out",
        ),
        (
            dict(routing_replay_out=torch.empty(T - 1, K, dtype=torch.int16)),
            ValueError,
            "routing_replay_out",
        ),
        (dict(num_experts=2.0), TypeError, "num_experts"),
    ],
)
def test_bf16_bad_input(over, exc, match):
    with pytest.raises(exc, match=match):
        bf16_call(**over)


def test_unsupported_features_raise_not_implemented():
    xq, xs, w1q, w1s, w2q, w2s = deepseek_case(171)
    with pytest.raises(NotImplementedError, match="per_token_scale"):
        api.trtllm_fp4_block_scale_moe(torch.ones(T, E), None, xq, None, w1q, w1s,
            None, None, None, None, w2q, w2s, None, None, None, None, **common(),
            per_token_scale=torch.ones(T))  # fmt: skip


# ---- Situ and the GEMM1 LoRA delta --------------------------------------------------------------


SITU_PARAMS = {
    "defaults": {},  # trtllm's gemm1_alpha / gemm1_beta default to 1 (cutlass': 4 / 25)
    "kimi_k3": dict(alpha=4.0, beta=25.0),
    "per_expert_clamped": dict(
        alpha=torch.tensor([0.5, 1.0, 2.0, 4.0]),
        beta=torch.tensor([0.75, 1.5, 3.0, 25.0]),
        limit=torch.tensor([0.5, 1.0, 2.0, 0.25]),
    ),  # fmt: skip
}


@pytest.mark.parametrize("params", list(SITU_PARAMS))
@pytest.mark.parametrize("prepared", [False, True])
def test_bf16_situ(params, prepared):
    act = ActivationType.Situ
    x, w1, w2, logits = bf16_case(50, act)
    w1 = w1 * 3  # GEMM1 outputs of a few units: the caps and clamps bite
    prm = SITU_PARAMS[params]
    kw = {f"gemm1_{n if n != 'limit' else 'clamp_limit'}": (v if isinstance(v, torch.Tensor)
          else torch.full((E,), v)) for n, v in prm.items()}  # fmt: skip
    if prepared:
        g1, g2 = (
            prepare_stack(w1, gated=True, block_major_k=True),
            prepare_stack(w2, block_major_k=True),
        )
        layout = {}
    else:
        g1, g2, layout = w1, w2, dict(use_shuffled_weight=False, weight_layout=WeightLayout.MajorK)
    out = api.trtllm_bf16_moe(logits, None, x, g1, g2, **common(), routing_method_type=RENORM,
                              activation_type=10, **layout, **kw)  # fmt: skip
    ids, w = renormalize_routing(logits)
    assert_close_to_reference(out, bf16_expected(x, w1, w2, ids, w, act, **prm), rel_l2=1e-2)


@pytest.mark.parametrize("act", [ActivationType.Swiglu, ActivationType.Situ, ActivationType.Relu2],
                         ids=lambda a: a.name)  # fmt: skip
@pytest.mark.parametrize("do_finalize", [True, False])
def test_bf16_routed_gemm1_lora_delta(act, do_finalize, gen):
    """gemm1_lora_delta bf16 [T, k, M1] is added to the GEMM1 output of slot (t, j) before the
    activation; the call then returns [output, expanded_idx_to_permuted_idx,
    gemm1_activation_output] ([gemm2_output, expert_weights, e2p, gemm1_activation_output]
    without finalize), the activation output bf16 [T*k, I] in permuted rows."""
    i = 64
    x, w1, w2, _ = bf16_case(60, act, i=i)
    m1 = w1.shape[1]
    ids = torch.stack([torch.randperm(E, generator=gen)[:K] for _ in range(T)]).to(torch.int32)
    ids[2, 0] = E + 1  # skipped: no row, no delta
    w = torch.rand(T, K, generator=gen) + 0.1
    offset, n_local = 1, 3  # EP: expert 0 is another rank's
    delta = rand_float((T, K, m1), BF16, 61, 0.5)
    out = api.trtllm_bf16_routed_moe(packed_words(ids, w), x, w1[offset:], w2[offset:],
        **common(n_local, offset, i), use_shuffled_weight=False, weight_layout=0,
        activation_type=act, gemm1_lora_delta=delta, do_finalize=do_finalize)  # fmt: skip
    assert isinstance(out, list) and len(out) == (3 if do_finalize else 4)
    e2p, act_out = out[-2], out[-1]
    w_used = w.to(BF16).double()
    ref, hids = bf16_model(x, w1[offset:], w2[offset:], ids, w_used, act, offset, n_local,
                           delta=delta)  # fmt: skip
    assert e2p.dtype == torch.int32 and e2p.shape == (T, K)
    assert act_out.dtype == BF16 and act_out.shape == (T * K, i)
    kept = sorted(int(r) for r in e2p.flatten() if r >= 0)
    assert kept == list(range(len(hids)))  # the kept slots are exactly the local ones
    for (t, j), hid in hids.items():
        assert_close_to_reference(act_out[int(e2p[t, j])], hid, rel_l2=1e-2, what=f"row {t},{j}")
    assert torch.all(act_out[len(hids) :] == 0)
    assert all(int(e2p[t, j]) == -1 for t in range(T) for j in range(K) if (t, j) not in hids)
    if do_finalize:
        assert_close_to_reference(out[0], ref, rel_l2=1e-2)
    else:
        fin = torch.zeros(T, x.shape[1], dtype=F64)
        for t, j in hids:
            fin[t] += w_used[t, j] * out[0][int(e2p[t, j])].double()
        assert_close_to_reference(fin, ref, rel_l2=1e-2)
    # The same call without the delta gives another output: the delta is not dropped.
    plain = api.trtllm_bf16_routed_moe(packed_words(ids, w), x, w1[offset:], w2[offset:],
        **common(n_local, offset, i), use_shuffled_weight=False, weight_layout=0,
        activation_type=act)  # fmt: skip
    assert (plain.double() - bf16_model(x, w1[offset:], w2[offset:], ids, w_used, act, offset,
            n_local)[0]).norm() < (plain.double() - ref).norm()  # fmt: skip


@pytest.mark.parametrize(
    "delta, exc",
    [
        (torch.zeros(T, K, 64, dtype=BF16), ValueError),  # M1 = 2I = 128
        (torch.zeros(T, K + 1, 128, dtype=BF16), ValueError),
        (torch.zeros(T, K * 128, dtype=BF16), ValueError),
        (torch.zeros(T, K, 128, dtype=torch.int32), TypeError),
        ("not a tensor", TypeError),
    ],
    ids=["M1", "top_k", "2-D", "int32", "str"],
)
def test_gemm1_lora_delta_bad_input(delta, exc):
    x, w1, w2, _ = bf16_case(70)
    ids = torch.zeros(T, K, dtype=torch.int32)
    with pytest.raises(exc, match="gemm1_lora_delta"):
        api.trtllm_bf16_routed_moe(ids, x, w1, w2, **common(), use_shuffled_weight=False,
                                   weight_layout=0, gemm1_lora_delta=delta)  # fmt: skip


def test_routed_without_ids():
    x, w1, w2, _ = bf16_case(175)
    with pytest.raises(TypeError, match="topk_ids"):
        api.trtllm_bf16_routed_moe(None, x, w1, w2, **common(), use_shuffled_weight=False,
                                   weight_layout=0)  # fmt: skip
    with pytest.raises(ValueError, match="topk_ids"):
        api.trtllm_bf16_routed_moe(torch.zeros(T, K + 1, dtype=torch.int32), x, w1, w2, **common(),
                                   use_shuffled_weight=False, weight_layout=0)  # fmt: skip


def test_quantized_paths_bad_input():
    xq, w1q, w2q, out1, gate, out2 = fp8_per_tensor_case(180, True)
    logits = torch.ones(T, E)
    kw = dict(**common(), use_routing_scales_on_input=False, use_shuffled_weight=False)
    with pytest.raises(ValueError, match="output1_scales_scalar"):
        api.trtllm_fp8_per_tensor_scale_moe(logits, None, xq, w1q, None, gate, w2q, out2, **kw)
    with pytest.raises(ValueError, match="output2_scales_scalar"):
        api.trtllm_fp8_per_tensor_scale_moe(logits, None, xq, w1q, out1, gate, w2q, out2[:2], **kw)
    with pytest.raises(TypeError, match="hidden_states"):
        api.trtllm_fp8_per_tensor_scale_moe(
            logits, None, xq.float(), w1q, out1, gate, w2q, out2, **kw
        )
    xq, xs, w1q, w1s, w2q, w2s = deepseek_case(181)
    with pytest.raises(ValueError, match="hidden_states_scale"):  # [T, H/128] instead of [H/128, T]
        api.trtllm_fp8_block_scale_moe(logits, None, xq, xs, w1q, w1s, w2q, w2s, **common(i=128))
    with pytest.raises(ValueError, match="fp8_quantization_type"):
        api.trtllm_fp8_block_scale_moe(logits, None, xq, xs.t(), w1q, w1s, w2q, w2s,
            **common(i=128), fp8_quantization_type=Fp8QuantizationType.NoneFp8)  # fmt: skip
    w1f, _, g1, g1sf = fp4_weights(
        rand_float((E, 128, 128), torch.float32, 182), 16, True, torch.full((E,), 100.0)
    )
    w2f, _, g2, g2sf = fp4_weights(
        rand_float((E, 128, 64), torch.float32, 183), 16, False, torch.full((E,), 100.0)
    )
    with pytest.raises(
        NotImplementedError, match="hidden_states"
    ):  # bf16 activations with NvFP4 weights
        api.trtllm_fp4_block_scale_moe(logits, None, torch.ones(T, 128, dtype=BF16),
            None, g1, g1sf, None, None, None, None, g2, g2sf, None, None, None, None,
            **common())  # fmt: skip


def test_prepared_weights_restored_per_call_warn_once(monkeypatch):
    """Weights in flashinfer's prepared layout are copied back to MajorK on every call: the
    first call says so (pointing at the caller), later ones stay quiet."""
    import warnings

    from flashinfer.fused_moe import trtllm_translate

    monkeypatch.setattr(trtllm_translate, "_warned_restoring", False)
    w = torch.zeros(2, 64, 32, dtype=torch.uint8)
    kw = dict(num_local=2, rows=64, k_bytes=32, shuffled=True, block_major_k=False,
              epilogue_tile_m=128, gated_interleave=False)  # fmt: skip
    with pytest.warns(UserWarning, match="gemm1_weights: flashinfer-prepared"):
        trtllm_translate.restore_weight_stack("gemm1_weights", w, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trtllm_translate.restore_weight_stack("gemm1_weights", w, **kw)
        # MajorK weights are used as they are: no copy, no warning
        out = trtllm_translate.restore_weight_stack("gemm1_weights", w, **{**kw, "shuffled": False})
        assert out is w
