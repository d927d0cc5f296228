"""Executors: the same points and float operations as a serial run, so the same bits."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest

import gradcheck
from gradcheck import InputError, LossError
from nets.tanh_mlp import TanhMLP, wrong_elements

SPOT_CHECK = 1  # the first parallel point is re-evaluated here, bits compared


@pytest.fixture(scope="module")
def processes():
    with ProcessPoolExecutor(max_workers=2) as pool:
        yield pool


@pytest.fixture(scope="module")
def threads():
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield pool


def bits(params):
    return {k: np.asarray(v).tobytes() for k, v in params.items()}


def without_count(report):
    data = json.loads(report.to_json())
    return data.pop("evaluations"), data


class ScalarNet:
    """Python-float and NumPy-scalar parameters, replaced (not written) in the view."""

    def loss(self, p):
        return float(np.sin(p["a"]) * p["b"] + np.float32(p["c"]) ** 2)

    def grad(self, p):
        return {"a": np.cos(p["a"]) * p["b"], "b": np.sin(p["a"]), "c": 2.0 * p["c"] + 0.5}


@pytest.mark.parametrize("pool", ["processes", "threads"])
@pytest.mark.parametrize("mode", ["full", "fast"])
def test_executor_results_identical_to_serial(pool, mode, request):
    executor = request.getfixturevalue(pool)
    net = TanhMLP(sizes=(6, 8, 3), dtype=np.float32)
    grad = wrong_elements(net.grad, {"W1": {7: 0.5}})
    serial = gradcheck.check(net.loss, grad, net.params(), mode=mode)
    params = net.params()
    before = bits(params)
    arrays = {k: id(v) for k, v in params.items()}
    parallel = gradcheck.check(net.loss, grad, params, mode=mode, executor=executor)
    assert bits(params) == before
    assert {k: id(v) for k, v in params.items()} == arrays
    count_s, data_s = without_count(serial)
    count_p, data_p = without_count(parallel)
    assert data_p == data_s  # every number, bit for bit (JSON keeps 17 digits)
    for a, b in zip(serial.params, parallel.params, strict=True):
        assert a.numeric.tobytes() == b.numeric.tobytes()
    assert count_p == count_s + SPOT_CHECK
    assert parallel.failed_params == ["W1"]


@pytest.mark.parametrize("pool", ["processes", "threads"])
def test_scalar_parameters_on_an_executor(pool, request):
    net = ScalarNet()
    params = {"a": 0.3, "b": np.float64(-1.2), "c": np.float32(0.5)}
    serial = gradcheck.check(net.loss, net.grad, dict(params))
    parallel = gradcheck.check(net.loss, net.grad, params,
                               executor=request.getfixturevalue(pool))
    assert without_count(parallel)[1] == without_count(serial)[1]
    assert parallel.failed_params == ["c"]


def test_unpicklable_loss_is_refused_clearly(processes):
    net = TanhMLP(sizes=(3, 2))
    with pytest.raises(InputError, match=r"cannot be pickled.*module level"):
        gradcheck.check(lambda p: net.loss(p), net.grad, net.params(), executor=processes)


def test_a_thread_pool_takes_any_loss(threads):
    net = TanhMLP(sizes=(3, 2))
    report = gradcheck.check(lambda p: net.loss(p), net.grad, net.params(), executor=threads)
    assert report.passed


class StaleLoss:
    """Reads the parameters from its own reference, not from its argument."""

    def __init__(self, net, params):
        self.net, self.params = net, params

    def __call__(self, _ignored):
        return self.net.loss(self.params)


def test_loss_reading_parameters_elsewhere_is_caught(processes):
    net = TanhMLP(sizes=(3, 2))
    params = net.params()
    before = bits(params)
    # serially this works (the arrays are perturbed in place); in a worker it sees copies
    assert gradcheck.check(StaleLoss(net, params), net.grad, params).passed
    with pytest.raises(InputError, match="read the parameters from the dict"):
        gradcheck.check(StaleLoss(net, params), net.grad, params, executor=processes)
    assert bits(params) == before


class FailingLoss:
    def __init__(self, net):
        self.net = net

    def __call__(self, params):
        if params["W1"].reshape(-1)[2] != self.net.start["W1"].reshape(-1)[2]:
            raise ArithmeticError("bad element")
        return self.net.loss(params)


def test_loss_raising_in_a_worker_names_the_point(processes):
    net = TanhMLP(sizes=(3, 2))
    params = net.params()
    before = bits(params)
    with pytest.raises(LossError, match=r"ArithmeticError: bad element with W1\[0, 2\].*worker"):
        gradcheck.check(FailingLoss(net), net.grad, params, executor=processes)
    assert bits(params) == before


def test_not_an_executor_is_refused():
    net = TanhMLP(sizes=(3, 2))
    with pytest.raises(InputError, match=r"concurrent\.futures\.Executor"):
        gradcheck.check(net.loss, net.grad, net.params(), executor=4)


def test_serial_hot_loop_restores_and_counts_when_the_loss_raises():
    net = TanhMLP(sizes=(3, 2))
    params = net.params()
    before = bits(params)
    calls = []

    def loss(p):
        calls.append(1)
        if len(calls) == 7:  # 2 baseline calls, the pilot's 12, ...: inside the hot loop
            raise ZeroDivisionError("seventh")
        return net.loss(p)

    with pytest.raises(LossError, match=r"seventh with W1\[\d, \d\] moved to"):
        gradcheck.check(loss, net.grad, params)
    assert bits(params) == before
