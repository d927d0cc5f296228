"""check_value_and_grad: one call returns (loss, grads)."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import LossError, check_value_and_grad
from tests.helpers.snapshot import assert_unchanged, snapshot


def _quadratic(bug=False):
    A = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 3.0]])

    def fun(p):
        w, (s,) = p["w"], p["s"]
        loss = 0.5 * w @ A @ w + s**2 * np.sum(w)
        dw = A @ w + s**2
        if bug:
            dw[2] *= -1
        return loss, {"w": dw, "s": [2 * s * np.sum(w)]}

    return fun


def test_planted_bug_pinned_and_nested_params_restored():
    w = np.array([0.3, -1.0, 0.7])
    params = {"w": w, "s": [1.5]}
    snap = snapshot(params, w)
    report = check_value_and_grad(_quadratic(bug=True), params)
    assert [(e.param, e.index) for e in report.entries if e.status == "wrong"] == [("w", (2,))]
    assert_unchanged(snap)
    assert params["s"] == [1.5]
    assert check_value_and_grad(_quadratic(), params).passed


def test_every_loss_comes_from_a_fresh_call():
    calls = []
    fun = _quadratic()

    def counted(p):
        calls.append(1)
        return fun(p)

    report = check_value_and_grad(counted, {"w": np.ones(3), "s": [1.0]})
    assert len(calls) == report.evaluations + 1  # one call per loss evaluation, one for grads


def test_unpack_adapts_other_return_shapes():
    W = np.array([[1.0, -2.0], [0.5, 0.25]])

    def loss_fun(p):
        (M,) = p
        return float(np.sum(M**3)), 3 * M**2, "hidden state"

    report = check_value_and_grad(loss_fun, [W], unpack=lambda out: (out[0], out[1:2]))
    assert report.passed, report.to_text()
    assert [p.name for p in report.params] == ["[0]"]


def test_a_return_that_is_not_a_pair_is_explained():
    with pytest.raises(LossError, match=r"returned a tuple of 3; expected \(loss, grads\)"):
        check_value_and_grad(lambda p: (1.0, {}, None), {"w": np.ones(2)})
