"""A command-line example: a net that keeps its weights in ``self.params``.

    gradcheck check examples/dict_net.py:make                       # the diff table, exit 1
    gradcheck check examples/dict_net.py:make --format html > report.html
    gradcheck check examples/dict_net.py:make --out reports/        # .md, .json and .html

``Net.backward`` has two planted mistakes that the HTML heatmaps make visible at a glance:
dW2 is transposed (a square 5x5 layer, so the shapes still fit) and one row of dW1 is off.
The factory at the bottom adapts the class with one call to ``gradcheck.from_params_dict``.
"""

import numpy as np

import gradcheck


class Net:
    """x (16, 6) -> dense 5 -> softplus -> dense 5 -> dense 3 -> mean squared error."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {
            "W1": rng.normal(size=(5, 6)) / 2,
            "b1": rng.normal(size=5),
            "W2": rng.normal(size=(5, 5)) / 2,
            "W3": rng.normal(size=(3, 5)) / 2,
        }
        self.x = rng.normal(size=(16, 6))
        self.y = rng.normal(size=(16, 3))

    def forward(self):
        p = self.params
        a1 = self.x @ p["W1"].T + p["b1"]
        h1 = np.log1p(np.exp(a1))  # softplus
        h2 = h1 @ p["W2"].T
        out = h2 @ p["W3"].T
        return a1, h1, h2, out

    def loss(self):
        return float(np.mean((self.forward()[3] - self.y) ** 2))

    def backward(self):
        p = self.params
        a1, h1, h2, out = self.forward()
        dout = 2 * (out - self.y) / out.size
        dW3 = dout.T @ h2
        dh2 = dout @ p["W3"]
        dW2 = (dh2.T @ h1).T  # planted: transposed
        dh1 = dh2 @ p["W2"]
        da1 = dh1 / (1 + np.exp(-a1))  # softplus' = sigmoid
        dW1 = da1.T @ self.x
        dW1[3] *= 0.5  # planted: one row off by a factor 2
        return {"W1": dW1, "b1": da1.sum(0), "W2": dW2, "W3": dW3}


def make():
    return gradcheck.from_params_dict(Net(), loss="loss", grad="backward")
