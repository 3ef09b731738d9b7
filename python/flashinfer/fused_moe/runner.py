"""Runs one canonical ``MoeProblem`` through the native executors.

This is the single place where the torch-facing API meets ``flashinfer._C``: it allocates the
output and the workspace with torch (the caching allocator on CUDA, so calls stay CUDA-graph
capturable), reads the current CUDA stream, and calls ``_C.run_cpu`` or ``_C.run_cuda``. CPU
tensors run on the CPU executor, CUDA tensors on the CUDA executor; CUDA data is never copied to
the host (an unsupported combination raises ``NotImplementedError`` from the native side).

GEMM tactic override. ``MoeProblem.tactic`` picks the grouped-GEMM family on CUDA (``Auto``: the
library decides). The environment variable ``FLASHINFER_MOE_GEMM_TACTIC`` replaces ``Auto`` for
every problem run or sized through this module (a tactic set explicitly on the problem wins):

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


def with_env_tactic(problem: MoeProblem) -> MoeProblem:
    """``problem`` with the environment's tactic where its own is ``Auto`` (a copy; the caller's
    object is never modified). Workspace sizing and running both go through this, so a forced
    family gets the scratch it asks for."""
    forced = tactic_from_env()
    if forced == GemmTactic.Auto or GemmTactic(problem.tactic) != GemmTactic.Auto:
        return problem
    return dataclasses.replace(problem, tactic=forced)


def native_device_kind(device: torch.device):
    """The ``_C.DeviceKind`` for a torch device (CPU or CUDA only)."""
    if device.type == "cpu":
        return native_module().DeviceKind.CPU
    if device.type == "cuda":
        return native_module().DeviceKind.CUDA
    raise ValueError(f"input: expected a tensor on the CPU or a CUDA device, got one on {device}")


def workspace_bytes(problem: MoeProblem) -> int:
    """Scratch bytes the executor of ``problem``'s device needs (0 when there are no tokens)."""
    problem = with_env_tactic(problem)  # also rejects a bad variable before any sizing
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
    ``FLASHINFER_MOE_GEMM_TACTIC`` replaces an ``Auto`` tactic (module docstring). Returns the
    output (``problem.permuted_output`` when only that was requested).
    """
    device = problem.input.data.device
    kind = native_device_kind(device)
    forced = tactic_from_env()  # also rejects a bad variable before anything else
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

    # The output and the forced tactic are set on the native view rather than on a copy of the
    # dataclass (dataclasses.replace costs more than the rest of the call). `native` holds raw
    # pointers into `problem`'s tensors and `result`: both stay referenced by this frame until
    # the native call has returned.
    native = problem.to_native()
    if allocated:
        native.output = _view(result)
    if forced != GemmTactic.Auto and int(problem.tactic) == int(GemmTactic.Auto):
        native.tactic = _native_tables()[native_module().GemmTactic][int(forced)]
    C = native_module()
    required = int(C.workspace_size(native, kind))
    if workspace is not None:
        ws = _check_workspace(workspace, device, required)
    elif required > 0:
        ws = torch.empty(required, dtype=torch.uint8, device=device)
    else:
        ws = None

    run_native(native, ws, device)
    del native, ws
    return result


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
