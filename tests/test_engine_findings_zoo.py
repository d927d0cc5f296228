"""A known limit of the engine found by the zoo (docs/engine-findings-zoo.md).

Strict xfail: it fails today; the day the engine is fixed it passes and the marker must go.
"""

from __future__ import annotations

import numpy as np
import pytest

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


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="zoo finding: at a kink any "
                   "hand-written value is uncertain, even one outside the one-sided slopes")
def test_a_value_outside_the_one_sided_slopes_at_a_kink_fails():
    # the slopes at x = 0 are 0 and 1; 5 is no derivative of ReLU from either side
    report = gradcheck.check(_relu_sum, lambda p: {"x": np.where(p["x"] > 0, 1.0, 5.0)},
                             {"x": np.array([0.0, 0.7])})
    assert report["x"].statuses.tolist() == ["wrong", "ok"]
