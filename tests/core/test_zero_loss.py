"""A loss exactly 0 along every element it was moved along: its noise floor (ulps of |f|) is 0
there, so the engine measures the loss's resolution near 0 instead (pilot.QUANTUM_RATIO):
a correct partial the loss cannot resolve is not called wrong, and one it can rule out still is.
The same measurement serves a loss near 0 whose values move in steps far above their ulps.
"""

from __future__ import annotations

import numpy as np
import pytest

import gradcheck
from gradcheck.core.pilot import QUANTUM_BISECT, QUANTUM_CLIMB, QUANTUM_TRIES
from gradcheck.report.text import unresolved_params
from tests.helpers.toy import _cross_entropy_back, _softmax

N, D, K = 12, 4, 3


def converged_classifier(
    n: int = N, d: int = D, margin_scale: float = 60.0, seed: int = 7, k: int = K
):
    """Softmax regression on separable data, its weights scaled until every margin is
    ``margin_scale`` nats or more: at 60 the stable cross-entropy rounds to exactly 0.0 and the
    hand-written (correct) partials are ~1e-18, as a classifier trained to convergence gives;
    at 20-35 it is 1e-10-1e-17, computed as log(1 + t) with t far below 1's ulp."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    teacher = rng.normal(size=(d, k))
    y = (x @ teacher).argmax(1)
    z = x @ teacher
    top = np.sort(z, 1)
    gap = (top[:, -1] - top[:, -2]).min()
    params = {"W": teacher * margin_scale / gap, "b": np.zeros(k)}

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
    assert (
        report.evaluations <= 4 * size + 2 * QUANTUM_TRIES * (QUANTUM_CLIMB + QUANTUM_BISECT) + 200
    )


def test_a_step_of_the_function_is_no_resolution():
    """A 0-1 loss (the fraction misclassified) is 0 at the start and jumps by 1/N: a
    staircase, but one the loss never climbs far above (QUANTUM_QUANTA), so no resolution is
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
    """The resolution's steps stay within QUANTUM_REACH max(1, |x|) and a point where the loss
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
    same resolution (Pilots.measure_quantum), measured before the first probe."""
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


@pytest.mark.parametrize(
    ("n", "d", "k", "margin", "seed"),
    [(14, 48, 3, 20.0, 13), (17, 23, 3, 20.0, 21), (59, 2, 2, 35.0, 4), (79, 4, 3, 35.0, 58)],
)
@pytest.mark.parametrize("mode", ["full", "fast"])
def test_a_loss_whose_values_move_in_steps_far_above_its_ulps(n, d, k, margin, seed, mode):
    """A cross-entropy of 2e-10 (or 1e-17) is mean(log(1 + t)) with t ~1e-9: 1 + t rounds to
    2.2e-16, so the loss moves in steps of 2.2e-16 / N, 1e6 (1e1) of its value and 1e9 of its
    ulps. Its noise tables hit those steps at exact multiples (read as noise of 2e-26) or never
    moved, and correct partials failed against numeric 0s with bounds of 1e-16 or 1e-25. The
    quantum near f0 is measured (Pilots._quantum): every partial passes, resolved where the
    quantum allows."""
    loss, grad, params = converged_classifier(n, d, margin, seed, k)
    assert 0 < loss(params) < 1e-9
    report = gradcheck.check(loss, grad, params, mode=mode)
    assert report.passed, str(report)


def test_an_error_is_caught_where_the_loss_moves_in_steps():
    # the bias of the 2e-10 classifier resolves to ~0.3% of its partials (the quantum, 1.6e-17,
    # over steps that move the loss by many of them): half again too large is caught there
    loss, grad, params = converged_classifier(14, 48, 20.0, 13, 3)
    report = gradcheck.check(loss, grad, params)
    assert report.passed
    assert report["b"].sensitivity_summary()[1] < 0.01
    assert report["b"].noise > 1e-18  # the quantum (1.6e-17), not the loss's ulps (3e-26)

    def planted(p):
        g = grad(p)
        g["b"][1] *= 1.5
        return g

    caught = gradcheck.check(loss, planted, params)
    assert caught.failed_params == ["b"]
    assert np.flatnonzero(caught["b"].statuses == "wrong").tolist() == [1]


@pytest.mark.parametrize("margin", [600.0, 700.0, 730.0])
def test_subnormal_partials_in_fast_mode_raise_no_overflow(margin):
    # partials of 1e-262 .. 1e-319: the joint direction's weights (1 / spread) and the stated
    # relative sensitivity (over the median partial) overflowed, an error under -W error
    loss, grad, params = converged_classifier(64, 40, margin)
    report = gradcheck.check(loss, grad, params, mode="fast")
    assert report.passed
    report.to_json()


def test_assert_gradients_warns_when_it_passes_what_it_could_not_resolve():
    """A pass on unresolved parameters proves nothing: assert_gradients says so with an
    UnresolvedWarning (an error under filterwarnings = error), and stays silent otherwise."""
    loss, grad, params = converged_classifier()
    with pytest.warns(gradcheck.UnresolvedWarning, match="not resolved at this precision: W"):
        gradcheck.assert_gradients(loss, grad, params)
    hinge_loss, hinge_grad, hinge_params = hinge(mask=True)
    gradcheck.assert_gradients(hinge_loss, hinge_grad, hinge_params)  # all partials 0: resolved
