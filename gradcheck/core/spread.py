"""The hand-written gradient's own spread: how far its partials move when every parameter
moves by one ulp.

A comparison allows the hand-written partials ``rtol`` (``sqrt(eps)``) of their size and puts
the rest of its doubt on the numeric side. That fails where the gradient's own arithmetic
cancels: a fit to residuals of 1e-12 computes ``out - y`` from outputs of 1, so the residuals,
and every partial made of them (~1e-13), carry a rounding of 1e-16, 1e-3 of their size, which
no finite difference can be blamed for. Backward stability says what that rounding is worth:
the computed gradient is the exact one at a point a few ulps away, so moving every parameter
by one ulp (random directions, :data:`SAMPLES` points; parameters coarser than the one
judged are held) and reading the gradient again measures it, as the loss's own noise is
measured rather than assumed.

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
# move among them. A partial's move is a random sum (its Hessian row times the moves), near 0
# now and then: of 21,496 partials that failed fits to 1e-12 and 1e-9 (16 tanh MLPs of 3,201
# parameters), the discrepancy beyond the tolerance reached 1.02 of the largest of 8 moves
# (median 0.06), but 6.0 of the largest of 3.
SAMPLES = 8
SEED = 20261202  # the directions' generator: a check is the same on every run
# A partial is judged with this many times its spread (the largest ratio above was 1.02).
# Not the verdicts' safety (10): the spread also holds the gradient's true change over a ulp,
# which an exactly computed gradient (a least-squares fit evaluated in extended precision)
# does not carry as error, and 10 of it hid errors of twice the sensitivity such a fit states.
SPREAD_MARGIN = 3.0
CHUNK = 1 << 16  # elements moved per write (the random signs' temporaries stay this small)
# Fast mode measures the spread on nets of at most this many parameters: each reading holds a
# second gradient beside the first, which past that would break its memory bound (2x the
# parameters' bytes + O(elements measured)); 512 KB of float64 here.
FAST_MOST = 1 << 16


def gradient_spread(
    grad: Callable[[Any], Any], pset: ParamSet, gradients: Mapping[str, np.ndarray | None]
) -> tuple[dict[str, np.ndarray], str]:
    """Per parameter of ``gradients``, the largest ``|g(x') - g(x)|`` per element over
    :data:`SAMPLES` points ``x'`` that move every parameter of ``pset`` as fine as it (its
    dtype's epsilon or smaller) by one ulp, each in a random direction; ``({}, why)`` where
    the spread cannot be measured. Parameters judged at several precisions cost
    :data:`SAMPLES` gradient calls each.

    The gradient is read at the point again last: it must give ``gradients`` bit for bit (a
    gradient with noise of its own would measure that noise as its spread), and a gradient
    function that reuses its output buffers leaves them as they were at the point (fast mode
    keeps them without a copy). Every parameter is restored bitwise before it returns or
    raises; the moves are written a chunk at a time (no temporary of a tensor's size)."""
    base = {
        name: np.array(g, dtype=np.float64, copy=True)
        for name, g in gradients.items()
        if g is not None
    }
    why = ""
    # each parameter's moves stay within its own precision: a float32 weight moved by its ulp
    # (6e-8 of it) moves a float64 input's partials for real, by 1e-8 of them, which is no
    # rounding (errors 1,000 times the stated sensitivity of such an input passed with it).
    # Parameters judged at each precision get their own SAMPLES points, at which only the
    # parameters as fine as that are moved
    levels = sorted({_eps(pset[name].snapshot) for name in base})
    try:
        rng = np.random.default_rng(SEED)
        spread = {name: np.zeros(value.shape) for name, value in base.items()}
        for level in levels:
            moved = [name for name in pset.names if _eps(pset[name].snapshot) <= level]
            judged = {n for n in base if _eps(pset[n].snapshot) == level}
            for _ in range(SAMPLES):
                for name in moved:
                    _move(pset, name, rng)
                read = _read(grad, pset, base)
                pset.restore_all()
                if read is None:
                    why = "the gradient raised or was not finite a ulp away from the point"
                    break
                for name in judged:
                    with np.errstate(over="ignore", invalid="ignore"):  # (inf: never passes)
                        moved_by = np.abs(read[name] - base[name])
                    np.fmax(spread[name], moved_by, out=spread[name])
            if why:
                break
        again = _read(grad, pset, base)  # (whatever happened: reused buffers back as they were)
        if not why and (
            again is None or any(not np.array_equal(again[n], value) for n, value in base.items())
        ):
            why = "the gradient differs between two calls at the same point"
        return ({}, why) if why else (spread, "")
    finally:
        pset.restore_all()


def _eps(values: np.ndarray) -> float:
    """The machine epsilon of a parameter's dtype (inf for one that is not floating: never
    moved)."""
    dtype = np.asarray(values).dtype
    return float(np.finfo(dtype).eps) if dtype.kind == "f" else float("inf")


def _move(pset: ParamSet, name: str, rng: np.random.Generator) -> None:
    """Move every element of parameter ``name`` by one ulp, up or down at random."""
    start = pset[name].snapshot.reshape(-1)
    if start.dtype.kind != "f":
        return
    write = pset.writer(name, bulk=True)
    if start.size == 1:  # a scalar (a Python float's writer takes one value)
        write(slice(None), np.nextafter(start, np.inf if rng.random() < 0.5 else -np.inf))
        return
    for lo in range(0, start.size, CHUNK):
        part = start[lo : lo + CHUNK]
        toward = np.where(rng.random(part.size) < 0.5, np.inf, -np.inf).astype(part.dtype)
        write(slice(lo, lo + part.size), np.nextafter(part, toward))


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
