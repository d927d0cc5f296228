"""Shared fixtures: one autouse fixture seeds every source of randomness."""

from __future__ import annotations

import random

import numpy as np
import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state (code under test may use the legacy one)."""
    random.seed(0)
    np.random.seed(0)  # noqa: NPY002 - seeds the global state that asker-style code draws from


def snapshot(params):
    """Bit-exact copy of a params dict: (identity, dtype, shape, bytes) per name."""
    out = {}
    for name, value in params.items():
        array = np.asarray(value)
        out[name] = (id(value), type(value), array.dtype, array.shape, array.tobytes())
    return out


def assert_bitwise_unchanged(params, before):
    """Every parameter is the same object with the same bits as in ``before``."""
    after = snapshot(params)
    assert list(after) == list(before)
    for name in before:
        assert after[name] == before[name], f"parameter {name!r} changed"
