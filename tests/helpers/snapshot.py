"""Bit-level snapshots of a user's parameters, for tests that promise "nothing is ever lost".

``snapshot(params, *watched)`` records, for the user's dict: its keys in order, the identity of
every value, and the exact bits (dtype, shape, bytes, writeable flag) of every value, plus any
extra arrays to watch (the base of a view, a flat parameter vector). ``assert_unchanged`` then
fails on any difference, including a flipped sign of zero or a changed NaN payload, which
``==`` and ``np.array_equal`` cannot see.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Bits:
    """The exact state of one value."""

    kind: str
    dtype: str | None
    shape: tuple[int, ...] | None
    data: bytes
    writeable: bool | None


def bits(value: Any) -> Bits:
    """Everything that identifies ``value`` bit for bit."""
    if isinstance(value, np.ndarray):
        # tobytes is C order whatever the layout, so views and Fortran arrays compare fairly
        return Bits(
            "ndarray", value.dtype.str, value.shape, value.tobytes(), bool(value.flags.writeable)
        )
    if isinstance(value, np.generic):
        return Bits(type(value).__name__, value.dtype.str, (), value.tobytes(), None)
    if isinstance(value, float):
        return Bits("float", None, None, struct.pack("<d", value), None)
    return Bits(type(value).__name__, None, None, repr(value).encode(), None)


@dataclass(frozen=True)
class Snapshot:
    """What the user's dict (and any watched arrays) looked like before a check."""

    params: Any
    keys: tuple[Any, ...] | None
    ids: tuple[int, ...] | None
    values: tuple[Bits, ...] | None
    watched: tuple[tuple[np.ndarray, Bits], ...]


def snapshot(params: Any, *watched: np.ndarray) -> Snapshot:
    """Record ``params`` (a dict, or anything else a test passes as params) and ``watched``."""
    if isinstance(params, Mapping):
        keys = tuple(params)
        return Snapshot(
            params,
            keys,
            tuple(id(params[k]) for k in keys),
            tuple(bits(params[k]) for k in keys),
            tuple((w, bits(w)) for w in watched),
        )
    return Snapshot(params, None, None, None, tuple((w, bits(w)) for w in watched))


def assert_unchanged(snap: Snapshot) -> None:
    """Fail unless every key, value object and bit is what :func:`snapshot` recorded."""
    __tracebackhide__ = True
    if snap.keys is not None:
        params = snap.params
        assert tuple(params) == snap.keys, f"keys changed: {snap.keys} -> {tuple(params)}"
        for key, ident, before in zip(snap.keys, snap.ids, snap.values, strict=True):
            assert id(params[key]) == ident, f"params[{key!r}] was rebound to another object"
            after = bits(params[key])
            assert after == before, f"params[{key!r}] changed: {before} -> {after}"
    for i, (array, before) in enumerate(snap.watched):
        after = bits(array)
        assert after == before, f"watched array {i} changed: {before} -> {after}"
