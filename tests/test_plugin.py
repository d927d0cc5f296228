"""The pytest plugin, run on throwaway test files with pytester."""

from __future__ import annotations

import json

import pytest

NETS = """
import numpy as np
import gradcheck

def net(bug=None):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 3))
    y = rng.normal(size=(5, 2))
    params = {"W1": rng.normal(size=(4, 3)), "b1": rng.normal(size=4),
              "W2": rng.normal(size=(2, 4)), "b2": rng.normal(size=2)}

    def loss(p):
        h = np.tanh(x @ p["W1"].T + p["b1"])
        return float(np.mean((h @ p["W2"].T + p["b2"] - y) ** 2))

    def grad(p):
        h = np.tanh(x @ p["W1"].T + p["b1"])
        dz = 2 * (h @ p["W2"].T + p["b2"] - y) / y.size
        da = (dz @ p["W2"]) * (1 - h ** 2)
        g = {"W1": da.T @ x, "b1": da.sum(0), "W2": dz.T @ h, "b2": dz.sum(0)}
        if bug == "double_W2":
            g["W2"] = 2 * g["W2"]
        return g

    return loss, grad, params
"""

TESTS = (
    NETS
    + """

def test_correct():
    report = gradcheck.assert_gradients(*net())
    assert report.passed

def test_buggy():
    loss, grad, params = net("double_W2")
    gradcheck.assert_gradients(loss, grad, params)
"""
)


def test_buggy_net_fails_with_the_table_correct_net_passes(pytester):
    pytester.makepyfile(TESTS)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            ">       gradcheck.assert_gradients(loss, grad, params)",
            "E       gradcheck.GradientMismatch: gradcheck FAILED: 1 of 4 parameters with wrong *",
            "E       Diagnosis:",
            "E       - group: true = 1/2 x hand-written for W2 (all 8)",
            "E       Parameters:",
            "E       X   W2       (2, 4)   (2, 4)        wrong*",
            "E       Elements (failing first):",
            "E       X   W2[*",
            "test_buggy_net_fails_with_the_table_correct_net_passes.py:*: GradientMismatch",
            "FAILED *::test_buggy*",
        ]
    )
    # the traceback ends at the user's line: no frame inside gradcheck is shown
    assert "def assert_gradients" not in result.stdout.str()
    assert "assertions.py" not in result.stdout.str()


def test_fixture_seeds_and_checks(pytester):
    pytester.makepyfile(
        NETS
        + """
import random

def test_seeded(gradcheck):
    assert gradcheck.seed == 7
    assert gradcheck.rng.integers(10**9) == np.random.default_rng(7).integers(10**9)
    first = np.random.rand()
    np.random.seed(7)
    assert first == np.random.rand()
    assert gradcheck.check(*net()).passed

def test_fixture_assert(gradcheck):
    problem = gradcheck.check(*net("double_W2"))
    assert not problem.passed
    gradcheck.assert_gradients(*net("double_W2"))
"""
    )
    result = pytester.runpytest("--gradcheck-seed", "7")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["E       gradcheck.GradientMismatch: gradcheck FAILED*"])


def test_header_echoes_what_replays_the_run(pytester):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest(
        "--gradcheck-seed", "3", "--gradcheck-rtol", "1e-6", "--gradcheck-richardson"
    )
    result.stdout.fnmatch_lines(
        [
            "gradcheck: seed 3; step: central differences, h = (3 noise*Richardson on h/4, h/2 "
            "on every element; tolerance: safety 10, noise 32 ulps, rtol 1e-06",
            "gradcheck: replay with --gradcheck-seed 3 --gradcheck-richardson "
            "--gradcheck-safety 10 --gradcheck-rtol 1e-06",
        ]
    )


def test_tolerance_option_reaches_assert_gradients(pytester):
    """A factor 2 has relative error 0.5: an rtol of 0.6 lets it through, the default not."""
    pytester.makepyfile(TESTS)
    pytester.runpytest("--gradcheck-rtol", "0.6").assert_outcomes(passed=2)


@pytest.mark.parametrize(
    ("option", "value", "reason"),
    [
        ("--gradcheck-seed", "abc", "expected a non-negative integer, got 'abc'"),
        ("--gradcheck-seed", "-1", "expected an integer in [[]0, 2**32), got -1"),
        ("--gradcheck-safety", "0", "expected a finite number > 0, got '0'"),
        ("--gradcheck-rtol", "nan", "expected a finite number >= 0, got 'nan'"),
        ("--gradcheck-report-dir", "afile.txt", "'afile.txt' exists and is not a directory"),
    ],
)
def test_options_are_validated(pytester, option, value, reason):
    pytester.makefile(".txt", afile="x")
    result = pytester.runpytest(f"{option}={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*argument {option}: {reason}"])


def test_report_dir_gets_markdown_json_html_of_failures_only(pytester):
    pytester.makepyfile(TESTS)
    result = pytester.runpytest("--gradcheck-report-dir", "gc-reports")
    result.assert_outcomes(passed=1, failed=1)
    folder = pytester.path / "gc-reports"
    stem = "test_report_dir_gets_markdown_json_html_of_failures_only.py-test_buggy"
    assert sorted(p.name for p in folder.iterdir()) == [
        f"{stem}.html",
        f"{stem}.json",
        f"{stem}.md",
    ]
    data = json.loads((folder / f"{stem}.json").read_text())
    assert data["passed"] is False
    assert data["options"]["seed"] == 0
    assert (folder / f"{stem}.md").read_text().startswith(f"# {stem.replace('.py-', '.py::')}")
    assert "<!DOCTYPE html>" in (folder / f"{stem}.html").read_text()
    result.stdout.fnmatch_lines(
        [
            "gradcheck: failure reports -> *gc-reports",
            f"E       reports: *{stem}.md, *{stem}.json, *{stem}.html",
        ]
    )


def test_assert_gradients_takes_an_adapter_problem(pytester):
    pytester.makepyfile("""
import numpy as np
import gradcheck

class Net:
    def __init__(self, bug):
        self.w = np.array([0.5, -1.0, 2.0])
        self.c = 0.3
        self._sign = bug  # private: not discovered as a weight

    def loss(self):
        return float(np.sum(self.w ** 3) * self.c)

    def grads(self):
        return {"w": 3 * self.w ** 2 * self.c, "c": float(np.sum(self.w ** 3)) * self._sign}

def test_ok():
    gradcheck.assert_gradients(gradcheck.from_attributes(Net(1.0), "loss", "grads"))

def test_wrong_c():
    gradcheck.assert_gradients(gradcheck.from_attributes(Net(-1.0), "loss", "grads"))
""")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["E       X   c        ()       ()            wrong*"])
