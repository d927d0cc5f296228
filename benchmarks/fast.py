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
* **Memory**: tracemalloc's peak of a fast check (one planted element) against the parameters'
  own bytes.

Nets: ``vector-1e6``, one tensor of 10^6 elements (``L = mean(c tanh(w)) + mean(w**2)/2``, one
tensor so the evaluation targets apply as stated), and the tanh MLP of ``benchmarks.problems``
with about 10^6 parameters in 6 tensors. ``--big`` adds the MLP with a 10^7-element first layer
(minutes on a loaded 2-core machine: not in ``make bench``).

Usage: ``python -m benchmarks.fast [--out reports/bench-fast.md] [--big] [--seeds 5] [--nets ...]``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

import gradcheck
from benchmarks.problems import BATCH
from nets.tanh_mlp import TanhMLP, wrong_elements

NETS = {"mlp-1e6": (784, 1024, 256, 10), "mlp-1e7": (784, 12800, 16, 10)}
STRONG = 0.3  # relative error of the elements planted for the evaluation counts


class Vector:
    """``L = mean(c * tanh(w)) + mean(w**2) / 2`` over one long vector (one tensor)."""

    def __init__(self, size: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.c = rng.standard_normal(size)
        self.start = {"w": rng.standard_normal(size) * 0.5}

    def params(self) -> dict[str, Any]:
        return {k: v.copy() for k, v in self.start.items()}

    def loss(self, params):
        w = params["w"]
        return float((self.c @ np.tanh(w) + 0.5 * (w @ w)) / w.size)

    def grad(self, params):
        w = params["w"]
        return {"w": (self.c * (1 - np.tanh(w) ** 2) + w) / w.size}


def forward_time(net) -> float:
    params = net.params()
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        net.loss(params)
        best = min(best, time.perf_counter() - start)
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


def evaluation_rows(name: str, net, tensor: str, forward: float) -> list[str]:
    partials = net.grad(net.params())[tensor].reshape(-1)
    size = sum(np.size(v) for v in net.params().values())
    rows = []
    cases = [("correct", None, 12), ("1 wrong", 1, 20), ("10 wrong", 10, None)]
    for label, k, target in cases:
        grad = net.grad if k is None else planted(net, tensor, at_median(partials, k, 7), STRONG)
        report, wall = run(net, grad)
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
            f"{wall / (report.evaluations * forward):.2f} |"
        )
        print(rows[-1], file=sys.stderr)
    return rows


def memory_row(name: str, net, tensor: str) -> str:
    partials = net.grad(net.params())[tensor].reshape(-1)
    grad = planted(net, tensor, at_median(partials, 1, 3), STRONG)
    params = net.params()
    own = sum(np.asarray(v).nbytes for v in params.values())
    tracemalloc.start()
    try:
        report = gradcheck.check(net.loss, grad, params, mode="fast")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    measured = sum(p.probe.measured for p in report.params if p.probe is not None)
    return f"| {name} | {own / 1e6:.1f} MB | {peak / 1e6:.1f} MB | {peak / own:.2f} | {measured} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports/bench-fast.md")
    parser.add_argument("--big", action="store_true", help="add the 10^7 MLP (slow)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--relative", type=float, default=1e-3)
    parser.add_argument("--nets", nargs="*", help="only these nets (names as in the tables)")
    args = parser.parse_args(argv)
    nets = [
        ("vector-1e6", Vector(10**6), "w"),
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
        lines += sensitivity_rows(name, net, tensor, args.relative, args.seeds)
    lines += [
        "",
        "## Evaluations and wall time",
        "",
        "| net | case | evaluations | target | result | wall / (evaluations x forward) |",
        "|---|---|---|---|---|---|",
    ]
    for name, net, tensor in nets:
        lines += evaluation_rows(name, net, tensor, forward_time(net))
    lines += [
        "",
        "## Memory",
        "",
        "| net | parameters' bytes | fast check peak | ratio | elements measured |",
        "|---|---|---|---|---|",
    ]
    for name, net, tensor in nets:
        lines.append(memory_row(name, net, tensor))
        print(lines[-1], file=sys.stderr)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
