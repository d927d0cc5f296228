"""from_training_step gives every call a fresh copy of its sample (issue 13, item 5)."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import check_problem, from_training_step
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
    with pytest.warns(SampleChangedWarning, match=r"sample 0: argument 0 changed shape"):
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
