"""Known limits of the engine found while testing robustness (docs/engine-findings-robust.md).

Each test states the behaviour the toolkit should have and is a strict xfail: it fails today,
and the day the engine is fixed it passes, so the xfail marker must go (strict turns an
unexpected pass into a failure).
"""

from __future__ import annotations

import numpy as np
import pytest

import gradcheck


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="finding 1: the relative floor "
                   "follows the parameter's dtype, not the gradient's")
def test_float32_gradient_of_float64_parameters_is_not_a_false_alarm():
    params = {"W": np.array([[0.5, -1.0], [1.5, 0.25]])}

    def loss(p):
        return float(np.sum(np.sin(p["W"])))

    report = gradcheck.check(loss, lambda p: {"W": np.cos(p["W"]).astype(np.float32)}, params)
    assert report.passed


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="finding 2: at a smooth minimum "
                   "the one-sided slopes are +-h f'', which the kink test reads as a kink")
@pytest.mark.parametrize(("dtype", "scale", "planted"), [
    (np.float32, 3.0, 0.01),    # L = tanh(3w)**2 / 2 at w = 0, steps of 0.04
    (np.float64, 300.0, 1.0),   # the same shape, sharper, at float64 steps of 7e-4
])
def test_planted_error_at_a_smooth_minimum_fails(dtype, scale, planted):
    def loss(p):
        return dtype(0.5) * np.sum(np.tanh(dtype(scale) * p["w"]) ** 2)

    # true partial 0; a hand-written value of `planted` is wrong by far more than the tolerance
    params = {"w": np.zeros(1, dtype=dtype)}
    report = gradcheck.check(loss, lambda p: {"w": np.array([planted])}, params)
    assert report["w"].statuses.tolist() == ["wrong"]


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="finding 3: a kink inside the "
                   "stencil whose slope jump is under 10% of the slopes is not recognised")
def test_correct_partial_next_to_a_small_kink_is_not_wrong():
    # w[1] has a kink 2e-4 away (the step is 7.4e-4); at w = 0 the partial is exactly 0.35
    def loss(p):
        w = p["w"]
        return float(0.35 * w.sum() + 0.06 * max(w[1] - 2e-4, 0.0) + 0.5 * w[0] ** 2)

    def grad(p):
        return {"w": np.array([0.35 + p["w"][0], 0.35, 0.35, 0.35, 0.35])}

    report = gradcheck.check(loss, grad, {"w": np.zeros(5)})
    assert report["w"].statuses[1] in ("ok", "uncertain")
