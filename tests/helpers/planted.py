"""Nets written the way people write them, each with one planted bug the diagnosis must name.

Each builder returns ``(loss, grad, params)`` (and sometimes the dims); ``bug=None`` is the
correct net, so every test can also assert that the correct one raises no alarm.
"""

from __future__ import annotations

import numpy as np


def char_rnn(bug: str | None = None, vocab: int = 6, hidden: int = 8, steps: int = 5, seed=0):
    """Karpathy's min-char-rnn ``lossFun``: one-hot inputs, tanh hidden state, softmax outputs.

    ``bug="no_bptt"``: ``dhnext`` is never propagated (``dhnext = Whh.T @ dhraw`` left out), so
    every step's gradient stops at its own hidden state: the path through time is missing.
    """
    rng = np.random.default_rng(seed)
    inputs = rng.integers(0, vocab, size=steps)
    targets = rng.integers(0, vocab, size=steps)
    hprev = rng.normal(scale=0.5, size=(hidden, 1))
    params = {
        "Wxh": rng.normal(scale=0.5, size=(hidden, vocab)),
        "Whh": rng.normal(scale=0.5, size=(hidden, hidden)),
        "Why": rng.normal(scale=0.5, size=(vocab, hidden)),
        "bh": rng.normal(scale=0.1, size=(hidden, 1)),
        "by": rng.normal(scale=0.1, size=(vocab, 1)),
    }

    def forward(p):
        xs, hs, ps = {}, {-1: hprev}, {}
        loss = 0.0
        for t in range(steps):
            xs[t] = np.zeros((vocab, 1))
            xs[t][inputs[t]] = 1
            hs[t] = np.tanh(p["Wxh"] @ xs[t] + p["Whh"] @ hs[t - 1] + p["bh"])
            ys = p["Why"] @ hs[t] + p["by"]
            ps[t] = np.exp(ys - ys.max()) / np.sum(np.exp(ys - ys.max()))
            loss += -np.log(ps[t][targets[t], 0])
        return xs, hs, ps, loss

    def loss(p):
        return forward(p)[3]

    def grad(p):
        xs, hs, ps, _ = forward(p)
        dWxh, dWhh, dWhy = (np.zeros_like(p[k]) for k in ("Wxh", "Whh", "Why"))
        dbh, dby = np.zeros_like(p["bh"]), np.zeros_like(p["by"])
        dhnext = np.zeros_like(hs[0])
        for t in reversed(range(steps)):
            dy = np.copy(ps[t])
            dy[targets[t]] -= 1
            dWhy += dy @ hs[t].T
            dby += dy
            dh = p["Why"].T @ dy + dhnext
            dhraw = (1 - hs[t] * hs[t]) * dh
            dbh += dhraw
            dWxh += dhraw @ xs[t].T
            dWhh += dhraw @ hs[t - 1].T
            if bug != "no_bptt":
                dhnext = p["Whh"].T @ dhraw
        return {"Wxh": dWxh, "Whh": dWhh, "Why": dWhy, "bh": dbh, "by": dby}

    return loss, grad, params


def batchnorm_net(bug: str | None = None, dtype=np.float32, batch: int = 16, seed: int = 0):
    """x -> dense -> batch norm (gamma, beta) -> tanh -> dense -> MSE, in ``dtype``.

    The backward of the normalisation is the CS231n one-liner
    ``dx = gamma * inv_std / N * (N * dxhat - dxhat.sum(0) - xhat * (dxhat * xhat).sum(0))``;
    ``bug="no_xhat_term"`` drops its last term (the path through the variance).
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, 5)).astype(dtype)
    y = rng.normal(size=(batch, 3)).astype(dtype)
    params = {
        "W1": rng.normal(scale=0.5, size=(5, 6)).astype(dtype),
        "gamma": (1 + 0.2 * rng.normal(size=6)).astype(dtype),
        "beta": (0.1 * rng.normal(size=6)).astype(dtype),
        "W2": rng.normal(scale=0.5, size=(6, 3)).astype(dtype),
    }
    eps = dtype(1e-5)

    def forward(p):
        a = x @ p["W1"]
        mu = a.mean(axis=0)
        inv_std = 1 / np.sqrt(a.var(axis=0) + eps)
        xhat = (a - mu) * inv_std
        h = np.tanh(p["gamma"] * xhat + p["beta"])
        out = h @ p["W2"]
        return xhat, inv_std, h, out

    def loss(p):
        out = forward(p)[3]
        return 0.5 * np.sum((out - y) ** 2) / batch

    def grad(p):
        xhat, inv_std, h, out = forward(p)
        dout = (out - y) / batch
        dW2 = h.T @ dout
        dpre = (dout @ p["W2"].T) * (1 - h**2)
        dgamma = (dpre * xhat).sum(axis=0)
        dbeta = dpre.sum(axis=0)
        dxhat = dpre * p["gamma"]
        n = batch
        if bug == "no_xhat_term":
            da = inv_std / n * (n * dxhat - dxhat.sum(axis=0))
        else:
            da = inv_std / n * (n * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0))
        dW1 = x.T @ da
        return {"W1": dW1, "gamma": dgamma, "beta": dbeta, "W2": dW2}

    return loss, grad, params


def sparse_dense(bug: str | None = None, batch: int = 8, pixels: int = 12, hidden: int = 5):
    """MNIST-like inputs (most pixels exactly 0, border pixels always 0) -> relu dense -> softmax.

    ``bug="dW_transposed"``: ``dW = dh.T @ x`` where ``x.T @ dh`` is meant (shape (5, 12) for a
    (12, 5) parameter). ``bug="dW_transposed_reshaped"``: the same values reshaped to (12, 5).
    """
    rng = np.random.default_rng(3)
    x = rng.random(size=(batch, pixels))
    x[x < 0.6] = 0.0  # ink on a blank page
    x[:, :2] = 0.0  # border pixels are never inked
    y = rng.integers(0, 3, size=batch)
    params = {
        "W": rng.normal(scale=0.3, size=(pixels, hidden)),
        "V": rng.normal(scale=0.3, size=(hidden, 3)),
    }

    def forward(p):
        h = np.tanh(x @ p["W"])
        z = h @ p["V"]
        z = z - z.max(axis=1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        return h, probs

    def loss(p):
        probs = forward(p)[1]
        return -np.log(probs[np.arange(batch), y]).mean()

    def grad(p):
        h, probs = forward(p)
        dz = probs.copy()
        dz[np.arange(batch), y] -= 1
        dz /= batch
        dV = h.T @ dz
        dh = (dz @ p["V"].T) * (1 - h**2)
        dW = x.T @ dh
        if bug == "dW_transposed":
            dW = dh.T @ x
        if bug == "dW_transposed_reshaped":
            dW = (dh.T @ x).reshape(pixels, hidden)
        return {"W": dW, "V": dV}

    return loss, grad, params


def dense_bias(bug: str | None = None, batch: int = 4, features: int = 4, seed: int = 0):
    """CS231n-style dense layer ``out = x @ w + b`` under a squared loss.

    ``bug="db_axis1"``: ``db = dout.sum(axis=1)`` where ``axis=0`` is meant; with ``batch ==
    features`` the shapes agree and only the values are wrong.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, 3))
    y = rng.normal(size=(batch, features))
    params = {"w": rng.normal(size=(3, features)), "b": rng.normal(size=features)}

    def loss(p):
        out = x @ p["w"] + p["b"]
        return 0.5 * np.sum((out - y) ** 2)

    def grad(p):
        dout = x @ p["w"] + p["b"] - y
        db = dout.sum(axis=1) if bug == "db_axis1" else dout.sum(axis=0)
        return {"w": x.T @ dout, "b": db}

    return loss, grad, params


def clipped_regression(bug: str | None = None, clip: float = 5.0, seed: int = 0):
    """Linear regression with large targets; ``bug="clipped"`` clips the gradient at
    ``+-clip`` inside the gradient function (``np.clip(dw, -5, 5, out=dw)``, as min-char-rnn
    does in its training loop)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(20, 6))
    y = 10 * rng.normal(size=(20, 3))
    params = {"w": rng.normal(size=(6, 3)), "b": rng.normal(size=3)}

    def loss(p):
        return 0.5 * np.sum((x @ p["w"] + p["b"] - y) ** 2) / 4

    def grad(p):
        dout = (x @ p["w"] + p["b"] - y) / 4
        g = {"w": x.T @ dout, "b": dout.sum(axis=0)}
        if bug == "clipped":
            for value in g.values():
                np.clip(value, -clip, clip, out=value)
        return g

    return loss, grad, params


def square_layer(bug: str | None = None, size: int = 100, seed: int = 0):
    """``tanh(x @ W)`` with a square ``W`` (size x size) under a quadratic loss;
    ``bug="transposed"`` returns ``dh.T @ x`` where ``x.T @ dh`` is meant."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(6, size))
    target = rng.normal(size=(6, size))
    params = {"W": rng.normal(scale=1 / np.sqrt(size), size=(size, size))}

    def loss(p):
        return 0.5 * np.sum((np.tanh(x @ p["W"]) - target) ** 2)

    def grad(p):
        h = np.tanh(x @ p["W"])
        dh = (h - target) * (1 - h**2)
        return {"W": dh.T @ x if bug == "transposed" else x.T @ dh}

    return loss, grad, params


def per_sample_scale(bug: str | None = None, batch: int = 5, features: int = 3, seed: int = 0):
    """``out = x * g`` with a scale ``g`` of its own per sample and feature, shape (5, 3).

    ``bug="summed_and_broadcast"``: the backward treats ``g`` as shared across the batch,
    ``dg = (dout * x).sum(axis=0, keepdims=True)`` broadcast back to ``g``'s shape.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, features))
    y = rng.normal(size=(batch, features))
    params = {"g": 1 + 0.1 * rng.normal(size=(batch, features))}

    def loss(p):
        return 0.5 * float(np.sum((x * p["g"] - y) ** 2))

    def grad(p):
        dg = (x * p["g"] - y) * x
        if bug == "summed_and_broadcast":
            dg = np.broadcast_to(dg.sum(axis=0, keepdims=True), dg.shape).copy()
        return {"g": dg}

    return loss, grad, params
