"""Properties of the CPU executor on canonical MoeProblems: inputs are never modified, results
are bitwise deterministic across calls and thread counts, and the workspace is checked (too
small or missing raises, its size grows with the token count).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from flashinfer import _C
from flashinfer.fused_moe.problem import MoeProblem
from moe_builders import build_problem
from moe_checks import run_native

_OUTPUT_FIELDS = (
    "output",
    "permuted_output",
    "topk_ids_out",
    "topk_weights_out",
    "expanded_to_permuted_out",
)


def _input_tensors(p: MoeProblem):
    """(name, tensor) for every input tensor reachable from the problem."""
    out = []

    def walk(prefix, obj):
        for f in dataclasses.fields(obj):
            if f.name in _OUTPUT_FIELDS:
                continue
            v = getattr(obj, f.name)
            if isinstance(v, torch.Tensor):
                out.append((prefix + f.name, v))
            elif dataclasses.is_dataclass(v):
                walk(prefix + f.name + ".", v)

    walk("", p)
    return out


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().reshape(-1).view(torch.uint8).clone()


def test_inputs_not_modified():
    p = build_problem(
        weights="nvfp4:packed:swizzled",
        biases=True,
        input_quant="fp8_token",
        inter_quant="fp8_group:16",
        routing="DeepSeekV3_grouped",
        E=16,
        k=4,
    )
    before = [(name, _bits(t), t.stride()) for name, t in _input_tensors(p)]
    assert len(before) >= 8
    run_native(p)
    for (name, bits, stride), (_, t) in zip(before, _input_tensors(p)):
        assert t.stride() == stride, name
        assert torch.equal(_bits(t), bits), f"{name} was modified"


@pytest.mark.parametrize("weights", ["bf16", "e4m3:16x0", "nvfp4:packed:linear"])
def test_deterministic_across_calls_and_threads(weights):
    results = []
    for threads in (1, 2, 2):
        p = build_problem(weights=weights, T=64, E=8, k=2, H=48, I=32, seed=11)
        run_native(p, num_threads=threads)
        results.append([_bits(getattr(p, f)) for f in _OUTPUT_FIELDS if getattr(p, f) is not None])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b), "outputs differ between calls / thread counts"


def test_workspace_too_small_raises():
    p = build_problem(T=64, E=8, k=2)
    native = p.to_native()
    need = int(_C.workspace_size(native, _C.DeviceKind.CPU))
    assert need > 0, "a 64-token problem needs scratch for its permutation"
    with pytest.raises(ValueError, match="workspace"):
        _C.run_cpu(native, torch.empty(need - 1, dtype=torch.uint8), 1)
    with pytest.raises(ValueError, match="workspace"):
        _C.run_cpu(native, None, 1)


def test_workspace_size_monotonic_in_tokens():
    sizes = [
        int(_C.workspace_size(build_problem(T=t).to_native(), _C.DeviceKind.CPU))
        for t in (1, 7, 64)
    ]
    assert sizes == sorted(sizes), sizes
