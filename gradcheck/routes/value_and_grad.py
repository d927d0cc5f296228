"""``fun(params) -> (loss, grads)``: code whose one call returns the loss and its gradients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
            shape = (
                f"a {type(out).__name__} of {len(out)}"
                if isinstance(out, (tuple, list))
                else f"a {type(out).__name__}"
            )
            raise InputError(
                f"fun{'' if self.unpack is None else ' (after unpack)'} returned {shape}; expected "
                "(loss, grads): pass unpack=lambda out: (out[0], out[1]) to adapt it"
            )
        return out[0], out[1]

    def loss(self, params: Any) -> Any:
        return self._pair(params)[0]

    def grad(self, params: Any) -> Any:
        return self._pair(params)[1]
