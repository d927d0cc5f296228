"""What :func:`gradcheck.check`'s keyword options may be: each refused with an
:class:`~gradcheck.errors.InputError` that names the option and says what was expected.

A truthy string for a flag (``richardson="no"``), a list where sizes with names are expected
(``dims=[1, 2]``), a count where a sequence is expected (``samples=5``): Python would turn each
into a quiet wrong setting or a TypeError deep inside the check; here it is a refusal up front.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from gradcheck.core.numerics import Tolerance
from gradcheck.errors import InputError
from gradcheck.fast.probe import FastOptions

MODES = ("full", "fast")


def callable_option(name: str, value: Any, signature: str, *, optional: bool = False) -> None:
    """``value`` must be callable as ``signature`` (or ``None`` when ``optional``)."""
    if value is None and optional:
        return
    if not callable(value):
        raise InputError(f"{name} must be callable as {signature}, got {type(value).__name__}")


def flag(name: str, value: Any) -> bool:
    """A bool option: ``True`` or ``False`` only (a string such as ``"no"`` is truthy)."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def tolerance_option(value: Any) -> Tolerance:
    """``None`` (the default rule) or a :class:`Tolerance` (validated when it was built)."""
    if value is None:
        return Tolerance()
    if not isinstance(value, Tolerance):
        raise InputError(f"tolerance must be a gradcheck.Tolerance, got {type(value).__name__}")
    return value


def fast_option(value: Any) -> FastOptions:
    """``None`` (the defaults) or a :class:`FastOptions` (validated when it was built)."""
    if value is None:
        return FastOptions()
    if not isinstance(value, FastOptions):
        raise InputError(f"fast must be a gradcheck.FastOptions, got {type(value).__name__}")
    return value


def mode_option(value: Any) -> str:
    if not isinstance(value, str) or value not in MODES:
        raise InputError(f"mode must be 'full' or 'fast', got {value!r}")
    return value


def seed_option(value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise InputError(f"seed must be a non-negative int, got {value!r}")
    return int(value)


def dims_option(value: Any) -> dict[str, int]:
    """``None`` or a mapping name -> size (a positive int), as ``{"batch": 32}``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(
            f"dims must be a dict of name -> size, such as {{'batch': 32}}, got "
            f"{type(value).__name__} {value!r:.60}"
        )
    out = {}
    for name, size in value.items():
        if not isinstance(name, str):
            raise InputError(f"dims keys must be names (str), got {name!r}")
        if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
            raise InputError(f"dims[{name!r}] must be a positive int (a size), got {size!r}")
        out[name] = int(size)
    return out


def samples_option(value: Any) -> list[Any]:
    """A sequence of per-sample problems (each checked later by ``_as_sample``)."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise InputError(
            "samples must be a list of Problem or (loss, grad) pairs, one per sample, got "
            f"{type(value).__name__} {value!r:.60}"
        )
    return list(value)


def progress_option(value: Callable[[int, int], None] | None) -> None:
    callable_option("progress", value, "progress(done, total)", optional=True)
