"""The finite-difference engine: numeric partials with an error estimate for every element.

Per parameter tensor:

1. **Pilot** (:mod:`gradcheck.core.pilot`). On up to three elements (of the tensor, or shared
   by all small tensors): the loss's noise, measured once per check, and ``|f'''|`` from a
   ladder of steps converging on the function's own scale. The step of the main pass follows
   from both (:func:`gradcheck.core.numerics.scale_free_step`), whatever the scale of the
   parameter; a loss that rounds its parameters gets steps well above that resolution, and
   ``|f'| x resolution`` counts as each element's noise.
2. **Main pass.** Every element gets one central difference at that step: two loss
   evaluations each, and an error bound from the pilot's ``|f'''|`` and the noise. Where
   that bound cannot reach ``ACCURACY_TRIGGER`` of the partials' scale and a fourth-order
   value can (:func:`gradcheck.core.numerics.fourth_order_pays`), central differences at a
   larger ``h`` and ``2h`` instead (four evaluations), extrapolated (Richardson), with an
   error bound from the pilot's ``|f^(5)|``; refinement then adds only ``h/2``.
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

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from gradcheck.core.evaluation import Evaluator
from gradcheck.core.numerics import (
    Tolerance,
    central_error,
    fourth_order_error,
    fourth_order_pays_per,
    fourth_order_step,
    machine_eps,
    noise_bound,
    pilot_step,
    richardson_rounding,
    scale_free_step,
    smallest_step,
    taken_steps,
)
from gradcheck.core.params import ParamSet
from gradcheck.core.pilot import THIRD_MARGIN as THIRD_MARGIN  # fast mode reads it here
from gradcheck.core.pilot import (
    Level,
    Pilot,
    Pilots,
    ladder_kinked,
    own_richardson,
    own_third,
)
from gradcheck.core.stencil import AT_POINT_RELATIVE, analyse, held_jump
from gradcheck.errors import StateMutationError

PILOT_ELEMENTS = 3
# The main pass of an element the pilot climbed a ladder on takes the ladder's level nearest its
# own step when it is within this factor of it (levels are LADDER_RATIO = 4 apart, so one is
# whenever the step lies within the ladder's range): the ladder's two loss values are then the
# main pass's. At SNAP times the optimal step the error estimate (rounding + truncation,
# central_error) is at most 5/3 of the optimum's, at 1/SNAP 17/12; the estimate is the one of
# the step taken, so the verdict stays honest. Saves two evaluations per pilot element: on a net
# of 14 scalars, 6 of its 2P = 28.
SNAP = 2.0
# The main pass takes a pilot element's extrapolated ladder value (FiniteDifferences.
# _snap_to_ladders) only where every ladder on its tensor ended within this many levels: the
# function read smooth from the ladders' start down. On a ReLU net, ladders that went deeper
# "converged" across kinks on values 10-10,000 error bars off (two_layer_net, fast and full).
EXTRAPOLATE_LEVELS = 3
# The noise behind disagreements, measured where they are: up to NOISE_CHECKS elements get an
# ECnoise table of their own (FiniteDifferences.noise_at); one that finds NOISE_MARGIN times the
# noise assumed raises it. Before refinement where EARLY_NOISE_FROM or more elements of a tensor
# disagree with the main pass; after every tensor for verdicts that fail (api._check_noise).
NOISE_CHECKS = 3
NOISE_MARGIN = 4.0
# A failing verdict whose main pass read the loss at this many times its size at the start
# has its noise measured at those points too (FiniteDifferences.noise_where_read).
GROWN = 4.0
EARLY_NOISE_FROM = 8
# Tensors smaller than this share one pilot (FiniteDifferences.shared_pilot): an own pilot (about
# 40 evaluations) then costs under 2% of the tensor's 2n.
OWN_PILOT_MIN = 1024
# Refinement levels, as fractions of the main step: smaller steps stay clear of nearby kinks and
# of curvature the main step does not resolve, at the price of more rounding.
REFINE_LEVELS = (0.25, 0.5)
# After a fourth-order main pass (levels 1 and 2 known), one level below completes three.
FOURTH_REFINE_LEVELS = (0.5,)
# Second refinement, for smooth elements still off after the first: larger steps, less rounding.
WIDEN_LEVELS = (2.0, 4.0)
# Kink isolation, for elements whose stencil meets a kink: each round takes two more levels, 1/4
# and 1/2 of the smallest so far (four evaluations), so the three levels keep the refinement's
# proportions; at most this many rounds (65536x smaller steps), fewer where the steps would reach
# smallest_step. A kink t away is clear of the stencil once its smallest step is below t / 2: a
# kink a quarter of a step away takes two rounds. Only elements whose hand-written value
# disagrees and whose stencil still meets a kink take another round; one that looks at the
# point for AT_POINT_ROUNDS rounds in a row (64x smaller steps: a kink beside it would be
# within 1/1000 of the main step) stops there, so exact kinks (ReLU at 0, abs at 0) cost 12
# evaluations more, not 32.
ISOLATE_ROUNDS = 8
# A refined stencil that looks smooth with |f'''| this many times the pilot's (margined) bound is
# isolated as a kink would be (smaller steps until two rounds agree)
SUSPECT_THIRD = 16.0
AT_POINT_ROUNDS = 3
# A main-pass discrepancy beyond this many error bounds is refined (no safety factor: the bound
# comes from the tensor's largest curvature, so most elements sit far inside it, and a small
# error must reach the per-element estimate to be judged by it).
REFINE_TRIGGER = 1.0
# A tensor wrong almost everywhere is wrong whatever refinement says about each element: refine
# an evenly spread sample of its disagreeing elements (as fast mode samples), and all of them
# only if the sample overturns a verdict. Below these, every disagreeing element is refined.
REFINE_SAMPLE = 64
WRONG_ALMOST_EVERYWHERE = 0.5
# An element's numeric partial is resolved when its error estimate is within this fraction of
# its size (and it is no kink): a ratio, a sign or a stall read from it is meaningful.
RESOLVED_FRACTION = 0.1


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
    # the smallest |analytic - numeric| the check is sure to flag, before the relative floor
    # (safety * error where refined; the refinement trigger plus the rounding a refinement
    # would carry elsewhere)
    detectable: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def resolved(self) -> np.ndarray:
        """Bool per element: the numeric partial is known to ``RESOLVED_FRACTION`` of its size
        and is no kink, so ratios, signs and stalls read from it mean something
        ("converged"). Computed when asked: the verdicts do not need it."""
        with np.errstate(invalid="ignore"):
            return (
                np.isfinite(self.numeric)
                & np.isfinite(self.error)
                & ~self.kink
                & (self.error <= RESOLVED_FRACTION * np.abs(self.numeric))
            )


class LadderUse(NamedTuple):
    """How the main pass takes the pilot ladders of a tensor's elements, by position
    (:meth:`FiniteDifferences._snap_to_ladders`)."""

    levels: dict[int, Level]  # the level whose loss values are the element's main pass
    thirds: dict[int, float]  # the element's own |f'''|, where its error estimate takes it
    # the Richardson value of the ladder's two smallest levels and its error estimate, where
    # that is the element's numeric partial
    extrapolated: dict[int, tuple[float, float]]


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
        self.pilots = Pilots(evaluator, tolerance)
        self._shared: Pilot | None = None
        self.pilot_of: dict[str, Pilot] = {}  # the pilot each tensor (or group) was measured by
        self._remeasuring: dict[str, Pilot] = {}  # the next differentiate's pilot, by name
        self._tables: dict[tuple[str, int], float] = {}  # local noise, by (tensor, element)
        # each real tensor's main-pass steps and the larger |f| they read (of its whole-tensor
        # measurement): where a failing verdict's noise is measured at the points it read
        self._read: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        # the noise of a tensor whose main pass took the noise measured where it disagreed
        self.raised_noise: dict[str, float] = {}
        # each real tensor's elements (its own flat indices) whose kinks isolation did not
        # clear down to the smallest step: judged against the range of its one-sided slopes
        self.unisolated: dict[str, set[int]] = {}
        self.notes: list[str] = []  # what the user should know about how partials were refined

    def _note_richardson(self, owner: str, off: float) -> None:
        """Note that ``owner``'s elements were extrapolated, since central differences would be
        off by ``off`` of its partials' scale: one note per tensor, the worst of its calls (fast
        mode measures a tensor's elements in several calls)."""
        head = f"{owner}: central differences at their best step would be off by up to "
        for k, note in enumerate(self.notes):
            if note.startswith(head):
                off = max(off, float(note[len(head) :].split(" ", 1)[0]))
                del self.notes[k]
                break
        self.notes.append(
            f"{head}{off:.2g} of the partials' scale (rounding of a loss large against its "
            "variation): every element was measured at h and 2h and extrapolated (Richardson, "
            "fourth order)"
        )

    # -- the pilot ---------------------------------------------------------------------------
    def _eps(self, name: str) -> float:
        return self.pilots.eps(name)

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
            elements = [small[k] for k in _spread(len(small))]
            self._shared = self.pilots.run(elements, prepaid=True)
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
        if indices is None:
            x = self.params.flat_values(name)
            everything = np.arange(x.size)
        else:  # a few elements of a big tensor: no copy of the tensor
            everything = np.asarray(indices, np.intp)
            x = self.params.flat_values(name, everything)
        n = x.size
        eps = self._eps(name)
        tol = self.tolerance

        # 1. pilot: noise and |f'''| on a few elements (of this tensor, or, for small tensors,
        # of all small tensors together)
        again_with = self._remeasuring.pop(name, None) if indices is None else None
        if again_with is not None:  # measured again: the noise found where it failed
            pilot = again_with
            self.evaluator.plan(2 * n)
        elif indices is None and x.size < OWN_PILOT_MIN:
            pilot = self.shared_pilot()
        else:
            pilot = self.pilots.run(
                [(name, int(i)) for i in everything[_spread(n)]], prepaid=indices is None
            )
        if indices is None:
            self.pilot_of[name] = pilot
        third, sigma = pilot.third, pilot.sigma
        reported = sigma

        # 2. main pass: one central difference per element at the step fitted to the function
        # (two evaluations), or, where that cannot reach the accuracy a check needs and a
        # Richardson value at a larger step can, central differences at h and 2h (four)
        largest, fineness, low, h = self._main_step(x, param.dtype, pilot, eps)
        resolution = self.pilots.resolution
        known: dict[float, tuple[np.ndarray, np.ndarray]] = {}
        orders = self._orders(name, x, h, analytic, pilot, largest, fineness)
        fourth = orders is not None and bool(orders[0].all())
        if fourth:
            assert orders is not None  # (for mypy)
            _, h4, central_bound = orders
            self.evaluator.plan(2 * n)
            upper, lower, span = taken_steps(x, 2 * h4)
            known[2] = self._both_sides(name, everything, upper, lower)
            outer_span = span
            h = h4
        use = LadderUse({}, {}, {})
        if not fourth and indices is None and resolution == 0 and again_with is None:
            bounds = (low, np.broadcast_to(largest, x.shape))
            clean = not self.pilots.noisy(sigma)
            use = self._snap_to_ladders(name, h, bounds, pilot.noise, third, clean)
        reused = use.levels
        if indices is None and again_with is None:
            self._settle_plan(name, reused)
        upper, lower, span = taken_steps(x, h)
        f_up, f_down = self._main_values(name, everything, upper, lower, reused)
        known[1] = (f_up, f_down)
        seen = np.max([np.maximum(np.abs(u), np.abs(d)) for u, d in known.values()], axis=0)
        if indices is None and again_with is None:
            for owner, start, stop in self._segments(name):
                self._read[owner] = (span[start:stop] / 2, seen[start:stop])
        noise = noise_bound(sigma, seen, self.pilots.noise_eps, tol)
        with np.errstate(invalid="ignore", over="ignore"):
            numeric = (f_up - f_down) / span
            # the points the loss saw are off from ours by up to its resolution: as loss noise,
            # |f'| times that
            rounding = (
                np.nan_to_num(np.abs(numeric)) * resolution * np.abs(x.astype(np.float64))
                if resolution > 0
                else np.zeros(n)  # the same zeros, without nan_to_num's fixed cost
            )
            noise = np.maximum(noise, rounding)

            def error_bounds(noise: np.ndarray, raised: np.ndarray | None = None) -> np.ndarray:
                """The main pass's error estimates, with loss noise ``noise`` per element
                (``raised``: where it was measured again, above the pilot's)."""
                if fourth:  # truncation of fourth order, the pilot's |f^(5)| bounds it
                    return fourth_order_error(noise, span / 2, pilot.fifth)
                error = central_error(noise, span, third)
                for position, own_third in use.thirds.items():  # their own ladder's |f'''|
                    error[position] = central_error(noise[position], span[position], own_third)
                for position, (_, bound) in use.extrapolated.items():  # their ladder's value:
                    # its own bound (with the pilot's noise; where that was raised, at least
                    # the rounding the new noise puts on the main step's value)
                    raise_it = raised is not None and raised[position]
                    error[position] = max(bound, error[position]) if raise_it else bound
                return error

            for position, (value, _) in use.extrapolated.items():
                numeric[position] = value
            error = error_bounds(noise)
            if fourth:
                # Richardson on the half-steps actually taken (the spans differ from 2:1 by
                # their rounding)
                outer = (known[2][0] - known[2][1]) / outer_span
                near, far = (span / 2) ** 2, (outer_span / 2) ** 2
                numeric = (far * numeric - near * outer) / (far - near)
                for owner, start, stop in self._segments(name):
                    worst = float(np.max(central_bound[start:stop])) / pilot.slope
                    self._note_richardson(owner, worst)
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
            whole = where is positions  # every element: no copies
            a, v = (analytic, numeric) if whole else (analytic[where], numeric[where])
            bound = error if whole else error[where]
            with np.errstate(invalid="ignore"):
                return (
                    np.abs(a - v) > factor * bound + floor * np.maximum(np.abs(a), np.abs(v))
                ) & np.isfinite(a)

        positions = np.arange(n)
        off = beyond(REFINE_TRIGGER, positions)
        # many disagreements: the noise measured where they are, before refinement builds on
        # the pilot's (which moved other terms, perhaps)
        if indices is None and again_with is None and off.any():
            raised = self._noise_where_off(name, off, sigma, seen)
            if raised is not None:
                heard, reached, loudest = raised
                noise = np.maximum(noise, reached)
                rounding = np.maximum(rounding, reached)  # the refinement's floor too
                error = error_bounds(noise, heard)
                off = beyond(REFINE_TRIGGER, positions)
                if name not in self.params.groups:  # a group's members: raised_noise
                    reported = loudest
        again = positions if self.richardson else positions[off]
        # a tensor wrong almost everywhere refines a sample first: decided per real tensor (a
        # group's members each as they would be alone)
        samples: list[tuple[str, int, int, np.ndarray]] = []
        if not self.richardson and again.size > REFINE_SAMPLE:
            parts = []
            for owner, start, stop in self._segments(name):
                mine = again[(again >= start) & (again < stop)]
                if refine_sample(mine.size, stop - start):
                    mine = mine[_spread(mine.size, REFINE_SAMPLE)]
                    samples.append((owner, start, stop, mine))
                parts.append(mine)
            again = np.concatenate(parts)
        sampled = bool(samples)
        # refinement levels: below the main step (and the main pass's own levels)
        refine_levels = FOURTH_REFINE_LEVELS if 2 in known else REFINE_LEVELS
        # each element's tensor's root-mean-square magnitude (a group's members each their own)
        # (scaled first: squares of values near 1e200 overflow)
        magnitude = np.zeros(n)
        for _, start, stop in self._segments(name):
            values = np.abs(x[start:stop].astype(np.float64))
            top = float(values.max()) if stop > start else 0.0
            if 0.0 < top < np.inf:
                magnitude[start:stop] = top * np.sqrt(np.mean((values / top) ** 2))
        new_levels = len(set(refine_levels) - set(known))
        while again.size:
            if not self.richardson:  # the plan already counts refinement then
                self.evaluator.plan(2 * new_levels * again.size)
            more = self._stencil(
                name,
                everything[again],
                x[again],
                step[again],
                sigma,
                refine_levels,
                known={m: (u[again], d[again]) for m, (u, d) in known.items()},
                floor=rounding[again],
            )
            # a kink where the hand-written value disagreed: shrink the steps until the stencil
            # is clear of it, or down to where it still sits at the point. In a tensor where
            # kinks were met, so too a smooth-looking stencil (on a smooth loss neither applies:
            # its curvature may well exceed the pilot's, and smaller steps would only cost it
            # sensitivity) whose
            # - curvature is SUSPECT_THIRD times what the pilot allowed: a kink crossed at every
            #   level under an L2 term's larger smooth gap can keep the gaps in proportion and
            #   the central values converging 4x per halving (CS231n's net, seed 515: off by 2%
            #   with a bound of 2e-4, |f'''| 28,000 against the pilot's 3), or
            # - slope jump extrapolated to a zero step is the same from both pairs of levels
            #   (stencil's "steady"), which the cubic test misses when the smaller pair's noise,
            #   amplified 8x, swamps it (a ReLU unit 1e-8 from its kink beside an L2 term: the
            #   central values the mean of both sides, off by 0.2%; seed 15)
            unlike = (more["third"] > SUSPECT_THIRD * third) | more["steady"]
            suspect = ~more["kink"] & unlike & self._kinks_met(name, everything[again], more)
            # and, kinks met or not, a disagreeing element whose step exceeds its tensor's
            # root-mean-square magnitude: a float32 step from the rounding floor (7e-3 on
            # weights of 3e-4 at a ReLU layer's small init) moves the units' pre-activations
            # across a batch's kinks so densely that they read as smooth curvature; the
            # macro slope, off by the partial's own size, came with a rounding-sized bound
            # (a tensor of zeros, a bias at init, has no magnitude to compare with)
            suspect |= ~more["kink"] & (step[again] > magnitude[again]) & (magnitude[again] > 0)
            # and one whose discrepancy a kink at the point would explain: a jump the same
            # from both pairs of levels, beyond its rounding, as large as the discrepancy,
            # though too small beside the curvature's gap for the kink test (a ReLU unit
            # trained to 5e-11 from its kink: its jump 3e-5 of the gap, the central values
            # off by half of it, 1.3e-3 of the partial). Isolation then finds it at the point
            if analytic is not None:
                with np.errstate(invalid="ignore"):
                    explains = np.abs(analytic[again] - more["numeric"]) <= np.abs(more["jump"])
                suspect |= ~more["kink"] & held_jump(more) & explains
            more["crossed"] |= suspect & off[again]
            kinked = np.flatnonzero((more["kink"] | suspect) & off[again])
            if kinked.size:
                self._isolate(
                    name, everything[again], x[again], kinked, more, sigma, rounding[again]
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
                self.evaluator.plan(2 * len(set(WIDEN_LEVELS) - set(known)) * widen.size)
                wide = self._stencil(
                    name,
                    everything[widen],
                    x[widen],
                    step[widen],
                    sigma,
                    WIDEN_LEVELS,
                    known={m: (u[widen], d[widen]) for m, (u, d) in known.items()},
                    floor=rounding[widen],
                )
                # only a wide stencil smooth at every pair of its levels: larger steps reach
                # kinks the refined one kept clear of, and one between its outer levels leaves
                # the inner pair's value with an error bound that does not see it (a second
                # abs layer at 1e-4 init: W2[7, 3] off by 8e-10 against a bound of 9e-11)
                # and agreeing with the refined value within both bounds (two estimates of one
                # partial): in float32, dense kinks (a ReLU layer at 1e-3 init) look smooth at
                # the wide steps, and their macro slope, off by the partial's own size, came
                # with a bound 7x smaller than the refined one
                with np.errstate(invalid="ignore"):
                    agree = np.abs(wide["numeric"] - numeric[widen]) <= (
                        wide["error"] + error[widen]
                    )
                better = (
                    wide["smooth"]
                    & ~wide["kink"]
                    & agree
                    & np.isfinite(wide["numeric"])
                    & (wide["error"] < error[widen])
                )
                numeric[widen[better]] = wide["numeric"][better]
                error[widen[better]] = wide["error"][better]
            if not sampled:
                break
            sampled = False
            rests = []
            for owner, start, stop, sample in samples:
                still = beyond(tol.safety, sample) & ~kink[sample]
                rest = start + np.flatnonzero(off[start:stop] & ~refined[start:stop])
                if still.all():
                    self.notes.append(
                        f"{owner}: {int(off[start:stop].sum())} of {stop - start} elements "
                        f"disagree with the main pass; a sample of {sample.size} spread over "
                        f"them was refined and every one confirmed wrong, so the other "
                        f"{rest.size} keep their main-pass values (richardson=True refines "
                        "them all)"
                    )
                else:
                    rests.append(rest)  # the sample overturned a verdict: refine them all
            if not rests:
                break
            again = np.concatenate(rests)
        changed = self.params.changed()
        if changed:  # the baseline saw no change, so it happened at a perturbed point
            raise StateMutationError(
                f"parameter(s) {', '.join(map(repr, changed))} changed while {name!r} was "
                "being perturbed; a loss must not update its parameters"
            )
        with np.errstate(invalid="ignore"):
            # an unrefined element: an error must set refinement off, then pass the refined
            # value's bound, whose rounding is at best that of the better pair of its three
            # levels, from the middle one (REFINE_LEVELS: half the main step, 2x the main
            # step's rounding, which this once assumed: 2 of ~3,400 errors planted at twice
            # the stated sensitivity passed)
            middle = sorted({*refine_levels, *known})[1]
            detectable = np.where(
                refined,
                tol.safety * error,
                REFINE_TRIGGER * error + tol.safety * richardson_rounding(noise, step * middle),
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
            noise=reported,
            detectable=detectable,
        )

    def local_noise(self, elements: list[tuple[str, int]], assumed: float) -> list[float]:
        """The loss's noise measured along each of ``elements`` ((name, flat index): one ECnoise
        table each, :meth:`gradcheck.core.pilot.Pilots.measure_noise`, once per element in a
        check): its standard deviation, NaN where a table isolated none. ``assumed``: the
        noise bound the verdicts rested on; a table's noise that could raise it
        ``NOISE_MARGIN``-fold is confirmed at smaller spacings first (kinks are not noise)."""
        for element in elements:
            if element not in self._tables:
                above = NOISE_MARGIN * assumed
                self._tables[element] = self.pilots.measure_noise(*element, above)[0]
        return [self._tables[element] for element in elements]

    def noise_where_read(self, name: str, index: int) -> float:
        """The noise measured at the points the main pass read for element ``index`` of
        ``name`` (:meth:`gradcheck.core.pilot.Pilots.noise_beside` at ``x + h``: a table or a
        few), where the loss read there is ``GROWN`` times its size at the start or more; NaN
        elsewhere, or where no table isolated it. The noise at ``x`` speaks for those points
        only where the loss there is about its size at ``x``: at an exact fit (a loss of 0 or
        1e-24) the residuals at ``x + h`` are ~``h``, and so is the rounding of their
        cancellation, far above what a table at ``x`` sees."""
        if name not in self._read:
            return float("nan")
        steps, read = self._read[name]
        if not read[index] > GROWN * abs(self.evaluator.f0):
            return float("nan")
        return self.pilots.noise_beside(name, index, float(steps[index]))

    def why_noisier(self, elements: list[tuple[str, int]]) -> str:
        """Why the noise measured along ``elements`` may exceed the pilot's, for a note: the
        pilot's table moved other terms, or (``OFF_GRID``) the points of a table at such an
        element would have been round numbers, which the loss rounds less than the stencils'."""
        if self.pilots.off_grid.intersection(elements):
            return "the pilot's table moved other terms, or a table's points at x were round"
        return "the pilot's table moved other terms"

    def noise_at(self, elements: list[tuple[str, int]], assumed: float) -> float:
        """The largest noise :meth:`local_noise` measures along up to ``NOISE_CHECKS`` of
        ``elements``: those it has measured already first, then others spread over the rest
        (NaN where no table isolated any)."""
        picked = [element for element in elements if element in self._tables][:NOISE_CHECKS]
        if len(picked) < NOISE_CHECKS:
            rest = [element for element in elements if element not in self._tables]
            more = spread_positions(len(rest), NOISE_CHECKS - len(picked))
            picked += [rest[k] for k in more]
        found = [sigma for sigma in self.local_noise(picked, assumed) if np.isfinite(sigma)]
        return max(found) if found else float("nan")

    def _noise_where_off(
        self, name: str, off: np.ndarray, sigma: float, seen: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, float] | None:
        """The noise measured where ``EARLY_NOISE_FROM`` or more elements of a tensor (of each
        member of a group) disagree with the main pass, before refinement: the pilot's table
        may have moved terms other than theirs (``sum(a**2) + 1e4 sum(sin(v))``, ``a``
        first: ``v``'s sum cancels and carries 1e6x the rounding when ``v`` moves). Refined
        with the pilot's noise, their noise reads as kinks, and isolation takes up to 32
        evaluations per element for nothing. ``None`` where no member's own tables find
        ``NOISE_MARGIN`` times the noise ``sigma`` gave; otherwise a mask of the elements whose
        noise was raised and, over them, the noise bound their loss values ``seen`` take
        (elsewhere 0), and the largest noise measured. Said in the notes."""
        heard = np.zeros(off.size, dtype=bool)
        reached = np.zeros(off.size)
        loudest = 0.0
        for owner, start, stop in self._segments(name):
            mine = np.flatnonzero(off[start:stop])
            if mine.size < EARLY_NOISE_FROM:
                continue
            assumed = self.assumed_noise(owner, sigma)
            elements = [(owner, int(i)) for i in mine]
            local = self.noise_at(elements, assumed)
            ratio = self.assumed_noise(owner, local) / assumed
            if not ratio > NOISE_MARGIN:  # (NaN: no table isolated any; the pilot's stands)
                continue
            heard[start:stop] = True
            loudest = max(loudest, local)
            self.raised_noise[owner] = local
            reached[start:stop] = noise_bound(
                local, seen[start:stop], self.pilots.noise_eps, self.tolerance
            )
            self.notes.append(
                f"{owner}: the noise measured where {mine.size} of its {stop - start} elements "
                f"disagreed with the main pass ({local:.2g}) is {ratio:.3g}x what the pilot "
                f"assumed ({self.why_noisier(elements)}): their error bounds and refinement take it"
            )
        return (heard, reached, loudest) if heard.any() else None

    def assumed_noise(self, name: str, sigma: float) -> float:
        """The noise bound a verdict on ``name`` rested on at the starting point, from the
        measured standard deviation ``sigma`` (NaN: the floor alone)."""
        return float(
            noise_bound(sigma, np.array(self.evaluator.f0), self.pilots.noise_eps, self.tolerance)
        )

    def remeasure(
        self,
        name: str,
        analytic: np.ndarray | None,
        precision: np.dtype | None,
        sigma: float,
        same_steps: bool = False,
    ) -> TensorDifferences:
        """``name`` differentiated again, alone, with its pilot's noise raised to ``sigma``
        (measured where its verdict failed): steps, error bounds and the kink test follow it;
        with ``same_steps`` only the error bounds and the kink test (``sigma`` was measured at
        the points the steps read: at other steps it would be another). No ladder level is
        reused (the plan counts the whole main pass again)."""
        pilot = self.pilot_of[name] if name in self.pilot_of else self.shared_pilot()
        # what the first measurement noted about it no longer holds
        self.notes = [note for note in self.notes if not note.startswith(f"{name}: ")]
        self.raised_noise.pop(name, None)
        bound = self.assumed_noise(name, sigma)
        noise = pilot.noise if same_steps else max(pilot.noise, bound)
        self._remeasuring[name] = dataclasses.replace(pilot, sigma=sigma, noise=noise)
        return self.differentiate(name, analytic, precision)

    def _main_step(
        self, x: np.ndarray, dtype: np.dtype, pilot: Pilot, eps: float
    ) -> tuple[float | np.ndarray, float, np.ndarray, np.ndarray]:
        """The main pass's clip and step at ``x`` from ``pilot``: the largest step (the
        pilot's largest smooth one), the fineness the steps respect (``dtype``'s epsilon, or
        the loss's input resolution where it rounds its parameters), the smallest step, and
        ``h`` (:func:`gradcheck.core.numerics.scale_free_step`)."""
        largest = pilot.largest if np.isfinite(pilot.largest) else pilot_step(x, eps)
        # a loss that rounds its parameters reads them no finer than its resolution
        fineness = max(machine_eps(dtype), self.pilots.resolution)
        low = smallest_step(x, fineness)
        h = scale_free_step(x, pilot.noise, pilot.third, largest, fineness, low)
        return largest, fineness, low, h

    def _orders(
        self,
        name: str,
        x: np.ndarray,
        h: np.ndarray,
        analytic: np.ndarray | None,
        pilot: Pilot,
        largest: float | np.ndarray,
        fineness: float,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Whether the fourth-order main pass pays
        (:func:`gradcheck.core.numerics.fourth_order_pays`), decided per member of ``name``
        (a group's members in order, a tensor alone), with the fourth-order step and the
        central bound it was weighed against; ``None`` where it cannot (a loss that rounds its
        parameters, or a pilot without ``|f^(5)|``). Per member, so a tensor in a group gets
        the decision it gets alone: a group's members agree or go alone
        (:meth:`uniform_order`)."""
        if not (self.pilots.resolution == 0 and np.isfinite(pilot.fifth)):
            return None
        h4 = fourth_order_step(x, pilot.noise, pilot.fifth, largest, fineness)
        central_bound = central_error(np.array(pilot.noise), 2 * h, pilot.third)
        fourth_bound = fourth_order_error(pilot.noise, h4, pilot.fifth)
        pays = fourth_order_pays_per(
            central_bound, fourth_bound, pilot.slope, analytic, self._starts(name)
        )
        return pays, h4, central_bound

    def uniform_order(self, name: str, analytic: np.ndarray) -> bool:
        """Whether every member of group ``name`` (of small tensors: the shared pilot) takes
        the same main pass, central or fourth order, as :meth:`differentiate` decides it;
        where not, the members must be differentiated alone."""
        param = self.params[name]
        x = self.params.flat_values(name)
        pilot = self.shared_pilot()
        largest, fineness, _, h = self._main_step(x, param.dtype, pilot, self._eps(name))
        orders = self._orders(name, x, h, analytic, pilot, largest, fineness)
        return orders is None or bool(orders[0].all() or not orders[0].any())

    def _starts(self, name: str) -> tuple[int, ...]:
        """Where each member of ``name`` starts in its flat elements, and its size last (a
        tensor: ``(0, size)``)."""
        if name in self.params.groups:
            return self.params.groups[name].starts
        return (0, self.params[name].size)

    def _kinks_met(self, name: str, flat: np.ndarray, more: dict[str, np.ndarray]) -> np.ndarray:
        """Per refined element (at ``flat`` positions of ``name``), whether the refinement
        ``more`` met a kink in its own tensor (a group's member: that member's elements). A
        kink is a property of the tensor's function: one read elsewhere in a group (a weight
        of an LSTM step, from rounding) sent every disagreeing smooth element of its other
        members into isolation, whose smallest steps' rounding then took their verdicts (a
        planted error 3x the stated sensitivity on dx passed with a bound 250x its own)."""
        met = np.zeros(flat.size, dtype=bool)
        for _, start, stop in self._segments(name):
            mine = (flat >= start) & (flat < stop)
            met[mine] = bool(more["kink"][mine].any())
        return met

    def _segments(self, name: str) -> list[tuple[str, int, int]]:
        """The real parameters behind ``name``'s flat elements: (name, start, stop) each."""
        if name in self.params.groups:
            group = self.params.groups[name]
            return [
                (p.name, start, stop)
                for p, start, stop in zip(
                    group.members, group.starts, group.starts[1:], strict=False
                )
            ]
        return [(name, 0, self.params[name].size)]

    def _snap_to_ladders(
        self,
        name: str,
        h: np.ndarray,
        bounds: tuple[np.ndarray, np.ndarray],
        noise: float,
        third: float,
        clean: bool,
    ) -> LadderUse:
        """Main-pass steps of the elements the pilot climbed a ladder on, moved (in ``h``, in
        place) to a level of their ladder within ``bounds`` (the smallest step and the largest
        the pilot saw the function smooth at, per element, as the step rule's own clip): the
        ladder's loss values there are the main pass's, two evaluations saved per element.

        A level within ``SNAP`` of the element's own step is taken as it is (its error estimate
        from the tensor's ``|f'''|``, ``third``). Failing that, whichever of these has the
        smaller error estimate, if that is no larger than the estimate of the element's own
        step from the tensor's ``|f'''|`` (both at ``noise``, the pilot's noise bound;
        :func:`gradcheck.core.numerics.central_error`): the level whose estimate from the
        element's own ladder (:func:`gradcheck.core.pilot.own_third`: its own ``|f'''|`` with
        the tensor's margin; only levels up to the largest step its ladder saw it smooth at)
        is smallest, or, where the ladder converged on three levels, the Richardson value of
        its two smallest (:func:`gradcheck.core.pilot.own_richardson`, bounded by its own
        ``|f^(5)|``; the main pass then reads the smallest level's values, which refinement
        builds on). The element is measured where its own ladder says it is measured at least
        as well: a ladder that stopped on "below the noise" two levels from the top, far above
        the tensor's step; one whose curvature is well below the tensor's; one converged near
        the function's scale, whose extrapolated value beats a central difference at a step
        several times smaller. Only for a ``clean`` loss (noise near its rounding floor,
        :meth:`gradcheck.core.pilot.Pilots.noisy`): a noisy one's noise may grow with the
        step (a least-squares fit's residuals), which the noise measured at ``x`` does not
        see, and an error estimate at a step far above the tensor's would miss it."""
        low, high = bounds
        use = LadderUse({}, {}, {})
        ladders = self._ladder_positions(name)
        # a ladder that went below its first levels met structure finer than its start (a kink
        # crossed, curvature on a smaller scale): then no level far above the tensor's step is
        # trusted for an extrapolated value, its own ladder's verdict notwithstanding
        smooth_scale = all(len(self.pilots.levels[key]) <= EXTRAPOLATE_LEVELS for key in ladders)
        for (owner, index), position in ladders.items():
            ladder = self.pilots.levels[(owner, index)]
            if not ladder:  # (a ladder may stop before its first level)
                continue
            top = max(low[position], high[position])
            smooth = [level for level in ladder if low[position] <= level.half <= top]
            mine = float(h[position])  # logs of positive floats: no overflow to warn about
            best = min(ladder, key=lambda level: abs(math.log(level.half) - math.log(mine)))
            if best in smooth and abs(math.log(best.half) - math.log(mine)) <= math.log(SNAP):
                h[position] = best.half
                use.levels[position] = best
                continue
            reading = self.pilots.readings.get((owner, index))
            if not clean or reading is None:
                continue
            with np.errstate(over="ignore", invalid="ignore"):
                at_own_step = float(central_error(np.array(noise), np.array(2.0 * mine), third))
            # (error estimate, level, its own |f'''| or NaN, extrapolated value or None)
            options: list[tuple[float, Level, float, tuple[float, float] | None]] = []
            bound = own_third(reading)
            candidates = [level for level in smooth if level.half <= reading.largest]
            if 0 < bound < math.inf and candidates:
                spans = 2.0 * np.array([level.half for level in candidates])
                with np.errstate(over="ignore", invalid="ignore"):
                    errors = central_error(np.array(noise), spans, bound)
                k = int(np.argmin(errors))
                if math.isfinite(errors[k]):
                    options.append((float(errors[k]), candidates[k], bound, None))
            value, extrapolated = own_richardson(ladder, reading)
            if smooth_scale and math.isfinite(extrapolated) and ladder[-1] in smooth:
                options.append((extrapolated, ladder[-1], math.nan, (value, extrapolated)))
            if not options:
                continue
            chosen = min(options, key=lambda option: option[0])
            if chosen[3] is not None and chosen[0] <= at_own_step:
                # the extrapolated value only where the ladder's one-sided slopes show no kink
                # (tested only where it would be taken: the test costs more than arithmetic)
                x = float(self.params.flat_values(owner, np.array([index]))[0])
                if ladder_kinked(ladder[-3:], x, self.evaluator.f0, reading.noise):
                    options = [option for option in options if option[3] is None]
                    if not options:
                        continue
                    chosen = options[0]
            error, level, own, measured = chosen
            if error <= at_own_step:  # (NaN compares False: the own step stands)
                h[position] = level.half
                use.levels[position] = level
                if measured is None:
                    use.thirds[position] = own
                else:
                    use.extrapolated[position] = measured
        return use

    def _ladder_positions(self, name: str) -> dict[tuple[str, int], int]:
        """The pilot ladders on elements of ``name`` (a tensor or a group of small ones):
        (owner, flat index) -> position in ``name``'s flat elements."""
        if name in self.params.groups:
            group = self.params.groups[name]
            start = {p.name: s for p, s in zip(group.members, group.starts, strict=False)}
        else:
            start = {name: 0}
        return {
            (owner, index): start[owner] + index
            for owner, index in self.pilots.levels
            if owner in start
        }

    def _settle_plan(self, name: str, reused: dict[int, Level]) -> None:
        """Plan the main-pass evaluations of ``name``'s prepaid pilot elements
        (:meth:`gradcheck.core.pilot.Pilots.run`) that take no ladder level (``reused``: by
        position): their ladder's first level was counted against them."""
        for key, position in self._ladder_positions(name).items():
            if key in self.pilots.prepaid:
                self.pilots.prepaid.discard(key)
                if position not in reused:
                    self.evaluator.plan(2)

    def _main_values(
        self,
        name: str,
        idx: np.ndarray,
        up: np.ndarray,
        down: np.ndarray,
        reused: dict[int, Level],
    ) -> tuple[np.ndarray, np.ndarray]:
        """The main pass's loss values at ``up`` and ``down``; those of ``reused`` positions
        from their pilot ladder when its points are these, bit for bit."""
        known = [
            k for k, level in reused.items() if level.upper == up[k] and level.lower == down[k]
        ]
        if not known:
            return self._both_sides(name, idx, up, down)
        todo = np.ones(idx.size, dtype=bool)
        todo[known] = False
        f_up, f_down = np.empty(idx.size), np.empty(idx.size)
        f_up[todo], f_down[todo] = self._both_sides(name, idx[todo], up[todo], down[todo])
        f_up[known] = [reused[k].f_up for k in known]
        f_down[known] = [reused[k].f_down for k in known]
        return f_up, f_down

    def _both_sides(
        self, name: str, idx: np.ndarray, up: np.ndarray, down: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The loss at ``up`` and at ``down`` (element ``idx[k]`` of ``name`` moved), in one
        request: on an executor, one wave with one barrier instead of two."""
        f = self.evaluator.at_elements(name, np.concatenate([idx, idx]), np.concatenate([up, down]))
        return f[: idx.size], f[idx.size :]

    def _isolate(
        self,
        name: str,
        idx: np.ndarray,
        x: np.ndarray,
        kinked: np.ndarray,
        more: dict[str, np.ndarray],
        sigma: float,
        floor: np.ndarray,
    ) -> None:
        """Kink isolation: for the ``kinked`` positions of a refinement ``more`` (over flat
        elements ``idx`` at ``x``; analysed by :func:`gradcheck.core.stencil.analyse`), rounds
        of two smaller levels (1/4 and 1/2 of the smallest so far, which becomes the third)
        until the stencil is clear of every kink; ``more`` takes each round's analysis in
        place. A kink that still looks at the point takes the rounds too: the jump test places
        it only to a few percent of the smallest step, and a kink just beside the point makes
        one one-sided slope the derivative and the other one wrong (a max-pool's near tie).

        An element still crossing kinks after ``ISOLATE_ROUNDS`` rounds, or at steps down to
        :func:`gradcheck.core.numerics.smallest_step`, is judged against the range of every
        one-sided slope its last round measured (kink set): a correct value leaves that range
        only when kinks of opposite jumps lie on both sides within the smallest step. Said in
        the notes."""
        eps = machine_eps(self.params[name].dtype)
        todo = np.asarray(kinked, dtype=np.intp)
        at_point = np.zeros(todo.size, dtype=np.intp)  # consecutive rounds at the point
        # the previous round's partial and error bound where it came out clean (NaN: it did not)
        before = np.full(todo.size, np.nan)
        before_error = np.full(todo.size, np.nan)
        for _ in range(ISOLATE_ROUNDS):
            quarter = more["low_step"][todo] / 4.0
            resolvable = quarter >= smallest_step(x[todo], eps)
            todo, quarter, at_point = todo[resolvable], quarter[resolvable], at_point[resolvable]
            before, before_error = before[resolvable], before_error[resolvable]
            if not todo.size:
                break
            self.evaluator.plan(4 * todo.size)
            out = self._stencil(
                name,
                idx[todo],
                x[todo],
                quarter,
                sigma,
                (1.0, 2.0),
                known={4.0: (more["low_up"][todo], more["low_down"][todo])},
                floor=floor[todo],
            )
            # a kink at the point that looks smooth only because the smaller steps' noise
            # hides it: unless they measure no jump, and one unlike the previous round's, its
            # finding stands (smaller steps would see less). A crossed kink is meant to leave
            # the stencil: smooth is the aim.
            gone = (np.abs(out["jump"]) <= out["jump_noise"]) & (
                np.abs(out["jump"] - more["jump"][todo]) > out["jump_noise"]
            )
            sank = ~out["kink"] & more["kink"][todo] & ~more["crossed"][todo] & ~gone
            # a jump held from the last round to this one (steps 4x smaller) is a kink at the
            # point, however small beside the curvature: a crossed kink's moves as the steps
            # shrink, a smooth loss's falls 64x, rounding does not repeat itself
            with np.errstate(invalid="ignore"):
                kept = np.abs(out["jump"] - more["jump"][todo]) <= AT_POINT_RELATIVE * (
                    np.abs(out["jump"]) + np.abs(more["jump"][todo])
                )
            held = held_jump(out) & kept & ~out["kink"]
            out["kink"] = out["kink"] | held
            out["crossed"] = out["crossed"] & ~held
            gap = np.abs(out["forward"] - out["backward"])  # (a kink's error, as analyse's)
            out["error"] = np.where(held, gap / 2, out["error"])
            for key, value in out.items():
                if key in more and np.ndim(more[key]) == 1:
                    more[key][todo[~sank]] = value[~sank]
            at_point = np.where(out["kink"] & ~out["crossed"], at_point + 1, 0)
            # clean: the round's three levels smooth; confirmed: the round before was clean too
            # and the two partials agree within their bounds. Kinks on both sides (a batch's
            # rows each putting one along a bias) can make one round look smooth by chance,
            # gaps in proportion within KINK_RELATIVE, its partial off by many error bounds:
            # a second round at smaller steps then disagrees with it (4 evaluations more per
            # element isolated: +5% evaluations on CS231n's two-layer net at init, 32 nets;
            # excusing rounds whose one-sided extrapolations agree within the error bound
            # saved half of it and let a quarter of the chance rounds through)
            clean = ~out["kink"] & out["smooth"]
            with np.errstate(invalid="ignore"):
                agree = np.abs(out["numeric"] - before) <= out["error"] + before_error
            go_on = ~(clean & agree) & (at_point < AT_POINT_ROUNDS)
            before = np.where(clean, out["numeric"], np.nan)
            before_error = np.where(clean, out["error"], np.nan)
            todo, at_point = todo[go_on], at_point[go_on]
            before, before_error = before[go_on], before_error[go_on]
        unresolved = np.flatnonzero(more["crossed"][kinked])
        if unresolved.size:
            left = kinked[unresolved]
            more["forward"][left] = more["highest"][left]
            more["backward"][left] = more["lowest"][left]
            more["kink"][left] = True
            for owner, start, stop in self._segments(name):
                mine = left[(idx[left] >= start) & (idx[left] < stop)]
                self.unisolated.setdefault(owner, set()).update(
                    (idx[mine] - start).astype(int).tolist()
                )
                if mine.size:
                    self.notes.append(
                        f"{owner}: {mine.size} element(s) sit within a step of several kinks "
                        f"that steps down to {float(np.min(more['low_step'][mine])):.3g} did "
                        "not isolate; each is judged against the range of every one-sided "
                        "slope measured there (the loss's own slopes on both sides), not "
                        "against one derivative"
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
                f_up, f_down = self._both_sides(name, idx, up, down)
            central[m] = (f_up, f_down, up.astype(np.float64) - x64, x64 - down.astype(np.float64))
            values += [f_up, f_down]
        noise = noise_bound(
            sigma, np.abs(np.stack(values)).max(axis=0), self.pilots.noise_eps, self.tolerance
        )
        if floor is not None:
            noise = np.maximum(noise, floor)
        out = analyse(self.evaluator.f0, central, noise)
        # what kink isolation builds on: the smallest level's values and nominal step
        out["low_up"], out["low_down"] = central[levels[0]][:2]
        out["low_step"] = levels[0] * h
        return out


def _spread(n: int, count: int = PILOT_ELEMENTS) -> np.ndarray:
    """Up to ``count`` positions spread evenly over ``range(n)``."""
    return np.array(spread_positions(n, count), dtype=np.intp)


@functools.lru_cache(maxsize=256)
def spread_positions(n: int, count: int) -> tuple[int, ...]:
    """:func:`_spread`'s positions, once per size (a check asks per tensor and per pilot)."""
    return tuple(np.unique(np.linspace(0, n - 1, min(n, count)).round().astype(np.intp)).tolist())


def refine_sample(disagreeing: int, size: int) -> bool:
    """Whether to refine only a sample of a tensor's disagreeing elements: when they are more
    than ``REFINE_SAMPLE`` and at least ``WRONG_ALMOST_EVERYWHERE`` of the tensor, refining
    each would cost 4 evaluations per element (3x a passing check) to say what a sample says:
    the tensor is wrong almost everywhere."""
    return disagreeing > REFINE_SAMPLE and disagreeing >= WRONG_ALMOST_EVERYWHERE * size


# Pilot cost per element, typically: a share of the noise table (6) and a ladder of about three
# levels (6). The pilot plans its own calls as it makes them (their number depends on the loss);
# fast mode's cost model reads this figure.
PILOT_EVALUATIONS = 12


def pilot_evaluations(params: ParamSet, names: list[str] | None = None) -> int:
    """The pilots' typical cost over ``names`` (all by default): ``PILOT_EVALUATIONS`` per
    pilot element, up to 3 per tensor of ``OWN_PILOT_MIN`` elements or more and up to 3 shared
    by the smaller ones (an estimate: the pilot plans its actual calls as it makes them)."""
    sizes = [params[name].size for name in (params.names if names is None else names)]
    small = sum(n for n in sizes if n < OWN_PILOT_MIN)
    pilots = min(small, PILOT_ELEMENTS) + sum(
        min(n, PILOT_ELEMENTS) for n in sizes if n >= OWN_PILOT_MIN
    )
    return PILOT_EVALUATIONS * pilots


def planned_evaluations(
    params: ParamSet, richardson: bool = False, names: list[str] | None = None
) -> int:
    """Loss evaluations a check plans before the pilots and refinement (both plan their own
    calls as they go): 2 for the baseline and 2 per element (6 with ``richardson``), over
    ``names`` (all by default)."""
    sizes = [params[name].size for name in (params.names if names is None else names)]
    return 2 + (6 if richardson else 2) * sum(sizes)
