"""from_training_step gives every call a fresh copy of its sample (issue 13, item 5)."""

from __future__ import annotations

import numpy as np
import pytest

from examples.list_network import Network, X, Y
from gradcheck import LossError, check_problem, from_training_step
from gradcheck.adapters.training import SampleChangedWarning

LR = 0.1


class Reshaper:
    """One linear layer trained per sample by a step that reshapes its sample in place, as
    from-scratch MNIST scripts do (``x.shape += (1,)`` to make a column)."""

    def __init__(self, bug: bool = False):
        rng = np.random.default_rng(4)
        self.W = rng.normal(size=(2, 3))
        self.bug = bug

    def loss(self, x, t):
        x = x.reshape(-1, 1)
        return float(0.5 * np.sum((self.W @ x - t.reshape(-1, 1)) ** 2))

    def step(self, x, t):
        x.shape += (1,)  # the sample itself becomes a column
        t.shape += (1,)
        d = self.W @ x - t
        dW = d @ x.T
        if self.bug:
            dW[0, 2] *= 3
        self.W -= LR * dW


def _samples():
    rng = np.random.default_rng(5)
    return [(rng.normal(size=3), rng.normal(size=2)) for _ in range(3)]


def test_step_that_reshapes_its_sample_is_checked_and_reported():
    samples = _samples()
    originals = [(x.copy(), t.copy()) for x, t in samples]
    problem = from_training_step(
        Reshaper(), "step", "loss", learning_rate=LR, samples=samples, exclude=["bug"]
    )
    with pytest.warns(SampleChangedWarning, match=r"argument 0 changed shape \(3,\) -> \(3, 1\)"):
        report = check_problem(problem)
    assert report.passed, report.to_text()
    for (x, t), (x0, t0) in zip(samples, originals, strict=True):  # the user's data untouched
        assert x.shape == x0.shape
        assert np.array_equal(x, x0)
        assert t.shape == t0.shape
        assert np.array_equal(t, t0)


def test_step_that_reshapes_its_sample_still_pins_a_planted_bug():
    problem = from_training_step(
        Reshaper(bug=True), "step", "loss", learning_rate=LR, samples=_samples(), exclude=["bug"]
    )
    with pytest.warns(SampleChangedWarning):
        report = check_problem(problem)
    assert [(e.param, e.index) for e in report.entries if e.status == "wrong"] == [("W", (0, 2))]


# -- list-valued weights: Nielsen's update_mini_batch is the training step ----------------------
def _nielsen_problem(bug, in_place=False):
    net = Network(bug=bug)

    def step(n, x, y):
        if not in_place:
            n.update_mini_batch([(x, y)], 0.5)
            return
        nabla_b, nabla_w = n.backprop(x, y)
        for w, nw in zip(n.weights, nabla_w, strict=True):
            w -= 0.5 * nw  # in place, inside the list
        for b, nb in zip(n.biases, nabla_b, strict=True):
            b -= 0.5 * nb

    samples = [(X, Y), (-X, 1 - Y)]
    return net, from_training_step(
        net, step, lambda n, x, y: n.cost(x, y), learning_rate=0.5, samples=samples
    )


@pytest.mark.parametrize("in_place", [False, True])
def test_list_weights_updated_by_a_training_step(in_place):
    net, problem = _nielsen_problem(bug=False, in_place=in_place)
    weights, biases = net.weights, net.biases
    saved = [a.copy() for a in [*weights, *biases]]
    report = check_problem(problem)
    assert report.passed, report.to_text()
    assert net.weights is weights
    assert net.biases is biases
    for a, b in zip([*net.weights, *net.biases], saved, strict=True):
        assert a.tobytes() == b.tobytes()
    _, problem = _nielsen_problem(bug=True, in_place=in_place)
    report = check_problem(problem)
    assert report.failed_params == ["biases[0]", "weights[0]"]


# QA: a crashing step was LossError("grad raised InputError: the training step raised ...")
def test_step_that_raises_is_reported_as_the_step_not_as_grad():
    class Transposed(Reshaper):
        def step(self, x, t):
            d = self.W @ x - t
            self.W -= LR * np.outer(x, d)  # (3, 2) update of a (2, 3) weight: numpy raises

    problem = from_training_step(
        Transposed(), "step", "loss", learning_rate=LR, samples=_samples(), exclude=["bug"]
    )
    with pytest.raises(LossError, match=r"^the training step raised ValueError: .*\(sample 0\)$"):
        check_problem(problem)
