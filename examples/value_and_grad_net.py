"""Code whose one call returns the loss and its gradients: ``check_value_and_grad``.

Two shapes seen in widely copied code:

* a CS231n-style ``TwoLayerNet.loss(X, y) -> (loss, grads)`` with ``grads`` keyed like
  ``net.params``; the planted bug differentiates the L2 penalty ``reg * sum(W**2)`` as
  ``reg * W`` (half of ``2 reg W``);
* a min-char-rnn-style ``lossFun(inputs, targets, hprev)`` returning
  ``loss, dWxh, dWhh, dWhy, dbh, dby, hprev``: ``unpack=`` picks the loss and the five
  gradients, matched to ``params = [Wxh, Whh, Why, bh, by]`` (elements ``[1][3, 2]`` ... named
  by position), or to a dict with ``unpack=lambda out: (out[0], dict(zip(names, out[1:6])))``.
"""

from __future__ import annotations

import numpy as np

import gradcheck


class TwoLayerNet:
    """affine - ReLU - affine - softmax, L2 penalty ``reg * sum(W1**2) + reg * sum(W2**2)``."""

    def __init__(self, reg=0.1, bug=False, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {
            "W1": rng.normal(size=(4, 5)) * 0.5,
            "b1": rng.normal(size=5) * 0.1,
            "W2": rng.normal(size=(5, 3)) * 0.5,
            "b2": rng.normal(size=3) * 0.1,
        }
        self.reg, self.bug = reg, bug

    def loss(self, X, y):
        p, reg = self.params, self.reg
        z = X @ p["W1"] + p["b1"]
        h = np.maximum(z, 0)
        scores = h @ p["W2"] + p["b2"]
        shifted = scores - scores.max(axis=1, keepdims=True)
        probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        n = X.shape[0]
        loss = -np.log(probs[np.arange(n), y]).mean()
        loss += reg * (np.sum(p["W1"] ** 2) + np.sum(p["W2"] ** 2))
        dscores = probs.copy()
        dscores[np.arange(n), y] -= 1
        dscores /= n
        grads = {"W2": h.T @ dscores, "b2": dscores.sum(axis=0)}
        dz = (dscores @ p["W2"].T) * (z > 0)
        grads["W1"], grads["b1"] = X.T @ dz, dz.sum(axis=0)
        factor = 1.0 if self.bug else 2.0  # bug: d(reg W^2)/dW written as reg W
        grads["W1"] += factor * reg * p["W1"]
        grads["W2"] += factor * reg * p["W2"]
        return loss, grads


def char_rnn(seed=0, vocab=4, hidden=3, bug=False):
    """A tiny min-char-rnn: parameters, data and ``lossFun`` (globals in the original).

    ``bug=True`` back-propagates through time with ``Whh`` instead of ``Whh.T``."""
    rng = np.random.default_rng(seed)
    Wxh = rng.normal(size=(hidden, vocab)) * 0.3
    Whh = rng.normal(size=(hidden, hidden)) * 0.3
    Why = rng.normal(size=(vocab, hidden)) * 0.3
    bh, by = np.zeros((hidden, 1)), np.zeros((vocab, 1))
    inputs, targets = [0, 1, 2, 3], [1, 2, 3, 0]

    def lossFun(inputs, targets, hprev):  # the original name
        xs, hs, ys, ps = {}, {-1: np.copy(hprev)}, {}, {}
        loss = 0.0
        for t in range(len(inputs)):
            xs[t] = np.zeros((vocab, 1))
            xs[t][inputs[t]] = 1
            hs[t] = np.tanh(Wxh @ xs[t] + Whh @ hs[t - 1] + bh)
            ys[t] = Why @ hs[t] + by
            ps[t] = np.exp(ys[t]) / np.sum(np.exp(ys[t]))
            loss += -np.log(ps[t][targets[t], 0])
        dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
        dbh, dby, dhnext = np.zeros_like(bh), np.zeros_like(by), np.zeros_like(hs[0])
        for t in reversed(range(len(inputs))):
            dy = np.copy(ps[t])
            dy[targets[t]] -= 1
            dWhy += dy @ hs[t].T
            dby += dy
            dh = Why.T @ dy + dhnext
            dhraw = (1 - hs[t] * hs[t]) * dh
            dbh += dhraw
            dWxh += dhraw @ xs[t].T
            dWhh += dhraw @ hs[t - 1].T
            dhnext = (Whh if bug else Whh.T) @ dhraw
        return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]

    params = [Wxh, Whh, Why, bh, by]
    return params, lambda _: lossFun(inputs, targets, np.zeros((hidden, 1)))


def main() -> int:
    X = np.random.default_rng(1).normal(size=(6, 4))
    y = np.array([0, 1, 2, 0, 1, 2])
    reports = {}
    for bug in (False, True):
        net = TwoLayerNet(bug=bug)
        reports[bug] = gradcheck.check_value_and_grad(lambda p, net=net: net.loss(X, y), net.params)
    print("two-layer net, correct:", "passed" if reports[False].passed else "FAILED")
    print("two-layer net, reg gradient halved:", reports[True].failed_params)
    params, fun = char_rnn()
    rnn = gradcheck.check_value_and_grad(fun, params, unpack=lambda out: (out[0], out[1:6]))
    print("char-rnn lossFun:", "passed" if rnn.passed else "FAILED")
    params, fun = char_rnn(bug=True)
    names = ["Wxh", "Whh", "Why", "bh", "by"]  # the same, named: errors read Whh[2, 0]
    wrong = gradcheck.check_value_and_grad(
        fun,
        dict(zip(names, params, strict=True)),
        unpack=lambda out: (out[0], dict(zip(names, out[1:6], strict=True))),
    )
    print("char-rnn lossFun, Whh for Whh.T through time:", wrong.failed_params)
    ok = reports[False].passed and reports[True].failed_params == ["W1", "W2"] and rnn.passed
    ok = ok and wrong.failed_params == ["Wxh", "Whh", "bh"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
