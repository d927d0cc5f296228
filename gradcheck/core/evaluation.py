"""Loss evaluations at perturbed points, in this process or on a ``concurrent.futures.Executor``.

A point is one change ``(name, index, values)``: the flat position(s) ``index`` (an int, a slice
or an index array) of parameter ``name`` take ``values``; everything else keeps its snapshot
bits. The full check's points move one element
(:meth:`gradcheck.core.differences.Engine.evaluate_at`);
fast mode's move a whole tensor, or a subset of it, along a random direction.

On an executor the points go out in batches. A worker receives a copy of the parameters (their
snapshots, which nothing ever writes) and a batch of points; for each point it writes the change
into its own copy, calls the loss, writes the snapshot bits back, and returns the raw loss
values. The points, the loss and so the floating-point operations are those of a serial run, so
the results are bitwise identical, provided the loss reads its parameters from the dict it is
handed (closures and attributes are copies inside a worker process) and is thread-safe for a
thread pool. The first batch of a check is spot-checked: its first point is evaluated here too
and the bits compared, so a loss that breaks this contract is refused instead of silently
giving zero differences. The caller's parameters are never written by a worker.
"""

from __future__ import annotations

import itertools
import os
import pickle
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from gradcheck.errors import InputError, LossError

if TYPE_CHECKING:
    from gradcheck.core.differences import Engine

Point = tuple[str, Any, Any]  # (name, flat index: int | slice | ndarray, values)
BATCHES_PER_WORKER = 4  # more batches than workers keeps them all busy to the end


class _Raised(NamedTuple):
    """What a worker returns in place of a value when the loss raised."""

    kind: str
    message: str


def describe(point: Point, shape: tuple[int, ...]) -> str:
    """Where a loss call happened, for error messages."""
    name, index, values = point
    if isinstance(index, (int, np.integer)):
        at = ", ".join(str(i) for i in np.unravel_index(int(index), shape)) if shape else ""
        return f"with {name}[{at}] moved to {float(np.asarray(values).reshape(-1)[0])!r}"
    count = (
        len(range(*index.indices(int(np.prod(shape))))) if isinstance(index, slice) else len(index)
    )
    return f"with {count} element(s) of {name} moved along a random direction"


def evaluate_changes(engine: Engine, points: Sequence[Point]) -> np.ndarray:
    """Loss values (float64) at ``points``; counts every call in ``engine.evaluations``."""
    if engine.executor is None:
        return _serial(engine, points)
    return _parallel(engine, points)


def _serial(engine: Engine, points: Sequence[Point]) -> np.ndarray:
    pset = engine.params
    out = np.empty(len(points), dtype=np.float64)
    for k, point in enumerate(points):
        name, index, values = point
        pset.set_many(name, index, values)
        try:
            out[k] = engine._call(describe(point, pset[name].shape))
        finally:
            pset.reset_many(name, index)
    return out


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


def _payload(engine: Engine) -> dict[str, tuple[Any, type | None]]:
    """What a worker rebuilds the parameters from: snapshots, and scalars as the loss sees them."""
    pset = engine.params
    out: dict[str, tuple[Any, type | None]] = {}
    for name in pset.names:
        p = pset[name]
        if p.python_scalar:
            out[name] = (pset.view[name], pset.scalar_type(name))
        else:
            out[name] = (p.snapshot, None)
    return out


def _run_batch(
    loss: Any, payload: dict[str, tuple[Any, type | None]], points: list[Point]
) -> list[Any]:
    """Worker: evaluate the loss at each point on a private copy of the parameters.

    Stops at the first point where the loss raises and returns a :class:`_Raised` for it.
    """
    view: dict[str, Any] = {}
    flats: dict[str, Any] = {}
    originals: dict[str, np.ndarray] = {}
    for name, (value, scalar) in payload.items():
        if scalar is None:
            array = np.array(value, copy=True)  # same dtype and memory order as the snapshot
            view[name] = array
            flats[name] = array.reshape(-1) if array.flags.c_contiguous else array.flat
            originals[name] = value.reshape(-1)
        else:
            view[name] = value
    out: list[Any] = []
    for name, index, values in points:
        value, scalar = payload[name]
        if scalar is None:
            flats[name][index] = values
        else:
            view[name] = scalar(np.asarray(values).reshape(-1)[0])
        try:
            out.append(loss(view))
        except Exception as exc:
            out.append(_Raised(type(exc).__name__, str(exc)))
            return out
        finally:
            if scalar is None:
                flats[name][index] = originals[name][index]
            else:
                view[name] = value
    return out


def _batches(executor: Executor, count: int) -> list[range]:
    workers = getattr(executor, "_max_workers", None) or os.cpu_count() or 2
    n = max(1, min(count, BATCHES_PER_WORKER * int(workers)))
    bounds = np.linspace(0, count, n + 1).round().astype(int)
    return [range(a, b) for a, b in itertools.pairwise(bounds.tolist()) if b > a]


def _parallel(engine: Engine, points: Sequence[Point]) -> np.ndarray:
    executor = engine.executor
    payload = _payload(engine)
    futures = [
        executor.submit(_run_batch, engine.loss, payload, [points[i] for i in batch])
        for batch in _batches(executor, len(points))
    ]
    raws: list[Any] = []
    for future in futures:
        try:
            raws.extend(future.result())
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            if "pickle" not in str(exc).lower():
                raise
            raise _unpicklable(engine.loss, exc) from exc
    out = np.empty(len(points), dtype=np.float64)
    shapes = {name: engine.params[name].shape for name in engine.params.names}
    for k, raw in enumerate(raws):
        engine.evaluations += 1
        if engine.progress is not None:
            engine.progress(engine.evaluations, max(engine.planned, engine.evaluations))
        where = describe(points[k], shapes[points[k][0]])
        if isinstance(raw, _Raised):
            raise LossError(f"loss raised {raw.kind}: {raw.message} {where} (in a worker)")
        out[k] = engine.accept(raw, where)
    if not engine.verified_executor and len(points):
        here = _serial(engine, points[:1])[0]
        if np.float64(here).tobytes() != np.float64(out[0]).tobytes():
            raise InputError(
                f"the loss gave {out[0]!r} in a worker and {here!r} here "
                f"{describe(points[0], shapes[points[0][0]])}: with an executor the loss must "
                "read the parameters from the dict it is handed (in a worker process, closures "
                "and attributes are copies that never move) and give the same bits wherever it "
                "runs"
            )
        engine.verified_executor = True
    return out
