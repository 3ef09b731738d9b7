"""Runs one canonical ``MoeProblem`` through the native executors.

This is the single place where the torch-facing API meets ``flashinfer._C``: it allocates the
output and the workspace with torch (the caching allocator on CUDA, so calls stay CUDA-graph
capturable), reads the current CUDA stream, and calls ``_C.run_cpu`` or ``_C.run_cuda``. CPU
tensors run on the CPU executor, CUDA tensors on the CUDA executor; CUDA data is never copied to
the host (an unsupported combination raises ``NotImplementedError`` from the native side).

GEMM tactic. ``MoeProblem.tactic`` picks the grouped-GEMM family on CUDA; where it is ``Auto``, the
first of these that has one decides (``resolve_tactic``): the environment variable below, the
autotuner's measured or shipped choice (tuner.py, ``flashinfer.autotune``), the library's heuristic.
The environment variable ``FLASHINFER_MOE_GEMM_TACTIC`` replaces ``Auto`` for every problem run or
sized through this module (a tactic set explicitly on the problem wins):

* ``auto`` (or unset / empty): keep ``Auto``;
* ``sm80_decode``: the portable mma.sync family with small row tiles;
* ``sm80_prefill``: the portable mma.sync family with large row tiles;
* ``sm90``: the CUTLASS sm90 (TMA + WGMMA) family.

Values are case-insensitive; anything else is a ``ValueError`` naming the variable. The variable
is read on every call (so a test can set it), and it is meant for benchmarking and debugging: a
forced tactic that cannot run a problem (not compiled, another architecture, an unsupported
layout) makes that call raise a ``ValueError`` naming ``tactic``. The CPU executor ignores it.
"""

from __future__ import annotations

import dataclasses
import os

import torch

from . import tuner
from .enums import GemmTactic
from .problem import MoeProblem, _native_tables, _to_dlpack, _view, native_module
from .validation import FLOAT_DTYPES, check_dtype_arg, check_tensor

WORKSPACE_ARG = "workspace_buffer"
TACTIC_ENV = "FLASHINFER_MOE_GEMM_TACTIC"
_TACTIC_NAMES = {
    "auto": GemmTactic.Auto,
    "sm80_decode": GemmTactic.Sm80Decode,
    "sm80_prefill": GemmTactic.Sm80Prefill,
    "sm90": GemmTactic.Sm90,
}


def tactic_from_env() -> GemmTactic:
    """The tactic ``FLASHINFER_MOE_GEMM_TACTIC`` asks for (``Auto`` when unset or empty)."""
    raw = os.environ.get(TACTIC_ENV, "")
    value = raw.strip().lower()
    if not value:
        return GemmTactic.Auto
    if value not in _TACTIC_NAMES:
        raise ValueError(f"{TACTIC_ENV}: expected one of {', '.join(_TACTIC_NAMES)}, got {raw!r}")
    return _TACTIC_NAMES[value]


def resolve_tactic(problem: MoeProblem, measure=None, forced=None) -> GemmTactic:
    """The tactic ``problem`` runs with (module docstring); ``Auto`` leaves it to the heuristic.
    ``measure(tactic)``, when given, enqueues the problem once with ``tactic``: the tuner may then
    measure the candidates (only inside a tuning block, tuner.py). ``forced``: the environment's
    tactic when the caller has read it already."""
    own = GemmTactic(problem.tactic)
    if own != GemmTactic.Auto:
        return own
    if forced is None:
        forced = tactic_from_env()  # also rejects a bad variable before anything else
    if forced != GemmTactic.Auto or problem.input.data.device.type != "cuda":
        return forced
    limit = problem.tune_max_num_tokens
    if measure is None:
        return tuner.TUNER.lookup(problem, limit)
    return tuner.TUNER.choose(problem, measure, limit)


def with_resolved_tactic(problem: MoeProblem) -> MoeProblem:
    """``problem`` with ``resolve_tactic``'s tactic (a copy when it differs; the caller's object
    is never modified). Workspace sizing goes through this, so a chosen family gets the scratch
    it asks for."""
    tactic = resolve_tactic(problem)
    if tactic == GemmTactic(problem.tactic):
        return problem
    return dataclasses.replace(problem, tactic=tactic)


def native_device_kind(device: torch.device):
    """The ``_C.DeviceKind`` for a torch device (CPU or CUDA only)."""
    if device.type == "cpu":
        return native_module().DeviceKind.CPU
    if device.type == "cuda":
        return native_module().DeviceKind.CUDA
    raise ValueError(f"input: expected a tensor on the CPU or a CUDA device, got one on {device}")


def workspace_bytes(problem: MoeProblem) -> int:
    """Scratch bytes the executor of ``problem``'s device needs (0 when there are no tokens)."""
    problem = with_resolved_tactic(problem)  # also rejects a bad variable before any sizing
    if problem.num_tokens == 0:
        return 0
    return int(
        native_module().workspace_size(problem.to_native(), native_device_kind(problem.device))
    )


def _check_workspace(ws, device: torch.device, required: int) -> torch.Tensor:
    check_tensor(WORKSPACE_ARG, ws, dtypes=(torch.uint8,), ndim=1, device=device, contiguous=True)
    if ws.numel() < required:
        raise ValueError(f"{WORKSPACE_ARG}: expected at least {required} bytes, got {ws.numel()}")
    return ws


def run_problem(
    problem: MoeProblem,
    *,
    workspace: torch.Tensor | None = None,
    output_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Execute ``problem`` and return its finalized output ``[T, H]``.

    If ``problem.output`` (and ``problem.permuted_output``) are ``None``, a ``[T, H]`` output of
    ``output_dtype`` (default: ``problem.compute_dtype``) is allocated; the executor writes every
    element, so it is not zero-filled. The caller's ``problem`` object is not modified. ``T == 0``
    returns the empty output without a native call. ``workspace`` (named ``workspace_buffer`` in
    errors) must be a 1-D contiguous uint8 tensor on the problem's device with at least
    ``_C.workspace_size`` bytes; when omitted one is allocated per call.
    An ``Auto`` tactic is resolved by ``resolve_tactic`` (module docstring). Returns the
    output (``problem.permuted_output`` when only that was requested).
    """
    device = problem.input.data.device
    native_device_kind(device)  # rejects other devices first
    tactic_from_env()  # rejects a bad variable before anything else
    result = problem.output if problem.output is not None else problem.permuted_output
    if result is None:
        dtype = check_dtype_arg("output_dtype", output_dtype or problem.compute_dtype, FLOAT_DTYPES)
        result = torch.empty((problem.num_tokens, problem.hidden_size), dtype=dtype, device=device)
        allocated = True
    else:
        allocated = False

    if problem.num_tokens == 0:
        if workspace is not None:
            _check_workspace(workspace, device, 0)
        return result

    # The output and the chosen tactic are set on the native view rather than on a copy of the
    # dataclass (dataclasses.replace costs more than the rest of the call). `native` holds raw
    # pointers into `problem`'s tensors and `result`: both stay referenced by this frame until
    # the native call has returned.
    native = problem.to_native()
    if allocated:
        native.output = _view(result)

    if workspace is not None:
        _check_workspace(workspace, device, 0)  # a bad buffer fails before any measurement
    measure = _measurement(problem, native, workspace) if device.type == "cuda" else None
    required = apply_tactic(problem, native, workspace, measure)
    if workspace is not None:
        ws = _check_workspace(workspace, device, required)
    elif required > 0:
        ws = torch.empty(required, dtype=torch.uint8, device=device)
    else:
        ws = None

    run_native(native, ws, device)
    del native, ws
    return result


def apply_tactic(problem: MoeProblem, native, workspace=None, measure=None) -> int:
    """Sets ``resolve_tactic``'s tactic on ``native`` (``problem``'s native view) and returns the
    workspace bytes it needs. A caller's ``workspace`` sized for the heuristic's family never
    fails a call because the tuner chose another family that needs more: the heuristic runs it."""
    C = native_module()
    kind = native_device_kind(problem.device)
    own = GemmTactic(problem.tactic)
    forced = tactic_from_env()
    tactic = resolve_tactic(problem, measure, forced)
    if tactic != own:
        native.tactic = _native_tables()[C.GemmTactic][int(tactic)]
    required = int(C.workspace_size(native, kind))
    tuned = tactic != own and forced == GemmTactic.Auto
    if tuned and workspace is not None and workspace.numel() < required:
        native.tactic = _native_tables()[C.GemmTactic][int(own)]
        required = int(C.workspace_size(native, kind))
    return required


def _measurement(problem: MoeProblem, native, workspace):
    """The tuner's ``run(tactic)`` for ``problem`` (tuner.py): one enqueue of the problem with
    ``tactic``, into the same outputs as ``native``, with the caller's workspace where it is
    large enough and a fresh one otherwise."""
    C = native_module()
    kind = native_device_kind(problem.device)

    def run(tactic: GemmTactic) -> None:
        trial = problem.to_native()
        trial.output = native.output
        trial.tactic = _native_tables()[C.GemmTactic][int(tactic)]
        need = int(C.workspace_size(trial, kind))
        if workspace is not None and workspace.numel() >= need:
            scratch = workspace
        else:
            scratch = torch.empty(need, dtype=torch.uint8, device=problem.device) if need else None
        run_native(trial, scratch, problem.device)

    return run


def run_native(native, ws: torch.Tensor | None, device: torch.device) -> None:
    """The executor call for a native problem on ``device``'s executor (the current stream on
    CUDA), with workspace ``ws``. The caller keeps every tensor behind ``native`` and ``ws``
    referenced until this returns."""
    C = native_module()
    # The workspace goes as a DLPack capsule (nanobind then skips Tensor.__dlpack__'s Python
    # checks). The capsule's tensor reference is dropped once its pointer is read, so `ws`
    # itself stays referenced by the caller until the native call has returned.
    ws_arg = _to_dlpack(ws) if ws is not None and _to_dlpack is not None else ws
    if device.type == "cpu":
        C.run_cpu(native, ws_arg, 0)
    else:
        C.run_cuda(native, ws_arg, current_stream_handle(device))


def current_stream_handle(device: torch.device) -> int:
    """The raw ``cudaStream_t`` of torch's current stream on ``device`` (read without entering a
    device context: ``torch.cuda.device(...)`` + ``current_stream`` cost several microseconds)."""
    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    if raw is not None and device.index is not None:
        return int(raw(device.index))
    with torch.cuda.device(device):
        return torch.cuda.current_stream(device).cuda_stream
