"""torch.library custom ops for the fused MoE call, so it works under torch.compile and CUDA graphs.

Every public entry point translates its arguments into one canonical ``MoeProblem`` and then runs
it with ``run_problem`` below. Eagerly, that is exactly ``runner.run_problem`` (no op dispatch, no
extra cost). While torch is compiling or tracing (``torch.compile``, ``torch.export``, fake
tensors), the problem instead goes through one of two ops, so the whole native call is a single
opaque graph node with a fake implementation that never touches data:

* ``flashinfer_moe::fused_moe``: purely functional; allocates and returns the finalized output
  ``[T, H]`` of ``output_dtype`` (the common case: no caller-provided output or workspace).
* ``flashinfer_moe::fused_moe_out``: writes into caller-provided buffers (``output``, or the
  ``do_finalize=False`` set ``permuted_output`` / ``topk_weights_out`` /
  ``expanded_to_permuted_out``, ``topk_ids_out``, and ``inter_output``), with an optional caller ``workspace``
  (uint8 scratch); all of them are mutated arguments; it returns nothing.

Both take the problem flattened by ``encode_problem``: ``tensors`` (one optional tensor per name in
``TENSOR_SLOTS``), ``ints`` (``INT_SLOTS``: sizes, formats, modes; enums as their values, bools as
0/1), ``floats`` (``FLOAT_SLOTS``) and ``compute_dtype``. Their real implementations rebuild the
problem (``decode_problem``) and call ``runner.run_problem``, so compiled and eager calls run the
same native code on the current stream, with the same checks. Argument errors found while
translating the public call are raised at trace time; those only the native side finds (workspace
too small, a path not implemented on the device) are raised when the compiled graph runs.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import torch
from torch._subclasses.fake_tensor import FakeTensor
from torch._subclasses.functional_tensor import FunctionalTensor

from . import runner
from .enums import (
    ActivationType,
    ActQuant,
    ElemFormat,
    GemmTactic,
    RoutingMethodType,
    ScaleFormat,
    ScaleLayout,
)
from .problem import ActQuantSpec, MoeProblem, QuantTensor, RoutingSpec
from .validation import FLOAT_DTYPES, check_dtype_arg

Tensor = torch.Tensor

# Tensors that only exist while torch traces (export, make_fx with fake tensors, AOT autograd).
_TRACING_TENSOR_TYPES = (FakeTensor, FunctionalTensor)

_QUANT_TENSORS = ("input", "w1", "w2")
_ACT_QUANTS = ("input_quant", "inter_quant")

# The flattened problem, in the order the ops receive it (dotted names are nested fields).
TENSOR_SLOTS = (
    *(f"{q}.{f}" for q in _QUANT_TENSORS for f in ("data", "scale", "global_scale")),
    "routing.logits",
    "routing.bias",
    "routing.topk_ids",
    "routing.topk_weights",
    *(f"{a}.static_scale" for a in _ACT_QUANTS),
    "w1_bias",
    "w2_bias",
    "act_alpha",
    "act_beta",
    "act_limit",
    "gemm1_delta",
)
INT_SLOTS = (
    "num_tokens",
    "hidden_size",
    "intermediate_size",
    "num_experts",
    "local_expert_offset",
    "local_num_experts",
    "top_k",
    "expert_capacity",
    *(
        f"{q}.{f}"
        for q in _QUANT_TENSORS
        for f in ("format", "scale_format", "scale_layout", "block_rows", "block_cols")
    ),
    *(f"{a}.{f}" for a in _ACT_QUANTS for f in ("mode", "group_size")),
    "routing.method",
    "routing.n_group",
    "routing.topk_group",
    "routing.norm_topk_prob",
    "routing.packed",
    "activation",
    "routing_weight_on_input",
    "tactic",
    "tune_max_num_tokens",
)
FLOAT_SLOTS = ("routing.routed_scaling_factor",)
OUTPUT_SLOTS = (
    "output",
    "permuted_output",
    "topk_ids_out",
    "topk_weights_out",
    "expanded_to_permuted_out",
    "inter_output",
)
# Fields carried as op arguments of their own rather than slots.
_OTHER_FIELDS = ("compute_dtype",)

# Integer slots whose value is an enum or a bool: rebuilt with these types.
_INT_TYPES = {
    "format": ElemFormat,
    "scale_format": ScaleFormat,
    "scale_layout": ScaleLayout,
    "mode": ActQuant,
    "method": RoutingMethodType,
    "activation": ActivationType,
    "norm_topk_prob": bool,
    "packed": bool,
    "routing_weight_on_input": bool,
    "tactic": GemmTactic,
}
_INT_INDEX = {name: i for i, name in enumerate(INT_SLOTS)}


def covered_fields() -> set[str]:
    """Every (dotted) problem field the ops carry; a test checks this equals the dataclasses'."""
    return set(TENSOR_SLOTS + INT_SLOTS + FLOAT_SLOTS + OUTPUT_SLOTS + _OTHER_FIELDS)


def problem_fields() -> set[str]:
    """Every (dotted) field of ``MoeProblem`` and its nested specs."""
    nested = {"input": QuantTensor, "w1": QuantTensor, "w2": QuantTensor, "routing": RoutingSpec}
    nested.update({a: ActQuantSpec for a in _ACT_QUANTS})
    names = set()
    for f in dataclasses.fields(MoeProblem):
        inner = nested.get(f.name)
        if inner is None:
            names.add(f.name)
        else:
            names.update(f"{f.name}.{g.name}" for g in dataclasses.fields(inner))
    return names


def _get(problem: MoeProblem, dotted: str):
    obj = problem
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _int_value(v) -> int:
    # n_group / topk_group may be None (= 0), exactly as the native conversion reads them.
    return 0 if v is None else int(v)


def encode_problem(problem: MoeProblem):
    """``(tensors, ints, floats)`` of ``problem``, outputs and ``compute_dtype`` left out."""
    _reject_uncarried_fields(problem)
    tensors = [_get(problem, n) for n in TENSOR_SLOTS]
    ints = [_int_value(_get(problem, n)) for n in INT_SLOTS]
    factor = problem.routing.routed_scaling_factor
    floats = [1.0 if factor is None else float(factor)]
    return tensors, ints, floats


def _uncarried_fields() -> tuple[tuple[str, object], ...]:
    """(name, default) of the top-level ``MoeProblem`` fields no slot carries."""
    covered = covered_fields()
    result = []
    for f in dataclasses.fields(MoeProblem):
        if f.name in covered or any(s.startswith(f.name + ".") for s in covered):
            continue
        has_factory = f.default_factory is not dataclasses.MISSING
        result.append((f.name, f.default_factory() if has_factory else f.default))
    return tuple(result)


def _reject_uncarried_fields(problem: MoeProblem) -> None:
    """A field added to ``MoeProblem`` but not to the slots would be silently dropped by the op."""
    for name, default in _UNCARRIED:
        value = getattr(problem, name)
        if (value is not None) if default is None else (value != default):
            raise NotImplementedError(
                f"{name}: not carried by the flashinfer_moe custom ops yet (custom_ops.py)"
            )


# Computed once: dataclasses.fields() is not traceable by torch.compile.
_UNCARRIED = _uncarried_fields()


def decode_problem(tensors, ints, floats, compute_dtype, outputs=None) -> MoeProblem:
    """The inverse of ``encode_problem`` (plus optional output tensors by ``OUTPUT_SLOTS`` name)."""
    if len(tensors) != len(TENSOR_SLOTS) or len(ints) != len(INT_SLOTS) or len(floats) != 1:
        raise ValueError(
            f"tensors/ints/floats: expected {len(TENSOR_SLOTS)}/{len(INT_SLOTS)}/1 values, "
            f"got {len(tensors)}/{len(ints)}/{len(floats)}"
        )
    groups: dict[str, dict] = {}
    top: dict = {}
    values = list(zip(TENSOR_SLOTS, tensors))
    for name, v in zip(INT_SLOTS, ints):
        kind = _INT_TYPES.get(name.rsplit(".", 1)[-1])
        values.append((name, kind(v) if kind else int(v)))
    values.append((FLOAT_SLOTS[0], float(floats[0])))
    for name, v in values:
        if "." in name:
            group, field_name = name.split(".", 1)
            groups.setdefault(group, {})[field_name] = v
        else:
            top[name] = v
    return MoeProblem(
        input=QuantTensor(**groups["input"]),
        w1=QuantTensor(**groups["w1"]),
        w2=QuantTensor(**groups["w2"]),
        routing=RoutingSpec(**groups["routing"]),
        input_quant=ActQuantSpec(**groups["input_quant"]),
        inter_quant=ActQuantSpec(**groups["inter_quant"]),
        compute_dtype=compute_dtype,
        **top,
        **(outputs or {}),
    )


# ---- the ops ------------------------------------------------------------------------------------


@torch.library.custom_op("flashinfer_moe::fused_moe", mutates_args=())
def fused_moe_op(
    tensors: list[Optional[Tensor]],  # noqa: UP045  (the schema inference wants typing names)
    ints: list[int],
    floats: list[float],
    compute_dtype: torch.dtype,
    output_dtype: torch.dtype,
) -> Tensor:
    """Runs the encoded problem and returns a new finalized output ``[T, H]`` of output_dtype.

    Purely functional: the workspace is allocated inside (torch's caching allocator, so CUDA
    graph capture still works). A caller's workspace goes through ``fused_moe_out``: inductor
    (torch 2.13) cannot lower an op that both returns a tensor and mutates an optional one.
    """
    problem = decode_problem(tensors, ints, floats, compute_dtype)
    return runner.run_problem(problem, output_dtype=output_dtype)


@fused_moe_op.register_fake
def _fused_moe_fake(tensors, ints, floats, compute_dtype, output_dtype):
    device = tensors[TENSOR_SLOTS.index("input.data")].device
    shape = (ints[_INT_INDEX["num_tokens"]], ints[_INT_INDEX["hidden_size"]])
    return torch.empty(shape, dtype=output_dtype, device=device)


@torch.library.custom_op(
    "flashinfer_moe::fused_moe_out",
    mutates_args=(*OUTPUT_SLOTS, "workspace"),
)
def fused_moe_out_op(
    tensors: list[Optional[Tensor]],  # noqa: UP045
    ints: list[int],
    floats: list[float],
    compute_dtype: torch.dtype,
    output: Optional[Tensor],  # noqa: UP045
    permuted_output: Optional[Tensor],  # noqa: UP045
    topk_ids_out: Optional[Tensor],  # noqa: UP045
    topk_weights_out: Optional[Tensor],  # noqa: UP045
    expanded_to_permuted_out: Optional[Tensor],  # noqa: UP045
    inter_output: Optional[Tensor],  # noqa: UP045
    workspace: Optional[Tensor],  # noqa: UP045
) -> None:
    """Runs the encoded problem, writing its results into the given output buffers."""
    outputs = dict(
        output=output,
        permuted_output=permuted_output,
        topk_ids_out=topk_ids_out,
        topk_weights_out=topk_weights_out,
        expanded_to_permuted_out=expanded_to_permuted_out,
        inter_output=inter_output,
    )
    runner.run_problem(
        decode_problem(tensors, ints, floats, compute_dtype, outputs), workspace=workspace
    )


@fused_moe_out_op.register_fake
def _fused_moe_out_fake(
    tensors,
    ints,
    floats,
    compute_dtype,
    output,
    permuted_output,
    topk_ids_out,
    topk_weights_out,
    expanded_to_permuted_out,
    inter_output,
    workspace,
) -> None:
    return None  # the results live in the caller's buffers


# ---- the entry point the API uses -----------------------------------------------------------------


def _is_traced(t: Tensor) -> bool:
    """True while torch traces rather than runs: the native call must then be a graph node."""
    return torch.compiler.is_compiling() or isinstance(t, _TRACING_TENSOR_TYPES)


def run_problem(
    problem: MoeProblem,
    *,
    workspace: Tensor | None = None,
    output_dtype: torch.dtype | None = None,
) -> Tensor:
    """``runner.run_problem`` (same arguments and result) that becomes a custom-op node when traced.

    The caller's ``problem`` is not modified. Eager calls go straight to ``runner.run_problem``.
    """
    if not _is_traced(problem.input.data):
        return runner.run_problem(problem, workspace=workspace, output_dtype=output_dtype)
    tensors, ints, floats = encode_problem(problem)
    if problem.output is None and problem.permuted_output is None:
        dtype = check_dtype_arg("output_dtype", output_dtype or problem.compute_dtype, FLOAT_DTYPES)
        if workspace is None:
            return fused_moe_op(tensors, ints, floats, problem.compute_dtype, dtype)
        shape = (problem.num_tokens, problem.hidden_size)
        problem = dataclasses.replace(
            problem, output=torch.empty(shape, dtype=dtype, device=problem.device)
        )
    fused_moe_out_op(
        tensors,
        ints,
        floats,
        problem.compute_dtype,
        *(getattr(problem, n) for n in OUTPUT_SLOTS),
        workspace,
    )
    return problem.output if problem.output is not None else problem.permuted_output
