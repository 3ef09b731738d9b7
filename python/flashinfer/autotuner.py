"""``flashinfer.autotuner``: flashinfer's autotuning entry point, ``autotune``.

The tuner itself is ``flashinfer/fused_moe/tuner.py`` (what it chooses, its keys, where choices
come from, when it measures). This module is the context manager code written for flashinfer
wraps its warm-up in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .fused_moe.tuner import TUNER

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
    through; its cache is saved even when the block raises.
    """
    skip = skip_ops if isinstance(skip_ops, (set, frozenset, list, tuple)) else {skip_ops}
    skipped = any(isinstance(s, str) and MOE_OP in s for s in skip)
    buckets = tuple(int(b) for b in tuning_buckets) if tuning_buckets else None
    TUNER.enter(tune_mode, cache, buckets, True if round_up is None else bool(round_up), skipped)
    try:
        yield
    finally:
        TUNER.exit()


__all__ = ["autotune"]
