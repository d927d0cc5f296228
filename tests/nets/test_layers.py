"""The layers' forwards against naive loops, their numerics, and the network composition."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import check
from nets.conv import conv2d_forward, maxpool_backward, maxpool_forward
from nets.layers import (
    cross_entropy_backward,
    cross_entropy_forward,
    dense_backward,
    dense_forward,
    mse_backward,
    mse_forward,
    sigmoid_forward,
    softmax_forward,
    tanh_backward,
    tanh_forward,
)
from nets.network import Network, Stage
from nets.norms import batchnorm_forward, dropout_forward, layernorm_forward
from nets.sequence import attention_forward, rnn_forward


def test_dense_forward_is_x_w_plus_b():
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(3, 4)), rng.normal(size=(4, 2)), rng.normal(size=2)
    out, _ = dense_forward(x, w, b)
    expected = [
        [sum(x[n, d] * w[d, m] for d in range(4)) + b[m] for m in range(2)] for n in range(3)
    ]
    np.testing.assert_allclose(out, expected)


@pytest.mark.parametrize(("stride", "pad"), [(1, 0), (2, 1), (1, 2)])
def test_conv2d_forward_matches_loops(stride, pad):
    rng = np.random.default_rng(1)
    x, w, b = rng.normal(size=(2, 2, 5, 6)), rng.normal(size=(3, 2, 3, 2)), rng.normal(size=3)
    out, _ = conv2d_forward(x, w, b, stride=stride, pad=pad)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (5 + 2 * pad - 3) // stride + 1, (6 + 2 * pad - 2) // stride + 1
    expected = np.empty((2, 3, oh, ow))
    for n in range(2):
        for f in range(3):
            for i in range(oh):
                for j in range(ow):
                    field = xp[n, :, i * stride : i * stride + 3, j * stride : j * stride + 2]
                    expected[n, f, i, j] = (field * w[f]).sum() + b[f]
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_maxpool_takes_each_window_max_and_routes_dout_to_it():
    x = np.array([[1, 5, 2, 0], [3, 4, 9, 8], [7, 6, 0, 1], [2, 2, 3, 4]], dtype=float)
    out, cache = maxpool_forward(x[None, None])
    np.testing.assert_array_equal(out[0, 0], [[5, 9], [7, 4]])
    dx = maxpool_backward(np.array([[[[10.0, 20.0], [30.0, 40.0]]]]), cache)[0, 0]
    expected = np.zeros((4, 4))
    expected[0, 1], expected[1, 2], expected[2, 0], expected[3, 3] = 10, 20, 30, 40
    np.testing.assert_array_equal(dx, expected)


def test_maxpool_needs_even_sides():
    with pytest.raises(ValueError, match="even height and width"):
        maxpool_forward(np.zeros((1, 1, 3, 4)))


def test_maxpool_routes_a_tie_to_one_cell_only():
    x = np.zeros((1, 1, 2, 2))
    _, cache = maxpool_forward(x)
    assert maxpool_backward(np.ones((1, 1, 1, 1)), cache).sum() == 1.0


def test_softmax_and_sigmoid_are_stable_for_huge_inputs():
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow is fine
        p, _ = softmax_forward(np.array([[1e4, 0.0, -1e4]]))
        s, _ = sigmoid_forward(np.array([-1e4, 1e4]))
    np.testing.assert_allclose(p, [[1.0, 0.0, 0.0]])
    np.testing.assert_allclose(s, [0.0, 1.0])


def test_cross_entropy_from_logits_is_stable_and_exact():
    z = np.array([[1e4, 0.0], [0.0, 1e4], [2.0, 1.0]])
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow is fine
        loss, cache = cross_entropy_forward(z, np.array([0, 0, 1]))
    expected = (0.0 + 1e4 + (np.log(np.exp(2.0) + np.exp(1.0)) - 1.0)) / 3
    assert loss == pytest.approx(expected, rel=1e-12)
    dz = cross_entropy_backward(1.0, cache)
    np.testing.assert_allclose(dz.sum(axis=1), 0.0, atol=1e-15)  # softmax minus one-hot rows


def test_mse_is_the_mean_over_every_element():
    loss, cache = mse_forward(np.array([[1.0, 2.0], [3.0, 5.0]]), np.zeros((2, 2)))
    assert loss == pytest.approx((1 + 4 + 9 + 25) / 4)
    np.testing.assert_allclose(mse_backward(1.0, cache), [[0.5, 1.0], [1.5, 2.5]])


def test_normalisations_standardise_their_axis():
    rng = np.random.default_rng(2)
    x = 3 * rng.normal(size=(6, 4)) + 2
    ones, zeros = np.ones(4), np.zeros(4)
    bn, _ = batchnorm_forward(x, ones, zeros)
    ln, _ = layernorm_forward(x, ones, zeros)
    np.testing.assert_allclose(bn.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(bn.std(axis=0), 1, rtol=1e-5)
    np.testing.assert_allclose(ln.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(ln.std(axis=1), 1, rtol=1e-5)


def test_dropout_mask_is_fixed_by_its_seed():
    x = np.ones((50, 40))
    a, _ = dropout_forward(x, p=0.3, seed=5)
    b, _ = dropout_forward(x, p=0.3, seed=5)
    c, _ = dropout_forward(x, p=0.3, seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert abs((a == 0).mean() - 0.3) < 0.05
    np.testing.assert_allclose(a[a != 0], 1 / 0.7)


def test_rnn_forward_is_the_recurrence():
    rng = np.random.default_rng(3)
    x, h0 = rng.normal(size=(2, 3, 2)), rng.normal(size=(2, 4))
    wx, wh, b = rng.normal(size=(2, 4)), rng.normal(size=(4, 4)), rng.normal(size=4)
    h, _ = rnn_forward(x, h0, wx, wh, b)
    prev = h0
    for t in range(3):
        prev = np.tanh(x[:, t] @ wx + prev @ wh + b)
        np.testing.assert_allclose(h[:, t], prev)


def test_attention_rows_average_the_values():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 3, 4))
    wq, wk, wv = (rng.normal(size=(4, 4)) for _ in range(3))
    out, cache = attention_forward(x, wq, wk, wv)
    np.testing.assert_allclose(cache.a.sum(axis=-1), 1.0)
    scores = (x[0] @ wq) @ (x[0] @ wk).T / 2.0
    weights = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out[0], weights @ (x[0] @ wv))


# ------------------------------------------------------------------------- composition
def _tied_net(rng):
    x, target = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    return Network(
        (
            Stage("first", dense_forward, dense_backward, ("w", "b")),
            Stage("tanh", tanh_forward, tanh_backward),
            Stage("second", dense_forward, dense_backward, ("w", "b")),
            Stage("loss", mse_forward, mse_backward, options={"target": target}),
        ),
        x,
    )


def test_shared_parameter_gets_the_sum_of_its_uses():
    rng = np.random.default_rng(5)
    net = _tied_net(rng)
    params = {"w": rng.normal(size=(4, 4)), "b": rng.normal(size=4)}
    report = check(net.loss, net.grad, params)
    assert report.passed
    one_use = net.replace_backward(
        "first", lambda dout, cache: (dense_backward(dout, cache)[0], 0 * cache.w, np.zeros(4))
    )
    assert check(one_use.loss, one_use.grad, params).failed_params == ["w", "b"]


def test_input_as_parameter_gets_the_first_stage_dx():
    rng = np.random.default_rng(6)
    stage = Stage("fc", dense_forward, dense_backward, ("w", "b"))
    loss = Stage("loss", mse_forward, mse_backward, options={"target": rng.normal(size=(2, 3))})
    net = Network((stage, loss), "x")
    params = {"x": rng.normal(size=(2, 4)), "w": rng.normal(size=(4, 3)), "b": np.zeros(3)}
    grads = net.grad(params)
    assert set(grads) == {"x", "w", "b"}
    assert check(net.loss, net.grad, params).passed
    problem = net.problem(params, "fc")
    assert problem.name == "fc"
    assert problem.loss(problem.params) == net.loss(params)


def test_network_rejects_duplicate_stage_names_and_unknown_replacements():
    stage = Stage("same", tanh_forward, tanh_backward)
    with pytest.raises(ValueError, match="unique"):
        Network((stage, stage), np.zeros(2))
    net = Network((stage,), np.zeros(2))
    with pytest.raises(KeyError, match="no stage 'other'"):
        net.replace_backward("other", tanh_backward)
