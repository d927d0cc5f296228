"""The stencil arithmetic on functions whose derivatives are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck.core.stencil import analyse

H = 1e-3
LEVELS = (0.25, 0.5, 1.0)


def central(f, x=0.0, levels=LEVELS):
    """Loss values at x +- m H for each level, with exactly representable steps."""
    return {
        m: (
            np.array([f(x + m * H)]),
            np.array([f(x - m * H)]),
            np.array([m * H]),
            np.array([m * H]),
        )
        for m in levels
    }


def run(f, x=0.0, levels=LEVELS):
    """The analysis with the engine's noise model: 32 ulps of |f| (at least a tiny floor)."""
    noise = 32 * np.finfo(float).eps * max(abs(f(x)), 1e-300)
    return analyse(f(x), central(f, x, levels), np.array([noise]))


def test_smooth_function_gives_the_derivative_with_an_honest_error_bar():
    out = run(lambda t: np.exp(2 * t) + t**3, x=0.3)
    exact = 2 * np.exp(0.6) + 3 * 0.09
    assert not out["kink"][0]
    assert abs(out["numeric"][0] - exact) <= out["error"][0]
    assert out["error"][0] < 1e-8


@pytest.mark.parametrize("offset", [0.0, 0.1 * H, 0.2 * H])
def test_kink_at_or_near_the_point_is_flagged(offset):
    out = run(lambda t: max(t - offset, 0.0) + 0.5 * t**2)
    assert out["kink"][0]
    assert out["backward"][0] < out["forward"][0]


def test_smooth_minimum_is_not_a_kink():
    out = run(lambda t: np.tanh(3 * t) ** 2 / 2)
    assert not out["kink"][0]
    assert abs(out["numeric"][0]) <= out["error"][0] + 1e-12


def test_jump_in_the_second_derivative_is_extrapolated_to_first_order():
    out = run(lambda t: max(t, 0.0) ** 2 + 0.3 * t)
    assert not out["kink"][0]
    assert out["numeric"][0] == pytest.approx(0.3, abs=1e-12)


def test_two_levels_give_a_third_derivative():
    out = run(lambda t: t**3, x=0.5, levels=(1.0, 2.0))
    assert out["third"][0] == pytest.approx(6.0, rel=1e-6)
