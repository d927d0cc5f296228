"""A vanilla RNN over a few time steps and single-head self-attention, as forward/backward pairs.

Conventions as in :mod:`nets.layers`; sequences are ``(N, T, D)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


# ----------------------------------------------------------------------------- vanilla RNN
class RNNCache(NamedTuple):
    x: np.ndarray
    h0: np.ndarray
    wx: np.ndarray
    wh: np.ndarray
    h: np.ndarray  # (N, T, H), every hidden state


def rnn_forward(x, h0, wx, wh, b):
    """h_t = tanh(x_t @ wx + h_{t-1} @ wh + b) for t = 0..T-1, starting from h0.

    x (N, T, D), h0 (N, H), wx (D, H), wh (H, H), b (H,) -> h (N, T, H), every hidden state.
    """
    n, steps, _ = x.shape
    h = np.empty((n, steps, wh.shape[0]))
    prev = h0
    for t in range(steps):
        prev = np.tanh(x[:, t] @ wx + prev @ wh + b)
        h[:, t] = prev
    return h, RNNCache(x, h0, wx, wh, h)


def rnn_backward(dout, cache):
    """dout (N, T, H) -> dx (N, T, D), dh0 (N, H), dwx (D, H), dwh (H, H), db (H,).

    Backpropagation through time: at step t the hidden state receives dout_t plus what step t+1
    sends back, dh_t = dout_t + da_{t+1} @ wh.T; then da_t = dh_t * (1 - h_t**2),
    dx_t = da_t @ wx.T, and the weights accumulate over the steps: dwx += x_t.T @ da_t,
    dwh += h_{t-1}.T @ da_t, db += sum_n da_t. dh0 is what step 0 sends back.
    """
    x, h0, wx, wh, h = cache
    steps = x.shape[1]
    dx = np.empty_like(x)
    dwx = np.zeros_like(wx)
    dwh = np.zeros_like(wh)
    db = np.zeros(wh.shape[0])
    dnext = np.zeros_like(h0)
    for t in reversed(range(steps)):
        da = (dout[:, t] + dnext) * (1.0 - h[:, t] ** 2)
        prev = h[:, t - 1] if t > 0 else h0
        dx[:, t] = da @ wx.T
        dwx += x[:, t].T @ da
        dwh += prev.T @ da
        db += da.sum(axis=0)
        dnext = da @ wh.T
    return dx, dnext, dwx, dwh, db


# ------------------------------------------------------------------- single-head attention
class AttentionCache(NamedTuple):
    x: np.ndarray
    wq: np.ndarray
    wk: np.ndarray
    wv: np.ndarray
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    a: np.ndarray  # (N, T, T) attention weights, rows sum to 1


def attention_forward(x, wq, wk, wv):
    """q = x @ wq, k = x @ wk, v = x @ wv, a = softmax(q @ k^T / sqrt(E)) row-wise, out = a @ v.

    x (N, T, D), wq, wk (D, E), wv (D, M) -> out (N, T, M). No mask: every position attends to
    every position.
    """
    q, k, v = x @ wq, x @ wk, x @ wv
    scores = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    a = e / e.sum(axis=-1, keepdims=True)
    return a @ v, AttentionCache(x, wq, wk, wv, q, k, v, a)


def attention_backward(dout, cache):
    """dout (N, T, M) -> dx (N, T, D), dwq (D, E), dwk (D, E), dwv (D, M).

    da = dout @ v^T, dv = a^T @ dout; through the row softmax ds = a * (da - sum_j da * a);
    with c = 1/sqrt(E): dq = c ds @ k, dk = c ds^T @ q; x feeds all three projections, so
    dx = dq @ wq.T + dk @ wk.T + dv @ wv.T; dw* = sum over batch and time of x^T @ d*.
    """
    x, wq, wk, wv, q, k, v, a = cache
    scale = 1.0 / np.sqrt(q.shape[-1])
    da = dout @ v.transpose(0, 2, 1)
    dv = a.transpose(0, 2, 1) @ dout
    ds = a * (da - (da * a).sum(axis=-1, keepdims=True))
    dq = scale * ds @ k
    dk = scale * ds.transpose(0, 2, 1) @ q
    dx = dq @ wq.T + dk @ wk.T + dv @ wv.T
    flat = x.reshape(-1, x.shape[-1]).T
    return (
        dx,
        flat @ dq.reshape(-1, dq.shape[-1]),
        flat @ dk.reshape(-1, dk.shape[-1]),
        flat @ dv.reshape(-1, dv.shape[-1]),
    )
