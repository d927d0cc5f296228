"""The finite-difference engine: numeric partials with an error estimate for every element.

Per parameter tensor:

1. **Pilot.** On up to three elements (of the tensor, or shared by all small tensors):
   a. *noise*: seven loss values at a tiny spacing (:func:`gradcheck.core.numerics.ecnoise`,
      six calls per element) measure the loss's noise; the tensor takes the largest;
   b. *ladder*: central differences at steps shrinking 4x per level from ``eps**(1/5)
      max(1, |x|)`` until two consecutive ``|f'''|`` estimates agree or the differences sink
      into that noise (:func:`gradcheck.core.stencil.ladder_third`; two calls per level).
   A table that sees no change at one spacing though the next one's slope says the loss
   should have moved by many of its ulps reveals a loss that rounds its parameters (a float32
   cast inside): steps then stay well above that resolution, and ``|f'| x resolution`` counts
   as each element's noise.
   The step of the main pass follows from both
   (:func:`gradcheck.core.numerics.scale_free_step`), whatever the scale of the parameter.
2. **Main pass.** Every element gets one central difference at that step: two loss
   evaluations each, and an error bound from the pilot's ``|f'''|`` and the noise.
3. **Refinement.** Elements whose hand-written value disagrees with the main pass by more
   than that bound (and every element, with ``richardson=True``) get four more evaluations
   at ``x +- h/4`` and ``x +- h/2``. Three levels give a Richardson value with an error
   estimate of the element's own (no tensor-wide curvature bound); the way the one-sided
   slopes' gap grows with the step tells a kink (ReLU at 0, a max-pool tie, ``abs``: the
   element is ``uncertain``) from a smooth function, and the way the central values converge
   tells a loss that is C1 but not C2 (``relu(z)**2`` at ``z = 0``: error linear in the
   step, extrapolated linearly). Smaller steps, not larger: they stay clear of nearby kinks
   and resolve sharp curvature the main step does not. A smooth element still off after
   that gets four more at ``x +- 2h`` and ``x +- 4h``, where rounding is 4x-8x smaller, and
   keeps whichever Richardson value has the smaller error estimate: the tolerance is tight
   where the measurement is good.

A correct smooth net therefore costs about ``2P`` evaluations (plus the pilots); the extra
ones go only where a verdict needs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gradcheck.core.evaluation import Evaluator
from gradcheck.core.numerics import (
    LADDER_LEVELS,
    LADDER_RATIO,
    NOISE_OFFSETS,
    NOISE_RESCALE,
    NOISE_SIGMAS,
    NOISE_TRIES,
    Tolerance,
    central_error,
    coarser_eps,
    ecnoise,
    machine_eps,
    noise_bound,
    noise_spacing,
    pilot_step,
    richardson_rounding,
    scale_free_step,
    taken_steps,
)
from gradcheck.core.params import ParamSet
from gradcheck.core.stencil import analyse, ladder_third
from gradcheck.errors import StateMutationError

PILOT_ELEMENTS = 3
# Tensors smaller than this share one pilot (FiniteDifferences.shared_pilot): an own pilot (about
# 40 evaluations) then costs under 2% of the tensor's 2n.
OWN_PILOT_MIN = 1024
# Third-derivative margin: the pilot sees three elements, the main pass all of them.
THIRD_MARGIN = 4.0
# Refinement levels, as fractions of the main step: smaller steps stay clear of nearby kinks and
# of curvature the main step does not resolve, at the price of more rounding.
REFINE_LEVELS = (0.25, 0.5)
# Second refinement, for smooth elements still off after the first: larger steps, less rounding.
WIDEN_LEVELS = (2.0, 4.0)
# A main-pass discrepancy beyond this many error bounds is refined (no safety factor: the bound
# comes from the tensor's largest curvature, so most elements sit far inside it, and a small
# error must reach the per-element estimate to be judged by it).
REFINE_TRIGGER = 1.0
# A loss whose measured noise bound is this many times the floor is noisy (cancellation inside):
# its pilot ladder climbs to larger steps while the slope stays flat within noise, up to
# CLIMB_LEVELS times LADDER_RATIO (256 times the ladder's start, ~0.2 max(1, |x|)).
NOISY = 100.0
CLIMB_LEVELS = 4
# An element's numeric partial is resolved when its error estimate is within this fraction of
# its size (and it is no kink): a ratio, a sign or a stall read from it is meaningful.
RESOLVED_FRACTION = 0.1


@dataclass
class Pilot:
    """What the pilot measured for a tensor (or for all small tensors together)."""

    sigma: float  # measured standard deviation of the loss's noise, NaN if never measured
    noise: float  # the noise bound at the loss values the ladder saw (it sets the step)
    third: float  # the ladder's largest |f'''|, times THIRD_MARGIN
    largest: float  # the largest step the ladder saw the function smooth at


@dataclass
class TensorDifferences:
    """Finite-difference results for one parameter tensor (flat arrays, float64)."""

    numeric: np.ndarray
    error: np.ndarray  # estimated |numeric - true partial| (per element when refined)
    step: np.ndarray  # half the span actually taken by the central difference
    forward: np.ndarray  # one-sided slopes, NaN where the element was not refined
    backward: np.ndarray
    slack: np.ndarray  # how far the one-sided slopes may be off (curvature and noise)
    kink: np.ndarray  # bool: the loss is not differentiable at this element
    refined: np.ndarray  # bool: refined on smaller steps
    third: float  # the pilot's |f'''|
    rtol: float  # the relative floor of the tolerance rule for this tensor
    # measured standard deviation of the loss values (ECnoise), NaN if not measured
    noise: float = float("nan")
    # bool: the numeric partial is known to RESOLVED_FRACTION of its size and is no kink, so
    # ratios, signs and stalls read from it mean something ("converged")
    resolved: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    # the smallest |analytic - numeric| the check is sure to flag, before the relative floor
    # (safety * error where refined; the refinement trigger plus the rounding a refinement
    # would carry elsewhere)
    detectable: np.ndarray = field(default_factory=lambda: np.zeros(0))


class FiniteDifferences:
    """The numerical procedure: numeric partials of the loss, per tensor, with error estimates.

    Every loss call goes through ``evaluator`` (:class:`gradcheck.core.evaluation.Evaluator`,
    whose baseline must have been taken); this class only chooses the points and reads the
    values.
    """

    def __init__(self, evaluator: Evaluator, tolerance: Tolerance, richardson: bool = False):
        self.evaluator = evaluator
        self.params = evaluator.params
        self.tolerance = tolerance
        self.richardson = richardson
        self._shared: Pilot | None = None
        self._sigma = float("nan")  # the loss's noise, once a table has isolated it
        self._resolution = 0.0  # the loss's input resolution, relative (0: none seen)

    # -- the pilot ---------------------------------------------------------------------------
    def _pilot(self, elements: list[tuple[str, int]]) -> Pilot:
        """Noise, ``|f'''|`` (times a margin) and the largest smooth step on ``elements``."""
        # the noise is a property of how the loss is computed, not of which element moves: the
        # first element whose table isolates it speaks for all tensors (one table, six calls)
        sigma = self._sigma
        for name, index in elements if not sigma > 0 else []:
            measured, resolution = self._measure_noise(name, index)
            self._resolution = max(self._resolution, resolution)
            if measured > 0:
                sigma = self._sigma = measured
                break
            if measured == 0:
                sigma = 0.0
        thirds, largest, noises = [], [], []
        for name, index in elements:
            third, top, noise = self._ladder(name, index, sigma)
            if np.isfinite(top):
                largest.append(top)
            thirds.append(third)
            noises.append(noise)
        finite_thirds = [t for t in thirds if np.isfinite(t)]
        third = max(finite_thirds) * THIRD_MARGIN if finite_thirds else float("inf")
        return Pilot(sigma, max(noises), third, max(largest) if largest else float("nan"))

    def _eps(self, name: str) -> float:
        """Epsilon of the coarser of the parameter's and the loss's dtype."""
        return coarser_eps(self.params[name].dtype, self.evaluator.loss_dtype)

    def _measure_noise(self, name: str, index: int) -> tuple[float, float]:
        """Standard deviation of the loss's noise along element ``index`` of ``name``
        (:func:`gradcheck.core.numerics.ecnoise`; six calls per table, at most
        ``NOISE_TRIES`` tables). 0 when the loss shows no noise above its resolution, NaN when
        no spacing isolated the noise. Also the loss's input resolution, relative to ``|x|``:
        a table that saw no change at one spacing and changes at the next says the loss reads
        this element only to about that spacing (it rounds its parameters, a float32 cast
        inside a float64 loss); 0 when no such staircase was seen."""
        dtype = self.params[name].dtype
        x = float(self.params.flat_values(name)[index])
        spacing = noise_spacing(x, self._eps(name))
        widest = float(pilot_step(np.array(x), self._eps(name)))
        offsets = np.array(NOISE_OFFSETS, dtype=np.float64)
        seen: set[str] = set()
        status = "slope"
        resolution = 0.0
        for _ in range(NOISE_TRIES):
            points = (x + spacing * offsets).astype(dtype)
            self.evaluator.plan(offsets.size)  # the pilot plans its calls as it goes
            f = self.evaluator.at_elements(name, np.full(offsets.size, index, np.intp), points)
            sigma, status = ecnoise(np.insert(f, len(NOISE_OFFSETS) // 2, self.evaluator.f0))
            if "flat" in seen and status != "flat" and x != 0:
                # a staircase in x, not in f: the slope seen here would have moved f by many of
                # its own ulps at the flat spacing, yet f did not move
                slope = abs(f[-1] - f[0]) / (spacing * (offsets[-1] - offsets[0]))
                step_before = spacing / NOISE_RESCALE
                if slope * step_before > 4.0 * self._eps(name) * abs(self.evaluator.f0):
                    resolution = spacing / abs(x)
            if status == "measured":
                return sigma, resolution
            seen.add(status)
            if len(seen) == 2:  # no variation at one spacing, a smooth trend at the next
                break
            if status == "flat" and spacing * NOISE_RESCALE * offsets.max() > widest:
                break  # flat up to the ladder's own start: no noise to see
            spacing = spacing * NOISE_RESCALE if status == "flat" else spacing / NOISE_RESCALE
        return (0.0 if "flat" in seen else float("nan")), resolution

    def _ladder(self, name: str, index: int, sigma: float) -> tuple[float, float, float]:
        """``|f'''|``, the largest smooth step and the noise bound at element ``index`` of
        ``name``, from central differences at steps shrinking ``LADDER_RATIO``-fold (two calls
        per level) until :func:`gradcheck.core.stencil.ladder_third` says they are enough. The
        noise bound is taken at the loss values seen (a loss that is 0 at the start has its
        noise where it is evaluated)."""
        eps = self._eps(name)
        x = self.params.flat_values(name)[index : index + 1]
        half = pilot_step(x, eps)
        where = np.array([index, index], dtype=np.intp)
        slopes: list[float] = []
        halves: list[float] = []
        noise = float(noise_bound(sigma, np.array(self.evaluator.f0), eps, self.tolerance))
        for _ in range(LADDER_LEVELS):
            upper, lower, span = taken_steps(x, half)
            if not span[0] > 0:
                break
            self.evaluator.plan(2)
            f = self.evaluator.at_elements(name, where, np.concatenate([upper, lower]))
            if np.all(np.isfinite(f)):
                size = np.array(max(abs(f[0]), abs(f[1])))
                noise = max(noise, float(noise_bound(sigma, size, eps, self.tolerance)))
            with np.errstate(invalid="ignore", over="ignore"):
                slopes.append(float((f[0] - f[1]) / span[0]))
            halves.append(float(span[0] / 2))
            verdict = ladder_third(slopes, halves, noise)
            if verdict is not None:
                if verdict[2] == "noise" and len(slopes) == 2 and self._noisy(sigma, eps):
                    start = (halves[0], slopes[0])
                    return self._climb(name, where, x, start, sigma, verdict, noise)
                return verdict[0], verdict[1], noise
            half = half / LADDER_RATIO
        # never converged: the last pair's estimate (smallest steps: the safe side)
        if len(slopes) >= 2:
            with np.errstate(invalid="ignore", over="ignore"):
                last = 6.0 * abs(slopes[-2] - slopes[-1]) / (halves[-2] ** 2 - halves[-1] ** 2)
            return float(last), halves[-1], noise
        return float("inf"), float("nan"), noise

    def _noisy(self, sigma: float, eps: float) -> bool:
        """Whether the measured noise is ``NOISY`` times the floor or more (cancellation in
        the loss): then rounding, not truncation, limits the accuracy at the ladder's start."""
        floor = float(noise_bound(float("nan"), np.array(self.evaluator.f0), eps, self.tolerance))
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
        eps = self._eps(name)
        half, slope = start
        third, largest, _ = verdict
        for _ in range(CLIMB_LEVELS):
            upper, lower, span = taken_steps(x, np.array([half * LADDER_RATIO]))
            self.evaluator.plan(2)
            f = self.evaluator.at_elements(name, where, np.concatenate([upper, lower]))
            if not np.all(np.isfinite(f)):
                break
            size = np.array(max(abs(f[0]), abs(f[1])))
            wider_noise = max(noise, float(noise_bound(sigma, size, eps, self.tolerance)))
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

    def shared_pilot(self) -> Pilot:
        """One pilot for every tensor smaller than ``OWN_PILOT_MIN``, run once per check: a
        pilot per tiny tensor (a scalar weight) would cost more than the tensor itself."""
        if self._shared is None:
            small = [
                (name, i)
                for name in self.params.names
                if self.params[name].size < OWN_PILOT_MIN
                for i in range(self.params[name].size)
            ]
            self._shared = self._pilot([small[k] for k in _spread(len(small))])
        return self._shared

    def shared_third(self) -> float:
        """The shared pilot's ``|f'''|`` (with its margin)."""
        return self.shared_pilot().third

    # -- differentiation -------------------------------------------------------------------
    def differentiate(
        self,
        name: str,
        analytic: np.ndarray | None,
        precision: np.dtype | None = None,
        indices: np.ndarray | None = None,
    ) -> TensorDifferences:
        """Numeric partials of the loss with respect to every element of parameter ``name``.

        ``analytic`` (flat, float64) decides which elements need refining; ``None`` means the
        hand-written gradient is unusable for this tensor, so only the main pass runs.
        ``precision`` is the dtype the relative floor comes from (the coarser of the
        parameter's and the hand-written gradient's; the parameter's by default).
        ``indices`` restricts everything, the pilot included, to those flat elements (fast
        mode measures only the elements it located); ``analytic`` and the result then run
        over ``indices``.
        """
        param = self.params[name]
        x = self.params.flat_values(name)
        everything = np.arange(x.size) if indices is None else np.asarray(indices, np.intp)
        x = x[everything]
        n = x.size
        eps = self._eps(name)
        tol = self.tolerance

        # 1. pilot: noise and |f'''| on a few elements (of this tensor, or, for small tensors,
        # of all small tensors together)
        if indices is None and x.size < OWN_PILOT_MIN:
            pilot = self.shared_pilot()
        else:
            pilot = self._pilot([(name, int(i)) for i in everything[_spread(n)]])
        third, sigma = pilot.third, pilot.sigma

        # 2. main pass: one central difference per element at the step fitted to the function
        largest = pilot.largest if np.isfinite(pilot.largest) else pilot_step(x, eps)
        # a loss that rounds its parameters reads them no finer than its resolution
        resolution = self._resolution
        fineness = max(machine_eps(param.dtype), resolution)
        h = scale_free_step(x, pilot.noise, third, largest, fineness)
        upper, lower, span = taken_steps(x, h)
        f_up = self.evaluator.at_elements(name, everything, upper)
        f_down = self.evaluator.at_elements(name, everything, lower)
        noise = noise_bound(sigma, np.maximum(np.abs(f_up), np.abs(f_down)), eps, tol)
        with np.errstate(invalid="ignore", over="ignore"):
            numeric = (f_up - f_down) / span
            # the points the loss saw are off from ours by up to its resolution: as loss noise,
            # |f'| times that
            rounding = np.nan_to_num(np.abs(numeric)) * resolution * np.abs(x.astype(np.float64))
            noise = np.maximum(noise, rounding)
            error = central_error(noise, span, third)
        step = span / 2
        forward = np.full(n, np.nan)
        backward = np.full(n, np.nan)
        slack = np.full(n, np.nan)
        kink = np.zeros(n, dtype=bool)
        refined = np.zeros(n, dtype=bool)

        # 3. refinement where the verdict needs it
        floor = tol.relative_floor(precision or param.dtype)

        def beyond(factor: float, where: np.ndarray) -> np.ndarray:
            """Elements ``where`` whose discrepancy exceeds ``factor`` error estimates plus
            the relative floor (none without a usable hand-written gradient)."""
            if analytic is None:
                return np.zeros(where.size, dtype=bool)
            a, v = analytic[where], numeric[where]
            with np.errstate(invalid="ignore"):
                return (
                    np.abs(a - v) > factor * error[where] + floor * np.maximum(np.abs(a), np.abs(v))
                ) & np.isfinite(a)

        positions = np.arange(n)
        off = beyond(REFINE_TRIGGER, positions)
        again = positions if self.richardson else positions[off]
        if again.size:
            if not self.richardson:  # the plan already counts refinement then
                self.evaluator.plan(4 * again.size)
            more = self._stencil(
                name,
                everything[again],
                x[again],
                step[again],
                sigma,
                REFINE_LEVELS,
                known={1: (f_up[again], f_down[again])},
                floor=rounding[again],
            )
            # a kink only matters where the hand-written value disagreed: elsewhere (the
            # richardson option) the main pass stands
            keep = ~(more["kink"] & ~off[again])
            where = again[keep]
            numeric[where] = more["numeric"][keep]
            error[where] = more["error"][keep]
            forward[again] = more["forward"]
            backward[again] = more["backward"]
            slack[again] = more["slack"]
            kink[where] = more["kink"][keep]
            refined[again] = True
            # 4. smooth elements still off by more than their own error, but not beyond the
            # verdict's margin: larger steps carry 4-8x less rounding; keep the better value
            smooth = where[~kink[where]]
            widen = smooth[beyond(REFINE_TRIGGER, smooth) & ~beyond(tol.safety, smooth)]
            if widen.size:
                self.evaluator.plan(4 * widen.size)
                wide = self._stencil(
                    name,
                    everything[widen],
                    x[widen],
                    step[widen],
                    sigma,
                    WIDEN_LEVELS,
                    known={1: (f_up[widen], f_down[widen])},
                    floor=rounding[widen],
                )
                better = (
                    ~wide["kink"] & np.isfinite(wide["numeric"]) & (wide["error"] < error[widen])
                )
                numeric[widen[better]] = wide["numeric"][better]
                error[widen[better]] = wide["error"][better]
        changed = self.params.changed()
        if changed:  # the baseline saw no change, so it happened at a perturbed point
            raise StateMutationError(
                f"parameter(s) {', '.join(map(repr, changed))} changed while {name!r} was "
                "being perturbed; a loss must not update its parameters"
            )
        with np.errstate(invalid="ignore"):
            resolved = (
                np.isfinite(numeric)
                & np.isfinite(error)
                & ~kink
                & (error <= RESOLVED_FRACTION * np.abs(numeric))
            )
            detectable = np.where(
                refined,
                tol.safety * error,
                REFINE_TRIGGER * error + tol.safety * richardson_rounding(noise, step),
            )
        return TensorDifferences(
            numeric,
            error,
            step,
            forward,
            backward,
            slack,
            kink,
            refined,
            third,
            floor,
            noise=sigma,
            resolved=resolved,
            detectable=detectable,
        )

    def _stencil(
        self,
        name: str,
        idx: np.ndarray,
        x: np.ndarray,
        h: np.ndarray,
        sigma: float,
        multiples: tuple[float, ...],
        known: dict[float, tuple[np.ndarray, np.ndarray]] | None = None,
        floor: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Central differences at ``m * h`` for ``m`` in ``multiples`` (and ``known`` ones),
        analysed by :func:`gradcheck.core.stencil.analyse` with the measured noise (at least
        ``floor``, per element)."""
        dtype = self.params[name].dtype
        x = x.astype(dtype)
        x64 = x.astype(np.float64)
        levels = sorted(set(multiples) | set(known or {}))
        values = [np.full(len(idx), self.evaluator.f0)]
        central = {}
        for m in levels:
            up, down, _ = taken_steps(x, m * h)
            if known and m in known:
                f_up, f_down = known[m]
            else:
                f_up = self.evaluator.at_elements(name, idx, up)
                f_down = self.evaluator.at_elements(name, idx, down)
            central[m] = (f_up, f_down, up.astype(np.float64) - x64, x64 - down.astype(np.float64))
            values += [f_up, f_down]
        noise = noise_bound(
            sigma, np.abs(np.stack(values)).max(axis=0), self._eps(name), self.tolerance
        )
        if floor is not None:
            noise = np.maximum(noise, floor)
        return analyse(self.evaluator.f0, central, noise)


def _spread(n: int) -> np.ndarray:
    """Up to ``PILOT_ELEMENTS`` positions spread evenly over ``range(n)``."""
    return np.unique(np.linspace(0, n - 1, min(n, PILOT_ELEMENTS)).round().astype(np.intp))


# Pilot cost per element, typically: a share of the noise table (6) and a ladder of about three
# levels (6). The pilot plans its own calls as it makes them (their number depends on the loss);
# fast mode's cost model reads this figure.
PILOT_EVALUATIONS = 12


def planned_evaluations(params: ParamSet, richardson: bool = False) -> int:
    """Loss evaluations a check plans before the pilots and refinement (both plan their own
    calls as they go): 2 for the baseline and 2 per element (6 with ``richardson``)."""
    return 2 + (6 if richardson else 2) * sum(params[name].size for name in params.names)
