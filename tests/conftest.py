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


@pytest.fixture
def pytester(pytester, monkeypatch):
    """pytester, its runs in declared order and unseeded by pytest-randomly like ours (a test
    that wants pytest-randomly unsets PYTEST_ADDOPTS)."""
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:randomly")
    return pytester
