"""The distribution: what the wheel installs, what the sdist ships, and that its tests run.

The sdist and the wheel are built once per session without network access (the PEP 517 hooks
of the setuptools installed in this environment), from a copy of the checkout's files.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **env},
    )


def _hook(hook: str, source: Path, out: Path) -> Path:
    """Run a setuptools PEP 517 hook (``build_sdist``, ``build_wheel``) in ``source``."""
    code = f"import setuptools.build_meta as b; print(b.{hook}({str(out)!r}))"
    done = _run([sys.executable, "-c", code], source)
    assert done.returncode == 0, done.stderr[-3000:]
    return out / done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def dists(tmp_path_factory) -> dict[str, Path]:
    """The sdist built from this checkout, unpacked, and the wheel built from that (as
    ``python -m build`` does)."""
    pytest.importorskip("setuptools", minversion="77")
    listed = _run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], ROOT)
    if listed.returncode != 0:
        pytest.skip("not a git checkout (an unpacked sdist, say): nothing to build from")
    base = tmp_path_factory.mktemp("dist")
    source = base / "source"
    for name in listed.stdout.splitlines():
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((ROOT / name).read_bytes())
    sdist = _hook("build_sdist", source, base)
    with tarfile.open(sdist) as tar:
        tar.extractall(base / "unpacked", filter="data")
    (unpacked,) = (base / "unpacked").iterdir()
    wheel = _hook("build_wheel", unpacked, base)
    return {"sdist": sdist, "unpacked": unpacked, "wheel": wheel}


# issue 12.15: no generic top-level name (such as `nets`) in site-packages
def test_wheel_installs_only_gradcheck_and_gradcheck_nets(dists):
    names = zipfile.ZipFile(dists["wheel"]).namelist()
    top = {n.split("/")[0] for n in names if ".dist-info/" not in n}
    assert top == {"gradcheck", "gradcheck_nets"}
    # every module of the repository is in it (setup.py computes the package list)
    for folder, installed in (("gradcheck", "gradcheck"), ("nets", "gradcheck_nets")):
        for path in (ROOT / folder).rglob("*.py"):
            inside = path.relative_to(ROOT / folder).as_posix()
            assert f"{installed}/{inside}" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(dists["wheel"]).read(entry_points).decode()
    assert "reference = gradcheck_nets:REGISTRY" in text


# issue 12.20: a license, declared in the SPDX form
def test_wheel_and_sdist_carry_the_mit_license(dists):
    wheel = zipfile.ZipFile(dists["wheel"])
    metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    text = wheel.read(metadata).decode()
    assert "License-Expression: MIT" in text
    assert "License-File: LICENSE" in text
    license_file = next(n for n in wheel.namelist() if n.endswith("/LICENSE"))
    assert "MIT License" in wheel.read(license_file).decode()
    assert "gradcheck developers" in (dists["unpacked"] / "LICENSE").read_text()


# issue 12.20: the sdist carries its tests with what they need, and they pass unpacked
def test_sdist_ships_the_tests_with_their_helpers(dists):
    unpacked = dists["unpacked"]
    tracked = _run(["git", "ls-files", "tests", "examples", "tools", "nets"], ROOT).stdout.split()
    missing = [name for name in tracked if not (unpacked / name).is_file()]
    assert missing == []
    assert not list(unpacked.rglob("__pycache__"))


def test_unpacked_sdist_collects_every_test_and_runs_a_subset(dists):
    unpacked = dists["unpacked"]
    pytest_args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
    env = {"PYTHONPATH": str(unpacked), "PYTEST_ADDOPTS": ""}  # its own gradcheck, not ours
    collected = _run([*pytest_args, "--collect-only", "tests"], unpacked, **env)
    assert collected.returncode == 0, collected.stdout[-3000:]
    last = collected.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ tests collected in .*", last), last  # no collection errors
    subset = ["tests/helpers", "tests/report/test_text.py", "tests/nets/test_layers.py"]
    ran = _run([*pytest_args, *subset], unpacked, **env)
    assert ran.returncode == 0, ran.stdout[-3000:]
    where = _run(
        [sys.executable, "-c", "import gradcheck; print(gradcheck.__file__)"], unpacked, **env
    )
    assert Path(where.stdout.strip()).is_relative_to(unpacked)


# issue 12.15: a user's project with a package of its own called `nets`
def test_users_own_nets_package_works_with_the_command(tmp_path):
    command = Path(sys.executable).with_name("gradcheck")
    if not command.exists():
        pytest.skip("the gradcheck command is not installed next to this python")
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "__init__.py").write_text("")
    (tmp_path / "nets" / "model.py").write_text(
        textwrap.dedent(
            """
            import numpy as np

            def make():
                return (lambda p: float(np.sum(p["w"] ** 2)), lambda p: {"w": 2 * p["w"]},
                        {"w": np.array([0.5, -1.0])})
            """
        )
    )
    (tmp_path / "net.py").write_text("from nets.model import make\n")
    checked = _run([str(command), "check", "net.py:make"], tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "gradcheck PASSED" in checked.stdout
    listed = _run([str(command), "list"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "asker-meant" in listed.stdout
