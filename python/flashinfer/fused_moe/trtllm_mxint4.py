"""``trtllm_mxint4_block_scale_moe`` and ``_routed_moe``: MXINT4 weights with bf16 activations.

MXINT4 is W4A16: packed signed int4 weight codes (two's complement -8..7, two per byte, low
nibble = even element) with one **bf16** scale per 32 elements along K, and bf16 activations;
the GEMM1 output is activated in fp32 and rounded to bf16 before GEMM2, the output is bf16
(flashinfer's MxInt4BlockScaleLauncher: bf16 hidden states and gemm1/gemm2 outputs, uint8
weights, bf16 scales, 32 elements per scale). In the canonical problem the weights are
``ElemFormat.Int4Packed`` with linear bf16 scales ``[E, M, K/32]`` (block 1 x 32); the numeric
contract is docs/semantics.md.

Layouts. flashinfer's kernel takes only its prepared layout (the default here): per expert, the
GEMM1 rows interleaved for the gated activation, every weight matrix shuffled with epilogue tile
128 (``shuffle_matrix_a`` on the bytes), then ``BlockMajorK`` with 128-byte blocks
(``[E, K/256, M, 128]`` bytes); the scales get the same row permutation and
``block_scale_interleave`` (128x4 tiles of bf16 values, any shape holding that many elements).
It is restored to MajorK on every call (the slow path, warned once). As with the other forms'
extension, ``use_shuffled_weight=False`` with ``weight_layout=WeightLayout.MajorK`` takes native
weights ``[E, M, K/2]`` with linear bf16 scales ``[E, M, K/32]`` without a copy (the two
keyword-only arguments are not in flashinfer's signature).

Activation: Swiglu only (flashinfer's functions have no ``activation_type``).
``gemm1_alpha`` / ``gemm1_beta`` / ``gemm1_clamp_limit`` (f32 [E_local]) select the clamped
SwiGLU, as their docstring says; note that flashinfer's MxInt4BlockScaleLauncher (at the
revisions read) never stores them, so its kernel runs plain SwiGLU whatever is passed.
"""

from __future__ import annotations

import torch

from .api_trtllm import (
    _FROM_LOGITS,
    _ROUTED,
    _args,
    _cacheable,
    _calls,
    _common,
    _layout_flags,
    _run,
    _tensors_only,
)
from .enums import ActivationType, ElemFormat, ScaleFormat, WeightLayout
from .problem import QuantTensor
from .trtllm_translate import (
    gemm1_act_params,
    reject_unsupported,
    restore_rows,
    restore_weight_stack,
)
from .validation import check_same_device, check_tensor

Tensor = torch.Tensor

SF_VEC = 32  # elements of K per bf16 scale (flashinfer checks weight_scale_vec_size == 32)


def _restore_bf16_scales(name: str, sf: Tensor, *, num_local: int, rows: int, cols: int,
                         gated_interleave: bool) -> Tensor:  # fmt: skip
    """bf16 scales prepared as flashinfer does (rows permuted like the weights, then
    ``block_scale_interleave`` on the bf16 values: 128x4 tiles of elements, not bytes) ->
    linear ``[E, rows, cols]`` bf16, one copy per call."""
    from ..quantization.sf_layout import block_scale_deinterleave

    rp, cp = -(-rows // 128) * 128, -(-cols // 4) * 4
    if sf.numel() != num_local * rp * cp:
        raise ValueError(
            f"{name}: expected {num_local} x {rp} x {cp} swizzled bf16 scales "
            f"([E, {rows}, {cols}] padded to 128 x 4), got shape {tuple(sf.shape)}"
        )
    lin = block_scale_deinterleave(sf.contiguous().reshape(-1), (num_local, rows, cols))
    return restore_rows(
        name, lin, shuffled=True, epilogue_tile_m=128, gated_interleave=gated_interleave
    )


def _weight_scale(name, sf, *, num_local, rows, cols, shuffled, gated_interleave) -> Tensor:
    check_tensor(name, sf, dtypes=torch.bfloat16)
    if not shuffled:
        return check_tensor(name, sf, shape=(num_local, rows, cols))
    return _restore_bf16_scales(name, sf, num_local=num_local, rows=rows, cols=cols,
                                gated_interleave=gated_interleave)  # fmt: skip


def _mxint4(a):
    """The MXINT4 path: both public functions' arguments -> the canonical problem, run."""
    reject_unsupported(gemm1_lora_delta=a.gemm1_lora_delta)
    x = check_tensor("hidden_states", a.hidden_states, dtypes=torch.bfloat16, ndim=2)
    e, k, off, nl, i, routing = _common(a, x)
    h = x.shape[1]
    if h % SF_VEC:
        raise ValueError(
            f"hidden_states: expected a hidden size that is a multiple of {SF_VEC} (one MXINT4 "
            f"scale per {SF_VEC} elements of K), got {h}"
        )
    if i % SF_VEC:
        raise ValueError(
            f"intermediate_size: expected a multiple of {SF_VEC} (one MXINT4 scale per "
            f"{SF_VEC} elements of K), got {i}"
        )
    act, alpha, beta, limit = gemm1_act_params(
        ActivationType.Swiglu, a.gemm1_alpha, a.gemm1_beta, a.gemm1_clamp_limit, nl, x.device
    )
    shuffled, bmk = _layout_flags(a)
    names = ("gemm1_weights", "gemm1_weights_scale", "gemm2_weights", "gemm2_weights_scale")
    check_same_device(_tensors_only(x, *(getattr(a, n) for n in names)), ("hidden_states",) + names)
    check_tensor("gemm1_weights", a.gemm1_weights, dtypes=torch.uint8)
    check_tensor("gemm2_weights", a.gemm2_weights, dtypes=torch.uint8)
    if isinstance(a.output, Tensor) and a.output.dim() == 2 and a.output.shape[1] != h:
        raise ValueError(f"output: expected shape [{x.shape[0]}, {h}], got {tuple(a.output.shape)}")
    m1 = 2 * i
    lay = dict(num_local=nl, shuffled=shuffled, block_major_k=bmk, epilogue_tile_m=128)
    w1 = restore_weight_stack("gemm1_weights", a.gemm1_weights, rows=m1, k_bytes=h // 2,
                              gated_interleave=True, **lay)  # fmt: skip
    w2 = restore_weight_stack("gemm2_weights", a.gemm2_weights, rows=h, k_bytes=i // 2,
                              gated_interleave=False, **lay)  # fmt: skip
    s1 = _weight_scale("gemm1_weights_scale", a.gemm1_weights_scale, num_local=nl, rows=m1,
                       cols=h // SF_VEC, shuffled=shuffled, gated_interleave=True)  # fmt: skip
    s2 = _weight_scale("gemm2_weights_scale", a.gemm2_weights_scale, num_local=nl, rows=h,
                       cols=i // SF_VEC, shuffled=shuffled, gated_interleave=False)  # fmt: skip
    int4 = dict(format=ElemFormat.Int4Packed, scale_format=ScaleFormat.Float, block_rows=1,
                block_cols=SF_VEC)  # fmt: skip
    return _run(a, x, (e, k, off, nl, i, h), routing, act, as_list=True, input=QuantTensor(x),
                w1=QuantTensor(w1, scale=s1, **int4), w2=QuantTensor(w2, scale=s2, **int4),
                act_alpha=alpha, act_beta=beta, act_limit=limit,
                compute_dtype=torch.bfloat16)  # fmt: skip


# ---- public functions ------------------------------------------------------------------------------


def trtllm_mxint4_block_scale_moe(
    routing_logits, routing_bias, hidden_states, gemm1_weights, gemm1_weights_scale, gemm1_alpha,
    gemm1_beta, gemm1_clamp_limit, gemm2_weights, gemm2_weights_scale, num_experts, top_k,
    n_group, topk_group, intermediate_size, local_expert_offset, local_num_experts,
    routed_scaling_factor, routing_method_type=0, do_finalize=True, enable_pdl=None, output=None,
    tune_max_num_tokens=8192, norm_topk_prob=True, routing_replay_out=None, *,
    use_shuffled_weight=True, weight_layout=WeightLayout.BlockMajorK,
):  # fmt: skip
    """MXINT4-weight MoE (W4A16) with routing from ``routing_logits`` [T, E] (fp32/bf16).

    ``hidden_states`` bf16 [T, H]; weights uint8, two signed int4 codes per byte (low nibble =
    even element): ``gemm1_weights`` [E_local, 2I, H/2] in [up ; gate] row order,
    ``gemm2_weights`` [E_local, H, I/2]; bf16 scales, one per 32 elements of K:
    ``gemm1_weights_scale`` [E_local, 2I, H/32], ``gemm2_weights_scale`` [E_local, H, I/32]
    (value = code * scale). By default the weights and scales are in flashinfer's prepared
    layout (gated row interleave, shuffle with tile 128, BlockMajorK with 128-byte blocks;
    scales row-permuted alike and 128x4-interleaved), restored per call; the keyword-only
    extension ``use_shuffled_weight=False, weight_layout=WeightLayout.MajorK`` takes native
    weights and linear scales without a copy. Swiglu only; ``gemm1_alpha`` / ``gemm1_beta`` /
    ``gemm1_clamp_limit`` (f32 [E_local]) select the clamped SwiGLU (flashinfer's launcher
    ignores them; see the module docstring). H and I must be multiples of 32 (256 for
    BlockMajorK). Returns ``[output]`` (bf16 [T, H]), or with ``do_finalize=False``
    ``[gemm2_output bf16 [T*k, H] (permuted rows), expert_weights bf16 [T, k],
    expanded_idx_to_permuted_idx int32 [T, k]]``. ``enable_pdl`` and ``tune_max_num_tokens``
    are accepted for compatibility and ignored. On CUDA tensors this raises
    NotImplementedError (``w1.format`` Int4Packed is not on the CUDA engine yet).
    """
    call = locals()
    if _cacheable(call):
        return [_MXINT4_CALLS.run(tuple(call.values()), {})]
    return _mxint4(_args(call, **_FROM_LOGITS))


def trtllm_mxint4_block_scale_routed_moe(
    topk_ids, hidden_states, gemm1_weights, gemm1_weights_scale, gemm1_alpha, gemm1_beta,
    gemm1_clamp_limit, gemm2_weights, gemm2_weights_scale, num_experts, top_k, n_group,
    topk_group, intermediate_size, local_expert_offset, local_num_experts, routed_scaling_factor,
    routing_method_type=0, do_finalize=True, enable_pdl=None, gemm1_lora_delta=None, output=None,
    tune_max_num_tokens=8192, *, use_shuffled_weight=True,
    weight_layout=WeightLayout.BlockMajorK,
):  # fmt: skip
    """``trtllm_mxint4_block_scale_moe`` with precomputed routing: ``topk_ids`` int32 [T, k]
    packed words ``(expert_id << 16) | bf16_bits(weight)`` (flashinfer's contract; an
    ``(ids int32, weights bf16/f32)`` pair is accepted too). Global ids; ids outside
    [0, num_experts) are skipped. ``gemm1_lora_delta`` is not supported (NotImplementedError).
    """
    call = locals()
    if _cacheable(call):
        return [_MXINT4_ROUTED_CALLS.run(tuple(call.values()), {})]
    return _mxint4(_args(call, **_ROUTED))


_MXINT4_CALLS = _calls(trtllm_mxint4_block_scale_moe, _mxint4, _FROM_LOGITS)
_MXINT4_ROUTED_CALLS = _calls(trtllm_mxint4_block_scale_routed_moe, _mxint4, _ROUTED)
