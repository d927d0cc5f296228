"""The finite-difference engine against closed-form derivatives."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradcheck import InputError, check
from gradcheck.core.numerics import (
    Tolerance,
    beyond,
    ecnoise,
    euclidean_norm,
    noise_bound,
    noise_bound_at,
    optimal_step,
    relative_error,
    step_bounds,
    taken_step,
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
    """Documented claim (docs/explanation/numerics.md): numeric partials are within 1e-8 of
    the largest partial (f64)."""
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


# -- numerics v2 (issue 11): measured noise, steps from the function, per-element error -------
import itertools  # noqa: E402

from gradcheck.core import differences  # noqa: E402
from nets.hard_numerics import CASES, big_mlp, plant  # noqa: E402


@pytest.mark.parametrize("key", list(CASES))
def test_correct_gradient_of_a_hard_loss_raises_no_false_alarm(key):
    """Cancellation, extreme magnitudes, tiny curvature scales, mixed precisions: the correct
    gradient passes, and no element is called a kink (the losses are smooth: noise is not a
    kink)."""
    case = CASES[key]()
    report = check(case.loss, case.grad, case.params)
    assert report.passed, report.to_text()
    assert sum(report[name].count("uncertain") for name in case.params) == 0


# float64 cases where the loss values carry enough information to see 1e-6 (the others are
# noise-limited: cancellation of 1e8 ulps, residuals under terms of 1e8; see the next test)
RESOLVING = [
    "least-squares-1",
    "least-squares-1e4",
    "scaled-1e-12",
    "scaled-1e12",
    "tiny-log-1e-5",
    "tiny-log-1e-6",
    "tiny-exp-1e-4",
    "huge-third-1e308",
    "huge-third-tiny-scale",
    "cancelling-to-zero",
]


@pytest.mark.parametrize("key", RESOLVING)
def test_relative_error_1e6_on_partials_above_1_percent_is_caught(key):
    case = CASES[key]()
    wrong_grad, planted = plant(case, 1e-6, 0.01)
    report = check(case.loss, wrong_grad, case.params)
    for name in case.params:
        wrong = np.flatnonzero(report[name].statuses == "wrong")
        assert wrong.tolist() == sorted(planted.get(name, [])), name


@pytest.mark.parametrize("key", list(CASES))
def test_stated_sensitivity_is_honest(key):
    """An error twice the worst stated sensitivity, on every partial the statement covers
    (>= 1% of the largest), is caught at exactly those elements."""
    case = CASES[key]()
    name = next(iter(case.params))
    correct = check(case.loss, case.grad, case.params)
    _, worst = correct[name].sensitivity_summary()
    # float32 losses see about 1e-1 at 1% of the largest partial (an unrefined element's
    # statement counts the rounding of refinement's better pair of levels, from half the step)
    assert worst < 0.2
    wrong_grad, planted = plant(case, 2 * worst, 0.01)
    report = check(case.loss, wrong_grad, case.params)
    assert np.flatnonzero(report[name].statuses == "wrong").tolist() == sorted(planted[name])


def test_small_error_on_small_partials_of_a_big_tensor_is_caught_at_2p():
    """The issue's case: a 20,000-parameter tanh MLP, partials at 2% of the largest off by
    1e-5 relative (a tensor-wide curvature bound passed them); correct elsewhere, at about
    2P evaluations."""
    case = big_mlp(batch=4)
    exact = np.abs(case.exact["W1"].reshape(-1))
    planted = np.argsort(np.abs(exact - 0.02 * exact.max()))[:5]

    def grad(p):
        g = case.grad(p)
        g["W1"].reshape(-1)[planted] *= 1 + 1e-5
        return g

    report = check(case.loss, grad, case.params)
    size = sum(v.size for v in case.params.values())
    assert np.flatnonzero(report["W1"].statuses == "wrong").tolist() == sorted(planted)
    assert report.failed_params == ["W1"]
    assert report.evaluations <= 2.2 * size


def _autograd_mlp(seed: int, sizes: tuple[int, ...], scale: float = 1.0):
    """A tanh MLP written for autograd: its exact gradient, independent of gradcheck."""
    autograd = pytest.importorskip("autograd")
    anp = pytest.importorskip("autograd.numpy")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((16, sizes[0]))
    y = rng.standard_normal((16, sizes[-1]))
    params = {}
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        params[f"W{i}"] = rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)
        params[f"b{i}"] = 0.1 * rng.standard_normal(n_out)

    def loss(p):
        h = x
        for i in range(len(sizes) - 1):
            h = anp.dot(h, p[f"W{i}"]) + p[f"b{i}"]
            if i < len(sizes) - 2:
                h = anp.tanh(h)
        return scale * anp.sum((h - y) ** 2) / 32

    exact = autograd.grad(loss)
    return (lambda p: float(loss(p))), exact, params


@pytest.mark.parametrize(
    ("seed", "sizes", "scale"),
    [(0, (4, 8, 3), 1.0), (1, (6, 16, 16, 2), 1.0), (2, (3, 5, 1), 1e-6), (3, (5, 12, 4), 1e6)],
)
def test_numeric_partials_of_smooth_nets_match_autograd(seed, sizes, scale):
    """Numeric partials within 1e-8 of the exact gradient (relative to the largest partial),
    the median within 1e-10."""
    loss, exact, params = _autograd_mlp(seed, sizes, scale)
    truth = exact(params)
    report = check(loss, exact, params)
    largest = max(np.abs(v).max() for v in truth.values())
    errors = np.concatenate([np.abs(report[k].numeric - truth[k].reshape(-1)) for k in truth])
    assert report.passed
    assert errors.max() <= 1e-8 * largest
    assert np.median(errors) <= 1e-10 * largest


def test_measured_noise_and_sensitivity_are_reported():
    case = CASES["least-squares-1e4"]()
    report = check(case.loss, case.grad, case.params)
    data = report.to_dict()["params"][0]
    # the loss (~1e-8) is computed from terms ~1e4: far noisier than a few ulps of |f|
    assert data["noise"] > 1e3 * np.finfo(float).eps * report.loss
    assert 0 < data["sensitivity"]["median"] <= data["sensitivity"]["worst"] < 1e-6
    assert "smallest detectable relative error" in report.to_text()


def test_ecnoise_recovers_the_noise_of_a_smooth_function():
    from gradcheck.core.numerics import ecnoise

    rng = np.random.default_rng(0)
    t = np.arange(-3, 4) * 1e-6
    estimates = [ecnoise(np.exp(0.3 + t) + 1e-10 * rng.standard_normal(t.size)) for _ in range(40)]
    sigmas = np.array([s for s, status in estimates if status == "measured"])
    assert sigmas.size >= 30
    assert 0.5e-10 < np.median(sigmas) < 2e-10


def test_ecnoise_says_when_the_spacing_is_wrong():
    from gradcheck.core.numerics import ecnoise

    assert ecnoise(np.full(7, 0.25))[1] == "flat"  # no variation: spacing below resolution
    assert ecnoise(np.exp(np.arange(-3, 4) * 1e-2))[1] == "slope"  # a smooth trend only
    # a staircase that moves once in seven values (a float32 read of the parameter): flat,
    # not a kink, so that the next, larger spacing sees the staircase
    assert ecnoise(np.array([0.5] * 4 + [0.5 + 2**-40] * 3))[1] == "flat"


def test_a_loss_quantized_by_a_larger_intermediate_has_its_steps_measured_as_noise():
    # log(1 + e) with e ~3e-7, written naively (not log1p): the loss (~1e-6) moves in steps of
    # 1's ulp, 1e6 of its own; every noise table read one step's deviation as a kink, the
    # noise fell to the floor, and correct partials were called wrong or kinks
    def loss(p):
        return float(np.sum(np.log(1.0 + np.exp(-15.0 * p["w"]))))

    def grad(p):
        e = np.exp(-15.0 * p["w"])
        return {"w": -15.0 * e / (1.0 + e)}

    params = {"w": np.array([1.0, 1.01, 0.99])}
    report = check(loss, grad, params)
    assert report.passed, report.to_text()
    assert report["w"].count("ok") == 3
    assert 1e-17 < report["w"].noise < 2.2e-16  # about 1's ulp / sqrt(12)

    def wrong(p):
        g = grad(p)
        g["w"][1] *= 1.001
        return g

    assert np.flatnonzero(check(loss, wrong, params)["w"].statuses == "wrong").tolist() == [1]


def test_a_loss_computed_in_float32_and_returned_as_a_python_float_is_judged_in_float32():
    # its type says float64, its values are float32 numbers: steps and bounds in float64
    # ulps saw no change at all across a step (every partial 0, both tensors wrong)
    from gradcheck.core.evaluation import float32_valued

    assert float32_valued(float(np.float32(0.7001563)))
    assert not float32_valued(0.7001563)  # a float64 result
    for value in (0.25, 0.0, 1e300, float("nan")):  # round values say nothing; nor do these
        assert not float32_valued(value)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 5)).astype(np.float32)
    params = {"W": 0.3 * rng.standard_normal((5, 3)), "b": np.zeros(3)}

    def loss(p):
        z = x @ p["W"].astype(np.float32) + p["b"].astype(np.float32)
        return float(np.float32(0.7) + np.float32(1e-3) * np.mean(np.tanh(z) ** 2))

    def grad(p):
        z = x.astype(np.float64) @ p["W"] + p["b"]
        d = 2e-3 * np.tanh(z) * (1 - np.tanh(z) ** 2) / z.size
        return {"W": x.T.astype(np.float64) @ d, "b": d.sum(0)}

    report = check(loss, grad, params)
    assert report.passed, report.to_text()
    assert any(note.startswith("precision limited: float32") for note in report.notes)


def test_a_float64_loss_reading_its_parameters_through_float32_is_no_false_alarm():
    # 780 float32 ulps per step at b = 0.04: each point's cast moves the step by up to 1e-3 of
    # it; the noise table's staircase (one jump in seven values) was taken for a kink, the
    # next table flat, and the read's resolution never seen: every element wrong
    c = np.array([0.3, -0.3, 0.2, 0.1])

    def loss(p):
        b = p["b"].astype(np.float32).astype(np.float64)
        return float(np.log(np.sum(np.exp(c + b))) - np.sum(b * c))

    def grad(p):
        e = np.exp(c + p["b"])
        return {"b": e / e.sum() - c}

    params = {"b": np.full(4, 0.04)}
    report = check(loss, grad, params)
    assert report.passed, report.to_text()

    def wrong(p):
        g = grad(p)
        g["b"][1] *= 1.2
        return g

    assert np.flatnonzero(check(loss, wrong, params)["b"].statuses == "wrong").tolist() == [1]


def _ecnoise_every_order(values):
    """ECnoise as first written: every order's level computed, then the windows read in order."""
    f = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(f)) or np.ptp(f) > 0.1 * np.max(np.abs(f)):
        return float("nan"), "slope"
    levels, signs, gamma, diff = [], [], 1.0, f
    for k in range(1, f.size):
        diff = np.diff(diff)
        if k == 1 and np.count_nonzero(diff == 0) >= f.size / 2:
            return 0.0, "flat"
        gamma *= 0.5 * k / (2 * k - 1)
        largest = float(np.max(np.abs(diff)))
        rms = largest * float(np.sqrt(np.mean((diff / largest) ** 2))) if largest > 0 else 0.0
        levels.append(float(np.sqrt(gamma)) * rms)
        signs.append(bool(diff.min() < 0 < diff.max()))
    for k in range(f.size - 3):
        window = levels[k : k + 3]
        if max(window) <= 4.0 * min(window) and signs[k]:
            return levels[k], "measured"
    return float("nan"), "slope"


def test_ecnoise_measures_a_slope_over_a_value_that_cancelled_to_almost_nothing():
    # values ~1e-9 moving by 4e-5 a point (a slope) with rounding ~5e-10: far more than 10% of
    # their size, but a straight line plus noise, not a curve over too large a spacing
    rng = np.random.default_rng(3)
    sigma = 5e-10
    values = 1e-9 + 4e-5 * np.arange(-3, 4) + sigma * rng.standard_normal(7)
    measured, status = ecnoise(values)
    assert status == "measured"
    assert sigma / 3 < measured < 3 * sigma
    # a curve over the table (the spacing at the function's own scale) still is refused
    assert ecnoise(np.cos(np.arange(-3, 4) * 0.5) - 0.9) == (
        pytest.approx(np.nan, nan_ok=True),
        "slope",
    )


def test_ecnoise_stops_at_the_first_agreeing_window_with_the_same_answer():
    # noise, smooth trends of every size, and both mixed: the lazy reading answers exactly as
    # computing every order first
    from gradcheck.core.numerics import ecnoise

    rng = np.random.default_rng(11)
    t = np.arange(-3, 4, dtype=np.float64)
    for _ in range(400):
        trend = rng.choice([0.0, 1e-14, 1e-10, 1e-6]) * t ** rng.integers(1, 5)
        noise = rng.choice([0.0, 1e-16, 1e-12]) * rng.standard_normal(7)
        values = 1.0 + trend + noise
        (sigma, status), (expected, expected_status) = ecnoise(values), _ecnoise_every_order(values)
        assert status == expected_status
        assert sigma == expected or (np.isnan(sigma) and np.isnan(expected))


def test_scale_free_step_follows_the_function_not_the_magnitude():
    from gradcheck.core.numerics import scale_free_step

    eps = np.finfo(np.float64).eps
    x = np.array([1e-5, 1e8])
    # h* = (3 noise / |f'''|)**(1/3) whatever |x| is, down to a few hundred ulps of x
    assert scale_free_step(x[:1], 1e-15, 3e15, 1.0, eps)[0] == pytest.approx(1e-10)
    assert scale_free_step(x[1:], 1e-15, 3e15, 1.0, eps)[0] == pytest.approx(256 * eps * 1e8)
    assert scale_free_step(x, 1e-15, 0.0, 0.5, eps).tolist() == [0.5, 0.5]


# -- accuracy on the function's own scale, and past float64's range ---------------------------
# the accuracy targets, relative to the largest partial
ACCURACY_MAX = 1e-8
ACCURACY_MEDIAN = 1e-10


@pytest.mark.parametrize(
    "key",
    [
        "tiny-log-1e-5",
        "tiny-log-1e-6",
        "tiny-exp-1e-4",
        "huge-third-1e308",
        "huge-third-tiny-scale",
    ],
)
def test_numeric_partials_on_tiny_scales_and_huge_curvature_meet_the_accuracy_targets(key):
    """Parameters ~1e-6 whose loss varies on that scale, and f''' ~1e308: every numeric
    partial within 1e-8 of the exact one (relative to the largest), the median within 1e-10
    (central differences alone stop at ~4e-10 here: the loss is large against its variation,
    so a fourth-order main pass takes over)."""
    case = CASES[key]()
    report = check(case.loss, case.grad, case.params)
    name = next(iter(case.params))
    exact = case.exact[name].reshape(-1)
    error = np.abs(report[name].numeric - exact) / np.abs(exact).max()
    assert error.max() <= ACCURACY_MAX
    assert np.median(error) <= ACCURACY_MEDIAN


def test_pilot_noise_is_the_one_near_x_for_a_clean_loss():
    """exp(b / 1e-4): the pilot ladder starts at steps where the loss is ~1000x larger; the
    step of the main pass follows the noise near x (one ulp of |f|), not out there."""
    case = CASES["tiny-exp-1e-4"]()
    report = check(case.loss, case.grad, case.params)
    b = case.params["b"]
    third = np.max(np.exp(b / 1e-4)) / 1e-12  # the largest third derivative
    noise = np.finfo(np.float64).eps * abs(case.loss(case.params))
    best = (3 * noise / third) ** (1 / 3)
    assert np.all(report["b"].step <= 2 * best)


def test_margins_saturate_at_the_largest_float():
    from gradcheck.core.numerics import LARGEST, margined

    assert margined(2.0, 4.0) == 8.0
    assert margined(1e308, 4.0) == LARGEST  # not inf: a bound that still exceeds 1e308
    assert margined(float("inf"), 4.0) == float("inf")  # an infinite estimate stays one
    assert math.isnan(margined(float("nan"), 4.0))


def test_ladder_fifth_recovers_the_fifth_derivative():
    from gradcheck.core.numerics import ladder_fifth

    halves = [0.1, 0.025, 0.00625]
    slopes = [(math.exp(h) - math.exp(-h)) / (2 * h) for h in halves]  # f = exp at 0: f5 = 1
    assert ladder_fifth(slopes, halves, 1e-17) == pytest.approx(1.0, rel=0.05)
    # slopes that agree to the last bit: the most rounding could hide, never 0
    assert ladder_fifth([1.0, 1.0, 1.0], halves, 1e-16) > 0
    assert math.isnan(ladder_fifth([1.0, float("inf"), 1.0], halves, 1e-16))


def test_ladder_richardson_extrapolates_two_levels_within_its_stated_error():
    from gradcheck.core.numerics import ladder_richardson

    halves = (0.025, 0.00625)  # a ladder's 4:1 levels
    slopes = tuple(math.cos(0.3) * math.sin(h) / h for h in halves)  # f = sin at 0.3
    value, error = ladder_richardson(slopes, halves, 1e-17, 1.0)  # |f^(5)| <= 1
    assert abs(value - math.cos(0.3)) <= error
    # the error of the better level's central value alone is ~3000x larger: only the
    # extrapolation (and its h1**2 h2**2 truncation) is that close
    assert error < abs(slopes[1] - math.cos(0.3)) / 1000
    assert abs(value - math.cos(0.3)) > error / 10  # the bound is not loose either
    # rounding: (16 + 1/4) / 15 of noise / H2 at 4:1 levels
    _, noisy = ladder_richardson((1.0, 1.0), halves, 1e-10, 0.0)
    assert noisy == pytest.approx(65 / 60 * 1e-10 / halves[1])
    assert math.isnan(ladder_richardson(slopes, halves, 1e-17, math.inf)[1])
    assert math.isnan(ladder_richardson(slopes, halves[::-1], 1e-17, 1.0)[0])


def test_fourth_order_pays_only_where_central_differences_fall_short():
    from gradcheck.core.numerics import fourth_order_pays

    assert fourth_order_pays(np.array([1e-8]), np.array([1e-10]), 1.0)  # short, and it pays
    assert not fourth_order_pays(np.array([1e-11]), np.array([1e-13]), 1.0)  # accurate already
    assert not fourth_order_pays(np.array([1e-8]), np.array([5e-9]), 1.0)  # no real gain
    assert not fourth_order_pays(np.array([np.inf]), np.array([1e-10]), 1.0)  # fail closed
    assert not fourth_order_pays(np.array([1e-8]), np.array([1e-10]), float("nan"))


def test_fourth_order_main_pass_still_catches_and_locates_small_errors():
    """On a tensor measured at fourth order, a 1e-6 relative error on one element is flagged
    there and nowhere else, and the report says how the tensor was measured."""
    case = CASES["tiny-log-1e-6"]()

    def grad(p):
        g = case.grad(p)
        g["a"][3] *= 1 + 1e-6
        return g

    report = check(case.loss, grad, case.params)
    assert np.flatnonzero(report["a"].statuses == "wrong").tolist() == [3]
    assert any("fourth order" in note for note in report.notes)


def test_steps_from_a_curvature_near_1e307_do_not_underflow():
    """noise / third underflows for 1e-18 / 1e307: the step is taken root by root, and the
    truncation of a step below 1e-162 is not lost with its square."""
    from gradcheck.core.numerics import central_error, scale_free_step

    eps = np.finfo(np.float64).eps
    h = scale_free_step(np.array([1e-102]), 1e-18, 3e307, 1.0, eps)[0]
    assert h == pytest.approx(1e-6 / 1e307 ** (1 / 3), rel=1e-6, abs=0)  # ~4.6e-109, not 0
    assert h > 256 * eps * 1e-102  # the function's own step, above the smallest one
    truncation = central_error(np.array(0.0), np.array(2e-170), 6e307)
    assert truncation == pytest.approx(1e-33, rel=1e-6, abs=0)


def test_a_loss_1e80_times_larger_two_ladder_levels_up_is_not_noise():
    """exp(b / 1e-6), b ~ 1e-7: the pilot ladder starts where the loss overflows and then sees
    1e80; that noise bound once made slopes 1e14 apart look "within the noise", the step
    8 scales wide and the tolerance 1e70: every 1e-6 error passed. The noise of the two levels
    compared is the one that counts."""
    from nets.hard_numerics import tiny_exp

    case = tiny_exp(1e-6, seed=0)

    def loss(p):
        with np.errstate(over="ignore"):  # exp(740) at the ladder's first level: inf
            return case.loss(p)

    report = check(loss, case.grad, case.params)
    exact = case.exact["b"]
    assert report.passed
    assert np.max(np.abs(report["b"].numeric - exact)) <= ACCURACY_MAX * np.abs(exact).max()
    wrong_grad, planted = plant(case, 1e-6, 0.01)
    wrong = check(loss, wrong_grad, case.params)
    assert np.flatnonzero(wrong["b"].statuses == "wrong").tolist() == sorted(planted["b"])


@pytest.mark.parametrize("offset", [0.0, 0.3, -1.7])
def test_a_kink_in_the_noise_table_is_not_noise(offset):
    """A noise table across a ReLU's kink (the pilot's element at a max-pool tie, a ReLU at
    0): its second differences vanish but next to the kink, and the higher ones once read as
    a noise of the jump times the spacing, ~1e6 times the loss's rounding, loosening every
    tolerance of the check. The same table with noise instead of the kink is measured."""
    d = 2.0**-30
    t = np.arange(-3, 4) * d
    kinked = 2.0 + 0.3 * t + 0.05 * np.maximum(t - offset * d, 0.0)
    assert ecnoise(kinked)[1] == "slope"
    rng = np.random.default_rng(0)
    noisy = 2.0 + 0.3 * t + 1e-12 * rng.standard_normal(7)
    sigma, status = ecnoise(noisy)
    assert status == "measured"
    assert 0.25e-12 < sigma < 4e-12


@pytest.mark.parametrize("first", [-2.5, -1.5, -0.5])
def test_kinks_at_two_places_in_the_noise_table_are_not_noise(first):
    """A batch's ReLU units crossing 0 one after another: a table across two kinks is
    straight between them, so its second differences vanish at some places and are large at
    others, which no one-kink test sees (a dead unit's element, flat at small spacings, read
    as noise 1e8 times the loss's at the first spacing that reached its batch's kinks)."""
    d = 2.0**-9
    t = np.arange(-3, 4) * d
    kinked = 1.1 + 2e-5 * t - 4e-4 * np.maximum(t - first * d, 0) - 3e-4 * np.maximum(t - d, 0)
    assert ecnoise(kinked)[1] == "slope"
    # the same table with noise of the size it would have read: measured
    rng = np.random.default_rng(1)
    sigma, status = ecnoise(1.1 + 2e-5 * t + 1e-7 * rng.standard_normal(7))
    assert status == "measured"
    assert 0.25e-7 < sigma < 4e-7


@pytest.mark.parametrize(("offset", "bend"), [(0.0, 1.0), (0.003, 1.1), (0.003, 1.0), (0.4, 1.0)])
def test_a_kink_beside_curvature_in_the_noise_table_is_not_noise(offset, bend):
    """A trained ReLU net's unit 3e-11 from its kink, in a table at spacing 1e-8: the
    curvature puts second differences of 3.7e-18 everywhere (``bend``: 10% more on the
    kink's far side, where the unit is active), beside the kink's 7e-17. The one-kink test
    saw no zeros beside the spike and took it for noise of 1e-17, 1e6 times the loss's
    rounding; that noise loosened the stencil's kink test, and the unit's correct partials
    failed. Less the curvature (the median second difference), the spike stands alone."""
    d = 1e-8
    t = np.arange(-3, 4) * d
    curvature = 0.037 * np.where(t > offset * d, bend, 1.0)
    kinked = 1.45e-12 - 1.7e-8 * t + 0.5 * curvature * t**2 + 6.8e-9 * np.maximum(t - offset * d, 0)
    assert ecnoise(kinked)[1] == "slope"
    rng = np.random.default_rng(2)
    sigma, status = ecnoise(1.45e-12 - 1.7e-8 * t + 0.0185 * t**2 + 1e-18 * rng.standard_normal(7))
    assert status == "measured"
    assert 0.25e-18 < sigma < 4e-18


def test_a_relu_loss_with_units_at_their_kinks_keeps_its_rounding_noise():
    x = np.array([0.0, 0.7, -0.2, 0.0, 1.1, 0.0])

    def loss(p):
        return float(np.sum(np.maximum(p["x"], 0.0) * np.arange(1, 7)) + 2.0)

    report = check(loss, lambda p: {"x": (p["x"] > 0) * np.arange(1.0, 7.0)}, {"x": x})
    assert report.passed
    assert report["x"].noise < 1e3 * np.finfo(float).eps * loss({"x": x})


def test_fourth_order_is_weighed_per_segment_as_each_segment_alone():
    # the vectorised decision of a group's members is fourth_order_pays on each member's own
    # slice, with its own partials' scale: random bounds and partials, NaN, inf, empty members
    from gradcheck.core.numerics import fourth_order_pays, fourth_order_pays_per, partials_scale

    rng = np.random.default_rng(11)
    for trial in range(300):
        sizes = rng.integers(0, 5, size=rng.integers(1, 6))
        starts = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        n = starts[-1]
        central = 10.0 ** rng.uniform(-14, -6, n)
        fourth = central * 10.0 ** rng.uniform(-3, 0.5, n)
        analytic = rng.normal(size=n) * 10.0 ** rng.uniform(-4, 4, n)
        for values in (central, fourth, analytic):
            if n and trial % 7 == 0:
                values[rng.integers(n)] = rng.choice([np.nan, np.inf])
        slope = float(rng.choice([1e-9, 1e-3, 1.0, np.nan, 0.0]))
        for partials in (analytic, None):
            expected = [
                fourth_order_pays(
                    central[a:b],
                    fourth[a:b],
                    partials_scale(slope, None if partials is None else partials[a:b]),
                )
                for a, b in itertools.pairwise(starts)
            ]
            got = fourth_order_pays_per(central, fourth, slope, partials, starts)
            assert got.tolist() == expected


def test_the_partials_scale_is_the_tensors_not_only_the_pilots_three_elements():
    # the pilot saw three small partials; the tensor's largest hand-written one sets the scale
    from gradcheck.core.numerics import partials_scale

    analytic = np.array([1e-3, -0.5, np.nan, 2e-3])
    assert partials_scale(1e-3, analytic) == 0.5
    assert partials_scale(0.7, analytic) == 0.7  # a hand-written gradient too small: the pilot's
    assert partials_scale(0.7, None) == 0.7
    assert partials_scale(float("nan"), analytic) == 0.5
    # a central bound of 1e-9 of the pilot's scale but 2e-12 of the tensor's: no fourth order
    from gradcheck.core.numerics import fourth_order_pays

    central, fourth = np.array([1e-12]), np.array([1e-14])
    assert fourth_order_pays(central, fourth, 1e-12 / 5e-9)
    assert not fourth_order_pays(central, fourth, partials_scale(1e-12 / 5e-9, analytic))


# -- one element's step and noise bound, as the pilot ladder takes them ------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x", [0.0, -3.7, 1e-30, 2.5e30, 3.4e38])
@pytest.mark.parametrize("h", [1e-3, 7.4e-4 / 4**9, 1e39])
def test_taken_step_is_taken_steps_for_one_element_bit_for_bit(dtype, x, h):
    xs = np.array([x], dtype=dtype)
    upper, lower, span = taken_steps(xs, np.array([h]))
    one = taken_step(xs[0], h)
    assert one[0].tobytes() == upper[0].tobytes()
    assert one[1].tobytes() == lower[0].tobytes()
    assert np.array(one[2]).tobytes() == np.array(span[0]).tobytes()  # NaN past the range


@pytest.mark.parametrize("sigma", [float("nan"), 0.0, 1e-17, 1e-3])
@pytest.mark.parametrize("value", [0.0, -2.5, 1e300, float("nan")])
def test_noise_bound_at_one_value_is_noise_bound(sigma, value):
    tol = Tolerance()
    expected = float(noise_bound(sigma, np.array(value), 2.2e-16, tol))
    got = noise_bound_at(sigma, value, 2.2e-16, tol)
    assert np.array(got).tobytes() == np.array(expected).tobytes()


@pytest.mark.parametrize("early", [True, False], ids=["before-refinement", "after-verdicts"])
def test_a_failing_verdict_whose_own_noise_was_not_measured_is_measured_again(early, monkeypatch):
    """sum(a**2) + 1e4 sum(sin(v)): the pilot's table moved a[0] and saw ~1e-16 of noise; v's
    sum cancels to ~1e-9 and carries ~1e-10 whenever v moves. Where many of v's elements
    disagree with the main pass, tables of their own raise v's noise before refinement (which
    took the noise for kinks, isolating them for up to 32 evaluations each: 19P); where fewer
    do (the fallback, forced here), v's failing elements get tables after every tensor and v
    is measured again with their noise. Either way v passes, a keeps its own noise, the notes
    say only what holds, and errors planted in both tensors are still found exactly where
    they are."""
    if not early:
        monkeypatch.setattr(differences, "EARLY_NOISE_FROM", 10**9)
    case = CASES["quiet-beside-cancelling"]()
    size = sum(value.size for value in case.params.values())
    correct = check(case.loss, case.grad, case.params)
    assert correct.passed
    said = "disagreed with the main pass" if early else "measured again"
    notes = [note for note in correct.notes if said in note]
    assert [note.split(":")[0] for note in notes] == ["v"]
    assert not any("kinks" in note for note in correct.notes)  # noise is no kink
    assert correct["v"].noise > 1e4 * correct["a"].noise  # a keeps its own measurement
    if early:
        assert correct.evaluations < 2.5 * size

    def grad(p):
        g = case.grad(p)
        g["a"][2] *= 1.01
        g["v"][100] *= 1.01
        return g

    report = check(case.loss, grad, case.params)
    assert np.flatnonzero(report["a"].statuses == "wrong").tolist() == [2]
    assert np.flatnonzero(report["v"].statuses == "wrong").tolist() == [100]


def test_a_real_error_costs_at_most_three_noise_tables_per_pilot():
    # the failing elements' noise agrees with the pilot's: the verdict stands, 18 calls more,
    # and one table (7) where the verdict read a loss far larger than at the start (a fit's
    # residuals grow with the step), which finds the partials resolved: nothing more
    case = CASES["least-squares-1"]()
    name = next(iter(case.params))
    wrong_grad, _ = plant(case, 1e-3, 0.01)
    base = check(case.loss, case.grad, case.params).evaluations
    report = check(case.loss, wrong_grad, case.params)
    assert not report.passed
    assert not any("measured again" in note for note in report.notes)
    refined = int(report[name].refined.sum())
    assert report.evaluations <= base + 4 * refined + 3 * 6 + 7
