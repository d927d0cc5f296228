"""Every numerical choice of the finite-difference check, each with its reason.

Notation: ``f`` is the loss, ``x`` one parameter element, ``h`` the step, ``eps`` the machine
epsilon of the coarser of the parameter's and the loss's dtype.

Error model of the central difference ``(f(x+h) - f(x-h)) / 2h``:

* truncation: ``h**2 * |f'''| / 6``;
* rounding: the loss is only known to ``noise = noise_ulps * eps * |f|``, so the quotient
  carries ``noise / h``.

The step minimising their sum is ``h* = (3 noise / |f'''|) ** (1/3)``. With ``|f'''| ~ |f|`` this
is the textbook ``eps**(1/3) * max(1, |x|)``; neural-net losses are often far flatter than their
value (partials ~1e-4 against a loss of ~0.25), where a larger step is much more accurate, so the
engine measures ``|f'''|`` on a few elements of each tensor (the pilot) and takes ``h*`` clipped
to ``[eps**(1/3), eps**(1/5)] * max(1, |x|)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

from gradcheck.errors import InputError

MAX_NOISE_ULPS = 2.0**52  # float64 has 52 fraction bits: that many ulps leave none
MAX_RTOL = 0.5  # |2n - n| <= 0.5 * |2n|: from here on a factor-2 bug passes


def number(
    option: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    closed_low: bool = False,
    what: str,
) -> float:
    """Validate a numeric option: a real, finite number in ``(low, high)`` (``[low, high)``
    with ``closed_low``), else :class:`InputError` naming ``option`` and saying ``what`` it
    must be. NaN and infinities are refused: a non-finite setting makes every comparison
    built on it meaningless, and an infinite tolerance passes anything."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Real, np.floating)):
        raise InputError(f"{option} must be {what}, got {value!r} ({type(value).__name__})")
    as_float = float(value)
    inside = math.isfinite(as_float)
    if inside and low is not None:
        inside = as_float >= low if closed_low else as_float > low
    if inside and high is not None:
        inside = as_float < high
    if not inside:
        raise InputError(f"{option} must be {what}, got {value!r}")
    return as_float


@dataclass(frozen=True)
class Tolerance:
    """How far a hand-written partial may sit from the finite-difference one and still pass.

    An element passes when ``|analytic - numeric| <= safety * err + rtol * max(|analytic|,
    |numeric|)``, where ``err`` is the engine's estimate of the finite-difference error of that
    element (truncation + rounding, see :func:`central_error`).

    Attributes:
        safety: how many estimated errors a discrepancy must exceed to count as wrong. The
            estimate is an order of magnitude, not a bound, hence a margin of 10.
        noise_ulps: how many units in the last place of ``|f|`` one loss evaluation is assumed
            to be off by (sums over a batch round more than one ulp).
        rtol: relative floor; ``None`` means ``sqrt(eps)`` of the parameter dtype, the accuracy
            a hand-written gradient in that precision can promise (its own rounding).
    """

    safety: float = 10.0
    noise_ulps: float = 32.0
    rtol: float | None = None

    def __post_init__(self) -> None:
        number("Tolerance.safety", self.safety, low=0.0, what="> 0 and finite")
        number(
            "Tolerance.noise_ulps",
            self.noise_ulps,
            low=0.0,
            high=MAX_NOISE_ULPS,
            what=f"a finite number in (0, {MAX_NOISE_ULPS:.3g}) (at 2**52 ulps a float64 loss "
            "has no significant digit left)",
        )
        if self.rtol is not None:
            number(
                "Tolerance.rtol",
                self.rtol,
                low=0.0,
                high=MAX_RTOL,
                closed_low=True,
                what=f"None or a finite number in [0, {MAX_RTOL:g}) (a relative floor of "
                f"{MAX_RTOL:g} passes a partial twice its true size, a factor-2 bug)",
            )

    def relative_floor(self, dtype: np.dtype) -> float:
        """The relative floor for a parameter of this dtype."""
        return float(np.sqrt(machine_eps(dtype))) if self.rtol is None else self.rtol


def step_rule(richardson: bool) -> str:
    """The step rule in words: the one description the report, the pytest plugin's header and
    the command line show (keep it true to :func:`optimal_step` and the engine)."""
    refine = "on every element" if richardson else "where the verdict needs it"
    return (
        "central differences, h = (3 noise / |f'''|)^(1/3) from a pilot, clipped to "
        f"[eps^(1/3), eps^(1/5)] * max(1, |x|); Richardson on h/4, h/2 {refine}"
    )


def machine_eps(dtype: np.dtype) -> float:
    """Machine epsilon of a floating dtype (float64 for anything else)."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return float(np.finfo(dtype).eps)
    return float(np.finfo(np.float64).eps)


def coarser_dtype(*dtypes: np.dtype | None) -> np.dtype:
    """The floating dtype with the largest epsilon among ``dtypes`` (float64 if none is).

    A hand-written gradient computed in float32 is only as precise as float32, even for
    float64 parameters: the tolerance's relative floor must come from the coarser of the two.
    """
    floats = [np.dtype(d) for d in dtypes if d is not None and np.issubdtype(d, np.floating)]
    return max(floats, key=machine_eps, default=np.dtype(np.float64))


def coarser_eps(*dtypes: np.dtype) -> float:
    """The largest epsilon among dtypes: the loss is only as precise as its coarsest input."""
    return max(machine_eps(d) for d in dtypes)


def step_bounds(x: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest step allowed at ``x``.

    ``eps**(1/3)`` is optimal when ``|f'''| ~ |f|``; below it rounding dominates whatever the
    curvature. ``eps**(1/5)`` is optimal for the pilot's third differences; above it the step
    crosses kinks (ReLU, max) too often. Both scale with ``max(1, |x|)`` so the step stays
    representable for large parameters.
    """
    scale = np.maximum(1.0, np.abs(x.astype(np.float64)))
    return eps ** (1 / 3) * scale, eps ** (1 / 5) * scale


def pilot_step(x: np.ndarray, eps: float) -> np.ndarray:
    """Step for estimating ``f'''`` by third differences: ``eps**(1/5) * max(1, |x|)``.

    Third differences carry rounding ``noise / h**3``, so they need a larger step than first
    differences; ``eps**(1/5)`` balances that against their own ``h**2`` truncation.
    """
    return step_bounds(x, eps)[1]


def optimal_step(x: np.ndarray, noise: float, third: float, eps: float) -> np.ndarray:
    """Central-difference step minimising truncation + rounding, clipped to :func:`step_bounds`.

    ``h* = (3 noise / |f'''|) ** (1/3)``; ``third`` is the largest ``|f'''|`` the pilot saw on
    this tensor (a larger value is the safe side: a smaller step).
    """
    low, high = step_bounds(x, eps)
    if third <= 0 or not np.isfinite(third):
        return high
    return np.clip((3.0 * noise / third) ** (1 / 3), low, high)


def taken_steps(x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The points ``x + h`` and ``x - h`` in ``x``'s dtype, and the distance actually spanned.

    ``x + h`` is rounded to the dtype, so the step taken is ``(x + h) - x``, not ``h``
    (scipy's ``_numdiff``, numdifftools' ``make_exact``). Dividing by the true span removes
    that representation error entirely.
    """
    with np.errstate(over="ignore"):
        h = h.astype(x.dtype)
        upper = x + h
        lower = x - h
    span = upper.astype(np.float64) - lower.astype(np.float64)
    # a point past the dtype's largest value is infinite: no difference quotient there (NaN,
    # a nonfinite element) rather than a finite value divided by an infinite span (0)
    return upper, lower, np.where(np.isfinite(upper) & np.isfinite(lower), span, np.nan)


def evaluation_noise(values: np.ndarray, eps: float, tol: Tolerance) -> np.ndarray:
    """Absolute uncertainty of loss values: ``noise_ulps * eps * |f|`` (at least a tiny floor)."""
    return tol.noise_ulps * eps * np.maximum(np.abs(values), np.finfo(np.float64).tiny)


def central_error(noise: np.ndarray, span: np.ndarray, third: float) -> np.ndarray:
    """Error estimate of a central difference: rounding ``2 noise / span`` + truncation.

    ``span`` is ``2h``; truncation is ``h**2 |f'''| / 6`` with the pilot's ``|f'''|``.
    """
    half = span / 2.0
    with np.errstate(over="ignore", invalid="ignore"):  # inf: a bound that passes nothing
        return 2.0 * noise / span + half**2 * third / 6.0


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    """The one error metric used everywhere: ``|a - n| / max(|a|, |n|)``, 0 where both are 0.

    Symmetric, bounded by 2, and 2 exactly when the signs are opposite. Near-zero partials make
    it meaningless, which is why the verdict uses the error estimate, not this number.
    """
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    scale = np.maximum(np.abs(analytic), np.abs(numeric))
    # each side divided first: |a - n| itself overflows for a = -n = 1e308
    with np.errstate(invalid="ignore", divide="ignore"):
        safe = np.where(scale > 0, scale, 1.0)
        return np.where(scale > 0, np.abs(analytic / safe - numeric / safe), 0.0)


def within(discrepancy: Any, bound: Any) -> np.ndarray:
    """Where ``|discrepancy| <= bound`` is proven: both finite and the inequality holds.

    Every pass decision goes through here (fail closed): a NaN or infinite discrepancy or bound
    (a tolerance that overflowed on partials near 1e160, a loss that overflowed) never passes;
    it can only fail or stay undecided.
    """
    discrepancy = np.asarray(discrepancy, dtype=np.float64)
    bound = np.asarray(bound, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.isfinite(discrepancy) & np.isfinite(bound) & (np.abs(discrepancy) <= bound)


def beyond(discrepancy: Any, bound: Any) -> np.ndarray:
    """Where ``|discrepancy| > bound`` is proven: both finite and the inequality holds.

    Not the negation of :func:`within`: where either is not finite, neither is proven.
    """
    discrepancy = np.asarray(discrepancy, dtype=np.float64)
    bound = np.asarray(bound, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.isfinite(discrepancy) & np.isfinite(bound) & (np.abs(discrepancy) > bound)


def euclidean_norm(values: np.ndarray) -> float:
    """``||values||_2`` without overflow: scaled by the largest magnitude first.

    ``sqrt(sum(v**2))`` overflows to inf once an element passes ~1e154 although the norm is
    representable; an inf there would become an infinite tolerance.
    """
    values = np.abs(np.asarray(values, dtype=np.float64))
    if values.size == 0:
        return 0.0
    largest = float(values.max())
    if largest == 0.0 or not math.isfinite(largest):
        return largest
    return largest * float(np.sqrt(np.sum((values / largest) ** 2)))
