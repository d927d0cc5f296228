"""Wrong backwards, the way people really write them: the first docstring line names the bug.

Each function takes the correct layer's ``(dout, cache)`` and returns what the correct backward
returns, shaped right and wrong in value (a wrong shape is caught trivially; these are the bugs
that train badly in silence). :data:`nets.zoo.BUGS` plants each one in a zoo net and records
which parameters it makes wrong. This module: dense, activations, softmax, losses,
normalisation, dropout; :mod:`nets.bugs_spatial` has convolution, pooling, RNN, attention.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit


# ------------------------------------------------------------------------------------- dense
def dense_dx_untransposed(dout, cache):
    """dx = dout @ w: the weight is not transposed (shapes still fit for a square w)."""
    x, w = cache
    return dout @ w, x.T @ dout, dout.sum(axis=0)


def dense_dw_transposed(dout, cache):
    """dw = dout.T @ x: the weight gradient comes out transposed (fits for a square w)."""
    x, w = cache
    return dout @ w.T, dout.T @ x, dout.sum(axis=0)


def dense_db_averaged(dout, cache):
    """db = mean over the batch of dout: averaged twice, the loss already divided by N."""
    x, w = cache
    return dout @ w.T, x.T @ dout, dout.mean(axis=0)


def dense_shared_use_dropped(dout, cache):
    """This use of a shared weight adds nothing: only its other use's gradient is kept."""
    _x, w = cache
    return dout @ w.T, np.zeros_like(w), np.zeros(w.shape[1])


# ----------------------------------------------------------------------------- activations
def sigmoid_at_output(dout, cache):
    """sigmoid'(s) instead of sigmoid'(x): the derivative is taken at the output."""
    (s,) = cache
    return dout * expit(s) * (1.0 - expit(s))


def sigmoid_drops_dout(dout, cache):
    """dx = s (1 - s): the local derivative alone, the upstream gradient is never multiplied."""
    (s,) = cache
    return s * (1.0 - s)


def tanh_at_output(dout, cache):
    """1 - tanh(t)**2 instead of 1 - t**2: the derivative is taken at the output."""
    (t,) = cache
    return dout * (1.0 - np.tanh(t) ** 2)


def tanh_unsquared(dout, cache):
    """dx = dout (1 - t): the square of tanh is missing."""
    (t,) = cache
    return dout * (1.0 - t)


def relu_no_mask(dout, cache):
    """dx = dout: the gradient passes every unit, the inactive ones too."""
    return dout


def relu_mask_from_dout(dout, cache):
    """dx = dout [dout > 0]: the mask is taken from the upstream gradient, not the input."""
    return dout * (dout > 0)


def activation_skipped(dout, cache):
    """The activation is skipped in the backward: dout goes through as if it were the identity."""
    return dout


# ----------------------------------------------------------------------------------- softmax
def softmax_diagonal_only(dout, cache):
    """dx = dout p (1 - p): only the Jacobian's diagonal, as if softmax were elementwise."""
    (p,) = cache
    return dout * p * (1.0 - p)


def softmax_sum_over_batch(dout, cache):
    """The sum of dout p runs over the batch axis instead of the classes."""
    (p,) = cache
    return p * (dout - (dout * p).sum(axis=0, keepdims=True))


# ------------------------------------------------------------------------------------ losses
def cross_entropy_no_batch_mean(dout, cache):
    """dz = p - y: the 1/N of the batch mean is missing."""
    p, y = cache
    dz = p.copy()
    dz[np.arange(p.shape[0]), y] -= 1.0
    return dout * dz


def cross_entropy_grad_of_probs(dout, cache):
    """dz = -y / (N p): dL/dp used as dL/dz, the softmax is skipped."""
    p, y = cache
    n = p.shape[0]
    dz = np.zeros_like(p)
    dz[np.arange(n), y] = -1.0 / p[np.arange(n), y]
    return dout * dz / n


def mse_no_factor_two(dout, cache):
    """dpred = (pred - target) / size: the 2 of the square is dropped."""
    (diff,) = cache
    return dout * diff / diff.size


def mse_sign_flipped(dout, cache):
    """dpred = 2 (target - pred) / size: y - p where p - y belongs."""
    (diff,) = cache
    return -dout * 2.0 * diff / diff.size


def mse_batch_mean_only(dout, cache):
    """dpred = 2 (pred - target) / N: divided by the batch size, the loss averages every element."""
    (diff,) = cache
    return dout * 2.0 * diff / diff.shape[0]


# ----------------------------------------------------------------------------- normalisation
def batchnorm_stats_as_constants(dout, cache):
    """dx = gamma dout / std: the batch mean and variance are treated as constants."""
    xhat, gamma, inv_std = cache
    return dout * gamma * inv_std, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def batchnorm_no_variance_path(dout, cache):
    """dx keeps the path through the mean but drops the one through the variance."""
    xhat, gamma, inv_std = cache
    g = dout * gamma
    return inv_std * (g - g.mean(axis=0)), (dout * xhat).sum(axis=0), dout.sum(axis=0)


def batchnorm_dgamma_like_dbeta(dout, cache):
    """dgamma = sum_n dout: the bias formula, the xhat factor is dropped."""
    xhat, gamma, inv_std = cache
    g = dout * gamma
    dx = inv_std * (g - g.mean(axis=0) - xhat * (g * xhat).mean(axis=0))
    return dx, dout.sum(axis=0), dout.sum(axis=0)


def layernorm_batch_axis(dout, cache):
    """dx uses batch-norm's means over the batch, layer norm's statistics are per sample."""
    xhat, gamma, inv_std = cache
    g = dout * gamma
    dx = inv_std * (g - g.mean(axis=0) - xhat * (g * xhat).mean(axis=0))
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def layernorm_dgamma_feature_axis(dout, cache):
    """dgamma sums over the features instead of the batch (fits when N = D)."""
    xhat, gamma, inv_std = cache
    g = dout * gamma
    dx = inv_std * (
        g - g.mean(axis=1, keepdims=True) - xhat * (g * xhat).mean(axis=1, keepdims=True)
    )
    return dx, (dout * xhat).sum(axis=1), dout.sum(axis=0)


def layernorm_stats_as_constants(dout, cache):
    """dx = gamma dout / std: each sample's mean and variance are treated as constants."""
    xhat, gamma, inv_std = cache
    return dout * gamma * inv_std, (dout * xhat).sum(axis=0), dout.sum(axis=0)


# ----------------------------------------------------------------------------------- dropout
def dropout_no_rescale(dout, cache):
    """dx = dout * keep: the forward's 1 / (1 - p) is not applied."""
    keep, _p, _seed = cache
    return dout * keep


def dropout_keep_prob_confused(dout, cache):
    """dx = dout * keep / p: the drop probability is used as the keep probability."""
    keep, p, _seed = cache
    return dout * keep / p


def dropout_fresh_mask(dout, cache):
    """A new mask is drawn in the backward (the next seed) instead of reusing the forward's."""
    keep, p, seed = cache
    fresh = np.random.default_rng(seed + 1).random(keep.shape) >= p
    return dout * fresh / (1.0 - p)
