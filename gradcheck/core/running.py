"""The checks running in this process: the memory each one perturbs, and SIGTERM or SIGHUP.

**One check per array at a time.** A check perturbs the user's arrays in place. Two checks on
the same arrays at once (two threads checking one net) would each see the other's
perturbations in their loss values, and one could take its snapshot while the other had an
element moved, then "restore" that moved value at the end: a parameter left perturbed for good.
So a check claims the memory of its array parameters *before* it takes their snapshots
(:func:`claim`), and a check whose arrays share memory with those of a running check, where
either of the two writes them, is refused with an :class:`~gradcheck.errors.InputError` until
the first one has restored them and released its claim.

**SIGTERM and SIGHUP.** Ctrl-C raises KeyboardInterrupt, which unwinds through the ``finally``
that restores the parameters. SIGTERM (``kill``, ``timeout``, a cancelled CI job) and SIGHUP
(the terminal closed) terminate the process at once by default, with an element still moved: on
disk, for a ``np.memmap`` parameter. While a check runs in the main thread, a handler is
installed for each (and the previous one put back when the last such check ends) that hands the
signal on as it would have gone:

* to a previous Python handler, called as it would have been (an exception it raises, such as
  ``sys.exit``, unwinds through the check's ``finally`` and so restores the parameters; if it
  returns, the check goes on undisturbed);
* under the default action, every running check's parameters are restored bit for bit first,
  then the process is terminated by the same signal (exit status 143 for SIGTERM, 129 for
  SIGHUP, in a shell).

A check in another thread cannot install a handler (Python allows that only in the main thread):
it relies on the main thread's, when one is installed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck.errors import InputError


@dataclass(eq=False)
class Claim:
    """The arrays one running check holds, and how to put them back."""

    names: tuple[str, ...]
    arrays: tuple[np.ndarray, ...]
    thread: str
    main: bool  # claimed in the main thread (which installs the signal handlers)
    pid: int  # a forked worker inherits the claims; only their owner restores them
    restore: Callable[[], None] | None = None  # set once the snapshots exist


_TOO_HARD = getattr(np, "exceptions", np).TooHardError  # np.TooHardError before NumPy 1.25
# reentrant: a ParamSet's finalizer releases its claim, and the garbage collector may run it
# in the middle of claim() or release() on the same thread
_lock = threading.RLock()
_claims: list[Claim] = []
# signals whose default action ends the process with an element moved: SIGTERM (kill, timeout,
# a cancelled CI job) and, where it exists, SIGHUP (the terminal closed)
TERMINATING = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)
_installed: dict[int, Any] = {}  # signal -> its handler before the first main-thread claim
# The signal module's C core where there is one: the same handlers, without signal.py's
# conversion of every handler to and from an enum (half the fixed cost of a small check's
# claim and release, installed and uninstalled each time)
_raw: Any
try:
    import _signal as _raw  # type: ignore[import-not-found, no-redef]
except ImportError:  # pragma: no cover - an interpreter without it
    _raw = signal
_main_claims = 0


def claim(named: Sequence[tuple[str, np.ndarray]]) -> Claim:
    """Claim the memory of ``named`` arrays for a check about to snapshot and perturb them.

    Raises :class:`InputError` when one of them shares memory with an array a running check
    holds and either check may write it (a writable array is perturbed in place; a read-only
    one is only read, and copied).
    """
    global _main_claims
    new = Claim(
        tuple(name for name, _ in named),
        tuple(array for _, array in named),
        threading.current_thread().name,
        threading.current_thread() is threading.main_thread(),
        os.getpid(),
    )
    with _lock:
        for held in list(_claims):
            clash = _clash(new, held)
            if clash is not None:
                mine, theirs = clash
                raise InputError(
                    f"parameter {mine!r} shares memory with parameter {theirs!r} of a check "
                    f"running in thread {held.thread!r}, which perturbs them in place: two "
                    "checks on the same arrays at once would see each other's perturbations "
                    "(and one could snapshot a moved element); run them one after the other, "
                    "or check a copy of the parameters"
                )
        _claims.append(new)
        if new.main:
            if _main_claims == 0:
                _install()
            _main_claims += 1
    return new


def release(held: Claim) -> None:
    """Release ``held`` (its arrays are restored); the last main-thread check puts the previous
    signal handlers back."""
    global _main_claims
    with _lock:
        if held not in _claims:
            return
        _claims.remove(held)
        if held.main:
            _main_claims -= 1
            if _main_claims == 0:
                _uninstall()


def _clash(new: Claim, held: Claim) -> tuple[str, str] | None:
    """Names of the first pair of arrays, one from each claim, that share memory and of which
    at least one is writable."""
    for name, array in zip(new.names, new.arrays, strict=True):
        for other_name, other in zip(held.names, held.arrays, strict=True):
            if not (array.flags.writeable or other.flags.writeable):
                continue
            if _share(array, other):
                return name, other_name
    return None


def _share(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` share a byte; when that is too hard to decide exactly (exotic
    strides), whether their memory bounds overlap (the safe side: a refusal)."""
    try:
        # numpy's stubs type max_work as -1 or 0 only; a positive budget is documented and works
        return bool(np.shares_memory(a, b, max_work=10_000))  # type: ignore[arg-type]
    except _TOO_HARD:
        return bool(np.may_share_memory(a, b))


def _install() -> None:
    for signum in TERMINATING:
        previous = _raw.getsignal(signum)
        if previous in (signal.SIG_IGN, None):  # ignored, or set outside Python: leave it
            continue
        _raw.signal(signum, _on_terminate)
        _installed[signum] = previous


def _uninstall() -> None:
    for signum, previous in list(_installed.items()):
        del _installed[signum]
        if _raw.getsignal(signum) is _on_terminate:  # not replaced meanwhile by the user
            _raw.signal(signum, previous)


def _on_terminate(signum: int, frame: Any) -> None:
    previous = _installed.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    restore_everything()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def restore_everything() -> None:
    """Restore every running check's parameters bit for bit (no lock: this runs in a signal
    handler, which may have interrupted a thread holding it)."""
    for held in list(_claims):
        if held.pid != os.getpid():  # a forked process pool worker: its parent's arrays
            continue
        if held.restore is not None:
            with contextlib.suppress(Exception):  # the others must still be restored
                held.restore()
        for array in held.arrays:
            if isinstance(array, np.memmap):
                with contextlib.suppress(Exception):
                    array.flush()
