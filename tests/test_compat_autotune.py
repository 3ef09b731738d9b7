"""flashinfer.autotune / flashinfer.autotuner.autotune: flashinfer's context manager, with its
signature. The CPU executor has no GEMM tactics, so CPU calls inside a tuning block give the bits
of calls outside and measure nothing (no cache file appears); the tuner itself is tested in
test_autotuner.py and, on a GPU, test_gpu_autotuner.py."""

from __future__ import annotations

import inspect

import flashinfer
import pytest
import torch
from flashinfer.autotuner import autotune


def _moe_call(gen_state):
    gen = torch.Generator().manual_seed(gen_state)
    t, h, i, e, k = 5, 32, 16, 4, 2
    x = torch.randn(t, h, generator=gen).bfloat16()
    w1 = (torch.randn(e, 2 * i, h, generator=gen) / 4).bfloat16()
    w2 = (torch.randn(e, h, i, generator=gen) / 4).bfloat16()
    ids = torch.randint(0, e, (t, k), generator=gen, dtype=torch.int32)
    scales = torch.rand(t, k, generator=gen)
    return flashinfer.cutlass_fused_moe(x, ids, scales, w1, w2, torch.bfloat16, None)[0]


def test_same_object_at_both_paths():
    assert flashinfer.autotune is autotune
    assert flashinfer.autotuner.autotune is autotune


def test_signature_matches_flashinfer():
    params = inspect.signature(autotune).parameters
    assert [(p.name, p.default) for p in params.values()] == [
        ("tune_mode", True),
        ("cache", None),
        ("tuning_buckets", None),
        ("round_up", None),
        ("skip_ops", None),
    ]


def test_docstring_says_what_it_measures():
    doc = " ".join(autotune.__doc__.split())
    assert "tune_max_num_tokens" in doc and "FLASHINFER_MOE_AUTOTUNE_CACHE" in doc


@pytest.mark.parametrize("tune_mode", [True, False])
def test_calls_inside_give_the_bits_of_calls_outside(tune_mode, tmp_path):
    seed = int(torch.randint(0, 2**31 - 1, ()).item())
    outside = _moe_call(seed)
    cache = tmp_path / "tactics.json"
    with autotune(tune_mode, cache=str(cache), tuning_buckets=(1, 8), skip_ops={"x"}) as ctx:
        assert ctx is None
        inside = _moe_call(seed)
        with autotune():  # nests
            nested = _moe_call(seed)
    assert torch.equal(inside, outside) and torch.equal(nested, outside)
    assert not cache.exists()


def test_decorator_and_exceptions():
    @autotune()
    def f():
        return 7

    assert f() == 7
    with pytest.raises(KeyError):
        with autotune(False):
            raise KeyError("passes through")


@pytest.mark.parametrize(
    "kwargs,error,name",
    [
        (dict(tune_mode="yes"), TypeError, "tune_mode"),
        (dict(cache=3), TypeError, "cache"),
        (dict(tuning_buckets=8), TypeError, "tuning_buckets"),
        (dict(tuning_buckets=(1, "8")), TypeError, "tuning_buckets"),
        (dict(tuning_buckets=(0, 8)), ValueError, "tuning_buckets"),
        (dict(round_up=2), TypeError, "round_up"),
        (dict(skip_ops=7), TypeError, "skip_ops"),
        (dict(skip_ops={"fused_moe", 3}), TypeError, "skip_ops"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, error, name):
    with pytest.raises(error, match=name):
        with autotune(**kwargs):
            pass
    with autotune(False):  # the tuner's state is intact after the refusals
        assert _moe_call(1).shape == (5, 32)
