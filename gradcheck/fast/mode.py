"""``check(mode="fast")``: per-tensor random-direction probes, then localization where one fails.

Per tensor: up to ``probes`` random directions (:mod:`gradcheck.fast.probe`), stopping at the first
that fails; a failing direction is bisected down to its wrong elements
(:mod:`gradcheck.fast.localize`), which are then measured one by one like the full check does.

Element statuses in fast mode:

* ``wrong`` / ``ok`` / ``uncertain`` / ``nonfinite``: the element was measured one by one
  (located by bisection, or sampled), with the same rule as the full check;
* ``probed``: covered by a passing random-direction probe and not measured on its own. That
  proves less than ``ok``: not that this element's partial is within its own tolerance, but that
  the errors of the probed subset, weighted by independent Gaussians, stayed below the probe's
  sensitivity, so errors ``K`` times the sensitivity would have passed with probability below
  ``1.6 / K`` per direction. Hence a status of its own rather than ``ok``;
* ``unchecked``: not examined (a failing range localization gave up on, see ``fallback``).

Neither ``probed`` nor ``unchecked`` fails a report; a failing probe that localization did not
pin to elements (``unresolved``) fails its tensor on its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import numpy as np

from gradcheck.core.compare import ParamResult, compare
from gradcheck.core.differences import FiniteDifferences, TensorDifferences
from gradcheck.core.numerics import Tolerance, coarser_dtype
from gradcheck.core.params import ParamSet
from gradcheck.fast.localize import localize
from gradcheck.fast.probe import Direction, FastOptions, ProbeSummary, Record, draw, probe

FAILING_MEASURED = ("wrong", "nonfinite")
PER_DIRECTION = 6  # a pilot of 4 loss evaluations and the probe's 2


def fast_results(
    differences: FiniteDifferences,
    pset: ParamSet,
    gradients: Mapping[str, Any],
    grad_dtypes: Mapping[str, Any],
    tolerance: Tolerance,
    options: FastOptions,
    seed: int,
) -> list[ParamResult]:
    """One :class:`ParamResult` per parameter, each with its :class:`ProbeSummary`.

    ``grad_dtypes``: the dtype each hand-written gradient came in (the relative floor is
    the coarser of it and the parameter's, as in the full check)."""
    rng = np.random.default_rng(seed)
    # what a progress bar expects: the probes of every tensor (localization adds to it)
    differences.evaluator.plan(len(pset.names) * options.probes * PER_DIRECTION)
    results = []
    for name in pset.names:
        param = pset[name]
        grad = gradients.get(name)
        precision = coarser_dtype(param.dtype, grad_dtypes.get(name))
        rtol = tolerance.relative_floor(precision)
        if grad is None or grad.shape != param.shape:
            results.append(compare(param, grad, _blank(param.size, rtol), tolerance))
            continue
        results.append(_tensor(differences, name, grad, precision, tolerance, options, rng))
    return results


def _tensor(
    differences: FiniteDifferences,
    name: str,
    grad: np.ndarray,
    precision: np.dtype,
    tolerance: Tolerance,
    options: FastOptions,
    rng: np.random.Generator,
) -> ParamResult:
    param = differences.params[name]
    analytic = grad.reshape(-1)
    positions = np.flatnonzero(np.isfinite(analytic))
    summary = ProbeSummary()
    probed = np.zeros(positions.size, dtype=bool)
    unchecked_ranges: list[Record] = []
    measure = np.empty(0, dtype=np.intp)
    covered = np.zeros(positions.size, dtype=bool)  # moved by some passing direction
    failing: tuple[Direction, Record] | None = None
    for _ in range(options.probes if positions.size else 0):
        direction = draw(
            differences, name, analytic, positions, rng, options.false_alarm, precision
        )
        [top] = probe(differences, direction, [(0, positions.size)])
        summary.probes.append(_probe_dict(direction, top))
        covered |= direction.span != 0
        if not top.passed:
            failing = (direction, top)
            break
    if failing is None:
        probed = covered
    else:
        direction, top = failing
        before = differences.evaluator.evaluations
        differences.evaluator.plan(3 * math.ceil(math.log2(max(positions.size, 2))) * 2 + 10)
        outcome = localize(differences, direction, top, options, rng)
        for r in outcome.passed:
            probed[r.lo : r.hi] = True
        probed &= covered
        unchecked_ranges = outcome.unresolved
        measure = positions[np.array(outcome.measure, dtype=np.intp)]
        summary.located = positions[outcome.located].tolist()
        summary.localization_probes = outcome.probes
        summary.fallback = outcome.fallback
        summary.unresolved = bool(outcome.unresolved)
        if measure.size:
            measured = differences.differentiate(
                name, analytic[measure], precision, indices=measure
            )
        summary.localization_evaluations = differences.evaluator.evaluations - before
    fd = _blank(param.size, tolerance.relative_floor(precision))
    if measure.size:
        for f in fields(TensorDifferences):
            if f.name not in ("third", "rtol"):
                getattr(fd, f.name)[measure] = getattr(measured, f.name)
    result = compare(param, grad, fd, tolerance)
    # elements not measured one by one: what the probes say about them, never "ok"
    statuses = result.statuses
    verdicts = statuses[measure].copy()
    statuses[np.isfinite(analytic)] = "unchecked"
    statuses[positions[probed]] = "probed"
    for r in unchecked_ranges:
        statuses[positions[r.lo : r.hi]] = "unchecked"
    statuses[measure] = verdicts
    vars(result).pop("status", None)  # the cached worst status predates these rewrites
    unmeasured = np.isnan(fd.numeric)
    result.rel_err[unmeasured] = np.nan  # relative_error reads 0 when one side is missing
    summary.measured = int(measure.size)
    summary.proven_wrong = [int(i) for i in measure if statuses[i] in FAILING_MEASURED]
    result.probe = summary
    return result


def _probe_dict(direction: Direction, record: Record) -> dict[str, Any]:
    """A tensor-wide probe in directional-derivative units along ``v``."""
    return {
        "analytic": direction.directional(record.analytic),
        "numeric": direction.directional(record.difference),
        "tolerance": direction.directional(record.tolerance),
        "passed": record.passed,
        "step": direction.half_step,
        "size": record.size,
    }


def _blank(n: int, rtol: float) -> TensorDifferences:
    """No element measured: NaN partials, no kink, nothing refined."""
    arrays = {
        f.name: (np.zeros(n, dtype=bool) if f.name in ("kink", "refined") else np.full(n, np.nan))
        for f in fields(TensorDifferences)
        if f.name not in ("third", "rtol")
    }
    return TensorDifferences(**arrays, third=float("nan"), rtol=rtol)
