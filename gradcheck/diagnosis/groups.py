"""Groups of wrong partials sharing one ratio numeric / analytic, kept only when they mean it.

A factor missing or extra at one node multiplies every partial downstream of it by the same
number, so their ratios coincide to within their errors. But among thousands of wrong
partials with unrelated ratios, some pairs coincide by chance (a transposed 100x100 gradient
gives dozens). A group is reported only when so many members in so narrow an interval would be
unlikely by chance: under the null hypothesis, ratios near the group fall at the local density
of the other ratios, so the number within the group's width is Poisson; the chance of a group
at least this large anywhere among the ``N`` ratios must stay below ``GROUP_FALSE_ALARM``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from gradcheck.core.compare import ParamResult
from gradcheck.diagnosis.resolve import converged, ratios

# Chance, per diagnosis, of reporting a group that is a coincidence.
GROUP_FALSE_ALARM = 1e-3
# Neighbours on each side used to estimate the local density of ratios.
DENSITY_NEIGHBOURS = 8


class Ratio(NamedTuple):
    """One wrong, converged element's ratio numeric / analytic (sorted by ratio first)."""

    ratio: float
    sigma: float  # the ratio's uncertainty
    position: int  # the parameter's index in the list diagnosed
    flat: int  # the element's flat index in it


@dataclass(frozen=True)
class Group:
    """Wrong partials whose ratio numeric / analytic is one number within its uncertainty.

    ``message`` states the group with its numbers; ``meaning`` says what such a group
    usually means.
    """

    factor: float
    uncertainty: float
    members: tuple[str, ...]
    message: str
    meaning: str
    flats: tuple[tuple[str, int], ...] = ()  # (param, flat index) of each member


def candidates(params: list[ParamResult]) -> tuple[list[list[Ratio]], int]:
    """Wrong, converged elements sorted by ratio and cut into runs whose intervals overlap.

    Returns the runs (lists of :class:`Ratio`) and how many ratios there were.
    """
    items = []
    for position, p in enumerate(params):
        if p.analytic is None or not p.failed:  # no wrong element, no ratio to group
            continue
        ratio, sigma = ratios(p)
        usable = (p.statuses == "wrong") & converged(p) & np.isfinite(ratio) & ~p.kink
        for flat in np.flatnonzero(usable):
            items.append(Ratio(float(ratio[flat]), float(sigma[flat]), position, int(flat)))
    items.sort()
    runs: list[list[Ratio]] = []
    high = 0.0
    for item in items:
        if runs and item.ratio - item.sigma <= high:
            runs[-1].append(item)
            high = min(high, item.ratio + item.sigma)
        else:
            runs.append([item])
            high = item.ratio + item.sigma
    return runs, len(items)


def chance(run: list[Ratio], others: np.ndarray, total: int) -> float:
    """Probability that a run at least this large and this narrow arises by chance anywhere
    among ``total`` ratios, given the ratios ``others`` outside it."""
    size = len(run)
    values = np.array([item.ratio for item in run])
    center = float(np.median(values))
    width = max(float(np.ptp(values)), float(np.mean([2 * item.sigma for item in run])))
    if others.size >= 2:
        distance = np.sort(np.abs(others - center))
        k = min(DENSITY_NEIGHBOURS, distance.size)
        density = k / (2 * max(float(distance[k - 1]), width))
    else:  # nothing else to compare with: the ratios' own scale
        density = total / (2 * max(abs(center), width, 1e-300))
    expected = density * width
    # the other members within the first one's interval
    return min(1.0, total * poisson_tail(expected, size - 1))


def poisson_tail(mean: float, count: int) -> float:
    """``P(X >= count)`` for ``X ~ Poisson(mean)``, summed in logs (no overflow for any size)."""
    if count <= 0:
        return 1.0
    if mean <= 0:
        return 0.0
    if 2 * mean >= count:
        return 1.0  # conservative; below it each term is at most half the one before
    log_mean = math.log(mean)
    return min(
        1.0,
        sum(math.exp(-mean + j * log_mean - math.lgamma(j + 1)) for j in range(count, count + 60)),
    )


def significant_runs(params: list[ParamResult]) -> list[list[Ratio]]:
    """The runs of two or more that are unlikely to be coincidences, largest first.

    A run whose shared ratio is 1 within its uncertainty is dropped: true = 1 x hand-written
    is no factor at all (such elements are wrong by an offset, not a factor).
    """
    runs, total = candidates(params)
    all_ratios = np.array([item.ratio for run in runs for item in run])
    out = []
    start = 0
    for run in runs:
        end = start + len(run)
        begin, start = start, end
        if len(run) < 2:
            continue
        # sorted: the nearest other ratios are the ones just before and after the run
        others = np.concatenate(
            [
                all_ratios[max(begin - DENSITY_NEIGHBOURS, 0) : begin],
                all_ratios[end : end + DENSITY_NEIGHBOURS],
            ]
        )
        factor, uncertainty = weighted(run)
        if abs(factor - 1) <= uncertainty:
            continue
        if chance(run, others, total) <= GROUP_FALSE_ALARM:
            out.append(run)
    out.sort(key=lambda run: -len(run))
    return out


def weighted(run: list[Ratio]) -> tuple[float, float]:
    """The run's ratio (inverse-variance weighted) and its uncertainty (the widest member's)."""
    values = np.array([item.ratio for item in run])
    sigmas = np.array([max(item.sigma, 1e-300) for item in run])
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        weights = 1 / sigmas**2
        factor = float(np.sum(values * weights) / np.sum(weights))
    if not math.isfinite(factor):
        factor = float(np.median(values))
    return factor, float(sigmas.max())
