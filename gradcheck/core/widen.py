"""Run a float32 net in float64, for a re-check that sees past float32 rounding.

In float32 a finite difference resolves a partial to ~1e-3 at best, so a wrong hand-written
gradient can hide inside the tolerance and a diagnosis has little to stand on. Casting
everything to float64 and checking again settles it, and the cast is mechanical:

* the parameters: float32 arrays and scalars become float64 copies (the caller's are untouched);
* what the loss and the gradient function close over: float32 arrays (the inputs ``x``, the
  targets, also inside lists and tuples) and float32 scalars in their closures, in the
  closures of the functions found there, and in the attributes of the objects found there (a
  bound method's ``self``), a few levels deep. Each is replaced for the duration of the
  re-check and put back afterwards (the very same objects, so bitwise as they were).

What cannot be reached (module globals, a cast inside the loss) is said, with the one-line cast
that would let the re-check see it.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

# How far to follow functions and objects from the loss and the gradient function.
SEARCH_DEPTH = 3
HOW_TO_CAST = (
    "cast it yourself before the check: params = {k: np.asarray(v, np.float64) for k, v in "
    "params.items()} and x = x.astype(np.float64) for the inputs the loss reads"
)


def is_float32(value: Any, depth: int = 0) -> bool:
    """A float32 array or a float32 scalar, or a list or tuple holding one (a few levels
    deep: a layer check's upstream gradients are a list of tuples of arrays): what the
    re-check casts."""
    if isinstance(value, np.ndarray):
        return value.dtype == np.float32
    if isinstance(value, (list, tuple)) and depth < SEARCH_DEPTH:
        return any(is_float32(item, depth + 1) for item in value)
    return isinstance(value, np.float32)


def as_float64(value: Any) -> Any:
    """``value`` with its float32 arrays and scalars cast to float64 (a list or tuple: a new
    one of the same kind, its other items the same objects)."""
    if isinstance(value, np.ndarray):
        return value.astype(np.float64) if value.dtype == np.float32 else value
    if isinstance(value, (list, tuple)):
        items = [as_float64(item) if is_float32(item) else item for item in value]
        if isinstance(value, list):
            return items
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    return np.float64(value)


def widen_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A copy of ``params`` with every float32 value cast to float64, and the names cast."""
    out, cast = {}, []
    for name, value in params.items():
        if is_float32(value):
            out[name] = as_float64(value)
            cast.append(str(name))
        else:
            out[name] = value
    return out, cast


class _Slot:
    """One place a float32 value lives: a closure cell or an object's attribute."""

    def __init__(self, holder: Any, key: str | None, label: str):
        self.holder, self.key, self.label = holder, key, label

    def get(self) -> Any:
        return self.holder.cell_contents if self.key is None else getattr(self.holder, self.key)

    def set(self, value: Any) -> None:
        if self.key is None:
            self.holder.cell_contents = value
        else:
            setattr(self.holder, self.key, value)


def _slots(functions: list[Callable]) -> list[_Slot]:
    """Every closure cell and instance attribute holding a float32 value, reachable from
    ``functions`` within ``SEARCH_DEPTH`` steps."""
    found: list[_Slot] = []
    seen: set[int] = set()

    def visit(obj: Any, depth: int) -> None:
        if id(obj) in seen or depth > SEARCH_DEPTH:
            return
        seen.add(id(obj))
        if isinstance(obj, types.MethodType):
            visit(obj.__func__, depth)
            visit(obj.__self__, depth + 1)
            return
        if isinstance(obj, types.FunctionType):
            names = obj.__code__.co_freevars
            for name, cell in zip(names, obj.__closure__ or (), strict=False):
                try:
                    value = cell.cell_contents
                except ValueError:  # an empty cell
                    continue
                if is_float32(value):
                    found.append(_Slot(cell, None, name))
                else:
                    visit(value, depth + 1)
            return
        if isinstance(obj, (type, types.ModuleType)) or not hasattr(obj, "__dict__"):
            return
        for name, value in list(vars(obj).items()):
            if is_float32(value):
                # (the check's own wrappers, a layer check's upstream gradients: the name alone)
                ours = type(obj).__module__.startswith("gradcheck.")
                found.append(_Slot(obj, name, name if ours else f"{type(obj).__name__}.{name}"))
            elif isinstance(value, (types.FunctionType, types.MethodType)) or hasattr(
                value, "__dict__"
            ):
                visit(value, depth + 1)

    for function in functions:
        visit(function, 0)
    return found


@contextmanager
def widened(*functions: Callable) -> Iterator[list[str]]:
    """Inside the block, the float32 values ``functions`` close over are float64 copies;
    yields their names. Restored (the same objects) on the way out, whatever happens."""
    slots = _slots(list(functions))
    originals = [slot.get() for slot in slots]
    try:
        for slot, value in zip(slots, originals, strict=True):
            slot.set(as_float64(value))
        yield list(dict.fromkeys(slot.label for slot in slots))
    finally:
        for slot, value in zip(slots, originals, strict=True):
            slot.set(value)
