"""Adapters: check nets as people write them, without restructuring them.

Each adapter returns a :class:`~gradcheck.protocol.Problem` (``loss``, ``grad``, ``params``)
that :func:`gradcheck.check`, ``assert_gradients`` and ``gradcheck check FILE.py:NAME`` take.

* :func:`from_attributes`: weights kept as attributes (``self.w1 .. self.w12``, ``self.W1``),
  scalars or arrays, discovered automatically.
* :func:`from_params_dict`: weights in a dict (``net.params["W1"]``, or a plain dict).
* :func:`gradcheck.adapters.training.from_training_step`: code that never returns gradients
  but updates the weights in place in a training step (per-sample SGD).
* :mod:`gradcheck.adapters.pytorch`: PyTorch modules and custom autograd Functions (extra
  ``torch``).

While the loss or the gradient runs, the object's weights are set to the point being evaluated
and put back (the very same objects) afterwards, so the net is exactly as it was when the check
returns. Functions given as strings are method names, called without arguments; callables get
the object (and, for a training step, the sample).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any

import numpy as np

from gradcheck.errors import InputError
from gradcheck.protocol import Problem

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def is_weight(value: Any) -> bool:
    """A float (Python or NumPy) or a non-empty float32/float64 array: what discovery keeps.

    Integers (epochs, layer sizes) and booleans are left out; name an integer-initialised
    weight in ``include`` to check it anyway.
    """
    if isinstance(value, np.ndarray):
        return value.dtype in FLOAT_DTYPES and value.size > 0
    return isinstance(value, (float, np.floating)) and not isinstance(value, np.float16)


def holds_weights(value: Any) -> bool:
    """A non-empty list or tuple whose leaves (through nested lists, tuples and dicts) are all
    weights: ``self.weights = [W1, W2]`` (checked as a pytree, elements ``weights[1][3, 2]``).
    Lists of integers (``self.sizes = [784, 30, 10]``) are not weights."""
    if not isinstance(value, (list, tuple)) or not value:
        return False

    def leaves_ok(node: Any) -> bool:
        if isinstance(node, Mapping):
            return bool(node) and all(leaves_ok(v) for v in node.values())
        if isinstance(node, (list, tuple)):
            return bool(node) and all(leaves_ok(v) for v in node)
        return is_weight(node)

    return leaves_ok(value)


def find_params(
    container: Any, include: Iterable[str] | None = None, exclude: Iterable[str] = ()
) -> list[str]:
    """Names of the weights in an object's attributes (or a mapping's keys), in order.

    Without ``include``: every public attribute (no leading underscore) holding a float or a
    float array, or a list or tuple of them (:func:`holds_weights`, checked as a pytree). With
    it: exactly those names (each must exist). ``exclude`` drops names.
    """
    values = container if isinstance(container, Mapping) else _attributes(container)
    exclude = set(_names(exclude, "exclude"))
    if include is not None:
        names = _names(include, "include")
        missing = [n for n in names if n not in values]
        if missing:
            raise InputError(
                f"include names {', '.join(map(repr, missing))}, which "
                f"{type(container).__name__} does not have"
            )
    else:
        names = [
            n
            for n, v in values.items()
            if isinstance(n, str) and not n.startswith("_") and (is_weight(v) or holds_weights(v))
        ]
    names = [n for n in names if n not in exclude]
    if include is None:
        for name, value in values.items():
            if isinstance(name, str) and not name.startswith("_") and name not in exclude:
                _refuse_mixed(name, value)
    if not names:
        raise InputError(
            f"no weights found in {type(container).__name__}: expected float or float-array "
            "attributes (name them with include=[...])"
        )
    return names


def _refuse_mixed(name: str, value: Any) -> None:
    """A list or tuple holding float arrays beside leaves that are not weights (an int array,
    a string, None) is neither checked nor safely ignored: its float arrays look like weights.
    Refused, naming both leaves, rather than left out in silence."""
    if not isinstance(value, (list, tuple)) or holds_weights(value):
        return
    leaves = list(_leaves(value, name))
    arrays = [path for path, leaf in leaves if isinstance(leaf, np.ndarray) and is_weight(leaf)]
    others = [(path, leaf) for path, leaf in leaves if not is_weight(leaf)]
    if arrays and others:
        path, leaf = others[0]
        kind = f"a {leaf.dtype} array" if isinstance(leaf, np.ndarray) else type(leaf).__name__
        raise InputError(
            f"attribute {name!r} holds float arrays ({arrays[0]}) beside {kind} at {path}, "
            f"so it cannot be checked as weights; exclude=[{name!r}] to leave it out, or keep "
            "the weights in a list of their own"
        )


def _leaves(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, Mapping):
        for key, child in node.items():
            yield from _leaves(child, f"{path}[{key!r}]")
    elif isinstance(node, (list, tuple)):
        for i, child in enumerate(node):
            yield from _leaves(child, f"{path}[{i}]")
    else:
        yield path, node


def _attributes(obj: Any) -> dict[str, Any]:
    try:
        return dict(vars(obj))
    except TypeError:  # __slots__ objects: only what dir() shows
        return {n: getattr(obj, n) for n in dir(obj) if not n.startswith("__")}


def _names(names: Iterable[str], what: str) -> list[str]:
    if isinstance(names, str):
        raise InputError(f"{what} must be a list of names, got the string {names!r}")
    return list(names)


class Slots:
    """Get and set named weights on an object's attributes or in a mutable mapping."""

    def __init__(self, container: Any, names: list[str]):
        self.container = container
        self.names = names
        self.mapping = isinstance(container, MutableMapping)

    def get(self, name: str) -> Any:
        return self.container[name] if self.mapping else getattr(self.container, name)

    def set(self, name: str, value: Any) -> None:
        if self.mapping:
            self.container[name] = value
        else:
            setattr(self.container, name, value)

    def current(self) -> dict[str, Any]:
        return {n: self.get(n) for n in self.names}

    def bind(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Point the weights at ``params``' values; return what to put back."""
        saved = self.current()
        for name in self.names:
            self.set(name, params[name])
        return saved

    def unbind(self, saved: Mapping[str, Any]) -> None:
        for name, value in saved.items():
            self.set(name, value)


def as_method(fn: Callable | str, owner: Any, role: str) -> Callable[..., Any]:
    """``fn`` as a callable taking ``owner`` (and maybe a sample)."""
    if isinstance(fn, str):
        if not callable(getattr(owner, fn, None)):
            raise InputError(f"{role} {fn!r} is not a method of {type(owner).__name__}")
        return lambda obj, *sample: getattr(obj, fn)(*sample)
    if not callable(fn):
        raise InputError(f"{role} must be a callable or a method name, got {type(fn).__name__}")
    return fn


def _problem(
    slots: Slots, owner: Any, loss: Callable | str, grad: Callable | str, name: str | None
) -> Problem:
    user_loss = as_method(loss, owner, "loss")
    user_grad = as_method(grad, owner, "grad")

    def bound_loss(params):
        saved = slots.bind(params)
        try:
            return user_loss(owner)
        finally:
            slots.unbind(saved)

    def bound_grad(params):
        saved = slots.bind(params)
        try:
            return user_grad(owner)
        finally:
            slots.unbind(saved)

    return Problem(bound_loss, bound_grad, slots.current(), name or type(owner).__name__)


def from_attributes(
    obj: Any,
    loss: Callable | str,
    grad: Callable | str,
    *,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    name: str | None = None,
) -> Problem:
    """Check a net that keeps its weights as attributes (``self.w1``, ``self.W1``, ...).

    Args:
        obj: the net. Its float and float-array attributes are the parameters (see
            :func:`find_params`; ``include``/``exclude`` adjust the choice).
        loss: ``loss(obj) -> float``, or the name of a method of ``obj`` taking no arguments.
        grad: ``grad(obj) -> {attribute name: partial}``, or a method name.
        name: label for reports (default: the class name).
    """
    slots = Slots(obj, find_params(obj, include, exclude))
    return _problem(slots, obj, loss, grad, name)


def from_params_dict(
    obj: Any,
    loss: Callable | str,
    grad: Callable | str,
    *,
    key: str = "params",
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    name: str | None = None,
) -> Problem:
    """Check a net whose weights live in a dict: ``obj.params`` (``key``), or ``obj`` itself.

    ``loss(obj)`` and ``grad(obj)`` read the weights from that dict (``grad`` returns a dict
    with the same keys), so functions that close over the dict work through ``lambda _: ...``.
    """
    container = obj if isinstance(obj, MutableMapping) else getattr(obj, key, None)
    if not isinstance(container, MutableMapping):
        raise InputError(
            f"{type(obj).__name__}.{key} is a {type(container).__name__}; "
            "expected a dict of name -> float or array"
        )
    slots = Slots(container, find_params(container, include, exclude))
    return _problem(slots, obj, loss, grad, name)
