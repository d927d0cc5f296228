"""Joint probes over every tensor (gradcheck/fast/joint.py): costs, localization over the
concatenation, no false alarm on kinks or float32, stated sensitivity per tensor."""

from __future__ import annotations

import numpy as np
import pytest

import gradcheck
from gradcheck import FastOptions
from gradcheck.fast.joint import segment_weights, widening
from gradcheck.fast.localize import CONFIRM_EVALUATIONS
from gradcheck.fast.probe import Tensor
from nets.tanh_mlp import TanhMLP, wrong_elements
from tests.helpers.toy import two_layer_net

FORCE = FastOptions(auto=False)


def counted(loss):
    """``loss`` with its calls counted (``calls[0]``): the cost as the user pays it."""
    calls = [0]

    def wrapped(params):
        calls[0] += 1
        return loss(params)

    return wrapped, calls


@pytest.mark.parametrize("seed", [0, 1])
def test_a_correct_multi_tensor_net_costs_at_most_twelve_evaluations(seed):
    net = TanhMLP(seed=seed)  # 6 tensors
    loss, calls = counted(net.loss)
    report = gradcheck.check(loss, net.grad, net.params(), mode="fast", fast=FORCE, seed=seed)
    assert report.passed, report.to_text()
    assert calls[0] == report.evaluations <= 12
    for p in report.params:
        assert p.probe.joint == 6
        assert p.counts() == {"probed": p.size}
        assert 0 < p.probe.sensitivity["abs"] < 1e-4
    stated = report.to_dict()["params"][1]["probe"]
    assert stated["joint"] == 6
    assert stated["sensitivity"]["miss"] == FORCE.miss
    assert "joint" in report.to_text()


@pytest.mark.parametrize(("tensor", "index"), [("b2", 5), ("W1", 123), ("W3", 17)])
def test_one_wrong_element_is_found_at_its_tensor_and_index_within_twenty(tensor, index):
    net = TanhMLP()
    loss, calls = counted(net.loss)
    bad = wrong_elements(net.grad, {tensor: {index: 0.05}})
    report = gradcheck.check(loss, bad, net.params(), mode="fast", fast=FORCE)
    assert report.failed_params == [tensor]
    assert report[tensor].probe.proven_wrong == (index,)
    assert report[tensor].probe.decoded[-1] == index  # read off the joint probes' values
    assert calls[0] == report.evaluations <= 20
    assert all(p.count("wrong") == 0 for p in report.params if p.name != tensor)


def test_wrong_elements_in_several_tensors_are_all_found():
    # no single element explains the joint probes: every tensor goes to its own probes
    net = TanhMLP()
    planted = {"W1": {40: 0.05}, "b1": {3: -0.05}, "W3": {7: 0.05}}
    report = gradcheck.check(
        net.loss, wrong_elements(net.grad, planted), net.params(), mode="fast", fast=FORCE
    )
    assert sorted(report.failed_params) == sorted(planted)
    for name, where in planted.items():
        assert report[name].probe.proven_wrong == tuple(where)
    assert all(p.count("wrong") == 0 for p in report.params if p.name not in planted)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_kinked_relu_net_raises_no_false_alarm(seed):
    loss, grad, params = two_layer_net(seed=seed, inputs=30)
    report = gradcheck.check(loss, grad, params, mode="fast", fast=FORCE, seed=seed)
    assert report.passed, report.to_text()
    assert all(p.count("wrong") == 0 for p in report.params)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_float32_net_raises_no_false_alarm(seed):
    net = TanhMLP(dtype=np.float32, seed=seed)
    report = gradcheck.check(net.loss, net.grad, net.params(), mode="fast", fast=FORCE, seed=seed)
    assert report.passed, report.to_text()
    assert report.evaluations <= 12


@pytest.mark.parametrize("tensor", ["b1", "b3"])
def test_an_error_just_above_a_small_tensors_stated_sensitivity_is_found(tensor):
    net = TanhMLP()
    params = net.params()
    stated = gradcheck.check(net.loss, net.grad, params, mode="fast", fast=FORCE)
    assert stated.passed
    sensitivity = stated[tensor].probe.sensitivity["abs"]
    assert stated[tensor].probe.joint == 6
    index = 2
    scale = max(1.0, abs(float(params[tensor].reshape(-1)[index])))
    error = 1.5 * sensitivity / scale  # ||e * max(1, |x|)|| at 1.5x the sensitivity
    bad = wrong_elements(net.grad, {tensor: {index: error}})
    report = gradcheck.check(net.loss, bad, params, mode="fast", fast=FORCE)
    assert report.failed_params == [tensor]
    assert report[tensor].probe.proven_wrong == (index,)


def _tensor(n: int, spread: float) -> Tensor:
    return Tensor(
        name="t",
        x=np.zeros(n),
        analytic=np.zeros(n),
        finite=n,
        eps=2.0**-52,
        tol=None,  # type: ignore[arg-type]
        rtol=1e-8,
        quantile=6.5,
        scale=n**-0.5,
        spread=spread,
    )


def test_segment_weights_share_the_tolerance_as_the_square_root_of_sizes():
    tensors = [_tensor(10**6, 0.01), _tensor(10, 0.1), _tensor(1000, 0.0), _tensor(5, np.inf)]
    c = segment_weights(tensors)
    assert np.linalg.norm(c) == pytest.approx(1.0)
    assert c[3] == 0.0  # not finite: not moved (its own probes)
    # rounding shares (c * spread)**2 go as sqrt(n): 1000 : sqrt(10)
    assert (c[0] * 0.01) ** 2 / (c[1] * 0.1) ** 2 == pytest.approx(1000 / 10**0.5)
    assert c[2] > 0  # zero partials: floored at SPREAD_FLOOR of the median spread
    assert widening(tensors[:2])[1] == pytest.approx(np.sqrt((1000 + 10**0.5) / 10**0.5))


@pytest.mark.parametrize(("relative", "probes"), [(3e-3, 3), (1e-4, 4)])
def test_the_best_single_error_fit_names_a_weak_error_the_ratio_windows_cannot_pin(
    relative, probes
):
    # one element among 44,000 wrong by a small fraction of its median partial: the probes'
    # consistent-error intervals leave more than MATCH_MOST elements, but the element's
    # least-squares fit over every probe is far better than any chance element's (its residual
    # is the probes' actual noise, far below their tolerance): a lead read off the three
    # joint probes at 3e-3, after one probe more at 1e-4, confirmed, no bisection over tensors
    net = TanhMLP(sizes=(100, 400, 10), batch=16, seed=0)
    g = net.grad(net.params())["W1"].reshape(-1)
    index = int(np.argmin(np.abs(np.abs(g) - np.median(np.abs(g)))))
    grad = wrong_elements(net.grad, {"W1": {index: relative * abs(g[index])}})
    loss, calls = counted(net.loss)
    report = gradcheck.check(loss, grad, net.params(), mode="fast", fast=FORCE, seed=0)
    assert report.failed_params == ["W1"]
    assert report["W1"].probe.proven_wrong == (index,)
    assert report["W1"].probe.decoded == (index,)  # the one lead confirmed
    assert len(report["W1"].probe.probes) == probes
    assert calls[0] == report.evaluations == 12 + 2 * (probes - 3) + CONFIRM_EVALUATIONS
