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

import numpy as np

# The asker's two training samples, already max-pooled to 2x2 (O, then X).
X = np.array([[0.46931818, 0.44129729, 0.54988949, 0.54295118],
              [0.54976771, 0.54295118, 0.50129169, 0.54988949]])
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
        """The asker's per-sample SGD: every parameter moves by learn_rate * its partial."""
        for _ in range(epochs):
            for x, y_true in zip(data, all_y_trues, strict=True):
                grads = self.partials(x, y_true)
                for name in self.NAMES:
                    setattr(self, name, getattr(self, name) - learn_rate * grads[name])

    def partials(self, x, y_true):  # pragma: no cover - overridden
        raise NotImplementedError


class FirstNet(_AskerStyle):
    """4 inputs -> h1, h2 (sigmoid) -> o1 (sigmoid), MSE. The architecture that worked."""

    NAMES = (*HIDDEN, "w9", "w10", "b3")

    def feedforward(self, x):
        h1 = sigmoid(self.w1 * x[0] + self.w2 * x[1] + self.w3 * x[2] + self.w4 * x[3] + self.b1)
        h2 = sigmoid(self.w5 * x[0] + self.w6 * x[1] + self.w7 * x[2] + self.w8 * x[3] + self.b2)
        return sigmoid(self.w9 * h1 + self.w10 * h2 + self.b3)

    def sample_loss(self, x, y_true):
        return mse_loss(y_true, [self.feedforward(x)])

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


def problem(net_class, data=X, labels=Y_ONE_HOT, seed=0, name=""):
    """The (loss, grad, params) of an asker-style net on its samples: batch mean of both."""
    from gradcheck.protocol import Problem

    start = net_class(seed=seed)

    def loss(params):
        net = net_class.with_params(params)
        return float(np.mean([net.sample_loss(x, y) for x, y in zip(data, labels, strict=True)]))

    def grad(params):
        net = net_class.with_params(params)
        per_sample = [net.partials(x, y) for x, y in zip(data, labels, strict=True)]
        return {k: np.mean([g[k] for g in per_sample], axis=0) for k in net_class.NAMES}

    return Problem(loss, grad, start.params(), name or net_class.__name__)
