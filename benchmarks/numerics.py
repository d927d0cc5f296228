"""``make bench`` (numerics section): the error model of the full check on hard losses.

For every case of :mod:`nets.hard_numerics` (cancellation inside the loss, losses scaled by
1e-12 and 1e12, parameters ~1e-5 with curvature on that scale, mixed precisions) and for
tanh MLPs of 1e3 and 2e4 parameters: false alarms on the correct gradient (wrong or
uncertain elements), evaluations per parameter, accuracy of the numeric partials against the
exact gradient (relative to the largest partial: max and median), the measured noise, the
stated sensitivity (smallest detectable relative error over partials >= 1% of the largest:
median and worst), and whether a relative error of 1e-6 planted on every partial >= 1% of its
tensor's largest is caught, element by element.

Usage: ``python -m benchmarks.numerics [--out reports/numerics.md] [--quick]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import gradcheck
from nets.hard_numerics import CASES, Case, big_mlp, plant

PLANTED = 1e-6  # the target: this relative error on partials >= 1% of the largest is caught
FRACTION = 0.01
HEADERS = (
    "case",
    "P",
    "false alarms",
    "evals / P",
    "accuracy max",
    "accuracy median",
    "noise",
    "sensitivity median / worst",
    "1e-6 @ >= 1% caught",
)


def measure(case: Case, planted: bool) -> list[str]:
    """One row: the correct gradient's check, and the planted one's (float64 cases)."""
    size = sum(np.size(v) for v in case.params.values())
    report = gradcheck.check(case.loss, case.grad, case.params)
    alarms = sum(report[k].count("wrong") + report[k].count("uncertain") for k in case.params)
    largest = max(np.abs(v).max() for v in case.exact.values())
    errors = np.concatenate(
        [np.abs(report[k].numeric - case.exact[k].reshape(-1)) for k in case.exact]
    )
    first = next(iter(case.params))
    summary = report[first].sensitivity_summary()
    sensitivity = "-" if summary is None else f"{summary[0]:.1e} / {summary[1]:.1e}"
    caught = "-"
    if planted:
        wrong_grad, where = plant(case, PLANTED, FRACTION)
        planted_report = gradcheck.check(case.loss, wrong_grad, case.params)
        hit = np.flatnonzero(planted_report[first].statuses == "wrong")
        extra = np.setdiff1d(hit, where[first]).size + sum(
            planted_report[k].count("wrong") for k in case.params if k != first
        )
        caught = f"{np.isin(where[first], hit).sum()} / {where[first].size}"
        caught += f" (+{extra} others)" if extra else ""
    return [
        case.name,
        str(size),
        str(alarms),
        f"{report.evaluations / size:.3f}",
        f"{errors.max() / largest:.1e}",
        f"{np.median(errors) / largest:.1e}",
        f"{report[first].noise:.1e}",
        sensitivity,
        caught,
    ]


def table(rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports/numerics.md")
    parser.add_argument("--quick", action="store_true", help="skip the 2e4-parameter MLP")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = []
    for build in CASES.values():
        case = build()
        rows.append(measure(case, planted=case.float64))
        print(" | ".join(rows[-1]), flush=True)
    nets = [big_mlp((10, 32, 16, 5))] + ([] if args.quick else [big_mlp()])
    for case in nets:
        rows.append(measure(case, planted=True))
        print(" | ".join(rows[-1]), flush=True)
    lines = [
        "# Numerics",
        "",
        "`python -m benchmarks.numerics` (run by `make bench`). Every case's gradient is "
        "correct (closed forms, extended precision where float64 itself cancels), so every "
        "wrong or uncertain element is a false alarm. Accuracy: |numeric - exact| over the "
        "largest |exact| partial. Noise: the loss's measured standard deviation. Sensitivity: "
        "the smallest relative error each element's check could detect, over partials >= 1% "
        "of the largest (first tensor). Last column: a relative error of 1e-6 planted on every "
        "partial >= 1% of the first tensor's largest, caught / planted (float64 cases only).",
        "",
        *table(rows),
        "",
        f"Total time {time.perf_counter() - started:.0f} s.",
        "",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
