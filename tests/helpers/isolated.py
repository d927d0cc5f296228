"""Run Python in a fresh child process, for optional libraries that must stay out of the test
process: JAX starts threads when imported, and a process that has imported it must not fork
(the process-pool tests of the executor do)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_isolated(*args: str, needs: str = "jax") -> subprocess.CompletedProcess:
    """``python *args`` from the repository root in a child process; skips the test when the
    library ``needs`` is not installed (it is looked up without being imported)."""
    if importlib.util.find_spec(needs) is None:
        pytest.skip(f"{needs} is not installed (pip install 'gradcheck[{needs}]')")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
