"""Fast mode's probes: central differences along random directions, per parameter tensor.

A probe of a tensor moves its elements along ``v = z * max(1, |x|)``, ``z`` standard normal from
the check's seeded generator, and compares the loss difference ``D = f(x + h v) - f(x - h v)``
with the hand-written prediction ``A = a . span``, where ``span = (x + h v) - (x - h v)`` is the
displacement actually taken in the parameter's dtype (so rounding of the points costs nothing).
Two loss evaluations per probe, whatever the tensor's size.

The step follows the engine's rule along the direction: a pilot (four evaluations, at ``hp`` and
``2hp``, ``hp = eps**(1/5)``) measures ``F'''`` of ``F(s) = f(x + s v)``, and ``h`` minimises
rounding + truncation (:func:`gradcheck.core.numerics.probe_step`). A probe passes when ``|D - A|``
is within :func:`gradcheck.core.numerics.probe_tolerance`.

Why Gaussian weights: errors ``e_i`` enter ``D - A`` as ``sum e_i span_i``, Gaussian in ``z``
with variance ``(2h)**2 sum (e_i s_i)**2``: several wrong elements, of either sign, never
cancel except with the Gaussian's small-ball probability
(:func:`gradcheck.core.numerics.small_ball`:
errors ``K`` times the sensitivity pass with probability below ``1.6 / K``, each independent
direction multiplying that bound). Rademacher (+-1) weights would cancel two equal and opposite
errors half of the time.

False alarms on a correct gradient: ``D - A`` is then the central difference's own error,
bounded by ``safety`` times its estimate as in the full check, plus the hand-written gradient's
rounding, a Gaussian sum allowed ``c`` standard deviations with ``P(|N| > c) = false_alarm`` per
probe (:func:`gradcheck.core.numerics.gaussian_quantile`); over ``m`` probes, at most ``m *
false_alarm`` by the union bound.

Subsets (localization, :mod:`gradcheck.fast.localize`) reuse the tensor's direction and step,
restricted to a range of its elements, so a subset's ``D - A`` is exactly the part of the
tensor's that its elements carry: a single wrong element shows the same discrepancy in every
subset that holds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradcheck.core.differences import FiniteDifferences
from gradcheck.core.numerics import (
    Tolerance,
    coarser_eps,
    evaluation_noise,
    gaussian_quantile,
    probe_step,
    probe_tolerance,
)

PILOT_MULTIPLES = (1.0, 2.0)
THIRD_MARGIN = 4.0  # as the engine's: the pilot's third difference is an order of magnitude


@dataclass(frozen=True)
class FastOptions:
    """Knobs of ``check(mode="fast")``.

    Attributes:
        probes: independent random directions per tensor (each costs 6 evaluations: a pilot
            of 4 and the probe's 2); a tensor is probed again only while it passes.
        false_alarm: per probe, the chance that the hand-written gradient's own rounding alone
            exceeds its allowance (see :func:`gradcheck.core.numerics.gaussian_quantile`).
        max_wrong: how many failing subsets localization bisects at once; beyond that the
            wrong elements are too many to find one by one cheaply, so the tensor is reported
            wrong and ``fallback_samples`` of the elements in its failing subsets are measured.
        fallback_samples: elements measured one by one in that fallback.
    """

    probes: int = 2
    false_alarm: float = 1e-9
    max_wrong: int = 16
    fallback_samples: int = 16

    def __post_init__(self) -> None:
        for name in ("probes", "max_wrong", "fallback_samples"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"FastOptions.{name} must be an int >= 1, got {value!r}")
        if not 0 < self.false_alarm < 1:
            raise ValueError(f"FastOptions.false_alarm must be in (0, 1), got {self.false_alarm!r}")


@dataclass
class Record:
    """One probe of the elements ``positions[lo:hi]`` of a direction (``D``-units)."""

    lo: int
    hi: int
    difference: float  # D, measured (or inferred: parent's minus the sibling's)
    analytic: float  # A
    tolerance: float  # T
    inferred: bool = False

    @property
    def size(self) -> int:
        return self.hi - self.lo

    @property
    def passed(self) -> bool:
        return bool(abs(self.difference - self.analytic) <= self.tolerance)


@dataclass
class Direction:
    """A random direction over the probed elements of one tensor, with its step and points."""

    name: str
    positions: np.ndarray  # flat indices probed: those with a finite hand-written partial
    contiguous: bool  # positions == arange(size): subsets are slices
    half_step: float  # h
    third: float  # |F'''| from the pilot, with THIRD_MARGIN
    upper: np.ndarray  # x + h v, parameter dtype, over positions
    lower: np.ndarray
    span: np.ndarray  # float64, upper - lower
    contribution: np.ndarray  # a * span: A over a subset is its sum
    rounding: np.ndarray  # (a * 2h max(1, |x|))**2: the rounding allowance's variance
    eps: float
    tol: Tolerance
    rtol: float  # relative floor of the hand-written partials
    quantile: float  # standard deviations allowed for the hand-written gradient's rounding

    def index(self, lo: int, hi: int) -> Any:
        return slice(lo, hi) if self.contiguous else self.positions[lo:hi]

    def directional(self, value: float) -> float:
        """A ``D``-unit quantity as a directional derivative along ``v``."""
        return value / (2.0 * self.half_step)


def draw(
    differences: FiniteDifferences,
    name: str,
    analytic: np.ndarray,
    positions: np.ndarray,
    rng: np.random.Generator,
    false_alarm: float,
    precision: np.dtype | None = None,
) -> Direction:
    """Draw a direction over ``positions`` of ``name`` and fix its step by a pilot (4 calls).

    ``analytic`` is the tensor's flat hand-written gradient (float64); ``precision`` the dtype
    of the relative floor (the parameter's by default)."""
    pset = differences.params
    param = pset[name]
    dtype = param.dtype
    x = pset.flat_values(name)[positions]
    scale = np.maximum(1.0, np.abs(x.astype(np.float64)))
    weights = rng.standard_normal(x.size) * scale
    eps = coarser_eps(dtype, differences.evaluator.loss_dtype)
    tol = differences.tolerance
    noise = float(evaluation_noise(np.array(differences.evaluator.f0), eps, tol))
    contiguous = bool(positions.size == param.size)
    index = slice(0, x.size) if contiguous else positions

    # pilot: central differences at hp and 2hp along v give |F'''|
    hp = eps ** (1 / 5)
    points, steps = [], []
    for m in PILOT_MULTIPLES:
        up, down = _points(x, m * hp * weights)
        span = up.astype(np.float64) - down.astype(np.float64)
        # the step actually taken along v (rounding to the dtype moves the points slightly)
        steps.append(float(span @ weights) / (2.0 * float(weights @ weights)))
        points += [(name, index, up), (name, index, down)]
    f = differences.evaluator.at(points)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        slopes = [(f[2 * k] - f[2 * k + 1]) / (2 * steps[k]) for k in range(len(steps))]
        third = 6.0 * abs(slopes[1] - slopes[0]) / (steps[1] ** 2 - steps[0] ** 2)
    third = float(third) * THIRD_MARGIN if np.isfinite(third) else float("inf")
    h = probe_step(noise, third, eps)
    upper, lower = _points(x, h * weights)
    span = upper.astype(np.float64) - lower.astype(np.float64)
    return Direction(
        name=name,
        positions=positions,
        contiguous=contiguous,
        half_step=h,
        third=third,
        upper=upper,
        lower=lower,
        span=span,
        contribution=analytic[positions] * span,
        rounding=(analytic[positions] * 2.0 * h * scale) ** 2,
        eps=eps,
        tol=tol,
        rtol=tol.relative_floor(precision or dtype),
        quantile=gaussian_quantile(false_alarm),
    )


def _points(x: np.ndarray, move: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x + move`` and ``x - move`` in ``x``'s dtype (the points the loss will see)."""
    move = move.astype(x.dtype)
    return x + move, x - move


def probe(
    differences: FiniteDifferences, direction: Direction, ranges: list[tuple[int, int]]
) -> list[Record]:
    """Probe each range ``positions[lo:hi]`` of the direction: two loss calls per range."""
    if not ranges:
        return []
    points = []
    for lo, hi in ranges:
        index = direction.index(lo, hi)
        points += [
            (direction.name, index, direction.upper[lo:hi]),
            (direction.name, index, direction.lower[lo:hi]),
        ]
    f = differences.evaluator.at(points)
    records = []
    for k, (lo, hi) in enumerate(ranges):
        f_up, f_down = f[2 * k], f[2 * k + 1]
        records.append(
            Record(
                lo,
                hi,
                float(f_up - f_down),
                float(direction.contribution[lo:hi].sum()),
                tolerance(direction, lo, hi, max(abs(f_up), abs(f_down))),
            )
        )
    return records


def tolerance(direction: Direction, lo: int, hi: int, loss_size: float) -> float:
    """Allowed ``|D - A|`` for the range (see :func:`gradcheck.core.numerics.probe_tolerance`);
    ``loss_size`` is the larger ``|f|`` of the probe's two points (it sets the rounding)."""
    tol = direction.tol
    noise = float(evaluation_noise(np.array(loss_size), direction.eps, tol))
    return probe_tolerance(
        noise,
        direction.half_step,
        direction.third,
        float(np.sqrt(direction.rounding[lo:hi].sum())),
        direction.rtol,
        tol,
        direction.quantile,
    )


@dataclass
class ProbeSummary:
    """What fast mode did for one tensor; attached to its ``ParamResult.probe``.

    ``probes`` are the tensor-wide probes in directional-derivative units along ``v``
    (analytic, numeric, tolerance, passed); the sensitivity of a probe is its tolerance: a
    subset whose partials are off by ``e`` with ``||e * max(1, |x|)||_2`` equal to ``K``
    sensitivities passes it with probability below ``1.6 / K``.
    """

    probes: list[dict[str, Any]] = field(default_factory=list)
    localization_evaluations: int = 0
    localization_probes: int = 0
    located: list[int] = field(default_factory=list)  # flat indices bisection narrowed to
    proven_wrong: list[int] = field(default_factory=list)  # measured one by one and wrong
    measured: int = 0  # elements measured one by one
    unresolved: bool = False  # a failing probe not pinned to elements: the tensor is wrong
    fallback: str | None = None  # why localization stopped bisecting, if it did

    @property
    def failed(self) -> bool:
        return any(not p["passed"] for p in self.probes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (indices are flat, C order)."""
        return {
            "probes": [dict(p) for p in self.probes],
            "localization_evaluations": self.localization_evaluations,
            "localization_probes": self.localization_probes,
            "located": list(self.located),
            "proven_wrong": list(self.proven_wrong),
            "measured": self.measured,
            "unresolved": self.unresolved,
            "fallback": self.fallback,
        }
