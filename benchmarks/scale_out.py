"""Dask speed-up for ``make bench``: the full check of the 5x10^4 MLP, serial and on a
``dask.distributed.LocalCluster`` of 2 single-threaded worker processes.

Bitwise identity is asserted (the JSON reports without their evaluation counts, which differ
by the one spot-check evaluation). Two speed-ups are printed:

* **wall**: serial wall time over Dask wall time, with the machine's load average beside it
  (on a shared machine other jobs take the cores the workers need);
* **CPU bound**: serial CPU time over the busiest worker process's CPU time (read with
  ``client.run(time.process_time)`` before and after): the wall speed-up the same work would
  reach on idle cores, if the client's own CPU (printed too) ran beside it. Far less disturbed
  by the load than the wall ratio. Each worker's time inside the evaluation loop is printed
  per evaluation beside the serial check's CPU per evaluation: they should match.

The workers are started without Dask's default ``MALLOC_TRIM_THRESHOLD_=65536``
(``distributed.nanny.pre-spawn-environ``): it makes glibc hand freed heap back to the system
whenever 64 KiB are free at its top, so a loss whose temporaries are tens of KiB (this MLP's:
32 x 256 float64) pays page faults on every call, 1.2-1.5x its serial cost measured here.
"""

from __future__ import annotations

import json
import os
import time

import gradcheck
from benchmarks.problems import Problem

WORKERS = 2
TARGET_SPEEDUP = 1.6
WORKER_ENVIRON = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def _without_count(report: gradcheck.Report) -> dict:
    data = json.loads(report.to_json())
    data.pop("evaluations")
    return data


def _loop_seconds() -> tuple[float, int]:
    """In a worker: thread CPU seconds spent in the evaluation loop so far, and its points."""
    from gradcheck.core import workers

    return workers.LOOP_SECONDS[0], int(workers.LOOP_SECONDS[1])


def dask_lines(problem: Problem) -> list[str]:
    """Markdown lines: serial and Dask wall and CPU times, both speed-ups, the target."""
    try:
        import dask
        import distributed
    except ImportError:
        return ["- skipped: dask.distributed not installed (pip install -e .[dask])"]
    load_before = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    serial = gradcheck.check(problem.loss, problem.grad, problem.fresh())
    serial_wall, serial_cpu = time.perf_counter() - wall, time.process_time() - cpu
    start = time.perf_counter()
    with (
        dask.config.set(WORKER_ENVIRON),
        distributed.LocalCluster(
            processes=True, n_workers=WORKERS, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        started = time.perf_counter() - start
        workers_before = client.run(time.process_time)
        loops_before = client.run(_loop_seconds)
        wall, cpu = time.perf_counter(), time.process_time()
        parallel = gradcheck.check(
            problem.loss, problem.grad, problem.fresh(), executor=client.get_executor()
        )
        dask_wall, client_cpu = time.perf_counter() - wall, time.process_time() - cpu
        workers_after = client.run(time.process_time)
        loops_after = client.run(_loop_seconds)
    load_after = os.getloadavg()[0]
    worker_cpu = {w: workers_after[w] - workers_before[w] for w in workers_before}
    loops = {
        w: (loops_after[w][0] - loops_before[w][0], loops_after[w][1] - loops_before[w][1])
        for w in loops_before
    }
    identical = _without_count(parallel) == _without_count(serial)
    speedup = serial_wall / dask_wall
    bound = serial_cpu / max(worker_cpu.values())
    met = "met" if speedup >= TARGET_SPEEDUP and identical else "NOT met"
    loop_bound = serial_cpu / max(seconds for seconds, _ in loops.values())
    bound_met = "met" if bound >= TARGET_SPEEDUP and identical else "NOT met"
    per_eval = serial_cpu / serial.evaluations * 1e3
    in_loops = ", ".join(
        f"{seconds:.2f} s for {points:,} ({seconds / max(points, 1) * 1e3:.3f} ms each)"
        for seconds, points in loops.values()
    )
    return [
        f"- {problem.name}, P = {problem.size:,}: serial {serial_wall:.2f} s wall "
        f"({serial_cpu:.2f} s CPU, {per_eval:.3f} ms per evaluation), "
        f"{serial.evaluations:,} evaluations",
        f"- Dask LocalCluster ({WORKERS} processes x 1 thread, MALLOC_TRIM_THRESHOLD_ unset, "
        f"started in {started:.1f} s, not counted): {dask_wall:.2f} s wall, "
        f"{parallel.evaluations:,} evaluations (one spot check); CPU: this (client) process "
        f"{client_cpu:.2f} s, workers {', '.join(f'{c:.2f} s' for c in worker_cpu.values())}",
        f"- workers' evaluation loops (thread CPU): {in_loops}",
        f"- wall speed-up over serial: {speedup:.2f}x, at a load average (1 min) of "
        f"{load_before:.1f} before and {load_after:.1f} after, on {os.cpu_count()} cores",
        f"- CPU bound (serial CPU / busiest worker's CPU): {bound:.2f}x, with the client's "
        f"{client_cpu:.2f} s beside the workers (Dask's own work in the workers and the client "
        "grows with the wall time, so a loaded machine lowers this bound too); without Dask's "
        f"own work in the workers (serial CPU / busiest evaluation loop): {loop_bound:.2f}x",
        f"- reports bitwise identical: {'yes' if identical else 'NO'}",
        f"- target: at least {TARGET_SPEEDUP}x wall on {WORKERS} workers, reports identical: "
        f"{met} (CPU bound: {bound_met})",
    ]


if __name__ == "__main__":
    from benchmarks.bench import mlp

    print("\n".join(dask_lines(mlp("mlp-5e4")[0])))
