"""The finite-difference engine: numeric partials with an error estimate for every element.

Per parameter tensor:

1. **Pilot.** On up to three elements, central differences at ``hp`` and ``2hp`` (pilot step
   ``hp = eps**(1/5) max(1, |x|)``) measure ``|f'''|``, which fixes the step of the main pass.
2. **Main pass.** Every other element gets one central difference at the step that minimises
   truncation + rounding (:func:`gradcheck.numerics.optimal_step`): two loss evaluations each.
3. **Refinement.** Elements whose hand-written value disagrees with the main pass beyond the
   estimated error (and every element, with ``richardson=True``) get four more evaluations at
   ``x +- 2h`` and ``x +- 4h``. From them come a Richardson value with its own error estimate and
   the one-sided slopes, which tell a kink (ReLU at 0, a max-pool tie, ``abs``) from a smooth
   function: at a kink the loss is not differentiable and the element is ``uncertain``.

A correct smooth net therefore costs about ``2P`` evaluations (plus 4 per pilot element);
the extra ones go only where a verdict needs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

from gradcheck.errors import InputError, LossError, NondeterministicLossError, StateMutationError
from gradcheck.numerics import (
    Tolerance,
    central_error,
    coarser_eps,
    evaluation_noise,
    optimal_step,
    pilot_step,
    taken_steps,
)
from gradcheck.params import Param, ParamSet

PILOT_ELEMENTS = 3
# Third-derivative margin: the pilot sees three elements, the main pass all of them.
THIRD_MARGIN = 4.0
# Kink test thresholds (fractions of the one-sided slopes' size); a smooth function keeps its
# third and fourth differences at O(h**2) of the slope and its one-sided slopes within O(h f'').
KINK_DIFFERENCE = 0.05
KINK_SLOPES = 0.1


@dataclass
class TensorDifferences:
    """Finite-difference results for one parameter tensor (flat arrays, float64)."""

    numeric: np.ndarray
    error: np.ndarray  # estimated |numeric - true partial|
    step: np.ndarray  # half the span actually taken by the central difference
    forward: np.ndarray  # one-sided slopes, NaN where the element was not refined
    backward: np.ndarray
    kink: np.ndarray  # bool: the loss is not differentiable at this element
    refined: np.ndarray  # bool: evaluated on five points
    third: float  # the pilot's |f'''|


Where = str | Callable[[], str]


def _text(where: Where) -> str:
    """The point an evaluation was made at, for messages; built only when one is needed."""
    return where if isinstance(where, str) else where()


def _scalar_loss(value: Any, where: Where) -> float:
    """Turn a loss value into a float, or say clearly why it is not one."""
    if isinstance(value, (bool, np.bool_)):
        raise InputError(f"loss returned a bool {_text(where)}; expected a real scalar (float)")
    if isinstance(value, np.ndarray):
        if value.ndim != 0:
            raise InputError(
                f"loss returned an array of shape {value.shape} {_text(where)}; expected a "
                "real scalar: reduce it (sum or mean) or call .item() on a size-1 result"
            )
        value = value[()]
    if isinstance(value, (Real, np.floating, np.integer)) and not isinstance(value, bool):
        return float(value)
    hint = " (does the loss end with a return?)" if value is None else ""
    raise InputError(
        f"loss returned {type(value).__name__} {value!r:.60} {_text(where)}; expected a real "
        f"scalar{hint}"
    )


class Engine:
    """Evaluates the loss around the current parameters and differentiates it numerically."""

    def __init__(
        self,
        params: ParamSet,
        loss: Callable[[dict[str, Any]], Any],
        tolerance: Tolerance,
        richardson: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ):
        self.params = params
        self.loss = loss
        self.tolerance = tolerance
        self.richardson = richardson
        self.evaluations = 0
        # progress(done, total) after every loss evaluation; total is the planned count and
        # grows when refinement adds evaluations. None costs one comparison per evaluation.
        self.progress = progress
        self.planned = planned_evaluations(params, richardson)
        self.f0 = float("nan")
        self.loss_dtype = np.dtype(np.float64)

    # -- evaluation ------------------------------------------------------------------------
    def _call(self, where: Where) -> float:
        self.evaluations += 1
        if self.progress is not None:
            self.progress(self.evaluations, max(self.planned, self.evaluations))
        try:
            value = self.loss(self.params.view)
        except (KeyboardInterrupt, SystemExit, MemoryError):
            raise
        except Exception as exc:
            raise LossError(f"loss raised {type(exc).__name__}: {exc} {_text(where)}") from exc
        if type(value) is float:  # the common case, on the path taken 2P times
            return value
        if isinstance(value, (np.generic, np.ndarray)) and np.issubdtype(
            np.asarray(value).dtype, np.floating
        ):
            self.loss_dtype = np.asarray(value).dtype
        return _scalar_loss(value, where)

    def baseline(self) -> float:
        """Evaluate the loss twice at the start point; refuse nondeterminism and mutation."""
        where = "at the starting parameters"
        first = self._call(where)
        if not np.isfinite(first):
            raise InputError(f"loss is {first} {where}; it must be finite to be differentiated")
        changed = self.params.changed()
        if changed:
            raise StateMutationError(
                f"calling the loss changed parameter(s) {', '.join(map(repr, changed))}; a loss "
                "must not update its parameters (an optimiser step, running statistics?)"
            )
        second = self._call(where)
        if first != second:
            raise NondeterministicLossError(
                f"the loss returned {first!r} and then {second!r} at the same parameters; finite "
                "differences need a deterministic loss: fix the seed of dropout or noise, and "
                "do not update running statistics or other state inside the loss"
            )
        self.f0 = first
        return first

    def evaluate_at(self, name: str, indices: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Loss with element ``indices[k]`` of ``name`` set to ``values[k]``, one at a time."""
        out = np.empty(len(indices), dtype=np.float64)
        params = self.params
        for k, (index, value) in enumerate(zip(indices.tolist(), values, strict=True)):
            params.set(name, index, value)
            try:
                out[k] = self._call(lambda i=index, v=value: f"with {_label(params[name], i)} "
                                                         f"moved to {float(v)!r}")
            finally:
                params.reset(name, index)
        return out

    # -- differentiation -------------------------------------------------------------------
    def differentiate(self, name: str, analytic: np.ndarray | None) -> TensorDifferences:
        """Numeric partials of the loss with respect to every element of parameter ``name``.

        ``analytic`` (flat, float64) decides which elements need refining; ``None`` means the
        hand-written gradient is unusable for this tensor, so only the main pass runs.
        """
        param = self.params[name]
        x = self.params.flat_values(name)
        n = x.size
        eps = coarser_eps(param.dtype, self.loss_dtype)
        tol = self.tolerance

        # 1. pilot: |f'''| from central differences at hp and 2hp on a few elements
        pilot = np.unique(np.linspace(0, n - 1, min(n, PILOT_ELEMENTS)).round().astype(np.intp))
        probe = self._stencil(name, pilot, x[pilot], pilot_step(x[pilot], eps), eps, (1, 2))
        smooth = ~probe["kink"] & np.isfinite(probe["third"])
        third = float(probe["third"][smooth].max()) * THIRD_MARGIN if smooth.any() else 0.0

        # 2. main pass: one central difference per element at the optimal step
        h = optimal_step(x, float(evaluation_noise(np.array(self.f0), eps, tol)), third, eps)
        upper, lower, span = taken_steps(x, h)
        everything = np.arange(n)
        f_up = self.evaluate_at(name, everything, upper)
        f_down = self.evaluate_at(name, everything, lower)
        noise = evaluation_noise(np.maximum(np.abs(f_up), np.abs(f_down)), eps, tol)
        with np.errstate(invalid="ignore", over="ignore"):
            numeric = (f_up - f_down) / span
        error = central_error(noise, span, third)
        step = span / 2
        forward = np.full(n, np.nan)
        backward = np.full(n, np.nan)
        kink = np.zeros(n, dtype=bool)
        refined = np.zeros(n, dtype=bool)

        # 3. refinement where the verdict needs it
        if self.richardson:
            again = everything
        elif analytic is not None:
            with np.errstate(invalid="ignore"):
                off = np.abs(analytic - numeric) > (
                    tol.safety * error
                    + tol.relative_floor(param.dtype)
                    * np.maximum(np.abs(analytic), np.abs(numeric))
                )
            again = everything[off & np.isfinite(analytic)]
        else:
            again = everything[:0]
        if again.size:
            if not self.richardson:
                self.planned += 4 * again.size
            more = self._stencil(name, again, x[again], step[again], eps, (2, 4),
                                 known={1: (f_up[again], f_down[again])})
            numeric[again] = more["numeric"]
            error[again] = more["error"]
            forward[again] = more["forward"]
            backward[again] = more["backward"]
            kink[again] = more["kink"]
            refined[again] = True
        changed = self.params.changed()
        if changed:  # the baseline saw no change, so it happened at a perturbed point
            raise StateMutationError(
                f"parameter(s) {', '.join(map(repr, changed))} changed while {name!r} was "
                "being perturbed; a loss must not update its parameters"
            )
        return TensorDifferences(numeric, error, step, forward, backward, kink, refined, third)

    def _stencil(
        self,
        name: str,
        idx: np.ndarray,
        x: np.ndarray,
        h: np.ndarray,
        eps: float,
        multiples: tuple[int, ...],
        known: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> dict[str, np.ndarray]:
        """Central differences at ``m * h`` for ``m`` in ``multiples`` (and ``known`` ones).

        Returns, per element, the Richardson value from the two smallest steps with an error
        estimate, the one-sided slopes at the smallest step, ``|f'''|`` and the kink flag.

        With central values ``n(h) = f' + a h**2 + b h**4``, ``R(h, 2h) = (4 n(h) - n(2h)) / 3``
        leaves ``-4 b h**4``; with a third step, ``R(2h, 4h) - R(h, 2h) = -60 b h**4`` measures
        it, so R's error is ``|R(2h, 4h) - R(h, 2h)| / 15`` plus rounding. With two steps only
        (the pilot), the error bar is the truncation of ``n(h)`` itself.

        Kinks: a smooth loss keeps its third and fourth differences at ``O(h**2)`` of the slope
        and its one-sided slopes within ``O(h f'')`` of each other; a kink within ``2h`` makes
        both of order the jump in slope. Both must hold to call an element a kink.
        """
        tol = self.tolerance
        dtype = self.params[name].dtype
        x = x.astype(dtype)
        x64 = x.astype(np.float64)
        central = {}
        levels = sorted(set(multiples) | set(known or {}))
        for m in levels:
            up, down, _ = taken_steps(x, m * h)
            if known and m in known:
                f_up, f_down = known[m]
            else:
                f_up = self.evaluate_at(name, idx, up)
                f_down = self.evaluate_at(name, idx, down)
            central[m] = (f_up, f_down, up.astype(np.float64) - x64, x64 - down.astype(np.float64))
        f0 = self.f0
        values = np.stack([v for m in levels for v in central[m][:2]] + [np.full(len(idx), f0)])
        noise = evaluation_noise(np.abs(values).max(axis=0), eps, tol)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            n = {m: (c[0] - c[1]) / (c[2] + c[3]) for m, c in central.items()}
            half = {m: (c[2] + c[3]) / 2 for m, c in central.items()}
            a, b = levels[0], levels[1]
            ha, hb = half[a], half[b]
            rich_ab = (hb**2 * n[a] - ha**2 * n[b]) / (hb**2 - ha**2)
            third = 6.0 * np.abs(n[b] - n[a]) / (hb**2 - ha**2)
            rounding = 2.0 * noise / (2 * ha)
            if len(levels) > 2:
                c = levels[2]
                hc = half[c]
                rich_bc = (hc**2 * n[b] - hb**2 * n[c]) / (hc**2 - hb**2)
                error = np.abs(rich_bc - rich_ab) / 15.0 + 3.0 * rounding
            else:
                error = np.abs(n[a] - n[b]) * ha**2 / (hb**2 - ha**2) + 3.0 * rounding
            fp1, fm1, hu, hd = central[a]
            fp2, fm2 = central[b][:2]
            forward = (fp1 - f0) / hu
            backward = (f0 - fm1) / hd
            third_diff = fp2 - 2 * fp1 + 2 * fm1 - fm2
            fourth_diff = fp2 - 4 * fp1 + 6 * f0 - 4 * fm1 + fm2
            slopes = np.abs(forward) + np.abs(backward)
            nonsmooth = np.maximum(np.abs(third_diff), np.abs(fourth_diff)) / ha > (
                KINK_DIFFERENCE * slopes + tol.safety * 16 * noise / ha
            )
            apart = np.abs(forward - backward) > KINK_SLOPES * slopes + tol.safety * 2 * noise / ha
        kink = nonsmooth & apart
        return {
            "numeric": np.where(kink, n[a], rich_ab),
            "error": np.where(kink, np.abs(forward - backward) / 2, error),
            "forward": forward,
            "backward": backward,
            "kink": kink,
            "third": third,
        }


def planned_evaluations(params: ParamSet, richardson: bool = False) -> int:
    """Loss evaluations a check plans before refinement: 2 for the baseline, then per tensor
    4 per pilot element and 2 per element (6 with ``richardson``)."""
    total = 2
    for name in params.names:
        n = params[name].size
        total += 4 * min(n, PILOT_ELEMENTS) + (6 if richardson else 2) * n
    return total


def _label(param: Param, flat: int) -> str:
    """``w`` for a scalar parameter, ``W[1, 0]`` for an element of a matrix."""
    if not param.shape:
        return param.name
    return f"{param.name}[{', '.join(str(i) for i in np.unravel_index(flat, param.shape))}]"
