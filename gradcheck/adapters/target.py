"""Loading a user's net for the command line: ``path/to/file.py:NAME`` or ``package.module:NAME``.

``NAME`` (dotted names reach into classes: ``Net.factory``) is either

* a zero-argument callable (a function, or a class) returning something :func:`as_problem`
  accepts: a ``(loss, grad, params)`` triple, a :class:`~gradcheck.protocol.Problem` (what the
  adapters in :mod:`gradcheck.adapters.attributes` return), or an object of the net protocol with
  ``loss(params)``, ``grad(params)`` and ``params``; or
* such a triple, Problem or object itself; or
* a zero-argument callable that runs a check itself and returns its result, when the caller
  says which type that is (``finished=``): the command line passes
  :class:`~gradcheck.report.model.Report`, so that a function calling ``check_layer``,
  ``check_value_and_grad``, ``check_jacobian`` and the other routes can be a target.

Every way this can go wrong (no such file, no such name, the file fails to import, the factory
raises, it returns the wrong thing) raises :class:`~gradcheck.errors.InputError` with a one-line
message that says where.

The user's folder (the file's folder, or the working directory for ``package.module``) is on
``sys.path`` only while the file is imported and its factory runs; the modules imported from it
then are forgotten again (the loaded functions keep theirs), so that each target of one run sees
its own neighbours: two files that both ``import helpers`` get their own ``helpers``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import random
import site
import sys
import sysconfig
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from gradcheck.errors import InputError
from gradcheck.protocol import Problem, as_problem

PASS_THROUGH = (KeyboardInterrupt, MemoryError)
TARGET_PREFIX = "gradcheck_user_"  # the module name of a FILE.py target starts with this

# What gradcheck imports lazily (to break import cycles, or for speed), and the libraries
# behind it: imported before any user code, so that a tabulate.py or html.py beside the user's
# file cannot stand in for the real one.
OWN_MODULES = (
    "html",
    "json",
    "tabulate",
    "scipy.special",
    "gradcheck.core.differences",
    "gradcheck.diagnosis.nodes",
    "gradcheck.report.text",
    "gradcheck.report.html",
)


def is_target(spec: str) -> bool:
    """Whether ``spec`` names user code (``something:NAME``) rather than a reference net."""
    return ":" in spec


def seed_everything(seed: int) -> None:
    """Seed the global generators user code typically draws its initial weights from."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the legacy global generator is what such code uses


def load_target(spec: str, seed: int | None = 0, finished: type | None = None) -> Any:
    """The :class:`Problem` named by ``spec``; ``seed`` seeds ``random`` and ``numpy.random``
    before the file is imported and again before the factory is called (``None``: no seeding).
    A factory's result of type ``finished`` (a check it ran itself) is returned as it is.
    """
    for name in OWN_MODULES:
        importlib.import_module(name)
    location, _, attr = spec.rpartition(":")
    if not location or not attr:
        raise InputError(f"{spec!r}: expected path/to/file.py:NAME or package.module:NAME")
    if seed is not None:
        seed_everything(seed)
    with _user_folder(_folder(location)):
        return _load(spec, location, attr, seed, finished)


def _load(spec: str, location: str, attr: str, seed: int | None, finished: type | None) -> Any:
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
        if finished is not None and isinstance(made, finished):
            return made
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


def _looks_like_file(location: str) -> bool:
    return location.endswith(".py") or "/" in location or os.sep in location


def _folder(location: str) -> Path:
    """Where the target's neighbours are: the file's folder, or (as ``python -m`` would) the
    working directory for ``package.module``."""
    if _looks_like_file(location):
        return Path(location).resolve().parent
    return Path.cwd()


@contextmanager
def _user_folder(folder: Path) -> Iterator[None]:
    """``folder`` first on ``sys.path`` while the user's code loads; afterwards ``sys.path`` is
    as it was and the modules imported from the user's folders are evicted from
    ``sys.modules``, so that a second target's ``import helpers`` finds its own ``helpers``
    rather than the first target's."""
    saved_path = list(sys.path)
    before = set(sys.modules)
    sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        added = [Path(p or ".").resolve() for p in sys.path if p not in saved_path]
        sys.path[:] = saved_path
        _evict([name for name in set(sys.modules) - before], [folder, *added])


def _evict(names: list[str], folders: list[Path]) -> None:
    """Forget the modules ``names`` that were loaded from ``folders`` (the user's code), but
    never gradcheck itself, the target module, or anything installed (a virtual environment
    inside the user's project holds numpy and torch, which cannot be imported twice)."""
    installed = _installed_roots()
    for name in names:
        if name == "gradcheck" or name.startswith(("gradcheck.", TARGET_PREFIX)):
            continue
        files = _module_files(sys.modules.get(name))
        if files and all(
            any(f.is_relative_to(d) for d in folders)
            and not any(f.is_relative_to(r) for r in installed)
            for f in files
        ):
            sys.modules.pop(name, None)


def _installed_roots() -> list[Path]:
    """The standard library and site-packages folders, of this environment and of the Python
    it was made from (not their prefixes: a project may live under ``/usr/local/src``)."""
    base = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}
    keys = ("stdlib", "platstdlib", "purelib", "platlib")
    roots = {
        p
        for paths in (sysconfig.get_paths(), sysconfig.get_paths(vars=base))
        for k, p in paths.items()
        if k in keys
    }
    roots.update(site.getsitepackages())
    user_site = site.getusersitepackages()
    if isinstance(user_site, str):
        roots.add(user_site)
    return [Path(r).resolve() for r in roots if r]


def _module_files(module: Any) -> list[Path]:
    """The files a module was loaded from (a namespace package: its folders); none if it was
    not loaded from a file (built-in modules)."""
    if module is None:
        return []
    file = getattr(module, "__file__", None)
    if isinstance(file, str):
        return [Path(file).resolve()]
    path = getattr(module, "__path__", None)
    try:
        return [Path(p).resolve() for p in path or ()]
    except TypeError:
        return []


def _import(location: str):
    if _looks_like_file(location):
        return _import_file(Path(location))
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
    # unique per file: a/net.py and b/net.py are two modules
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    name = TARGET_PREFIX + "".join(c if c.isalnum() else "_" for c in path.stem) + "_" + digest
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"{path}: cannot be imported as Python (expected a .py file)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
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


def describe_exit(exc: SystemExit) -> str:
    """``sys.exit(1) (file.py, line 12)``: where the user's code tried to end the process."""
    code = "" if exc.code is None else repr(exc.code)
    return f"sys.exit({code})" + _where(exc)


def _where(exc: BaseException) -> str:
    """`` (file.py, line 12)``: the innermost frame of user code in the traceback, or ``""``."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = str(Path(__file__).parents[1])
    user = [
        f
        for f in frames
        if not f.filename.startswith(own + os.sep) and "importlib" not in f.filename
    ]
    return f" ({user[-1].filename}, line {user[-1].lineno})" if user else ""


def _describe(exc: BaseException) -> str:
    """``ValueError: message (file.py, line 12)``: the exception and where in user code."""
    message = str(exc).strip().splitlines()
    text = type(exc).__name__ + (f": {message[0]}" if message else "")
    return text + _where(exc)
