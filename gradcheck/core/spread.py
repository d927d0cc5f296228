"""The hand-written gradient's own spread: how far its partials move when every parameter
moves by one ulp.

A comparison allows the hand-written partials ``rtol`` (``sqrt(eps)``) of their size and puts
the rest of its doubt on the numeric side. That fails where the gradient's own arithmetic cancels: a fit
to residuals of 1e-12 computes ``out - y`` from outputs of 1, so the residuals, and every
partial made of them (~1e-13), carry a rounding of 1e-16, 1e-3 of their size, which no
finite difference can be blamed for. Backward stability says what that rounding is worth:
the computed gradient is the exact one at a point a few ulps away, so moving every parameter
by one ulp (random directions, :data:`SAMPLES` points) and reading the gradient again
measures it, as the loss's own noise is measured rather than assumed.

Measured only for a verdict that fails (:func:`gradcheck.api._check_spread`), since it costs
gradient calls: where it explains a failing element (within :data:`SPREAD_MARGIN` of it) the
element is judged with it (:func:`judged_with_spread`); elsewhere nothing changes. It never
convicts: a gradient that differs between two calls at the same point, raises, or returns
anything non-finite or mis-shaped at a moved point has no spread (fail closed: the verdicts
stand).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from gradcheck.core.compare import CODE, ParamResult, analytic_array
from gradcheck.core.numerics import within
from gradcheck.core.params import ParamSet

# Points a ulp away at which the gradient is read again; a partial's spread is the largest
# move among them. On 97 partials that failed a fit to 1e-12 (19 tanh MLPs), the largest of 3
# moves was at least the discrepancy beyond the tolerance at every one, 10x the median.
SAMPLES = 3
SEED = 20261202  # the directions' generator: a check is the same on every run
# A partial is judged with this many times its spread: of 537 partials that failed fits to
# 1e-13 ... 1e-11 (116 tanh MLPs), the discrepancy beyond the tolerance reached 1.35 spreads
# at most (the median 0.09). Not the verdicts' safety (10): the spread also holds the
# gradient's true change over a ulp, which an exactly computed gradient (a least-squares fit
# evaluated in extended precision) does not carry as error, and 10 of it hid errors of twice
# the sensitivity such a fit states.
SPREAD_MARGIN = 3.0


def gradient_spread(
    grad: Callable[[Any], Any], pset: ParamSet, gradients: Mapping[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], str]:
    """Per parameter of ``gradients``, the largest ``|g(x') - g(x)|`` per element over
    :data:`SAMPLES` points ``x'`` that move every parameter of ``pset`` by one ulp, each in a
    random direction; ``({}, why)`` where the spread cannot be measured. Every parameter is
    restored bitwise before it returns or raises."""
    gradients = {name: g for name, g in gradients.items() if g is not None}
    try:
        again = _read(grad, pset, gradients)
        if again is None or any(
            not np.array_equal(again[name], value) for name, value in gradients.items()
        ):
            return {}, "the gradient differs between two calls at the same point"
        rng = np.random.default_rng(SEED)
        spread = {name: np.zeros(value.shape) for name, value in gradients.items()}
        for _ in range(SAMPLES):
            for name in pset.names:
                start = pset.flat_values(name)
                if start.dtype.kind != "f":
                    continue
                up = rng.random(start.size) < 0.5
                moved = np.nextafter(start, np.where(up, np.inf, -np.inf).astype(start.dtype))
                pset.writer(name, bulk=True)(slice(None), moved)
            read = _read(grad, pset, gradients)
            pset.restore_all()
            if read is None:
                return {}, "the gradient raised or was not finite a ulp away from the point"
            for name, value in read.items():
                with np.errstate(over="ignore", invalid="ignore"):  # (inf: then never passes)
                    moved_by = np.abs(value - gradients[name])
                np.fmax(spread[name], moved_by, out=spread[name])
        return spread, ""
    finally:
        pset.restore_all()


def _read(
    grad: Callable[[Any], Any], pset: ParamSet, gradients: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray] | None:
    """The gradient where the parameters stand now, as float64 arrays of ``gradients``'
    shapes; ``None`` if it raises (a user's error: not this measurement's to report), or
    returns a mis-shaped, missing or non-finite partial."""
    try:
        raw = grad(pset.view)
        if not isinstance(raw, Mapping):
            return None
        out = {}
        for name, value in gradients.items():
            array = analytic_array(str(name), raw.get(name))
            if array is None or array.shape != value.shape or not np.isfinite(array).all():
                return None
            out[name] = array
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception:  # (an adapter's GradcheckError too: only this reading failed)
        return None
    return out


def judged_with_spread(result: ParamResult, spread: np.ndarray) -> ParamResult:
    """``result`` judged again with :data:`SPREAD_MARGIN` times the hand-written partials' own
    ``spread`` (flat, over the whole parameter) added to every element's tolerance and
    detectable error, when that clears at least one ``wrong`` element away from a kink
    (a kink's verdict is the one-sided slopes'); otherwise ``result`` itself, unchanged."""
    if result.analytic is None:
        return result
    with np.errstate(over="ignore"):
        extra = SPREAD_MARGIN * spread.reshape(-1)[result.indices]
        allowed = result.tolerance + extra
    wrong = result.codes == CODE["wrong"]
    cleared = wrong & ~result.kink & within(result.abs_err, allowed)
    if not cleared.any():
        return result
    codes = result.codes.copy()
    codes[cleared] = CODE["ok"]
    detectable = None if result.detectable is None else result.detectable + extra
    return replace(result, tolerance=allowed, codes=codes, detectable=detectable)
