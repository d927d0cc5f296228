"""``make bench`` (fast-mode section): what fast mode finds, at what cost, in what memory.

Measured, one run, against issue 14's targets:

* **Sensitivity**: one element of the biggest tensor wrong by ``--relative`` (1e-3) of its own
  value, chosen among the partials at the tensor's median magnitude, in 5 seeds: found with its
  index? and the sensitivity the report states for that tensor (relative to its median partial,
  missed with probability ``FastOptions.miss``).
* **Evaluations**: a correct net, one wrong element, ``k = 10`` wrong elements (each off by 30%
  of its value): loss evaluations, the fast check included, against ``12``, ``20`` and
  ``2 k log2(P/k) + 20``.
* **Wall time**: wall / (evaluations x one forward).
* **Memory**: tracemalloc's peak of a fast check (correct, and one planted element) against the
  parameters' own bytes, split at the return of the gradient function, and the check's own
  share told apart from the loss calls' working memory (see :func:`memory_row`).

Nets: ``vector-1e6``, one tensor of 10^6 elements (``L = mean(c tanh(w)) + mean(w**2)/2``, one
tensor so the evaluation targets apply as stated), and the tanh MLP of ``benchmarks.problems``
with about 10^6 parameters in 6 tensors. ``--big`` adds the MLP with a 10^7-element first layer
(minutes on a loaded 2-core machine: not in ``make bench``).

Usage: ``python -m benchmarks.fast [--out reports/bench-fast.md] [--big] [--seeds 5] [--nets ...]``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

import gradcheck
from benchmarks.problems import BATCH
from nets.tanh_mlp import TanhMLP, wrong_elements
from nets.tanh_vector import TanhVector

NETS = {"mlp-1e6": (784, 1024, 256, 10), "mlp-1e7": (784, 12800, 16, 10)}
WALL_TARGET = 1.5  # the check's time over (evaluations x one forward)
STRONG = 0.3  # relative error of the elements planted for the evaluation counts


def forward_time(net, clock=time.perf_counter) -> float:
    params = net.params()
    best = math.inf
    for _ in range(5):
        start = clock()
        net.loss(params)
        best = min(best, clock() - start)
    return best


def at_median(partials: np.ndarray, k: int, seed: int) -> np.ndarray:
    """``k`` flat indices whose ``|partial|`` is within 1% of the median."""
    magnitude = np.abs(partials)
    median = np.median(magnitude)
    near = np.flatnonzero(np.abs(magnitude - median) <= 0.01 * median)
    return np.sort(np.random.default_rng(seed).choice(near, k, replace=False))


def planted(net, tensor: str, indices: np.ndarray, relative: float):
    g = net.grad(net.params())[tensor].reshape(-1)
    return wrong_elements(net.grad, {tensor: {int(i): relative * abs(g[i]) for i in indices}})


def run(net, grad, seed: int = 0) -> tuple[Any, float]:
    start = time.perf_counter()
    report = gradcheck.check(net.loss, grad, net.params(), mode="fast", seed=seed)
    return report, time.perf_counter() - start


def run_cpu(net, grad, seed: int = 0) -> tuple[Any, float, float, float]:
    """:func:`run` with the process's CPU time too (far less disturbed by a shared machine),
    and the CPU time of the check's own loss calls, one by one (the forwards under the very
    load and caches the check ran in)."""
    spent = [0.0]

    def loss(params):
        start = time.process_time()
        try:
            return net.loss(params)
        finally:
            spent[0] += time.process_time() - start

    cpu = time.process_time()
    start = time.perf_counter()
    report = gradcheck.check(loss, grad, net.params(), mode="fast", seed=seed)
    wall = time.perf_counter() - start
    return report, wall, time.process_time() - cpu, spent[0]


def sensitivity_rows(name: str, net, tensor: str, relative: float, seeds: int) -> list[str]:
    partials = net.grad(net.params())[tensor].reshape(-1)
    out = []
    for seed in range(seeds):
        [index] = at_median(partials, 1, 100 + seed)
        report, wall = run(net, planted(net, tensor, np.array([index]), relative), seed)
        p = report[tensor]
        found = p.probe.proven_wrong == (int(index),)
        stated = p.probe.sensitivity.get("relative")
        out.append(
            f"| {name} | {seed} | {p.label(int(index))} | {'found' if found else 'MISSED'} | "
            f"{report.evaluations} | {p.probe.localization_evaluations} | "
            f"{'-' if stated is None else f'{stated:.2g}'} | {wall:.1f} s |"
        )
        print(out[-1], file=sys.stderr)
    return out


def evaluation_rows(name: str, net, tensor: str, forward: float, forward_cpu: float) -> list[str]:
    partials = net.grad(net.params())[tensor].reshape(-1)
    size = sum(np.size(v) for v in net.params().values())
    rows = []
    cases = [("correct", None, 12), ("1 wrong", 1, 20), ("10 wrong", 10, None)]
    for label, k, target in cases:
        grad = net.grad if k is None else planted(net, tensor, at_median(partials, k, 7), STRONG)
        report, wall, cpu, loss_cpu = run_cpu(net, grad)
        p = report[tensor]
        if k == 10:
            target = round(2 * k * math.log2(size / k) + 20)
        found = (
            "passed"
            if k is None
            else (
                "all found"
                if len(p.probe.proven_wrong) == k
                else f"{len(p.probe.proven_wrong)} found"
            )
        )
        if k is None:
            stated = p.probe.sensitivity
            found += (
                f"; an error above {stated['relative']:.2g} of the median partial is missed "
                f"with probability <= {stated['miss']}"
            )
        rows.append(
            f"| {name} | {label} | {report.evaluations} | {target} "
            f"({'met' if report.evaluations <= target else 'NOT met'}) | {found} | "
            f"{wall / (report.evaluations * forward):.2f} | "
            f"{cpu / (report.evaluations * forward_cpu):.2f} | {cpu / loss_cpu:.2f} | "
            f"{'met' if cpu <= WALL_TARGET * report.evaluations * forward_cpu else 'NOT met'} |"
        )
        print(rows[-1], file=sys.stderr)
    return rows


CHUNK_ALLOWANCE = 4e6  # bytes: fast mode's chunk buffers, whatever the tensor's size


class Segments:
    """tracemalloc's peak split at every loss call: what the check itself holds (its peak
    outside the loss calls, and what it holds when it calls the loss) and the loss's own
    working memory on top of that (the net's activations: the user's, whatever the checker)."""

    def __init__(self) -> None:
        self.check = 0  # the check's own peak, the loss's working memory excluded
        self.loss = 0  # the most one loss call allocated beyond what it was called with
        self.total = 0  # the peak of everything, loss calls included

    def outside(self) -> None:
        """Close a stretch of the check's own work: its peak counts, then a fresh one."""
        self.check = max(self.check, tracemalloc.get_traced_memory()[1])
        self.total = max(self.total, self.check)
        tracemalloc.reset_peak()

    def wrap(self, loss):
        def measured(params):
            self.outside()
            held = tracemalloc.get_traced_memory()[0]
            self.check = max(self.check, held)
            try:
                return loss(params)
            finally:
                peak = tracemalloc.get_traced_memory()[1]
                self.loss = max(self.loss, peak - held)
                self.total = max(self.total, peak)
                tracemalloc.reset_peak()

        return measured


def bare_loss_peak(net) -> int:
    """tracemalloc's peak of one loss call at the start point, outside any check: the net's
    own working memory (its activations)."""
    params = net.params()
    tracemalloc.start()
    try:
        net.loss(params)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def memory_row(name: str, net, tensor: str, case: str, bare: int) -> str:
    """tracemalloc's peak of a fast check, in two phases: until the gradient function returns
    (the snapshot and the user's own backward) and after it (the check's work: every probe,
    localization, the report), against the parameters' bytes. After it, the peak is given with
    the loss calls' own working memory (``all``) and without it (``check``: the peak outside
    the loss calls and what the check holds while one runs, see :class:`Segments`); the target
    is on ``check``: 2x (the snapshot and the gradient) + the chunk buffers. ``bare`` is one
    loss call's peak outside any check, for comparison with the loss's share."""
    partials = net.grad(net.params())[tensor].reshape(-1)
    grad = (
        net.grad if case == "correct" else planted(net, tensor, at_median(partials, 1, 3), STRONG)
    )
    params = net.params()
    own = sum(np.asarray(v).nbytes for v in params.values())
    phase = {}
    segments = Segments()

    def phased(p):
        out = grad(p)
        segments.outside()
        phase["backward"] = segments.check
        segments.check = segments.loss = 0  # the check's work starts here
        return out

    tracemalloc.start()
    try:
        report = gradcheck.check(segments.wrap(net.loss), phased, params, mode="fast")
        segments.outside()
    finally:
        tracemalloc.stop()
    measured = sum(p.probe.measured for p in report.params if p.probe is not None)
    kinked = any(p.probe is not None and p.probe.kinked for p in report.params)
    met = segments.check <= 2 * own + CHUNK_ALLOWANCE
    return (
        f"| {name} | {case}{' (kinked: full check of the tensor)' if kinked else ''} | "
        f"{own / 1e6:.1f} MB | {phase['backward'] / own:.2f} | {segments.check / own:.2f} | "
        f"{segments.loss / 1e6:.1f} MB (bare call {bare / 1e6:.1f} MB) | {measured} | "
        f"{'met' if met else 'NOT met'} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports/bench-fast.md")
    parser.add_argument("--big", action="store_true", help="add the 10^7 MLP (slow)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--relative", type=float, default=1e-3)
    parser.add_argument("--nets", nargs="*", help="only these nets (names as in the tables)")
    parser.add_argument("--skip-sensitivity", action="store_true", help="no sensitivity rows")
    parser.add_argument("--skip-evaluations", action="store_true", help="no evaluation rows")
    args = parser.parse_args(argv)
    nets = [
        ("vector-1e6", TanhVector(10**6), "w"),
        ("mlp-1e6", TanhMLP(sizes=NETS["mlp-1e6"], batch=BATCH, seed=0), "W1"),
    ]
    if args.big:
        nets.append(("mlp-1e7", TanhMLP(sizes=NETS["mlp-1e7"], batch=BATCH, seed=0), "W1"))
    if args.nets:
        nets = [n for n in nets if n[0] in args.nets]
    lines = ["# Fast mode", "", __doc__.split("\n\n")[1], ""]
    lines += [
        "## Sensitivity",
        "",
        f"One element wrong by {args.relative:g} of its own value, at the median magnitude.",
        "",
        "| net | seed | element | result | evaluations | localization | stated relative "
        "sensitivity | wall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, net, tensor in nets:
        if not args.skip_sensitivity:
            lines += sensitivity_rows(name, net, tensor, args.relative, args.seeds)
    lines += [
        "",
        "## Evaluations and wall time",
        "",
        f"Load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores. "
        f"Target: the check's time at most {WALL_TARGET:g}x (evaluations x one forward), judged "
        "on process CPU time (the wall ratio is beside it). The forward is timed apart (best of 5, "
        "before the checks); on a loaded machine it drifts between that moment and the check, "
        "so the check's CPU over its own loss calls' CPU (measured call by call, under the same "
        "load) is beside it: the bookkeeping's share without that drift.",
        "",
        "| net | case | evaluations | target | result | wall / (evaluations x forward) | "
        "CPU / (evaluations x forward CPU) | CPU / its loss calls' CPU | time target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, net, tensor in nets:
        if not args.skip_evaluations:
            forwards = forward_time(net), forward_time(net, time.process_time)
            lines += evaluation_rows(name, net, tensor, *forwards)
    lines += [
        "",
        "## Memory",
        "",
        "Peak over the parameters' bytes until the gradient function returned (snapshot + the "
        "user's backward) and after it: the check's own (its peak between loss calls, and what "
        "it holds while the loss runs) and, beside it, the most one loss call allocated on top "
        "(the net's activations, which any checker's loss call needs; one bare loss call's peak "
        "outside the check for comparison). Target, on the check's own: "
        f"<= 2x + {CHUNK_ALLOWANCE / 1e6:g} MB of chunk buffers.",
        "",
        "| net | case | parameters' bytes | until grad returned | after: the check's own | "
        "a loss call's own | elements measured | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, net, tensor in nets:
        bare = bare_loss_peak(net)
        for case in ("correct", "1 wrong"):
            lines.append(memory_row(name, net, tensor, case, bare))
            print(lines[-1], file=sys.stderr)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
