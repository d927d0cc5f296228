"""check_layer: forward/backward pairs with an upstream dout."""

from __future__ import annotations

import numpy as np
import pytest

from examples.layer_pair import (
    affine_backward,
    affine_backward_wrong,
    affine_forward,
    affine_inputs,
    lstm_inputs,
    lstm_step_backward,
    lstm_step_forward,
)
from gradcheck import InputError, StateMutationError, check, check_layer
from tests.helpers.snapshot import assert_unchanged, snapshot


def _wrong(report):
    return sorted((e.param, e.index) for e in report.entries if e.status == "wrong")


def test_affine_correct_passes_wrong_pinned_inputs_restored():
    inputs = affine_inputs()
    snap = snapshot(inputs)
    assert check_layer(affine_forward, affine_backward, inputs).passed
    assert _wrong(check_layer(affine_forward, affine_backward_wrong, inputs)) == [("b", (1,))]
    assert_unchanged(snap)


def test_list_inputs_are_named_by_position():
    x, w, b = affine_inputs().values()
    report = check_layer(affine_forward, affine_backward_wrong, [x, w, b])
    assert _wrong(report) == [("x2", (1,))]


def _double_counting_backward(dnext_h, dnext_c, cache):
    """Adds the tanh path into dnext_c in place and then once more: a wrong backward."""
    o, next_c = cache[7], cache[9]
    path = dnext_h * o * (1 - np.tanh(next_c) ** 2)
    dnext_c += path
    return lstm_step_backward(dnext_h, dnext_c.copy(), cache)  # adds the path again


def test_backward_writing_into_dout_cannot_pass_a_wrong_backward():
    inputs = lstm_inputs()
    rng = np.random.default_rng(0)
    dh, dc = rng.normal(size=(2, 4)), rng.normal(size=(2, 4))

    # the hand-made check of the issue: the loss's own dout handed to backward, which adds
    # into it: the loss changed under the check and the wrong backward passed; check() now
    # refuses it (issue 12 item 6), and check_layer hands backward a copy and catches the bug
    def loss(p):
        next_h, next_c, _ = lstm_step_forward(**p)
        return float(np.sum(next_h * dh) + np.sum(next_c * dc))

    def grad(p):
        _, _, cache = lstm_step_forward(**p)
        return dict(zip(p, _double_counting_backward(dh, dc, cache), strict=True))

    with pytest.raises(StateMutationError, match="the gradient function changed what the loss"):
        check(loss, grad, inputs)
    report = check_layer(lstm_step_forward, _double_counting_backward, lstm_inputs())
    assert {p for p, _ in _wrong(report)} == {"x", "prev_h", "prev_c", "Wx", "Wh", "b"}
    assert any("writes into its dout argument 1 in place" in n for n in report.notes)


def test_correct_lstm_step_with_two_outputs_passes_and_notes_the_write():
    report = check_layer(lstm_step_forward, lstm_step_backward, lstm_inputs(), douts=2)
    assert report.passed, report.to_text()
    assert any("over 2 upstream gradient(s)" in n for n in report.notes)


class Accumulating:
    """A layer object whose backward adds into a gradient buffer it never zeroes."""

    def __init__(self):
        self.dw = np.zeros((3, 2))

    def forward(self, x, w):
        return x @ w, (x, w)

    def backward(self, dout, cache):
        x, w = cache
        self.dw += x.T @ dout  # bug: should be =
        return dout @ w.T, self.dw.copy()


def test_state_kept_between_backward_calls_is_caught_by_several_douts():
    x, w, _ = affine_inputs().values()
    layer = Accumulating()
    assert check_layer(layer.forward, layer.backward, {"x": x, "w": w}, douts=1).passed
    layer = Accumulating()
    report = check_layer(layer.forward, layer.backward, {"x": x, "w": w})
    assert report.failed_params == ["w"]


def test_constants_are_passed_through_and_wrt_names_the_gradients():
    def forward(x, gamma, param):
        return x * gamma * param["scale"], (x, gamma, param)

    def backward(dout, cache):
        x, gamma, param = cache
        return dout * gamma * param["scale"], np.sum(dout * x) * param["scale"] * 1.5  # bug

    inputs = {"x": np.array([1.0, -2.0]), "gamma": 0.7, "param": {"scale": 2.0}}
    assert _wrong(check_layer(forward, backward, inputs)) == [("gamma", ())]
    with pytest.raises(InputError, match=r"backward returned 2 gradient\(s\) for the 1 checked"):
        check_layer(forward, backward, inputs, wrt=["x"])


def test_float32_layer_passes():
    inputs = {k: v.astype(np.float32) for k, v in affine_inputs().items()}
    report = check_layer(affine_forward, affine_backward, inputs)
    assert report.passed, report.to_text()
    assert _wrong(check_layer(affine_forward, affine_backward_wrong, inputs)) == [("b", (1,))]


def test_explicit_douts_and_bad_ones():
    inputs = affine_inputs()
    dout = np.ones((4, 2))
    assert check_layer(affine_forward, affine_backward, inputs, douts=[dout]).passed
    with pytest.raises(InputError, match=r"douts\[0\] has shape \(2,\)"):
        check_layer(affine_forward, affine_backward, inputs, douts=[np.ones(2)])


def test_two_outputs_without_a_cache():
    def forward(x):
        return np.sin(x), x**2  # two outputs, no cache: outputs=2

    def backward(dsin, dsq, cache):
        assert cache is None
        return dsin * np.cos(x_value) + dsq * 2 * x_value * (x_value > 0)  # bug where x <= 0

    x_value = np.array([0.5, -1.0, 2.0])
    report = check_layer(forward, backward, {"x": x_value}, outputs=2)
    assert _wrong(report) == [("x", (1,))]


# QA: a one-input layer (relu_forward(x)) checked with inputs=x was refused without saying how.
def test_a_bare_array_as_inputs_says_how_to_pass_one_input():
    def relu_forward(x):
        return np.maximum(0, x), x

    def relu_backward(dout, cache):
        return dout * (cache > 0)

    x = np.array([[0.5, -1.0], [2.0, 0.25]])
    with pytest.raises(InputError, match=r"got ndarray \(one input: pass \{'x': x\} or \[x\]\)"):
        check_layer(relu_forward, relu_backward, x)
    assert check_layer(relu_forward, relu_backward, [x]).passed


# QA: CS231n's batchnorm_forward(x, gamma, beta, bn_param) writes running_mean/var into the
# bn_param dict on every call (a non-float input passed as it is, changing under the check).
def _batchnorm_forward(x, gamma, beta, bn_param):
    eps, momentum = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    mu, var = x.mean(axis=0), x.var(axis=0)
    x_hat = (x - mu) / np.sqrt(var + eps)
    running = bn_param.get("running_mean", np.zeros(x.shape[1]))
    bn_param["running_mean"] = momentum * running + (1 - momentum) * mu
    bn_param["running_var"] = momentum * bn_param.get("running_var", 0.0) + (1 - momentum) * var
    return gamma * x_hat + beta, (x, x_hat, mu, var, gamma, eps)


def _batchnorm_backward(dout, cache, drop_variance_path=False):
    x, x_hat, mu, var, gamma, eps = cache
    n = x.shape[0]
    dx_hat = dout * gamma
    dvar = np.sum(dx_hat * (x - mu) * -0.5 * (var + eps) ** -1.5, axis=0)
    dmu = np.sum(-dx_hat / np.sqrt(var + eps), axis=0) + dvar * np.mean(-2 * (x - mu), axis=0)
    dx = dx_hat / np.sqrt(var + eps) + dmu / n
    if not drop_variance_path:
        dx = dx + dvar * 2 * (x - mu) / n
    return dx, np.sum(dout * x_hat, axis=0), dout.sum(axis=0)


def test_batchnorm_with_a_bn_param_dict_it_writes_into():
    rng = np.random.default_rng(231)
    bn_param = {"mode": "train"}
    inputs = {
        "x": 5 * rng.normal(size=(6, 4)) + 12,
        "gamma": rng.normal(size=4),
        "beta": rng.normal(size=4),
        "bn_param": bn_param,
    }
    snap = snapshot(inputs["x"], inputs["gamma"], inputs["beta"])
    good = check_layer(_batchnorm_forward, _batchnorm_backward, inputs)
    assert good.passed, good.to_text()
    assert [p.name for p in good.params] == ["x", "gamma", "beta"]

    def wrong(dout, cache):
        return _batchnorm_backward(dout, cache, drop_variance_path=True)

    bad = check_layer(_batchnorm_forward, wrong, inputs)
    assert bad.failed_params == ["x"]
    assert bad["x"].n_wrong == inputs["x"].size  # every dx element takes the variance path
    assert_unchanged(snap)
    assert sorted(bn_param) == ["mode", "running_mean", "running_var"]


# A batchnorm input column of ones (a constant feature): its mean over a batch at 1 + h rounds to
# 1e-16, which inv_std (316) makes a loss error of 1e-13, the same at every element of the
# column (the same step, the same rounding); the noise tables at x read 2e-15, their points
# round numbers (1 + j 2**-27). Every partial of the column came out off by the same 1e-6
# against bounds of 3e-6, and one over.
def _constant_column(dtype, scale, rows, seed=5):
    from nets.norms import batchnorm_forward

    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, 5 if rows == 8 else 4)) * scale).astype(dtype)
    x[:, 0] = 1.0
    d = x.shape[1]
    inputs = {"x": x, "gamma": rng.standard_normal(d).astype(dtype)}
    inputs["beta"] = rng.standard_normal(d).astype(dtype)
    return batchnorm_forward, inputs


@pytest.mark.parametrize(
    ("dtype", "scale", "rows"), [(np.float64, 1e-4, 8), (np.float32, 1e-3, 16)]
)
def test_a_batchnorm_column_of_ones_is_no_false_alarm_and_errors_are_still_caught(
    dtype, scale, rows
):
    from nets.norms import batchnorm_backward

    forward, inputs = _constant_column(dtype, scale, rows)
    report = check_layer(forward, batchnorm_backward, inputs, seed=5)
    assert report.passed, report
    assert any("round" in note for note in report.notes)
    # an error on one element of the column, and on one elsewhere, is caught: 1e-3 relative in
    # float64; in float32 three times the sensitivity the report states for the element (the
    # column's noise, measured, widens the whole tensor's bounds: 0.4 and 4 there)
    sensitivity = report["x"].sensitivity
    for target in [(4, 0), (2, 1)]:
        flat = int(np.ravel_multi_index(target, inputs["x"].shape))
        stated = float(sensitivity[list(report["x"].indices).index(flat)])
        relative = 1e-3 if dtype == np.float64 else 3 * stated
        assert dtype != np.float64 or stated < 1e-4

        def wrong(dout, cache, target=target, relative=relative):
            dx, dgamma, dbeta = batchnorm_backward(dout, cache)
            dx = dx.copy()
            dx[target] *= 1 + relative
            return dx, dgamma, dbeta

        bad = check_layer(forward, wrong, inputs, seed=5)
        assert bad.failed_params == ["x"]
        x = bad["x"]
        assert list(x.indices[x.statuses == "wrong"]) == [flat]


def _lstm_step(rng, n=3, d=5, hidden=4):
    """An LSTM step on image-like inputs (pixels / 255), weights at 1e-2, forget bias 1."""
    x = rng.integers(0, 256, size=(n, d)).astype(np.float64) / 255
    h, c = 0.5 * rng.standard_normal((n, hidden)), rng.standard_normal((n, hidden))
    wx = rng.standard_normal((d, 4 * hidden)) * 1e-2
    wh = rng.standard_normal((hidden, 4 * hidden)) * 1e-2
    b = np.zeros(4 * hidden)
    b[hidden : 2 * hidden] = 1.0

    def sigmoid(a):
        return 1.0 / (1.0 + np.exp(-a))

    def forward(x, h, c, wx, wh, b):
        a = x @ wx + h @ wh + b
        i, f = sigmoid(a[:, :hidden]), sigmoid(a[:, hidden : 2 * hidden])
        o, g = sigmoid(a[:, 2 * hidden : 3 * hidden]), np.tanh(a[:, 3 * hidden :])
        nc = f * c + i * g
        tc = np.tanh(nc)
        return o * tc, nc, (x, h, c, wx, wh, i, f, o, g, tc)

    def backward(dnh, dnc, cache):
        x, h, c, wx, wh, i, f, o, g, tc = cache
        dc = dnc + dnh * o * (1 - tc**2)
        do, di, df, dg = dnh * tc, dc * g, dc * c, dc * i
        da = np.concatenate(
            [di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g**2)], axis=1
        )
        return da @ wx.T, da @ wh.T, dc * f, x.T @ da, h.T @ da, da.sum(axis=0)

    return forward, backward, {"x": x, "h": h, "c": c, "wx": wx, "wh": wh, "b": b}


def test_an_error_three_times_the_stated_sensitivity_is_caught_though_another_tensor_kinked():
    # a kink read (from rounding) at a weight of the group sent every disagreeing element of
    # the other inputs into kink isolation, whose smallest steps' rounding took their verdicts:
    # an error on dx 3x and 10x the sensitivity the correct check stated passed, with a bound
    # 250x the element's own
    forward, backward, inputs = _lstm_step(np.random.default_rng(1000))
    correct = check_layer(forward, backward, inputs)
    assert correct.passed, correct
    flat = 11
    stated = float(correct["x"].sensitivity[flat])
    assert stated < 1e-6
    for multiple in (3, 10):

        def wrong(dnh, dnc, cache, relative=multiple * stated):
            grads = list(backward(dnh, dnc, cache))
            grads[0] = grads[0].copy()
            grads[0].flat[flat] *= 1 + relative
            return tuple(grads)

        report = check_layer(forward, wrong, inputs)
        x = report["x"]
        assert list(x.indices[x.statuses == "wrong"]) == [flat], multiple


def test_the_float64_recheck_gives_backward_float64_douts():
    # the upstream gradients stayed float32 in the re-check: a bias's db = dout.sum(0) summed
    # in float32 failed against float64 bounds, on the re-check the float32 note recommends
    seen = set()
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)

    def backward(dout, cache):
        seen.add(dout.dtype)
        return dout, dout.sum(axis=0)

    inputs = {"x": x, "b": np.zeros(3, np.float32)}
    report = check_layer(lambda x, b: (x + b, None), backward, inputs, recheck_float64=True)
    assert report.passed
    assert report.recheck.passed, report.recheck
    assert seen == {np.dtype(np.float32), np.dtype(np.float64)}
    assert any("douts" in note for note in report.recheck.notes)


def test_a_linear_layer_s_rounding_is_no_kink_and_an_error_in_it_is_caught():
    # dropout with a fixed mask is linear in x: the pilot's table ran along a dropped element
    # (no noise at all) and the 1-ulp floor took the sum's rounding (12 ulps of the loss, its
    # terms ~90x it) for central values that converge at no order, a kink; isolation went
    # down into the rounding, and an error 3x the stated sensitivity passed as `uncertain`
    keep = np.random.default_rng(3).random((4, 6)) >= 0.5
    x = np.random.default_rng(1003).standard_normal((4, 6))

    def forward(x):
        return 2.0 * x * keep, None

    def backward(dout, cache):
        return 2.0 * dout * keep

    correct = check_layer(forward, backward, {"x": x}, seed=3)
    assert correct.passed, correct
    stated = float(correct["x"].sensitivity[21])

    def wrong(dout, cache):
        dx = backward(dout, cache).copy()
        dx.flat[21] *= 1 + 3 * stated
        return dx

    report = check_layer(forward, wrong, {"x": x}, seed=3)
    x_result = report["x"]
    assert list(x_result.indices[x_result.statuses != "ok"]) == [21]
    assert x_result.statuses[21] == "wrong"
