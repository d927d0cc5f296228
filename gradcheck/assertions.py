"""``assert_gradients``: :func:`gradcheck.check` as an assertion for test suites.

It needs no pytest (any test runner catches an AssertionError); the pytest plugin
(:mod:`gradcheck.plugin`) only supplies defaults from the command line (seed, tolerance, a
folder for failure reports) through :func:`active_settings`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradcheck.api import check, check_problem
from gradcheck.core.numerics import Tolerance
from gradcheck.errors import InputError
from gradcheck.report.files import ReportNames, write_reports_or_warn
from gradcheck.report.model import Report
from gradcheck.report.text import unresolved_params


class GradientMismatch(AssertionError):
    """A hand-written partial disagrees with finite differences.

    The message is the report's diff table with its diagnosis; ``.report`` is the
    :class:`~gradcheck.report.model.Report` itself.
    """

    def __init__(self, message: str, report: Report):
        super().__init__(message)
        self.report = report


GradientMismatch.__module__ = "gradcheck"  # shown in tracebacks as gradcheck.GradientMismatch


class UnresolvedWarning(UserWarning):
    """An assertion passed on parameters whose check could not resolve their partials: the
    smallest error it could see is larger than the partials themselves (a loss exactly 0 at
    large margins, a float32 loss of tiny weights). The pass proves nothing about them; under
    ``-W error`` (or ``filterwarnings = error``) it fails the test instead."""


UnresolvedWarning.__module__ = "gradcheck"


@dataclass(frozen=True)
class Settings:
    """Defaults for :func:`assert_gradients` (set by the pytest plugin from its options)."""

    seed: int = 0
    report_dir: Path | None = None
    richardson: bool = False
    tolerance: Tolerance | None = None
    max_rows: int | None = 10
    # file names of this session's reports, unique within it
    names: ReportNames = field(default_factory=ReportNames, compare=False, repr=False)


# One entry per running pytest session (pytester runs sessions inside sessions).
_active: list[Settings] = []
_written: dict[str, int] = {}


def active_settings() -> Settings:
    """The innermost pytest session's settings, or the defaults outside pytest."""
    return _active[-1] if _active else Settings()


def push_settings(settings: Settings) -> None:
    _active.append(settings)


def pop_settings(settings: Settings) -> None:
    """Remove the innermost entry that is ``settings`` (by identity)."""
    for i in range(len(_active) - 1, -1, -1):
        if _active[i] is settings:
            del _active[i]
            return


def current_test() -> str:
    """The running pytest test's node id (from ``PYTEST_CURRENT_TEST``), else ``"check"``."""
    running = os.environ.get("PYTEST_CURRENT_TEST", "")
    return running.rsplit(" (", 1)[0] or "check"


def assert_gradients(
    loss: Any,
    grad: Any = None,
    params: Any = None,
    *,
    name: str | None = None,
    settings: Settings | None = None,
    **options: Any,
) -> Report:
    """Check like :func:`gradcheck.check` and raise :class:`GradientMismatch` on a mismatch.

    Takes the same inputs as ``check`` (``loss, grad, params``, ``richardson=``,
    ``tolerance=``, ...), or one Problem (from an adapter, say) as in :func:`check_problem`,
    or the Report of any other entry point: ``assert_gradients(check_layer(f, b, inputs))``
    (the fixture's ``check_layer`` and the others apply the run's settings).
    Unset options come from the pytest plugin's ``--gradcheck-*`` options. On a mismatch with
    ``--gradcheck-report-dir``, Markdown, JSON and HTML reports are written there, named after
    ``name`` (default: the running test). Returns the report when every partial passes, with
    an :class:`UnresolvedWarning` when some parameters passed only because the check could not
    resolve their partials.
    """
    __tracebackhide__ = True  # the failure points at the test's line, not at this helper
    settings = settings or active_settings()
    options.setdefault("richardson", settings.richardson)
    options.setdefault("seed", settings.seed)
    if options.get("tolerance") is None:
        options["tolerance"] = settings.tolerance
    if isinstance(loss, Report):  # already checked, by check_layer, check_jacobian, ...
        if grad is not None or params is not None:
            raise InputError("assert_gradients(report) takes the report alone")
        report = loss
    elif grad is None and params is None:  # a Problem: its nodes, samples and dims count too
        report = check_problem(loss, **options)
    else:
        report = check(loss, grad, params, **options)
    if report.passed:
        blind = unresolved_params(report)
        if blind:
            warnings.warn(
                UnresolvedWarning(
                    f"gradients passed but not resolved at this precision: {', '.join(blind)} "
                    "(the smallest error the check could see is larger than their partials, "
                    "so the pass says nothing about them; see the report's Notes)"
                ),
                stacklevel=2,
            )
        return report
    message = report.to_text(max_rows=settings.max_rows).rstrip("\n")
    if settings.report_dir is not None:
        label = name or current_test()
        _written[label] = _written.get(label, 0) + 1
        if _written[label] > 1:
            label = f"{label}-{_written[label]}"
        problems: list[str] = []
        paths = write_reports_or_warn(
            report,
            label,
            settings.report_dir,
            problems.append,
            max_rows=None,
            stem=settings.names.stem(label),
        )
        if paths:
            message += "\n\nreports: " + ", ".join(str(p) for p in paths)
        message += "".join(f"\n\ngradcheck: warning: {p}" for p in problems)
    raise GradientMismatch(message, report)
