"""The pytest plugin, run on throwaway test files with pytester."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
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
            "E       - group: true = 1/2 x hand-written for W2 (all 8)*",
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
            "*on every element; tolerance: safety 10, noise 1 ulps, rtol 1e-06",
            "gradcheck: replay with --gradcheck-seed 3 --gradcheck-richardson "
            "--gradcheck-safety 10 --gradcheck-rtol 1e-06",
        ]
    )


def test_tolerance_option_reaches_assert_gradients(pytester):
    """A factor 1.2 has relative error 1/6: an rtol of 0.3 lets it through, the default not."""
    pytester.makepyfile(
        NETS
        + """

def test_scaled():
    loss, grad, params = net()
    gradcheck.assert_gradients(loss, lambda p: {k: 1.2 * v for k, v in grad(p).items()}, params)
"""
    )
    pytester.runpytest("--gradcheck-rtol", "0.3").assert_outcomes(passed=1)
    pytester.runpytest().assert_outcomes(failed=1)


@pytest.mark.parametrize(
    ("option", "value", "reason"),
    [
        ("--gradcheck-seed", "abc", "expected a non-negative integer, got 'abc'"),
        ("--gradcheck-seed", "-1", "expected an integer in [[]0, 2**32), got -1"),
        ("--gradcheck-safety", "0", "expected a finite number > 0, got '0'"),
        ("--gradcheck-rtol", "nan", "expected a finite number >= 0, got 'nan'"),
        # issue 12 item 4: a relative floor of 0.6 passed a factor-2 bug
        (
            "--gradcheck-rtol",
            "0.6",
            r"Tolerance.rtol must be None or a finite number in [[]0, 0.5)*",
        ),
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


def test_report_dir_on_a_nonfinite_gradient_keeps_the_gradient_mismatch(pytester, tmp_path):
    # issue 12 item 7: writing the JSON report turned the GradientMismatch into a ValueError
    pytester.makepyfile(
        NETS
        + """

def test_nonfinite():
    loss, grad, params = net()
    def bad(p):
        g = grad(p)
        g["b2"][0] = float("inf")
        return g
    gradcheck.assert_gradients(loss, bad, params)
"""
    )
    out = tmp_path / "reports"
    result = pytester.runpytest(f"--gradcheck-report-dir={out}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E       gradcheck.GradientMismatch: gradcheck FAILED*"])
    [written] = list(out.glob("*.json"))

    def refuse(constant):
        raise ValueError(constant)

    data = json.loads(written.read_text(), parse_constant=refuse)
    assert data["params"][3]["status"] == "nonfinite"


# QA: the fixture named `gradcheck` hides the module in a test, and it offered only check and
# assert_gradients: gradcheck.check_layer(...) was an AttributeError there.
def test_fixture_offers_every_route_and_asserts_their_reports(pytester):
    pytester.makepyfile("""
import numpy as np

def affine_forward(x, w, b):
    return x @ w + b, (x, w)

def affine_backward(dout, cache, bug=False):
    x, w = cache
    db = dout.sum(axis=0)
    if bug:
        db[1] *= 2
    return dout @ w.T, x.T @ dout, db

def inputs(rng):
    return {"x": rng.normal(size=(4, 3)), "w": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}

def test_layer_ok(gradcheck):
    report = gradcheck.check_layer(affine_forward, affine_backward, inputs(gradcheck.rng))
    assert gradcheck.assert_gradients(report) is report

def test_layer_bug(gradcheck):
    bad = lambda dout, cache: affine_backward(dout, cache, bug=True)
    gradcheck.assert_gradients(gradcheck.check_layer(affine_forward, bad, inputs(gradcheck.rng)))

def test_other_routes(gradcheck):
    A = np.array([[2.0, 0.5], [0.5, 1.0]])
    x = np.array([0.3, -1.0])
    assert gradcheck.check_value_and_grad(lambda p: (0.5 * p["w"] @ A @ p["w"], {"w": A @ p["w"]}),
                                          {"w": x.copy()}).passed
    assert gradcheck.check_jacobian(lambda v: A @ v, lambda v: A, x).passed
    assert gradcheck.check_hessian(lambda v: A @ v, lambda v: A, x).passed
    assert gradcheck.check_hvp(lambda v: A @ v, lambda v, u: A @ u, x).passed

def test_report_with_arguments_is_refused(gradcheck):
    report = gradcheck.check_jacobian(lambda v: 2 * v, lambda v: 2 * np.eye(2), np.ones(2))
    gradcheck.assert_gradients(report, None, {"x": 1.0})
""")
    result = pytester.runpytest("--gradcheck-report-dir", "gc")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "E       gradcheck.GradientMismatch: gradcheck FAILED: 1 of 3 parameters*",
            "E       X   b        (2,)     (2,)          wrong     1/2 *",
            "E       reports: *test_layer_bug.md, *",
            "E       gradcheck.errors.InputError: assert_gradients(report) takes the report alone",
        ]
    )


def test_the_pytest_how_to_page_is_a_passing_test_file(pytester):
    """The python blocks of docs/how-to/pytest.md, together, are a test file whose tests (with
    and without the fixture, every route through it) run under pytest and pass."""
    page = Path(__file__).resolve().parents[1] / "docs" / "how-to" / "pytest.md"
    blocks = [b.split("```", 1)[0] for b in page.read_text().split("```python\n")[1:]]
    source = "\n\n".join(blocks)
    tests = source.count("\ndef test_") + source.startswith("def test_")
    assert tests >= 3  # plain, with the fixture, a route through the fixture
    pytester.makepyfile(source)
    pytester.runpytest().assert_outcomes(passed=tests)


# issue 12.13: parametrized ids that sanitise alike keep a report each
def test_report_dir_keeps_one_report_per_test_id(pytester):
    pytester.makepyfile(
        NETS
        + """
import pytest

@pytest.mark.parametrize("case", ["a/b", "a-b", "a b"])
def test_case(case):
    gradcheck.assert_gradients(*net("double_W2"))
"""
    )
    result = pytester.runpytest("--gradcheck-report-dir", "gc-reports")
    result.assert_outcomes(failed=3)
    titles = sorted(
        p.read_text().splitlines()[0] for p in (pytester.path / "gc-reports").glob("*.md")
    )
    assert [t.rsplit("[", 1)[1] for t in titles] == ["a b]", "a-b]", "a/b]"]


# issue 12.14: an unwritable report folder is a usage error up front ...
def test_unwritable_report_dir_is_a_usage_error(pytester):
    pytester.makepyfile(TESTS)
    pytester.makefile(".txt", afile="x")
    result = pytester.runpytest("--gradcheck-report-dir", "afile.txt/reports")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--gradcheck-report-dir *afile.txt*reports: cannot write reports there (*"]
    )


# ... and a report that cannot be written later never replaces the gradient failure
def test_failed_report_write_keeps_the_gradient_failure(pytester):
    pytester.makepyfile(TESTS)
    stem = "test_failed_report_write_keeps_the_gradient_failure.py-test_buggy"
    (pytester.path / "gc-reports" / f"{stem}.json").mkdir(parents=True)
    result = pytester.runpytest("--gradcheck-report-dir", "gc-reports")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "E       gradcheck.GradientMismatch: gradcheck FAILED*",
            "E       gradcheck: warning: could not write the reports of *; the verdict stands",
        ]
    )
    result.stdout.no_fnmatch_line("*OSError*")


# issue 12.19: the header's "replay with --gradcheck-seed N" holds under pytest-randomly and
# pytest-xdist (pytest-randomly reseeds the global generators after fixture set-up)
SEEDED_DRAWS = """
import json
import pathlib
import random

import numpy as np

def record(name, gradcheck):
    draws = [float(np.random.rand()), random.random(), float(gradcheck.rng.random())]
    pathlib.Path(__file__).with_name(name + ".json").write_text(json.dumps(draws))

def test_one(gradcheck):
    record("one", gradcheck)

def test_two(gradcheck):
    record("two", gradcheck)
"""


@pytest.mark.parametrize("xdist", [False, True])
def test_seed_replays_the_draws_under_randomly_and_xdist(pytester, monkeypatch, xdist):
    pytest.importorskip("pytest_randomly")
    pytest.importorskip("xdist")
    monkeypatch.delenv("PYTEST_ADDOPTS")
    pytester.makepyfile(SEEDED_DRAWS)
    np.random.seed(7)  # noqa: NPY002 - what the fixture promises
    random.seed(7)
    expected = [
        float(np.random.rand()),  # noqa: NPY002
        random.random(),
        float(np.random.default_rng(7).random()),
    ]
    args = ["-p", "randomly", "--randomly-seed=1", "--gradcheck-seed=7", "-p", "no:cacheprovider"]
    # with xdist, in a worker process: the seed must reach it too
    run = pytester.runpytest_subprocess if xdist else pytester.runpytest
    result = run(*args, *(["-n", "1"] if xdist else []))
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["gradcheck: replay with --gradcheck-seed 7"])
    for name in ("one", "two"):
        assert json.loads((pytester.path / f"{name}.json").read_text()) == expected
