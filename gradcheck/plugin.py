"""pytest plugin (registered through the ``pytest11`` entry point: installing gradcheck
enables it).

* ``gradcheck.assert_gradients(loss, grad, params)`` in any test: fails with the diff table
  and diagnosis as the message.
* the ``gradcheck`` fixture: ``gradcheck.assert_gradients(...)``, ``gradcheck.check(...)``,
  ``gradcheck.seed`` and ``gradcheck.rng``; it seeds ``random`` and ``numpy.random`` for the
  test (again right before the test function runs, after pytest-randomly's reseeding) and
  restores their state afterwards.
* options, all under ``--gradcheck-...``, echoed in the report header so that a failing run
  can be replayed: ``--gradcheck-seed N``, ``--gradcheck-report-dir DIR`` (Markdown, JSON and
  HTML reports of every failure), ``--gradcheck-richardson``, ``--gradcheck-safety X``,
  ``--gradcheck-rtol X``, ``--gradcheck-full``.
"""

from __future__ import annotations

import argparse
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gradcheck.api import check, check_problem
from gradcheck.assertions import Settings, assert_gradients, pop_settings, push_settings
from gradcheck.core.numerics import Tolerance, step_rule
from gradcheck.errors import InputError
from gradcheck.options import seed_argument
from gradcheck.report.files import check_writable
from gradcheck.report.model import Report
from gradcheck.routes.derivatives import check_hessian, check_hvp, check_jacobian
from gradcheck.routes.layer import check_layer
from gradcheck.routes.value_and_grad import check_value_and_grad

SETTINGS = pytest.StashKey[Settings]()


def _number(low_exclusive: bool, field: str):
    """A parser for the Tolerance setting ``field``; Tolerance's own rule has the last word."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < 0 or (low_exclusive and value == 0):
            bound = "> 0" if low_exclusive else ">= 0"
            raise argparse.ArgumentTypeError(f"expected a finite number {bound}, got {text!r}")
        try:
            Tolerance(**{field: value})
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    return parse


def _directory(text: str) -> Path:
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} exists and is not a directory")
    return path


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradcheck", "gradient checks (gradcheck)")
    group.addoption(
        "--gradcheck-seed",
        type=seed_argument,
        default=0,
        metavar="N",
        help="seed for the gradcheck fixture (random, numpy.random, .rng); default 0",
    )
    group.addoption(
        "--gradcheck-report-dir",
        type=_directory,
        default=None,
        metavar="DIR",
        help="write Markdown, JSON and HTML reports of failed gradient checks here",
    )
    group.addoption(
        "--gradcheck-richardson",
        action="store_true",
        default=False,
        help="refine every element with Richardson extrapolation",
    )
    group.addoption(
        "--gradcheck-safety",
        type=_number(True, "safety"),
        default=None,
        metavar="X",
        help="estimated finite-difference errors a discrepancy must exceed "
        f"(default {Tolerance().safety:g})",
    )
    group.addoption(
        "--gradcheck-rtol",
        type=_number(False, "rtol"),
        default=None,
        metavar="X",
        help="relative tolerance floor (default sqrt(eps) of the parameter dtype)",
    )
    group.addoption(
        "--gradcheck-full",
        action="store_true",
        default=False,
        help="show every element in failure messages, not the first 10",
    )


def _settings(config: pytest.Config) -> Settings:
    safety = config.getoption("gradcheck_safety")
    rtol = config.getoption("gradcheck_rtol")
    tolerance = None
    if safety is not None or rtol is not None:
        base = Tolerance()
        tolerance = Tolerance(
            safety=base.safety if safety is None else safety, noise_ulps=base.noise_ulps, rtol=rtol
        )
    report_dir = config.getoption("gradcheck_report_dir")
    if report_dir is not None and not report_dir.is_absolute():
        report_dir = Path(config.invocation_params.dir) / report_dir
    return Settings(
        seed=config.getoption("gradcheck_seed"),
        report_dir=report_dir,
        richardson=config.getoption("gradcheck_richardson"),
        tolerance=tolerance,
        max_rows=None if config.getoption("gradcheck_full") else 10,
    )


def pytest_configure(config: pytest.Config) -> None:
    settings = _settings(config)
    if settings.report_dir is not None:  # refused now, not at the first failing check
        try:
            check_writable(settings.report_dir, "--gradcheck-report-dir")
        except InputError as exc:
            raise pytest.UsageError(str(exc)) from None
    config.stash[SETTINGS] = settings
    push_settings(settings)


def pytest_unconfigure(config: pytest.Config) -> None:
    if SETTINGS in config.stash:
        pop_settings(config.stash[SETTINGS])


def pytest_report_header(config: pytest.Config) -> list[str]:
    """What a failing run needs to be replayed: seed, step rule, tolerance, options."""
    s = config.stash[SETTINGS]
    tol = s.tolerance or Tolerance()
    rtol = "sqrt(eps) of the dtype" if tol.rtol is None else f"{tol.rtol:g}"
    replay = [f"--gradcheck-seed {s.seed}"]
    if s.richardson:
        replay.append("--gradcheck-richardson")
    if s.tolerance is not None:
        replay.append(f"--gradcheck-safety {tol.safety:g}")
        if tol.rtol is not None:
            replay.append(f"--gradcheck-rtol {tol.rtol:g}")
    lines = [
        f"gradcheck: seed {s.seed}; step: {step_rule(s.richardson)}; "
        f"tolerance: safety {tol.safety:g}, noise {tol.noise_ulps:g} ulps, rtol {rtol}",
        f"gradcheck: replay with {' '.join(replay)}",
    ]
    if s.report_dir is not None:
        lines.append(f"gradcheck: failure reports -> {s.report_dir}")
    return lines


@dataclass
class GradcheckFixture:
    """What the ``gradcheck`` fixture gives a test."""

    settings: Settings
    nodeid: str
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.settings.seed)

    @property
    def seed(self) -> int:
        """The run's seed (``--gradcheck-seed``)."""
        return self.settings.seed

    @property
    def report_dir(self) -> Path | None:
        return self.settings.report_dir

    def check(self, loss: Any, grad: Any = None, params: Any = None, **options: Any) -> Report:
        """:func:`gradcheck.check` (or, given one Problem, :func:`gradcheck.check_problem`)
        with the run's tolerance and Richardson setting."""
        options.setdefault("richardson", self.settings.richardson)
        if options.get("tolerance") is None:
            options["tolerance"] = self.settings.tolerance
        if grad is None and params is None:
            return check_problem(loss, **options)
        return check(loss, grad, params, **options)

    def assert_gradients(
        self, loss: Any, grad: Any = None, params: Any = None, **options: Any
    ) -> Report:
        """:func:`gradcheck.assert_gradients` (also given a Report from one of the methods
        below), reports named after this test."""
        __tracebackhide__ = True
        options.setdefault("name", self.nodeid)
        return assert_gradients(loss, grad, params, settings=self.settings, **options)

    # The other entry points, with the run's settings. The fixture is named ``gradcheck`` and
    # hides the module inside a test, so each route the module offers is offered here too.
    def _defaults(self, options: dict[str, Any]) -> dict[str, Any]:
        options.setdefault("richardson", self.settings.richardson)
        options.setdefault("seed", self.settings.seed)
        if options.get("tolerance") is None:
            options["tolerance"] = self.settings.tolerance
        return options

    def check_value_and_grad(self, fun: Any, params: Any, **options: Any) -> Report:
        """:func:`gradcheck.check_value_and_grad` with the run's settings."""
        return check_value_and_grad(fun, params, **self._defaults(options))

    def check_layer(self, forward: Any, backward: Any, inputs: Any, **options: Any) -> Report:
        """:func:`gradcheck.check_layer` with the run's settings (``douts`` from its seed)."""
        return check_layer(forward, backward, inputs, **self._defaults(options))

    def check_jacobian(self, fun: Any, jac: Any, x: Any, **options: Any) -> Report:
        """:func:`gradcheck.check_jacobian` with the run's settings."""
        return check_jacobian(fun, jac, x, **self._defaults(options))

    def check_hessian(self, grad: Any, hess: Any, x: Any, **options: Any) -> Report:
        """:func:`gradcheck.check_hessian` with the run's settings."""
        return check_hessian(grad, hess, x, **self._defaults(options))

    def check_hvp(self, grad: Any, hvp: Any, x: Any, **options: Any) -> Report:
        """:func:`gradcheck.check_hvp` with the run's settings (vectors from its seed)."""
        return check_hvp(grad, hvp, x, **self._defaults(options))


def _seed_globals(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - what asker-style code draws weights from


@pytest.fixture
def gradcheck(request: pytest.FixtureRequest):
    """Gradient checks with the run's settings; seeds ``random`` and ``numpy.random`` when it is
    set up and again right before the test function runs (see :func:`pytest_pyfunc_call`)."""
    settings = request.config.stash[SETTINGS]
    saved = random.getstate(), np.random.get_state()  # noqa: NPY002 - restored after the test
    _seed_globals(settings.seed)
    try:
        yield GradcheckFixture(settings, request.node.nodeid)
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])  # noqa: NPY002


@pytest.hookimpl(hookwrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function):
    """Seed once more right before a test that uses the ``gradcheck`` fixture runs: plugins
    such as pytest-randomly reseed the global generators after fixture set-up (in
    ``pytest_runtest_call``), which would break the header's promise that
    ``--gradcheck-seed N`` replays the test's draws."""
    if "gradcheck" in getattr(pyfuncitem, "fixturenames", ()):
        _seed_globals(pyfuncitem.config.stash[SETTINGS].seed)
    yield
