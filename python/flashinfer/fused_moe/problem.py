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
    for ``E2M1Packed`` and ``Int4Packed`` (two's complement int4 codes, low nibble first). fp8 data/scales may be given as ``torch.float8_e4m3fn`` or as uint8 codes.
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
    # Per-expert f32 [E_local] parameters (None: the default; docs/semantics.md "Activations"):
    # SwigluBias alpha (1) / beta (0) / limit (+inf); SwigluStep limit (7); Situ alpha = the
    # gate's tanh cap (4), beta = the linear half's tanh cap (25), limit = the clamp (+inf).
    act_alpha: Tensor | None = None
    act_beta: Tensor | None = None
    act_limit: Tensor | None = None
    # [T, k, M1] float (LoRA): added to the GEMM1 output of assignment (t, j) after the bias.
    gemm1_delta: Tensor | None = None
    routing_weight_on_input: bool = False
    compute_dtype: torch.dtype = torch.bfloat16
    # CUDA only (the CPU executor ignores it): which grouped-GEMM family runs the GEMMs; Auto
    # lets the library choose (and FLASHINFER_MOE_GEMM_TACTIC may override it, runner.py).
    tactic: GemmTactic = GemmTactic.Auto
    # Python only (the native problem has no such field): the autotuner measures no call with
    # more tokens, and buckets larger ones with it (tuner.py; the API's ``tune_max_num_tokens``).
    tune_max_num_tokens: int = 8192
    # outputs
    output: Tensor | None = None  # [T, H]
    permuted_output: Tensor | None = None  # f32 [T*k, H] (do_finalize=False)
    inter_output: Tensor | None = None  # float [T*k, I]: activated rows (before inter_quant)
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
        the native call that uses it has finished. Built field by field with cached enum tables
        and the cheap DLPack path of ``_view``; absent tensors keep the native default (an empty
        view), so a typical problem costs a few microseconds here.
        """
        C = native_module()
        t = _native_tables()
        p = C.MoeProblem()
        p.num_tokens = int(self.num_tokens)
        p.hidden_size = int(self.hidden_size)
        p.intermediate_size = int(self.intermediate_size)
        p.num_experts = int(self.num_experts)
        p.local_expert_offset = int(self.local_expert_offset)
        p.local_num_experts = int(self.local_num_experts)
        p.top_k = int(self.top_k)
        p.expert_capacity = int(self.expert_capacity)
        p.routing = _native_routing(self.routing, C, t)
        p.input = _native_quant_tensor(self.input, C, t)
        p.w1 = _native_quant_tensor(self.w1, C, t)
        p.w2 = _native_quant_tensor(self.w2, C, t)
        if not _is_default_act_quant(self.input_quant):
            p.input_quant = _native_act_quant(self.input_quant, C, t)
        if not _is_default_act_quant(self.inter_quant):
            p.inter_quant = _native_act_quant(self.inter_quant, C, t)
        p.activation = _enum(t, C.Activation, self.activation)
        p.routing_weight_on_input = bool(self.routing_weight_on_input)
        p.compute_dtype = _native_dtype(self.compute_dtype)
        if self.tactic:
            p.tactic = _enum(t, C.GemmTactic, self.tactic)
        # Optional tensors: only present ones are converted (the native default is empty).
        for name in _OPTIONAL_TENSOR_FIELDS:
            v = getattr(self, name)
            if v is not None:
                setattr(p, name, _view(v))
        return p


# MoeProblem's optional top-level tensors, converted by to_native only when present.
_OPTIONAL_TENSOR_FIELDS = (
    "w1_bias",
    "w2_bias",
    "act_alpha",
    "act_beta",
    "act_limit",
    "gemm1_delta",
    "output",
    "permuted_output",
    "inter_output",
    "topk_ids_out",
    "topk_weights_out",
    "expanded_to_permuted_out",
)

_native = None  # flashinfer._C once imported (see native_module)
_tables = None  # {native enum type: {int value: member}} (see _native_tables)
# torch's C-level DLPack export: 5-7x cheaper than Tensor.__dlpack__'s Python checks, which
# nanobind would otherwise call for every tensor of every problem.
_to_dlpack = getattr(torch._C, "_to_dlpack", None)


def native_module():
    """``flashinfer._C``, imported on first use and cached (a failed import is retried, so the
    error surfaces on every call that needs the extension)."""
    global _native
    if _native is None:
        from .. import _C

        _native = _C
    return _native


def _native_tables() -> dict:
    """Per native enum type, its members by integer value (built once: a dict lookup is much
    cheaper than constructing a nanobind enum from an int on every call)."""
    global _tables
    if _tables is None:
        C = native_module()
        kinds = (C.Activation, C.GemmTactic, C.ElemFormat, C.ScaleFormat, C.ScaleLayout)
        kinds += (C.ActQuant, C.RoutingMethod)
        _tables = {k: {m.value: m for m in k.__members__.values()} for k in kinds}
        _tables["dtype"] = {
            torch.float32: C.DType.F32,
            torch.float16: C.DType.F16,
            torch.bfloat16: C.DType.BF16,
        }
    return _tables


def _enum(tables: dict, kind, v):
    """``kind(int(v))`` through the cached table; an unknown value falls back to the
    constructor, so it raises exactly as before."""
    member = tables[kind].get(int(v))
    return kind(int(v)) if member is None else member


def as_storage(t: Tensor) -> Tensor:
    """fp8-typed tensors travel as their uint8 codes (DLPack has no portable fp8 code)."""
    if t.dtype in _FP8_DTYPES:
        return t.view(torch.uint8)
    return t


def _view(t: Tensor | None):
    C = native_module()
    if t is None:
        return C.TensorView()
    t = as_storage(t)
    if t.requires_grad:
        t = t.detach()  # DLPack refuses tensors that require grad; the view is read-only data
    if _to_dlpack is not None:
        try:
            return C.TensorView.of(_to_dlpack(t))
        except Exception:  # an unusual tensor (layout, conj bit): let the generic path decide
            pass
    return C.TensorView.of(t)


def _native_dtype(dtype: torch.dtype):
    table = _native_tables()["dtype"]
    if dtype not in table:
        raise TypeError(f"compute_dtype must be float32, float16 or bfloat16, got {dtype}")
    return table[dtype]


def _native_quant_tensor(q: QuantTensor, C=None, t=None):
    C = C or native_module()
    t = t or _native_tables()
    n = C.QuantTensor()
    n.data = _view(q.data)
    # A fresh native struct already holds the defaults (Float, Float, Linear, 0, 0, no scales),
    # which are the Python defaults too: only fields that differ are converted and set.
    if q.format:
        n.format = _enum(t, C.ElemFormat, q.format)
    if q.scale is not None:
        n.scale = _view(q.scale)
    if q.scale_format:
        n.scale_format = _enum(t, C.ScaleFormat, q.scale_format)
    if q.scale_layout:
        n.scale_layout = _enum(t, C.ScaleLayout, q.scale_layout)
    if q.block_rows:
        n.block_rows = int(q.block_rows)
    if q.block_cols:
        n.block_cols = int(q.block_cols)
    if q.global_scale is not None:
        n.global_scale = _view(q.global_scale)
    return n


def _native_act_quant(a: ActQuantSpec, C=None, t=None):
    C = C or native_module()
    t = t or _native_tables()
    n = C.ActQuantSpec()
    n.mode = _enum(t, C.ActQuant, a.mode)
    n.group_size = int(a.group_size)
    if a.static_scale is not None:
        n.static_scale = _view(a.static_scale)
    return n


def _is_default_act_quant(a: ActQuantSpec) -> bool:
    """True when ``a`` equals a fresh native ActQuantSpec (no quantization, group 128)."""
    return not a.mode and a.group_size == 128 and a.static_scale is None


def _native_routing(r: RoutingSpec, C=None, t=None):
    C = C or native_module()
    t = t or _native_tables()
    n = C.RoutingSpec()
    n.method = _enum(t, C.RoutingMethod, r.method)
    if r.logits is not None:
        n.logits = _view(r.logits)
    if r.bias is not None:
        n.bias = _view(r.bias)
    n.n_group = int(r.n_group or 0)
    n.topk_group = int(r.topk_group or 0)
    n.routed_scaling_factor = float(
        1.0 if r.routed_scaling_factor is None else r.routed_scaling_factor
    )
    n.norm_topk_prob = bool(r.norm_topk_prob)
    if r.topk_ids is not None:
        n.topk_ids = _view(r.topk_ids)
    if r.topk_weights is not None:
        n.topk_weights = _view(r.topk_weights)
    n.packed = bool(r.packed)
    return n
