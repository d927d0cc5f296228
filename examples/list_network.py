"""A Nielsen-style network (neuralnetworksanddeeplearning.com, network.py): weights in lists.

``self.weights = [W1, W2]`` and ``self.biases = [b1, b2]`` hold column-vector layers, and
``backprop(x, y)`` returns ``(nabla_b, nabla_w)`` as lists. ``gradcheck.from_attributes``
finds the two list attributes (``sizes``, a list of ints, is left out) and checks them as a
pytree: elements are named ``weights[1][3, 2]``. The planted bug forgets ``sigmoid_prime`` on
the hidden layer: every partial of the first layer is wrong, and the diagnosis groups them by
hidden unit (the missing factor is that unit's ``sigmoid_prime(z)``).

``gradcheck check examples/list_network.py:make`` runs the buggy one from the command line.
"""

from __future__ import annotations

import itertools

import numpy as np

import gradcheck


def sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * z))


def sigmoid_prime(z):
    return sigmoid(z) * (1 - sigmoid(z))


class Network:
    """sizes = [2, 3, 2]: sigmoid layers, quadratic cost 0.5 |a - y|^2 on one sample."""

    def __init__(self, sizes=(2, 3, 2), bug=False, seed=1):
        rng = np.random.default_rng(seed)
        self.num_layers = len(sizes)
        self.sizes = list(sizes)
        self.biases = [rng.standard_normal((y, 1)) for y in sizes[1:]]
        self.weights = [rng.standard_normal((y, x)) for x, y in itertools.pairwise(sizes)]
        self.bug = bug

    def feedforward(self, a):
        for b, w in zip(self.biases, self.weights, strict=True):
            a = sigmoid(w @ a + b)
        return a

    def cost(self, x, y):
        return float(0.5 * np.sum((self.feedforward(x) - y) ** 2))

    def update_mini_batch(self, mini_batch, eta):
        """One SGD step on a mini-batch, as in the book (rebinds the two lists)."""
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        for x, y in mini_batch:
            delta_nabla_b, delta_nabla_w = self.backprop(x, y)
            nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b, strict=True)]
            nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w, strict=True)]
        step = eta / len(mini_batch)
        self.weights = [w - step * nw for w, nw in zip(self.weights, nabla_w, strict=True)]
        self.biases = [b - step * nb for b, nb in zip(self.biases, nabla_b, strict=True)]

    def backprop(self, x, y):
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        activation, activations, zs = x, [x], []
        for b, w in zip(self.biases, self.weights, strict=True):
            z = w @ activation + b
            zs.append(z)
            activation = sigmoid(z)
            activations.append(activation)
        delta = (activations[-1] - y) * sigmoid_prime(zs[-1])
        nabla_b[-1] = delta
        nabla_w[-1] = delta @ activations[-2].T
        for layer in range(2, self.num_layers):
            sp = 1.0 if self.bug else sigmoid_prime(zs[-layer])  # bug: sigmoid_prime forgotten
            delta = (self.weights[-layer + 1].T @ delta) * sp
            nabla_b[-layer] = delta
            nabla_w[-layer] = delta @ activations[-layer - 1].T
        return nabla_b, nabla_w


X = np.array([[0.5], [-1.0]])
Y = np.array([[1.0], [0.0]])


def problem(net):
    def grad(n):
        nabla_b, nabla_w = n.backprop(X, Y)
        return {"biases": nabla_b, "weights": nabla_w}

    return gradcheck.from_attributes(net, lambda n: n.cost(X, Y), grad)


def make():
    """The buggy network, for ``gradcheck check examples/list_network.py:make``."""
    return problem(Network(bug=True))


if __name__ == "__main__":
    good = gradcheck.check_problem(problem(Network()))
    bad = gradcheck.check_problem(make())
    print("correct backprop:", "passed" if good.passed else "FAILED")
    print(bad)
    raise SystemExit(0 if good.passed and not bad.passed else 1)
