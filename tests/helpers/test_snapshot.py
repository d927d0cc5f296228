"""The snapshot helper must itself be able to fail: it sees what == cannot."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.snapshot import assert_unchanged, snapshot


def _nan_with_payload(payload: int) -> np.float64:
    return np.array([0x7FF8000000000000 | payload], dtype=np.uint64).view(np.float64)[0]


def test_sees_a_flipped_sign_of_zero():
    params = {"w": np.array([0.0, 1.0])}
    snap = snapshot(params)
    params["w"][0] = -0.0
    with pytest.raises(AssertionError, match="changed"):
        assert_unchanged(snap)


def test_sees_a_changed_nan_payload():
    params = {"w": np.array([_nan_with_payload(1), 1.0])}
    snap = snapshot(params)
    params["w"][0] = _nan_with_payload(2)
    with pytest.raises(AssertionError, match="changed"):
        assert_unchanged(snap)


def test_sees_a_python_float_rebound_to_negative_zero():
    params = {"b": 0.0}
    snap = snapshot(params)
    params["b"] = -0.0
    with pytest.raises(AssertionError, match="rebound"):
        assert_unchanged(snap)


def test_sees_rebinding_new_keys_and_flags():
    w = np.ones(2)
    params = {"w": w}
    snap = snapshot(params)
    params["w"] = w.copy()
    with pytest.raises(AssertionError, match="rebound"):
        assert_unchanged(snap)
    params["w"] = w
    params["x"] = 1.0
    with pytest.raises(AssertionError, match="keys changed"):
        assert_unchanged(snap)
    del params["x"]
    w.flags.writeable = False
    with pytest.raises(AssertionError, match="changed"):
        assert_unchanged(snap)


def test_sees_a_change_in_a_watched_base_outside_the_view():
    base = np.zeros(6)
    params = {"v": base[:2]}
    snap = snapshot(params, base)
    base[5] = 1.0
    with pytest.raises(AssertionError, match="watched array 0 changed"):
        assert_unchanged(snap)
