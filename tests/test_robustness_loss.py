"""Bad losses: unusable values, exceptions, interrupts, state changes. Each gives a clear
error or report status, and the user's parameters are bitwise unchanged afterwards."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import smooth
from paramsnap import assert_unchanged, snapshot

import gradcheck
from gradcheck import (
    GradcheckError,
    InputError,
    LossError,
    NondeterministicLossError,
    StateMutationError,
)


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
    ("vector", np.ones(3), r"loss returned an array of shape \(3,\) at the starting "
                           r"parameters; expected a real scalar: reduce it"),
    ("size-1-array", np.ones(1), r"array of shape \(1,\) .*call \.item\(\) on a size-1"),
    ("string", "0.5", r"loss returned str '0.5' at the starting parameters; expected a real"),
    ("none", None, r"loss returned NoneType None .*expected a real scalar \(does the loss end "
                   r"with a return\?\)"),
    ("bool", True, r"loss returned a bool at the starting parameters; expected a real scalar"),
    ("complex", 1 + 1j, r"loss returned complex .*expected a real scalar"),
    ("nan", math.nan, r"loss is nan at the starting parameters; it must be finite"),
    ("inf", math.inf, r"loss is inf at the starting parameters; it must be finite"),
    ("numpy-neg-inf", np.float32(-np.inf), r"loss is -inf at the starting parameters"),
]


@pytest.mark.parametrize(("value", "pattern"), [c[1:] for c in BAD_VALUES],
                         ids=[c[0] for c in BAD_VALUES])
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
    report = gradcheck.check(lambda p: np.float32(smooth.loss(p)),
                             smooth.planted("w", (2,), delta=0.05), params)
    assert [e.index for e in report.entries if e.status == "wrong"] == [(2,)]
    assert_unchanged(snap)


def test_loss_raising_at_the_start():
    base, params = _params()
    snap = snapshot(params, base)

    def loss(p):
        raise ZeroDivisionError("division by zero")

    with pytest.raises(LossError, match=r"loss raised ZeroDivisionError: division by zero at "
                                        r"the starting parameters") as info:
        gradcheck.check(loss, smooth.grad, params)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert_unchanged(snap)


def test_loss_raising_only_at_a_perturbed_point_names_the_element_and_point():
    params = {"w": np.array([2.0, 1e-9, 3.0])}  # log is fine here, not 1e-9 - h
    snap = snapshot(params)

    def loss(p):
        return sum(math.log(x) for x in p["w"])

    with pytest.raises(LossError, match=r"loss raised ValueError: math domain error with "
                                        r"w\[1\] moved to -\d"):
        gradcheck.check(loss, lambda p: {"w": 1 / p["w"]}, params)
    assert_unchanged(snap)


def test_loss_nan_only_at_a_perturbed_point_is_a_nonfinite_element():
    params = {"w": np.array([2.0, 1e-9, 3.0])}
    snap = snapshot(params)

    def loss(p):
        with np.errstate(invalid="ignore"):
            return float(np.sum(np.log(p["w"])))

    report = gradcheck.check(loss, lambda p: {"w": 1 / p["w"]}, params)
    assert [(e.index, e.status) for e in report.entries] == [
        ((0,), "ok"), ((1,), "nonfinite"), ((2,), "ok")]
    assert not report.passed
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
    where = ("at the starting parameters" if calls[-1] is None
             else f"with {calls[-1]} moved to ")
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

    with pytest.raises(StateMutationError, match=r"'v' changed while 'W' was being perturbed"):
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
    with pytest.raises(NondeterministicLossError, match=r"returned .* and then .* at the same "
                                                        r"parameters; .*fix the seed"):
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


def test_grad_raising_is_a_loss_error():
    base, params = _params()
    snap = snapshot(params, base)

    def grad(p):
        raise IndexError("index 3 is out of bounds")

    with pytest.raises(LossError, match=r"grad raised IndexError: index 3 is out of bounds at "
                                        r"the starting parameters"):
        gradcheck.check(smooth.loss, grad, params)
    assert_unchanged(snap)


def test_every_error_here_derives_from_the_one_base_class():
    for error in (InputError, LossError, NondeterministicLossError, StateMutationError):
        assert issubclass(error, GradcheckError)
