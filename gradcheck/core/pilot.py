"""The pilot: what the finite differences of a tensor need to know before they start.

On up to three elements (of a tensor, or shared by all small tensors):

* **noise**: seven loss values at a tiny spacing give the loss's noise
  (:func:`gradcheck.core.numerics.ecnoise`; one table, six calls, usually once per check: the
  noise is a property of how the loss is computed, not of which element moves). A table that
  sees no change at one spacing though the next one's slope says the loss should have moved by
  many of its ulps reveals a loss that rounds its parameters (a float32 cast inside): its
  resolution is recorded;
* **ladder**: central differences at steps shrinking 4x per level from ``eps**(1/5) max(1,
  |x|)`` until two consecutive ``|f'''|`` estimates agree or the slopes sink into the noise
  (:func:`gradcheck.core.stencil.ladder_third`, two calls per level); a noisy loss whose slope
  is flat within the noise at the start climbs to larger steps instead, and a ladder still far
  above the function's scale after ``LADDER_LEVELS`` goes on ``DEEP_RATIO``-fold per level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from gradcheck.core.evaluation import Evaluator
from gradcheck.core.numerics import (
    DEEP_LEVELS,
    DEEP_RATIO,
    LADDER_LEVELS,
    LADDER_RATIO,
    NOISE_LEVELS,
    NOISE_OFFSETS,
    NOISE_RESCALE,
    NOISE_SIGMAS,
    NOISE_TRIES,
    Tolerance,
    coarser_eps,
    ecnoise,
    ladder_fifth,
    ladder_richardson,
    margined,
    noise_bound_at,
    noise_spacing,
    pilot_step,
    smallest_step,
    taken_step,
    taken_steps,
)
from gradcheck.core.stencil import analyse, ladder_third
from gradcheck.errors import LossError

# Third-derivative margin: the pilot sees three elements, the main pass all of them.
THIRD_MARGIN = 4.0
# A noise table's finding above the floor is confirmed at spacings NOISE_RESCALE times smaller,
# this many at most; one that finds STRUCTURE_SHRINK times less noise there says the first saw
# structure (kinks), not noise (Pilots._unless_structure)
STRUCTURE_TRIES = 2
STRUCTURE_SHRINK = 4.0
# A loss whose measured noise bound is this many times the floor is noisy (cancellation inside):
# its pilot ladder climbs to larger steps while the slope stays flat within noise, up to
# CLIMB_LEVELS times LADDER_RATIO (256 times the ladder's start, ~0.2 max(1, |x|)).
NOISY = 100.0
CLIMB_LEVELS = 4
# A loss that rounds its parameters: no change over a table at spacing d means its input
# resolution is at least ~2d; counted as 8d (a float32 cast inside a float64 loss rounds to
# 4-8 such spacings), tighter than the next table's 64d, which a loss whose values are
# quantized (cancellation) would also pass for.
RESOLUTION_SPACINGS = 8.0
# A loss exactly 0 at the start whose noise tables read exactly 0 at every point (a softmax
# cross-entropy whose margins are so large that log(1 + 1e-18) rounds to 0) has no noise to
# see, and its floor, noise_ulps ulps of |f|, is 0: a correct partial of 3e-18 failed against a
# numeric 0 with a bound of 4e-26. Its noise there is its resolution near 0, measured
# (Pilots._quantum): steps climb QUANTUM_RATIO-fold from the tables' widest (at most
# QUANTUM_CLIMB levels) until the loss moves, then bisect between the largest step it stayed 0 at
# and the smallest it moved at (at most QUANTUM_BISECT rounds) until QUANTUM_SETTLED nonzero values
# in a row repeat the smallest |f| exactly: a staircase, whose step q is the loss's quantum
# there. A kink the loss meets instead (a hinge) gives ever smaller |f| and never settles; a
# loss that never moves has none. A step of the function, not of its rounding (a 0-1 loss's
# 1/N), is told apart by size: the loss must reach QUANTUM_QUANTA times q within the climb's
# range, as a rounding quantum, some ulps of the loss's own terms, is small against the values
# it takes. The steps stay within QUANTUM_REACH max(1, |x|): a loss may overflow, or raise, far
# from where it is checked (a point where it raised ends the climb). Measured along at most
# QUANTUM_TRIES elements per check; the noise bound is then q.
# The same search runs at a loss not 0 whose values are quantized far coarser than their own
# ulps (QUANTUM_ULPS or more: a noise table flat but for moves that large): a cross-entropy of
# 2e-10 computes log(1 + 1e-10 terms), and 1 + t rounds to 2.2e-16, so the loss moves in steps
# of 2.2e-16 / N, 1e9 of its ulps; a table that hit those steps at exact multiples read as noise
# of 2e-26, and a bias's partial of 2e-10 as wrong against a numeric 0 with a bound of 1e-16.
QUANTUM_RATIO = 4.0
QUANTUM_CLIMB = 16
QUANTUM_BISECT = 30
QUANTUM_SETTLED = 3
QUANTUM_QUANTA = 2.0**20
QUANTUM_TRIES = 3
QUANTUM_REACH = 64.0
QUANTUM_ULPS = 16.0
# A noise table's points x + j d, d a power of two, are round numbers where x is a multiple of d
# (x = 0, 1.0, an integer input, a float32 value in a float64 loss): few significant bits, so
# the loss's arithmetic on them is nearly exact, while the stencils' points x +- h carry full
# mantissas and all of its rounding. A batchnorm column of ones: mean(x) over 1 + h rounds to
# 1e-16, which inv_std (316) carries into a loss error of 1.5e-13 at the stencils' points
# against 2e-15 over the table's, and every partial of the column came out 1e-6 off, the
# same amount (the same rounding at the same step), against a bound of 3e-6 (one of them
# over). Where a verdict's noise is measured along such an element, its tables are taken at
# OFF_GRID times the spacing instead (their points full-mantissa, as the stencils' are).
OFF_GRID = 0.7853981633974483  # pi / 4: any fraction with a full mantissa


@dataclass
class Pilot:
    """What the pilot measured for a tensor (or for all small tensors together)."""

    sigma: float  # measured standard deviation of the loss's noise, NaN if never measured
    noise: float  # the noise bound at the loss values the ladder saw (it sets the step)
    third: float  # the ladder's largest |f'''|, times THIRD_MARGIN (saturating: margined)
    largest: float  # the largest step the ladder saw the function smooth at
    # the ladders' largest |f^(5)| (times THIRD_MARGIN, saturating), NaN unless every ladder
    # converged on three levels: what limits a fourth-order (Richardson) main pass
    fifth: float = float("nan")
    slope: float = float("nan")  # the largest |f'| the ladders ended on (the partials' scale)


class Reading(NamedTuple):
    """One element's pilot ladder: ``|f'''|``, the largest smooth step, the noise bound at
    the loss values the verdict read, ``|f^(5)|`` (NaN if not measured) and the last slope."""

    third: float
    largest: float
    noise: float
    fifth: float = float("nan")
    slope: float = float("nan")


def own_third(reading: Reading) -> float:
    """The ``|f'''|`` that bounds the truncation of central differences along the element a
    ladder ran on (``reading``), at steps up to the largest it saw the function smooth at:
    its own estimate with ``THIRD_MARGIN`` (saturating), as the tensor's is (the ladder's
    estimates agree only within a factor 2); NaN where the ladder measured none."""
    if not (math.isfinite(reading.third) and math.isfinite(reading.largest)):
        return math.nan
    return margined(reading.third, THIRD_MARGIN)


class Level(NamedTuple):
    """One level of a pilot ladder: the nominal half-step, the points ``x +- half`` as taken
    (in the parameter's dtype, as Python floats) and the loss there."""

    half: float
    upper: float
    lower: float
    f_up: float
    f_down: float


def own_richardson(levels: list[Level], reading: Reading) -> tuple[float, float]:
    """The partial along the element a ladder converged on (``levels``, ``reading``), from its
    two smallest levels extrapolated (:func:`gradcheck.core.numerics.ladder_richardson`), and
    its error estimate from the ladder's own ``|f^(5)|`` with ``THIRD_MARGIN`` (saturating),
    as :func:`own_third` bounds ``|f'''|``; NaN where the ladder measured no ``|f^(5)|`` (it
    did not converge on three levels, the ones that estimate was read on). The estimate holds
    for a smooth function only: :func:`ladder_kinked` says whether the levels show a kink."""
    if not (math.isfinite(reading.fifth) and len(levels) >= 3):
        return float("nan"), float("nan")
    upper, lower = levels[-2:]
    spans = (upper.upper - upper.lower, lower.upper - lower.lower)  # as taken, as the ladder's
    slopes = ((upper.f_up - upper.f_down) / spans[0], (lower.f_up - lower.f_down) / spans[1])
    fifth = margined(reading.fifth, THIRD_MARGIN)
    return ladder_richardson(slopes, (spans[0] / 2, spans[1] / 2), reading.noise, fifth)


def ladder_kinked(levels: list[Level], x: float, f0: float, noise: float) -> bool:
    """Whether a ladder's ``levels`` (three, the element at ``x``, the loss ``f0`` there, its
    noise bound ``noise``) show a kink the way refinement looks for one
    (:func:`gradcheck.core.stencil.analyse`'s ``smooth``): one-sided slope gaps that do not
    grow in proportion to the step between any two levels, or a slope jump across them. The
    central slopes alone do not tell: a ladder "converges" across a ReLU's kink as readily as
    on curvature (CS231n's two-layer net, seeds 27 and 31: a bias whose extrapolated value
    sat 680-3,400 error estimates off)."""
    base = levels[-1].half
    central = {
        level.half / base: (
            np.array([level.f_up]),
            np.array([level.f_down]),
            np.array([level.upper - x]),
            np.array([x - level.lower]),
        )
        for level in levels
    }
    return not bool(analyse(f0, central, np.array([noise]))["smooth"][0])


class Pilots:
    """Runs pilots through ``evaluator`` and remembers what holds for the whole check: the
    loss's noise (``sigma``, once a table has isolated it) and its input ``resolution``
    (relative to ``|x|``; 0 when the loss reads its parameters at full precision); and each
    ladder's levels (``levels``: (name, flat index) -> :class:`Level` list) and what it read
    there (``readings``: the same keys -> :class:`Reading`), whose loss values the main pass
    reuses where it would evaluate the same points or where the element's own reading makes
    a level at least as good as its own step
    (:meth:`gradcheck.core.differences.FiniteDifferences.differentiate`)."""

    def __init__(self, evaluator: Evaluator, tolerance: Tolerance):
        self.evaluator = evaluator
        self.params = evaluator.params
        self.tolerance = tolerance
        self.sigma = float("nan")
        self.resolution = 0.0
        self.levels: dict[tuple[str, int], list[Level]] = {}
        self.readings: dict[tuple[str, int], Reading] = {}
        # ladders whose first level was not planned: their element's main pass, already in the
        # plan, may be that level; the main pass plans it only where it is not (prepaid)
        self.prepaid: set[tuple[str, int]] = set()
        self._spacing: dict[tuple[str, int], float] = {}  # of each table that measured noise
        # elements whose noise tables were taken off a round grid (see OFF_GRID)
        self.off_grid: set[tuple[str, int]] = set()
        # the loss's resolution near f0 (exactly 0, or quantized far above its ulps), NaN until
        # measured: _quantum
        self.quantum = float("nan")
        self._quantum_tries = 0

    def run(self, elements: list[tuple[str, int]], prepaid: bool = False) -> Pilot:
        """Noise, ``|f'''|`` (times a margin) and the largest smooth step on ``elements``.

        ``prepaid``: the elements' main pass is in the evaluator's plan already, and may reuse
        a ladder level; each ladder's first level is then not planned again (``prepaid``
        records which), so the plan, which only grows, ends exact whether or not it is reused
        (:meth:`gradcheck.core.differences.FiniteDifferences.differentiate` settles it)."""
        # the noise is a property of how the loss is computed, not of which element moves: the
        # first element whose table isolates it speaks for all tensors (one table, six calls)
        sigma = self.sigma
        for name, index in elements if not sigma > 0 else []:
            measured, resolution = self._measure_noise(name, index)
            self.resolution = max(self.resolution, resolution)
            if measured > 0:
                sigma = self.sigma = measured
                break
            if measured == 0:
                sigma = 0.0
        if self.quantum > 0:  # the loss's resolution near f0, where measured, bounds its noise
            sigma = float(np.fmax(sigma, self.quantum_sigma))
        readings = [self._ladder(name, index, sigma, prepaid) for name, index in elements]
        self.readings.update(zip(elements, readings, strict=True))
        largest = [r.largest for r in readings if np.isfinite(r.largest)]
        finite_thirds = [r.third for r in readings if np.isfinite(r.third)]
        third = margined(max(finite_thirds), THIRD_MARGIN) if finite_thirds else float("inf")
        # the fifth-derivative bound only where every ladder measured it: the element one
        # missed may be the one whose fifth derivative is largest
        fifths = [r.fifth for r in readings]
        fifth = margined(max(fifths), THIRD_MARGIN) if np.all(np.isfinite(fifths)) else np.nan
        slopes = [abs(r.slope) for r in readings if np.isfinite(r.slope)]
        return Pilot(
            sigma,
            max(r.noise for r in readings),
            third,
            max(largest) if largest else float("nan"),
            float(fifth),
            max(slopes) if slopes else float("nan"),
        )

    def eps(self, name: str) -> float:
        """Epsilon of the coarser of the parameter's and the loss's dtype: what the steps and
        the noise tables' spacings respect (each must move the parameter, as rounded)."""
        return coarser_eps(self.params[name].dtype, self.evaluator.loss_dtype)

    @property
    def noise_eps(self) -> float:
        """Epsilon of the loss's own values: the floor under its measured noise. Not the
        parameters': the points ``x +- h`` are taken as rounded and the spans measured from
        them, so a float32 parameter adds no noise of its own to a loss computed in float64
        (float32 weights at a ReLU layer's small init, float64 data: a float32 floor, 1e9
        times the noise measured, set steps beyond the nearest kinks and passed off their
        macro slope as the partial). Float32 arithmetic inside such a loss shows in the noise
        measured along the elements it reaches; a loss computed in float32 and returned as
        Python floats has float32 values (``loss_dtype``)."""
        return coarser_eps(self.evaluator.loss_dtype)

    def _measure_noise(self, name: str, index: int, disputed: bool = False) -> tuple[float, float]:
        """Standard deviation of the loss's noise along element ``index`` of ``name``
        (:func:`gradcheck.core.numerics.ecnoise`; six calls per table, at most
        ``NOISE_TRIES`` tables). 0 when the loss shows no noise above its resolution, NaN when
        no spacing isolated the noise. Also the loss's input resolution, relative to ``|x|``:
        a table that saw no change at one spacing and changes at the next says the loss reads
        this element only to about that spacing (it rounds its parameters, a float32 cast
        inside a float64 loss); 0 when no such staircase was seen. The loss's quantum near
        ``f0`` instead where its values move in steps far above their ulps, or where every
        table was flat at 0 or, ``disputed`` (a verdict says the loss should have moved), at
        any ``f0`` (:meth:`_quantum`)."""
        dtype = self.params[name].dtype
        x = float(self.params.flat_values(name, np.array([index]))[0])
        # at 0 every spacing is representable: the loss's own epsilon sets it (a float32
        # bias at 0 in a float64 loss: sqrt(eps32) = 3e-4 wide tables crossed a ReLU layer's
        # kinks, and read them as noise 1e9 times the loss's)
        spacing = noise_spacing(x, self.eps(name) if x != 0 else self.noise_eps)
        widest = float(pilot_step(np.array(x), self.eps(name)))
        offsets = np.array(NOISE_OFFSETS, dtype=np.float64)
        seen: set[str] = set()
        status = "slope"
        resolution = 0.0
        trends: list[float] = []  # what trend tables leave about a cubic, by falling spacing
        zeros = self.evaluator.f0 == 0.0  # every value exactly 0 so far
        grain, grain_at = math.inf, 0.0  # the smallest move of a flat table, and its spacing
        still = 0.0  # the widest half-width of a table the loss did not move in at all
        reached = 0.0  # the widest table's half-width
        for _ in range(NOISE_TRIES):
            with np.errstate(over="ignore"):  # past the dtype's largest: inf, refused below
                points = (x + spacing * offsets).astype(dtype)
            self.evaluator.plan(offsets.size)  # the pilot plans its calls as it goes
            f = self.evaluator.at_elements(name, np.full(offsets.size, index, np.intp), points)
            middle = len(NOISE_OFFSETS) // 2  # f0 between the offsets below and above
            values = np.concatenate([f[:middle], [self.evaluator.f0], f[middle:]])
            zeros = zeros and not np.any(f)
            reached = spacing * float(offsets.max())
            sigma, status = ecnoise(values)
            if status == "flat":
                moves = np.abs(f - self.evaluator.f0)
                moves = moves[moves > 0]
                if not moves.size:
                    still = max(still, spacing * float(offsets.max()))
                if moves.size and moves.min() < grain:
                    grain, grain_at = float(moves.min()), spacing
            if status == "slope":
                trends.append(_fit_residual(_offsets_with_zero(offsets, middle), values, 3))
                self._spacing[name, index] = spacing
            if "flat" in seen and status != "flat" and x != 0:
                # a staircase in x, not in f: the slope seen here would have moved f by many of
                # its own ulps at the flat spacing, yet f did not move
                slope = abs(f[-1] - f[0]) / (spacing * (offsets[-1] - offsets[0]))
                step_before = spacing / NOISE_RESCALE
                if slope * step_before > 4.0 * self.eps(name) * abs(self.evaluator.f0):
                    resolution = RESOLUTION_SPACINGS * step_before / abs(x)
            if status == "measured":
                self._spacing[name, index] = spacing
                return self._grain(name, index, sigma, grain, grain_at), resolution
            seen.add(status)
            if len(seen) == 2:  # no variation at one spacing, a smooth trend at the next
                break
            if status == "flat" and spacing * NOISE_RESCALE * offsets.max() > widest:
                break  # flat up to the ladder's own start: no noise to see
            spacing = spacing * NOISE_RESCALE if status == "flat" else spacing / NOISE_RESCALE
        quantized = _steady_trend(trends)
        floor = noise_bound_at(0.0, self.evaluator.f0, self.noise_eps, self.tolerance)
        if NOISE_SIGMAS * quantized > floor:
            return self._grain(name, index, quantized, grain, grain_at), resolution
        # a loss exactly 0 here, or one that did not move where a verdict says it should
        # have (``disputed``): its resolution near f0
        if (seen == {"flat"} and zeros) or (disputed and still > 0):
            quantum = self._quantum(name, index, reached if zeros else still)
            if quantum > 0:
                return quantum / NOISE_SIGMAS, resolution
        found = 0.0 if "flat" in seen else float("nan")
        return self._grain(name, index, found, grain, grain_at), resolution

    def _grain(self, name: str, index: int, sigma: float, grain: float, start: float) -> float:
        """``sigma``, or the loss's quantum near ``f0`` as a standard deviation where that is
        larger: measured (:meth:`_quantum`, from step ``start``) where a flat noise table moved
        by ``grain``, ``QUANTUM_ULPS`` or more of the loss's ulps (see ``QUANTUM_ULPS``)."""
        f0 = self.evaluator.f0
        if f0 == 0.0 or not math.inf > grain > QUANTUM_ULPS * self.noise_eps * abs(f0):
            return sigma
        if NOISE_SIGMAS * sigma >= grain:  # the quantum is at most the smallest move seen
            return sigma
        quantum = self._quantum(name, index, start)
        if not quantum > 0 or NOISE_SIGMAS * sigma >= quantum:
            return sigma
        return quantum / NOISE_SIGMAS

    @property
    def quantum_sigma(self) -> float:
        """The loss's resolution near ``f0`` (:meth:`_quantum`: a loss exactly 0, or one whose
        values are quantized far coarser than their ulps), as a standard deviation (the noise
        bound is then the quantum); 0 where none was measured."""
        return self.quantum / NOISE_SIGMAS if self.quantum > 0 else 0.0

    def measure_quantum(self, name: str, index: int) -> float:
        """:attr:`quantum_sigma`, measured along element ``index`` of ``name`` first where it
        was not (its noise tables, then :meth:`_quantum`), for fast mode, whose probes move
        many elements at once: at a loss exactly 0 at the start, or where a confirmation read
        the loss unmoved at every step while the hand-written partial says it moves."""
        if not self.quantum > 0 and self._quantum_tries < QUANTUM_TRIES:
            self._measure_noise(name, index, disputed=True)
        return self.quantum_sigma

    def _quantum(self, name: str, index: int, start: float) -> float:
        """The loss's resolution near ``f0`` (see ``QUANTUM_RATIO``), measured along element
        ``index`` of ``name`` from step ``start`` (where its noise tables did not move, or
        barely); the smallest measured in the check, NaN where none was. At most
        ``QUANTUM_TRIES`` elements are measured per check: the resolution is a property of how
        the loss is computed."""
        if self.quantum > 0 or self._quantum_tries >= QUANTUM_TRIES:
            return self.quantum
        self._quantum_tries += 1
        x = self.params.flat_values(name, np.array([index]))
        pair = np.array([index, index], dtype=np.intp)

        farthest = QUANTUM_REACH * max(1.0, abs(float(x[0])))

        def at(h: float) -> tuple[float, float, float] | None:
            """The smallest nonzero ``|f - f0|`` at ``x +- h`` (inf if both are 0), the largest,
            and the distance reached on both sides; None beyond ``farthest``, where a point or
            value is not finite, or where the loss raised."""
            upper, lower, _ = taken_steps(x, np.array([h]))
            reach = min(float(upper[0]) - float(x[0]), float(x[0]) - float(lower[0]))
            if not (math.isfinite(reach) and h <= farthest):
                return None
            self.evaluator.plan(2)
            try:
                values = self.evaluator.at_elements(name, pair, np.concatenate([upper, lower]))
            except LossError:  # restored already; a point this far is not the check's
                return None
            f = np.abs(values - f0)
            if not np.all(np.isfinite(f)):
                return None
            moved = f[f != 0]
            return (float(moved.min()) if moved.size else math.inf), float(f.max()), reach

        f0 = self.evaluator.f0
        low, h, levels = 0.0, start, 0  # the loss is f0 at +-low on both sides
        while True:  # up until the loss moves
            if levels == QUANTUM_CLIMB or (got := at(h)) is None:
                return self.quantum
            levels += 1
            if got[0] < math.inf:
                break
            low, h = got[2], h * QUANTUM_RATIO
        high, (smallest, top, _) = h, got
        settled = 0
        for _ in range(QUANTUM_BISECT):  # down to the smallest |f| the loss resolves
            mid = (low + high) / 2
            if settled == QUANTUM_SETTLED or not low < mid < high or (got := at(mid)) is None:
                break
            if got[0] == math.inf:
                low = max(low, got[2])
                continue
            high, top = mid, max(top, got[1])
            # a staircase's step repeats exactly; a kink's |f| shrinks, and the other side's
            # larger |f| (its kink further out) is no repeat either
            # (|f - f0| up and down differ in their last bits: f0 +- q are rounded)
            repeat = abs(got[0] - smallest) <= 4.0 * float(np.spacing(abs(f0) + smallest))
            settled = settled + 1 if repeat else 0
            smallest = min(smallest, got[0])
        if settled < QUANTUM_SETTLED:
            return self.quantum
        while top < QUANTUM_QUANTA * smallest and levels < QUANTUM_CLIMB:  # rounding, not a step
            h, levels = h * QUANTUM_RATIO, levels + 1
            if (got := at(h)) is None:
                break
            top = max(top, got[1])
        if top < QUANTUM_QUANTA * smallest:
            return self.quantum
        self.quantum = smallest
        return smallest

    def _unless_structure(
        self, name: str, index: int, x: float, spacing: float, sigma: float, above: float
    ) -> float:
        """``sigma``, a table's noise at ``spacing``, unless a table at a spacing
        ``NOISE_RESCALE`` times smaller finds a quarter of it or less: then the smaller one's
        (and so on, ``STRUCTURE_TRIES`` tables at most). Noise does not depend on the spacing;
        structure the table takes for noise does, in proportion: several kinks within it (a
        ReLU or ``abs`` layer whose pre-activations sit within 1e-8 of 0 over a batch, each
        row's kink a slope jump the one-kink test cannot single out) read as a "noise" of
        their jumps times the spacing, 300x the loss's rounding, which loosened every bound
        of the tensor and hid kinks from the kink test. Only a noise bound above ``above`` is
        confirmed (the caller's: below it, the noise changes nothing): a clean loss, and a
        noisy one whose noise the pilot measured, pay nothing."""
        dtype = self.params[name].dtype
        offsets = np.array(NOISE_OFFSETS, dtype=np.float64)
        middle = len(NOISE_OFFSETS) // 2
        for _ in range(STRUCTURE_TRIES):
            if not NOISE_SIGMAS * sigma > above:
                break
            spacing = spacing / NOISE_RESCALE
            with np.errstate(over="ignore"):
                points = (x + spacing * offsets).astype(dtype)
            if np.count_nonzero(points == np.asarray(x, dtype=dtype)):
                break  # below the parameter's resolution: no smaller table exists
            self.evaluator.plan(offsets.size)
            f = self.evaluator.at_elements(name, np.full(offsets.size, index, np.intp), points)
            values = np.concatenate([f[:middle], [self.evaluator.f0], f[middle:]])
            smaller, status = ecnoise(values)
            if status == "slope":
                # a trend (a kink within this one too): what is left about its straight line
                # bounds the noise from above; below a quarter of sigma, sigma was structure
                line = _fit_residual(_offsets_with_zero(offsets, middle), values)
                if line <= sigma / STRUCTURE_SHRINK:
                    sigma = line
                continue  # smaller still
            if status == "flat" and (np.any(f != self.evaluator.f0) or _distinct32(points)):
                # the loss moves, by a few of its ulps, yet mostly not at all; or not at all
                # at points that float32 too tells apart (a dead ReLU unit, the first table
                # having straddled its kink: a "noise" 4,000x the rounding hid a missing mask):
                # no noise of sigma's size. A loss that reads the parameter through a float32
                # cast gives f0 exactly at points float32 cannot tell apart, and keeps sigma
                return 0.0
            if not (status == "measured" and smaller <= sigma / STRUCTURE_SHRINK):
                break  # the same noise (or a spacing the loss does not resolve): the loss's
            sigma = smaller
        return sigma

    def measure_noise(self, name: str, index: int, above: float) -> tuple[float, float]:
        """:meth:`_measure_noise` along element ``index`` of ``name``, for a check of the
        noise a verdict rested on (the check-wide noise and resolution stay as they were);
        a noise bound above ``above`` is confirmed at smaller spacings
        (:meth:`_unless_structure`: these tables sit where elements disagreed, as kinks make
        them). Tables that never see the loss move measure its quantum there (a verdict says
        it should have moved: see ``QUANTUM_ULPS``)."""
        x = float(self.params.flat_values(name, np.array([index]))[0])
        spacing = noise_spacing(x, self.eps(name) if x != 0 else self.noise_eps)
        # the table's points would be round: tables off the grid instead (what they find is
        # confirmed there; where they find nothing, the tables at x and their quantum search)
        if math.isfinite(x) and math.fmod(x, spacing) == 0.0 and math.isfinite(above):
            off = self._off_grid(name, index, x, spacing, above)
            if math.inf > off > 0:
                self.off_grid.add((name, index))
                return off, 0.0
        sigma, resolution = self._measure_noise(name, index, disputed=True)
        if sigma > 0 and (name, index) in self._spacing:  # a table's (not the zero quantum's)
            spacing = self._spacing[name, index]
            sigma = self._unless_structure(name, index, x, spacing, sigma, above)
        return sigma, resolution

    def _off_grid(self, name: str, index: int, x: float, spacing: float, above: float) -> float:
        """The loss's noise along element ``index`` of ``name`` over points with full
        mantissas (see ``OFF_GRID``): tables at ``OFF_GRID`` times the spacing (at most
        ``NOISE_TRIES``, the spacing shrunk where a table saw a trend), each point's own
        bits below the spacing's (a power-of-two spacing off a round ``x`` shares them, and a
        rounding they set is the same at every point, which no table sees). Rounded to the
        parameter's grid, the points are not quite equally spaced: each value is moved along
        the table's own slope by its point's offset from the equal spacing (a clean loss's
        slope times half an ulp of ``x`` would otherwise read as noise). A noise bound above
        ``above`` is confirmed as :meth:`_unless_structure` confirms it, at spacings
        ``NOISE_RESCALE`` times smaller (a kink is not noise). NaN where no table isolated it;
        0 where the loss did not move at all."""
        dtype = self.params[name].dtype
        offsets = np.array(NOISE_OFFSETS, dtype=np.float64)
        middle = len(NOISE_OFFSETS) // 2
        where = np.full(offsets.size, index, np.intp)
        f0 = self.evaluator.f0

        def table(d: float) -> tuple[float, str]:
            with np.errstate(over="ignore", invalid="ignore"):  # past the dtype's largest: inf
                points = (x + d * offsets).astype(dtype)
                taken = points.astype(np.float64) - x  # exact: the points are near x
            if not (np.isfinite(taken).all() and np.unique(points).size == points.size):
                return float("nan"), "unresolved"  # below the parameter's resolution
            if np.any(points == np.asarray(x, dtype=dtype)):
                return float("nan"), "unresolved"
            self.evaluator.plan(offsets.size)
            f = self.evaluator.at_elements(name, where, points)
            values = np.concatenate([f[:middle], [f0], f[middle:]])
            if (values == f0).all():
                return 0.0, "flat"
            at = np.concatenate([taken[:middle], [0.0], taken[middle:]])
            equal = d * _offsets_with_zero(offsets, middle)
            with np.errstate(over="ignore", invalid="ignore"):
                centred = at - at.mean()
                slope = float(np.dot(centred, values - values.mean()) / np.dot(centred, centred))
                evened = values - slope * (at - equal)
            return ecnoise(evened)

        spacing = spacing * OFF_GRID
        sigma = float("nan")
        for _ in range(NOISE_TRIES):
            sigma, status = table(spacing)
            if status == "measured":
                break
            if status != "slope":  # flat, or no smaller table exists
                return sigma if status == "flat" else float("nan")
            spacing = spacing / NOISE_RESCALE
        else:
            return float("nan")
        for _ in range(STRUCTURE_TRIES):
            if not NOISE_SIGMAS * sigma > above:
                break
            spacing = spacing / NOISE_RESCALE
            smaller, status = table(spacing)
            if not (status == "measured" and smaller <= sigma / STRUCTURE_SHRINK):
                break  # the same noise: the loss's (or no smaller table isolated it)
            sigma = smaller
        return sigma

    def noise_beside(self, name: str, index: int, h: float) -> float:
        """The loss's noise at ``x + h`` along element ``index`` of ``name`` (``h`` the main
        pass's step there): a table of seven values centred at that point, at spacings from
        ``sqrt(eps) |x + h|`` (``NOISE_TRIES`` tables at most); NaN where none isolated it."""
        dtype = self.params[name].dtype
        x = self.params.flat_values(name, np.array([index]))
        c = float(taken_steps(x, np.array([h]))[0][0])
        if not (math.isfinite(c) and c != float(x[0])):
            return float("nan")
        spacing = noise_spacing(c, self.eps(name) if c != 0 else self.noise_eps)
        offsets = np.arange(-3.0, 4.0)
        where = np.full(offsets.size, index, np.intp)
        for _ in range(NOISE_TRIES):
            with np.errstate(over="ignore"):  # past the dtype's largest: inf, refused below
                points = (c + spacing * offsets).astype(dtype)
            self.evaluator.plan(offsets.size)
            sigma, status = ecnoise(self.evaluator.at_elements(name, where, points))
            if status == "measured":
                return sigma
            spacing = spacing * NOISE_RESCALE if status == "flat" else spacing / NOISE_RESCALE
        return float("nan")

    def _ladder(self, name: str, index: int, sigma: float, prepaid: bool = False) -> Reading:
        """``|f'''|``, the largest smooth step and the noise bound at element ``index`` of
        ``name``, from central differences at steps shrinking ``LADDER_RATIO``-fold (two calls
        per level) until :func:`gradcheck.core.stencil.ladder_third` says they are enough; and
        ``|f^(5)|`` from the same slopes where three levels converged
        (:func:`gradcheck.core.numerics.ladder_fifth`).

        The noise bound: for a clean loss (measured noise at its rounding floor), the one at
        the loss values of the last ``NOISE_LEVELS`` levels, the slopes the verdict compares:
        far from ``x`` (``exp(b / 1e-4)`` at ``eps**(1/5)`` steps) the loss may be a thousand
        times larger than near it, and a step fitted to that noise 5-10x too large; at
        ``exp(b / 1e-6)`` it is 1e80 two levels up, and slopes that differ by 1e14 would pass
        for "within the noise". For a noisy loss
        (:meth:`noisy`: cancellation inside), the largest over all levels: its noise may grow
        with the step (the rounding of a least-squares fit's residuals grows with them), which
        the noise table at ``x`` does not see."""
        eps = self.eps(name)
        x = self.params.flat_values(name, np.array([index]))
        half = float(pilot_step(x, eps)[0])
        element = x[0]  # one element: scalar arithmetic, the same bits as the arrays'
        where = np.array([index, index], dtype=np.intp)
        slopes: list[float] = []
        halves: list[float] = []
        floor = noise_bound_at(sigma, self.evaluator.f0, self.noise_eps, self.tolerance)
        noises: list[float] = []  # the noise bound at each level's loss values
        noise = floor
        recent = None if self.noisy(sigma) else NOISE_LEVELS
        low = float(smallest_step(x, eps)[0])
        levels = self.levels.setdefault((name, index), [])
        for level in range(LADDER_LEVELS + DEEP_LEVELS):
            upper, lower, span = taken_step(element, half)
            if not span > 0 or (level >= LADDER_LEVELS and not span / 2 >= low):
                break
            if prepaid and level == 0:
                self.prepaid.add((name, index))  # in the plan as its element's main pass
            else:
                self.evaluator.plan(2)
            f = self.evaluator.at_elements(name, where, np.array([upper, lower]))
            f_up, f_down = float(f[0]), float(f[1])
            levels.append(Level(half, float(upper), float(lower), f_up, f_down))
            level_noise = floor
            if math.isfinite(f_up) and math.isfinite(f_down):
                size = max(abs(f_up), abs(f_down))
                level_noise = max(
                    floor, noise_bound_at(sigma, size, self.noise_eps, self.tolerance)
                )
            noises.append(level_noise)
            noise = max(noises[-recent:] if recent else noises)
            with np.errstate(invalid="ignore", over="ignore"):
                slopes.append(float((f[0] - f[1]) / np.float64(span)))
            halves.append(span / 2)
            verdict = ladder_third(slopes, halves, noise)
            if verdict is not None:
                if verdict[2] == "noise" and len(slopes) == 2 and self.noisy(sigma):
                    start = (halves[0], slopes[0])
                    return Reading(*self._climb(name, where, x, start, sigma, verdict, noise))
                fifth = float("nan")
                if verdict[2] == "converged":
                    fifth = ladder_fifth(slopes[-3:], halves[-3:], noise)
                return Reading(verdict[0], verdict[1], noise, fifth, slopes[-1])
            half = half / (LADDER_RATIO if level + 1 < LADDER_LEVELS else DEEP_RATIO)
        # never converged: the last pair's estimate (smallest steps: the safe side)
        if len(slopes) >= 2:
            h = np.asarray(halves[-2:], dtype=np.float64)  # float64: h**2 may overflow
            with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
                last = 6.0 * (abs(slopes[-2] - slopes[-1]) / (h[0] ** 2 - h[1] ** 2))
            return Reading(float(last), halves[-1], noise)
        return Reading(float("inf"), float("nan"), noise)

    def noisy(self, sigma: float) -> bool:
        """Whether the measured noise is ``NOISY`` times the floor or more (cancellation in
        the loss): then rounding, not truncation, limits the accuracy at the ladder's start."""
        floor = noise_bound_at(float("nan"), self.evaluator.f0, self.noise_eps, self.tolerance)
        return bool(NOISE_SIGMAS * sigma > NOISY * floor)

    def _climb(
        self,
        name: str,
        where: np.ndarray,
        x: np.ndarray,
        start: tuple[float, float],
        sigma: float,
        verdict: tuple[float, float, str],
        noise: float,
    ) -> tuple[float, float, float]:
        """For a noisy loss whose slope does not change beyond noise at the ladder's start
        (``start``: half-step, slope): larger steps, ``LADDER_RATIO``-fold up to
        ``CLIMB_LEVELS`` times, while it still does not, since rounding falls as ``1/h``;
        returns the last noise-limited verdict's ``|f'''|`` bound and step, and the noise."""
        half, slope = start
        third, largest, _ = verdict
        for _ in range(CLIMB_LEVELS):
            upper, lower, span = taken_steps(x, np.array([half * LADDER_RATIO]))
            self.evaluator.plan(2)
            f = self.evaluator.at_elements(name, where, np.concatenate([upper, lower]))
            if not np.all(np.isfinite(f)):
                break
            size = np.array(max(abs(f[0]), abs(f[1])))
            floor = noise_bound_at(sigma, float(size), self.noise_eps, self.tolerance)
            wider_noise = max(noise, floor)
            wider = float(span[0] / 2)
            wider_slope = float((f[0] - f[1]) / span[0])
            if wider_noise / wider >= noise / half:  # rounding grows as fast as the step
                break  # (the residuals of a least-squares fit, whose rounding grows with them)
            found = ladder_third([wider_slope, slope], [wider, half], wider_noise)
            if found is None or found[2] != "noise":
                break
            third, largest, noise = found[0], found[1], wider_noise
            half, slope = wider, wider_slope
        return third, largest, noise


def _offsets_with_zero(offsets: np.ndarray, middle: int) -> np.ndarray:
    """A noise table's abscissae: ``offsets`` with 0 (``f0``'s) inserted at ``middle``."""
    return np.concatenate([offsets[:middle], [0.0], offsets[middle:]])


def _steady_trend(trends: list[float]) -> float:
    """The noise that trend tables at spacings ``NOISE_RESCALE`` apart agree on, 0 if none: a
    loss computed through a larger intermediate (``log(1 + e)`` with ``e`` ~1e-6: its values
    move in steps of ``1``'s ulp, 1e6 of its own) moves by a whole number of those steps
    between points, a table ECnoise reads as a trend with one kink at every spacing; what is
    left about a cubic stays the same from one spacing to the next, as noise does, where a
    kink's shrinks with the spacing. The last two tables must agree within 4x."""
    if len(trends) < 2 or not all(np.isfinite(trends[-2:])):
        return 0.0
    low, high = min(trends[-2:]), max(trends[-2:])
    return low if low > 0.0 and high <= 4.0 * low else 0.0


def _fit_residual(t: np.ndarray, values: np.ndarray, degree: int = 1) -> float:
    """The standard deviation of ``values`` about their least-squares polynomial of ``degree``
    in ``t`` (``degree + 1`` degrees of freedom spent): an upper bound of the noise in a table
    that shows a trend, taken about its middle value and scaled first (values near 1e300 must
    not overflow when summed or squared)."""
    if not np.isfinite(values).all():
        return float("nan")
    with np.errstate(over="ignore"):  # values of both signs near the largest: inf, refused
        centre = values - values[values.size // 2]
    scale = float(np.abs(centre).max())
    if not np.isfinite(scale):
        return float("nan")
    if scale == 0.0:
        return 0.0
    basis = np.vander((t - t.mean()) / np.abs(t - t.mean()).max(), degree + 1)
    coefficients = np.linalg.lstsq(basis, centre / scale, rcond=None)[0]
    residual = centre / scale - basis @ coefficients
    return scale * float(np.sqrt((residual @ residual) / (t.size - degree - 1)))


def _distinct32(points: np.ndarray) -> bool:
    """Whether float32 tells the table's ``points`` apart (a loss reading them through a float32
    cast sees different values), in the float32 range only."""
    with np.errstate(over="ignore"):
        narrow = points.astype(np.float32)
    return bool(np.isfinite(narrow).all() and np.unique(narrow).size == points.size)
