"""Whole-tensor patterns: the hand-written gradient is the true one rearranged, reduced or cut.

Each test rearranges the hand-written values (or the numeric ones) and asks whether the result
would pass: a transpose (square, or non-square and reshaped to fit), two parameters' gradients
exchanged, a sum or a broadcast over the wrong axis, values clipped at a common bound. Exact
zeros (inputs that are 0, MNIST-like) and kinks do not defeat the tests: a match is judged only
on elements whose numeric partial is smooth, and needs at least one of them to be non-zero.
"""

from __future__ import annotations

import itertools

import numpy as np

from gradcheck.core.compare import ParamResult
from gradcheck.diagnosis.resolve import (
    CONVERGED_FRACTION,
    converged,
    hand_rounding,
    numeric_error,
    zero_within_error,
)

# Clipping needs a few elements on the bound: one element at the tensor's largest value is
# what every tensor has.
MIN_CLIPPED = 3
# Share of a tensor's numeric partials that must be resolved before a pattern is matched.
RESOLVED_SHARE = 0.9


def matches(candidate: np.ndarray, p: ParamResult) -> bool:
    """Whether ``candidate`` (flat, ``p.size``) would pass against ``p``'s numeric partials.

    The tolerance is the element's own (or ten estimated errors where there was no usable
    hand-written value), widened by the rounding a hand-written value in ``p``'s dtype carries;
    elements at kinks are left out.
    """
    candidate = np.asarray(candidate, dtype=np.float64).reshape(-1)
    numeric = p.numeric
    with np.errstate(invalid="ignore", over="ignore"):
        tolerance = np.where(np.isfinite(p.tolerance), p.tolerance, 10 * numeric_error(p))
        allowed = tolerance + hand_rounding(p) * np.maximum(np.abs(candidate), np.abs(numeric))
        smooth = ~p.kink & np.isfinite(numeric)
        close = np.abs(candidate - numeric) <= allowed + 1e-300
    judged = smooth & np.isfinite(candidate)
    if not judged.any() or not np.any(numeric[judged] != 0) or not resolved(p, judged):
        return False
    return bool(np.all(close[judged]) and np.all(np.isfinite(candidate[smooth])))


def resolved(p: ParamResult, where: np.ndarray) -> bool:
    """Whether the numeric partials at ``where`` are sharp enough to match a pattern against:
    at least ``RESOLVED_SHARE`` of them converged or zero within their error (with loose
    ones, any rearrangement would match)."""
    sharp = converged(p) | zero_within_error(p)
    return bool(np.mean(sharp[where]) >= RESOLVED_SHARE) if where.any() else False


def transposed(p: ParamResult) -> bool:
    """A square matrix whose hand-written gradient is the transpose of the true one."""
    if p.analytic is None or len(p.shape) != 2 or p.shape[0] != p.shape[1] or not p.failed:
        return False
    return matches(p.analytic.reshape(p.shape).T.reshape(-1), p)


def transposed_reshaped(p: ParamResult) -> bool:
    """A non-square matrix whose hand-written values, read as the transposed shape and
    transposed back, are the true gradient: computed transposed, then reshaped to fit."""
    if p.analytic is None or len(p.shape) != 2 or p.shape[0] == p.shape[1] or not p.failed:
        return False
    return matches(p.analytic.reshape(p.shape[::-1]).T.reshape(-1), p)


# Axis orders tried for a tensor's hand-written values: all of them up to this many axes.
MAX_PERMUTED_AXES = 5


def axes_permuted(p: ParamResult) -> tuple[int, ...] | None:
    """For a tensor of 3 or more axes: an axis order ``order`` such that the hand-written
    values, transposed to ``order`` and reshaped back, are the true gradient (the gradient was
    unfolded with its axes in another order, as a conv's ``dw`` reshaped (F, HH, WW, C) where
    im2col orders (F, C, HH, WW)). ``None`` when no order fits."""
    if p.analytic is None or not 3 <= len(p.shape) <= MAX_PERMUTED_AXES or not p.failed:
        return None
    hand = p.analytic.reshape(p.shape)
    identity = tuple(range(len(p.shape)))
    for order in itertools.permutations(identity):
        if order != identity and matches(hand.transpose(order).reshape(-1), p):
            return order
    return None


def swapped_pairs(params: list[ParamResult]) -> list[tuple[str, str]]:
    """Pairs of same-shaped parameters whose hand-written gradients are exchanged."""
    pairs = []
    wrong = [(p, p.analytic) for p in params if p.analytic is not None and p.status == "wrong"]
    for i, (a, a_hand) in enumerate(wrong):
        for b, b_hand in wrong[i + 1 :]:
            if a.shape == b.shape and matches(a_hand, b) and matches(b_hand, a):
                pairs.append((a.name, b.name))
    return pairs


def permuted(p: ParamResult) -> bool:
    """The hand-written values are the true ones in another order (sorted, they match)."""
    if p.analytic is None or not p.failed or p.size < 2 or p.kink.any():
        return False
    if not resolved(p, np.ones(p.size, dtype=bool)):
        return False
    order = np.argsort(p.numeric)
    return _close(np.sort(p.analytic), p.numeric[order], numeric_error(p)[order], p)


def axis_reduction(p: ParamResult) -> str | None:
    """The hand-written gradient is the true one summed (or split) along the wrong axis.

    Two shapes of the same slip, both judged against the numeric partials:

    * summed along axis ``k`` and broadcast back (every slice along ``k`` holds the slice
      total): the parameter's gradient was reduced over an axis it owns;
    * right totals, wrong split: for a vector, the elements sum to the true total but differ
      one by one (``dout.sum(axis=1)`` where ``axis=0`` is meant, same length when square);
      for a matrix, the sums along one axis are right and the elements are not.
    """
    if p.analytic is None or not p.failed or p.size < 2 or p.kink.any():
        return None
    if not resolved(p, np.ones(p.size, dtype=bool)):
        return None
    hand = p.analytic.reshape(p.shape)
    true = p.numeric.reshape(p.shape)
    error = numeric_error(p).reshape(p.shape)
    for axis, length in enumerate(p.shape):
        if length < 2:
            continue
        with np.errstate(invalid="ignore", over="ignore"):
            total = true.sum(axis=axis, keepdims=True)
        broadcast = np.broadcast_to(total, p.shape)
        if _close(hand, broadcast, error, p):
            return (
                f"every slice along axis {axis} holds the sum of the true partials along that "
                f"axis: the gradient was summed over axis {axis} (length {length}) and "
                "broadcast back; the parameter owns that axis, so it must not be summed"
            )
    for axis, length in enumerate(p.shape):
        if length < 2:
            continue
        with np.errstate(invalid="ignore", over="ignore"):
            hand_total = hand.sum(axis=axis)
            true_total = true.sum(axis=axis)
            slack = error.sum(axis=axis) * 3 + hand_rounding(p) * np.abs(hand).sum(axis=axis)
        if not np.all(np.abs(hand_total - true_total) <= slack + 1e-300):
            continue
        # every total resolved (a total near 0 agrees with anything): a factor or a sign
        # error cannot pass for a redistribution
        if not np.all(slack <= CONVERGED_FRACTION * np.abs(true_total)):
            continue
        where = "the elements sum" if len(p.shape) == 1 else f"the sums along axis {axis} are"
        return (
            f"{where} to the true total but the elements differ: the same numbers reduced "
            "over the wrong axis (e.g. dout.sum(axis=1) where axis=0 is meant)"
        )
    return None


def _close(hand, candidate, error, p: ParamResult) -> bool:
    with np.errstate(invalid="ignore", over="ignore"):
        allowed = 10 * error + hand_rounding(p) * np.maximum(np.abs(hand), np.abs(candidate))
        return bool(np.all(np.abs(hand - candidate) <= allowed + 1e-300)) and bool(
            np.any(candidate != 0)
        )


def clipped(params: list[ParamResult]) -> list[tuple[float, dict[str, np.ndarray]]]:
    """Hand-written values sitting exactly on a common bound ``+-c`` where the true partials
    exceed it: the gradient was clipped inside the gradient function.

    Returns ``(c, {param: flat indices of the wrong elements on the bound})`` per bound found.
    A tensor's candidate bound is its largest ``|hand-written|``; every wrong element on it
    must have a true partial of the same sign and larger magnitude, and the tensors sharing
    the bound must have at least ``MIN_CLIPPED`` elements on it between them.
    """
    by_bound: dict[float, dict[str, np.ndarray]] = {}
    on_bound: dict[float, int] = {}
    for p in params:
        if p.analytic is None or not p.failed:
            continue
        magnitude = np.abs(p.analytic)
        finite = np.isfinite(magnitude)
        if not finite.any():
            continue
        bound = float(magnitude[finite].max())
        if bound == 0:
            continue
        on = np.flatnonzero(magnitude == bound)
        wrong = on[p.statuses[on] == "wrong"]
        if wrong.size == 0:
            continue
        with np.errstate(invalid="ignore"):
            beyond = np.abs(p.numeric[wrong]) > bound
            same_sign = np.sign(p.numeric[wrong]) == np.sign(p.analytic[wrong])
        if not np.all(beyond & same_sign):
            continue
        by_bound.setdefault(bound, {})[p.name] = wrong
        on_bound[bound] = on_bound.get(bound, 0) + on.size
    found = [(c, where) for c, where in by_bound.items() if on_bound[c] >= MIN_CLIPPED]
    return sorted(found, key=lambda item: -sum(v.size for v in item[1].values()))


def shape_cause(p: ParamResult, dims: dict[str, int] | None = None) -> tuple[str, str]:
    """Why a gradient came back with the wrong shape, tested against the numeric partials.

    Returns ``(kind, message)``: ``transposed``, ``reshaped``, ``missing_sum`` (an extra
    axis), ``wrong_axis`` (as many axes, other lengths: reduced over the wrong axis) or
    ``shape_mismatch``.
    """
    grad = p.raw_grad
    if grad is None:  # compare() keeps what came back for every shape_mismatch
        raise ValueError(f"{p.name}: shape_cause explains a mis-shaped gradient; none came back")
    shape, got = p.shape, tuple(grad.shape)
    base = f"{p.name}: the gradient has shape {got}, the parameter {shape}"

    def named(length: int) -> str:
        sizes = [name for name, size in (dims or {}).items() if size == length]
        return f" (the {' or the '.join(sizes)})" if sizes else ""

    if grad.size == p.size:
        if len(shape) == 2 and got == shape[::-1] and matches(grad.T.reshape(-1), p):
            return "transposed", f"{base}: it is the transpose of the right gradient"
        verdict = (
            "and reshaped it matches"
            if matches(grad.reshape(-1), p)
            else "and even reshaped its values are wrong"
        )
        return "reshaped", f"{base}: same number of elements, {verdict}"
    for axis, length in enumerate(got):
        rest = got[:axis] + got[axis + 1 :]
        if rest != shape:
            continue
        with np.errstate(invalid="ignore", over="ignore"):
            summed = grad.sum(axis=axis).reshape(-1)
        if matches(summed, p):
            tail = "summing over it gives the right gradient"
        else:
            shown = ", ".join(f"{v:+.3g}" for v in summed[:3])
            tail = (
                f"summing over it gives {shown}{'...' if summed.size > 3 else ''}, still "
                "not the true partials, so the values are wrong as well"
            )
        return "missing_sum", (
            f"{base}: an extra axis {axis} of length {length}{named(length)}; a sum over that "
            f"axis is missing; {tail}"
        )
    if len(got) == len(shape):
        axes = [k for k in range(len(shape)) if got[k] != shape[k]]
        lengths = ", ".join(f"{got[k]}{named(got[k])} where {shape[k]}" for k in axes)
        with np.errstate(invalid="ignore", over="ignore"):
            gap = abs(float(np.sum(grad)) - float(np.sum(p.numeric)))
            slack = 10 * float(np.sum(numeric_error(p))) + hand_rounding(p) * float(
                np.sum(np.abs(grad))
            )
        same_total = (
            "; its elements sum to the true total, as the same numbers reduced over the other "
            "axis do"
            if gap <= slack and np.any(p.numeric != 0)
            else ""
        )
        return "wrong_axis", (
            f"{base}: as many axes but length {lengths} is meant: a sum over the wrong axis "
            f"(e.g. dout.sum(axis=1) where axis=0 is meant) keeps the other axis{same_total}"
        )
    return "shape_mismatch", f"{base}: no simple relation between them"
