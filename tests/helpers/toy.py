"""Small nets unlike the asker's, with hand-written gradients and switchable planted bugs.

Each builder returns ``(loss, grad, params)``; ``bug`` names a planted mistake (None: correct).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradcheck.protocol import NodeTrace

BATCH = 5


def mlp(bug: str | None = None, dtype=np.float64, seed: int = 1):
    """x (5, 3) -> dense (4) -> tanh -> dense (2) -> softmax cross-entropy, mean over batch."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH, 3)).astype(dtype)
    y = np.eye(2, dtype=dtype)[rng.integers(0, 2, size=BATCH)]
    params = {
        "W1": rng.normal(size=(4, 3)).astype(dtype),
        "b1": rng.normal(size=4).astype(dtype),
        "W2": rng.normal(size=(2, 4)).astype(dtype),
        "b2": rng.normal(size=2).astype(dtype),
    }

    def forward(p):
        a = x @ p["W1"].T + p["b1"]
        h = np.tanh(a)
        z = h @ p["W2"].T + p["b2"]
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return a, h, log_p

    def loss(p):
        return -(y * forward(p)[2]).sum() / BATCH

    def grad(p):
        _, h, log_p = forward(p)
        scale = 1.0 if bug == "sum_not_mean" else 1.0 / BATCH
        dz = (np.exp(log_p) - y) * scale
        dW2 = dz.T @ h
        db2 = dz.sum(axis=0)
        dh = dz @ p["W2"]
        da = dh * (1 - np.tanh(h) ** 2) if bug == "tanh_at_output" else dh * (1 - h**2)
        dW1 = da.T @ x
        db1 = da.sum(axis=0)
        g = {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
        if bug == "sign_W2":
            g["W2"] = -dW2
        if bug == "no_b1":
            g["b1"] = np.zeros_like(db1)
        if bug == "per_sample_b2":  # forgot to sum over the batch
            g["b2"] = dz
        if bug == "W1_transposed":
            g["W1"] = x.T @ da
        if bug == "nan_b2":
            g["b2"] = db2 * np.nan
        return g

    return loss, grad, params


def regression(bug: str | None = None, seed: int = 2, scale: float = 1.0):
    """Linear regression, L = mean_n (x_n . w + b - t_n)^2; ``scale`` sets |w| (large params)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH, 3)) / scale
    t = rng.normal(size=BATCH)
    params = {"w": rng.normal(size=3) * scale, "b": 0.3, "unused": np.array([1.0, -1.0])}

    def loss(p):
        r = x @ p["w"] + p["b"] - t
        return float(np.mean(r**2))

    def grad(p):
        r = x @ p["w"] + p["b"] - t
        factor = 1.0 if bug == "missing_2" else 2.0
        g = {"w": factor * x.T @ r / BATCH, "b": factor * r.mean(), "unused": np.zeros(2)}
        if bug == "spurious":
            g["unused"] = np.array([0.5, 0.0])
        if bug == "sign_all":
            g = {k: -v for k, v in g.items()}
        return g

    return loss, grad, params


def square(bug: str | None = None, seed: int = 3):
    """L = sum((A @ v - t)^2) + sum((B @ v)^2) / 2 with square A, B (3, 3)."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=3)
    t = rng.normal(size=3)
    params = {"A": rng.normal(size=(3, 3)), "B": rng.normal(size=(3, 3))}

    def loss(p):
        return float(np.sum((p["A"] @ v - t) ** 2) + np.sum((p["B"] @ v) ** 2) / 2)

    def grad(p):
        g = {"A": 2 * np.outer(p["A"] @ v - t, v), "B": np.outer(p["B"] @ v, v)}
        if bug == "A_transposed":
            g["A"] = g["A"].T
        if bug == "swapped":
            g = {"A": g["B"], "B": g["A"]}
        return g

    return loss, grad, params


def relu_net(at_kinks: bool, bug: str | None = None):
    """L = sum(relu(W @ x) * c) with W @ x exactly 0 in some units when ``at_kinks``."""
    x = np.array([1.0, 2.0])
    c = np.array([1.5, -0.5, 2.0])
    w = (
        np.array([[2.0, -1.0], [0.5, 0.25], [-1.0, 0.3]])
        if at_kinks
        else np.array([[2.0, -0.5], [0.5, 0.25], [-1.0, 0.3]])
    )

    def loss(p):
        return float(np.sum(np.maximum(p["W"] @ x, 0) * c))

    def grad(p):
        pre = p["W"] @ x
        mask = pre > 0 if bug != "mask_inverted" else pre <= 0
        return {"W": np.outer(mask * c, x)}

    return loss, grad, {"W": w}


def chain(bug: str | None = None, seed: int = 4):
    """A 3-node chain with a NodeTrace: a = W x, h = tanh(a), z = V h, L = 0.5 |z - t|^2.

    Bugs: ``tanh_at_output`` (derivative of tanh evaluated at h instead of a),
    ``skip_tanh`` (dL/da = dL/dh).
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=3)
    t = rng.normal(size=2)
    params = {"W": rng.normal(size=(4, 3)), "V": rng.normal(size=(2, 4))}

    def run(p, overrides=None):
        overrides = overrides or {}
        a = np.asarray(overrides.get("a", p["W"] @ x), dtype=float)
        h = np.asarray(overrides.get("h", np.tanh(a)), dtype=float)
        z = np.asarray(overrides.get("z", p["V"] @ h), dtype=float)
        return {"a": a, "h": h, "z": z}, float(0.5 * np.sum((z - t) ** 2))

    def backward(p, values):
        dz = values["z"] - t
        dh = p["V"].T @ dz
        if bug == "tanh_at_output":
            da = dh * (1 - np.tanh(values["h"]) ** 2)
        elif bug == "skip_tanh":
            da = dh
        else:
            da = dh * (1 - np.tanh(values["a"]) ** 2)
        return {"a": da, "h": dh, "z": dz}

    def loss(p):
        return run(p)[1]

    def grad(p):
        values, _ = run(p)
        g = backward(p, values)
        return {"W": np.outer(g["a"], x), "V": np.outer(g["z"], values["h"])}

    def nodes(p):
        values, _ = run(p)
        return NodeTrace(
            ("a", "h", "z"),
            values,
            backward(p, values),
            lambda overrides: run(p, overrides),
            {"h": "tanh", "z": "dense V"},
        )

    return loss, grad, params, nodes


def two_layer_net(
    bug: str | None = None,
    inputs: int = 100,
    seed: int = 0,
    reg: float = 0.05,
    hidden: int = 50,
    batch: int = 20,
    dtype=np.float64,
    leak: float = 0.0,
):
    """CS231n's TwoLayerNet (inputs -> 50 -> ReLU -> 10, softmax, L2 penalty) at the
    assignment's own initialisation: weights ``1e-4 * randn``, biases zero, so the hidden
    pre-activations sit within ~1e-3 of the ReLU's kink and any direction over W1 or b1 crosses
    kinks. ``bug``: ``"mask_inverted"`` (the ReLU's mask passes the dead units: W1 and b1
    wrong), ``"reg_factor"`` (the L2 term's 2 dropped from dW1: W1 wrong), ``"spread"`` (every
    element of dW1 off by a relative 1e-3), ``"dW1_doubled"`` (dW1 twice its value),
    ``"mask_from_scores"`` (the hidden layer's mask read from the output layer's scores, cycled:
    W1 and b1 wrong), ``"dW1_transposed_term"`` (the data term of dW1 built from ``dh`` and
    ``x`` in the wrong order, reshaped: W1 wrong), ``"sign_b1"`` (db1 negated: b1 wrong).
    ``reg``: the L2 strength (0: none); ``dtype``: of the parameters and data; ``leak``: the
    slope of a leaky ReLU below 0 (0: ReLU), whose ``"mask_inverted"`` passes ``leak`` and 1
    the wrong way round."""
    rng = np.random.RandomState(seed)
    classes = 10
    params = {
        "W1": (1e-4 * rng.randn(inputs, hidden)).astype(dtype),
        "b1": np.zeros(hidden, dtype),
        "W2": (1e-4 * rng.randn(hidden, classes)).astype(dtype),
        "b2": np.zeros(classes, dtype),
    }
    x, y = rng.randn(batch, inputs).astype(dtype), rng.randint(classes, size=batch)
    rows = np.arange(batch)

    def hidden_layer(p):
        z = x @ p["W1"] + p["b1"]
        return z, np.where(z > 0, z, z * dtype(leak))

    def forward(p):
        z, h = hidden_layer(p)
        s = h @ p["W2"] + p["b2"]
        s = s - s.max(axis=1, keepdims=True)
        return z, h, np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)

    def loss(p):
        prob = forward(p)[2]
        penalty = reg * (np.sum(p["W1"] ** 2) + np.sum(p["W2"] ** 2))
        return float(-np.log(prob[rows, y]).mean() + penalty)

    def grad(p):
        z, h, prob = forward(p)
        ds = prob.copy()
        ds[rows, y] -= 1
        ds /= batch
        dh = ds @ p["W2"].T
        if bug == "mask_from_scores":  # the other layer's activations as the ReLU's mask
            dh[np.resize(s_of(p) <= 0, dh.shape)] = 0
        else:
            active = (z <= 0) if bug == "mask_inverted" else (z > 0)
            dh = dh * np.where(active, dtype(1), dtype(leak))
        dw1 = x.T @ dh + (1 if bug == "reg_factor" else 2) * reg * p["W1"]
        if bug == "dW1_transposed_term":
            dw1 = (dh.T @ x).reshape(dw1.shape) + 2 * reg * p["W1"]
        if bug == "spread":
            dw1 = dw1 * (1 + 1e-3)
        if bug == "dW1_doubled":
            dw1 = 2 * dw1
        db1 = -dh.sum(0) if bug == "sign_b1" else dh.sum(0)
        return {"W1": dw1, "b1": db1, "W2": h.T @ ds + 2 * reg * p["W2"], "b2": ds.sum(0)}

    def s_of(p):
        return hidden_layer(p)[1] @ p["W2"] + p["b2"]

    return loss, grad, params


def deep_net_at_init(
    seed: int,
    widths: tuple[int, ...],
    activation: str = "abs",
    batch: int = 20,
    bug: str | None = None,
):
    """A softmax MLP ``widths -> 10`` at a ``1e-4 * randn`` initialisation with zero biases and
    ``abs`` or pairwise max-pool activations (the max of each pair of units, given to both):
    the second layer's pre-activations sit within ~1e-8 of their kinks, so every direction
    along its biases crosses a batch's kinks on both sides within any step a noise table or
    a stencil takes. ``bug``: ``"b2_sign"`` (db2 negated)."""
    rng = np.random.RandomState(seed)
    dims = [*widths, 10]
    layers = len(dims) - 1
    params = {}
    for i in range(layers):
        params[f"W{i + 1}"] = 1e-4 * rng.randn(dims[i], dims[i + 1])
        params[f"b{i + 1}"] = np.zeros(dims[i + 1])
    x, y = rng.randn(batch, dims[0]), rng.randint(10, size=batch)

    def act(z):
        if activation == "abs":
            return np.abs(z)
        pairs = z.reshape(batch, -1, 2)
        return np.repeat(pairs.max(-1), 2, axis=1)

    def act_back(z, d):
        if activation == "abs":
            return d * np.sign(z)
        pairs = z.reshape(batch, -1, 2)
        out = np.zeros_like(pairs)
        winner = pairs.argmax(-1)[..., None]
        np.put_along_axis(out, winner, d.reshape(batch, -1, 2).sum(-1)[..., None], -1)
        return out.reshape(z.shape)

    def forward(p):
        hs, zs = [x], []
        for i in range(1, layers + 1):
            z = hs[-1] @ p[f"W{i}"] + p[f"b{i}"]
            zs.append(z)
            hs.append(act(z) if i < layers else z)
        return hs, zs, _softmax(hs[-1])

    def loss(p):
        return _cross_entropy(forward(p)[2], y)

    def grad(p):
        hs, zs, prob = forward(p)
        d = _cross_entropy_back(prob, y)
        g = {}
        for i in range(layers, 0, -1):
            g[f"W{i}"], g[f"b{i}"] = hs[i - 1].T @ d, d.sum(0)
            if i > 1:
                d = act_back(zs[i - 2], d @ p[f"W{i}"].T)
        if bug == "b2_sign":
            g["b2"] = -g["b2"]
        return g

    return loss, grad, params


def small_relu_mlp(seed: int, scale: float, dtype=np.float32, w2_factor: float = 1.0):
    """A 5 -> 6 -> ReLU -> 3 softmax MLP over a batch of 4, weights ``scale * randn`` and zero
    biases in ``dtype``, its data in float64. ``w2_factor``: dW2 multiplied by it (a bug when
    not 1)."""
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(4, 5)), rng.integers(3, size=4)
    params = {
        "W1": (rng.normal(size=(5, 6)) * scale).astype(dtype),
        "b1": np.zeros(6, dtype),
        "W2": (rng.normal(size=(6, 3)) * scale).astype(dtype),
        "b2": np.zeros(3, dtype),
    }

    def forward(p):
        a = x @ p["W1"] + p["b1"]
        r = np.maximum(a, 0)
        return a, r, _softmax(r @ p["W2"] + p["b2"])

    def loss(p):
        return _cross_entropy(forward(p)[2], y)

    def grad(p):
        a, r, prob = forward(p)
        dz = _cross_entropy_back(prob, y)
        da = (dz @ p["W2"].T) * (a > 0)
        return {"W1": x.T @ da, "b1": da.sum(0), "W2": w2_factor * (r.T @ dz), "b2": dz.sum(0)}

    return loss, grad, params


def exact_fit_mlp(seed: int, noise: float = 0.0, sizes: tuple[int, int, int] | None = None):
    """A tanh MLP regressing, by mean squared error, targets it made itself (plus ``noise``):
    at ``noise = 0`` the loss is exactly 0 and every partial exactly 0, as in a teacher-student
    test. ``sizes``: (samples, inputs, hidden units), weights scaled by 1/sqrt(fan-in); drawn
    small at random by default (unit weights)."""
    rng = np.random.default_rng(seed)
    if sizes is None:
        n, d, h = int(rng.integers(3, 30)), int(rng.integers(1, 8)), int(rng.integers(2, 10))
        fan_in, fan_hidden = 1.0, 1.0
    else:
        (n, d, h), fan_in, fan_hidden = sizes, float(np.sqrt(sizes[1])), float(np.sqrt(sizes[2]))
    x = rng.normal(size=(n, d))
    params = {
        "W1": rng.normal(size=(d, h)) / fan_in,
        "b1": 0.1 * rng.normal(size=h),
        "W2": rng.normal(size=(h, 1)) / fan_hidden,
        "b2": np.zeros(1),
    }

    def forward(p):
        hidden = np.tanh(x @ p["W1"] + p["b1"])
        return hidden, hidden @ p["W2"] + p["b2"]

    y = forward(params)[1] + noise * rng.normal(size=(n, 1))

    def loss(p):
        return float(np.mean((forward(p)[1] - y) ** 2))

    def grad(p):
        hidden, out = forward(p)
        dout = 2 * (out - y) / n
        da = (dout @ p["W2"].T) * (1 - hidden**2)
        return {"W1": x.T @ da, "b1": da.sum(0), "W2": hidden.T @ dout, "b2": dout.sum(0)}

    return loss, grad, params


def _softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by each row's largest logit."""
    s = z - z.max(1, keepdims=True)
    return np.exp(s) / np.exp(s).sum(1, keepdims=True)


def _cross_entropy(prob: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-probability of the labels ``y``."""
    return float(-np.log(prob[np.arange(y.size), y]).mean())


def _cross_entropy_back(prob: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d(mean cross-entropy)/d(logits): ``(prob - onehot(y)) / N``."""
    d = prob.copy()
    d[np.arange(y.size), y] -= 1
    d /= y.size
    return d


def trained_relu_mlp(seed: int, dtype: Any, steps: int, task: str = "mse", lr: float = 0.1):
    """A 20-64-3 ReLU MLP on 64 samples, trained by ``steps`` of plain gradient descent
    (mean squared error on sin of the inputs, or softmax cross-entropy on random labels), in
    ``dtype``: its pre-activations settle at their kinks (a minimum of a piecewise-smooth loss
    sits on them), some within 1e-11 of 0, as a trained net's do."""
    rng = np.random.default_rng(seed)
    n, d, h, k = 64, 20, 64, 3
    x = rng.normal(size=(n, d)).astype(dtype)
    y = np.sin(x[:, :k]).astype(dtype) if task == "mse" else rng.integers(0, k, size=n)
    params = {
        "W1": (rng.normal(size=(d, h)) / np.sqrt(d)).astype(dtype),
        "b1": np.zeros(h, dtype),
        "W2": (rng.normal(size=(h, k)) / np.sqrt(h)).astype(dtype),
        "b2": np.zeros(k, dtype),
    }

    def forward(p):
        z = x @ p["W1"] + p["b1"]
        a = np.maximum(z, 0)
        return z, a, a @ p["W2"] + p["b2"]

    def loss(p):
        out = forward(p)[2]
        if task == "mse":
            return float(0.5 * np.mean(np.sum((out - y) ** 2, 1)))
        return _cross_entropy(_softmax(out), y)

    def grad(p):
        z, a, out = forward(p)
        if task == "mse":
            dout = (out - y) / n
        else:
            dout = _softmax(out)
            dout[np.arange(n), y] -= 1
            dout /= n
        da = dout @ p["W2"].T * (z > 0)
        return {"W1": x.T @ da, "b1": da.sum(0), "W2": a.T @ dout, "b2": dout.sum(0)}

    for _ in range(steps):
        g = grad(params)
        for name in params:
            params[name] -= (lr * g[name]).astype(dtype)
    return loss, grad, params
