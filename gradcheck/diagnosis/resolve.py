"""Which numbers the diagnosis may build on, and how much of the error each element carries.

A class (sign flipped, a factor, "the loss does not depend on it") is a claim about the true
partial, so it may only rest on numeric partials resolved well enough to support it. Each
element's ``error`` (:attr:`ParamResult.fd_error`, the engine's estimate of ``|numeric - true|``)
decides:

* **zero within its error**: ``|numeric| <= error``: the loss may not depend on the element;
* **converged**: ``error <= CONVERGED_FRACTION * |numeric|``: the numeric partial is known to
  10%, enough to compare ratios numeric / analytic; its uncertainty is carried into them;
* otherwise **unresolved**: the element is wrong (the discrepancy exceeds the tolerance) but
  nothing finer may be said: "numeric partial did not converge".

All arithmetic here tolerates +-1e308 and NaN without a RuntimeWarning.
"""

from __future__ import annotations

import numpy as np

from gradcheck.core.compare import ParamResult
from gradcheck.core.numerics import machine_eps

# A numeric partial known to this fraction of itself supports a ratio finding; looser ones
# say only that the element is wrong.
CONVERGED_FRACTION = 0.1
# Ratios agree when they differ by less than this many estimated errors: the estimate is an
# order of magnitude, so one estimate would split true groups; ten would merge coincidences.
ERROR_MARGIN = 3.0


def numeric_error(p: ParamResult) -> np.ndarray:
    """The estimated ``|numeric - true|`` of every element (the engine's own field)."""
    return p.fd_error


def hand_rounding(p: ParamResult) -> float:
    """Relative accuracy a hand-written partial in ``p``'s dtype can promise: ``sqrt(eps)``
    (its own rounding through a backward pass), the tolerance rule's relative floor."""
    return float(np.sqrt(machine_eps(np.dtype(p.dtype))))


def zero_within_error(p: ParamResult) -> np.ndarray:
    """Elements whose numeric partial is 0 within its error: the loss may not depend on them."""
    error = numeric_error(p)
    with np.errstate(invalid="ignore"):
        return np.isfinite(p.numeric) & np.isfinite(error) & (np.abs(p.numeric) <= error)


def converged(p: ParamResult) -> np.ndarray:
    """Elements whose numeric partial is known well enough for a ratio to mean something."""
    error = numeric_error(p)
    with np.errstate(invalid="ignore", over="ignore"):
        return (
            np.isfinite(p.numeric)
            & np.isfinite(error)
            & (ERROR_MARGIN * error <= CONVERGED_FRACTION * np.abs(p.numeric))
        )


def ratios(p: ParamResult) -> tuple[np.ndarray, np.ndarray]:
    """``numeric / analytic`` per element and its uncertainty (NaN where either is undefined).

    The uncertainty is ``ERROR_MARGIN`` estimated errors of the numeric partial plus the
    hand-written value's own rounding, both relative to ``|analytic|``; ratios agree when
    their intervals overlap.
    """
    if p.analytic is None:
        nan = np.full(p.size, np.nan)
        return nan, nan.copy()
    a = p.analytic
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = p.numeric / a
        sigma = (ERROR_MARGIN * numeric_error(p) + hand_rounding(p) * np.abs(a)) / np.abs(a)
    usable = np.isfinite(ratio) & np.isfinite(sigma) & (a != 0)
    return np.where(usable, ratio, np.nan), np.where(usable, sigma, np.nan)


def failing(p: ParamResult) -> np.ndarray:
    """Bool per stored element of ``p``: its status fails."""
    return p.failing


def error_sizes(params: list[ParamResult]) -> dict[str, np.ndarray]:
    """How far each failing element is off, scaled so the largest is 1 (0 for passing ones).

    ``|analytic - numeric|`` where there is a usable hand-written value; where there is none
    (missing or mis-shaped gradient) the whole numeric partial is missing, ``|numeric|``.
    Non-finite elements count as the largest. Squared and summed, these give each finding's
    share of the error norm.
    """
    raw = {}
    out = {}
    for p in params:
        if not p.failed:  # no failing element: 0 everywhere, whatever the largest
            out[p.name] = np.zeros(p.numeric.size)
            continue
        off = np.abs(p.numeric) if p.analytic is None else p.abs_err
        off = np.where(failing(p), off, 0.0)
        raw[p.name] = np.where(np.isnan(off), 0.0, off)
    finite = [v[np.isfinite(v)] for v in raw.values()]
    largest = max((float(v.max()) for v in finite if v.size), default=0.0)
    for name, value in raw.items():
        scaled = value / largest if largest > 0 else np.where(value > 0, 1.0, 0.0)
        out[name] = np.where(np.isfinite(value), scaled, 1.0)
    return {p.name: out[p.name] for p in params}


def squared_norm(sizes: dict[str, np.ndarray]) -> float:
    """The squared error norm of :func:`error_sizes`' values."""
    return sum(float(np.sum(v**2)) for v in sizes.values())


def share(
    sizes: dict[str, np.ndarray], where: dict[str, np.ndarray], total: float | None = None
) -> float:
    """Fraction of the squared error norm carried by the elements ``where`` (name -> flat
    indices or mask); ``total``: the squared norm of ``sizes`` (:func:`squared_norm`), when
    the caller keeps it."""
    if total is None:
        total = squared_norm(sizes)
    if total <= 0:
        return 0.0
    part = sum(float(np.sum(sizes[name][index] ** 2)) for name, index in where.items())
    return min(part / total, 1.0)
