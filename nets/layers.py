"""Layers as forward/backward pairs, vectorised over a batch (the CS231n layout).

``xxx_forward(inputs..., params...) -> (out, cache)``; ``xxx_backward(dout, cache)`` returns
``dx`` for a layer without parameters and ``(dx, dparam1, ...)`` otherwise, in the order the
forward takes them. ``dout`` is dL/dout, shaped like ``out``; every returned gradient is shaped
like what it differentiates. The cache is a small named tuple, unpacked on the backward's first
line. A loss layer returns a scalar; its backward takes ``dout`` = dL/dloss (1.0 at the end of a
net). ``N`` is the batch size throughout.

This module: dense, the elementwise activations, softmax, the two losses, flatten. Normalisation
and dropout are in :mod:`nets.norms`, convolution and pooling in :mod:`nets.conv`, the RNN and
self-attention in :mod:`nets.sequence`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import expit


# ------------------------------------------------------------------------------------- dense
class DenseCache(NamedTuple):
    x: np.ndarray
    w: np.ndarray


def dense_forward(x, w, b):
    """out = x @ w + b, with x (N, D), w (D, M), b (M,) -> out (N, M)."""
    return x @ w + b, DenseCache(x, w)


def dense_backward(dout, cache):
    """dout (N, M) -> dx = dout @ w.T (N, D), dw = x.T @ dout (D, M), db = sum_n dout (M,)."""
    x, w = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


# ----------------------------------------------------------------- elementwise activations
class OutputCache(NamedTuple):
    out: np.ndarray


class InputCache(NamedTuple):
    x: np.ndarray


def sigmoid_forward(x):
    """s = 1 / (1 + exp(-x)), elementwise (scipy's expit: no overflow for large |x|)."""
    out = expit(x)
    return out, OutputCache(out)


def sigmoid_backward(dout, cache):
    """dout shaped like x -> dx = dout * s * (1 - s), with s = sigmoid(x) the forward's output."""
    (s,) = cache
    return dout * s * (1.0 - s)


def tanh_forward(x):
    """t = tanh(x), elementwise."""
    out = np.tanh(x)
    return out, OutputCache(out)


def tanh_backward(dout, cache):
    """dout shaped like x -> dx = dout * (1 - t**2), with t = tanh(x) the forward's output."""
    (t,) = cache
    return dout * (1.0 - t**2)


def relu_forward(x):
    """out = max(x, 0), elementwise."""
    return np.maximum(x, 0.0), InputCache(x)


def relu_backward(dout, cache):
    """dout shaped like x -> dx = dout * [x > 0] (the subgradient 0 is taken at x = 0)."""
    (x,) = cache
    return dout * (x > 0)


# ----------------------------------------------------------------------------------- softmax
def softmax_forward(x):
    """p = softmax(x) along the last axis (shifted by the row max so exp cannot overflow)."""
    shifted = x - x.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    out = e / e.sum(axis=-1, keepdims=True)
    return out, OutputCache(out)


def softmax_backward(dout, cache):
    """dout (..., K) -> dx (..., K) = p * (dout - sum_k dout_k p_k): the full Jacobian
    dp_i/dx_j = p_i (delta_ij - p_j) applied row by row."""
    (p,) = cache
    return p * (dout - (dout * p).sum(axis=-1, keepdims=True))


# ------------------------------------------------------------------------------------ losses
class CrossEntropyCache(NamedTuple):
    p: np.ndarray
    y: np.ndarray


def cross_entropy_forward(z, target):
    """L = mean_n -log softmax(z_n)[target_n], from logits z (N, K) and class indices (N,).

    Computed as a log-sum-exp of the shifted logits, so logits of 1e4 neither overflow nor
    produce log(0).
    """
    shifted = z - z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = z.shape[0]
    loss = -log_p[np.arange(n), target].sum() / n
    return loss, CrossEntropyCache(np.exp(log_p), target)


def cross_entropy_backward(dout, cache):
    """scalar dout -> dz (N, K) = dout * (p - onehot(target)) / N, with p = softmax(z)."""
    p, y = cache
    n = p.shape[0]
    dz = p.copy()
    dz[np.arange(n), y] -= 1.0
    return dout * dz / n


class MSECache(NamedTuple):
    diff: np.ndarray


def mse_forward(pred, target):
    """L = mean over every element of (pred - target)**2."""
    diff = pred - target
    return (diff**2).mean(), MSECache(diff)


def mse_backward(dout, cache):
    """scalar dout -> dpred (shape of pred) = dout * 2 (pred - target) / pred.size."""
    (diff,) = cache
    return dout * 2.0 * diff / diff.size


# ----------------------------------------------------------------------------------- flatten
class ShapeCache(NamedTuple):
    shape: tuple[int, ...]


def flatten_forward(x):
    """x (N, ...) -> (N, prod(...)), C order."""
    return x.reshape(x.shape[0], -1), ShapeCache(x.shape)


def flatten_backward(dout, cache):
    """dout (N, prod(...)) -> dx = dout reshaped to x's shape."""
    (shape,) = cache
    return dout.reshape(shape)
