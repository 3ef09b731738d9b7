"""Canonical MoeProblems for the executor tests, built directly (no API translation).

``build_problem`` makes one problem of python/flashinfer/fused_moe/problem.py with every output
poisoned (tests/numeric.py), from short format names: ``make_weights`` (float, e4m3 with any
block, NVFP4 packed/unpacked and linear/swizzled, MXFP4), ``make_act_quant`` (every activation
quantization mode), ``make_routing`` (every routing method, precomputed and packed ids). With
``exact=True`` the data are small integers / dyadic values for the exact tier. Also the random
routing ids and weights of the API tests (``routing_inputs``).
"""

from __future__ import annotations

import torch
from flashinfer.fused_moe.enums import ActivationType as Act
from flashinfer.fused_moe.enums import ActQuant, ElemFormat, ScaleFormat, ScaleLayout
from flashinfer.fused_moe.enums import RoutingMethodType as RM
from flashinfer.fused_moe.problem import ActQuantSpec, MoeProblem, QuantTensor, RoutingSpec
from numeric import poison, rand_float, small_int

E4M3 = torch.float8_e4m3fn


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (each builder call is reproducible on its own)."""
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def swizzle_128x4(linear: torch.Tensor) -> torch.Tensor:
    """[E, R, C] uint8 scales -> the flat 128x4-tile buffer of docs/semantics.md. Padding bytes
    are 0xFF (NaN in e4m3 and ue8m0), so an executor that reads one produces NaN."""
    n, rows, cols = linear.shape
    rp, cp = _cdiv(rows, 128) * 128, _cdiv(cols, 4) * 4
    r = torch.arange(rows).view(rows, 1)
    c = torch.arange(cols).view(1, cols)
    off = ((r // 128) * (cp // 4) + c // 4) * 512 + (r % 32) * 16 + ((r % 128) // 32) * 4 + c % 4
    out = torch.full((n * rp * cp,), 0xFF, dtype=torch.uint8)
    for e in range(n):
        out[e * rp * cp + off.reshape(-1)] = linear[e].reshape(-1)
    return out


def _pow2(shape, lo: int, hi: int, seed: int) -> torch.Tensor:
    return torch.pow(
        2.0, torch.randint(lo, hi + 1, tuple(shape), generator=seeded_generator(seed)).float()
    )


def _fp4_codes(shape, exact: bool, seed: int) -> torch.Tensor:
    """Random e2m1 codes (one per byte). Exact tier: magnitudes 0.5..2 only (codes 1..4)."""
    g = seeded_generator(seed)
    if not exact:
        return torch.randint(0, 16, tuple(shape), generator=g, dtype=torch.uint8)
    mag = torch.randint(1, 5, tuple(shape), generator=g, dtype=torch.uint8)
    return mag | (torch.randint(0, 2, tuple(shape), generator=g, dtype=torch.uint8) << 3)


def make_weights(fmt: str, n: int, m: int, k: int, seed: int, exact: bool = False) -> QuantTensor:
    """A weight stack [n, m, k] in format ``fmt``:
    f32 / f16 / bf16; e4m3:BRxBC (block rows x cols of the scale, 0 = whole dimension);
    nvfp4:{packed,unpacked}:{linear,swizzled} (e4m3 scales per 1x16 + global); mxfp4 (ue8m0 1x32)."""
    if fmt in ("f32", "f16", "bf16"):
        dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[fmt]
        data = (
            small_int((n, m, k), -2, 2, dtype, seed)
            if exact
            else rand_float((n, m, k), dtype, seed, scale=k**-0.5)
        )
        return QuantTensor(data=data)
    if fmt.startswith("e4m3:"):
        br, bc = (int(v) for v in fmt[5:].split("x"))
        sshape = (n, _cdiv(m, br) if br else 1, _cdiv(k, bc) if bc else 1)
        if exact:
            data, scale = small_int((n, m, k), -4, 4, E4M3, seed), _pow2(sshape, -1, 1, seed + 1)
        else:
            data = rand_float((n, m, k), torch.float32, seed, scale=16.0).clamp(-448, 448).to(E4M3)
            scale = rand_float(sshape, torch.float32, seed + 1).abs() / (16.0 * k**0.5)
        return QuantTensor(
            data=data, format=ElemFormat.E4M3, scale=scale, block_rows=br, block_cols=bc
        )
    if fmt.startswith("nvfp4:") or fmt == "mxfp4":
        mx = fmt == "mxfp4"
        packed = mx or fmt.split(":")[1] == "packed"
        swizzled = not mx and fmt.split(":")[2] == "swizzled"
        codes = _fp4_codes((n, m, k), exact, seed)
        if packed:
            assert k % 2 == 0, "packed e2m1 needs an even K"
            data = codes[..., 0::2] | (codes[..., 1::2] << 4)
        else:  # the high nibble must be ignored: fill it with garbage
            data = codes | (
                torch.randint(
                    0, 16, codes.shape, generator=seeded_generator(seed + 9), dtype=torch.uint8
                )
                << 4
            )
        block = 32 if mx else 16
        sshape = (n, m, _cdiv(k, block))
        if mx:
            lo, hi = (126, 128) if exact else (122, 126)
            scale = torch.randint(
                lo, hi + 1, sshape, generator=seeded_generator(seed + 1), dtype=torch.uint8
            )
            gscale = None
        else:
            s = (
                _pow2(sshape, -1, 1, seed + 1)
                if exact
                else rand_float(sshape, torch.float32, seed + 1).abs().clamp(0.25, 4.0)
            )
            scale = s.to(E4M3).view(torch.uint8)
            gscale = (
                _pow2((n,), -1, 0, seed + 2)
                if exact
                else (rand_float((n,), torch.float32, seed + 2).abs() + 0.5) / (3.0 * k**0.5)
            )
        return QuantTensor(
            data=data,
            format=ElemFormat.E2M1Packed if packed else ElemFormat.E2M1Unpacked,
            scale=swizzle_128x4(scale) if swizzled else scale,
            scale_format=ScaleFormat.UE8M0 if mx else ScaleFormat.E4M3,
            scale_layout=ScaleLayout.Swizzled128x4 if swizzled else ScaleLayout.Linear,
            block_rows=1,
            block_cols=block,
            global_scale=gscale,
        )
    raise ValueError(f"unknown weight format {fmt!r}")


def make_act_quant(mode: str, n_local: int, amax: float, seed: int) -> ActQuantSpec:
    """none / fp8_static / fp8_static_per_expert / fp8_token / fp8_group:G / mxfp8 / nvfp4 /
    nvfp4_per_expert. ``amax`` is the expected magnitude, used to pick static scales."""
    if mode == "none":
        return ActQuantSpec()
    if mode.startswith("fp8_static"):
        per_expert = mode.endswith("per_expert")
        s = (torch.linspace(0.8, 1.2, n_local) if per_expert else torch.tensor(1.0)) * amax / 448
        return ActQuantSpec(mode=ActQuant.Fp8Static, static_scale=s.float())
    if mode == "fp8_token":
        return ActQuantSpec(mode=ActQuant.Fp8PerToken)
    if mode.startswith("fp8_group:"):
        return ActQuantSpec(mode=ActQuant.Fp8PerGroup, group_size=int(mode.split(":")[1]))
    if mode == "mxfp8":
        return ActQuantSpec(mode=ActQuant.MxFp8)
    if mode.startswith("nvfp4"):
        per_expert = mode.endswith("per_expert")
        g = (
            (torch.linspace(0.9, 1.1, n_local) if per_expert else torch.tensor(1.0))
            * amax
            / (6 * 448)
        )
        return ActQuantSpec(mode=ActQuant.NvFp4, static_scale=g.float())
    raise ValueError(f"unknown activation quantization {mode!r}")


def make_routing(name: str, t: int, e: int, k: int, seed: int, exact: bool = False) -> RoutingSpec:
    """Routing from logits for every RoutingMethodType, or precomputed ids (plain / packed,
    with some ids outside [0, E) that must be skipped)."""
    logits = rand_float((t, e), torch.float32, seed, scale=2.0)
    bias = rand_float((e,), torch.float32, seed + 1, scale=0.5)
    if name in ("precomputed", "precomputed_bf16", "packed", "precomputed_ones"):
        g = seeded_generator(seed)
        # ids from [-1, E + 2): distinct per token, some out of range (skipped)
        lo = 0 if exact else -1
        ids = torch.stack([torch.randperm(e + 2 - lo, generator=g)[:k] + lo for _ in range(t)])
        ids = ids.reshape(t, k).to(torch.int32)
        w = torch.ones(t, k) if exact else rand_float((t, k), torch.float32, seed + 2).abs()
        if name == "packed":
            bits = w.to(torch.bfloat16).view(torch.int16).to(torch.int64) & 0xFFFF
            word = (ids.to(torch.int64) << 16) | bits
            return RoutingSpec(method=RM.Default, topk_ids=word.to(torch.int32), packed=True)
        if name == "precomputed_bf16":
            w = w.to(torch.bfloat16)
        return RoutingSpec(method=RM.Default, topk_ids=ids, topk_weights=w)
    table = {
        "Default": dict(method=RM.Default),
        "Renormalize": dict(method=RM.Renormalize),
        "Renormalize_bf16_logits": dict(method=RM.Renormalize, logits=logits.to(torch.bfloat16)),
        "RenormalizeNaive": dict(method=RM.RenormalizeNaive),
        "TopK": dict(method=RM.TopK),
        "TopK_f16_logits": dict(method=RM.TopK, logits=logits.to(torch.float16)),
        "Sigmoid": dict(method=RM.Sigmoid),
        "TopKSigmoid": dict(method=RM.TopKSigmoid),
        "SigmoidRenorm": dict(method=RM.SigmoidRenorm),
        "SigmoidRenorm_no_norm": dict(method=RM.SigmoidRenorm, norm_topk_prob=False),
        "MiniMax2": dict(method=RM.MiniMax2, bias=bias, routed_scaling_factor=1.5),
        "DeepSeekV3": dict(method=RM.DeepSeekV3, bias=bias, routed_scaling_factor=2.5),
        "DeepSeekV3_grouped": dict(
            method=RM.DeepSeekV3,
            bias=bias.to(torch.bfloat16),
            n_group=4,
            topk_group=2,
            routed_scaling_factor=2.5,
        ),
        "Llama4": dict(method=RM.Llama4),
        "RoundRobin": dict(method=RM.RoundRobin),
    }
    kw = dict(logits=logits)
    kw.update(table[name])
    return RoutingSpec(**kw)


def build_problem(
    *,
    T=7,
    H=40,
    I=24,  # noqa: E741  (I: intermediate size, as in the docs)
    E=8,
    k=2,
    activation=Act.Swiglu,
    weights="bf16",
    in_dtype=torch.bfloat16,
    input_quant="none",
    inter_quant="none",
    routing="Renormalize",
    offset=0,
    local=None,
    capacity=0,
    biases=False,
    act_params=False,
    lora=False,
    inter_out=False,
    out_dtype=torch.bfloat16,
    compute=torch.bfloat16,
    rw_on_input=False,
    permuted=False,
    exact=False,
    seed=0,
) -> MoeProblem:
    """A canonical problem with poisoned outputs (all optional routing outputs requested).

    ``act_params``: per-expert SwigluBias / SwigluStep parameters, or for Situ its caps (a few
    small enough to bite on unit-sized GEMM1 outputs) and clamp limits. ``lora``: a GEMM1 delta
    [T, k, M1] (bf16; small integers when ``exact``). ``inter_out``: a poisoned f32
    ``inter_output`` [T*k, I]."""
    local = E - offset if local is None else local
    gated = Act(activation).is_gated
    m1 = 2 * I if gated else I
    x = small_int((T, H), -2, 2, in_dtype, seed) if exact else rand_float((T, H), in_dtype, seed)
    p = MoeProblem(
        num_tokens=T,
        hidden_size=H,
        intermediate_size=I,
        num_experts=E,
        local_expert_offset=offset,
        local_num_experts=local,
        top_k=k,
        routing=make_routing(routing, T, E, k, seed + 10, exact=exact),
        input=QuantTensor(data=x),
        w1=make_weights(weights, local, m1, H, seed + 20, exact),
        w2=make_weights(weights, local, H, I, seed + 30, exact),
        expert_capacity=capacity,
        input_quant=make_act_quant(input_quant, local, 3.0, seed + 40),
        inter_quant=make_act_quant(inter_quant, local, 2.0, seed + 50),
        activation=Act(activation),
        routing_weight_on_input=rw_on_input,
        compute_dtype=compute,
    )
    if biases:
        p.w1_bias = rand_float((local, m1), torch.float32, seed + 60, scale=0.3)
        p.w2_bias = rand_float((local, H), torch.bfloat16, seed + 61, scale=0.3)
    if act_params and Act(activation) == Act.Situ:
        p.act_alpha = torch.linspace(0.5, 3.0, local)  # the gate's tanh cap
        p.act_beta = -torch.linspace(0.25, 2.0, local)  # the linear half's; the sign is moot
        p.act_limit = torch.linspace(0.6, 1.6, local)
    elif act_params:
        p.act_alpha = torch.linspace(0.8, 1.7, local)
        p.act_beta = torch.linspace(-0.5, 1.0, local)
        p.act_limit = torch.linspace(0.4, 1.2, local)  # small enough that the clamps bite
    if lora:
        p.gemm1_delta = (
            small_int((T, k, m1), -2, 2, torch.bfloat16, seed + 70)
            if exact
            else rand_float((T, k, m1), torch.bfloat16, seed + 70, scale=0.5)
        )
    if inter_out:
        p.inter_output = poison((T * k, I), torch.float32)
    if permuted:
        p.permuted_output = poison((T * k, H), torch.float32)
    else:
        p.output = poison((T, H), out_dtype)
    p.topk_ids_out = poison((T, k), torch.int32)
    p.topk_weights_out = poison((T, k), torch.float32)
    p.expanded_to_permuted_out = poison((T, k), torch.int32)
    return p


def routing_inputs(t: int, e_global: int, k: int, seed: int):
    """Distinct random global ids per token (int32 [t, k]) and random positive weights."""
    ids = torch.stack(
        [torch.randperm(e_global, generator=seeded_generator(seed + r))[:k] for r in range(t)]
    ).to(torch.int32)
    return ids, torch.rand(t, k, generator=seeded_generator(seed)) + 0.1
