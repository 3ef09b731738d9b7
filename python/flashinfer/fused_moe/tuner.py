"""The GEMM tactic autotuner: which grouped-GEMM family runs a CUDA problem, chosen by measurement.

What it chooses: the tactic of a CUDA problem whose own tactic is ``Auto`` while
``FLASHINFER_MOE_GEMM_TACTIC`` is unset (runner.py): ``Sm80Decode``, ``Sm80Prefill`` or ``Sm90``.
Every tactic computes the same math within its own tolerance against the float64 reference (the
tolerances of tests/test_gpu_*.py, which run every tactic), so a tuned choice changes the speed,
never the results beyond that tolerance. The CPU executor has no tactics: CPU problems never
reach the tuner.

A choice is kept per key ``(card, problem class, token bucket)``:
  * card: the device's name (``torch.cuda.get_device_name``);
  * problem class (``problem_class``): the shapes and formats a tactic's speed depends on
    (hidden and intermediate sizes, local experts, top-k, element and scale formats, activation,
    capacity, output dtype, weight layout), not the data;
  * token bucket (``token_bucket``): T rounded up to a power of two (or to the caller's
    ``tuning_buckets``), capped at the call's ``tune_max_num_tokens``.

Where a call's tactic comes from, first match wins:
  1. this process's measurements and the tuning cache file, a JSON object of key -> entry. The
     file is ``FLASHINFER_MOE_AUTOTUNE_CACHE`` (default ``$XDG_CACHE_HOME/flashinfer_moe/
     autotune.json``, i.e. ``~/.cache/...``; an empty value keeps tuning in memory only), read on
     the first CUDA call of a process, or the ``cache`` given to ``autotune``, read on entry;
  2. the table shipped for the card (``tactic_tables/<card>.json``, from the committed sweeps;
     scripts/tactic_sweep.py makes it);
  3. the heuristic (src/host/heuristics.h): the tactic stays ``Auto``.
``FLASHINFER_MOE_TUNED_TACTICS=0`` (read per call) skips 1 and 2: the heuristic alone, for A/B
timing.

When it measures: only inside ``with flashinfer.autotune():`` (tune mode), for a key that
neither this process nor the cache file has (a shipped choice is measured again, and this
machine's measurement then wins), and never while a CUDA graph is being captured, never while
torch traces, never when T is above the call's ``tune_max_num_tokens`` (such calls take what the
sources have). Measuring runs the call's own problem with each candidate tactic (a family that
cannot run it raises a ValueError naming ``tactic`` and drops out), times each as CUDA-graph
replays over a few milliseconds and keeps the fastest. It synchronizes the device, which is why
it is warm-up work only. The measured call then runs once more with the winner, so its outputs
are the winner's. Leaving a tuning block saves what this process measured to the block's cache
file: the file is read again and merged (this process's entries win), then replaced atomically;
a file that cannot be written is logged, never raised.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import torch

from . import timing
from .enums import ActivationType, ActQuant, ElemFormat, GemmTactic, ScaleFormat

_log = logging.getLogger(__name__)

CACHE_ENV = "FLASHINFER_MOE_AUTOTUNE_CACHE"
TUNED_ENV = "FLASHINFER_MOE_TUNED_TACTICS"
TABLE_DIR = Path(__file__).with_name("tactic_tables")
# Sm90 first: usually fast, so a slow family is cut short after its first replay (_time_us).
CANDIDATES = (GemmTactic.Sm90, GemmTactic.Sm80Prefill, GemmTactic.Sm80Decode)
_NAMES = {GemmTactic.Sm80Decode: "sm80_decode", GemmTactic.Sm80Prefill: "sm80_prefill",
          GemmTactic.Sm90: "sm90"}  # fmt: skip
_BY_NAME = {v: k for k, v in _NAMES.items()}
# Timing: each candidate runs until about this much GPU time is measured, within these counts.
_TARGET_MS = 5.0
_MIN_REPS, _MAX_REPS = 3, 50


def default_cache_path() -> Path | None:
    """The tuning cache file of this process (None: ``FLASHINFER_MOE_AUTOTUNE_CACHE`` is empty)."""
    raw = os.environ.get(CACHE_ENV)
    if raw is not None:
        return Path(raw).expanduser() if raw.strip() else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "flashinfer_moe" / "autotune.json"


def tactic_name(t: GemmTactic) -> str:
    return _NAMES[GemmTactic(t)]


def _dtype_name(t) -> str:
    return str(t).removeprefix("torch.")


def _quant_part(q) -> str:
    fmt = ElemFormat(q.format).name
    if q.scale is None:
        return f"{_dtype_name(q.data.dtype)}/{fmt}"
    return (f"{_dtype_name(q.data.dtype)}/{fmt}/{ScaleFormat(q.scale_format).name}"
            f"/{q.block_rows}x{q.block_cols}")  # fmt: skip


def _shape_part(p) -> str:
    return f"H={p.hidden_size} I={p.intermediate_size} E={p.local_num_experts} k={p.top_k}"


def problem_class(p) -> str:
    """The part of the key that describes ``p`` (a MoeProblem) without its token count."""
    w1_k_major = p.w1.data.stride(-1) == 1
    parts = [
        _shape_part(p),
        f"in={_quant_part(p.input)}",
        f"w1={_quant_part(p.w1)}{'' if w1_k_major else '/nmajor'}",
        f"w2={_quant_part(p.w2)}",
        f"act={ActivationType(p.activation).name}",
        f"out={_dtype_name(p.compute_dtype)}",
    ]
    for name in ("input_quant", "inter_quant"):
        q = getattr(p, name)
        if q.mode != ActQuant.None_:
            parts.append(f"{name}={ActQuant(q.mode).name}/{q.group_size}")
    if p.expert_capacity:
        parts.append(f"cap={p.expert_capacity}")
    if p.w1_bias is not None or p.w2_bias is not None:
        parts.append("bias")
    return " ".join(parts)


def token_bucket(tokens: int, max_tokens: int, buckets=None, round_up: bool = True) -> int:
    """The bucket of a call with ``tokens`` tokens: the next power of two (or the smallest of
    ``buckets`` at least ``tokens``; the largest at most, with ``round_up=False``), never above
    ``max_tokens``."""
    if buckets:
        ordered = sorted(buckets)
        if round_up:
            b = next((b for b in ordered if b >= tokens), ordered[-1])
        else:
            b = next((b for b in reversed(ordered) if b <= tokens), ordered[0])
    else:
        b = 1 << max(0, math.ceil(math.log2(max(tokens, 1))))
    return max(1, min(b, max_tokens))


def card_name(device: torch.device) -> str:
    return _card_names.get(device.index) or _card_names.setdefault(
        device.index, torch.cuda.get_device_name(device)
    )


_card_names: dict = {}


def _table_file(card: str) -> Path:
    return TABLE_DIR / (re.sub(r"[^a-z0-9]+", "_", card.lower()).strip("_") + ".json")


def _read_entries(path: Path) -> dict:
    """The entries of a tuning file (absent: {}); unreadable files and unknown tactics are
    logged and skipped, never raised: a bad cache must not stop inference."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        _log.warning("flashinfer.autotune: ignoring the tuning file %s (%s)", path, e)
        return {}
    entries = data.get("entries", {}) if isinstance(data, dict) else {}
    good = {}
    for key, entry in entries.items():
        if isinstance(entry, dict) and entry.get("tactic") in _BY_NAME:
            good[key] = entry
        else:
            _log.warning("flashinfer.autotune: %s: skipping the entry %r", path, key)
    return good


def _write_entries(path: Path, entries: dict) -> None:
    """Merges ``entries`` over the file's and replaces it atomically (logged on failure)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        merged = _read_entries(path)
        merged.update(entries)
        data = {"format": "flashinfer_moe tactic table 1", "entries": dict(sorted(merged.items()))}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except OSError as e:
        _log.warning("flashinfer.autotune: could not save the tuning file %s (%s)", path, e)


class _Mode:
    """One ``autotune`` block's settings."""

    def __init__(self, tune: bool, cache: Path | None, buckets, round_up: bool, skip: bool):
        self.tune, self.cache, self.buckets, self.round_up, self.skip = (
            tune, cache, buckets, round_up, skip)  # fmt: skip


class Tuner:
    """The process's tactic choices (module docstring). Thread-safe; one instance, ``TUNER``."""

    def __init__(self):
        self._lock = threading.RLock()
        self._entries: dict = {}  # measured or loaded: key -> {"tactic": name, "us": {...}}
        self._measured: dict = {}  # measured by this process and not yet saved
        self._shipped: dict = {}  # card -> its shipped entries
        # "card | shape part" of every entry: most calls have none and skip the full key.
        self._shapes: set = set()
        self._loaded_default = False
        self._modes: list[_Mode] = []
        # Bumped whenever a choice could change (entries, modes): the call cache keys on it, so
        # no cached call keeps a tactic chosen before.
        self.generation = 0

    # ---- the autotune blocks -------------------------------------------------------------------

    def enter(self, tune: bool, cache, buckets, round_up, skip) -> None:
        path = Path(cache).expanduser() if cache is not None else None
        with self._lock:
            self._load_default()
            if path is not None:
                self._add(_read_entries(path))
            if tune and path is None:
                path = default_cache_path()
            self._modes.append(_Mode(bool(tune), path, buckets, round_up, skip))
            self.generation += 1

    def exit(self) -> None:
        with self._lock:
            mode = self._modes.pop()
            self.generation += 1
            if mode.tune and mode.cache is not None and self._measured:
                _write_entries(mode.cache, self._measured)
            if not any(m.tune for m in self._modes):
                self._measured = {}

    def tuning(self) -> bool:
        return bool(self._modes) and self._modes[-1].tune

    # ---- choosing ------------------------------------------------------------------------------

    def key(self, problem, device: torch.device, max_tokens: int) -> str:
        mode = self._modes[-1] if self._modes else None
        bucket = token_bucket(problem.num_tokens, max_tokens,
                              mode.buckets if mode else None, mode.round_up if mode else True)  # fmt: skip
        return f"{card_name(device)} | {problem_class(problem)} | T<={bucket}"

    def lookup(self, problem, max_tokens: int = 8192) -> GemmTactic:
        """The known choice for a CUDA ``problem`` (``Auto`` when none): nothing is measured."""
        if os.environ.get(TUNED_ENV, "1") == "0":
            return GemmTactic.Auto
        device = problem.device
        card = card_name(device)
        with self._lock:
            self._load_default()
            shipped = self._shipped_for(card)
            if f"{card} | {_shape_part(problem)}" not in self._shapes:
                return GemmTactic.Auto
            key = self.key(problem, device, max_tokens)
            entry = self._entries.get(key) or shipped.get(key)
        return _BY_NAME[entry["tactic"]] if entry else GemmTactic.Auto

    def choose(self, problem, run: Callable[[GemmTactic], None], max_tokens: int = 8192):
        """``lookup``, measuring first when this call may be measured (module docstring).
        ``run(tactic)`` enqueues the problem once with ``tactic`` (ValueError: it cannot)."""
        if self.tuning() and self._may_measure(problem, max_tokens):
            with self._lock:
                key = self.key(problem, problem.device, max_tokens)
                if key not in self._entries:
                    self._measure(key, run)
        return self.lookup(problem, max_tokens)

    def _may_measure(self, problem, max_tokens: int) -> bool:
        return (
            not self._modes[-1].skip
            and problem.num_tokens <= max_tokens
            and not _capturing()
            and not torch.compiler.is_compiling()
            and os.environ.get(TUNED_ENV, "1") != "0"
        )

    def _measure(self, key: str, run: Callable[[GemmTactic], None]) -> None:
        times = {}
        for tactic in CANDIDATES:
            best = min(times.values(), default=None)
            try:
                times[tactic_name(tactic)] = _time_us(lambda t=tactic: run(t), best)
            except ValueError:
                continue  # this family cannot run the problem
        if not times:
            return  # no family ran it: the call itself raises its error with Auto
        best = min(times, key=times.get)
        entry = {"tactic": best, "us": {k: round(v, 2) for k, v in times.items()}}
        _log.info("flashinfer.autotune: %s -> %s %s", key, best, entry["us"])
        self._add({key: entry})
        self._measured[key] = entry

    # ---- the files -----------------------------------------------------------------------------

    def _load_default(self) -> None:
        if self._loaded_default:
            return
        self._loaded_default = True
        path = default_cache_path()
        if path is not None:
            # Entries measured in this process win over the file's.
            self._add({k: v for k, v in _read_entries(path).items() if k not in self._entries})

    def _add(self, entries: dict) -> None:
        self._entries.update(entries)
        self._shapes.update(_shape_of_key(k) for k in entries)
        self.generation += 1

    def _shipped_for(self, card: str) -> dict:
        table = self._shipped.get(card)
        if table is None:
            table = self._shipped[card] = _read_entries(_table_file(card))
            self._shapes.update(_shape_of_key(k) for k in table)
        return table

    def clear(self) -> None:
        """Forgets every choice and reloads the files on next use (tests)."""
        with self._lock:
            self._entries, self._measured, self._shipped = {}, {}, {}
            self._shapes = set()
            self._loaded_default = False
            self.generation += 1


def _capturing() -> bool:
    """Whether the current CUDA stream is capturing a graph (a measurement would break it)."""
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def _shape_of_key(key: str) -> str:
    """ "card | H=.. I=.. E=.. k=.." of a key (the lookup's quick test)."""
    return key.split(" in=", 1)[0]


def _time_us(run: Callable[[], None], best_us: float | None = None) -> float:
    """Microseconds per ``run`` on the device: one eager run (which also raises the ValueError of
    a tactic that cannot run, before anything is captured), then CUDA-graph replays (timing.py)
    in three batches of about _TARGET_MS each, the median batch. A first replay slower than
    twice ``best_us`` (the fastest family so far) is the answer: that family has lost."""
    graph = timing.capture_graph(run, warmups=1)
    first = max(timing.replay_ms(graph, batches=1, per_batch=1), 1e-3)
    if best_us is not None and 1000.0 * first > 2.0 * best_us:
        return 1000.0 * first
    reps = int(min(max(_TARGET_MS / first, _MIN_REPS), _MAX_REPS))
    ms = timing.replay_ms(graph, batches=3, per_batch=reps)
    del graph
    return 1000.0 * ms


TUNER = Tuner()
