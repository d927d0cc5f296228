"""JAX adapter (skipped without jax): its cases run in a child process (see jax_cases.py)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_isolated(*args: str) -> subprocess.CompletedProcess:
    """``python *args`` from the repository root in a fresh process (JAX never imported here)."""
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed (pip install 'gradcheck[jax]')")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )


def test_jax_adapter_cases():
    case = Path(__file__).with_name("jax_cases.py")
    done = run_isolated("-m", "pytest", "-q", "-p", "no:cacheprovider", str(case))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout
