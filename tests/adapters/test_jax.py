"""JAX adapter (skipped without jax): its cases run in a child process (see jax_cases.py)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.isolated import run_isolated


def test_jax_adapter_cases():
    case = Path(__file__).with_name("jax_cases.py")
    done = run_isolated("-m", "pytest", "-q", "-p", "no:cacheprovider", str(case))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout
