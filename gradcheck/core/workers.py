"""What an executor's workers run, and how a wave of points is cut into their tasks.

A *shipment* is what every worker needs for the whole check: the loss and the parameters'
snapshots (which nothing ever writes during a check). It is packed once per check and sent
once per worker process: a worker keeps the last ``KEPT_SHIPMENTS`` it was sent, by the
content hash of their bytes (:data:`_SHIPPED`), and a task then carries only that key and its
points. A worker that does not hold the key (a process started after the first wave, a
restarted one) answers :data:`MISSING`, and its task is sent again with the shipment. A thread
pool's workers share this process: they are handed the objects themselves, nothing pickled.

A task's points are *runs* ``(name, indices, values)``: consecutive points that move the same
parameter, index ``k`` of ``indices`` taking ``values[k]`` (a full check's wave is one run of
two arrays, so the client does no work per point). :func:`run_batch` is the worker's loop:
write a point into its private copy, call the loss, write the snapshot bits back, the same
operations as the serial loop (:meth:`gradcheck.core.evaluation.Evaluator._serial`), so the
same bits.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import pickle
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np

from gradcheck.core.params import ParamSet

Run = tuple[str, Any, Any]  # (name, indices, values): consecutive points, lists or arrays
Payload = dict[str, tuple[Any, type | None]]

MISSING = "gradcheck: this worker does not hold the shipment"  # a str: pickles by value
KEPT_SHIPMENTS = 2  # per worker process: the running check's, and one before it
# A task holds at most this much loss time (measured at the baseline): long enough that a
# task's fixed cost (Dask: 5-10 ms of CPU in the client's process, its scheduler's included,
# which competes with the workers for the cores) stays under 1% of it. Towards a wave's end
# the tasks shrink (TAPER) down to LAST_BATCH_SECONDS, so the workers finish within that of one
# another: the wave ends with a barrier.
BATCH_SECONDS = 1.0
LAST_BATCH_SECONDS = 0.02
# Each task takes 1 / (TAPER * workers) of the points left (factoring, a variant of guided
# self-scheduling: Hummel, Schonberg and Flynn 1992), between those two sizes.
TAPER = 2
BATCHES_PER_WORKER = 4  # when the loss's cost is unknown: more batches than workers
MIN_BATCH = 32  # points per batch below which fewer batches are sent (cost unknown)

_SHIPPED: dict[str, tuple[Any, Payload]] = {}  # in each worker process: key -> (loss, payload)
# In each worker process: thread CPU seconds spent in run_batch and the points it evaluated (the
# benchmarks compare a worker's cost per evaluation with the serial loop's; a thread pool's
# threads add to it unsynchronised: approximate there).
LOOP_SECONDS = [0.0, 0.0]


class Raised(NamedTuple):
    """What a worker returns in place of a value when the loss raised."""

    kind: str
    message: str


class Shipment(NamedTuple):
    """The loss and the snapshots, as the workers receive them: ``packed`` bytes with their
    content hash ``key``, or (a thread pool) the ``objects`` themselves."""

    key: str
    packed: bytes | None
    objects: tuple[Any, Payload] | None


def shipment(executor: Executor, loss: Any, pset: ParamSet) -> Shipment:
    """Pack the loss and the snapshots once for the whole check.

    Pickled when possible (references to module-level functions, arrays as raw bytes), with
    cloudpickle, which Dask brings, for what pickle refuses (a closure, a lambda): Dask sends
    those too. A loss neither can pack raises here (a process pool's is refused before, by
    :func:`gradcheck.core.evaluation.check_executor`)."""
    contents = (loss, payload(pset))
    if isinstance(executor, ThreadPoolExecutor):
        return Shipment(f"objects-{id(contents)}", None, contents)
    try:
        packed = pickle.dumps(contents, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError):
        try:
            import cloudpickle  # optional: Dask's serializer
        except ImportError:
            raise
        packed = cloudpickle.dumps(contents, protocol=pickle.HIGHEST_PROTOCOL)
    return Shipment(hashlib.blake2b(packed, digest_size=16).hexdigest(), packed, None)


def payload(pset: ParamSet) -> Payload:
    """What a worker rebuilds the parameters from: snapshots, and scalars as the loss sees them."""
    out: Payload = {}
    for name in pset.names:
        p = pset[name]
        if p.python_scalar:
            out[name] = (pset.view[name], pset.scalar_type(name))
        else:
            out[name] = (p.snapshot, None)
    return out


def _held(key: str, sent: bytes | tuple[Any, Payload] | None) -> tuple[Any, Payload] | None:
    """The shipment ``key``: unpacked from ``sent`` (and kept), or the one this process holds."""
    if sent is None:
        return _SHIPPED.get(key)
    if not isinstance(sent, bytes):
        return sent  # a thread pool's: the objects themselves
    contents = _SHIPPED.get(key) or pickle.loads(sent)
    _SHIPPED.pop(key, None)
    _SHIPPED[key] = contents  # the newest last
    while len(_SHIPPED) > KEPT_SHIPMENTS:
        del _SHIPPED[next(iter(_SHIPPED))]
    return contents


def run_batch(key: str, sent: bytes | tuple[Any, Payload] | None, packed_runs: Any) -> Any:
    """Worker: the loss at every point of ``packed_runs`` on a private copy of the parameters.

    ``sent`` is the shipment ``key`` (packed or, from a thread pool, as objects), or ``None``
    when this worker should already hold it: then :data:`MISSING` if it does not.
    ``packed_runs`` is a pickled list of runs (a thread pool's: the list itself). Returns the
    raw loss values in order, stopping at the first point where the loss raised, with a
    :class:`Raised` for it: pickled into one ``bytes`` when the runs came pickled
    (:func:`packed_values`), else the list itself.
    """
    began = time.thread_time()
    held = _held(key, sent)
    if held is None:
        return MISSING
    try:
        out = _evaluate(held, packed_runs)
    finally:
        LOOP_SECONDS[0] += time.thread_time() - began
    return packed_values(out) if isinstance(packed_runs, bytes) else out


def packed_values(values: list[Any]) -> bytes | list[Any]:
    """A task's loss values as the one ``bytes`` object they pickle to (the same objects come
    out of :func:`unpacked_values`), or the list itself when pickle refuses one of them.

    Dask serializes a returned list element by element (a pickle call, a metrics context and a
    frame per value, in the worker and again in the client): measured on the benchmark's MLP,
    that was 5-7 s of CPU in each process for 10^5 floats, more than all the rest of Dask's own
    work, and it competed with the workers for the cores. One ``bytes`` is one frame."""
    try:
        return pickle.dumps(values, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError):
        return values


def unpacked_values(got: Any) -> Any:
    """What a task returned, as :func:`run_batch` computed it (see :func:`packed_values`)."""
    return pickle.loads(got) if isinstance(got, bytes) else got


def _evaluate(held: tuple[Any, Payload], packed_runs: Any) -> list[Any]:
    """:func:`run_batch`'s loop, on the shipment ``held``."""
    loss, shipped = held
    runs: list[Run] = pickle.loads(packed_runs) if isinstance(packed_runs, bytes) else packed_runs
    view: dict[str, Any] = {}
    lines: dict[str, Any] = {}
    for name, (value, scalar) in shipped.items():
        if scalar is None:
            array = np.array(value, copy=True)  # same dtype and memory order as the snapshot
            view[name] = array
            lines[name] = array.reshape(-1) if array.flags.c_contiguous else array.flat
        else:
            view[name] = value
    out: list[Any] = []
    append = out.append
    LOOP_SECONDS[1] += sum(len(indices) for _, indices, _ in runs)
    for name, indices, values in runs:
        value, scalar = shipped[name]
        try:
            if scalar is None:
                line, snapshot = lines[name], value.reshape(-1)
                if isinstance(indices, np.ndarray):  # single elements: Python numbers, as
                    restoring = snapshot[indices].tolist()  # the serial loop writes them
                    indices, values = indices.tolist(), np.asarray(values).tolist()
                else:
                    restoring = [snapshot[i] for i in indices]
                for index, moved, original in zip(indices, values, restoring, strict=True):
                    line[index] = moved
                    try:
                        append(loss(view))
                    finally:
                        line[index] = original
            else:
                values = values.tolist() if isinstance(values, np.ndarray) else values
                for moved in values:
                    view[name] = scalar(np.ravel(moved)[0])
                    try:
                        append(loss(view))
                    finally:
                        view[name] = value
        except Exception as exc:
            append(Raised(type(exc).__name__, str(exc)))
            return out
    return out


def submit_options(executor: Executor) -> dict[str, Any]:
    """Keyword arguments for ``executor.submit`` beyond the task's own: for Dask's executor,
    ``pure=False``. A pure task (Dask's default) is named by a hash of its arguments, computed
    in the client for every task (the first wave's carry the shipment: megabytes to hash); a
    task here is never worth deduplicating (its points are new, and a resend after
    :data:`MISSING` must run). Other executors pass every keyword on to the task: none."""
    module = type(executor).__module__
    return {"pure": False} if module.partition(".")[0] == "distributed" else {}


def worker_count(executor: Executor) -> int:
    """How many tasks the executor runs at once: a pool's ``max_workers``, the threads of a
    Dask client's workers (``client.get_executor()`` keeps its client), else the CPUs here."""
    workers = getattr(executor, "_max_workers", None)
    client = getattr(executor, "_client", None)
    if not workers and client is not None and hasattr(client, "nthreads"):
        try:
            workers = sum(client.nthreads().values())
        except Exception:  # a client that cannot say: fall back to the CPUs
            workers = None
    return int(workers or os.cpu_count() or 2)


def batches(count: int, workers: int, call_seconds: float) -> list[range]:
    """Contiguous batches of ``count`` points for ``workers``, in the order they are sent.

    With the cost of a call known (``call_seconds``): each batch takes ``1 / (TAPER *
    workers)`` of the points left, at most ``BATCH_SECONDS`` and at least
    ``LAST_BATCH_SECONDS`` of loss calls, and at most its share ``count / workers``, so every
    worker has work while there are points for each. Unknown: ``BATCHES_PER_WORKER`` equal
    batches per worker, fewer when they would hold under ``MIN_BATCH`` points."""
    if not (math.isfinite(call_seconds) and call_seconds > 0):
        n = max(1, min(count, workers), min(count // MIN_BATCH, BATCHES_PER_WORKER * workers))
        bounds = np.linspace(0, count, n + 1).round().astype(int)
        return [range(a, b) for a, b in itertools.pairwise(bounds.tolist()) if b > a]
    largest = max(1, int(BATCH_SECONDS / call_seconds))
    smallest = min(largest, max(1, int(LAST_BATCH_SECONDS / call_seconds)))
    share = max(1, math.ceil(count / workers))
    out: list[range] = []
    start = 0
    while start < count:
        left = count - start
        size = min(largest, share, max(smallest, math.ceil(left / (TAPER * workers))), left)
        out.append(range(start, start + size))
        start += size
    return out


def cut(runs: list[Run], span: range) -> list[Run]:
    """The points ``span`` of the concatenated ``runs``, as runs."""
    out: list[Run] = []
    start = 0
    for name, indices, values in runs:
        stop = start + len(indices)
        a, b = max(span.start, start), min(span.stop, stop)
        if a < b:
            out.append((name, indices[a - start : b - start], values[a - start : b - start]))
        start = stop
    return out


def point(runs: list[Run], k: int) -> tuple[str, Any, Any]:
    """Point ``k`` of the concatenated ``runs``, ``(name, index, values)``, for messages and
    for the spot check (array entries as Python numbers, as the serial loop writes them)."""
    for name, indices, values in runs:
        if k < len(indices):
            index, value = indices[k], values[k]
            if isinstance(indices, np.ndarray):
                index, value = int(index), np.asarray(value).tolist()
            return name, index, value
        k -= len(indices)
    raise IndexError(k)
