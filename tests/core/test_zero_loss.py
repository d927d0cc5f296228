"""A loss exactly 0 along every element it was moved along: its noise floor (ulps of |f|) is 0
there, so the engine measures the loss's resolution near 0 instead (differences.ZERO_RATIO):
a correct partial the loss cannot resolve is not called wrong, and one it can rule out still is.
"""

from __future__ import annotations

import numpy as np
import pytest

import gradcheck
from gradcheck.core.pilot import ZERO_BISECT, ZERO_CLIMB, ZERO_TRIES
from gradcheck.report.text import unresolved_params
from tests.helpers.toy import _cross_entropy_back, _softmax

N, D, K = 12, 4, 3


def converged_classifier(n: int = N, d: int = D, margin_scale: float = 60.0):
    """Softmax regression on separable data, its weights scaled until every margin is ~40
    nats or more: the stable cross-entropy rounds to exactly 0.0 and the hand-written (correct)
    partials are ~1e-18, as a classifier trained to convergence gives."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(n, d))
    teacher = rng.normal(size=(d, K))
    y = (x @ teacher).argmax(1)
    z = x @ teacher
    top = np.sort(z, 1)
    gap = (top[:, -1] - top[:, -2]).min()
    params = {"W": teacher * margin_scale / gap, "b": np.zeros(K)}

    def loss(p):
        z = x @ p["W"] + p["b"]
        s = z - z.max(1, keepdims=True)
        return float(np.mean(np.log(np.exp(s).sum(1)) - s[np.arange(n), y]))

    def grad(p):
        dz = _cross_entropy_back(_softmax(x @ p["W"] + p["b"]), y)
        return {"W": x.T @ dz, "b": dz.sum(0)}

    return loss, grad, params


def test_the_classifier_is_what_it_claims():
    loss, grad, params = converged_classifier()
    assert loss(params) == 0.0
    g = np.abs(grad(params)["W"])
    assert 0 < g.max() < 1e-15
    assert np.count_nonzero(g) >= 3


def test_correct_partials_at_a_loss_of_exactly_zero_are_not_called_wrong():
    loss, grad, params = converged_classifier()
    report = gradcheck.check(loss, grad, params)
    assert report.passed, str(report)
    # numeric 0 with a bound from the loss's resolution near 0, far above partials of 1e-18:
    # the headline says the check could not resolve them, rather than a plain "ok"
    assert "W" in unresolved_params(report)
    w = report["W"]
    assert np.all(w.numeric == 0)
    assert np.all(np.isfinite(w.tolerance))
    assert np.all(w.tolerance < 1e-10)  # a bound, not a blank cheque
    nonzero = w.analytic != 0
    assert np.all(w.tolerance[nonzero] > 10 * np.abs(w.analytic[nonzero]))


def test_an_error_the_loss_resolves_is_still_caught_at_a_loss_of_zero():
    loss, grad, params = converged_classifier()

    def planted(p):
        g = grad(p)
        g["W"][1, 2] += 1e-3
        return g

    report = gradcheck.check(loss, planted, params)
    assert report.failed_params == ["W"]
    statuses = report["W"].statuses.reshape(D, K)
    assert statuses[1, 2] == "wrong"
    assert (statuses == "wrong").sum() == 1


def hinge(mask: bool):
    """A linear SVM's mean hinge loss at weights where every margin exceeds 1 (loss 0, true
    gradient 0); without the mask the hand-written gradient is -mean(y x), not 0."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(16, 5))
    teacher = rng.normal(size=5)
    y = np.sign(x @ teacher)
    w = 1.5 * teacher / np.abs(x @ teacher).min()

    def loss(p):
        return float(np.mean(np.maximum(0.0, 1.0 - y * (x @ p["w"]))))

    def grad(p):
        active = (y * (x @ p["w"]) < 1).astype(float) if mask else np.ones(y.size)
        return {"w": -(x * (y * active)[:, None]).mean(0)}

    return loss, grad, {"w": w}


def test_a_missing_hinge_mask_at_zero_loss_is_caught_at_every_element():
    """The loss moves once a step carries a margin across 1: bisection finds ever smaller
    |f| there (a kink, not a quantum), so the bound shrinks until it rules the values out."""
    loss, grad, params = hinge(mask=False)
    assert loss(params) == 0.0
    report = gradcheck.check(loss, grad, params)
    assert report["w"].statuses.tolist() == ["wrong"] * 5
    assert np.all(report["w"].numeric == 0)
    assert np.all(report["w"].tolerance < np.abs(report["w"].analytic))


def test_the_masked_hinge_at_zero_loss_passes():
    loss, grad, params = hinge(mask=True)
    report = gradcheck.check(loss, grad, params)
    assert report.passed
    assert np.all(report["w"].analytic == 0)


@pytest.mark.parametrize("size", [20, 2000])
def test_a_loss_that_never_moves_stays_wrong_at_a_bounded_cost(size):
    """A loss identically 0 (a bug) gives no resolution at any step: every nonzero
    hand-written partial stays wrong; a big tensor climbs only a sample's steps."""
    w = np.random.default_rng(0).normal(size=size)
    report = gradcheck.check(
        lambda p: 0.0 * float(p["w"].sum()), lambda p: {"w": np.ones(size)}, {"w": w}
    )
    assert report["w"].statuses.tolist() == ["wrong"] * size
    assert report.evaluations <= 4 * size + 2 * ZERO_TRIES * (ZERO_CLIMB + ZERO_BISECT) + 200


def test_a_step_of_the_function_is_no_resolution():
    """A 0-1 loss (the fraction misclassified) is 0 at the start and jumps by 1/N: a
    staircase, but one the loss never climbs far above (ZERO_QUANTA), so no resolution is
    read from it and a surrogate's nonzero gradient stays wrong."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(20, 3))
    teacher = rng.normal(size=3)
    y = np.sign(x @ teacher)

    def loss(p):
        return float(np.mean(y * (x @ p["w"]) < 0))

    def surrogate(p):  # a logistic loss's gradient, not the 0-1 loss's (which is 0)
        return {"w": -(x * (y / (1 + np.exp(y * (x @ p["w"]))))[:, None]).mean(0)}

    params = {"w": 3 * teacher}
    assert loss(params) == 0.0
    report = gradcheck.check(loss, surrogate, params)
    assert report["w"].statuses.tolist() == ["wrong"] * 3


def test_far_points_that_overflow_or_raise_end_the_climb_quietly():
    """The resolution's steps stay within ZERO_REACH max(1, |x|) and a point where the loss
    raises ends them: a zero net whose loss overflows (as an error under -W error) or
    raises far from its point still checks clean."""
    x = np.zeros((1, 1))

    def loss(p):
        if np.any(np.abs(p["w1"]) > 10):
            raise ValueError("out of range")
        with np.errstate(over="raise"):
            hidden = 1 / (1 + np.exp(-(x @ p["w1"])))
        return float(0.5 * np.sum((hidden @ p["w2"]) ** 2))

    def grad(p):
        hidden = 1 / (1 + np.exp(-(x @ p["w1"])))
        out = hidden @ p["w2"]
        return {"w1": x.T @ ((out @ p["w2"].T) * hidden * (1 - hidden)), "w2": hidden.T @ out}

    params = {"w1": np.zeros((1, 2)), "w2": np.zeros((2, 1))}
    report = gradcheck.check(loss, grad, params)
    assert report.passed


def test_fast_mode_reads_the_resolution_too():
    """Fast mode's probes move every element at once: at a loss exactly 0 their noise is the
    same resolution (Pilots.measure_zero), measured before the first probe."""
    loss, grad, params = converged_classifier(n=64, d=400)  # large enough for fast mode
    report = gradcheck.check(loss, grad, params, mode="fast")
    assert report.passed
    assert report["W"].probe is not None
    assert report.evaluations < 200
    assert "W" in unresolved_params(report)

    def planted(p):
        g = grad(p)
        g["W"][5, 2] += 1e-3
        return g

    caught = gradcheck.check(loss, planted, params, mode="fast")
    assert caught.failed_params == ["W"]
    w = caught["W"]
    assert w.indices[w.statuses == "wrong"].tolist() == [5 * K + 2]


def test_assert_gradients_warns_when_it_passes_what_it_could_not_resolve():
    """A pass on unresolved parameters proves nothing: assert_gradients says so with an
    UnresolvedWarning (an error under filterwarnings = error), and stays silent otherwise."""
    loss, grad, params = converged_classifier()
    with pytest.warns(gradcheck.UnresolvedWarning, match="not resolved at this precision: W"):
        gradcheck.assert_gradients(loss, grad, params)
    hinge_loss, hinge_grad, hinge_params = hinge(mask=True)
    gradcheck.assert_gradients(hinge_loss, hinge_grad, hinge_params)  # all partials 0: resolved
