"""The asker's O/X letter networks (../shared/seed/), ported with every bug kept.

The specimen, not a model of style: scalar attributes ``w1..w12, b1, b2``, partials named
``d_L_d_ypred`` and ``d_ypred_d_w9`` as in the question, per-sample SGD in ``train``. Each
class's ``partials(x, y_true)`` is the body of the asker's training loop up to (not including)
the updates: it returns, per parameter, the factor the update multiplies by the learning rate,
i.e. the hand-written dL/dparam for one sample. ``train`` applies exactly those updates.

Checked loss: the mean over the samples of the per-sample loss, so the hand-written batch
gradient is the mean of the per-sample partials.

Nets:
    FirstNet        4-2-1 sigmoid net, MSE, labels [[0], [1]]: correct.
    LiteralNet      4-2-2 + softmax exactly as posted: d_L_d_ypred is a 2-vector multiplied into
                    every scalar partial, so each partial is a (2,) array.
    MeantNet        the same rules with each output using its own component of d_L_d_ypred
                    (what the asker meant): shapes fit, values wrong (no softmax derivative,
                    one path into each hidden node, -2 (y - p) for a mean over two outputs).
    CorrectedNet    the second architecture with correct backprop: softmax Jacobian, both
                    paths into each hidden node, dL/dp = (p - y) for the mean over 2 outputs.
"""

from __future__ import annotations

import operator
from types import MappingProxyType

import numpy as np

# The asker's two training samples, already max-pooled to 2x2 (O, then X).
X = np.array(
    [
        [0.46931818, 0.44129729, 0.54988949, 0.54295118],
        [0.54976771, 0.54295118, 0.50129169, 0.54988949],
    ]
)
Y_SINGLE = np.array([[0.0], [1.0]])  # first architecture: one output, 0 = "O", 1 = "X"
Y_ONE_HOT = np.array([[1.0, 0.0], [0.0, 1.0]])  # second architecture: o1 = "O", o2 = "X"

HIDDEN = ("w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "b1", "b2")


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def deriv_sigmoid(x):
    fx = sigmoid(x)
    return fx * (1 - fx)


def softmax(x):
    e = np.exp(np.asarray(x) - np.max(x))
    return e / e.sum()


def mse_loss(y_true, y_pred):
    return ((np.asarray(y_true) - np.asarray(y_pred)) ** 2).mean()


class _AskerStyle:
    """Scalar attributes drawn like the asker's (np.random.normal), from a seeded generator."""

    NAMES: tuple[str, ...] = ()

    def __init__(self, seed: int = 0, **values: float):
        rng = np.random.default_rng(seed)
        for name in self.NAMES:
            setattr(self, name, float(rng.normal()))
        for name, value in values.items():
            setattr(self, name, value)

    def params(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.NAMES}

    @classmethod
    def with_params(cls, params) -> _AskerStyle:
        net = cls.__new__(cls)
        for name in cls.NAMES:
            setattr(net, name, params[name])
        return net

    def train(self, data, all_y_trues, learn_rate=0.01, epochs=1):
        """The asker's per-sample SGD: ``self.w1 -= learn_rate * partial`` for every parameter.

        ``-=`` as they wrote it: a float is rebound, an array is updated in place, which is how
        the literal rules crash on their second step (a (2,) weight cannot take a (2, 2) update).
        """
        for _ in range(epochs):
            for x, y_true in zip(data, all_y_trues, strict=True):
                grads = self.partials(x, y_true)
                for name in self.NAMES:
                    setattr(
                        self, name, operator.isub(getattr(self, name), learn_rate * grads[name])
                    )

    def partials(self, x, y_true):  # pragma: no cover - overridden
        raise NotImplementedError

    # -- node-level view (gradcheck.protocol.NodeTrace), one sample ----------------------------
    NODE_ORDER: tuple[str, ...] = ()
    NODE_STEPS: MappingProxyType = MappingProxyType({})
    NODE_NAMES: MappingProxyType = MappingProxyType({})

    def nodes(self, x, y_true, overrides=None):  # pragma: no cover - overridden
        """Forward pass as layer vectors, any of them replaceable; returns (values, loss)."""
        raise NotImplementedError

    def node_grads(self, values, y_true):  # pragma: no cover - overridden
        """Hand-written dL/dnode for every node, from the same chain as ``partials``."""
        raise NotImplementedError

    def trace(self, x, y_true):
        """The NodeTrace of one sample: values, hand-written dL/dnode, re-runnable forward."""
        from gradcheck.protocol import NodeTrace

        values, _ = self.nodes(x, y_true)
        return NodeTrace(
            self.NODE_ORDER,
            values,
            self.node_grads(values, y_true),
            lambda overrides: self.nodes(x, y_true, overrides),
            self.NODE_STEPS,
            self.NODE_NAMES,
        )


class FirstNet(_AskerStyle):
    """4 inputs -> h1, h2 (sigmoid) -> o1 (sigmoid), MSE. The architecture that worked."""

    NAMES = (*HIDDEN, "w9", "w10", "b3")

    def feedforward(self, x):
        h1 = sigmoid(self.w1 * x[0] + self.w2 * x[1] + self.w3 * x[2] + self.w4 * x[3] + self.b1)
        h2 = sigmoid(self.w5 * x[0] + self.w6 * x[1] + self.w7 * x[2] + self.w8 * x[3] + self.b2)
        return sigmoid(self.w9 * h1 + self.w10 * h2 + self.b3)

    def sample_loss(self, x, y_true):
        return mse_loss(y_true, [self.feedforward(x)])

    NODE_ORDER = ("sum_h", "h", "sum_o", "o")
    NODE_STEPS = MappingProxyType(
        {"h": "sigmoid", "sum_o": "output weights w9, w10, b3", "o": "sigmoid"}
    )
    NODE_NAMES = MappingProxyType(
        {"sum_h": ("sum_h1", "sum_h2"), "h": ("h1", "h2"), "sum_o": ("sum_o1",), "o": ("o1",)}
    )

    def nodes(self, x, y_true, overrides=None):
        overrides = overrides or {}

        def node(name, value):
            return np.asarray(overrides.get(name, value), dtype=np.float64)

        sum_h = node(
            "sum_h",
            [
                self.w1 * x[0] + self.w2 * x[1] + self.w3 * x[2] + self.w4 * x[3] + self.b1,
                self.w5 * x[0] + self.w6 * x[1] + self.w7 * x[2] + self.w8 * x[3] + self.b2,
            ],
        )
        h = node("h", sigmoid(sum_h))
        sum_o = node("sum_o", [self.w9 * h[0] + self.w10 * h[1] + self.b3])
        o = node("o", sigmoid(sum_o))
        return {"sum_h": sum_h, "h": h, "sum_o": sum_o, "o": o}, float(mse_loss(y_true, o))

    def node_grads(self, values, y_true):
        d_L_d_ypred = -2 * (y_true - values["o"])
        d_L_d_sum_o = d_L_d_ypred * deriv_sigmoid(values["sum_o"])
        d_L_d_h = d_L_d_sum_o[0] * np.array([self.w9, self.w10])
        return {
            "o": d_L_d_ypred,
            "sum_o": d_L_d_sum_o,
            "h": d_L_d_h,
            "sum_h": d_L_d_h * deriv_sigmoid(values["sum_h"]),
        }

    def partials(self, x, y_true):
        sum_h1 = self.w1 * x[0] + self.w2 * x[1] + self.w3 * x[2] + self.w4 * x[3] + self.b1
        h1 = sigmoid(sum_h1)
        sum_h2 = self.w5 * x[0] + self.w6 * x[1] + self.w7 * x[2] + self.w8 * x[3] + self.b2
        h2 = sigmoid(sum_h2)
        sum_o1 = self.w9 * h1 + self.w10 * h2 + self.b3
        o1 = sigmoid(sum_o1)
        y_pred = o1

        d_L_d_ypred = -2 * (y_true[0] - y_pred)
        # Neuron o1
        d_ypred_d_w9 = h1 * deriv_sigmoid(sum_o1)
        d_ypred_d_w10 = h2 * deriv_sigmoid(sum_o1)
        d_ypred_d_b3 = deriv_sigmoid(sum_o1)
        d_ypred_d_h1 = self.w9 * deriv_sigmoid(sum_o1)
        d_ypred_d_h2 = self.w10 * deriv_sigmoid(sum_o1)
        # Neuron h1
        d_h1_d_w1 = x[0] * deriv_sigmoid(sum_h1)
        d_h1_d_w2 = x[1] * deriv_sigmoid(sum_h1)
        d_h1_d_w3 = x[2] * deriv_sigmoid(sum_h1)
        d_h1_d_w4 = x[3] * deriv_sigmoid(sum_h1)
        d_h1_d_b1 = deriv_sigmoid(sum_h1)
        # Neuron h2
        d_h2_d_w5 = x[0] * deriv_sigmoid(sum_h2)
        d_h2_d_w6 = x[1] * deriv_sigmoid(sum_h2)
        d_h2_d_w7 = x[2] * deriv_sigmoid(sum_h2)
        d_h2_d_w8 = x[3] * deriv_sigmoid(sum_h2)
        d_h2_d_b2 = deriv_sigmoid(sum_h2)

        return {
            "w1": d_L_d_ypred * d_ypred_d_h1 * d_h1_d_w1,
            "w2": d_L_d_ypred * d_ypred_d_h1 * d_h1_d_w2,
            "w3": d_L_d_ypred * d_ypred_d_h1 * d_h1_d_w3,
            "w4": d_L_d_ypred * d_ypred_d_h1 * d_h1_d_w4,
            "b1": d_L_d_ypred * d_ypred_d_h1 * d_h1_d_b1,
            "w5": d_L_d_ypred * d_ypred_d_h2 * d_h2_d_w5,
            "w6": d_L_d_ypred * d_ypred_d_h2 * d_h2_d_w6,
            "w7": d_L_d_ypred * d_ypred_d_h2 * d_h2_d_w7,
            "w8": d_L_d_ypred * d_ypred_d_h2 * d_h2_d_w8,
            "b2": d_L_d_ypred * d_ypred_d_h2 * d_h2_d_b2,
            "w9": d_L_d_ypred * d_ypred_d_w9,
            "w10": d_L_d_ypred * d_ypred_d_w10,
            "b3": d_L_d_ypred * d_ypred_d_b3,
        }


class _SecondArchitecture(_AskerStyle):
    """4 inputs -> h1, h2 (sigmoid) -> o1, o2 (sigmoid, no biases) -> softmax, MSE."""

    NAMES = (*HIDDEN, "w9", "w10", "w11", "w12")

    def forward(self, x):
        sum_h1 = self.w1 * x[0] + self.w2 * x[1] + self.w3 * x[2] + self.w4 * x[3] + self.b1
        h1 = sigmoid(sum_h1)
        sum_h2 = self.w5 * x[0] + self.w6 * x[1] + self.w7 * x[2] + self.w8 * x[3] + self.b2
        h2 = sigmoid(sum_h2)
        sum_o1 = self.w9 * h1 + self.w10 * h2
        o1 = sigmoid(sum_o1)
        sum_o2 = self.w11 * h1 + self.w12 * h2
        o2 = sigmoid(sum_o2)
        y_pred = softmax([o1, o2])
        return sum_h1, h1, sum_h2, h2, sum_o1, o1, sum_o2, o2, y_pred

    def feedforward(self, x):
        return self.forward(x)[-1]

    def sample_loss(self, x, y_true):
        return mse_loss(y_true, self.feedforward(x))

    # -- node-level view (gradcheck.protocol.NodeTrace): layer vectors, one sample --------
    NODE_ORDER = ("sum_h", "h", "sum_o", "o", "p")
    NODE_STEPS = MappingProxyType(
        {"h": "sigmoid", "sum_o": "output weights w9..w12", "o": "sigmoid", "p": "softmax"}
    )
    NODE_NAMES = MappingProxyType(
        {
            "sum_h": ("sum_h1", "sum_h2"),
            "h": ("h1", "h2"),
            "sum_o": ("sum_o1", "sum_o2"),
            "o": ("o1", "o2"),
            "p": ("p1", "p2"),
        }
    )

    def nodes(self, x, y_true, overrides=None):
        """Forward pass as layer vectors, any of them replaceable; returns (values, loss)."""
        overrides = overrides or {}

        def node(name, value):
            return np.asarray(overrides.get(name, value), dtype=np.float64)

        sum_h = node(
            "sum_h",
            [
                self.w1 * x[0] + self.w2 * x[1] + self.w3 * x[2] + self.w4 * x[3] + self.b1,
                self.w5 * x[0] + self.w6 * x[1] + self.w7 * x[2] + self.w8 * x[3] + self.b2,
            ],
        )
        h = node("h", sigmoid(sum_h))
        sum_o = node("sum_o", [self.w9 * h[0] + self.w10 * h[1], self.w11 * h[0] + self.w12 * h[1]])
        o = node("o", sigmoid(sum_o))
        p = node("p", softmax(o))
        values = {"sum_h": sum_h, "h": h, "sum_o": sum_o, "o": o, "p": p}
        return values, float(mse_loss(y_true, p))


class LiteralNet(_SecondArchitecture):
    """The second architecture's update rules exactly as posted (partials come out (2,))."""

    def partials(self, x, y_true):
        sum_h1, h1, sum_h2, h2, sum_o1, _o1, sum_o2, _o2, y_pred = self.forward(x)

        # Partial derivatives
        d_L_d_ypred = -2 * (y_true - y_pred)  # a 2-vector now
        # Node o1
        d_ypred_d_w9 = h1 * deriv_sigmoid(sum_o1)
        d_ypred_d_w10 = h2 * deriv_sigmoid(sum_o1)
        # Node o2
        d_ypred_d_w11 = h1 * deriv_sigmoid(sum_o2)
        d_ypred_d_w12 = h2 * deriv_sigmoid(sum_o2)

        d_ypred_d_h1_o1 = self.w9 * deriv_sigmoid(sum_o1)
        d_ypred_d_h2_o1 = self.w10 * deriv_sigmoid(sum_o1)  # computed, never used
        d_ypred_d_h1_o2 = self.w11 * deriv_sigmoid(sum_o2)  # computed, never used
        d_ypred_d_h2_o2 = self.w12 * deriv_sigmoid(sum_o2)
        del d_ypred_d_h2_o1, d_ypred_d_h1_o2

        # Node h1
        d_h1_d_w1 = x[0] * deriv_sigmoid(sum_h1)
        d_h1_d_w2 = x[1] * deriv_sigmoid(sum_h1)
        d_h1_d_w3 = x[2] * deriv_sigmoid(sum_h1)
        d_h1_d_w4 = x[3] * deriv_sigmoid(sum_h1)
        d_h1_d_b1 = deriv_sigmoid(sum_h1)
        # Node h2
        d_h2_d_w5 = x[0] * deriv_sigmoid(sum_h2)
        d_h2_d_w6 = x[1] * deriv_sigmoid(sum_h2)
        d_h2_d_w7 = x[2] * deriv_sigmoid(sum_h2)
        d_h2_d_w8 = x[3] * deriv_sigmoid(sum_h2)
        d_h2_d_b2 = deriv_sigmoid(sum_h2)

        return {
            "w1": d_L_d_ypred * d_ypred_d_h1_o1 * d_h1_d_w1,
            "w2": d_L_d_ypred * d_ypred_d_h1_o1 * d_h1_d_w2,
            "w3": d_L_d_ypred * d_ypred_d_h1_o1 * d_h1_d_w3,
            "w4": d_L_d_ypred * d_ypred_d_h1_o1 * d_h1_d_w4,
            "b1": d_L_d_ypred * d_ypred_d_h1_o1 * d_h1_d_b1,
            "w5": d_L_d_ypred * d_ypred_d_h2_o2 * d_h2_d_w5,
            "w6": d_L_d_ypred * d_ypred_d_h2_o2 * d_h2_d_w6,
            "w7": d_L_d_ypred * d_ypred_d_h2_o2 * d_h2_d_w7,
            "w8": d_L_d_ypred * d_ypred_d_h2_o2 * d_h2_d_w8,
            "b2": d_L_d_ypred * d_ypred_d_h2_o2 * d_h2_d_b2,
            "w9": d_L_d_ypred * d_ypred_d_w9,
            "w10": d_L_d_ypred * d_ypred_d_w10,
            "w11": d_L_d_ypred * d_ypred_d_w11,
            "w12": d_L_d_ypred * d_ypred_d_w12,
        }


class MeantNet(_SecondArchitecture):
    """The posted rules with each output using its own component of d_L_d_ypred."""

    def partials(self, x, y_true):
        sum_h1, h1, sum_h2, h2, sum_o1, _o1, sum_o2, _o2, y_pred = self.forward(x)

        d_L_d_ypred = -2 * (y_true - y_pred)
        d_L_d_ypred_o1, d_L_d_ypred_o2 = d_L_d_ypred[0], d_L_d_ypred[1]
        d_ypred_d_w9 = h1 * deriv_sigmoid(sum_o1)
        d_ypred_d_w10 = h2 * deriv_sigmoid(sum_o1)
        d_ypred_d_w11 = h1 * deriv_sigmoid(sum_o2)
        d_ypred_d_w12 = h2 * deriv_sigmoid(sum_o2)
        d_ypred_d_h1_o1 = self.w9 * deriv_sigmoid(sum_o1)
        d_ypred_d_h2_o2 = self.w12 * deriv_sigmoid(sum_o2)

        d_h1_d_w1 = x[0] * deriv_sigmoid(sum_h1)
        d_h1_d_w2 = x[1] * deriv_sigmoid(sum_h1)
        d_h1_d_w3 = x[2] * deriv_sigmoid(sum_h1)
        d_h1_d_w4 = x[3] * deriv_sigmoid(sum_h1)
        d_h1_d_b1 = deriv_sigmoid(sum_h1)
        d_h2_d_w5 = x[0] * deriv_sigmoid(sum_h2)
        d_h2_d_w6 = x[1] * deriv_sigmoid(sum_h2)
        d_h2_d_w7 = x[2] * deriv_sigmoid(sum_h2)
        d_h2_d_w8 = x[3] * deriv_sigmoid(sum_h2)
        d_h2_d_b2 = deriv_sigmoid(sum_h2)

        return {
            "w1": d_L_d_ypred_o1 * d_ypred_d_h1_o1 * d_h1_d_w1,
            "w2": d_L_d_ypred_o1 * d_ypred_d_h1_o1 * d_h1_d_w2,
            "w3": d_L_d_ypred_o1 * d_ypred_d_h1_o1 * d_h1_d_w3,
            "w4": d_L_d_ypred_o1 * d_ypred_d_h1_o1 * d_h1_d_w4,
            "b1": d_L_d_ypred_o1 * d_ypred_d_h1_o1 * d_h1_d_b1,
            "w5": d_L_d_ypred_o2 * d_ypred_d_h2_o2 * d_h2_d_w5,
            "w6": d_L_d_ypred_o2 * d_ypred_d_h2_o2 * d_h2_d_w6,
            "w7": d_L_d_ypred_o2 * d_ypred_d_h2_o2 * d_h2_d_w7,
            "w8": d_L_d_ypred_o2 * d_ypred_d_h2_o2 * d_h2_d_w8,
            "b2": d_L_d_ypred_o2 * d_ypred_d_h2_o2 * d_h2_d_b2,
            "w9": d_L_d_ypred_o1 * d_ypred_d_w9,
            "w10": d_L_d_ypred_o1 * d_ypred_d_w10,
            "w11": d_L_d_ypred_o2 * d_ypred_d_w11,
            "w12": d_L_d_ypred_o2 * d_ypred_d_w12,
        }

    def node_grads(self, values, y_true):
        """The intermediate gradients the chain above implies (the asker never names them):
        dL/do_k = dL/dp_k (the softmax is skipped), and dL/dh1 takes only the o1 path (w9),
        dL/dh2 only the o2 path (w12)."""
        sum_h, p, sum_o = values["sum_h"], values["p"], values["sum_o"]
        d_L_d_ypred = -2 * (y_true - p)
        d_L_d_o = d_L_d_ypred
        d_L_d_sum_o = d_L_d_o * deriv_sigmoid(sum_o)
        d_L_d_h = np.array([d_L_d_sum_o[0] * self.w9, d_L_d_sum_o[1] * self.w12])
        return {
            "p": d_L_d_ypred,
            "o": d_L_d_o,
            "sum_o": d_L_d_sum_o,
            "h": d_L_d_h,
            "sum_h": d_L_d_h * deriv_sigmoid(sum_h),
        }


class CorrectedNet(_SecondArchitecture):
    """The second architecture with correct backprop, in the asker's naming."""

    def partials(self, x, y_true):
        sum_h1, h1, sum_h2, h2, sum_o1, _o1, sum_o2, _o2, y_pred = self.forward(x)
        p = y_pred

        # L = mean_k (p_k - y_k)^2 over the 2 outputs: dL/dp_k = (2 / 2) (p_k - y_k)
        d_L_d_p = p - y_true
        # softmax Jacobian: dp_i/do_j = p_i (delta_ij - p_j)
        d_p_d_o = np.diag(p) - np.outer(p, p)
        d_L_d_o = d_p_d_o.T @ d_L_d_p
        d_L_d_sum_o1 = d_L_d_o[0] * deriv_sigmoid(sum_o1)
        d_L_d_sum_o2 = d_L_d_o[1] * deriv_sigmoid(sum_o2)
        # each hidden node feeds both outputs: two paths
        d_L_d_h1 = d_L_d_sum_o1 * self.w9 + d_L_d_sum_o2 * self.w11
        d_L_d_h2 = d_L_d_sum_o1 * self.w10 + d_L_d_sum_o2 * self.w12
        d_L_d_sum_h1 = d_L_d_h1 * deriv_sigmoid(sum_h1)
        d_L_d_sum_h2 = d_L_d_h2 * deriv_sigmoid(sum_h2)

        return {
            "w1": d_L_d_sum_h1 * x[0],
            "w2": d_L_d_sum_h1 * x[1],
            "w3": d_L_d_sum_h1 * x[2],
            "w4": d_L_d_sum_h1 * x[3],
            "b1": d_L_d_sum_h1,
            "w5": d_L_d_sum_h2 * x[0],
            "w6": d_L_d_sum_h2 * x[1],
            "w7": d_L_d_sum_h2 * x[2],
            "w8": d_L_d_sum_h2 * x[3],
            "b2": d_L_d_sum_h2,
            "w9": d_L_d_sum_o1 * h1,
            "w10": d_L_d_sum_o1 * h2,
            "w11": d_L_d_sum_o2 * h1,
            "w12": d_L_d_sum_o2 * h2,
        }

    def node_grads(self, values, y_true):
        """dL/dp = p - y; dL/do = J^T dL/dp (J = diag(p) - p p^T); both paths into h."""
        sum_h, p, sum_o = values["sum_h"], values["p"], values["sum_o"]
        d_L_d_p = p - y_true
        d_L_d_o = (np.diag(p) - np.outer(p, p)).T @ d_L_d_p
        d_L_d_sum_o = d_L_d_o * deriv_sigmoid(sum_o)
        w = np.array([[self.w9, self.w10], [self.w11, self.w12]])
        d_L_d_h = w.T @ d_L_d_sum_o
        return {
            "p": d_L_d_p,
            "o": d_L_d_o,
            "sum_o": d_L_d_sum_o,
            "h": d_L_d_h,
            "sum_h": d_L_d_h * deriv_sigmoid(sum_h),
        }


def sample_problem(net_class, x, y, name=""):
    """One sample's loss and hand-written partials (and node trace, where the net has one)."""
    from gradcheck.protocol import Problem

    def loss(params):
        return float(net_class.with_params(params).sample_loss(x, y))

    def grad(params):
        return net_class.with_params(params).partials(x, y)

    nodes = None
    if net_class.node_grads is not _AskerStyle.node_grads:  # the class writes them out

        def nodes(params):
            return net_class.with_params(params).trace(x, y)

    return Problem(loss, grad, {}, name, nodes=nodes)


def problem(net_class, data=X, labels=Y_ONE_HOT, seed=0, name=""):
    """An asker-style net on its samples: the batch loss is the mean of per-sample losses and
    the hand-written batch gradient the mean of per-sample partials. Per-sample problems,
    node traces (where the net defines them) and named sizes come along for the diagnosis."""
    from gradcheck.diagnosis.nodes import batch_trace
    from gradcheck.protocol import Problem

    samples = tuple(
        sample_problem(net_class, x, y, f"sample {i}")
        for i, (x, y) in enumerate(zip(data, labels, strict=True))
    )

    def loss(params):
        return float(np.mean([s.loss(params) for s in samples]))

    def grad(params):
        per_sample = [s.grad(params) for s in samples]
        return {k: np.mean([g[k] for g in per_sample], axis=0) for k in net_class.NAMES}

    nodes = None
    if samples[0].nodes is not None:

        def nodes(params):
            return batch_trace([s.nodes(params) for s in samples])

    dims = {"samples": len(data), "outputs": np.shape(labels)[1]}
    return Problem(
        loss,
        grad,
        net_class(seed=seed).params(),
        name or net_class.__name__,
        nodes=nodes,
        samples=samples,
        dims=dims,
    )
