"""The restore machinery itself: the window between a write and its undo, and a restore that
cannot write one parameter still restores every other."""

from __future__ import annotations

import numpy as np
import pytest
import smooth
from paramsnap import assert_unchanged, snapshot

import gradcheck
from gradcheck import StateMutationError
from gradcheck.params import ParamSet


@pytest.mark.parametrize("after", [1, 4, 11])
def test_interrupt_between_a_write_and_its_undo(monkeypatch, after):
    # evaluate_at writes an element, then enters try/finally: an interrupt landing in between
    # skips the element's reset, so the final restore_all must undo it
    params = {"W": np.array([[0.5, -0.0], [1.5, -2.0]]), "s": 0.25, "z": np.array(1.0)}
    snap = snapshot(params)
    writes = []
    original_set = ParamSet.set

    def set_then_interrupt(self, name, index, value):
        original_set(self, name, index, value)
        writes.append(name)
        if len(writes) == after:
            raise KeyboardInterrupt

    monkeypatch.setattr(ParamSet, "set", set_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        # a progress callback keeps every write on ParamSet.set (the per-call path)
        gradcheck.check(smooth.loss, smooth.grad, params, progress=lambda done, total: None)
    assert_unchanged(snap)


class _InterruptingFlat:
    """A flat view whose n-th write lands, then raises KeyboardInterrupt."""

    def __init__(self, flat, writes, after):
        self.flat, self.writes, self.after = flat, writes, after

    def __setitem__(self, index, value):
        self.flat[index] = value
        self.writes.append(index)
        if len(self.writes) == self.after:
            raise KeyboardInterrupt


@pytest.mark.parametrize("after", [1, 2, 7, 30])
def test_interrupt_between_a_write_and_its_undo_on_the_hot_path(monkeypatch, after):
    # the array hot path (Engine._evaluate_array) writes through a flat view
    params = {"W": np.array([[0.5, -0.0], [1.5, -2.0]]), "s": 0.25, "z": np.array(1.0)}
    snap = snapshot(params)
    writes = []
    original = ParamSet.flat_pair

    def interrupting(self, name):
        flat, snapshot_flat = original(self, name)
        return (None if flat is None else _InterruptingFlat(flat, writes, after)), snapshot_flat

    monkeypatch.setattr(ParamSet, "flat_pair", interrupting)
    with pytest.raises(KeyboardInterrupt):
        gradcheck.check(smooth.loss, smooth.grad, params)
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

    with pytest.raises(StateMutationError, match=r"could not restore parameter\(s\) 'v': the "
                                                 r"loss or grad made them read-only"):
        gradcheck.check(loss, smooth.grad, params)
    assert_unchanged(u_snap)


def test_a_frozen_but_intact_parameter_is_not_reported_lost():
    base = np.array([-1.0, -0.5, 0.5, 1.0])
    params = {"v": base[1:3], "u": np.array([0.1, 0.2, 0.3])}
    snap = snapshot({"u": params["u"]})
    calls = []

    def loss(p):
        calls.append(1)
        if len(calls) == 20:  # u is being perturbed; v is back to its own bits
            p["v"].flags.writeable = False
            base.flags.writeable = False
        return smooth.loss(p)

    with pytest.raises(StateMutationError, match=r"'v' changed while 'u' was being perturbed"):
        gradcheck.check(loss, smooth.grad, params)
    assert params["v"].tolist() == [-0.5, 0.5]
    assert_unchanged(snap)
