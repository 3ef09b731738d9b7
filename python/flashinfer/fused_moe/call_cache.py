"""Repeated calls with the same shapes skip the Python translation (host overhead).

A public entry point turns its arguments into a validated ``MoeProblem`` and a native problem;
that work depends only on the arguments' metadata (dtype, shape, strides, device, grad flag) and
their non-tensor values, never on tensor data (validation never reads it). When the problem a
translation builds refers only to the caller's own tensors or to views of them (no tensor is
computed during the translation, except a fresh output, which a hit allocates alike), its native
problem is a template: a later call whose arguments have equal metadata, and equal values
elsewhere, rebinds the template's tensor fields to the new call's tensors and runs it, skipping
validation and translation. A view (e.g. the transposed ``hidden_states_scale`` of the FP8 block
form, a byte view of e4m3 scales) is rebuilt on the new call's tensor with the same dtype,
sizes, strides and offset: with equal metadata the translation's view ops give exactly that.
A tensor the translation computes from call tensors by a few device ops and marks with
``derived`` (the folded output scalars of the FP8 per-tensor and FP4 forms) is recomputed on
every hit by the same function from the new call's tensors, so in-place updates of its sources
are always read, and a graph captured on a hit records those ops too.
Anything else (a problem with other tensors computed during translation, e.g. restored shuffled
weights; a view of a storage two call tensors share; a tensor passed twice; an unhashable
argument; zero tokens; tracing under torch.compile) takes the ordinary path on every call, with
the same results and errors.

Entries are per entry point and bounded (least recently used out). A template is shared, so a
call holds its entry's lock from the rebinding until the native call has returned.
``FLASHINFER_MOE_CALL_CACHE=0`` (read at import) turns the cache off, for A/B timing and as an
escape hatch.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable

import torch

from . import custom_ops, runner, tuner
from .custom_ops import _is_traced
from .problem import _FP8_DTYPES, MoeProblem, _to_dlpack, _view, native_module

Tensor = torch.Tensor
_UNCACHEABLE = object()
_MAX_ENTRIES = 64

# MoeProblem's tensor fields: nested ones by owner, then the top-level ones.
_NESTED = {
    "input": ("data", "scale", "global_scale"),
    "w1": ("data", "scale", "global_scale"),
    "w2": ("data", "scale", "global_scale"),
    "routing": ("logits", "bias", "topk_ids", "topk_weights"),
    "input_quant": ("static_scale",),
    "inter_quant": ("static_scale",),
}
_TOP = ("w1_bias", "w2_bias", "act_alpha", "act_beta", "act_limit", "gemm1_delta", "output",
        "permuted_output", "topk_ids_out", "topk_weights_out", "expanded_to_permuted_out",
        "inter_output")  # fmt: skip


# The attribute ``derived`` sets on a computed tensor: (recipe, its arguments, output index).
_DERIVED_ATTR = "_flashinfer_moe_derived"


def derived(outputs: tuple, recipe: Callable, args: tuple) -> tuple:
    """Marks ``outputs == recipe(*args)`` (tensors or None) as recomputable on a cache hit.

    ``recipe`` must be a pure function of its tensor arguments (device ops only: no host sync,
    no read of tensor data on the host), so that a hit, recomputing it from the call's tensors,
    gets the values the translation got. Outputs that are one of ``args`` (a no-op conversion)
    are left unmarked: they are call tensors or views of them. Returns ``outputs``."""
    for j, t in enumerate(outputs):
        if t is not None and not any(t is a for a in args):
            setattr(t, _DERIVED_ATTR, (recipe, args, j))
    return outputs


# Read once: the switch is for A/B timing, set before the process imports flashinfer.
_ENABLED = os.environ.get("FLASHINFER_MOE_CALL_CACHE", "1") != "0"


# Values that hash cheaply and whose signature is (type, value): type tells 1, 1.0 and True apart.
_SCALARS = frozenset((type(None), bool, int, float, str))


def _add(v, sig: list, tensors: list) -> None:
    """Appends ``v``'s signature items (and its tensors). TypeError for an unhashable value."""
    tv = type(v)
    if tv in _SCALARS:
        sig += (tv, v)
    elif isinstance(v, Tensor):
        sig += (v.dtype, v.shape, v.stride(), v.device, v.requires_grad)
        tensors.append(v)
    elif isinstance(v, (list, tuple)):
        sig += (tv, len(v))
        for item in v:
            _add(item, sig, tensors)
    else:
        hash(v)
        sig += (tv, v)


def _flatten(args: tuple, kwargs: dict) -> tuple[list, list[Tensor]]:
    """(signature items, tensors in signature order) of a call. Every value adds a fixed number
    of items for its kind (scalars and other values 2, tensors 5, sequences 2 and their items),
    after its type where the kind could be ambiguous, so equal signatures mean equal calls."""
    sig: list = []
    tensors: list[Tensor] = []
    for v in args:
        tv = type(v)
        if tv in _SCALARS:  # _add's first case, inline: the trtllm forms pass ~20 scalars
            sig += (tv, v)
        else:
            _add(v, sig, tensors)
    for name in sorted(kwargs) if kwargs else ():
        sig.append(name)
        _add(kwargs[name], sig, tensors)
    return sig, tensors


def _fast_view(t: Tensor):
    """_view for a tensor that needs neither the fp8 storage view nor a detach."""
    return native_module().TensorView.of(_to_dlpack(t))


@dataclasses.dataclass
class _Entry:
    native: object  # the template _C.MoeProblem (tensor fields rebound per call)
    slots: list  # (owner or None, field, index into the call's tensors, view function)
    device: torch.device
    workspace_bytes: int
    workspace_index: int | None  # the caller's workspace among the call's tensors
    result_index: int | None  # the caller's output (or permuted output) among them
    output_shape: tuple | None  # allocated per call when the caller gave no output
    output_dtype: torch.dtype | None
    lock: threading.Lock
    # Per slot, the data_ptr of the caller tensor its view was last made from. A view is a
    # non-owning (pointer, sizes, strides, dtype, device); the signature fixes all but the
    # pointer, so a slot whose tensor still starts there keeps its view (weights, and activations
    # the caching allocator hands the same block again).
    bound: list
    # Tensors ``derived`` marked: recipes (function, per argument None or (index, rebuild or
    # None)) run on every hit, and the fields (owner, field, recipe index, output index) they fill.
    recipes: list
    derived_slots: list


def _problem_tensors(problem: MoeProblem):
    """(owner, field, tensor) for every tensor of ``problem``; owner None = top level."""
    for owner, fields in _NESTED.items():
        obj = getattr(problem, owner)
        for f in fields:
            t = getattr(obj, f)
            if t is not None:
                yield owner, f, t
    for f in _TOP:
        t = getattr(problem, f)
        if t is not None:
            yield None, f, t


class _CallTensors:
    """The call's tensors, to find a problem tensor among them again on a miss."""

    def __init__(self, tensors: list[Tensor]):
        self.tensors = tensors
        self.position = {id(t): i for i, t in enumerate(tensors)}
        self.by_storage: dict = {}
        for i, c in enumerate(tensors):
            ptr = c.untyped_storage().data_ptr()
            if ptr:  # empty storages all sit at 0: never a view's source
                self.by_storage.setdefault(ptr, []).append(i)

    def index(self, t: Tensor) -> int | None:
        """The position of ``t`` itself among the call's tensors."""
        return self.position.get(id(t))

    def view_of(self, t: Tensor):
        """(index, rebuild) when ``t`` is a view of exactly one of the call's tensors, else None.
        ``rebuild(c)`` makes the same view of a later call's tensor ``c``: same dtype, sizes,
        strides and offset from ``c``'s own offset (element sizes equal, so offsets compare)."""
        ptr = t.untyped_storage().data_ptr()
        owners = self.by_storage.get(ptr, ()) if ptr else ()
        if len(owners) != 1:
            return None  # computed during translation, or ambiguous: call tensors share storage
        i = owners[0]
        c = self.tensors[i]
        if c.element_size() != t.element_size() or t.device != c.device:
            return None
        dtype, size, stride = t.dtype, tuple(t.shape), t.stride()
        delta = t.storage_offset() - c.storage_offset()

        def rebuild(c: Tensor) -> Tensor:
            return c.view(dtype).as_strided(size, stride, c.storage_offset() + delta)

        return i, rebuild

    def source(self, t: Tensor):
        """(index, None) for a call tensor, (index, rebuild) for a view of one, else None."""
        i = self.index(t)
        return (i, None) if i is not None else self.view_of(t)


def _view_slot(rebuild):
    return lambda c: _view(rebuild(c))


def _make_entry(problem: MoeProblem, workspace, tensors: list[Tensor], output_dtype) -> object:
    """The template of ``problem`` (run with ``workspace``), or _UNCACHEABLE."""
    if problem.num_tokens == 0 or len({id(t) for t in tensors}) != len(tensors):
        return _UNCACHEABLE
    call = _CallTensors(tensors)
    ws_index = None
    if workspace is not None:
        ws_index = call.index(workspace)
        if ws_index is None:
            return _UNCACHEABLE
    slots = []
    recipes: list = []
    recipe_of_args: dict = {}  # id of a marked tuple of arguments -> its index in recipes
    derived_slots = []
    made_output = None
    for owner, field, t in _problem_tensors(problem):
        i = call.index(t)
        if i is None and owner is None and field == "output":
            made_output = t  # an output the translation allocated: allocated per call too
            continue
        if i is None:
            found = call.view_of(t)
            if found is not None:
                slots.append((owner, field, found[0], _view_slot(found[1])))
                continue
            source = _derived_source(t, call, recipe_of_args, recipes)
            if source is None:
                return _UNCACHEABLE  # computed during translation: must be rebuilt per call
            derived_slots.append((owner, field, *source))
            continue
        plain = t.dtype not in _FP8_DTYPES and not t.requires_grad and _to_dlpack is not None
        slots.append((owner, field, i, _fast_view if plain else _view))
    native = problem.to_native()
    out_shape = out_dtype = None
    if made_output is not None:
        out_shape, out_dtype = tuple(made_output.shape), made_output.dtype
    elif problem.output is None and problem.permuted_output is None:
        out_shape = (problem.num_tokens, problem.hidden_size)
        out_dtype = output_dtype or problem.compute_dtype
        native.output = _view(torch.empty(out_shape, dtype=out_dtype, device=problem.device))
    required = runner.apply_tactic(problem, native, workspace)
    result = problem.output if problem.output is not None else problem.permuted_output
    result_index = None
    if result is not None and made_output is None:
        result_index = call.index(result)
        if result_index is None:
            return _UNCACHEABLE  # the caller's output reached the problem as a view: never seen
    bound = [tensors[i].data_ptr() for _, _, i, _ in slots]
    return _Entry(native, slots, problem.device, required, ws_index, result_index, out_shape,
                  out_dtype, threading.Lock(), bound, recipes, derived_slots)  # fmt: skip


def _derived_source(t: Tensor, call: _CallTensors, recipe_of_args: dict, recipes: list):
    """(recipe index, output index) of a ``derived`` marked tensor whose recipe arguments are all
    call tensors, views of them or None; the recipe is added to ``recipes`` once per marked
    argument tuple. None when ``t`` is not marked or an argument is something else."""
    tag = getattr(t, _DERIVED_ATTR, None)
    if tag is None:
        return None
    recipe, args, j = tag
    r = recipe_of_args.get(id(args))
    if r is not None:
        return r, j
    specs = [None if a is None else call.source(a) for a in args]
    if any(spec is None for a, spec in zip(args, specs) if a is not None):
        return None
    recipes.append((recipe, specs))  # never the arguments themselves: a template holds no data
    recipe_of_args[id(args)] = len(recipes) - 1
    return len(recipes) - 1, j


_ALL: weakref.WeakSet = weakref.WeakSet()  # every CallCache, for _clear_at_exit


@atexit.register
def _clear_at_exit() -> None:
    """Drops every template before the interpreter tears the modules down: the templates are
    native ``_C.MoeProblem`` objects, and nanobind reports any still alive when its module goes
    as leaked (module teardown order would otherwise decide)."""
    for cache in list(_ALL):
        cache.clear()


class CallCache:
    """The cache of one entry point: ``translate(*args, **kwargs) -> (MoeProblem, workspace)``
    builds the problem on a miss; ``run`` returns the call's output tensor."""

    def __init__(self, translate: Callable):
        self._translate = translate
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        _ALL.add(self)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def run(self, args: tuple, kwargs: dict, output_dtype=None) -> Tensor:
        try:
            sig, tensors = _flatten(args, kwargs)
            # The tuner's generation: a template never keeps a tactic chosen before a change.
            key = (runner.tactic_from_env(), tuner.TUNER.generation, tuple(sig))
        except TypeError:
            return self._run_uncached(args, kwargs, output_dtype)
        if not _ENABLED or not tensors or _is_traced(tensors[0]):
            return self._run_uncached(args, kwargs, output_dtype)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        if entry is _UNCACHEABLE:
            return self._run_uncached(args, kwargs, output_dtype)
        if entry is None:
            # A miss runs the ordinary path first: its errors are the call's errors, and only a
            # call that ran becomes a template.
            problem, workspace = self._translate(*args, **kwargs)
            result = _run_problem(problem, workspace, output_dtype)
            try:
                entry = _make_entry(problem, workspace, tensors, output_dtype)
            except Exception:  # noqa: BLE001  (anything unexpected: just never cache the key)
                entry = _UNCACHEABLE
            with self._lock:
                self._entries[key] = entry
                while len(self._entries) > _MAX_ENTRIES:
                    self._entries.popitem(last=False)
            return result
        return _run_entry(entry, tensors)

    def _run_uncached(self, args, kwargs, output_dtype):
        problem, workspace = self._translate(*args, **kwargs)
        return _run_problem(problem, workspace, output_dtype)


def _as_workspace(ws):
    """flashinfer accepts int8 scratch too: the executors take it as uint8."""
    return ws.view(torch.uint8) if isinstance(ws, Tensor) and ws.dtype == torch.int8 else ws


def _run_problem(problem, workspace, output_dtype):
    return custom_ops.run_problem(
        problem, workspace=_as_workspace(workspace), output_dtype=output_dtype
    )


def _run_recipe(recipe: Callable, specs: list, tensors: list[Tensor]) -> tuple:
    """A ``derived`` recipe run on this call's tensors (its outputs, as the translation's)."""
    args = [None if s is None else tensors[s[0]] if s[1] is None else s[1](tensors[s[0]])
            for s in specs]  # fmt: skip
    return recipe(*args)


def _run_entry(entry: _Entry, tensors: list[Tensor]) -> Tensor:
    """A hit: the template rebound to this call's tensors, run as runner.run_problem runs it
    (whose checks passed on the miss with the same metadata, so they pass again)."""
    device = entry.device
    ws = None if entry.workspace_index is None else _as_workspace(tensors[entry.workspace_index])
    if ws is None and entry.workspace_bytes > 0:
        ws = torch.empty(entry.workspace_bytes, dtype=torch.uint8, device=device)
    out = None
    if entry.output_shape is not None:
        out = torch.empty(entry.output_shape, dtype=entry.output_dtype, device=device)
    made = [_run_recipe(r, specs, tensors) for r, specs in entry.recipes] if entry.recipes else ()
    with entry.lock:
        native, bound = entry.native, entry.bound
        for slot, (owner, field, i, view) in enumerate(entry.slots):
            t = tensors[i]
            ptr = t.data_ptr()
            if ptr != bound[slot]:
                setattr(native if owner is None else getattr(native, owner), field, view(t))
                bound[slot] = ptr
        for owner, field, r, j in entry.derived_slots:  # `made` keeps them until the call ends
            setattr(native if owner is None else getattr(native, owner), field, _view(made[r][j]))
        if out is not None:
            native.output = _fast_view(out) if _to_dlpack is not None else _view(out)
        runner.run_native(native, ws, device)
    return out if out is not None else tensors[entry.result_index]
