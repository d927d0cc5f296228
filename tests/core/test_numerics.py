"""The finite-difference engine against closed-form derivatives."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradcheck import InputError, check
from gradcheck.core.numerics import (
    Tolerance,
    beyond,
    euclidean_norm,
    optimal_step,
    relative_error,
    step_bounds,
    taken_steps,
    within,
)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


TARGET = np.array([0.2, 0.5, 0.3])

# name -> (loss of x, exact gradient of x, starting x)
CLOSED_FORMS = {
    "cubic polynomial": (
        lambda x: float(np.sum(3 * x**3 - 2 * x**2 + x)),
        lambda x: 9 * x**2 - 4 * x + 1,
        np.array([-1.5, 0.3, 2.0, 7.0]),
    ),
    "exp": (
        lambda x: float(np.sum(np.exp(x))),
        lambda x: np.exp(x),
        np.array([-3.0, 0.0, 1.0, 4.0]),
    ),
    "sigmoid": (
        lambda x: float(np.sum(_sigmoid(x))),
        lambda x: _sigmoid(x) * (1 - _sigmoid(x)),
        np.array([-6.0, -0.5, 0.0, 2.5]),
    ),
    "softmax cross-entropy": (
        lambda x: float(-np.sum(TARGET * np.log(_softmax(x)))),
        lambda x: _softmax(x) - TARGET,
        np.array([0.1, -1.2, 2.3]),
    ),
    "large parameters": (
        lambda x: float(np.sum(np.sin(x / 1e4) * 1e4)),
        lambda x: np.cos(x / 1e4),
        np.array([1.2e4, -3.4e4, 5.0e3]),
    ),
}


@pytest.mark.parametrize("name", list(CLOSED_FORMS))
@pytest.mark.parametrize("richardson", [False, True])
def test_numeric_partials_match_closed_forms(name, richardson):
    """README claim: numeric partials are within 1e-8 of the largest partial (f64)."""
    loss, exact, x0 = CLOSED_FORMS[name]
    report = check(
        lambda p: loss(p["x"]),
        lambda p: {"x": exact(p["x"])},
        {"x": x0.copy()},
        richardson=richardson,
    )
    truth = exact(x0)
    error = np.abs(report["x"].numeric - truth)
    assert error.max() <= 1e-8 * np.abs(truth).max()
    assert report.passed


@pytest.mark.parametrize("name", list(CLOSED_FORMS))
def test_error_estimate_covers_actual_error(name):
    """The engine's per-element error bar is not optimistic."""
    loss, exact, x0 = CLOSED_FORMS[name]
    report = check(lambda p: loss(p["x"]), lambda p: {"x": exact(p["x"])}, {"x": x0.copy()})
    actual = np.abs(report["x"].numeric - exact(x0))
    assert np.all(actual <= report["x"].fd_error)


def test_float32_gets_a_coarser_step_and_passes():
    x32 = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    report = check(
        lambda p: np.sum(np.tanh(p["x"]) ** 2),
        lambda p: {"x": 2 * np.tanh(p["x"]) / np.cosh(p["x"]) ** 2},
        {"x": x32},
    )
    assert report.passed
    assert report["x"].step.min() > 1e-3  # eps32**(1/3) ~ 5e-3 bounds it from below


def test_step_bounds_scale_with_magnitude():
    low, high = step_bounds(np.array([0.5, 1e4]), np.finfo(np.float64).eps)
    assert low[0] == pytest.approx(np.finfo(np.float64).eps ** (1 / 3))
    assert low[1] == pytest.approx(1e4 * low[0])
    assert np.all(high > low)


def test_optimal_step_balances_rounding_and_truncation():
    eps = np.finfo(np.float64).eps
    x = np.array([0.0])
    # h* = (3 noise / |f'''|)^(1/3), clipped
    assert optimal_step(x, noise=3e-12, third=1.0, eps=eps)[0] == pytest.approx((9e-12) ** (1 / 3))
    assert optimal_step(x, noise=1e-30, third=1e10, eps=eps)[0] == step_bounds(x, eps)[0][0]
    assert optimal_step(x, noise=1e-10, third=0.0, eps=eps)[0] == step_bounds(x, eps)[1][0]


def test_taken_step_is_the_representable_one():
    x = np.array([1.0 / 3.0])
    upper, lower, span = taken_steps(x, np.array([1e-5]))
    assert span[0] == (upper[0] - x[0]) + (x[0] - lower[0])
    assert span[0] != 2e-5  # 1/3 + 1e-5 is not exactly representable


def test_relative_error_metric():
    assert relative_error(np.array([1.0, 0.0, -2.0]), np.array([1.0, 0.0, 2.0])).tolist() == [
        0.0,
        0.0,
        2.0,
    ]
    assert relative_error(np.array([3.0]), np.array([1.0]))[0] == pytest.approx(2 / 3)


def test_relative_error_does_not_overflow_at_the_float64_limit():
    # issue 12 item 7 sibling: |a - n| overflowed to inf, an infinite "relative error"
    big = np.finfo(np.float64).max
    assert relative_error(np.array([big]), np.array([-big])).tolist() == [2.0]


def test_tolerance_validates():
    with pytest.raises(ValueError, match="safety"):
        Tolerance(safety=0)
    with pytest.raises(ValueError, match="rtol"):
        Tolerance(rtol=-1.0)


# issue 12 items 4 and 10: Tolerance(rtol=inf) or noise_ulps=inf let a 10x wrong gradient pass;
# Tolerance(safety="x") was a TypeError
@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"safety": math.inf}, "safety"),
        ({"safety": math.nan}, "safety"),
        ({"safety": "x"}, "safety"),
        ({"safety": True}, "safety"),
        ({"noise_ulps": math.inf}, "noise_ulps"),
        ({"noise_ulps": math.nan}, "noise_ulps"),
        ({"noise_ulps": 2.0**52}, "noise_ulps"),
        ({"noise_ulps": None}, "noise_ulps"),
        ({"rtol": math.inf}, "rtol"),
        ({"rtol": math.nan}, "rtol"),
        ({"rtol": 0.5}, "rtol"),
        ({"rtol": "1e-6"}, "rtol"),
    ],
)
def test_nonfinite_or_absurd_tolerance_settings_are_input_errors(kwargs, option):
    with pytest.raises(InputError, match=rf"Tolerance\.{option} must be .*, got"):
        Tolerance(**kwargs)


def test_loose_tolerance_settings_that_are_accepted_still_fail_a_factor_2_bug():
    x0 = np.array([0.3, -0.7, 1.1])
    for tol in (Tolerance(rtol=0.49), Tolerance(safety=1e6), Tolerance(noise_ulps=1e6)):
        report = check(
            lambda p: float(np.sum(np.sin(p["x"]))),
            lambda p: {"x": 2 * np.cos(p["x"])},
            {"x": x0.copy()},
            tolerance=tol,
        )
        assert not report.passed, tol


def test_within_and_beyond_are_proven_only_on_finite_numbers():
    d = np.array([1.0, 3.0, np.inf, np.nan, 1.0, 1.0])
    b = np.array([2.0, 2.0, 2.0, 2.0, np.inf, np.nan])
    assert within(d, b).tolist() == [True, False, False, False, False, False]
    assert beyond(d, b).tolist() == [False, True, False, False, False, False]


@pytest.mark.parametrize("scale", [1e-300, 1.0, 1e160, 1e300])
def test_euclidean_norm_does_not_overflow(scale):
    values = np.array([3.0, -4.0]) * scale
    assert euclidean_norm(values) == pytest.approx(5.0 * scale)
    assert euclidean_norm(np.zeros(3)) == 0.0


def test_fixed_tiny_step_is_not_accurate_enough_on_the_askers_net():
    """Why the step is chosen, not fixed: h = 1e-6 misses 1e-8 of the largest partial."""
    from nets import asker

    problem = asker.problem(asker.CorrectedNet)
    exact = problem.grad(problem.params)
    largest = max(abs(v) for v in exact.values())

    def naive(name, h):
        params = dict(problem.params)
        params[name] = problem.params[name] + h
        up = problem.loss(params)
        params[name] = problem.params[name] - h
        return (up - problem.loss(params)) / (2 * h)

    naive_error = max(abs(naive(k, 1e-6) - exact[k]) for k in exact)
    report = check(problem.loss, problem.grad, problem.params)
    ours = max(abs(report[k].numeric[0] - exact[k]) for k in exact)
    assert naive_error > 1e-8 * largest
    assert ours < 1e-8 * largest


@pytest.mark.parametrize("name", ["asker-first", "asker-corrected", "recommended"])
def test_reference_nets_numeric_partials_within_1e8_of_the_largest(name):
    """The correct reference nets' hand-written gradients are exact (closed form)."""
    from gradcheck.protocol import load_references

    problem = load_references()[name].build()
    exact = {k: np.asarray(v, dtype=float) for k, v in problem.grad(problem.params).items()}
    largest = max(np.abs(v).max() for v in exact.values())
    report = check(problem.loss, problem.grad, problem.params)
    worst = max(np.abs(report[k].numeric - exact[k].reshape(-1)).max() for k in exact)
    assert worst <= 1e-8 * largest
