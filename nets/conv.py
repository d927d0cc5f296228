"""2-D convolution (stride, zero padding) and 2x2 max-pooling, as forward/backward pairs.

Conventions as in :mod:`nets.layers`; images are ``(N, C, H, W)``. The convolution is a
cross-correlation (no kernel flip, as in every deep-learning library) computed by gathering
every receptive field into a column (im2col) so that it becomes one matrix product.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


# ---------------------------------------------------------------------------------- conv2d
class ConvCache(NamedTuple):
    cols: np.ndarray  # (N, C*HH*WW, OH*OW): every receptive field of the padded input
    w: np.ndarray
    x_shape: tuple[int, ...]
    pad: int
    index: tuple[np.ndarray, np.ndarray, np.ndarray]  # channel, row, column of each column entry


def im2col_index(channels, height, width, kernel, stride):
    """Channel, row and column (in the padded image) of every entry of the im2col matrix.

    Row ``r`` of the matrix is kernel position ``(c, i, j)`` in C order, column ``l`` the output
    position ``(oh, ow)`` in C order; entry ``[r, l]`` reads ``x[c, oh*stride + i, ow*stride +
    j]``. Returns three ``(C*HH*WW, OH*OW)`` integer arrays and the output size ``(OH, OW)``.
    """
    kh, kw = kernel
    out_h = (height - kh) // stride + 1
    out_w = (width - kw) // stride + 1
    rows = (
        np.tile(np.repeat(np.arange(kh), kw), channels)[:, None]
        + stride * np.repeat(np.arange(out_h), out_w)[None, :]
    )
    cols = (
        np.tile(np.arange(kw), kh * channels)[:, None]
        + stride * np.tile(np.arange(out_w), out_h)[None, :]
    )
    chans = np.repeat(np.arange(channels), kh * kw)[:, None]
    return (chans, rows, cols), (out_h, out_w)


def conv2d_forward(x, w, b, stride=1, pad=0):
    """out[n, f] = sum_{c,i,j} w[f, c, i, j] * xpad[n, c, s*oh + i, s*ow + j] + b[f].

    x (N, C, H, W), w (F, C, HH, WW), b (F,), zero padding ``pad`` on each side, stride ``s``
    -> out (N, F, OH, OW) with OH = (H + 2 pad - HH) // s + 1 (likewise OW).
    """
    n, c, h, width = x.shape
    f = w.shape[0]
    xpad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    index, (out_h, out_w) = im2col_index(c, h + 2 * pad, width + 2 * pad, w.shape[2:], stride)
    cols = xpad[:, index[0], index[1], index[2]]
    out = w.reshape(f, -1) @ cols + b[:, None]
    return out.reshape(n, f, out_h, out_w), ConvCache(cols, w, x.shape, pad, index)


def conv2d_backward(dout, cache):
    """dout (N, F, OH, OW) -> dx (N, C, H, W), dw (F, C, HH, WW), db (F,).

    db[f] = sum_{n,oh,ow} dout[n, f]; dw[f] = sum_{n,l} dout[n, f, l] * cols[n, :, l];
    dcols = w_flat.T @ dout, and every column entry is added back (np.add.at: overlapping
    fields sum) to the input pixel it was read from; the padding is then cut off.
    """
    cols, w, x_shape, pad, index = cache
    n, c, h, width = x_shape
    f = w.shape[0]
    dflat = dout.reshape(n, f, -1)
    db = dflat.sum(axis=(0, 2))
    dw = np.einsum("nfl,nkl->fk", dflat, cols).reshape(w.shape)
    dcols = w.reshape(f, -1).T @ dflat
    dxpad = np.zeros((n, c, h + 2 * pad, width + 2 * pad))
    np.add.at(dxpad, (slice(None), index[0], index[1], index[2]), dcols)
    return dxpad[:, :, pad : pad + h, pad : pad + width], dw, db


# ------------------------------------------------------------------------------ max-pool 2x2
class PoolCache(NamedTuple):
    winner: np.ndarray  # (N, C, H/2, W/2): which of the window's 4 cells (row-major) won
    x_shape: tuple[int, ...]


def _windows(x):
    """(N, C, H, W) -> (N, C, H/2, W/2, 4): each 2x2 window's cells in row-major order."""
    n, c, h, w = x.shape
    return (
        x.reshape(n, c, h // 2, 2, w // 2, 2)
        .transpose(0, 1, 2, 4, 3, 5)
        .reshape(n, c, h // 2, w // 2, 4)
    )


def maxpool_forward(x):
    """out[n, c, i, j] = max of the 2x2 window x[n, c, 2i:2i+2, 2j:2j+2]; H and W even."""
    if x.shape[2] % 2 or x.shape[3] % 2:
        raise ValueError(f"maxpool_forward needs even height and width, got {x.shape}")
    windows = _windows(x)
    winner = windows.argmax(axis=-1)
    out = np.take_along_axis(windows, winner[..., None], axis=-1)[..., 0]
    return out, PoolCache(winner, x.shape)


def maxpool_backward(dout, cache):
    """dout (N, C, H/2, W/2) -> dx (N, C, H, W): each window's dout goes to the cell that won
    (the first maximum on a tie: one subgradient), zero elsewhere."""
    winner, x_shape = cache
    n, c, h, w = x_shape
    dwin = np.zeros((n, c, h // 2, w // 2, 4))
    np.put_along_axis(dwin, winner[..., None], dout[..., None], axis=-1)
    return dwin.reshape(n, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(x_shape)
