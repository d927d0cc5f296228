"""Large parameters: memory grows linearly with the parameter count, never as P x P.

The loss touches three elements, so it costs O(1) and the test measures the checker alone:
every element is still perturbed twice (its partial is 0 and the gradient says so). At
P = 50,000 a P x P float64 matrix would be 20 GB; the bound below is 64 * 8 * P = 26 MB.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
from paramsnap import assert_unchanged, snapshot

import gradcheck

# bytes per parameter the whole check may hold at its peak: its per-element work arrays (steps,
# loss values, partials, errors, statuses) and the report with its diagnosis, about 250 bytes
# measured at P = 50,000; a constant, where P x P would be 8 P bytes per element
BYTES_PER_PARAM = 64 * 8


def _problem(size: int):
    w = np.linspace(-1.0, 1.0, size)
    middle = size // 2

    def loss(p):
        v = p["w"]
        return float(v[0] * v[0] + 3.0 * v[middle] - v[-1] ** 3)

    def grad(p):
        v = p["w"]
        g = np.zeros(size)
        g[0], g[middle], g[-1] = 2.0 * v[0], 3.0, -3.0 * v[-1] ** 2
        return {"w": g}

    return loss, grad, {"w": w}


def _peak(size: int) -> tuple[int, gradcheck.Report]:
    loss, grad, params = _problem(size)
    snap = snapshot(params)
    tracemalloc.start()
    try:
        report = gradcheck.check(loss, grad, params)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_unchanged(snap)
    return peak, report


def test_memory_is_linear_in_the_parameter_count():
    small, big = 12_500, 50_000
    peak_small, _ = _peak(small)
    peak_big, report = _peak(big)
    assert report.passed
    assert report.evaluations >= 2 * big
    assert peak_big < BYTES_PER_PARAM * big
    # four times the parameters, at most about four times the memory (P x P would be 16x)
    assert peak_big < 5 * peak_small
