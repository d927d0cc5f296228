"""Executors: the same points and float operations as a serial run, so the same bits."""

from __future__ import annotations

import json
import math
import re
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from fractions import Fraction

import numpy as np
import pytest

import gradcheck
from gradcheck import (
    GradcheckError,
    InputError,
    LossError,
    NondeterministicLossError,
    StateMutationError,
)
from gradcheck.core.params import ParamSet
from nets.tanh_mlp import TanhMLP, wrong_elements
from tests.helpers import smooth
from tests.helpers.snapshot import assert_unchanged, snapshot

# --- from test_parallel.py ----------------------------------------

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
    parallel = gradcheck.check(net.loss, net.grad, params, executor=request.getfixturevalue(pool))
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
    def __init__(self, net, flat):
        self.net, self.flat = net, flat

    def __call__(self, params):
        if params["W1"].reshape(-1)[self.flat] != self.net.start["W1"].reshape(-1)[self.flat]:
            raise ArithmeticError("bad element")
        return self.net.loss(params)


@pytest.mark.parametrize(
    ("flat", "message"),
    [
        # W1[0, 0] moves in the pilot's first wave, always sent to the workers
        (0, r"ArithmeticError: bad element with W1\[0, 0\] moved to .* \(in a worker\)$"),
        # W1[0, 2] in the main pass, a wave so cheap it may be evaluated here: named the same
        (2, r"ArithmeticError: bad element with W1\[0, 2\] moved to "),
    ],
)
def test_loss_raising_on_an_executor_names_the_point(processes, flat, message):
    net = TanhMLP(sizes=(3, 2))
    params = net.params()
    before = bits(params)
    with pytest.raises(LossError, match=message):
        gradcheck.check(FailingLoss(net, flat), net.grad, params, executor=processes)
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


# --- from test_robustness_restore.py ----------------------------------------


@pytest.mark.parametrize("mode", ["full", "fast"])  # element writes; slice writes (bulk)
@pytest.mark.parametrize("progress", [None, lambda done, total: None])
@pytest.mark.parametrize("after", [1, 2, 4, 7, 11, 20])
def test_interrupt_between_a_write_and_its_undo(monkeypatch, after, progress, mode):
    # the evaluation loop writes a point, then enters try/finally: an interrupt landing in
    # between (or inside the restoring write) skips the point's restore, so the final
    # restore_all must undo it
    params = {"W": np.array([[0.5, -0.0], [1.5, -2.0]]), "s": 0.25, "z": np.array(1.0)}
    if mode == "fast":
        params["V"] = np.linspace(-1.0, 1.0, 64)
    snap = snapshot(params)
    writes = []
    original = ParamSet.writer

    def interrupting(self, name, **kwargs):
        write = original(self, name, **kwargs)

        def write_then_interrupt(index, values):  # perturbing and restoring writes alike
            write(index, values)
            writes.append(name)
            if len(writes) == after:
                raise KeyboardInterrupt

        return write_then_interrupt

    monkeypatch.setattr(ParamSet, "writer", interrupting)
    fast = gradcheck.FastOptions(auto=False) if mode == "fast" else None
    with pytest.raises(KeyboardInterrupt):
        gradcheck.check(smooth.loss, smooth.grad, params, progress=progress, mode=mode, fast=fast)
    assert len(writes) == after
    assert_unchanged(snap)


def test_a_parameter_that_cannot_be_written_does_not_stop_the_others():
    # the loss scribbles over u, then freezes v while v is perturbed, and v's base too (an
    # array that owns its data: numpy then refuses to make v writable again)
    base = np.array([-1.0, -0.5, 0.5, 1.0])
    params = {"v": base[1:3], "u": np.array([0.1, 0.2, 0.3])}
    u_snap = snapshot({"u": params["u"]})
    calls = []

    def loss(p):
        calls.append(1)
        if len(calls) == 5:
            p["u"][:] = 7.0
            p["v"].flags.writeable = False
            base.flags.writeable = False
        return smooth.loss(p)

    with pytest.raises(
        StateMutationError,
        match=r"could not restore parameter\(s\) 'v': the "
        r"loss or grad made them read-only",
    ):
        gradcheck.check(loss, smooth.grad, params)
    assert_unchanged(u_snap)


def test_a_frozen_but_intact_parameter_is_not_reported_lost():
    base = np.array([-1.0, -0.5, 0.5, 1.0])
    # float32 u: not grouped with v, so u's pass comes after v's (call 20 below)
    params = {"v": base[1:3], "u": np.array([0.1, 0.2, 0.3], dtype=np.float32)}
    snap = snapshot({"u": params["u"]})
    calls = [0]

    def loss(p):
        if p["u"][1] != 0.2 and not calls[1:]:  # u is being perturbed; v has its own bits
            p["v"].flags.writeable = False
            base.flags.writeable = False
            calls.append(1)
        return smooth.loss(p)

    with pytest.raises(StateMutationError, match=r"'v' changed while 'u' was being perturbed"):
        gradcheck.check(loss, smooth.grad, params)
    assert params["v"].tolist() == [-0.5, 0.5]
    assert_unchanged(snap)


# --- from test_robustness_loss.py ----------------------------------------


def _params():
    """One of each kind of parameter the check perturbs differently."""
    base = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
    readonly = np.array([0.25, -0.75])
    readonly.flags.writeable = False
    return base, {
        "W": np.asfortranarray(np.array([[0.5, -0.0], [1.5, -2.0]])),
        "v": base[::2, 1::2],  # a strided view: writes land in base
        "r": readonly,
        "s": 0.3,
        "z": np.array(-1.2),
    }


# (id, loss value at the start point, pattern the message must match)
BAD_VALUES = [
    (
        "vector",
        np.ones(3),
        r"loss returned an array of shape \(3,\) at the starting "
        r"parameters; expected a real scalar: reduce it",
    ),
    ("size-1-array", np.ones(1), r"array of shape \(1,\) .*call \.item\(\) on a size-1"),
    ("string", "0.5", r"loss returned str '0.5' at the starting parameters; expected a real"),
    (
        "none",
        None,
        r"loss returned NoneType None .*expected a real scalar \(does the loss end "
        r"with a return\?\)",
    ),
    ("bool", True, r"loss returned a bool at the starting parameters; expected a real scalar"),
    ("complex", 1 + 1j, r"loss returned complex .*expected a real scalar"),
    ("nan", math.nan, r"loss is nan at the starting parameters; it must be finite"),
    ("inf", math.inf, r"loss is inf at the starting parameters; it must be finite"),
    ("numpy-neg-inf", np.float32(-np.inf), r"loss is -inf at the starting parameters"),
    # issue 12 item 8: an OverflowError, or a silent inf, before
    ("int-10**400", 10**400, r"loss returned an integer of 1329 bits at the starting .*range"),
    ("int-10**5000", 10**5000, r"loss returned an integer of 16610 bits at the starting"),
    ("fraction", Fraction(10**400, 3), r"loss returned Fraction .*beyond float64's range"),
    ("longdouble", np.longdouble(10) ** 400, r"loss returned longdouble .*beyond float64's"),
    # issue 12 item 12 sibling: float(np.ma.masked) is nan with a UserWarning
    ("masked", np.ma.masked, r"loss returned a masked value at the starting parameters"),
    ("masked-0d", np.ma.array(1.0, mask=True), r"loss returned a masked value"),
]


@pytest.mark.parametrize(
    ("value", "pattern"), [c[1:] for c in BAD_VALUES], ids=[c[0] for c in BAD_VALUES]
)
def test_unusable_loss_value_at_the_start(value, pattern):
    base, params = _params()
    snap = snapshot(params, base)
    with pytest.raises(InputError, match=pattern):
        gradcheck.check(lambda p: value, smooth.grad, params)
    assert_unchanged(snap)


def test_zero_d_array_and_numpy_scalars_are_accepted():
    for wrap in (np.array, np.float64, np.float32):
        params = {"w": np.array([0.5, -1.0])}
        report = gradcheck.check(lambda p, wrap=wrap: wrap(smooth.loss(p)), smooth.grad, params)
        assert report.passed, wrap


def test_float32_loss_still_catches_a_planted_error():
    params = {"w": np.array([0.5, -1.0, 2.0], dtype=np.float32)}
    snap = snapshot(params)
    report = gradcheck.check(
        lambda p: np.float32(smooth.loss(p)), smooth.planted("w", (2,), delta=0.05), params
    )
    assert [e.index for e in report.entries if e.status == "wrong"] == [(2,)]
    assert_unchanged(snap)


def test_loss_raising_at_the_start():
    base, params = _params()
    snap = snapshot(params, base)

    def loss(p):
        raise ZeroDivisionError("division by zero")

    with pytest.raises(
        LossError,
        match=r"loss raised ZeroDivisionError: division by zero at "
        r"the starting parameters",
    ) as info:
        gradcheck.check(loss, smooth.grad, params)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert_unchanged(snap)


def test_loss_raising_only_at_a_perturbed_point_names_the_element_and_point():
    params = {"w": np.array([2.0, 1e-9, 3.0])}  # log is fine here, not 1e-9 - h
    snap = snapshot(params)

    def loss(p):
        return sum(math.log(x) for x in p["w"])

    with pytest.raises(
        LossError,
        match=r"loss raised ValueError: math domain error with "
        r"w\[1\] moved to -\d",
    ):
        gradcheck.check(loss, lambda p: {"w": 1 / p["w"]}, params)
    assert_unchanged(snap)


def test_loss_nan_only_at_a_perturbed_point_is_a_nonfinite_element():
    params = {"w": np.array([2.0, 1e-9, 3.0])}
    snap = snapshot(params)

    def loss(p):
        # w[1] sits exactly at the edge of the domain: any step down leaves it (the steps fit
        # the scale of log(w) at 1e-9, so a plain log would be measured correctly)
        w = p["w"]
        return float(np.sum(np.where(w < 1e-9, np.nan, np.log(np.maximum(w, 1e-9)))))

    report = gradcheck.check(loss, lambda p: {"w": 1 / p["w"]}, params)
    assert [(e.index, e.status) for e in report.entries] == [
        ((0,), "ok"),
        ((1,), "nonfinite"),
        ((2,), "ok"),
    ]
    assert not report.passed
    assert_unchanged(snap)


def test_loss_overflowing_float64_only_at_a_perturbed_point_names_the_element():
    params = {"w": np.array([0.5, -1.0]), "b": 0.25}
    snap = snapshot(params)

    def loss(p):
        return 10**400 if p["b"] != 0.25 else smooth.loss(p)

    with pytest.raises(InputError, match=r"integer of 1329 bits with b moved to 0\.2.*range"):
        gradcheck.check(loss, smooth.grad, params)
    assert_unchanged(snap)


def test_unusable_value_only_at_a_perturbed_point_names_the_element():
    params = {"w": np.array([0.5, -1.0]), "b": 0.25}
    snap = snapshot(params)

    def loss(p):
        return None if p["b"] != 0.25 else smooth.loss(p)

    with pytest.raises(InputError, match=r"loss returned NoneType None with b moved to 0\.2"):
        gradcheck.check(loss, smooth.grad, params)
    assert_unchanged(snap)


def _evaluations(loss, grad):
    _, params = _params()
    return gradcheck.check(loss, grad, params).evaluations


# every evaluation of a check that refines (a planted error makes it use all three passes)
WRONG_GRAD = smooth.planted("v", (1, 0))
TOTAL = _evaluations(smooth.loss, WRONG_GRAD)


def _label_of_moved(params, originals):
    """The element the engine has moved right now, as the message should name it."""
    for name, value in params.items():
        current = np.asarray(value)
        moved = np.flatnonzero(current != originals[name])
        if moved.size:
            index = ", ".join(map(str, np.unravel_index(moved[0], current.shape)))
            return f"{name}[{index}]" if current.shape else name
    return None


@pytest.mark.parametrize("fail_at", range(1, TOTAL + 1))
def test_exception_at_every_evaluation_names_the_point_and_restores(fail_at):
    base, params = _params()
    snap = snapshot(params, base)
    originals = {k: np.array(v, copy=True) for k, v in params.items()}
    calls = []

    def loss(p):
        calls.append(_label_of_moved(p, originals))
        if len(calls) == fail_at:
            raise RuntimeError("boom")
        return smooth.loss(p)

    with pytest.raises(LossError) as info:
        gradcheck.check(loss, WRONG_GRAD, params)
    where = "at the starting parameters" if calls[-1] is None else f"with {calls[-1]} moved to "
    assert re.search(r"loss raised RuntimeError: boom " + re.escape(where), str(info.value))
    assert_unchanged(snap)


@pytest.mark.parametrize("interrupt_at", range(1, TOTAL + 1))
def test_keyboard_interrupt_at_every_evaluation_propagates_and_restores(interrupt_at):
    base, params = _params()
    snap = snapshot(params, base)
    calls = []

    def loss(p):
        calls.append(1)
        if len(calls) == interrupt_at:
            raise KeyboardInterrupt
        return smooth.loss(p)

    with pytest.raises(KeyboardInterrupt):
        gradcheck.check(loss, WRONG_GRAD, params)
    assert_unchanged(snap)


@pytest.mark.parametrize("error", [SystemExit, MemoryError, GeneratorExit])
def test_other_base_exceptions_propagate_unchanged_and_restore(error):
    base, params = _params()
    snap = snapshot(params, base)
    calls = []

    def loss(p):
        calls.append(1)
        if len(calls) == TOTAL // 2:
            raise error("stop")
        return smooth.loss(p)

    with pytest.raises(error, match="stop"):
        gradcheck.check(loss, WRONG_GRAD, params)
    assert_unchanged(snap)


def test_keyboard_interrupt_in_grad_propagates_and_restores():
    base, params = _params()
    snap = snapshot(params, base)

    def grad(p):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        gradcheck.check(smooth.loss, grad, params)
    assert_unchanged(snap)


# -- losses that change state ------------------------------------------------------------------
def test_loss_writing_into_its_parameters_is_refused():
    base, params = _params()
    snap = snapshot(params, base)

    def loss(p):
        p["v"] -= 0.01 * smooth.grad(p)["v"]  # a training step inside the loss
        return smooth.loss(p)

    with pytest.raises(StateMutationError, match=r"calling the loss changed parameter\(s\) 'v'"):
        gradcheck.check(loss, smooth.grad, params)
    assert_unchanged(snap)


def test_loss_writing_into_its_parameters_mid_check_is_refused():
    base, params = _params()
    snap = snapshot(params, base)
    calls = []

    def loss(p):
        calls.append(1)
        if len(calls) == 9:  # after the baseline, while W is perturbed
            p["v"][0, 0] += 1.0
        return smooth.loss(p)

    # W and v are small: they are perturbed as one group, and the group's writer sees v moved
    with pytest.raises(StateMutationError, match=r"'v' changed while 'W', .* being perturbed"):
        gradcheck.check(loss, smooth.grad, params)
    assert_unchanged(snap)


def test_loss_rebinding_a_dict_entry_is_refused():
    base, params = _params()
    snap = snapshot(params, base)

    def loss(p):
        p["s"] = p["s"] * 0.5
        return smooth.loss(p)

    with pytest.raises(StateMutationError, match=r"changed parameter\(s\) 's'"):
        gradcheck.check(loss, smooth.grad, params)
    assert_unchanged(snap)


@pytest.mark.parametrize("freeze_at", [1, 9])
def test_loss_making_a_parameter_read_only_is_refused_and_undone(freeze_at):
    base, params = _params()
    snap = snapshot(params, base)
    calls = []

    def loss(p):
        calls.append(1)
        if len(calls) == freeze_at:
            p["W"].flags.writeable = False
        return smooth.loss(p)

    with pytest.raises(StateMutationError, match=r"'W'"):
        gradcheck.check(loss, smooth.grad, params)
    assert params["W"].flags.writeable
    assert_unchanged(snap)


def test_loss_reading_global_state_it_changes_is_nondeterministic():
    counter = {"calls": 0}

    def loss(p):
        counter["calls"] += 1
        return smooth.loss(p) + 1e-9 * counter["calls"]

    base, params = _params()
    snap = snapshot(params, base)
    with pytest.raises(
        NondeterministicLossError,
        match=r"returned .* and then .* at the same "
        r"parameters; .*fix the seed",
    ):
        gradcheck.check(loss, smooth.grad, params)
    assert_unchanged(snap)


def test_loss_changing_global_state_it_does_not_read_is_fine():
    calls = []

    def loss(p):
        calls.append(1)
        return smooth.loss(p)

    _, params = _params()
    report = gradcheck.check(loss, smooth.grad, params)
    assert report.passed
    assert report.evaluations == len(calls)


def test_grad_writing_into_its_parameters_is_refused():
    base, params = _params()
    snap = snapshot(params, base)

    def grad(p):
        out = smooth.grad(p)
        p["z"] -= 0.1 * out["z"]
        return out

    with pytest.raises(StateMutationError, match=r"calling grad changed parameter\(s\) 'z'"):
        gradcheck.check(smooth.loss, grad, params)
    assert_unchanged(snap)


def _layer_whose_backward_adds_into_its_upstream_argument():
    """loss = sum(upstream * w * x) with ``upstream`` a closed-over array (ones). The backward
    returns 2 x (wrong: the partial is x) and adds 1 into ``upstream``, as a layer's
    ``dnext_c += ...`` does: the loss becomes sum(2 w x), whose gradient IS 2 x."""
    x = np.array([0.5, -1.0, 2.0])
    upstream = np.ones(3)

    def loss(p):
        return float(np.sum(upstream * p["w"] * x))

    def grad(p):
        dnext = upstream
        dnext += 1.0
        return {"w": 2.0 * x}

    return loss, grad, {"w": np.array([1.0, 2.0, 3.0])}


@pytest.mark.parametrize("mode", ["full", "fast"])
def test_grad_changing_what_the_loss_reads_is_refused(mode):
    # issue 12 item 6: the loss changed under the check and a WRONG gradient PASSED
    loss, grad, params = _layer_whose_backward_adds_into_its_upstream_argument()
    snap = snapshot(params)
    with pytest.raises(
        StateMutationError,
        match=r"the gradient function changed what the loss reads \(an in-place \+= into an "
        r"array the loss closes over\?\): the loss was 4\.5 before grad\(params\) and 9\.0 "
        r"after it",
    ):
        gradcheck.check(loss, grad, params, mode=mode)
    assert_unchanged(snap)


def test_the_baseline_still_costs_two_evaluations_with_grad_between_them():
    calls = []

    def loss(p):
        calls.append(1)
        return smooth.loss(p)

    def grad(p):
        calls.append("grad")
        return smooth.grad(p)

    _, params = _params()
    gradcheck.check(loss, grad, params)
    assert calls[:3] == [1, "grad", 1]


def test_grad_raising_is_a_loss_error():
    base, params = _params()
    snap = snapshot(params, base)

    def grad(p):
        raise IndexError("index 3 is out of bounds")

    with pytest.raises(
        LossError,
        match=r"grad raised IndexError: index 3 is out of bounds at "
        r"the starting parameters",
    ):
        gradcheck.check(smooth.loss, grad, params)
    assert_unchanged(snap)


def test_every_error_here_derives_from_the_one_base_class():
    for error in (InputError, LossError, NondeterministicLossError, StateMutationError):
        assert issubclass(error, GradcheckError)


# --- Dask (the optional dask extra) -------------------------------------------------------
DASK_NET = (200, 250, 2)  # 50,752 parameters, batch 1: a cheap forward, 1e5 evaluations


@pytest.fixture(scope="module")
def dask_executor():
    """``client.get_executor()`` of a 2-process LocalCluster, started once for the module."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            processes=True, n_workers=2, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client.get_executor()


def test_dask_full_check_is_bitwise_the_serial_one(dask_executor):
    net = TanhMLP(sizes=DASK_NET, batch=1)
    grad = wrong_elements(net.grad, {"W2": {3: 0.5}})
    serial = gradcheck.check(net.loss, grad, net.params())
    params = net.params()
    before = bits(params)
    parallel = gradcheck.check(net.loss, grad, params, executor=dask_executor)
    assert net.size > 5e4
    assert bits(params) == before
    count_s, data_s = without_count(serial)
    count_p, data_p = without_count(parallel)
    assert data_p == data_s  # the whole JSON report, every number bit for bit
    assert count_p == count_s + SPOT_CHECK
    assert parallel.failed_params == ["W2"]
