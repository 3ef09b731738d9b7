"""Routing alone: logits -> (top-k expert ids, weights), and the packed top-k word format.

``route`` runs exactly the routing step of the fused layer (docs/semantics.md, "Routing") through
the native ``route_cpu`` / ``route_cuda``, so a caller can inspect or reuse the choice the layer
makes. ``pack_topk_ids`` / ``unpack_topk_ids`` convert to and from the int32 word that the
``*_routed_moe`` functions accept: ``(expert_id << 16) | bf16_bits(weight)``.
"""

from __future__ import annotations

import atexit
import threading
from collections import OrderedDict
from typing import NamedTuple

import torch

from .enums import ActivationType, RoutingMethodType
from .problem import RoutingSpec, _native_routing, _native_tables, _view, native_module
from .runner import current_stream_handle
from .validation import (
    FLOAT_DTYPES,
    check_bool,
    check_enum,
    check_float,
    check_int,
    check_optional_tensor,
    check_tensor,
)

Tensor = torch.Tensor

# Size of the placeholder GEMM operands of a routing-only problem (never read: stride-0 views).
_DUMMY_DIM = 128


class _RoutingTemplate(NamedTuple):
    native: object  # _C.MoeProblem with everything but top_k, routing and the outputs set
    placeholder: Tensor  # the one element behind the stride-0 GEMM operands (never read)
    lock: threading.Lock


_TEMPLATES: OrderedDict = OrderedDict()  # (device, T, E) -> _RoutingTemplate, least recent first
_TEMPLATES_LOCK = threading.Lock()
_MAX_TEMPLATES = 32


def _routing_template(device: torch.device, num_tokens: int, num_experts: int):
    """The routing-only problem of this shape, built natively once (not as a MoeProblem then
    to_native): the GEMM operands are stride-0 placeholders of one element that the router never
    reads. Building them took about half of ``route``'s host time, so they are kept per shape."""
    key = (device, num_tokens, num_experts)
    with _TEMPLATES_LOCK:
        template = _TEMPLATES.get(key)
        if template is not None:
            _TEMPLATES.move_to_end(key)
            return template
    C = native_module()
    tables = _native_tables()
    h = i = _DUMMY_DIM
    one = torch.empty(1, dtype=torch.float32, device=device)  # never read, so not filled
    native = C.MoeProblem()
    native.num_tokens = num_tokens
    native.hidden_size = h
    native.intermediate_size = i
    native.num_experts = num_experts
    native.local_expert_offset = 0
    native.local_num_experts = num_experts
    for field, shape in (
        ("input", (num_tokens, h)),
        ("w1", (num_experts, 2 * i, h)),
        ("w2", (num_experts, h, i)),
    ):
        q = C.QuantTensor()
        q.data = _view(one.expand(*shape))
        setattr(native, field, q)
    native.activation = tables[C.Activation][int(ActivationType.Swiglu)]
    native.compute_dtype = tables["dtype"][torch.float32]
    template = _RoutingTemplate(native, one, threading.Lock())
    with _TEMPLATES_LOCK:
        template = _TEMPLATES.setdefault(key, template)
        while len(_TEMPLATES) > _MAX_TEMPLATES:
            _TEMPLATES.popitem(last=False)
    return template


@atexit.register
def _clear_templates_at_exit() -> None:
    """The templates are native objects: nanobind reports any alive at its teardown as leaked."""
    with _TEMPLATES_LOCK:
        _TEMPLATES.clear()


def check_routing_args(
    routing_method,
    top_k: int,
    num_experts: int,
    *,
    top_k_name: str = "top_k",
) -> RoutingMethodType:
    """Checks shared by every API form that routes from logits; returns the coerced method."""
    method = check_enum("routing_method", routing_method, RoutingMethodType)
    if method == RoutingMethodType.Unspecified:
        raise ValueError("routing_method: expected a concrete RoutingMethodType, got Unspecified")
    check_int(top_k_name, top_k, 1, num_experts)
    if method == RoutingMethodType.Llama4 and top_k != 1:
        raise ValueError(f"{top_k_name}: expected 1 with RoutingMethodType.Llama4, got {top_k}")
    return method


def route(
    routing_logits: Tensor,
    top_k: int,
    routing_method=RoutingMethodType.Default,
    *,
    routing_bias: Tensor | None = None,
    n_group: int | None = None,
    topk_group: int | None = None,
    routed_scaling_factor: float | None = None,
    norm_topk_prob: bool = True,
) -> tuple[Tensor, Tensor]:
    """Route ``routing_logits`` [T, E] (float32/float16/bfloat16) to ``top_k`` experts per token.

    Returns ``(topk_ids int32 [T, top_k], topk_weights float32 [T, top_k])``, ordered by
    descending selection score (ties to the lower expert index; RoundRobin keeps slot order).
    ``routing_bias`` [E] is used by DeepSeekV3 and MiniMax2 for selection only;
    ``n_group``/``topk_group`` enable DeepSeekV3's group-limited selection;
    ``routed_scaling_factor`` (default 1) scales DeepSeekV3 / MiniMax2 weights;
    ``norm_topk_prob`` applies to SigmoidRenorm. The math is in docs/semantics.md.
    """
    logits = check_tensor("routing_logits", routing_logits, dtypes=FLOAT_DTYPES, ndim=2)
    device = logits.device
    num_tokens, num_experts = logits.shape
    if num_experts < 1:
        raise ValueError(
            f"routing_logits: expected at least one expert column, got shape {tuple(logits.shape)}"
        )
    method = check_routing_args(routing_method, top_k, num_experts)
    bias = check_optional_tensor(
        "routing_bias", routing_bias, dtypes=FLOAT_DTYPES, shape=(num_experts,), device=device
    )
    n_group = 0 if n_group is None else check_int("n_group", n_group, 0, num_experts)
    topk_group = (
        0 if topk_group is None else check_int("topk_group", topk_group, 0, max(n_group, 0))
    )
    if n_group > 1 and num_experts % n_group != 0:
        raise ValueError(
            f"n_group: expected a divisor of the expert count {num_experts}, got {n_group}"
        )
    scaling = (
        1.0
        if routed_scaling_factor is None
        else check_float("routed_scaling_factor", routed_scaling_factor)
    )
    norm = check_bool("norm_topk_prob", norm_topk_prob)

    ids = torch.empty((num_tokens, top_k), dtype=torch.int32, device=device)
    weights = torch.empty((num_tokens, top_k), dtype=torch.float32, device=device)
    if num_tokens == 0:
        return ids, weights

    C = native_module()
    spec = RoutingSpec(
        method=method,
        logits=logits,
        bias=bias,
        n_group=n_group,
        topk_group=topk_group,
        routed_scaling_factor=scaling,
        norm_topk_prob=norm,
    )
    template = _routing_template(device, num_tokens, num_experts)
    with template.lock:
        native = template.native
        native.top_k = int(top_k)
        native.routing = _native_routing(spec, C)
        native.topk_ids_out = _view(ids)
        native.topk_weights_out = _view(weights)
        if device.type == "cpu":
            C.route_cpu(native, 0)
        else:
            C.route_cuda(native, current_stream_handle(device))
    # The template keeps this call's raw pointers until the next call overwrites them; only
    # route_* reads them, under the lock, after they were set.
    return ids, weights


def pack_topk_ids(topk_ids: Tensor, topk_weights: Tensor) -> Tensor:
    """Pack ids and weights into int32 words ``(id << 16) | bf16_bits(weight)``.

    ``topk_ids`` is an integer tensor with values in [-32768, 32767] (negative ids mean "skip");
    ``topk_weights`` a float tensor of the same shape, rounded to bf16 (round to nearest even).
    The id range is checked on CPU tensors only (``ValueError``). On other devices checking would
    read the ids on the host (a device sync, and impossible while capturing a CUDA graph), so it
    is not done: an out-of-range id is truncated to its low 16 bits, read as a signed int16.
    """
    check_tensor("topk_ids", topk_ids, dtypes=(torch.int32, torch.int64, torch.int16))
    check_tensor(
        "topk_weights",
        topk_weights,
        dtypes=FLOAT_DTYPES + (torch.float64,),
        shape=tuple(topk_ids.shape),
        device=topk_ids.device,
    )
    if topk_ids.device.type == "cpu" and topk_ids.dtype != torch.int16 and topk_ids.numel() > 0:
        lo, hi = (int(v) for v in torch.aminmax(topk_ids))  # one reduction, not two
        if lo < -(2**15) or hi >= 2**15:
            raise ValueError(
                f"topk_ids: expected values in [-32768, 32767], got range [{lo}, {hi}]"
            )
    # The word's two halves side by side, low first (little-endian, as CPUs and GPUs that torch
    # runs on are), read as one int32: three device ops where shifts and masks took five (each
    # a kernel launch on a GPU). The int16 cast keeps the id's low 16 bits.
    halves = (topk_weights.to(torch.bfloat16).view(torch.int16), topk_ids.to(torch.int16))
    return torch.stack(halves, -1).view(torch.int32).squeeze(-1)


def unpack_topk_ids(packed: Tensor) -> tuple[Tensor, Tensor]:
    """Inverse of ``pack_topk_ids``: ``(ids int32, weights float32)`` of the same shape.

    The id is the high half read as a signed int16; the weight is the low half read as bf16.
    """
    check_tensor("packed", packed, dtypes=(torch.int32,))
    # Each word as its (low, high) int16 halves (little-endian, as in pack_topk_ids): two device
    # ops where shifts, masks and a select took seven.
    halves = packed.contiguous().view(-1).view(torch.int16).view(-1, 2)
    ids = halves[:, 1].to(torch.int32).view(packed.shape)
    weights = halves[:, 0].view(torch.bfloat16).to(torch.float32).view(packed.shape)
    return ids, weights
