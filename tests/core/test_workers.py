"""The workers' side of an executor: the shipment sent once, the loop, the batches."""

from __future__ import annotations

import json
import math
import pickle
from concurrent.futures import Executor, Future

import numpy as np
import pytest

import gradcheck
from gradcheck.core import evaluation, workers
from gradcheck.core.params import ParamSet
from gradcheck.core.workers import (
    BATCH_SECONDS,
    KEPT_SHIPMENTS,
    LAST_BATCH_SECONDS,
    MISSING,
    batches,
    run_batch,
    shipment,
    unpacked_values,
)
from nets.tanh_mlp import TanhMLP, wrong_elements


class InProcess(Executor):
    """Runs each task when it is submitted, in this process, like one worker process would
    (the shipment arrives pickled); records what every task carried. ``forgetful``: the worker
    loses what it was sent before every task that relies on it (a restarted worker)."""

    _max_workers = 2

    def __init__(self, forgetful: bool = False):
        self.forgetful = forgetful
        self.carried: list[bool] = []  # per task: whether it carried the shipment
        self.answers: list[object] = []

    def submit(self, fn, /, *args, **kwargs):
        key, sent, runs = args
        self.carried.append(sent is not None)
        if self.forgetful and sent is None:
            workers._SHIPPED.clear()
        future: Future = Future()
        future.set_result(fn(key, sent, runs))
        self.answers.append(future.result())
        return future


@pytest.fixture(autouse=True)
def fresh_worker_cache(monkeypatch):
    monkeypatch.setattr(workers, "_SHIPPED", {})


@pytest.fixture
def every_wave_sent(monkeypatch):
    """No wave is cheap enough to be evaluated here (else this tiny net's would be)."""
    monkeypatch.setattr(evaluation, "LOCAL_SECONDS", 0.0)


def without_count(report):
    data = json.loads(report.to_json())
    return data.pop("evaluations"), data


def _check(executor=None):
    net = TanhMLP(sizes=(6, 8, 3))
    grad = wrong_elements(net.grad, {"W1": {7: 0.5}})
    return gradcheck.check(net.loss, grad, net.params(), executor=executor)


def test_the_shipment_travels_with_the_first_wave_only(every_wave_sent):
    executor = InProcess()
    serial, parallel = _check(), _check(executor)
    assert without_count(parallel)[1] == without_count(serial)[1]
    first = executor.carried.index(False)
    assert 1 <= first <= InProcess._max_workers  # the first wave's tasks, one per worker
    assert len(executor.carried) > first
    assert not any(executor.carried[first:])
    assert MISSING not in executor.answers
    assert parallel.failed_params == ["W1"]


def test_a_worker_that_lost_the_shipment_is_sent_it_again(every_wave_sent):
    executor = InProcess(forgetful=True)
    serial, parallel = _check(), _check(executor)
    assert without_count(parallel) == (without_count(serial)[0] + 1, without_count(serial)[1])
    missed = executor.answers.count(MISSING)
    first = executor.carried.index(False)
    assert missed >= 1
    assert executor.carried.count(True) == first + missed  # each one sent again, with it


def test_cheap_waves_are_evaluated_here_after_the_spot_check(monkeypatch):
    monkeypatch.setattr(evaluation, "LOCAL_SECONDS", float("inf"))
    executor = InProcess()
    serial, parallel = _check(), _check(executor)
    assert without_count(parallel) == (without_count(serial)[0] + 1, without_count(serial)[1])
    assert all(executor.carried)  # only the first wave went out (and was spot-checked)
    assert len(executor.carried) <= InProcess._max_workers


def test_a_worker_keeps_the_last_shipments_only():
    net = TanhMLP(sizes=(3, 2))
    runs = pickle.dumps([("b1", np.array([0]), np.array([0.25]))])
    keys = []
    for seed in range(KEPT_SHIPMENTS + 1):
        params = ParamSet(TanhMLP(sizes=(3, 2), seed=seed).params())
        ship = shipment(InProcess(), net.loss, params)
        assert run_batch(ship.key, ship.packed, runs) == run_batch(ship.key, None, runs)
        keys.append(ship.key)
        params.finish()
    assert run_batch(keys[0], None, runs) == MISSING  # the oldest was dropped
    assert isinstance(unpacked_values(run_batch(keys[-1], None, runs))[0], float)


@pytest.mark.parametrize("count", [1, 2, 7, 30, 512, 65_536])
@pytest.mark.parametrize("call", [1e-7, 3.3e-4, 0.01, 2.0, float("nan")])
def test_batches_cover_the_points_in_order_and_taper(count, call):
    spans = batches(count, 2, call)
    assert [i for span in spans for i in span] == list(range(count))
    assert len(spans) >= min(count, 2)  # every worker has work while there are points
    sizes = [len(span) for span in spans]
    if math.isfinite(call):
        assert max(sizes) <= max(1, BATCH_SECONDS / call, count / 2)
        assert sizes == sorted(sizes, reverse=True)  # shrinking towards the wave's end
        # the last task takes at most LAST_BATCH_SECONDS, or one point, or its worker's share
        assert sizes[-1] <= max(1, LAST_BATCH_SECONDS / call, count / 2)


def test_a_tasks_values_travel_as_one_bytes_object_and_arrive_as_computed():
    net = TanhMLP(sizes=(3, 2))
    params = ParamSet(net.params())
    ship = shipment(InProcess(), net.loss, params)
    runs = [("W1", np.array([0, 4, 5]), np.array([0.25, -1.5, 2.0]))]
    sent = run_batch(ship.key, ship.packed, pickle.dumps(runs))
    assert isinstance(sent, bytes)  # one frame for Dask, not one per value
    got = unpacked_values(sent)
    assert got == run_batch(ship.key, ship.packed, runs)  # the list a thread pool gets
    assert [type(v) for v in got] == [type(net.loss(params.view))] * 3
    params.finish()


def test_values_pickle_refuses_are_returned_as_they_are():
    values = [1.5, np.float64(-0.0), workers.Raised("ValueError", "boom")]
    back = unpacked_values(workers.packed_values(values))
    assert [type(v) for v in back] == [type(v) for v in values]
    assert np.float64(back[1]).tobytes() == np.float64(-0.0).tobytes()
    assert back[2] == values[2]
    odd = [lambda: 0]  # a loss value pickle cannot pack: left to the executor's serializer
    assert workers.packed_values(odd) is odd
    assert unpacked_values(odd) is odd


def test_only_a_dask_executor_is_asked_for_impure_tasks():
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        assert workers.submit_options(pool) == {}  # a pool would pass pure= on to the task
    assert workers.submit_options(InProcess()) == {}
    distributed = pytest.importorskip("distributed")
    executor = distributed.cfexecutor.ClientExecutor.__new__(distributed.cfexecutor.ClientExecutor)
    assert workers.submit_options(executor) == {"pure": False}
