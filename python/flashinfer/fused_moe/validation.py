"""Argument checks shared by every public function of ``flashinfer.fused_moe``.

Each helper raises ``TypeError`` (wrong kind of object or dtype) or ``ValueError`` (wrong shape,
device, layout or range) with a message of the form ``"<argname>: expected ..., got ..."`` so a
caller always learns which argument is wrong and what was wanted. The helpers only read tensor
metadata: they never touch data and never synchronize a device.
"""

from __future__ import annotations

import numbers
import os
import sys
from collections.abc import Iterable, Sequence

import torch

Tensor = torch.Tensor
DTypes = torch.dtype | Iterable[torch.dtype]

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
FP8_E4M3 = torch.float8_e4m3fn
FP8_E8M0 = getattr(torch, "float8_e8m0fnu", None)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _dtypes_text(dtypes: Sequence[torch.dtype]) -> str:
    names = [dtype_name(d) for d in dtypes]
    return names[0] if len(names) == 1 else "one of " + ", ".join(names)


def check_tensor(
    name: str,
    t,
    *,
    dtypes: DTypes | None = None,
    ndim: int | None = None,
    shape: Sequence[int | None] | None = None,
    device: torch.device | None = None,
    contiguous: bool = False,
) -> Tensor:
    """Check a tensor argument and return it.

    ``shape`` may hold ``None`` for a free dimension (it also fixes ``ndim``); ``device`` is the
    device every tensor of the call must share; ``contiguous`` requires row-major storage.
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    # Hot path: every public call checks a dozen tensors, so each test below is written to cost
    # one comparison when it passes; the error text is only built when it fails.
    if dtypes is not None:
        ok = t.dtype == dtypes if isinstance(dtypes, torch.dtype) else t.dtype in dtypes
        if not ok:
            allowed = (
                (dtypes,)
                if isinstance(dtypes, torch.dtype)
                else tuple(d for d in dtypes if d is not None)
            )
            raise TypeError(
                f"{name}: expected dtype {_dtypes_text(allowed)}, got {dtype_name(t.dtype)}"
            )
    if shape is not None:
        ndim = len(shape)
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D tensor, got shape {tuple(t.shape)}")
    if shape is not None:
        for want, got in zip(shape, t.shape):
            if want is not None and want != got and int(want) != got:
                expected = tuple("*" if s is None else int(s) for s in shape)
                raise ValueError(f"{name}: expected shape {expected}, got {tuple(t.shape)}")
    if device is not None and t.device != device:
        want_device = device if isinstance(device, torch.device) else torch.device(device)
        if t.device != want_device:
            raise ValueError(f"{name}: expected a tensor on {want_device}, got one on {t.device}")
    if contiguous and not t.is_contiguous():
        raise ValueError(f"{name}: expected a contiguous tensor, got strides {t.stride()}")
    return t


def check_optional_tensor(name: str, t, **kwargs) -> Tensor | None:
    """``check_tensor`` for an argument that may be ``None``."""
    if t is None:
        return None
    return check_tensor(name, t, **kwargs)


def check_int(name: str, v, lo: int | None = None, hi: int | None = None) -> int:
    """Check an integer argument in the closed range [lo, hi] (either bound optional)."""
    if type(v) is int and (lo is None or v >= lo) and (hi is None or v <= hi):
        return v  # the common case, without the ABC isinstance checks below
    if isinstance(v, torch.Tensor) and v.dim() == 0 and not v.is_floating_point():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(v).__name__} {v!r}")
    v = int(v)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        lo_text = "-inf" if lo is None else str(lo)
        hi_text = "inf" if hi is None else str(hi)
        raise ValueError(f"{name}: expected an int in [{lo_text}, {hi_text}], got {v}")
    return v


def check_float(name: str, v) -> float:
    """Check a real scalar argument (int or float, not bool)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a float, got {type(v).__name__} {v!r}")
    return float(v)


def check_bool(name: str, v) -> bool:
    if not isinstance(v, (bool, int)) or (isinstance(v, int) and v not in (0, 1)):
        raise TypeError(f"{name}: expected a bool, got {type(v).__name__} {v!r}")
    return bool(v)


def check_enum(name: str, v, enum_cls):
    """Coerce an enum member or its integer value to ``enum_cls``."""
    if type(v) is enum_cls:
        return v  # already a member (the common case)
    if type(v) is int:  # a plain value: the enum's own value table, no ABC checks
        member = enum_cls._value2member_map_.get(v)
        if member is not None:
            return member
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name}: expected a {enum_cls.__name__}, got {type(v).__name__} {v!r}")
    try:
        return enum_cls(int(v))
    except ValueError:
        values = sorted({int(m) for m in enum_cls})
        raise ValueError(
            f"{name}: expected a {enum_cls.__name__} (one of {values}), got {int(v)}"
        ) from None


def check_dtype_arg(name: str, v, dtypes: Sequence[torch.dtype]) -> torch.dtype:
    """Check an argument that names a dtype (e.g. ``output_dtype``)."""
    if not isinstance(v, torch.dtype):
        raise TypeError(f"{name}: expected a torch.dtype, got {type(v).__name__} {v!r}")
    if v not in dtypes:
        raise TypeError(f"{name}: expected {_dtypes_text(dtypes)}, got {dtype_name(v)}")
    return v


def check_equal(name: str, value, expected, what: str = "") -> None:
    """An integer argument that must agree with a size read from the tensors."""
    if value != expected:
        source = f" ({what})" if what else ""
        raise ValueError(f"{name}: expected {expected}{source}, got {value}")


def check_same_device(tensors: Sequence, names: Sequence[str]) -> torch.device | None:
    """All present tensors share the first one's device; returns it (None if none present)."""
    device = None
    first = None
    for name, t in zip(names, tensors):
        if t is None:
            continue
        if device is None:
            device, first = t.device, name
        elif t.device != device:
            raise ValueError(
                f"{name}: expected a tensor on {device} (the device of {first}), got one on {t.device}"
            )
    return device


def check_output(
    name: str, out, *, shape: Sequence[int], dtype, device: torch.device
) -> Tensor | None:
    """A caller-provided output buffer: exact shape, the dtype (or one of a tuple of dtypes),
    same device, contiguous."""
    if out is None:
        return None
    return check_tensor(name, out, dtypes=dtype, shape=shape, device=device, contiguous=True)


def user_stacklevel() -> int:
    """``warnings.warn`` stacklevel of the first caller outside the flashinfer package, so a
    warning points at user code whichever public wrapper led to it."""
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package_dir):
        frame, level = frame.f_back, level + 1
    return level
