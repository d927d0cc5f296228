"""Gradient checks in a test suite: ``pytest examples/test_with_pytest.py``.

Installing gradcheck enables its pytest plugin: ``gradcheck.assert_gradients`` fails a test
with the diff table and diagnosis as the message, and the ``gradcheck`` fixture seeds
``random``/``numpy.random`` (``--gradcheck-seed N``) and hands out a seeded ``rng``.
Add ``--gradcheck-report-dir reports/`` to keep Markdown, JSON and HTML reports of failures.
"""

import numpy as np
import pytest

import gradcheck


def dense_sigmoid(x, y, bug=None):
    """loss(W, b) = mean (sigmoid(x W.T + b) - y)^2 with its hand-written gradient."""

    def loss(p):
        s = 1 / (1 + np.exp(-(x @ p["W"].T + p["b"])))
        return float(np.mean((s - y) ** 2))

    def grad(p):
        s = 1 / (1 + np.exp(-(x @ p["W"].T + p["b"])))
        da = 2 * (s - y) / y.size * s * (1 - s)
        if bug == "no_sigmoid_derivative":
            da = 2 * (s - y) / y.size
        return {"W": da.T @ x, "b": da.sum(0)}

    return loss, grad


def test_dense_layer_gradient(gradcheck):
    x = gradcheck.rng.normal(size=(10, 4))  # seeded by --gradcheck-seed
    y = gradcheck.rng.uniform(size=(10, 3))
    loss, grad = dense_sigmoid(x, y)
    params = {"W": gradcheck.rng.normal(size=(3, 4)), "b": np.zeros(3)}
    gradcheck.assert_gradients(loss, grad, params)


# A planted bug: this test fails, with the table in its message (xfail keeps the suite green).
@pytest.mark.xfail(raises=gradcheck.GradientMismatch, strict=True)
def test_forgotten_sigmoid_derivative_is_caught():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(10, 4)), rng.uniform(size=(10, 3))
    loss, grad = dense_sigmoid(x, y, bug="no_sigmoid_derivative")
    gradcheck.assert_gradients(loss, grad, {"W": rng.normal(size=(3, 4)), "b": np.zeros(3)})
