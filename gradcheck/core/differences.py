"""The finite-difference engine: numeric partials with an error estimate for every element.

Per parameter tensor:

1. **Pilot.** On up to three elements (of the tensor, or shared by all small tensors),
   central differences at ``hp`` and ``2hp`` (pilot step ``hp = eps**(1/5) max(1, |x|)``)
   measure ``|f'''|``, which fixes the step of the main pass.
2. **Main pass.** Every element gets one central difference at the step ``h`` that minimises
   truncation + rounding (:func:`gradcheck.core.numerics.optimal_step`): two loss evaluations each.
3. **Refinement.** Elements whose hand-written value disagrees with the main pass beyond the
   estimated error (and every element, with ``richardson=True``) get four more evaluations at
   ``x +- h/4`` and ``x +- h/2``. Three levels give a Richardson value with its own error
   estimate; the way the one-sided slopes' gap grows with the step tells a kink (ReLU at 0, a
   max-pool tie, ``abs``: the element is ``uncertain``) from a smooth function, and the way
   the central values converge tells a loss that is C1 but not C2 (``relu(z)**2`` at ``z = 0``:
   error linear in the step, extrapolated linearly). Smaller steps, not larger: they stay
   clear of nearby kinks and resolve sharp curvature the main step does not.

A correct smooth net therefore costs about ``2P`` evaluations (plus 4 per pilot element);
the extra ones go only where a verdict needs them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradcheck.core.evaluation import Evaluator
from gradcheck.core.numerics import (
    Tolerance,
    central_error,
    coarser_eps,
    evaluation_noise,
    optimal_step,
    pilot_step,
    taken_steps,
)
from gradcheck.core.params import ParamSet
from gradcheck.core.stencil import analyse
from gradcheck.errors import StateMutationError

PILOT_ELEMENTS = 3
# Tensors smaller than this share one pilot (FiniteDifferences.shared_third): an own pilot (12
# evaluations) then costs under 1% of the tensor's 2n.
OWN_PILOT_MIN = 1024
# Third-derivative margin: the pilot sees three elements, the main pass all of them.
THIRD_MARGIN = 4.0
# Refinement levels, as fractions of the main step: smaller steps stay clear of nearby kinks and
# of curvature the main step does not resolve, at the price of more rounding.
REFINE_LEVELS = (0.25, 0.5)
# A tensor wrong almost everywhere is wrong whatever refinement says about each element: refine
# an evenly spread sample of its disagreeing elements (as fast mode samples), and all of them
# only if the sample overturns a verdict. Below these, every disagreeing element is refined.
REFINE_SAMPLE = 64
WRONG_ALMOST_EVERYWHERE = 0.5


@dataclass
class TensorDifferences:
    """Finite-difference results for one parameter tensor (flat arrays, float64)."""

    numeric: np.ndarray
    error: np.ndarray  # estimated |numeric - true partial|
    step: np.ndarray  # half the span actually taken by the central difference
    forward: np.ndarray  # one-sided slopes, NaN where the element was not refined
    backward: np.ndarray
    slack: np.ndarray  # how far the one-sided slopes may be off (curvature and noise)
    kink: np.ndarray  # bool: the loss is not differentiable at this element
    refined: np.ndarray  # bool: refined on smaller steps
    third: float  # the pilot's |f'''|
    rtol: float  # the relative floor of the tolerance rule for this tensor


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
        self._shared_third: float | None = None
        self.notes: list[str] = []  # what the user should know about how partials were refined

    # -- differentiation -------------------------------------------------------------------
    def _pilot(self, elements: list[tuple[str, int]]) -> float:
        """The largest ``|f'''|`` seen on ``elements`` (name, flat index), times a margin."""
        thirds = []
        by_name: dict[str, list[int]] = {}
        for name, index in elements:
            by_name.setdefault(name, []).append(index)
        for name, chosen in by_name.items():
            index = np.array(chosen, dtype=np.intp)
            x = self.params.flat_values(name)[index]
            eps = coarser_eps(self.params[name].dtype, self.evaluator.loss_dtype)
            probe = self._stencil(name, index, x, pilot_step(x, eps), eps, (1, 2))
            usable = ~probe["kink"] & np.isfinite(probe["third"])
            thirds.extend(probe["third"][usable].tolist())
        return max(thirds) * THIRD_MARGIN if thirds else 0.0

    def shared_third(self) -> float:
        """One pilot for every tensor smaller than ``OWN_PILOT_MIN``, run once per check: a
        pilot per tiny tensor (a scalar weight) would cost more than the tensor itself."""
        if self._shared_third is None:
            small = [
                (name, i)
                for name in self.params.names
                if self.params[name].size < OWN_PILOT_MIN
                for i in range(self.params[name].size)
            ]
            self._shared_third = self._pilot([small[k] for k in _spread(len(small))])
        return self._shared_third

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
        eps = coarser_eps(param.dtype, self.evaluator.loss_dtype)
        tol = self.tolerance

        # 1. pilot: |f'''| from central differences at hp and 2hp on a few elements (of this
        # tensor, or, for small tensors, of all small tensors together)
        if indices is None and x.size < OWN_PILOT_MIN:
            third = self.shared_third()
        else:
            third = self._pilot([(name, int(i)) for i in everything[_spread(n)]])

        # 2. main pass: one central difference per element at the optimal step
        h = optimal_step(
            x, float(evaluation_noise(np.array(self.evaluator.f0), eps, tol)), third, eps
        )
        upper, lower, span = taken_steps(x, h)
        f_up = self.evaluator.at_elements(name, everything, upper)
        f_down = self.evaluator.at_elements(name, everything, lower)
        noise = evaluation_noise(np.maximum(np.abs(f_up), np.abs(f_down)), eps, tol)
        with np.errstate(invalid="ignore", over="ignore"):
            numeric = (f_up - f_down) / span
        error = central_error(noise, span, third)
        step = span / 2
        forward = np.full(n, np.nan)
        backward = np.full(n, np.nan)
        slack = np.full(n, np.nan)
        kink = np.zeros(n, dtype=bool)
        refined = np.zeros(n, dtype=bool)

        # 3. refinement where the verdict needs it
        floor = tol.relative_floor(precision or param.dtype)
        with np.errstate(invalid="ignore"):
            off = (
                np.zeros(n, dtype=bool)
                if analytic is None
                else (
                    np.abs(analytic - numeric)
                    > tol.safety * error + floor * np.maximum(np.abs(analytic), np.abs(numeric))
                )
                & np.isfinite(analytic)
            )
        positions = np.arange(n)
        again = positions if self.richardson else positions[off]
        sampled = not self.richardson and refine_sample(again.size, n)
        if sampled:
            again = again[_spread(again.size, REFINE_SAMPLE)]
        while again.size:
            if not self.richardson:  # the plan already counts refinement then
                self.evaluator.plan(4 * again.size)
            more = self._stencil(
                name,
                everything[again],
                x[again],
                step[again],
                eps,
                REFINE_LEVELS,
                known={1: (f_up[again], f_down[again])},
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
            if not sampled:
                break
            sampled = False
            with np.errstate(invalid="ignore"):
                still = (
                    np.abs(analytic[again] - numeric[again])
                    > tol.safety * error[again]
                    + floor * np.maximum(np.abs(analytic[again]), np.abs(numeric[again]))
                ) & ~kink[again]
            rest = positions[off & ~refined]
            if still.all():
                self.notes.append(
                    f"{name}: {int(off.sum())} of {n} elements disagree with the main pass; a "
                    f"sample of {again.size} spread over them was refined and every one "
                    f"confirmed wrong, so the other {rest.size} keep their main-pass values "
                    "(richardson=True refines them all)"
                )
                break
            again = rest  # the sample overturned a verdict: refine them all
        changed = self.params.changed()
        if changed:  # the baseline saw no change, so it happened at a perturbed point
            raise StateMutationError(
                f"parameter(s) {', '.join(map(repr, changed))} changed while {name!r} was "
                "being perturbed; a loss must not update its parameters"
            )
        return TensorDifferences(
            numeric, error, step, forward, backward, slack, kink, refined, third, floor
        )

    def _stencil(
        self,
        name: str,
        idx: np.ndarray,
        x: np.ndarray,
        h: np.ndarray,
        eps: float,
        multiples: tuple[float, ...],
        known: dict[float, tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> dict[str, np.ndarray]:
        """Central differences at ``m * h`` for ``m`` in ``multiples`` (and ``known`` ones),
        analysed by :func:`gradcheck.core.stencil.analyse`."""
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
        noise = evaluation_noise(np.abs(np.stack(values)).max(axis=0), eps, self.tolerance)
        return analyse(self.evaluator.f0, central, noise)


def _spread(n: int, count: int = PILOT_ELEMENTS) -> np.ndarray:
    """Up to ``count`` positions spread evenly over ``range(n)``."""
    return np.unique(np.linspace(0, n - 1, min(n, count)).round().astype(np.intp))


def refine_sample(disagreeing: int, size: int) -> bool:
    """Whether to refine only a sample of a tensor's disagreeing elements: when they are more
    than ``REFINE_SAMPLE`` and at least ``WRONG_ALMOST_EVERYWHERE`` of the tensor, refining
    each would cost 4 evaluations per element (3x a passing check) to say what a sample says:
    the tensor is wrong almost everywhere."""
    return disagreeing > REFINE_SAMPLE and disagreeing >= WRONG_ALMOST_EVERYWHERE * size


def planned_evaluations(
    params: ParamSet, richardson: bool = False, names: list[str] | None = None
) -> int:
    """Loss evaluations a check plans before refinement: 2 for the baseline, 4 per pilot
    element (up to 3 per tensor of ``OWN_PILOT_MIN`` elements or more, up to 3 shared by the
    smaller ones), and 2 per element (6 with ``richardson``), over ``names`` (all by default)."""
    sizes = [params[name].size for name in (params.names if names is None else names)]
    small = sum(n for n in sizes if n < OWN_PILOT_MIN)
    pilots = min(small, PILOT_ELEMENTS) + sum(
        min(n, PILOT_ELEMENTS) for n in sizes if n >= OWN_PILOT_MIN
    )
    return 2 + 4 * pilots + (6 if richardson else 2) * sum(sizes)
