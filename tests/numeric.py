"""The one numeric check helper of the test suite.

Two tiers (see tests/README.md):

* exact tier -- inputs and weights are small integers (or small dyadic values of a quantized
  format) chosen so that every product and partial sum is exactly representable in fp32; any
  executor then has to agree bitwise with the float64 reference, so an indexing bug is a hard
  mismatch instead of noise. ``assert_exact``.
* error-budget tier -- random data; the relative L2 error ||a - r|| / ||r|| against the float64
  reference must stay within a budget derived from the rounding points of docs/semantics.md,
  ``error_budget``. ``assert_close_to_reference``.

Plus the small generators the tests share: poisoned outputs (unwritten elements fail), random
floats without zeros, nonzero small integers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

# Unit roundoff u = 2^-(significand bits) of round-to-nearest: |round(x) - x| <= u |x| for a
# normal x. e4m3 keeps 3 stored mantissa bits, e2m1 one.
UNIT_ROUNDOFF = {
    torch.float64: 2.0**-53,
    torch.float32: 2.0**-24,
    torch.float16: 2.0**-11,
    torch.bfloat16: 2.0**-8,
    "e4m3": 2.0**-4,
    "e2m1": 2.0**-2,
}

_INT_SENTINEL = -(2**30) + 7  # never a valid row index, expert id or small-integer result


def _first_mismatch(a: torch.Tensor, b: torch.Tensor) -> str:
    idx = (a != b).nonzero()
    n = idx.shape[0]
    first = tuple(int(i) for i in idx[0])
    return f"{n} of {a.numel()} elements differ; first at {first}: actual {a[first].item()!r}, expected {b[first].item()!r}"


def assert_exact(actual: torch.Tensor, expected: torch.Tensor, what: str = "") -> None:
    """Exact tier: same shape and every element equal (values compared in float64 / int64).

    ``expected`` is usually the float64 reference; ``actual`` the low-precision executor output.
    Values are compared after widening, so an fp32 output equals the float64 reference only if
    the reference value is exactly representable -- which the exact-tier inputs guarantee.
    """
    label = f"{what}: " if what else ""
    if tuple(actual.shape) != tuple(expected.shape):
        raise AssertionError(
            f"{label}shape {tuple(actual.shape)} != expected {tuple(expected.shape)}"
        )
    if actual.numel() == 0:
        return
    if actual.is_floating_point() or expected.is_floating_point():
        a = actual.detach().cpu().to(torch.float64)
        b = expected.detach().cpu().to(torch.float64)
        if torch.isnan(a).any() or torch.isnan(b).any():
            nan_at = tuple(int(i) for i in torch.isnan(a).logical_or(torch.isnan(b)).nonzero()[0])
            raise AssertionError(
                f"{label}NaN at {nan_at} (actual {a[nan_at].item()}, expected {b[nan_at].item()})"
            )
    else:
        a = actual.detach().cpu().to(torch.int64)
        b = expected.detach().cpu().to(torch.int64)
    if not torch.equal(a, b):
        raise AssertionError(label + _first_mismatch(a, b))


def relative_l2_error(actual: torch.Tensor, reference_f64: torch.Tensor) -> float:
    """||a - r|| / ||r|| in float64; 0 when both are zero, inf when only r is zero."""
    a = actual.detach().cpu().to(torch.float64)
    r = reference_f64.detach().cpu().to(torch.float64)
    num = torch.linalg.vector_norm(a - r).item()
    den = torch.linalg.vector_norm(r).item()
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


def assert_close_to_reference(
    actual: torch.Tensor,
    reference_f64: torch.Tensor,
    *,
    rel_l2: float,
    max_abs: float | None = None,
    what: str = "",
) -> float:
    """Error-budget tier: relative L2 error within ``rel_l2`` (and max |a - r| within ``max_abs``).

    NaN or Inf in either tensor never passes (a NaN would make every comparison False and hide
    an unwritten output). Returns the measured relative L2 error, so a test can log it.
    """
    label = f"{what}: " if what else ""
    if tuple(actual.shape) != tuple(reference_f64.shape):
        raise AssertionError(
            f"{label}shape {tuple(actual.shape)} != reference {tuple(reference_f64.shape)}"
        )
    a = actual.detach().cpu().to(torch.float64)
    r = reference_f64.detach().cpu().to(torch.float64)
    for name, t in (("actual", a), ("reference", r)):
        bad = ~torch.isfinite(t)
        if bad.any():
            at = tuple(int(i) for i in bad.nonzero()[0])
            raise AssertionError(
                f"{label}{name} has {int(bad.sum())} non-finite elements; first at {at}: {t[at].item()}"
            )
    if a.numel() == 0:
        return 0.0
    err = relative_l2_error(a, r)
    abs_err = (a - r).abs()
    worst = tuple(int(i) for i in (abs_err == abs_err.max()).nonzero()[0])
    detail = (
        f"rel_l2 {err:.3e} (budget {rel_l2:.3e}), max |a - r| {abs_err.max().item():.3e} at {worst}"
        f" (actual {a[worst].item():.6g}, reference {r[worst].item():.6g}, ||r|| "
        f"{torch.linalg.vector_norm(r).item():.3e})"
    )
    if not err <= rel_l2:
        raise AssertionError(f"{label}relative L2 error too large: {detail}")
    if max_abs is not None and not abs_err.max().item() <= max_abs:
        raise AssertionError(f"{label}max abs error above {max_abs:.3e}: {detail}")
    return err


@dataclass
class Budget:
    """An error budget and the terms it was added up from (for failure messages).

    ``rel_l2`` bounds the whole tensor. Requantization flips are rare but each one moves a
    whole output row, so rows are also checked one by one: every row must be within
    ``row_rel`` (the budget without flips) except at most ``outlier_rows`` rows, which must
    still be within ``outlier_rel`` (row_rel plus two flips of the coarsest requantization).
    """

    rel_l2: float
    row_rel: float = math.inf
    outlier_rows: int = 0
    outlier_rel: float = math.inf
    terms: dict = field(default_factory=dict)

    def __str__(self) -> str:
        parts = ", ".join(f"{k}={v:.2e}" for k, v in self.terms.items())
        return (
            f"Budget(rel_l2={self.rel_l2:.3e}, row_rel={self.row_rel:.3e} except "
            f"{self.outlier_rows} rows within {self.outlier_rel:.3e}: {parts})"
        )


def error_budget(
    *,
    out_dtype: torch.dtype,
    k1: int,
    k2: int,
    top_k: int = 1,
    requant: Sequence[tuple] = (),
    safety: float = 2.0,
    gemm_accumulator_rel: float = 0.0,
) -> Budget:
    """Relative-L2 budget of an executor output against the float64 reference.

    The reference (docs/semantics.md) models every rounding point exactly: it sees the same
    low-precision inputs, rounds GEMM inputs to the compute dtype and requantizes where the
    executor does, but it accumulates and evaluates activations in float64 and does not round
    the final sum. What is left are these sources, each bounded here:

    * ``out``: the executor rounds the fp32 sum once to ``out_dtype``; round to nearest moves
      each element by at most u(out) relative (u = 2^-8 bf16, 2^-11 fp16, 2^-24 fp32), so the
      relative L2 error of the whole tensor is at most u(out). (The often-quoted 2^-9 for bf16 is
      the typical size; 2^-8 is the bound.)
    * ``accumulate``: fp32 dot products of length K. For data with random signs the rounding
      errors behave like a random walk: about sqrt(K) u32 times sum |x_i w_i|, and that sum is
      about sqrt(K) |x . w|. So K u32 relative per GEMM; GEMM1 (K = k1), GEMM2 (K = k2), the
      finalize sum over top_k slots and a few ulps for fp32 activation functions (exp, erf,
      tanh in libm are within 1-4 ulps; 16 ulps allowed) add up.
    * ``requant`` (one entry ``(fmt, count)`` per requantization of ``count`` elements in all
      into a format with unit roundoff u_q: ``torch.bfloat16``/``torch.float16`` for a round to
      the compute dtype, ``"e4m3"``, ``"e2m1"``): the executor's fp32 value differs from the
      reference's by the accumulate term d (relative), so it lands on the other side of a
      rounding midpoint with probability about d / u_q. A flip moves that element by one code
      step, at most 2 u_q relative (e4m3: 1/8 at the bottom of a binade, i.e. 1/16 of the true
      value on either side of the midpoint). Expected flipped fraction d / u_q, plus one flip
      in the whole tensor always allowed (1 / count), each of the size of a typical element,
      gives a relative L2 contribution of 2 u_q sqrt(d / u_q + 1 / count). This also covers a
      dynamic scale (amax / 448) that moved by d: every code moves by d relative and flips with
      the same probability. GEMM2 with random weights carries the intermediate's relative error
      to the output unchanged on average.

    * ``gemm_accumulator_rel``: tensor cores whose accumulator keeps fewer bits than fp32 (Hopper's
      FP8 WGMMA sums each K chunk of up to 128 with about 14 significant bits before the kernel
      promotes it to fp32; DeepSeek-V3 report, section 3.3.2) add this relative error per GEMM.

    The sum of the terms times ``safety`` (default 2, the FlashAttention-3 convention of
    "within twice the error of a same-precision computation") is the budget. The terms model
    random, independently signed data as the tests generate it; they are not worst-case bounds
    for adversarial data.
    """
    u32 = UNIT_ROUNDOFF[torch.float32]
    terms = {}
    terms["out"] = UNIT_ROUNDOFF[out_dtype]
    accumulate = (k1 + k2 + top_k + 16) * u32 + 2.0 * gemm_accumulator_rel
    terms["accumulate"] = accumulate
    row_rel = safety * (terms["out"] + accumulate)
    expected_flips = 0.0
    for i, (fmt, count) in enumerate(requant):
        uq = UNIT_ROUNDOFF[fmt]
        flips = accumulate / uq + 1.0 / max(int(count), 1)
        terms[f"requant{i}:{fmt}"] = 2.0 * uq * math.sqrt(flips)
        expected_flips += int(count) * accumulate / uq
    # a flip touches one row; allow the expected count plus three standard deviations (Poisson)
    # plus one per requantization, so a single unlucky midpoint never fails a correct kernel
    outliers = math.ceil(expected_flips + 3.0 * math.sqrt(expected_flips)) + len(requant)
    # one flip moves a row by at most 2 u_q |h_i| / ||h|| <= 2 u_q (relative, random W2)
    coarsest = max((UNIT_ROUNDOFF[fmt] for fmt, _ in requant), default=0.0)
    outlier_rel = row_rel + 2.0 * math.sqrt(2.0) * coarsest
    return Budget(
        rel_l2=safety * sum(terms.values()),
        row_rel=row_rel,
        outlier_rows=outliers,
        outlier_rel=outlier_rel,
        terms=terms,
    )


def assert_within_budget(
    actual: torch.Tensor, reference_f64: torch.Tensor, budget: Budget, what: str = ""
) -> float:
    """``assert_close_to_reference`` with ``budget.rel_l2``, then the row check of ``Budget``:
    rows of a 2-D output whose own relative L2 error exceeds ``budget.row_rel`` may number at
    most ``budget.outlier_rows`` (a zero reference row must be matched exactly)."""
    err = assert_close_to_reference(actual, reference_f64, rel_l2=budget.rel_l2, what=what)
    if actual.dim() != 2 or actual.numel() == 0:
        return err
    a = actual.detach().cpu().to(torch.float64)
    r = reference_f64.detach().cpu().to(torch.float64)
    num = torch.linalg.vector_norm(a - r, dim=1)
    den = torch.linalg.vector_norm(r, dim=1)
    row_err = torch.where(den > 0, num / den.clamp_min(1e-300), torch.where(num > 0, math.inf, 0.0))
    bad = (row_err > budget.row_rel).nonzero().flatten().tolist()
    if len(bad) > budget.outlier_rows or any(float(row_err[i]) > budget.outlier_rel for i in bad):
        worst = sorted(bad, key=lambda i: -float(row_err[i]))[:5]
        listing = ", ".join(f"row {i}: {float(row_err[i]):.3e}" for i in worst)
        raise AssertionError(
            f"{what + ': ' if what else ''}{len(bad)} rows above the per-row budget "
            f"{budget.row_rel:.3e} (at most {budget.outlier_rows} allowed, each within "
            f"{budget.outlier_rel:.3e}): {listing}"
        )
    return err


def poison_like(t: torch.Tensor) -> torch.Tensor:
    """A tensor shaped like ``t`` filled with NaN (floats) or a sentinel (ints), so an output
    element the executor forgot to write makes the comparison fail."""
    out = torch.empty_like(t)
    if out.is_floating_point():
        out.fill_(float("nan"))
    else:
        out.fill_(_INT_SENTINEL if out.dtype in (torch.int32, torch.int64) else -1)
    return out


def poison(shape, dtype: torch.dtype) -> torch.Tensor:
    """``poison_like`` for a shape and dtype."""
    return poison_like(torch.empty(shape, dtype=dtype))


def _generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


def rand_float(
    shape, dtype: torch.dtype = torch.float32, seed: int = 0, scale: float = 1.0
) -> torch.Tensor:
    """Normal random values of ``dtype`` times ``scale``, with no zeros (a zero would hide a
    missing multiply and makes relative errors undefined): |v| >= 1/16 of scale."""
    g = _generator(seed)
    v = torch.randn(tuple(shape), generator=g, dtype=torch.float64)
    sign = torch.where(v < 0, -1.0, 1.0).to(torch.float64)
    v = sign * v.abs().clamp_min(1.0 / 16)
    return (v * scale).to(dtype)


def small_int(
    shape, lo: int = -4, hi: int = 4, dtype: torch.dtype = torch.float32, seed: int = 0
) -> torch.Tensor:
    """Nonzero integers in [lo, hi] (inclusive) stored as ``dtype``: exact in every float
    format of the suite as long as |v| <= 16 (e4m3) or v in {+-1..4, 6} (e2m1)."""
    if lo > hi:
        raise ValueError(f"small_int: lo must be <= hi, got lo={lo}, hi={hi}")
    values = [v for v in range(lo, hi + 1) if v != 0]
    if not values:
        raise ValueError(f"small_int: [{lo}, {hi}] holds no nonzero integer")
    g = _generator(seed)
    idx = torch.randint(0, len(values), tuple(shape), generator=g)
    return torch.tensor(values, dtype=torch.float64)[idx].to(dtype)
