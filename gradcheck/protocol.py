"""The seam between the library and anything checkable: nets in ``nets/``, users' own code.

A checkable thing is a :class:`Problem`: named parameters, a scalar loss of them, and the
hand-written gradient of that loss. Reference nets are published as :class:`Reference` entries
of a registry (a mapping name -> Reference) exposed through the ``gradcheck.registries``
entry-point group; the library never imports them by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from gradcheck.errors import InputError


@dataclass(frozen=True)
class NodeTrace:
    """One forward pass exposed node by node, for node-level localization.

    The protocol (see the docs, docs/how-to/nodes.md):

    * ``order``: node names from the input side to the loss side. The nodes form a chain:
      each node's value is computed from the previous node and the parameters only (a node
      may be a whole layer's vector, such as all hidden activations).
    * ``values``: node -> its value in this forward pass.
    * ``grads``: node -> the hand-written dL/dnode, shaped like the value.
    * ``forward(overrides)``: run the forward pass again with the nodes named in
      ``overrides`` replaced by the given values (and everything after them recomputed);
      return ``(values, loss)``.
    * ``steps``: optional node -> a few words naming the operation that produces it
      (``"softmax"``), used in messages.
    * ``names``: optional node -> names of its elements in C order (``["h1", "h2"]``), so
      messages speak the net's own names.
    """

    order: tuple[str, ...]
    values: Mapping[str, Any]
    grads: Mapping[str, Any]
    forward: Callable[[Mapping[str, Any]], tuple[Mapping[str, Any], float]]
    steps: Mapping[str, str] = field(default_factory=dict)
    names: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    """Named parameters, ``loss(params) -> float`` and ``grad(params) -> {name: array}``.

    Optional, for a richer diagnosis:

    * ``nodes(params) -> NodeTrace``: intermediate values and their hand-written gradients;
    * ``samples``: one Problem per sample of the batch (same parameters; their ``params`` are
      ignored), each checked on its own as well as the batch;
    * ``dims``: sizes with names (``{"batch": 32, "outputs": 10}``) so that a factor or an
      extra axis of that size is named.
    """

    loss: Callable[[Any], Any]
    grad: Callable[[Any], Any]
    params: Mapping[str, Any] | Sequence[Any]  # {name: leaf}, or a pytree
    name: str = ""
    nodes: Callable[[Mapping[str, Any]], NodeTrace] | None = None
    samples: tuple[Problem, ...] = ()
    dims: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Reference:
    """A reference net in a registry.

    Attributes:
        name: registry key, also the report's file name.
        build: zero-argument callable returning a fresh :class:`Problem` (seeded).
        expect_pass: whether the net's hand-written gradient is meant to be right.
        description: one line: what the net is, and for a buggy one, which bug it plants.
        bug_params: for a buggy net, the parameters whose partials the bug makes wrong.
        tags: free-form labels for grouping (``asker``, ``layer``, ...).
    """

    name: str
    build: Callable[[], Problem]
    expect_pass: bool
    description: str
    bug_params: frozenset[str] = frozenset()
    tags: frozenset[str] = field(default_factory=frozenset)


def as_problem(obj: Any, name: str = "") -> Problem:
    """Accept a :class:`Problem`, a ``(loss, grad, params)`` triple, or an object with
    ``loss``, ``grad`` and ``params`` attributes (``params`` may be a method)."""
    if isinstance(obj, Problem):
        return obj
    if isinstance(obj, tuple) and len(obj) == 3:
        loss, grad, params = obj
        return Problem(loss, grad, params, name)
    if all(hasattr(obj, a) for a in ("loss", "grad", "params")):
        params = obj.params() if callable(obj.params) else obj.params
        return Problem(obj.loss, obj.grad, params, name or type(obj).__name__)
    raise InputError(
        f"{name or 'the object'} is a {type(obj).__name__}; expected a (loss, grad, params) "
        "triple or an object with loss(params), grad(params) and params"
    )


def load_references(warn: Callable[[str], None] | None = None) -> dict[str, Reference]:
    """Every reference net published through the ``gradcheck.registries`` entry points.

    A registry that fails to load, or holds something other than References, raises an
    :class:`InputError` naming it; given ``warn``, it is one line passed to ``warn`` instead
    and its nets are left out, so that one broken third-party registry does not stop the rest.
    """
    found: dict[str, Reference] = {}
    for ep in entry_points(group="gradcheck.registries"):
        try:
            found.update(_registry(ep))
        except InputError as exc:
            if warn is None:
                raise
            warn(f"{exc}; its nets are left out")
    return found


def _registry(ep: Any) -> dict[str, Reference]:
    where = f"registry {ep.name!r} ({ep.value}, a gradcheck.registries entry point)"
    try:
        registry = ep.load()
        items = list(registry.items())
    except (KeyboardInterrupt, MemoryError):
        raise
    except BaseException as exc:
        message = " ".join(str(exc).split())
        raise InputError(
            f"{where} could not be loaded: {type(exc).__name__}"
            + (f": {message}" if message else "")
        ) from exc
    for key, ref in items:
        if not isinstance(ref, Reference):
            raise InputError(f"{where}: entry {key!r} is not a gradcheck Reference")
    return dict(items)
