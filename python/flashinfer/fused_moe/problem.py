"""The canonical MoE problem: one description that every public API form is translated into.

It mirrors ``flashinfer_moe::MoeProblem`` (src/include/flashinfer_moe/moe.h) field by field and
its numeric meaning is written down in docs/semantics.md. The executors (C++ CPU, CUDA) and the
float64 reference (``reference.py``) all consume this one type, so an API form is translated once
and checked against the reference for free.

Conventions: all scales are dequant multipliers; ``w1`` is ``[E_local, M1, H]`` with
``M1 = 2I`` in ``[up ; gate]`` order for gated activations (else ``I``); ``w2`` is
``[E_local, H, I]``; any transposition is carried by strides, never by a copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .enums import (
    ActivationType,
    ActQuant,
    ElemFormat,
    GemmTactic,
    RoutingMethodType,
    ScaleFormat,
    ScaleLayout,
)

Tensor = torch.Tensor

_FP8_DTYPES = tuple(
    getattr(torch, n) for n in ("float8_e4m3fn", "float8_e8m0fnu") if hasattr(torch, n)
)


@dataclass
class QuantTensor:
    """A weight stack ``[E, M, K]`` or an activation matrix ``[T, K]``, possibly quantized.

    value(e, r, c) = decode(data[e, r, c]) * scale[e, r // block_rows, c // block_cols] * global[e]
    (block size 0 = whole dimension; absent scale/global = 1). ``data`` holds ``K // 2`` columns
    for ``E2M1Packed``. fp8 data/scales may be given as ``torch.float8_e4m3fn`` or as uint8 codes.
    """

    data: Tensor
    format: ElemFormat = ElemFormat.Float
    scale: Tensor | None = None
    scale_format: ScaleFormat = ScaleFormat.Float
    scale_layout: ScaleLayout = ScaleLayout.Linear
    block_rows: int = 0
    block_cols: int = 0
    global_scale: Tensor | None = None


@dataclass
class ActQuantSpec:
    """How an activation matrix is (re)quantized before a GEMM (docs/semantics.md)."""

    mode: ActQuant = ActQuant.None_
    group_size: int = 128
    static_scale: Tensor | None = None  # f32 scalar or [E_local]


@dataclass
class RoutingSpec:
    method: RoutingMethodType = RoutingMethodType.Default
    logits: Tensor | None = None  # [T, E_global]
    bias: Tensor | None = None  # [E_global]
    n_group: int = 0
    topk_group: int = 0
    routed_scaling_factor: float = 1.0
    norm_topk_prob: bool = True
    topk_ids: Tensor | None = None  # int32 [T, k] (global ids) or packed words
    topk_weights: Tensor | None = None  # [T, k]
    packed: bool = False


@dataclass
class MoeProblem:
    num_tokens: int
    hidden_size: int
    intermediate_size: int
    num_experts: int
    local_expert_offset: int
    local_num_experts: int
    top_k: int
    routing: RoutingSpec
    input: QuantTensor
    w1: QuantTensor
    w2: QuantTensor
    expert_capacity: int = 0
    input_quant: ActQuantSpec = field(default_factory=ActQuantSpec)
    w1_bias: Tensor | None = None
    w2_bias: Tensor | None = None
    inter_quant: ActQuantSpec = field(default_factory=ActQuantSpec)
    activation: ActivationType = ActivationType.Swiglu
    act_alpha: Tensor | None = None
    act_beta: Tensor | None = None
    act_limit: Tensor | None = None
    routing_weight_on_input: bool = False
    compute_dtype: torch.dtype = torch.bfloat16
    # CUDA only (the CPU executor ignores it): which grouped-GEMM family runs the GEMMs; Auto
    # lets the library choose (and FLASHINFER_MOE_GEMM_TACTIC may override it, runner.py).
    tactic: GemmTactic = GemmTactic.Auto
    # outputs
    output: Tensor | None = None  # [T, H]
    permuted_output: Tensor | None = None  # f32 [T*k, H] (do_finalize=False)
    topk_ids_out: Tensor | None = None  # int32 [T, k]
    topk_weights_out: Tensor | None = None  # f32 [T, k]
    expanded_to_permuted_out: Tensor | None = None  # int32 [T, k]

    @property
    def is_gated(self) -> bool:
        return ActivationType(self.activation).is_gated

    @property
    def device(self) -> torch.device:
        return self.input.data.device

    def to_native(self):
        """The ``flashinfer._C.MoeProblem`` view of this problem (no copies).

        The returned object holds raw pointers: keep ``self`` (and so its tensors) alive until
        the native call that uses it has finished.
        """
        from .. import _C

        p = _C.MoeProblem()
        p.num_tokens = int(self.num_tokens)
        p.hidden_size = int(self.hidden_size)
        p.intermediate_size = int(self.intermediate_size)
        p.num_experts = int(self.num_experts)
        p.local_expert_offset = int(self.local_expert_offset)
        p.local_num_experts = int(self.local_num_experts)
        p.top_k = int(self.top_k)
        p.expert_capacity = int(self.expert_capacity)
        p.routing = _native_routing(self.routing)
        p.input = _native_quant_tensor(self.input)
        p.input_quant = _native_act_quant(self.input_quant)
        p.w1 = _native_quant_tensor(self.w1)
        p.w1_bias = _view(self.w1_bias)
        p.w2 = _native_quant_tensor(self.w2)
        p.w2_bias = _view(self.w2_bias)
        p.inter_quant = _native_act_quant(self.inter_quant)
        p.activation = _C.Activation(int(self.activation))
        p.act_alpha = _view(self.act_alpha)
        p.act_beta = _view(self.act_beta)
        p.act_limit = _view(self.act_limit)
        p.routing_weight_on_input = bool(self.routing_weight_on_input)
        p.compute_dtype = _native_dtype(self.compute_dtype)
        p.tactic = _C.GemmTactic(int(self.tactic))
        p.output = _view(self.output)
        p.permuted_output = _view(self.permuted_output)
        p.topk_ids_out = _view(self.topk_ids_out)
        p.topk_weights_out = _view(self.topk_weights_out)
        p.expanded_to_permuted_out = _view(self.expanded_to_permuted_out)
        return p


def as_storage(t: Tensor) -> Tensor:
    """fp8-typed tensors travel as their uint8 codes (DLPack has no portable fp8 code)."""
    if t.dtype in _FP8_DTYPES:
        return t.view(torch.uint8)
    return t


def _view(t: Tensor | None):
    from .. import _C

    if t is None:
        return _C.TensorView()
    return _C.TensorView.of(as_storage(t).detach())


def _native_dtype(dtype: torch.dtype):
    from .. import _C

    table = {
        torch.float32: _C.DType.F32,
        torch.float16: _C.DType.F16,
        torch.bfloat16: _C.DType.BF16,
    }
    if dtype not in table:
        raise TypeError(f"compute_dtype must be float32, float16 or bfloat16, got {dtype}")
    return table[dtype]


def _native_quant_tensor(q: QuantTensor):
    from .. import _C

    n = _C.QuantTensor()
    n.data = _view(q.data)
    n.format = _C.ElemFormat(int(q.format))
    n.scale = _view(q.scale)
    n.scale_format = _C.ScaleFormat(int(q.scale_format))
    n.scale_layout = _C.ScaleLayout(int(q.scale_layout))
    n.block_rows = int(q.block_rows)
    n.block_cols = int(q.block_cols)
    n.global_scale = _view(q.global_scale)
    return n


def _native_act_quant(a: ActQuantSpec):
    from .. import _C

    n = _C.ActQuantSpec()
    n.mode = _C.ActQuant(int(a.mode))
    n.group_size = int(a.group_size)
    n.static_scale = _view(a.static_scale)
    return n


def _native_routing(r: RoutingSpec):
    from .. import _C

    n = _C.RoutingSpec()
    n.method = _C.RoutingMethod(int(r.method))
    n.logits = _view(r.logits)
    n.bias = _view(r.bias)
    n.n_group = int(r.n_group or 0)
    n.topk_group = int(r.topk_group or 0)
    n.routed_scaling_factor = float(
        1.0 if r.routed_scaling_factor is None else r.routed_scaling_factor
    )
    n.norm_topk_prob = bool(r.norm_topk_prob)
    n.topk_ids = _view(r.topk_ids)
    n.topk_weights = _view(r.topk_weights)
    n.packed = bool(r.packed)
    return n
