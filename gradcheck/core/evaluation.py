"""Loss evaluations: the :class:`Evaluator`, which owns every call of the user's loss.

It counts the calls, reports progress against a plan, takes the baseline (refusing a
nondeterministic loss or one that changes its parameters), and evaluates the loss at perturbed
points, in this process or on a ``concurrent.futures.Executor``. Nothing else calls the loss
during a check, and nothing else writes the Evaluator's state.

A point is one change ``(name, index, values)``: the flat position(s) ``index`` (an int, a slice
or an index array) of parameter ``name`` take ``values``; everything else keeps its snapshot
bits. The full check's points move one element; fast mode's move a whole tensor, or a subset of
it, along a random direction.

Serially, every point goes through one write-call-restore loop (:meth:`Evaluator._serial`): the
parameter is written, the loss called, and the snapshot bits written back in a ``finally``,
whatever the loss does. On an executor the points go out in waves of batches
(:mod:`gradcheck.core.workers`): the loss and the parameters' snapshots (which nothing ever
writes) are shipped once per worker, and each task carries only its points; for each point the
worker writes the change into its own copy, calls the loss, writes the snapshot bits back, and
returns the raw loss values (:func:`gradcheck.core.workers.run_batch`, the worker's loop). The
points, the loss and so the floating-point operations are those of a serial run, so the results
are bitwise identical, provided the loss reads its parameters from the dict it is handed
(closures and attributes are copies inside a worker process) and is thread-safe for a thread
pool. The first wave of a check is spot-checked: its first point is evaluated here too and the
bits compared, so a loss that breaks this contract is refused instead of silently giving zero
differences. After it, a wave too small to gain from the executor (a pilot's ladder, two
points at a time) is evaluated here, through the serial loop. The caller's parameters are never
written by a worker.
"""

from __future__ import annotations

import math
import pickle
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from itertools import groupby
from numbers import Real
from operator import itemgetter
from typing import Any

import numpy as np

from gradcheck.core.params import (
    Fill,
    Following,
    Param,
    ParamSet,
    element_label,
    read_only_error,
)
from gradcheck.core.workers import (
    MISSING,
    Raised,
    Run,
    Shipment,
    batches,
    cut,
    point,
    run_batch,
    shipment,
    submit_options,
    unpacked_values,
    worker_count,
)
from gradcheck.errors import (
    InputError,
    LossError,
    NondeterministicLossError,
    StateMutationError,
)

Point = tuple[str, Any, Any]  # (name, flat index: int | slice | ndarray, values)
_FLOAT64 = np.dtype(np.float64)
# A wave of points whose loss calls would take less than this longer here than their share on
# the workers (timed at the baseline) is evaluated here, once the executor's first wave has been
# spot-checked: a round trip to a Dask worker (scheduler, worker, result) costs 2-4 ms here, so
# sending such a wave would gain nothing.
LOCAL_SECONDS = 0.005


def describe(point: Point, shape: tuple[int, ...]) -> str:
    """Where a loss call happened, for error messages."""
    name, index, values = point
    if isinstance(index, (int, np.integer)):
        moved = float(np.asarray(values).reshape(-1)[0])
        return f"with {element_label(name, shape, int(index))} moved to {moved!r}"
    count = (
        len(range(*index.indices(int(np.prod(shape))))) if isinstance(index, slice) else len(index)
    )
    return f"with {count} element(s) of {name} moved along a random direction"


Where = str | Callable[[], str]


def _text(where: Where) -> str:
    """The point an evaluation was made at, for messages; built only when one is needed."""
    return where if isinstance(where, str) else where()


def scalar_loss(value: Any, where: Where) -> float:
    """Turn a loss value into a float, or say clearly why it is not one."""
    if isinstance(value, (bool, np.bool_)):
        raise InputError(f"loss returned a bool {_text(where)}; expected a real scalar (float)")
    if isinstance(value, np.ma.MaskedArray) and np.ma.getmaskarray(value).any():
        raise InputError(
            f"loss returned a masked value {_text(where)}; expected a real scalar (a masked "
            "reduction over all-masked data has no value)"
        )
    if isinstance(value, np.ndarray):
        if value.ndim != 0:
            raise InputError(
                f"loss returned an array of shape {value.shape} {_text(where)}; expected a "
                "real scalar: reduce it (sum or mean) or call .item() on a size-1 result"
            )
        value = value[()]
    if isinstance(value, (Real, np.floating, np.integer)) and not isinstance(value, bool):
        return _as_float64(value, where)
    hint = " (does the loss end with a return?)" if value is None else ""
    raise InputError(
        f"loss returned {type(value).__name__} {value!r:.60} {_text(where)}; expected a real "
        f"scalar{hint}"
    )


_FLOAT32 = np.dtype(np.float32)
_FLOAT32_RANGE = (float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max))
# A float64 loss value that is a float32 number with more significant bits than this was
# computed in float32: a float64 computation lands on one with probability 2**-29.
FLOAT32_BITS = 12


def float32_valued(value: float) -> bool:
    """Whether ``value`` is a float32 number with more than ``FLOAT32_BITS`` significant bits:
    the result of a float32 computation handed back as a float64 or a Python float (``float(
    np.sum(x32))``), whose rounding is float32's although its type says float64. A round
    value (0.0, 0.25, 3.0) says nothing and is not counted."""
    if not _FLOAT32_RANGE[0] <= abs(value) <= _FLOAT32_RANGE[1]:  # (NaN too)
        return False
    if float(np.float32(value)) != value:
        return False
    numerator, _ = abs(value).as_integer_ratio()
    while numerator % 2 == 0:
        numerator //= 2
    return numerator.bit_length() > FLOAT32_BITS


def _bits(value: float) -> bytes:
    """The exact bits of a loss value (``==`` cannot tell -0.0 from 0.0)."""
    return np.float64(value).tobytes()


def _as_float64(value: Any, where: Where) -> float:
    """A real number as a float64; one beyond float64's range (a Python int of 10**400, a
    long double of 1e400) is an :class:`InputError`, not an OverflowError or a silent inf."""
    try:
        with np.errstate(over="ignore"):
            number = float(value)
    except OverflowError:
        number = math.inf
    if math.isinf(number) and not (isinstance(value, np.floating) and np.isinf(value)):
        if isinstance(value, int):
            what = f"an integer of {value.bit_length()} bits"  # its repr may be too long to make
        else:
            what = f"{type(value).__name__} {value!r:.40}"
        raise InputError(
            f"loss returned {what} {_text(where)}, beyond float64's range (about 1.8e308); "
            "expected a real scalar a float64 can hold: scale the loss down (a mean instead of "
            "a sum?)"
        )
    return number


class Evaluator:
    """Calls the loss at the current parameters and at perturbed points, and counts the calls.

    ``progress(done, total)`` is called after every evaluation; ``total`` is the plan (see
    :meth:`plan`), grown to ``done`` when more evaluations were needed than planned.
    """

    def __init__(
        self,
        params: ParamSet,
        loss: Callable[[dict[str, Any]], Any],
        progress: Callable[[int, int], None] | None = None,
        executor: Executor | None = None,
    ):
        self.params = params
        self.loss = loss
        self._progress = progress
        self._executor = executor
        self._verified = False  # one executor point re-evaluated here, bits compared
        self._shipment: Shipment | None = None  # the loss and snapshots, packed once
        self._worker_count: int | None = None
        self._call_seconds = math.nan  # the fastest loss call of the baseline
        self._evaluations = 0
        self._spot_checks = 0
        self._planned = 0
        self._f0 = float("nan")
        self._loss_dtype = _FLOAT64
        self._float32_values = False  # float64 values at the start that are float32 numbers

    # -- what callers read ------------------------------------------------------------------
    @property
    def evaluations(self) -> int:
        """Loss calls made so far (the baseline's included)."""
        return self._evaluations

    @property
    def spot_checks(self) -> int:
        """Loss calls made only to spot-check the executor's first wave: a per-tensor cost in
        a report leaves them out, so the report is the same with or without an executor."""
        return self._spot_checks

    @property
    def planned(self) -> int:
        """The evaluations planned so far (for progress)."""
        return self._planned

    @property
    def f0(self) -> float:
        """The loss at the starting parameters (NaN before :meth:`baseline`)."""
        return self._f0

    @property
    def loss_dtype(self) -> np.dtype:
        """The floating dtype the loss returned its values in (float64 for Python floats),
        float32 where its float64 values at the start were float32 numbers
        (:func:`float32_valued`: a loss computed in float32 and returned as a Python float)."""
        return _FLOAT32 if self._float32_values else self._loss_dtype

    def plan(self, more: int) -> None:
        """Add ``more`` evaluations to the plan that progress reports against."""
        self._planned += int(more)

    # -- evaluation -------------------------------------------------------------------------
    def baseline(self, between: Callable[[], Any] | None = None) -> float:
        """Evaluate the loss twice at the start point; refuse nondeterminism and mutation.

        ``between`` (the call of the gradient function) runs between the two evaluations, so
        the second one also proves that it left everything the loss reads as it was: a
        backward that adds into an array the loss closes over (a layer's ``dnext_c += ...``
        into its upstream argument) would otherwise move the loss under the check, and
        finite differences of a changed loss can pass a wrong gradient. When the two values'
        bits differ, a third evaluation tells the two causes apart: it agrees with the second
        when the gradient function changed the loss's inputs once, not when the loss itself
        is nondeterministic.
        """
        where = "at the starting parameters"
        first = self._at_start(where)
        if not np.isfinite(first):
            raise InputError(f"loss is {first} {where}; it must be finite to be differentiated")
        changed = self.params.changed()
        if changed:
            raise StateMutationError(
                f"calling the loss changed parameter(s) {', '.join(map(repr, changed))}; a loss "
                "must not update its parameters (an optimiser step, running statistics?)"
            )
        if between is not None:
            between()
        second = self._at_start(where)
        if _bits(first) != _bits(second):
            if between is not None and _bits(self._at_start(where)) == _bits(second):
                raise StateMutationError(
                    "the gradient function changed what the loss reads (an in-place += into an "
                    f"array the loss closes over?): the loss was {first!r} before grad(params) "
                    f"and {second!r} after it, at the same parameters; the gradient function "
                    "must not write into arrays the loss reads (write into fresh arrays, or "
                    "copy its inputs)"
                )
            raise NondeterministicLossError(
                f"the loss returned {first!r} and then {second!r} at the same parameters; finite "
                "differences need a deterministic loss: fix the seed of dropout or noise, and "
                "do not update running statistics or other state inside the loss"
            )
        self._f0 = first
        self._float32_values = float32_valued(first) and float32_valued(second)
        return first

    def _at_start(self, where: str) -> float:
        """One loss call at the unperturbed parameters."""
        began = time.perf_counter()
        try:
            value = self.loss(self.params.view)
            self._call_seconds = min(time.perf_counter() - began, self._call_seconds)
        except (KeyboardInterrupt, SystemExit, MemoryError, InputError):
            raise  # an InputError comes from an adapter wrapping the user's loss: it says why
        except Exception as exc:
            raise LossError(f"loss raised {type(exc).__name__}: {exc} {where}") from exc
        finally:
            self._count(1)
        return self.accept(value, where)

    def at(self, points: Sequence[Point], *, here: bool = False) -> np.ndarray:
        """Loss values (float64) at ``points``, in order; every call counted. ``here``: in
        this process even when there is an executor."""
        if self._executor is not None and not here and not self._here(len(points)):
            # a point written in place (fast mode's Fill) travels as the values it writes
            runs = [
                (name, [p[1] for p in group], [_values(p[2]) for p in group])
                for name, group in ((n, list(g)) for n, g in groupby(points, key=itemgetter(0)))
            ]
            return self._parallel(runs)
        out = []
        for name, group in groupby(points, key=itemgetter(0)):
            run = list(group)
            indices = [p[1] for p in run]
            restoring = self.params.originals(name, indices)
            out.append(self._serial(name, indices, [p[2] for p in run], restoring))
        return np.concatenate(out) if out else np.empty(0)

    def together(self, changes: Sequence[Point]) -> float:
        """The loss with every change of ``changes`` written at once (one point spanning
        several parameters: fast mode's joint probes move every tensor along one direction);
        one call, counted, evaluated here. Each change is written by its parameter's own
        writer and the snapshot bits written back in a ``finally``, in reverse order, as in
        :meth:`_serial`, whatever the loss does."""
        done, where = self._write_all(changes)
        try:
            raw = self._call(where)
        finally:
            _undo(done)
            self._count(1)
        return self.accept(raw, where)

    def pair(self, ups: Sequence[Point], downs: Sequence[Point]) -> tuple[float, float]:
        """``together(ups)`` and ``together(downs)``, the second point written from the first:
        ``downs`` moves the same parameters at the same indices, and where one of its changes
        is a :class:`gradcheck.core.params.Fill` with a ``follow`` over a slice, it is derived
        from the first point the slice still holds (fast mode's joint probes: two operations
        per element instead of the direction drawn again). The first point is therefore not
        restored in between; the snapshot bits go back in a ``finally``, after the second
        call or at once when the first raised (two calls counted, or the one made)."""
        if [(n, i) for n, i, _ in ups] != [(n, i) for n, i, _ in downs]:
            raise ValueError("a pair's two points must change the same parameters and indices")
        done, where = self._write_all(ups)
        try:
            first = self._call(where)
        except BaseException:
            _undo(done)
            self._count(1)
            raise
        for (write, index, _), (_, _, values) in zip(done, downs, strict=True):
            follows = isinstance(index, slice) and isinstance(values, Fill) and values.follow
            # outside a try, as the first point's writes: an interrupt here is restore_all's
            write(index, Following(values) if follows else values)
        try:
            second = self._call(where)
        finally:
            _undo(done)
            self._count(2)
        return self.accept(first, where), self.accept(second, where)

    def _write_all(self, changes: Sequence[Point]) -> tuple[list[tuple[Any, Any, Any]], str]:
        """Write every change of one point, each by its parameter's own writer, outside any
        ``try`` (an interrupt between writes leaves the restore to restore_all); the
        ``(write, index, snapshot bits)`` to undo them with, and where the point is."""
        done = []
        for name, index, values in changes:
            write = self.params.writer(name, bulk=type(index) is not int)
            [original] = self.params.originals(name, [index])
            write(index, values)
            done.append((write, index, original))
        return done, "at a point moving " + ", ".join(repr(name) for name, _, _ in changes)

    def _call(self, where: str) -> Any:
        """One loss call at the point written; what it raises as :meth:`together` maps it."""
        try:
            return self.loss(self.params.view)
        except (KeyboardInterrupt, SystemExit, MemoryError, InputError, StateMutationError):
            raise
        except Exception as exc:
            raise LossError(f"loss raised {type(exc).__name__}: {exc} {where}") from exc

    def at_elements(self, name: str, indices: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Loss with element ``indices[k]`` of ``name`` set to ``values[k]``, one at a time."""
        if self._executor is not None and not self._here(len(indices)):
            return self._parallel([(name, np.asarray(indices), np.asarray(values))])
        runs = self.params.runs(name, indices) if name in self.params.groups else None
        if runs is not None:
            return np.concatenate([self._run(name, *run, values) for run in runs])
        restoring = self.params.element_originals(name, indices)
        return self._serial(name, indices.tolist(), values.tolist(), restoring)

    def _run(
        self, name: str, member: Param, run: slice, local: np.ndarray, values: np.ndarray
    ) -> np.ndarray:
        """One member's run of a group's points (``values[run]`` at its flat ``local``
        indices), through the member's own writer. The member must still hold its snapshot
        when its run starts, as the group writer checks element by element: a loss that
        wrote into it while another member was perturbed would be hidden by the run's own
        write-restores."""
        if self.params.moved(member):
            members = self.params.groups[name].members
            raise StateMutationError(
                f"parameter(s) {member.name!r} changed while "
                f"{', '.join(repr(p.name) for p in members)} were being perturbed; a loss "
                "must not update its parameters"
            )
        restoring = self.params.element_originals(member.name, local)
        return self._serial(member.name, local.tolist(), values[run].tolist(), restoring)

    def accept(self, value: Any, where: Where) -> float:
        """A loss value as a float; records the loss dtype; clear error for non-scalars."""
        if type(value) is float:  # the common case, on the path taken 2P times
            return value
        if isinstance(value, (np.generic, np.ndarray)) and np.issubdtype(
            np.asarray(value).dtype, np.floating
        ):
            self._loss_dtype = np.asarray(value).dtype
        return scalar_loss(value, where)

    def _count(self, calls: int) -> None:
        before = self._evaluations
        self._evaluations += calls
        if self._progress is not None:
            for done in range(before + 1, self._evaluations + 1):
                self._progress(done, max(self._planned, done))

    def _serial(
        self, name: str, indices: list[Any], values: list[Any], restoring: list[Any]
    ) -> np.ndarray:
        """The one write-call-restore loop: write a point, call the loss, restore the bits.

        Point ``k`` sets the flat position(s) ``indices[k]`` of ``name`` to ``values[k]``, and
        ``restoring[k]`` puts the snapshot back. The loop does nothing per call that the answer
        does not need: the restoring values are fetched once, messages are built only on
        failure, float results skip the generic conversion, so it adds well under a
        microsecond to each loss call. The restore runs in
        ``finally``: an exception, Ctrl-C or ``sys.exit`` from the loss leaves the parameter as
        it was (and :meth:`gradcheck.core.params.ParamSet.restore_all` covers an interrupt that
        lands between a write and its ``try``). One exception: a point that the next one is
        written from (a :class:`gradcheck.core.params.Fill` with a ``follow`` over the same
        slice, fast mode's second point of a pair) is not restored in between, only after
        the next one (or at once if the loss raised).
        """
        view, loss, progress = self.params.view, self.loss, self._progress
        write = self.params.writer(name, bulk=bool(indices) and type(indices[0]) is not int)
        raws: list[Any] = []
        append = raws.append
        done = self._evaluations
        follows = _follows(indices, values)
        try:
            if follows is not None:  # fast mode's pairs: see _follows
                for index, value, original, held, kept in zip(
                    indices, values, restoring, follows[:-1], follows[1:], strict=True
                ):
                    write(index, Following(value) if held else value)
                    try:
                        append(loss(view))
                    except BaseException:
                        write(index, original)
                        raise
                    if not kept:  # kept: the next point is written from this one
                        write(index, original)
                    if progress is not None:
                        progress(done + len(raws), max(self._planned, done + len(raws)))
            else:
                for index, value, original in zip(indices, values, restoring, strict=True):
                    write(index, value)
                    try:
                        append(loss(view))
                    finally:
                        write(index, original)
                    if progress is not None:
                        progress(done + len(raws), max(self._planned, done + len(raws)))
        except (KeyboardInterrupt, SystemExit, MemoryError, StateMutationError):
            raise  # a group's writer found a parameter the loss changed
        except Exception as exc:
            k = len(raws)
            param, index = self.params.member(name, indices[k])  # a group's real element
            frozen = not param.python_scalar and not param.array.flags.writeable
            if isinstance(exc, ValueError) and frozen:  # a write met an array the loss froze
                raise read_only_error(param) from exc
            raise LossError(
                f"loss raised {type(exc).__name__}: {exc} "
                f"{describe((param.name, index, values[k]), param.shape)}"
            ) from exc
        finally:
            # a call that raised was made too; progress was reported for the completed ones
            self._evaluations = done + len(raws) + (len(raws) < len(indices))
        return self._values(name, raws, indices, values)

    def _values(
        self, name: str, raws: list[Any], indices: list[Any], values: list[Any]
    ) -> np.ndarray:
        """Raw loss values as float64, converted one by one only when they are not floats."""
        kinds = set(map(type, raws))
        if kinds <= {float, np.float64}:
            if np.float64 in kinds:
                self._loss_dtype = _FLOAT64
            return np.array(raws, dtype=np.float64)

        def where(index: Any, value: Any) -> Where:
            def text() -> str:
                param, local = self.params.member(name, index)  # a group's real element
                return describe((param.name, local, value), param.shape)

            return text

        return np.array(
            [
                self.accept(raw, where(i, v))
                for raw, i, v in zip(raws, indices, values, strict=True)
            ],
            dtype=np.float64,
        )

    def _here(self, count: int) -> bool:
        """Whether a wave of ``count`` points is evaluated here rather than sent: once the
        executor has been spot-checked, when its loss calls would take less than
        ``LOCAL_SECONDS`` here than their share on the workers would (a pilot's ladder sends
        two points at a time)."""
        if not self._verified:
            return False
        workers = self._workers()
        return count * self._call_seconds * (1 - 1 / workers) < LOCAL_SECONDS

    def _workers(self) -> int:
        if self._worker_count is None:
            assert self._executor is not None
            self._worker_count = worker_count(self._executor)
        return self._worker_count

    def _parallel(self, runs: list[Run]) -> np.ndarray:
        """The loss at every point of ``runs`` on the executor: one wave of batches, about
        ``BATCH_SECONDS`` of loss calls each, all sent before any is awaited. The shipment
        (loss and snapshots) goes with the first wave's tasks and with any task whose worker
        answered :data:`MISSING`; the others carry a key and their points."""
        executor = self._executor
        assert executor is not None
        if self._shipment is None:
            try:
                self._shipment = shipment(executor, self.loss, self.params)
            except (pickle.PicklingError, AttributeError, TypeError) as exc:
                raise _unpicklable(self.loss, exc) from exc
        ship = self._shipment
        count = sum(len(indices) for _, indices, _ in runs)
        spans = batches(count, self._workers(), self._call_seconds)
        threads = ship.objects is not None
        first = not self._verified
        parts = [cut(runs, span) for span in spans]
        futures = [self._submit(ship, part, with_shipment=first or threads) for part in parts]
        raws: list[Any] = []
        for k, part in enumerate(parts):
            got = self._result(futures[k])
            if isinstance(got, str) and got == MISSING:  # a worker that never received it
                got = self._result(self._submit(ship, part, with_shipment=True))
            raws.extend(got)
        kinds = set(map(type, raws))
        if kinds <= {float, np.float64} and len(raws) == count:  # the common case
            self._count(len(raws))
            if np.float64 in kinds:
                self._loss_dtype = _FLOAT64
            out = np.array(raws, dtype=np.float64)
        else:
            out = np.empty(count, dtype=np.float64)
            for k, raw in enumerate(raws):
                self._count(1)
                where = self._describe(point(runs, k))
                if isinstance(raw, Raised):
                    raise LossError(f"loss raised {raw.kind}: {raw.message} {where} (in a worker)")
                out[k] = self.accept(raw, where)
        if first and count:
            spot = point(runs, 0)
            here = self.at([spot], here=True)[0]
            self._spot_checks += 1
            if np.float64(here).tobytes() != np.float64(out[0]).tobytes():
                raise InputError(
                    f"the loss gave {out[0]!r} in a worker and {here!r} here "
                    f"{self._describe(spot)}: with an executor the loss "
                    "must read the parameters from the dict it is handed (in a worker process, "
                    "closures and attributes are copies that never move) and give the same "
                    "bits wherever it runs"
                )
            self._verified = True
        return out

    def _submit(self, ship: Shipment, part: list[Run], *, with_shipment: bool) -> Any:
        """One task: ``part``'s points, with the shipment or only its key."""
        assert self._executor is not None
        sent = (ship.objects or ship.packed) if with_shipment else None
        runs: Any = (
            part if ship.objects is not None else pickle.dumps(part, pickle.HIGHEST_PROTOCOL)
        )
        return self._executor.submit(
            run_batch, ship.key, sent, runs, **submit_options(self._executor)
        )

    def _result(self, future: Any) -> Any:
        try:
            return unpacked_values(future.result())
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            if "pickle" not in str(exc).lower():
                raise
            raise _unpicklable(self.loss, exc) from exc

    def _describe(self, spot: Point) -> str:
        return describe(spot, self.params[spot[0]].shape)


def _undo(done: list[tuple[Any, Any, Any]]) -> None:
    """Write the snapshot bits back over a point's changes, last written first."""
    for write, index, original in reversed(done):
        write(index, original)


def _follows(indices: list[Any], values: list[Any]) -> list[bool] | None:
    """Per point, whether it is written from the point before it (and one more ``False``), or
    ``None`` when no point is: a :class:`Fill` with a ``follow`` over the very slice the point
    before it wrote. That point's restore is skipped, so the slice still holds it; a loss that
    raises still has its point restored, and the last point always is."""
    if not indices or type(indices[0]) is int:  # single elements: the full check's hot loop
        return None
    out = [False]
    for k in range(1, len(indices)):
        index, value = indices[k], values[k]
        out.append(
            isinstance(index, slice)
            and index == indices[k - 1]
            and isinstance(value, Fill)
            and value.follow is not None
        )
    return [*out, False] if any(out) else None


def _values(values: Any) -> Any:
    """What a point writes, as values a worker can write (a :class:`Fill` materialised)."""
    return values.materialise() if isinstance(values, Fill) else values


def check_executor(executor: Any, loss: Any) -> None:
    """Refuse what is not an Executor, and a loss a process pool cannot send to its workers."""
    if not isinstance(executor, Executor):
        raise InputError(
            f"executor must be a concurrent.futures.Executor (a ProcessPoolExecutor, a "
            f"ThreadPoolExecutor, Dask's client.get_executor(), ...), got {type(executor).__name__}"
        )
    if isinstance(executor, ProcessPoolExecutor):
        try:
            pickle.dumps(loss)
        except Exception as exc:
            raise _unpicklable(loss, exc) from exc


def _unpicklable(loss: Any, exc: BaseException) -> InputError:
    return InputError(
        f"the loss {getattr(loss, '__qualname__', type(loss).__name__)!r} cannot be pickled, so "
        f"a process pool cannot send it to its workers ({type(exc).__name__}: {exc}); define it "
        "at module level (not as a lambda or a nested function), or make it a picklable object "
        "(a class instance with __call__), or use a ThreadPoolExecutor"
    )
