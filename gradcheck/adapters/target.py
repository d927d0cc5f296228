"""Loading a user's net for the command line: ``path/to/file.py:NAME`` or ``package.module:NAME``.

``NAME`` (dotted names reach into classes: ``Net.factory``) is either

* a zero-argument callable (a function, or a class) returning something :func:`as_problem`
  accepts: a ``(loss, grad, params)`` triple, a :class:`~gradcheck.protocol.Problem` (what the
  adapters in :mod:`gradcheck.adapters.attributes` return), or an object of the net protocol with
  ``loss(params)``, ``grad(params)`` and ``params``; or
* such a triple, Problem or object itself.

Every way this can go wrong (no such file, no such name, the file fails to import, the factory
raises, it returns the wrong thing) raises :class:`~gradcheck.errors.InputError` with a one-line
message that says where.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import random
import sys
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from gradcheck.errors import InputError
from gradcheck.protocol import Problem, as_problem

PASS_THROUGH = (KeyboardInterrupt, MemoryError)


def is_target(spec: str) -> bool:
    """Whether ``spec`` names user code (``something:NAME``) rather than a reference net."""
    return ":" in spec


def seed_everything(seed: int) -> None:
    """Seed the global generators user code typically draws its initial weights from."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the legacy global generator is what such code uses


def load_target(spec: str, seed: int | None = 0) -> Problem:
    """The :class:`Problem` named by ``spec``; ``seed`` seeds ``random`` and ``numpy.random``
    before the file is imported and again before the factory is called (``None``: no seeding).
    """
    location, _, attr = spec.rpartition(":")
    if not location or not attr:
        raise InputError(f"{spec!r}: expected path/to/file.py:NAME or package.module:NAME")
    if seed is not None:
        seed_everything(seed)
    module = _import(location)
    obj = _lookup(module, attr, location)
    problem = _direct(obj)
    if problem is None:
        if not callable(obj):
            raise InputError(
                f"{spec}: {attr} is a {type(obj).__name__}; expected a zero-argument factory "
                "returning (loss, grad, params), or a net with loss, grad and params"
            )
        if seed is not None:
            seed_everything(seed)
        try:
            made = obj()
        except PASS_THROUGH:
            raise
        except BaseException as exc:
            raise InputError(f"{spec}: calling {attr}() raised {_describe(exc)}") from exc
        try:
            problem = as_problem(made, f"{attr}()")
        except InputError as exc:
            raise InputError(f"{spec}: {exc}") from None
    return replace(problem, name=problem.name or attr)


def _direct(obj: Any) -> Problem | None:
    """``obj`` as a Problem if it already is one (not a class or factory to call)."""
    if isinstance(obj, type):
        return None
    try:
        return as_problem(obj)
    except InputError:
        return None


def _import(location: str):
    looks_like_file = location.endswith(".py") or "/" in location or os.sep in location
    if looks_like_file:
        return _import_file(Path(location))
    sys.path.insert(0, os.getcwd())  # as `python -m` would: modules next to the user
    try:
        return importlib.import_module(location)
    except ModuleNotFoundError as exc:
        if exc.name and location.startswith(exc.name):
            raise InputError(
                f"no module named {location!r} (run from its folder, install it, or give "
                "a file path ending in .py)"
            ) from exc
        raise InputError(f"importing {location} raised {_describe(exc)}") from exc
    except PASS_THROUGH:
        raise
    except BaseException as exc:
        raise InputError(f"importing {location} raised {_describe(exc)}") from exc


def _import_file(path: Path):
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a file (expected a .py file)")
    name = "gradcheck_user_" + "".join(c if c.isalnum() else "_" for c in path.stem)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"{path}: cannot be imported as Python (expected a .py file)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    sys.path.insert(0, str(path.resolve().parent))  # so it can import its neighbours
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        raise InputError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from exc
    except PASS_THROUGH:
        raise
    except BaseException as exc:
        sys.modules.pop(name, None)
        raise InputError(f"importing {path} raised {_describe(exc)}") from exc
    return module


def _lookup(module: Any, attr: str, location: str) -> Any:
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            defined = sorted(
                k
                for k, v in vars(module).items()
                if not k.startswith("_") and getattr(v, "__module__", None) == module.__name__
            )
            known = f"; it defines {', '.join(defined[:12])}" if defined else ""
            raise InputError(f"{location} has no {attr!r}{known}") from None
    return obj


def _describe(exc: BaseException) -> str:
    """``ValueError: message (file.py, line 12)``: the exception and where in user code."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = str(Path(__file__).parent)
    user = [f for f in frames if not f.filename.startswith(own) and "importlib" not in f.filename]
    where = f" ({user[-1].filename}, line {user[-1].lineno})" if user else ""
    message = str(exc).strip().splitlines()
    text = type(exc).__name__ + (f": {message[0]}" if message else "")
    return text + where
