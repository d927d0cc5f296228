"""The design the asker's second architecture should have used: logits -> softmax ->
cross-entropy, with output biases, vectorised over the batch.

Same data and hidden layer as the asker's nets (4 inputs -> 2 sigmoid hidden units), then two
output logits ``z = h @ W2.T + b2``; ``p = softmax(z)``; ``L = mean_n -sum_k y_nk log p_nk``.
The gradient of cross-entropy through softmax with respect to the logits is simply
``(p - y) / N``: no Jacobian to multiply by hand, and no vanishing sigmoid on the outputs.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from .asker import Y_ONE_HOT, X


class DenseCache(NamedTuple):
    x: np.ndarray
    w: np.ndarray


def dense_forward(x, w, b):
    """out = x @ w.T + b, with x (N, D), w (M, D), b (M,)."""
    return x @ w.T + b, DenseCache(x, w)


def dense_backward(dout, cache):
    """dout (N, M) -> dx = dout @ w (N, D), dw = dout.T @ x (M, D), db = sum_n dout (M,)."""
    x, w = cache
    return dout @ w, dout.T @ x, dout.sum(axis=0)


def sigmoid_forward(z):
    """s = 1 / (1 + exp(-z)); the cache is s itself."""
    s = 1.0 / (1.0 + np.exp(-z))
    return s, s


def sigmoid_backward(dout, s):
    """dz = dout * s * (1 - s)."""
    return dout * s * (1.0 - s)


def softmax_cross_entropy(z, y):
    """L = mean_n -sum_k y_nk log softmax(z_n)_k, stable; returns (L, dz = (p - y) / N)."""
    shifted = z - z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = z.shape[0]
    loss = -(y * log_p).sum() / n
    return loss, (np.exp(log_p) - y) / n


class RecommendedNet:
    """4 -> 2 sigmoid -> 2 logits -> softmax cross-entropy."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.params = {
            "W1": rng.normal(size=(2, 4)),
            "b1": rng.normal(size=2),
            "W2": rng.normal(size=(2, 2)),
            "b2": rng.normal(size=2),
        }

    NODE_ORDER = ("a1", "h", "z")
    NODE_STEPS = MappingProxyType({"h": "sigmoid", "z": "dense W2, b2"})

    @staticmethod
    def run(params, x=X, y=Y_ONE_HOT, overrides=None):
        """Forward and backward; any node (a1, h, z) may be replaced by ``overrides``."""
        overrides = overrides or {}
        a1, dense1 = dense_forward(x, params["W1"], params["b1"])
        a1 = overrides.get("a1", a1)
        h, sig = sigmoid_forward(a1)
        h = overrides.get("h", h)
        z, dense2 = dense_forward(h, params["W2"], params["b2"])
        z = overrides.get("z", z)
        loss, dz = softmax_cross_entropy(z, y)
        dh, dW2, db2 = dense_backward(dz, dense2)
        da1 = sigmoid_backward(dh, sig)
        _, dW1, db1 = dense_backward(da1, dense1)
        return (
            float(loss),
            {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2},
            {"a1": a1, "h": h, "z": z},
            {"a1": da1, "h": dh, "z": dz},
        )

    def loss(self, params):
        return self.run(params)[0]

    def grad(self, params):
        return self.run(params)[1]

    def nodes(self, params, x=X, y=Y_ONE_HOT):
        """The NodeTrace of the batch: logits z, hidden h, pre-activations a1."""
        from gradcheck.protocol import NodeTrace

        _, _, values, grads = self.run(params, x, y)

        def forward(overrides):
            loss, _, values, _ = self.run(params, x, y, overrides)
            return values, loss

        return NodeTrace(self.NODE_ORDER, values, grads, forward, self.NODE_STEPS)

    def problem(self, name="RecommendedNet"):
        """The batch problem, with one problem per sample and the node trace."""
        from gradcheck.protocol import Problem

        samples = tuple(
            Problem(
                lambda p, i=i: self.run(p, X[i : i + 1], Y_ONE_HOT[i : i + 1])[0],
                lambda p, i=i: self.run(p, X[i : i + 1], Y_ONE_HOT[i : i + 1])[1],
                {},
                f"sample {i}",
                nodes=lambda p, i=i: self.nodes(p, X[i : i + 1], Y_ONE_HOT[i : i + 1]),
            )
            for i in range(len(X))
        )
        return Problem(
            self.loss,
            self.grad,
            self.params,
            name,
            nodes=self.nodes,
            samples=samples,
            dims={"samples": len(X), "outputs": 2},
        )
