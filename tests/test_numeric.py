"""Tests of the suite's own numeric helper (tests/numeric.py): a check that cannot fail proves
nothing, so each helper is shown to fail on the smallest error it must catch (one ulp for the
exact tier, an error just over the budget or a NaN for the error-budget tier) and to pass on
the matching correct value.
"""

from __future__ import annotations

import math

import pytest
import torch
from numeric import (
    assert_close_to_reference,
    assert_exact,
    assert_within_budget,
    error_budget,
    poison,
    poison_like,
    rand_float,
    small_int,
)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_assert_exact_fails_on_one_ulp(dtype):
    expected = small_int((4, 8), dtype=torch.float64, seed=1)
    actual = expected.to(dtype)
    assert_exact(actual, expected)  # small integers are exact in every float format
    bumped = actual.clone()
    # one more in the bit pattern of a finite nonzero value is one ulp further from zero
    bits = bumped.view(torch.int32 if dtype == torch.float32 else torch.int16)
    bits[2, 3] += 1
    assert (bumped != actual).sum() == 1
    with pytest.raises(AssertionError, match=r"1 of 32 elements differ; first at \(2, 3\)"):
        assert_exact(bumped, expected, "bumped")


def test_assert_exact_fails_on_nan_shape_and_int_mismatch():
    expected = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(AssertionError, match="NaN"):
        assert_exact(poison_like(expected.float()), expected)
    with pytest.raises(AssertionError, match="shape"):
        assert_exact(torch.zeros(2, 3), expected)
    ids = torch.arange(6, dtype=torch.int32).reshape(3, 2)
    assert_exact(ids, ids.to(torch.int64))
    with pytest.raises(AssertionError, match="first at"):
        assert_exact(ids + (ids == 5).to(torch.int32), ids)


def test_assert_close_to_reference_budget_edge():
    reference = rand_float((16, 32), torch.float64, seed=2)
    direction = rand_float((16, 32), torch.float64, seed=3)
    direction *= torch.linalg.vector_norm(reference) / torch.linalg.vector_norm(direction)
    budget = 1e-3
    within = reference + 0.99 * budget * direction  # relative L2 error 0.99 budget
    over = reference + 1.01 * budget * direction  # relative L2 error 1.01 budget
    err = assert_close_to_reference(within, reference, rel_l2=budget)
    assert err == pytest.approx(0.99 * budget, rel=1e-9)
    with pytest.raises(AssertionError, match="relative L2 error too large"):
        assert_close_to_reference(over, reference, rel_l2=budget)


def test_assert_close_to_reference_fails_on_nan_and_inf():
    reference = rand_float((4, 4), torch.float64, seed=4)
    for bad in (math.nan, math.inf):
        actual = reference.clone()
        actual[1, 2] = bad
        with pytest.raises(AssertionError, match=r"non-finite elements; first at \(1, 2\)"):
            assert_close_to_reference(actual, reference, rel_l2=math.inf)
    with pytest.raises(AssertionError, match="reference has 1 non-finite"):
        nan_ref = reference.clone()
        nan_ref[0, 0] = math.nan
        assert_close_to_reference(reference, nan_ref, rel_l2=math.inf)


def test_assert_close_to_reference_max_abs():
    reference = torch.ones(8, 8, dtype=torch.float64)
    actual = reference.clone()
    actual[3, 3] += 0.5  # relative L2 error 0.5 / 8 = 0.0625
    assert_close_to_reference(actual, reference, rel_l2=0.07, max_abs=0.5)
    with pytest.raises(AssertionError, match="max abs error"):
        assert_close_to_reference(actual, reference, rel_l2=0.07, max_abs=0.49)


def test_assert_within_budget_catches_one_bad_row():
    budget = error_budget(out_dtype=torch.float32, k1=64, k2=32)
    assert budget.outlier_rows == 0 and budget.rel_l2 >= budget.row_rel > 0
    reference = rand_float((64, 16), torch.float64, seed=5)
    actual = reference.clone()
    # one row off by 4x its per-row budget: the whole tensor stays within budget, the row fails
    actual[7] *= 1 + 4 * budget.row_rel
    assert_close_to_reference(actual, reference, rel_l2=budget.rel_l2)
    with pytest.raises(AssertionError, match="row 7"):
        assert_within_budget(actual, reference, budget)


@pytest.mark.parametrize(
    "dtype, check",
    [
        (torch.float32, lambda t: torch.isnan(t).all()),
        (torch.bfloat16, lambda t: torch.isnan(t).all()),
        (torch.int32, lambda t: (t < -(2**29)).all()),
        (torch.int64, lambda t: (t < -(2**29)).all()),
        (torch.uint8, lambda t: (t == 255).all()),
    ],
    ids=str,
)
def test_poison_like_poisons(dtype, check):
    template = torch.zeros(5, 3, dtype=dtype)
    poisoned = poison_like(template)
    assert poisoned.shape == template.shape and poisoned.dtype == dtype
    assert poisoned.data_ptr() != template.data_ptr()
    assert check(poisoned)
    assert (template == 0).all(), "the template must not be touched"
    assert check(poison((2, 2), dtype))


def test_generators_are_nonzero_and_reproducible():
    a = rand_float((100,), torch.float32, seed=6)
    assert torch.equal(a, rand_float((100,), torch.float32, seed=6))
    assert (a.abs() >= 1 / 16).all()
    ints = small_int((100,), lo=-2, hi=2, seed=7)
    assert set(ints.tolist()) <= {-2.0, -1.0, 1.0, 2.0}
    with pytest.raises(ValueError):
        small_int((1,), lo=0, hi=0)
