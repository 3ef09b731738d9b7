"""``flashinfer.autotuner``: flashinfer's autotuning entry point, ``autotune``.

This library has no autotuner yet: every call picks its GEMM tactic with the heuristic of
``src/host/heuristics.cpp`` (overridable per call with ``FLASHINFER_MOE_GEMM_TACTIC``, see the
README). ``autotune`` exists so that code written for flashinfer, which wraps its warm-up in
``with autotune(): ...``, runs unchanged; it enables nothing and says so here rather than
pretending to tune.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

_log = logging.getLogger(__name__)


@contextlib.contextmanager
def autotune(
    tune_mode: bool = True,
    cache: str | None = None,
    tuning_buckets: tuple[int, ...] | None = None,
    round_up: bool | None = None,
    skip_ops: str | set[str] | None = None,
) -> Iterator[None]:
    """flashinfer's autotuning context manager, with its signature; here it does nothing.

    In flashinfer, ``with autotune():`` profiles each MoE op's tactics for the token-count
    buckets it meets and caches the fastest (in memory, and in the JSON file ``cache`` if
    given); ``autotune(False)`` runs with the cached or fallback tactics. This library has no
    autotuner yet, so inside the block every call behaves exactly as outside it: the tactic
    comes from the built-in heuristic, nothing is profiled, and no ``cache`` file is read or
    written. All arguments are accepted and ignored. The context manager nests, works as a
    decorator and lets exceptions through.
    """
    if tune_mode:
        _log.info(
            "flashinfer.autotune: this library has no autotuner; the heuristic picks tactics "
            "and nothing is tuned or cached"
        )
    yield


__all__ = ["autotune"]
