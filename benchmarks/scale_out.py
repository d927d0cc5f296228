"""Dask speed-up for ``make bench``: the full check of the 5x10^4 MLP, serial and on a
``dask.distributed.LocalCluster`` of 2 single-threaded worker processes.

Bitwise identity is asserted (the JSON reports without their evaluation counts, which differ
by the one spot-check evaluation). Two speed-ups are printed:

* **wall**: serial wall time over Dask wall time, with the machine's load average beside it
  (on a shared machine other jobs take the cores the workers need);
* **CPU bound**: what the wall speed-up would be on idle cores, from CPU times the load
  disturbs far less: serial CPU over the larger of the busiest worker process's CPU (read with
  ``client.run(time.process_time)`` before and after) and all of the run's CPU (workers and
  client) spread over the machine's cores.

A table splits the Dask run's CPU by where it went: the workers' evaluation loops (thread CPU
per evaluation, beside the serial check's), Dask's own work in the workers (the rest of their
processes), the check's own work in the client (its main thread: pilot, spot check, finite
differences, diagnosis, report) and Dask's in the client (its other threads: scheduler, nannies,
client comms), and the cores' time left idle or taken by other jobs.

Both runs use one BLAS thread (Dask's nannies start their workers so, and ``python -m
benchmarks.scale_out`` restarts itself so when the environment does not say, as ``make bench``
does): multithreaded small matmuls on a shared 2-core machine cost 4-25x a single thread's CPU
per call here, which would make the serial run a straw man.

The cluster is started with :data:`CLUSTER_CONFIG` (``--dask-defaults``: Dask's defaults).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import gradcheck
from benchmarks.problems import Problem

WORKERS = 2
TARGET_SPEEDUP = 1.6
BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# Dask's own periodic work, which competes with the workers for the cores (measured idle on
# this machine, 2 workers: 55-58 ms per second in the client's process and 35-38 ms per second
# in each worker's with Dask's defaults, 9-10 and 3-4 ms with these):
CLUSTER_CONFIG: dict[str, Any] = {
    # glibc hands freed heap back to the system whenever 64 KiB are free at its top: this
    # loss's temporaries (32 x 256 float64) are that size, so each call paid page faults
    # (1.2-1.5x the serial cost per evaluation, measured)
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    # the statistical profiler samples the task thread's stack every 10 ms
    "distributed.worker.profile.enabled": False,
    # the event-loop watchdog ticks 50 times a second in every process
    "distributed.admin.tick.interval": "1s",
    # psutil's CPU, memory, disk and network counters, every 0.5 s in every process
    "distributed.admin.system-monitor.interval": "5s",
    # each worker's memory check, every 0.1 s
    "distributed.worker.memory.monitor-interval": "1s",
    # the scheduler rebalances queues every 1 s; the tasks are queued at the scheduler and
    # sized to finish together (gradcheck.core.workers.batches), so there is nothing to steal
    "distributed.scheduler.work-stealing": False,
}
DASK_DEFAULTS = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def _without_count(report: gradcheck.Report) -> dict:
    data = json.loads(report.to_json())
    data.pop("evaluations")
    return data


def _loop_seconds() -> tuple[float, int]:
    """In a worker: thread CPU seconds spent in the evaluation loop so far, and its points."""
    from gradcheck.core import workers

    return workers.LOOP_SECONDS[0], int(workers.LOOP_SECONDS[1])


def _timed(run: Any) -> tuple[Any, float, float, float]:
    """``run()``, its wall time, this process's CPU and its main thread's CPU."""
    wall, cpu, thread = time.perf_counter(), time.process_time(), time.thread_time()
    out = run()
    return (
        out,
        time.perf_counter() - wall,
        time.process_time() - cpu,
        time.thread_time() - thread,
    )


def dask_lines(problem: Problem, config: dict[str, Any] | None = None) -> list[str]:
    """Markdown lines: serial and Dask wall and CPU times, both speed-ups, the CPU by phase, the
    target. ``config``: the cluster's Dask configuration (default :data:`CLUSTER_CONFIG`)."""
    try:
        import dask
        import distributed
    except ImportError:
        return ["- skipped: dask.distributed not installed (pip install -e .[dask])"]
    config = CLUSTER_CONFIG if config is None else config
    load_before = os.getloadavg()[0]
    serial, serial_wall, serial_cpu, _ = _timed(
        lambda: gradcheck.check(problem.loss, problem.grad, problem.fresh())
    )
    start = time.perf_counter()
    with (
        dask.config.set(config),
        distributed.LocalCluster(
            processes=True, n_workers=WORKERS, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        started = time.perf_counter() - start
        workers_before = client.run(time.process_time)
        loops_before = client.run(_loop_seconds)
        executor = client.get_executor()
        parallel, dask_wall, client_cpu, client_main = _timed(
            lambda: gradcheck.check(problem.loss, problem.grad, problem.fresh(), executor=executor)
        )
        workers_after = client.run(time.process_time)
        loops_after = client.run(_loop_seconds)
    load_after = os.getloadavg()[0]
    worker_cpu = [workers_after[w] - workers_before[w] for w in workers_before]
    loops = [
        (loops_after[w][0] - loops_before[w][0], loops_after[w][1] - loops_before[w][1])
        for w in loops_before
    ]
    cores = os.cpu_count() or WORKERS
    identical = _without_count(parallel) == _without_count(serial)
    speedup = serial_wall / dask_wall
    total_cpu = sum(worker_cpu) + client_cpu
    bound = serial_cpu / max(max(worker_cpu), total_cpu / cores)
    loop_bound = serial_cpu / max(seconds for seconds, _ in loops)
    met = "met" if speedup >= TARGET_SPEEDUP and identical else "NOT met"
    bound_met = "met" if bound >= TARGET_SPEEDUP and identical else "NOT met"
    per_eval = serial_cpu / serial.evaluations * 1e3
    in_loops = ", ".join(
        f"{seconds:.2f} s for {points:,} ({seconds / max(points, 1) * 1e3:.3f} ms each)"
        for seconds, points in loops
    )
    loop_cpu = sum(seconds for seconds, _ in loops)
    dask_workers = sum(worker_cpu) - loop_cpu
    points = sum(count for _, count in loops)
    at_serial = serial_cpu / serial.evaluations * points
    rows = [
        ("workers' evaluation loops, at the serial check's CPU per evaluation", at_serial),
        ("workers' evaluation loops, more than that (- : less)", loop_cpu - at_serial),
        ("Dask's own work in the workers", dask_workers),
        ("the check's own work in the client (main thread)", client_main),
        ("Dask's own work in the client (scheduler, nannies, comms)", client_cpu - client_main),
        (f"idle or taken by other jobs ({cores} cores x wall - the above)", None),
    ]
    table = ["", "| Dask run: where the cores' time went | CPU s | share |", "|---|---:|---:|"]
    for label, seconds in rows:
        seconds = cores * dask_wall - total_cpu if seconds is None else seconds
        table.append(f"| {label} | {seconds:.2f} | {seconds / (cores * dask_wall):.0%} |")
    table.append("")
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    tuned = "Dask's defaults" if config is DASK_DEFAULTS else "CLUSTER_CONFIG"
    return [
        f"- {problem.name}, P = {problem.size:,}: serial {serial_wall:.2f} s wall "
        f"({serial_cpu:.2f} s CPU, {per_eval:.3f} ms per evaluation), "
        f"{serial.evaluations:,} evaluations; BLAS threads: {blas}",
        f"- Dask LocalCluster ({WORKERS} processes x 1 thread, {tuned}, started in "
        f"{started:.1f} s, not counted): {dask_wall:.2f} s wall, {parallel.evaluations:,} "
        f"evaluations (one spot check); CPU: this (client) process {client_cpu:.2f} s "
        f"({client_main:.2f} s in its main thread), workers "
        f"{', '.join(f'{c:.2f} s' for c in worker_cpu)}",
        f"- workers' evaluation loops (thread CPU): {in_loops}",
        *table,
        f"- wall speed-up over serial: {speedup:.2f}x, at a load average (1 min) of "
        f"{load_before:.1f} before and {load_after:.1f} after, on {cores} cores",
        f"- CPU bound (serial CPU / max(busiest worker's CPU, all CPU / {cores} cores)): "
        f"{bound:.2f}x; the evaluation loops alone (serial CPU / busiest loop): "
        f"{loop_bound:.2f}x",
        f"- reports bitwise identical: {'yes' if identical else 'NO'}",
        f"- target: at least {TARGET_SPEEDUP}x wall on {WORKERS} workers, reports identical: "
        f"{met} (CPU bound: {bound_met})",
    ]


def _one_blas_thread() -> None:
    """Restart this module with one BLAS thread unless the environment already says: numpy
    reads it once, at import."""
    if all(variable in os.environ for variable in BLAS_THREADS):
        return
    env = {
        **os.environ,
        **{variable: "1" for variable in BLAS_THREADS if variable not in os.environ},
    }
    os.execve(sys.executable, [sys.executable, "-m", "benchmarks.scale_out", *sys.argv[1:]], env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Dask speed-up: the full check serial and on a 2-worker LocalCluster"
    )
    parser.add_argument("--net", default="mlp-5e4", help="the MLP (benchmarks.problems.MLPS)")
    parser.add_argument("--runs", type=int, default=1, help="serial and Dask runs, in turn")
    parser.add_argument(
        "--dask-defaults",
        action="store_true",
        help="start the cluster with Dask's defaults instead of CLUSTER_CONFIG",
    )
    args = parser.parse_args(argv)
    from benchmarks.bench import mlp

    config = DASK_DEFAULTS if args.dask_defaults else CLUSTER_CONFIG
    for run in range(args.runs):
        if args.runs > 1:
            print(f"\n### run {run + 1} of {args.runs}\n")
        print("\n".join(dask_lines(mlp(args.net)[0], config)), flush=True)
    return 0


if __name__ == "__main__":
    _one_blas_thread()
    raise SystemExit(main())
