"""Pytrees: parameters nested in dicts, lists and tuples, checked as a flat ``{path: leaf}`` dict.

A layer above :class:`~gradcheck.core.params.ParamSet`: :class:`Tree` flattens any nesting of
dicts, lists and tuples into an ordered mapping from a *path* to a leaf (an array or a float),
hands that flat mapping to the engine, and rebuilds the user's structure around the engine's
view for every call of the user's loss and gradient. Paths read like the Python that reaches
the leaf: ``weights[1]`` for ``params["weights"][1]``, ``layers[0]["W"]``, ``[2]`` for the third
leaf of a top-level list; an element is then ``weights[1][3, 2]`` in every report.

Arrays are the user's own objects in the rebuilt structure (the engine perturbs them in place,
so code reading ``self.weights`` sees the perturbation too); Python floats are leaves that the
rebuilt structure carries at their perturbed value (the containers are new on every call).
The gradient must have the same structure; the first path where it differs is an
:class:`~gradcheck.errors.InputError`. A flat dict of leaves is not a tree: it goes to the
engine unchanged.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, TypeGuard, overload

from gradcheck.errors import InputError


def is_container(value: Any) -> bool:
    """What a tree branches on: dicts (any Mapping), lists and tuples (named tuples too)."""
    return isinstance(value, (Mapping, list, tuple))


def is_tree(params: Any) -> bool:
    """Whether ``params`` needs the tree layer: a list or tuple, or a dict holding one."""
    if isinstance(params, Mapping):
        return any(is_container(v) for v in params.values())
    return isinstance(params, (list, tuple))


def child_path(path: str, key: Any, container: Any) -> str:
    """The path of ``container[key]`` inside the node at ``path`` (``""`` is the root).

    Top-level string keys stay bare (``W1``, as in a flat dict); deeper dict keys are quoted
    (``layers[0]["W"]``); sequence positions are bracketed (``weights[1]``).
    """
    if isinstance(container, Mapping):
        if path == "" and isinstance(key, str):
            return key
        return f"{path}[{json.dumps(key) if isinstance(key, str) else repr(key)}]"
    return f"{path}[{key}]"


def _items(node: Any) -> list[tuple[Any, Any]]:
    return list(node.items()) if isinstance(node, Mapping) else list(enumerate(node))


def _kind(node: Any) -> str:
    if isinstance(node, Mapping):
        return "a dict"
    if isinstance(node, (list, tuple)):
        return f"a {type(node).__name__} of {len(node)}"
    return f"a {type(node).__name__}"


def _where(path: str) -> str:
    return path if path.startswith("[") or path == "" else f"[{path!r}]"


class StructureError(InputError):
    """The gradient's structure differs from the parameters' (raised from inside the wrapped
    gradient function, and passed on as the user's input error rather than as a failed call)."""


class Tree:
    """A nested ``params`` seen as an ordered ``{path: leaf}`` dict (:attr:`leaves`)."""

    def __init__(self, params: Any):
        if not is_container(params):
            raise InputError(
                f"params must be a dict, list or tuple of floats and arrays, got "
                f"{type(params).__name__}"
            )
        self.params = params
        self.leaves: dict[str, Any] = {}
        self._collect(params, "")
        if not self.leaves:
            raise InputError("params holds no arrays or floats; pass at least one parameter")

    def _collect(self, node: Any, path: str) -> None:
        for key, value in _items(node):
            sub = child_path(path, key, node)
            if is_container(value):
                self._collect(value, sub)
            elif sub in self.leaves:
                raise InputError(
                    f"two parameters are both named {sub!r}; rename the top-level key that "
                    "collides with a nested path"
                )
            else:
                self.leaves[sub] = value

    # -- from the engine's flat view back to the user's structure -------------------------------
    def build(self, flat: Mapping[str, Any]) -> Any:
        """The user's structure with every leaf taken from ``flat`` (the engine's view)."""
        return self._build(self.params, "", flat)

    def _build(self, node: Any, path: str, flat: Mapping[str, Any]) -> Any:
        items = [
            (
                key,
                self._build(value, sub, flat) if is_container(value) else flat.get(sub, value),
            )
            for key, value in _items(node)
            for sub in (child_path(path, key, node),)
        ]
        if isinstance(node, Mapping):
            return dict(items)
        values = [v for _, v in items]
        if isinstance(node, tuple):
            return type(node)(*values) if hasattr(node, "_fields") else tuple(values)
        return values

    # -- the user's gradient, checked against the structure and flattened -----------------------
    def flatten_grad(self, grads: Any) -> dict[str, Any]:
        """``grads`` as ``{path: partial}``; raises :class:`InputError` at the first path where
        its structure differs from the parameters'. A top-level dict keeps the flat-dict rules:
        a missing key is a missing gradient and an unknown key an extra one, as in ``check``."""
        if isinstance(self.params, Mapping):
            if not isinstance(grads, Mapping):
                raise StructureError(
                    "grad must return a dict like params (keys "
                    f"{', '.join(map(repr, self.params))}), got {_kind(grads)}"
                )
            out: dict[str, Any] = {}
            for key, value in grads.items():
                if key not in self.params:
                    out[str(key)] = value  # reported as an extra gradient
                    continue
                self._match(self.params[key], value, child_path("", key, self.params), out)
            return out
        out = {}
        self._match(self.params, grads, "", out)
        return out

    def _match(self, param: Any, grad: Any, path: str, out: dict[str, Any]) -> None:
        if not is_container(param):
            if isinstance(grad, Mapping):
                raise StructureError(
                    f"grad{_where(path)} is a dict where params{_where(path)} is a single "
                    f"{type(param).__name__}; the gradient must have the parameters' structure"
                )
            out[path] = grad
            return
        same = (
            isinstance(grad, Mapping)
            if isinstance(param, Mapping)
            else isinstance(grad, (list, tuple)) and len(grad) == len(param)
        )
        if not same:
            raise StructureError(
                f"grad{_where(path)} is {_kind(grad)} where params{_where(path)} is "
                f"{_kind(param)}; the gradient must have the parameters' structure"
            )
        if isinstance(param, Mapping):
            missing = [k for k in param if k not in grad]
            extra = [k for k in grad if k not in param]
            if missing or extra:
                first = missing[0] if missing else extra[0]
                raise StructureError(
                    f"grad{_where(child_path(path, first, param))} is "
                    f"{'missing' if missing else 'not a parameter'}; the gradient must have "
                    "the parameters' structure"
                )
        for key, value in _items(param):
            self._match(value, grad[key], child_path(path, key, param), out)

    # -- user functions as functions of the flat view ------------------------------------------
    @overload
    def on_flat(self, function: Callable) -> Callable: ...
    @overload
    def on_flat(self, function: None) -> None: ...
    def on_flat(self, function: Callable | None) -> Callable | None:
        """``function(tree)`` as a function of the flat view (``None`` stays ``None``)."""
        return None if function is None else _OnTree(self, function, grad=False)

    def grad_on_flat(self, grad: Callable) -> Callable:
        """``grad(tree) -> tree`` as ``grad(flat) -> {path: partial}``."""
        return _OnTree(self, grad, grad=True)

    def sample(self, sample: Any) -> Any:
        """A per-sample ``Problem`` (any dataclass with ``loss``, ``grad`` and ``nodes``) or
        ``(loss, grad)`` pair, on the flat view."""
        if _is_problem_like(sample):
            return dataclasses.replace(
                sample,
                loss=self.on_flat(sample.loss),
                grad=self.grad_on_flat(sample.grad),
                nodes=self.on_flat(sample.nodes),
            )
        if isinstance(sample, tuple) and len(sample) == 2 and all(map(callable, sample)):
            return (self.on_flat(sample[0]), self.grad_on_flat(sample[1]))
        return sample  # not a sample: check() says so


class _ProblemLike(Protocol):
    """What :meth:`Tree.sample` rewraps: a dataclass instance with a problem's functions (a
    :class:`~gradcheck.protocol.Problem`, which this layer does not import)."""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]
    loss: Callable
    grad: Callable
    nodes: Callable | None


def _is_problem_like(sample: Any) -> TypeGuard[_ProblemLike]:
    """Whether ``sample`` is a dataclass instance (not a class) with loss, grad and nodes."""
    return (
        dataclasses.is_dataclass(sample)
        and not isinstance(sample, type)
        and all(hasattr(sample, a) for a in ("loss", "grad", "nodes"))
    )


class _OnTree:
    """A picklable ``lambda flat: function(tree.build(flat))`` (process-pool executors)."""

    def __init__(self, tree: Tree, function: Callable, grad: bool):
        self.tree = tree
        self.function = function
        self.grad = grad

    def __call__(self, flat: Mapping[str, Any]) -> Any:
        result = self.function(self.tree.build(flat))
        return self.tree.flatten_grad(result) if self.grad else result
