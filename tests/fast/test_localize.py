"""Localization: bisection finds planted wrong elements, exactly, in O(k log P) evaluations."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gradcheck
from gradcheck import FastOptions
from gradcheck.fast.localize import PER_HALVING, PILOT
from nets.tanh_mlp import TanhMLP, wrong_elements

CONFIRM = 2 + 4  # a located element's central difference and, being wrong, its refinement


def budget(k: int, size: int) -> int:
    """Localization evaluations allowed for k wrong elements in a tensor of ``size``: at most
    one halving per level per wrong element, plus measuring the located ones."""
    return k * PER_HALVING * math.ceil(math.log2(size)) + PILOT * min(3, k) + CONFIRM * k


class Wide:
    """L = sum(c * tanh(w)) + 0.5 * sum(w**2) over one long vector (picklable)."""

    def __init__(self, size: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.c = rng.standard_normal(size)
        self.w = rng.standard_normal(size) * 0.5

    def loss(self, params):
        w = params["w"]
        return float(self.c @ np.tanh(w) + 0.5 * (w @ w))

    def grad(self, params):
        w = params["w"]
        return {"w": self.c * (1 - np.tanh(w) ** 2) + w}


def run(loss, grad, params, **kwargs):
    report = gradcheck.check(loss, grad, params, mode="fast", **kwargs)
    return report, report["w"] if "w" in params else None


@pytest.mark.parametrize("index", [0, 4242, 65535])
def test_one_wrong_element_in_a_long_vector(index):
    size = 1 << 16
    net = Wide(size)
    params = {"w": net.w.copy()}
    grad = wrong_elements(net.grad, {"w": {index: 1e-2}})
    report, w = run(net.loss, grad, params)
    assert w.probe.proven_wrong == [index]
    assert w.probe.located == [index]
    assert w.probe.localization_evaluations <= budget(1, size)
    assert w.count("wrong") == 1
    assert w.count("probed") == size - 1
    assert w.count("unchecked") == 0
    assert w.count("ok") == 0
    # the located element's row: analytic against a per-element central difference
    true = net.grad({"w": net.w})["w"][index]
    assert abs(w.numeric[index] - true) <= 10 * w.fd_error[index] < 1e-4  # planted: 1e-2
    assert np.isnan(np.delete(w.numeric, index)).all()
    assert report.evaluations <= 2 + 6 + budget(1, size)
    assert np.array_equal(params["w"], net.w)


def test_several_wrong_elements_exactly():
    size = 1 << 14
    net = Wide(size, seed=1)
    wrong = {17: 3e-2, 5000: -2e-2, 9001: 1e-1, 16000: -5e-2}
    grad = wrong_elements(net.grad, {"w": wrong})
    _, w = run(net.loss, grad, {"w": net.w.copy()})
    assert w.probe.proven_wrong == sorted(wrong)
    assert set(np.flatnonzero(w.statuses == "wrong")) == set(wrong)
    assert w.probe.localization_evaluations <= budget(len(wrong), size)


@pytest.mark.parametrize("seed", range(4))
def test_opposite_errors_side_by_side_do_not_cancel(seed):
    # equal and opposite, adjacent: every range but the last holds both. With +-1 weights
    # they would cancel half the time; Gaussian weights make their sum Gaussian instead.
    size = 1 << 12
    net = Wide(size, seed=seed)
    grad = wrong_elements(net.grad, {"w": {1000: 1e-2, 1001: -1e-2}})
    _, w = run(net.loss, grad, {"w": net.w.copy()}, seed=seed)
    assert w.probe.proven_wrong == [1000, 1001]
    assert w.probe.localization_evaluations <= budget(2, size)


def test_wrong_elements_in_two_tensors_of_an_mlp():
    net = TanhMLP(sizes=(20, 64, 32, 4))
    shifts = {"W1": {3: 1e-3, 1200: -1e-3}, "W2": {2047: 5e-4}}
    report = gradcheck.check(net.loss, wrong_elements(net.grad, shifts), net.params(), mode="fast")
    assert report.failed_params == ["W1", "W2"]
    for name, wrong in shifts.items():
        p = report[name]
        assert p.probe.proven_wrong == sorted(wrong)
        assert p.probe.localization_evaluations <= budget(len(wrong), p.size)
        assert not p.probe.unresolved


def test_whole_tensor_wrong_falls_back_to_sampling():
    size = 1 << 12
    net = Wide(size)

    def grad(params):
        return {"w": 1.5 * net.grad(params)["w"]}  # every partial wrong

    options = FastOptions(max_wrong=8, fallback_samples=10)
    report, w = run(net.loss, grad, {"w": net.w.copy()}, fast=options)
    assert not report.passed
    assert w.status == "wrong"
    assert w.probe.unresolved
    assert w.probe.fallback
    assert w.probe.measured >= options.fallback_samples
    assert w.count("ok") == 0
    assert w.count("probed") == 0
    assert w.count("wrong") == w.probe.measured == len(w.probe.proven_wrong)
    assert w.count("unchecked") == size - w.probe.measured
    # the cost stays bounded by the breadth bisection was allowed, not by the size
    assert w.probe.localization_evaluations <= (
        2 * options.max_wrong * PER_HALVING + (options.fallback_samples + 8) * CONFIRM + PILOT * 3
    )


def test_unresolved_tensor_fails_though_no_element_is_pinned():
    size = 1 << 12
    net = Wide(size)

    def grad(params):
        return {"w": 1.5 * net.grad(params)["w"]}

    report, w = run(
        net.loss, grad, {"w": net.w.copy()}, fast=FastOptions(max_wrong=2, fallback_samples=1)
    )
    assert w.status == "wrong"
    assert not report.passed
    assert w.probe.unresolved


def test_small_tensor_all_wrong_is_measured_completely():
    net = TanhMLP(bug="tanh_derivative")  # b1 (32 elements) entirely wrong
    report = gradcheck.check(net.loss, net.grad, net.params(), mode="fast")
    b1 = report["b1"]
    assert b1.count("wrong") == 32
    assert not b1.probe.unresolved
    assert b1.probe.proven_wrong == list(range(32))


def test_false_leads_measured_right_are_ok(monkeypatch):
    # every probe fails spuriously (zero tolerance); measured one by one the elements are
    # right, so none is called wrong, and probes alone do not convict the tensor
    import gradcheck.fast.probe

    monkeypatch.setattr(gradcheck.fast.probe, "probe_tolerance", lambda *args: 0.0)
    size = 64
    net = Wide(size)
    report, w = run(net.loss, net.grad, {"w": net.w.copy()})
    assert not w.probe.probes[0]["passed"]
    assert w.probe.measured == size
    assert not w.probe.unresolved
    assert set(w.statuses.tolist()) == {"ok"}
    assert report.passed
