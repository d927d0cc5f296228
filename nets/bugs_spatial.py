"""Wrong backwards of convolution, max-pooling, the RNN and self-attention (see :mod:`nets.bugs`).

The first docstring line of each function names the bug it plants.
"""

from __future__ import annotations

import numpy as np


# ---------------------------------------------------------------------------------- conv2d
def _conv_parts(dout, cache):
    cols, w, x_shape, pad, index = cache
    n, c, h, width = x_shape
    dflat = dout.reshape(n, w.shape[0], -1)
    return cols, w, (n, c, h, width), pad, index, dflat


def _col2im(dcols, x_shape, pad, index, offset):
    n, c, h, width = x_shape
    dxpad = np.zeros((n, c, h + 2 * pad, width + 2 * pad))
    np.add.at(dxpad, (slice(None), index[0], index[1], index[2]), dcols)
    return dxpad[:, :, offset : offset + h, offset : offset + width]


def conv2d_kernel_flipped(dout, cache):
    """dx is computed with the kernel rotated by 180 degrees (convolution vs correlation)."""
    cols, w, x_shape, pad, index, dflat = _conv_parts(dout, cache)
    dcols = w[:, :, ::-1, ::-1].reshape(w.shape[0], -1).T @ dflat
    dw = np.einsum("nfl,nkl->fk", dflat, cols).reshape(w.shape)
    return _col2im(dcols, x_shape, pad, index, pad), dw, dflat.sum(axis=(0, 2))


def conv2d_padding_not_removed(dout, cache):
    """dx is cut from the padded gradient at offset 0 instead of pad: shifted by the pad."""
    cols, w, x_shape, pad, index, dflat = _conv_parts(dout, cache)
    dcols = w.reshape(w.shape[0], -1).T @ dflat
    dw = np.einsum("nfl,nkl->fk", dflat, cols).reshape(w.shape)
    return _col2im(dcols, x_shape, pad, index, 0), dw, dflat.sum(axis=(0, 2))


def conv2d_dw_axes_swapped(dout, cache):
    """dw is unfolded as (F, HH, WW, C) though im2col orders a field (C, HH, WW)."""
    cols, w, x_shape, pad, index, dflat = _conv_parts(dout, cache)
    f, c, kh, kw = w.shape
    dcols = w.reshape(f, -1).T @ dflat
    dw = np.einsum("nfl,nkl->fk", dflat, cols).reshape(f, kh, kw, c).transpose(0, 3, 1, 2)
    return _col2im(dcols, x_shape, pad, index, pad), dw, dflat.sum(axis=(0, 2))


def conv2d_db_mean_over_positions(dout, cache):
    """db averages dout over the output positions instead of summing them."""
    cols, w, x_shape, pad, index, dflat = _conv_parts(dout, cache)
    dcols = w.reshape(w.shape[0], -1).T @ dflat
    dw = np.einsum("nfl,nkl->fk", dflat, cols).reshape(w.shape)
    return _col2im(dcols, x_shape, pad, index, pad), dw, dflat.mean(axis=2).sum(axis=0)


# ------------------------------------------------------------------------------ max-pool 2x2
def _unwindow(dwin, x_shape):
    n, c, h, w = x_shape
    return dwin.reshape(n, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(x_shape)


def maxpool_to_every_cell(dout, cache):
    """Every cell of the window receives dout, not only the one that won."""
    _winner, x_shape = cache
    return _unwindow(np.repeat(dout[..., None], 4, axis=-1), x_shape)


def maxpool_winner_transposed(dout, cache):
    """The winner's flat index is unravelled column-major: dout lands in the transposed cell."""
    winner, x_shape = cache
    n, c, h, w = x_shape
    cell = (winner % 2) * 2 + winner // 2
    dwin = np.zeros((n, c, h // 2, w // 2, 4))
    np.put_along_axis(dwin, cell[..., None], dout[..., None], axis=-1)
    return _unwindow(dwin, x_shape)


# ----------------------------------------------------------------------------- vanilla RNN
def _bptt(dout, cache, *, through_time=True, accumulate_dwx=True, transpose_dwh=False):
    x, h0, wx, wh, h = cache
    dx = np.empty_like(x)
    dwx, dwh, db = np.zeros_like(wx), np.zeros_like(wh), np.zeros(wh.shape[0])
    dnext = np.zeros_like(h0)
    for t in reversed(range(x.shape[1])):
        da = (dout[:, t] + (dnext if through_time else 0.0)) * (1.0 - h[:, t] ** 2)
        prev = h[:, t - 1] if t > 0 else h0
        dx[:, t] = da @ wx.T
        dwx = dwx + x[:, t].T @ da if accumulate_dwx else x[:, t].T @ da
        dwh += da.T @ prev if transpose_dwh else prev.T @ da
        db += da.sum(axis=0)
        dnext = da @ wh.T
    return dx, dnext, dwx, dwh, db


def rnn_no_path_through_time(dout, cache):
    """Each step sees only its own dout: the gradient from later steps is never carried back."""
    return _bptt(dout, cache, through_time=False)


def rnn_dwx_overwritten(dout, cache):
    """dwx = instead of dwx +=: only the last step processed (t = 0) survives."""
    return _bptt(dout, cache, accumulate_dwx=False)


def rnn_dwh_transposed(dout, cache):
    """dwh += da.T @ h_prev: the recurrent weight's gradient is transposed."""
    return _bptt(dout, cache, transpose_dwh=True)


# ------------------------------------------------------------------- single-head attention
def _attention(dout, cache, *, full_softmax=True, scaled=True, transpose_dk=True, value_path=True):
    x, wq, wk, wv, q, k, v, a = cache
    scale = 1.0 / np.sqrt(q.shape[-1]) if scaled else 1.0
    da = dout @ v.transpose(0, 2, 1)
    dv = a.transpose(0, 2, 1) @ dout
    ds = a * (da - (da * a).sum(axis=-1, keepdims=True)) if full_softmax else da * a * (1 - a)
    dq = scale * ds @ k
    dk = scale * (ds.transpose(0, 2, 1) if transpose_dk else ds) @ q
    dx = dq @ wq.T + dk @ wk.T + (dv @ wv.T if value_path else 0.0)
    flat = x.reshape(-1, x.shape[-1]).T
    return (
        dx,
        flat @ dq.reshape(-1, dq.shape[-1]),
        flat @ dk.reshape(-1, dk.shape[-1]),
        flat @ dv.reshape(-1, dv.shape[-1]),
    )


def attention_softmax_diagonal_only(dout, cache):
    """ds = da a (1 - a): the row softmax treated as elementwise, its off-diagonal terms lost."""
    return _attention(dout, cache, full_softmax=False)


def attention_scale_forgotten(dout, cache):
    """The 1/sqrt(E) of the scores is applied in the forward but not in the backward."""
    return _attention(dout, cache, scaled=False)


def attention_dk_untransposed(dout, cache):
    """dk = ds @ q: the scores' gradient is not transposed for the keys."""
    return _attention(dout, cache, transpose_dk=False)


def attention_dx_no_value_path(dout, cache):
    """dx sums the query and key paths only: the path through the values is dropped."""
    return _attention(dout, cache, value_path=False)
