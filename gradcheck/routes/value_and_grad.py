"""``fun(params) -> (loss, grads)``: code whose one call returns the loss and its gradients."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gradcheck.api import check
from gradcheck.errors import InputError
from gradcheck.report.model import Report


def check_value_and_grad(
    fun: Callable[[Any], Any],
    params: Any,
    *,
    unpack: Callable[[Any], tuple[Any, Any]] | None = None,
    **options: Any,
) -> Report:
    """:func:`gradcheck.check` a function that returns the loss and its gradients together.

    ``fun(params)`` returns ``(loss, grads)`` with ``grads`` shaped like ``params`` (a dict, or
    any nesting of dicts, lists and tuples, see :func:`gradcheck.check`). The loss of every
    finite difference is ``fun(params)[0]``: the gradients computed alongside are thrown away
    rather than cached, so nothing from one parameter value can stand in for another.

    Args:
        fun: ``fun(params) -> (loss, grads)``; a net's ``loss(X, y)`` becomes
            ``lambda p: net.loss(X, y)`` when it reads the weights that ``params`` holds.
        params: what ``fun`` takes (its arrays are perturbed in place and restored bitwise).
        unpack: ``unpack(fun(params)) -> (loss, grads)`` for other return shapes, e.g.
            ``lambda out: (out[0], out[1:6])`` for ``loss, dWxh, dWhh, dWhy, dbh, dby, hprev``
            against ``params = [Wxh, Whh, Why, bh, by]``.
        **options: any option of :func:`gradcheck.check` (``tolerance``, ``mode``, ...).
    """
    if not callable(fun):
        raise InputError(f"fun must be callable as fun(params), got {type(fun).__name__}")
    if unpack is not None and not callable(unpack):
        raise InputError(f"unpack must be callable as unpack(out), got {type(unpack).__name__}")
    split = _Split(fun, unpack)
    return check(split.loss, split.grad, params, **options)


class _Split:
    """The loss and the gradient of ``fun``, each from its own call."""

    def __init__(self, fun: Callable, unpack: Callable | None):
        self.fun = fun
        self.unpack = unpack

    def _pair(self, params: Any) -> tuple[Any, Any]:
        out = self.fun(params)
        if self.unpack is not None:
            out = self.unpack(out)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise InputError(_not_a_pair(out, self.unpack is not None))
        if _is_number(out[1]) and not _is_number(out[0]):
            raise InputError(
                f"fun returned ({type(out[0]).__name__}, {type(out[1]).__name__}): the loss "
                "comes second; return (loss, grads), or pass unpack=lambda out: (out[1], out[0])"
            )
        return out[0], out[1]

    def loss(self, params: Any) -> Any:
        return self._pair(params)[0]

    def grad(self, params: Any) -> Any:
        grads = self._pair(params)[1]
        if isinstance(params, Mapping) and not isinstance(grads, Mapping):
            keys = ", ".join(map(repr, params))
            one = f"{{{next(iter(params))!r}: out[1]}}" if len(params) == 1 else "{...}"
            raise InputError(
                f"the gradients fun returns must be a dict like params (keys {keys}), got "
                f"{type(grads).__name__}; return them keyed like params, or pass "
                f"unpack=lambda out: (out[0], {one})"
            )
        return grads


def _is_number(value: Any) -> bool:
    """A real scalar as a loss is one: a Python or NumPy number, or a 0-d array."""
    return isinstance(value, (int, float, np.number)) or (
        isinstance(value, np.ndarray) and value.ndim == 0
    )


def _not_a_pair(out: Any, unpacked: bool) -> str:
    """Why ``out`` is not ``(loss, grads)``, and the ``unpack=`` that would adapt it."""
    who = "fun (after unpack)" if unpacked else "fun"
    if _is_number(out):
        return (
            f"{who} returned only a number ({type(out).__name__}); expected (loss, grads). For a "
            "loss and a gradient computed by two functions use gradcheck.check(loss, grad, params)"
        )
    if isinstance(out, (tuple, list)) and len(out) > 2:
        return (
            f"{who} returned a {type(out).__name__} of {len(out)}; expected (loss, grads): pass "
            "unpack=lambda out: (out[0], out[1:k]) with out[1:k] the gradients in the order of "
            "params (min-char-rnn's loss, dWxh, dWhh, dWhy, dbh, dby, hprev: out[1:6])"
        )
    kind = f"a {type(out).__name__} of {len(out)}" if isinstance(out, (tuple, list)) else None
    return (
        f"{who} returned {kind or f'a {type(out).__name__}'}; expected (loss, grads): pass "
        "unpack=lambda out: (loss, grads) that picks them out of what fun returns"
    )
