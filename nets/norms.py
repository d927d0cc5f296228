"""Batch normalisation, layer normalisation and dropout, as forward/backward pairs.

Conventions as in :mod:`nets.layers`. Batch normalisation is in training mode (batch
statistics, no running averages: a loss that updated them would not be a pure function of its
parameters). Dropout draws its mask from a seeded generator, so the same parameters give the
same loss and a finite-difference check means something.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

EPS = 1e-5  # variance floor of both normalisations


# ------------------------------------------------------------------------- normalisation
class NormCache(NamedTuple):
    xhat: np.ndarray
    gamma: np.ndarray
    inv_std: np.ndarray


def _normalise(x, gamma, beta, axis):
    mu = x.mean(axis=axis, keepdims=True)
    inv_std = 1.0 / np.sqrt(x.var(axis=axis, keepdims=True) + EPS)
    xhat = (x - mu) * inv_std
    return gamma * xhat + beta, NormCache(xhat, gamma, inv_std)


def batchnorm_forward(x, gamma, beta):
    """Training mode: xhat = (x - mean_n x) / sqrt(var_n x + EPS), out = gamma * xhat + beta.

    x (N, D), gamma (D,), beta (D,): statistics over the batch axis.
    """
    return _normalise(x, gamma, beta, axis=0)


def batchnorm_backward(dout, cache):
    """dout (N, D) -> dx (N, D), dgamma (D,), dbeta (D,).

    With g = dout * gamma: dx = inv_std * (g - mean_n g - xhat * mean_n(g * xhat)) (the mean and
    the variance both depend on every x), dgamma = sum_n dout * xhat, dbeta = sum_n dout.
    """
    xhat, gamma, inv_std = cache
    g = dout * gamma
    dx = inv_std * (g - g.mean(axis=0) - xhat * (g * xhat).mean(axis=0))
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def layernorm_forward(x, gamma, beta):
    """xhat = (x - mean_d x) / sqrt(var_d x + EPS) per sample, out = gamma * xhat + beta.

    x (N, D), gamma (D,), beta (D,): statistics over the feature axis.
    """
    return _normalise(x, gamma, beta, axis=1)


def layernorm_backward(dout, cache):
    """dout (N, D) -> dx (N, D), dgamma (D,), dbeta (D,).

    With g = dout * gamma: dx = inv_std * (g - mean_d g - xhat * mean_d(g * xhat)) (means over
    each sample's features), dgamma = sum_n dout * xhat, dbeta = sum_n dout.
    """
    xhat, gamma, inv_std = cache
    g = dout * gamma
    dx = inv_std * (
        g - g.mean(axis=1, keepdims=True) - xhat * (g * xhat).mean(axis=1, keepdims=True)
    )
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


# ------------------------------------------------------------------------------- dropout
class DropoutCache(NamedTuple):
    keep: np.ndarray
    p: float
    seed: int


def dropout_forward(x, p=0.3, seed=0):
    """Inverted dropout: each element is zeroed with probability ``p``, the rest scaled by
    1 / (1 - p). The mask comes from ``default_rng(seed)``: a fixed mask for a fixed seed."""
    keep = np.random.default_rng(seed).random(x.shape) >= p
    return x * keep / (1.0 - p), DropoutCache(keep, p, seed)


def dropout_backward(dout, cache):
    """dout shaped like x -> dx = dout * keep / (1 - p), the forward's own mask."""
    keep, p, _seed = cache
    return dout * keep / (1.0 - p)
