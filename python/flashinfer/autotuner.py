"""``flashinfer.autotuner``: flashinfer's autotuning entry point, ``autotune``.

The tuner itself is ``flashinfer/fused_moe/tuner.py`` (what it chooses, its keys, where choices
come from, when it measures). This module is the context manager code written for flashinfer
wraps its warm-up in.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from .fused_moe.tuner import TUNER
from .fused_moe.validation import check_bool, check_int

# The op name ``skip_ops`` may give to keep the fused MoE calls from being measured.
MOE_OP = "fused_moe"


@contextlib.contextmanager
def autotune(
    tune_mode: bool = True,
    cache: str | None = None,
    tuning_buckets: tuple[int, ...] | None = None,
    round_up: bool | None = None,
    skip_ops: str | set[str] | None = None,
) -> Iterator[None]:
    """Measures the GEMM tactics of the fused MoE calls made inside the block (flashinfer's
    ``autotune`` signature).

    ``tune_mode=True``: the first CUDA call of each (card, problem class, token bucket) that no
    earlier measurement or cache file covers times every grouped-GEMM family on the call's own
    inputs and keeps the fastest, over the table shipped for the card too; later calls, inside
    or after the block and in later processes that read the same file, run with it. Measuring
    synchronizes the device and runs the call several times, so it belongs in warm-up; it never
    happens while a CUDA graph is captured or torch traces, nor above the call's
    ``tune_max_num_tokens``. Results stay within each tactic's tested tolerance (the tactics
    compute the same math).
    ``tune_mode=False``: no measuring; choices come from what is loaded.

    ``cache``: a JSON file, read on entry when it exists and, after tuning, merged and rewritten
    on exit. Without it a tuning block saves to ``FLASHINFER_MOE_AUTOTUNE_CACHE`` (default
    ``~/.cache/flashinfer_moe/autotune.json``), which every process reads at its first CUDA call;
    an empty variable keeps tuning in memory.

    ``tuning_buckets``: the token counts whose buckets are measured instead of powers of two (a
    call takes the smallest bucket at least its T, or with ``round_up=False`` the largest at
    most); outside the block lookups bucket by powers of two, so powers of two are the buckets
    found later. ``skip_ops``: op names not to measure; ``"fused_moe"`` names these calls.
    The block nests (the innermost settings apply), works as a decorator and lets exceptions
    through; its cache is saved even when the block raises. A wrongly typed argument is a
    TypeError (a bucket below 1 a ValueError) naming it, raised on entry.
    """
    tune = check_bool("tune_mode", tune_mode)
    if cache is not None and not isinstance(cache, (str, os.PathLike)):
        raise TypeError(f"cache: expected a path (str or os.PathLike) or None, got {cache!r}")
    buckets = None
    if tuning_buckets is not None:
        if isinstance(tuning_buckets, (str, bytes)) or not hasattr(tuning_buckets, "__iter__"):
            raise TypeError(f"tuning_buckets: expected ints, got {tuning_buckets!r}")
        buckets = tuple(check_int("tuning_buckets", b, lo=1) for b in tuning_buckets) or None
    up = True if round_up is None else check_bool("round_up", round_up)
    skip = {skip_ops} if skip_ops is None or isinstance(skip_ops, str) else skip_ops
    if not hasattr(skip, "__iter__") or not all(s is None or isinstance(s, str) for s in skip):
        raise TypeError(f"skip_ops: expected op names (str or a set of str), got {skip_ops!r}")
    skipped = any(s is not None and MOE_OP in s for s in skip)
    TUNER.enter(tune, cache, buckets, up, skipped)
    try:
        yield
    finally:
        TUNER.exit()


__all__ = ["autotune"]
