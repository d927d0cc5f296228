"""Regression tests for the engine limit the zoo found (docs/engine-findings-zoo.md), now fixed:
at a kink, only values between the one-sided slopes pass (as uncertain)."""

from __future__ import annotations

import numpy as np

import gradcheck


def _relu_sum(p):
    return float(np.maximum(p["x"], 0.0).sum())


def test_a_subgradient_at_a_kink_passes():
    # 0 (the usual mask x > 0) and 1 (x >= 0) are both slopes of ReLU at 0: uncertain, passing
    for at_zero in (0.0, 1.0):
        report = gradcheck.check(
            _relu_sum, lambda p, v=at_zero: {"x": np.where(p["x"] > 0, 1.0, v)},
            {"x": np.array([0.0, 0.7])})
        assert report.passed
        assert report["x"].statuses.tolist() == ["uncertain", "ok"]


def test_a_value_outside_the_one_sided_slopes_at_a_kink_fails():
    # the slopes at x = 0 are 0 and 1; 5 is no derivative of ReLU from either side
    report = gradcheck.check(_relu_sum, lambda p: {"x": np.where(p["x"] > 0, 1.0, 5.0)},
                             {"x": np.array([0.0, 0.7])})
    assert report["x"].statuses.tolist() == ["wrong", "ok"]
