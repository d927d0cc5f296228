"""A course's layer library (CS231n style): forward/backward pairs with an upstream ``dout``.

``gradcheck.check_layer(forward, backward, inputs)`` builds the scalar ``sum(out * dout)`` for
seeded random ``dout`` and checks every input's gradient. Two layers here, each with a correct
backward and a wrong one:

* an affine layer ``out = x @ w + b``; the planted bug doubles ``db[1]``;
* one LSTM step ``(next_h, next_c, cache) = lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)``
  whose backward adds into its argument (``dnext_c += ...``) as many students write it. The
  planted bug forgets the forget gate on ``dprev_c``. A check that hands the loss's own
  ``dnext_c`` to such a backward sees the loss change under it; ``check_layer`` copies it.

Run it: ``python examples/layer_pair.py`` prints both verdicts for each layer.
"""

from __future__ import annotations

import numpy as np

import gradcheck


# -- affine -------------------------------------------------------------------------------------
def affine_forward(x, w, b):
    """out = x @ w + b; x (N, D), w (D, M), b (M,)."""
    return x @ w + b, (x, w)


def affine_backward(dout, cache):
    """dx = dout w^T (N, D), dw = x^T dout (D, M), db = sum_n dout (M,)."""
    x, w = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def affine_backward_wrong(dout, cache):
    """Bug: db[1] doubled (a copy-paste of a line that adds dout[:, 1] twice)."""
    dx, dw, db = affine_backward(dout, cache)
    db[1] *= 2
    return dx, dw, db


# -- one LSTM step --------------------------------------------------------------------------------
def sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * z))


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step: gates a = x Wx + prev_h Wh + b split into i, f, o, g (each H wide)."""
    a = x @ Wx + prev_h @ Wh + b
    H = prev_h.shape[1]
    i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H : 2 * H]), sigmoid(a[:, 2 * H : 3 * H])
    g = np.tanh(a[:, 3 * H :])
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)


def lstm_step_backward(dnext_h, dnext_c, cache, forget_gate=True):
    """dx, dprev_h, dprev_c, dWx, dWh, db of one step; adds into dnext_c in place as written in
    many solutions. ``forget_gate=False`` plants the bug dprev_c = dc (instead of dc * f)."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    t = np.tanh(next_c)
    dnext_c += dnext_h * o * (1 - t**2)  # the in-place update of the caller's array
    dc = dnext_c
    di, df, do, dg = dc * g, dc * prev_c, dnext_h * t, dc * i
    da = np.hstack([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g**2)])
    dprev_c = dc * f if forget_gate else dc.copy()
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_step_backward_wrong(dnext_h, dnext_c, cache):
    """Bug: the forget gate is missing from dprev_c."""
    return lstm_step_backward(dnext_h, dnext_c, cache, forget_gate=False)


def lstm_inputs(seed=0):
    rng = np.random.default_rng(seed)
    N, D, H = 2, 3, 4
    return {
        "x": rng.normal(size=(N, D)),
        "prev_h": rng.normal(size=(N, H)),
        "prev_c": rng.normal(size=(N, H)),
        "Wx": rng.normal(size=(D, 4 * H)) * 0.5,
        "Wh": rng.normal(size=(H, 4 * H)) * 0.5,
        "b": rng.normal(size=4 * H) * 0.1,
    }


def affine_inputs(seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(4, 3)), "w": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}


def main() -> int:
    right = gradcheck.check_layer(affine_forward, affine_backward, affine_inputs())
    wrong = gradcheck.check_layer(affine_forward, affine_backward_wrong, affine_inputs())
    print("affine, correct:", "passed" if right.passed else "FAILED")
    print("affine, db[1] doubled:", "passed" if wrong.passed else "FAILED", wrong.failed_params)
    right = gradcheck.check_layer(lstm_step_forward, lstm_step_backward, lstm_inputs())
    wrong = gradcheck.check_layer(lstm_step_forward, lstm_step_backward_wrong, lstm_inputs())
    print("LSTM step, correct:", "passed" if right.passed else "FAILED")
    print(*(f"  note: {n}" for n in right.notes), sep="\n")
    print("LSTM step, no forget gate on dprev_c:", "passed" if wrong.passed else "FAILED")
    print(wrong)
    return 0 if right.passed and not wrong.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
