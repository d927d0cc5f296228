"""check_value_and_grad: one call returns (loss, grads)."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import InputError, LossError, check_value_and_grad
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


# QA: these were LossError("loss raised InputError: ...") suggesting unpack=(out[0], out[1])
def test_a_return_that_is_not_a_pair_is_explained():
    with pytest.raises(
        InputError, match=r"returned a tuple of 3; expected \(loss, grads\)"
    ) as info:
        check_value_and_grad(lambda p: (1.0, {}, None), {"w": np.ones(2)})
    assert not isinstance(info.value, LossError)
    assert "unpack=lambda out: (out[0], out[1:k])" in str(info.value)


def test_a_loss_alone_points_to_check():
    with pytest.raises(InputError, match=r"returned only a number .* gradcheck.check\(loss, grad"):
        check_value_and_grad(lambda p: float(np.sum(p["w"] ** 2)), {"w": np.ones(2)})


def test_grads_before_loss_is_named_as_such():
    def fun(p):
        return {"w": 2 * p["w"]}, float(np.sum(p["w"] ** 2))

    with pytest.raises(InputError, match=r"returned \(dict, float\): the loss comes second"):
        check_value_and_grad(fun, {"w": np.ones(2)})
    swapped = check_value_and_grad(fun, {"w": np.ones(2)}, unpack=lambda out: (out[1], out[0]))
    assert swapped.passed


# QA: CS231n's svm_loss(x, y) -> (loss, dx) checked with params {"x": x} was refused with
# "grad must return a dict name -> array", which names no function of the user's.
def test_a_bare_gradient_for_dict_params_suggests_the_unpack():
    def svm_like(x):
        return float(np.sum(np.maximum(0, x + 1.0))), (x + 1.0 > 0).astype(float)

    x = np.array([[0.3, -2.0], [1.5, -0.4]])
    with pytest.raises(
        InputError, match=r"got ndarray; .*unpack=lambda out: \(out\[0\], \{'x': out\[1\]\}\)"
    ):
        check_value_and_grad(lambda p: svm_like(p["x"]), {"x": x})
    report = check_value_and_grad(
        lambda p: svm_like(p["x"]), {"x": x}, unpack=lambda out: (out[0], {"x": out[1]})
    )
    assert report.passed, report.to_text()
