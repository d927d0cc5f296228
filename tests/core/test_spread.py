"""The hand-written partials' own spread (gradcheck/core/spread.py): read a ulp away where a
verdict still fails, it clears the partials whose discrepancy is their own rounding (a near-
exact fit's residuals cancel), and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

import gradcheck
from gradcheck.core.params import ParamSet
from gradcheck.core.spread import SAMPLES, SPREAD_MARGIN, gradient_spread, judged_with_spread
from tests.helpers.toy import exact_fit_mlp

# seeds whose fit to 1e-12 false-alarmed before the spread (19 of 30 did)
NEAR_FIT_SEEDS = [0, 1, 3, 4, 6]


def _snapshot(params):
    return {k: np.array(v, copy=True) for k, v in params.items()}


def _same_bits(params, saved):
    return all(np.asarray(params[k]).tobytes() == saved[k].tobytes() for k in saved)


@pytest.mark.parametrize("seed", NEAR_FIT_SEEDS)
def test_a_near_exact_fit_is_no_false_alarm(seed):
    loss, grad, params = exact_fit_mlp(seed, noise=1e-12)
    report = gradcheck.check(loss, grad, params)
    assert report.passed, report.to_text()
    # the spread is what cleared it: the note names it
    assert any("moves by one ulp" in note for note in report.notes), report.notes


@pytest.mark.parametrize("seed", NEAR_FIT_SEEDS)
def test_a_planted_error_in_a_near_exact_fit_is_still_caught(seed):
    loss, grad, params = exact_fit_mlp(seed, noise=1e-12)
    largest = int(np.argmax(np.abs(grad(params)["W2"])))

    def wrong(p):
        g = grad(p)
        g["W2"].reshape(-1)[largest] *= 1.5
        return g

    report = gradcheck.check(loss, wrong, params)
    assert np.flatnonzero(report["W2"].statuses == "wrong").tolist() == [largest]
    assert report.failed_params == ["W2"]


def test_a_gradient_that_differs_between_calls_gets_no_spread():
    # fail closed: a gradient with noise of its own (dropout resampled in the backward pass)
    # would otherwise measure a spread as large as that noise and pass whatever it hides
    loss, grad, params = exact_fit_mlp(0, noise=1e-12)
    rng = np.random.default_rng(0)

    def jittery(p):
        g = grad(p)
        g["W1"] = g["W1"] * (1 + 1e-3 * rng.standard_normal(g["W1"].shape))
        return g

    report = gradcheck.check(loss, jittery, params)
    assert not report.passed
    assert any("differs between two calls" in note for note in report.notes), report.notes


def test_a_gradient_that_raises_a_ulp_away_gets_no_spread_and_params_are_restored():
    loss, grad, params = exact_fit_mlp(0, noise=1e-12)
    saved = _snapshot(params)

    def brittle(p):
        if any(not np.array_equal(p[k], saved[k]) for k in saved):
            raise RuntimeError("only at the start")
        return grad(p)

    report = gradcheck.check(loss, brittle, params)
    assert not report.passed  # the false alarm stands: nothing was measured to explain it
    assert any("raised or was not finite" in note for note in report.notes), report.notes
    assert _same_bits(params, saved)


def test_the_spread_of_a_linear_gradient_is_its_matrix_times_an_ulp():
    # g = A x: moving every element by one ulp moves g by at most |A| ulp(x), and the
    # largest of SAMPLES random directions by more than a tenth of it
    rng = np.random.default_rng(3)
    a = rng.standard_normal((5, 5))
    params = {"x": rng.standard_normal(5) * 1e3, "s": 2.5, "f": np.full(3, 0.75, dtype=np.float32)}

    def grad(p):
        return {"x": a @ p["x"], "s": np.float64(p["s"]), "f": 2.0 * p["f"]}

    saved = _snapshot(params)
    pset = ParamSet(params)
    try:
        gradients = {k: np.asarray(v, dtype=np.float64) for k, v in grad(pset.view).items()}
        spread, why = gradient_spread(grad, pset, gradients)
    finally:
        pset.finish()
    assert why == ""
    assert set(spread) == {"x", "s", "f"}
    ulp = np.spacing(np.abs(saved["x"]))
    # (plus the rounding of the two products themselves)
    bound = np.abs(a) @ ulp + 4 * np.spacing(np.abs(a) @ np.abs(saved["x"]))
    assert np.all(spread["x"] <= bound)
    assert np.all(spread["x"] > 0.1 * bound)
    assert spread["s"] == np.spacing(2.5)  # one ulp of a Python float, either way
    # a float32 parameter moves by its own (float32) ulp, at points of its own: where the
    # float64 ones are judged it is held (its ulp is no rounding to them)
    assert np.allclose(spread["f"], 2.0 * np.spacing(np.float32(0.75)))
    assert _same_bits(params, saved)
    assert params["s"] == 2.5


def test_params_are_restored_bitwise_when_the_gradient_is_interrupted():
    params = {"x": np.linspace(-1.0, 1.0, 7)}
    saved = _snapshot(params)
    calls = []

    def grad(p):
        calls.append(1)
        if len(calls) == 3:  # at the third point a ulp away
            raise KeyboardInterrupt
        return {"x": 2.0 * p["x"]}

    pset = ParamSet(params)
    try:
        gradients = {"x": 2.0 * saved["x"]}
        with pytest.raises(KeyboardInterrupt):
            gradient_spread(grad, pset, gradients)
        assert _same_bits(params, saved)  # before finish(): the measurement restored them
    finally:
        pset.finish()
    assert len(calls) == 3
    assert SAMPLES >= 3


def test_judging_with_the_spread_leaves_a_kink_and_an_unexplained_error_wrong():
    # |x| at 0 with a hand-written 5 (outside the subgradients [-1, 1]): the kink's verdict;
    # x[1] off by 1e-6: cleared by a spread of 1e-6 (3 spreads > the discrepancy) only
    def loss(p):
        return float(np.sum(np.abs(p["x"])))

    def grad(p):
        g = np.sign(p["x"])
        g[0], g[1], g[2] = 5.0, g[1] + 1e-6, g[2] + 1e-3
        return {"x": g}

    params = {"x": np.array([0.0, 0.5, -0.7, 1.2])}
    result = gradcheck.check(loss, grad, params)["x"]
    assert result.statuses.tolist() == ["wrong", "wrong", "wrong", "ok"]
    assert result.kink[0]
    spread = np.full(4, 1e-6)
    judged = judged_with_spread(result, spread)
    assert judged.statuses.tolist() == ["wrong", "ok", "wrong", "ok"]
    assert np.allclose(judged.tolerance, result.tolerance + SPREAD_MARGIN * spread)
    assert np.allclose(judged.detectable, result.detectable + SPREAD_MARGIN * spread)
    # nothing it explains: the very same result
    assert judged_with_spread(result, np.full(4, 1e-12)) is result
    # an infinite spread explains nothing (fail closed)
    assert judged_with_spread(result, np.full(4, np.inf)) is result


def test_an_ordinary_wrong_gradient_costs_no_more_loss_evaluations():
    # the spread reads the gradient, never the loss
    loss, grad, params = exact_fit_mlp(2, noise=1e-3)
    calls = []

    def counted(p):
        calls.append(1)
        return loss(p)

    def wrong(p):
        g = grad(p)
        g["b1"] = 2 * g["b1"]
        return g

    report = gradcheck.check(counted, wrong, params)
    assert report.failed_params == ["b1"]
    assert report.evaluations == len(calls)
    assert not any("moves by one ulp" in note for note in report.notes)


# 3,201 parameters: fast mode runs (the full check plans far more than 8x its 12), its probes
# cross the fit's minimum as a kink, and every tensor is measured one by one
WIDE = (40, 30, 100)


@pytest.mark.parametrize(("seed", "noise"), [(1, 0.0), (1, 1e-9), (4, 1e-12)])
def test_fast_mode_measured_whole_at_a_fit_is_no_false_alarm(seed, noise):
    # it missed every failing-verdict check of the full one: at an exact fit 1,903 of W1's
    # 3,000 partials were wrong, and every fit to 1e-12 or 1e-9 false-alarmed
    loss, grad, params = exact_fit_mlp(seed, noise, sizes=WIDE)
    report = gradcheck.check(loss, grad, params, mode="fast")
    assert report.options["mode"] == "fast"
    assert report.passed, report.to_text()
    assert all(report[name].probe.proven_wrong == () for name in params)


def test_fast_mode_at_a_fit_still_names_a_planted_error():
    loss, grad, params = exact_fit_mlp(1, 1e-9, sizes=WIDE)
    largest = int(np.argmax(np.abs(grad(params)["b1"])))

    def wrong(p):
        g = grad(p)
        g["b1"][largest] *= 1.01
        return g

    report = gradcheck.check(loss, wrong, params, mode="fast")
    assert report.failed_params == ["b1"]
    assert report["b1"].probe.proven_wrong == (largest,)


def test_a_gradient_that_reuses_its_buffers_is_read_at_the_point_last():
    # fast mode keeps the gradient's arrays without a copy: readings a ulp away write into
    # the same buffers, and the last reading, at the point, puts them back as they were (else
    # the check would blame the loss for writing into them, and judge moved values)
    loss, grad, params = exact_fit_mlp(1, 1e-9, sizes=WIDE)
    buffers = {name: np.empty_like(value) for name, value in params.items()}

    def reusing(p):
        for name, value in grad(p).items():
            buffers[name][...] = value
        return buffers

    report = gradcheck.check(loss, reusing, params, mode="fast")
    assert report.options["mode"] == "fast"
    assert report.passed, report.to_text()
    assert any("moves by one ulp" in note for note in report.notes)
    assert np.array_equal(buffers["W1"], grad(params)["W1"])


def test_coarser_parameters_are_not_moved_so_a_float64_input_keeps_its_sensitivity():
    # float32 weights beside float64 inputs: moved by a float32 ulp (6e-8 of them), the weights
    # move dx = dout @ w.T for real, by 1e-8 of it; taken for rounding, that spread passed errors
    # 1,000 times the sensitivity the correct check stated for dx
    def forward(x, w, b):
        return x @ w + b, (x, w)

    def backward(dout, cache):
        x, w = cache
        return dout @ w.T, x.T @ dout, dout.sum(axis=0)

    rng = np.random.default_rng(1000)
    x = rng.integers(0, 256, size=(4, 12)).astype(np.float64) / 255
    w = (rng.standard_normal((12, 5)) * 1e-2).astype(np.float32)
    inputs = {"x": x, "w": w, "b": np.zeros(5, dtype=np.float32)}
    correct = gradcheck.check_layer(forward, backward, inputs)
    assert correct.passed, correct
    stated = float(correct["x"].sensitivity[6])
    assert stated < 1e-7

    def wrong(dout, cache):
        dx, dw, db = backward(dout, cache)
        dx = dx.copy()
        dx.flat[6] *= 1 + 3 * stated
        return dx, dw, db

    report = gradcheck.check_layer(forward, wrong, inputs)
    assert report.failed_params == ["x"]
    assert list(report["x"].indices[report["x"].statuses == "wrong"]) == [6]
