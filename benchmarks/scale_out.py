"""Dask speed-up for ``make bench``: the full check of the 5x10^4 MLP, serial and on a
``dask.distributed.LocalCluster`` of 2 single-threaded worker processes.

Bitwise identity is asserted (the JSON reports without their evaluation counts, which differ
by the one spot-check evaluation). The machine's load average is printed with the timings: on
a shared machine other jobs take the cores the workers need.
"""

from __future__ import annotations

import json
import os
import time

import gradcheck
from benchmarks.problems import Problem

WORKERS = 2
TARGET_SPEEDUP = 1.6


def _without_count(report: gradcheck.Report) -> dict:
    data = json.loads(report.to_json())
    data.pop("evaluations")
    return data


def dask_lines(problem: Problem) -> list[str]:
    """Markdown lines: serial and Dask wall (and this process's CPU) times, speed-up, target."""
    try:
        import distributed
    except ImportError:
        return ["- skipped: dask.distributed not installed (pip install -e .[dask])"]
    load_before = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    serial = gradcheck.check(problem.loss, problem.grad, problem.fresh())
    serial_wall, serial_cpu = time.perf_counter() - wall, time.process_time() - cpu
    start = time.perf_counter()
    with (
        distributed.LocalCluster(
            processes=True, n_workers=WORKERS, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        started = time.perf_counter() - start
        wall, cpu = time.perf_counter(), time.process_time()
        parallel = gradcheck.check(
            problem.loss, problem.grad, problem.fresh(), executor=client.get_executor()
        )
        dask_wall, client_cpu = time.perf_counter() - wall, time.process_time() - cpu
    load_after = os.getloadavg()[0]
    identical = _without_count(parallel) == _without_count(serial)
    speedup = serial_wall / dask_wall
    met = "met" if speedup >= TARGET_SPEEDUP and identical else "NOT met"
    return [
        f"- {problem.name}, P = {problem.size:,}: serial {serial_wall:.2f} s wall "
        f"({serial_cpu:.2f} s CPU), {serial.evaluations:,} evaluations",
        f"- Dask LocalCluster ({WORKERS} processes x 1 thread, started in {started:.1f} s, not "
        f"counted): {dask_wall:.2f} s wall, {parallel.evaluations:,} evaluations (one spot "
        f"check), this process's CPU {client_cpu:.2f} s",
        f"- speed-up over serial: {speedup:.2f}x; reports bitwise identical: "
        f"{'yes' if identical else 'NO'}",
        f"- load average (1 min) {load_before:.1f} before, {load_after:.1f} after, on "
        f"{os.cpu_count()} cores",
        f"- target: at least {TARGET_SPEEDUP}x on {WORKERS} workers, reports identical: {met}",
    ]
