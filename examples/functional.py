"""The functional API: ``gradcheck.check(loss, grad, params)``.

A 3-4-2 tanh network with a softmax cross-entropy loss, parameters in a dict. ``grad`` has
one planted mistake (the hidden layer's derivative uses the pre-activation: tanh'(a) written
as 1 - a**2 instead of 1 - tanh(a)**2). Run it:

    python examples/functional.py            # prints the report, exits 1 (the bug is found)
    gradcheck check examples/functional.py:make_correct     # the fixed version: exit 0
"""

import sys

import numpy as np

import gradcheck

rng = np.random.default_rng(0)
X = rng.normal(size=(8, 3))
Y = np.eye(2)[rng.integers(0, 2, size=8)]


def forward(p):
    a = X @ p["W1"].T + p["b1"]
    h = np.tanh(a)
    z = h @ p["W2"].T + p["b2"]
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return a, h, log_p


def loss(p):
    """Mean cross-entropy over the batch."""
    return float(-(Y * forward(p)[2]).sum() / len(X))


def grad(p, buggy=True):
    """dL/dz = (p - y) / N, then back through the dense and tanh layers."""
    a, h, log_p = forward(p)
    dz = (np.exp(log_p) - Y) / len(X)
    dh = dz @ p["W2"]
    da = dh * (1 - a**2) if buggy else dh * (1 - h**2)
    return {"W1": da.T @ X, "b1": da.sum(0), "W2": dz.T @ h, "b2": dz.sum(0)}


def params():
    r = np.random.default_rng(1)
    return {
        "W1": r.normal(size=(4, 3)),
        "b1": r.normal(size=4),
        "W2": r.normal(size=(2, 4)),
        "b2": r.normal(size=2),
    }


def make():
    """For the command line: the buggy version."""
    return loss, grad, params()


def make_correct():
    return loss, lambda p: grad(p, buggy=False), params()


if __name__ == "__main__":
    report = gradcheck.check(loss, grad, params())
    print(report)
    sys.exit(0 if report.passed else 1)
