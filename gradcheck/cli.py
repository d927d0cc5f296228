"""The ``gradcheck`` command (also ``python -m gradcheck``).

    gradcheck list                              name the reference nets
    gradcheck check NAME...                     check reference nets
    gradcheck check --all [--out DIR]           check every reference net (``make check``)
    gradcheck check path/to/file.py:NAME        check your own net
    gradcheck check package.module:NAME         the same, imported as a module

``NAME`` in your own code is a zero-argument factory returning ``(loss, grad, params)`` (or an
adapter's Problem, or a net with ``loss``, ``grad`` and ``params``); see
:mod:`gradcheck.adapters.target`.
``--format text|markdown|html|json`` chooses what is printed, ``--out DIR`` writes
``<name>.md``, ``<name>.json`` and ``<name>.html`` for every check. A progress bar appears on
stderr when a check takes more than a second and stderr is a terminal.

Exit codes:
    0  every check passed (with ``--all``: every reference net's verdict matched its
       declaration, so deliberately buggy nets must fail for the run to pass);
    1  a gradient mismatch (with ``--all``: some verdict differed from its declaration);
    2  bad usage or bad input (no such file or name, the file fails to import, the factory
       raises or returns the wrong thing, the check refuses its input, the loss or gradient
       calls ``sys.exit()``, ``--out`` cannot be written), reported in one line on stderr;
       ``--debug`` shows the traceback instead;
    130  interrupted (Ctrl-C); the parameters are restored all the same;
    141  the output pipe closed early (``gradcheck check ... | head``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import NamedTuple

from gradcheck.adapters.target import describe_exit, is_target, load_target
from gradcheck.api import check_problem
from gradcheck.errors import GradcheckError, InputError
from gradcheck.options import seed_argument
from gradcheck.progress import ProgressBar
from gradcheck.protocol import Problem, Reference, load_references
from gradcheck.report.files import ReportNames, check_writable, write_reports_or_warn
from gradcheck.report.model import Report
from gradcheck.report.text import visible

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_PIPE = 0, 1, 2, 130, 141
FORMATS = ("text", "markdown", "html", "json")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradcheck",
        description="Pinpoint and diagnose wrong partial derivatives in hand-written backprop.",
        epilog="exit codes: 0 pass, 1 gradient mismatch, 2 bad usage or input, 130 interrupted",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    # accepted after the subcommand too; SUPPRESS keeps the top-level value when absent
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="name the reference nets", parents=[debug])
    run = sub.add_parser("check", help="check reference nets or your own code", parents=[debug])
    run.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help="a reference net name, path/to/file.py:NAME or package.module:NAME",
    )
    run.add_argument("--all", action="store_true", help="check every reference net")
    run.add_argument("--format", choices=FORMATS, default="text", help="what to print")
    run.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write <name>.md, <name>.json and <name>.html into this folder",
    )
    run.add_argument("--full", action="store_true", help="show every element, not the first 10")
    run.add_argument("--richardson", action="store_true", help="refine every element")
    run.add_argument(
        "--float64",
        action="store_true",
        help="when anything is float32, check again in float64 (parameters and the float32 "
        "arrays the loss closes over are cast, then restored)",
    )
    run.add_argument(
        "--mode",
        choices=("full", "fast"),
        default="full",
        help="full: every element (default); fast: random-direction probes per "
        "tensor, then localization of the wrong elements",
    )
    run.add_argument(
        "--seed",
        type=seed_argument,
        default=0,
        metavar="N",
        help="seed random and numpy.random before loading your code (default 0)",
    )
    return parser


def cmd_list(references: dict[str, Reference]) -> int:
    width = max(map(len, references), default=0)
    for name, ref in references.items():
        verdict = "passes" if ref.expect_pass else "fails "
        print(f"{visible(name):<{width}}  {verdict}  {visible(ref.description)}")
    return EXIT_OK


def warn(message: str) -> None:
    """One warning line on stderr: the run goes on."""
    print(f"gradcheck: warning: {visible(message)}", file=sys.stderr)


def run_check(problem: Problem, args: argparse.Namespace, label: str) -> Report:
    """One check, with a progress bar on stderr when it is a terminal and the check is slow.

    A ``sys.exit()`` in the loss or the gradient is bad input, not the end of gradcheck: it
    becomes an :class:`InputError` (exit 2, one line), the parameters restored as on any
    way out of a check."""
    bar = ProgressBar(sys.stderr, label=visible(label))
    try:
        return check_problem(
            problem,
            richardson=args.richardson,
            recheck_float64=args.float64,
            mode=args.mode,
            seed=args.seed,
            progress=bar if bar.enabled else None,
        )
    except SystemExit as exc:
        raise InputError(
            f"{label}: the loss or gradient called {describe_exit(exc)} during the check; "
            "they must return a value, not end the process (the parameters were restored)"
        ) from None
    finally:
        bar.close()


class Outcome(NamedTuple):
    """One target's check: what was expected of it and what it did."""

    name: str
    stem: str  # the report files' name in --out
    expected: str  # "pass" or "fail"
    got: str  # see verdict()
    report: Report


def cmd_check(args: argparse.Namespace, references: dict[str, Reference] | None = None) -> int:
    """Check every target; ``references`` defaults to the registries' nets, loaded only when
    a reference net is asked for (the registries are third-party code)."""
    names, references = resolve_targets(args, references)
    if args.out:
        check_writable(args.out, "--out")
    max_rows = None if args.full else 10
    stems = ReportNames()
    outcomes = []
    reader_gone = False
    for name in names:
        outcome = check_target(name, references, args, stems.stem(name))
        outcomes.append(outcome)
        ref = references.get(name) if not is_target(name) else None
        if not reader_gone:
            try:
                emit(name, ref, outcome.report, args.format, max_rows, single=len(names) == 1)
                sys.stdout.flush()
            except BrokenPipeError:  # `| head`: nothing more to print, but the files are due
                _silence_stdout()
                reader_gone = True
        if args.out:
            write_reports_or_warn(
                outcome.report, name, args.out, warn, max_rows=max_rows, stem=outcome.stem
            )
    code = finish(outcomes, args)
    if reader_gone:
        raise BrokenPipeError  # every report file is written; main says the reader has gone
    return code


def resolve_targets(
    args: argparse.Namespace, references: dict[str, Reference] | None
) -> tuple[list[str], dict[str, Reference]]:
    """The names to check and the reference nets they may name; refuses what cannot run."""
    if args.all and args.targets:
        raise GradcheckError("give reference names or --all, not both")
    names = args.targets
    if not args.all and not names:
        raise GradcheckError(
            "nothing to check: name a reference net (see 'gradcheck list'), "
            "use --all, or give path/to/file.py:NAME"
        )
    if references is None:
        needs_references = args.all or not all(is_target(n) for n in names)
        references = load_references(warn=warn) if needs_references else {}
    if args.all:
        names = list(references)
    unknown = [n for n in names if not is_target(n) and n not in references]
    if unknown:
        hint = (
            "; name a function in it as FILE.py:NAME"
            if unknown[0].endswith(".py")
            else f"; known: {', '.join(references)}; for your own code give "
            "path/to/file.py:NAME or package.module:NAME"
        )
        raise GradcheckError(f"unknown reference net(s) {', '.join(unknown)}{hint}")
    if args.format == "html" and len(names) > 1:
        raise GradcheckError(
            "--format html prints one report; check one target, or use "
            "--out DIR to write an HTML file per target"
        )
    return names, references


def check_target(
    name: str, references: dict[str, Reference], args: argparse.Namespace, stem: str
) -> Outcome:
    """Load one target (a user's FILE.py:NAME or a reference net), check it, judge it."""
    if is_target(name):
        loaded = load_target(name, seed=args.seed, finished=Report)
        if isinstance(loaded, Report):
            refuse_check_options(name, args)
            report = loaded
        else:
            report = run_check(loaded, args, name)
        return Outcome(name, stem, "pass", "pass" if report.passed else "fail", report)
    ref = references[name]
    report = run_check(ref.build(), args, name)
    return Outcome(name, stem, "pass" if ref.expect_pass else "fail", verdict(ref, report), report)


def refuse_check_options(name: str, args: argparse.Namespace) -> None:
    """A target that ran its own check (``check_layer``, ``check_jacobian``, ...) and returned
    its Report: the options that shape a check cannot reach it any more, so they are refused
    rather than silently ignored."""
    given = [
        flag
        for flag, value in (
            ("--richardson", args.richardson),
            ("--float64", args.float64),
            ("--mode fast", args.mode != "full"),
        )
        if value
    ]
    if given:
        raise InputError(
            f"{name} returned a finished Report (it ran its own check), so {', '.join(given)} "
            "cannot apply to it; pass the option in that call instead (richardson=True, "
            "recheck_float64=True, mode='fast'), or return (loss, grad, params)"
        )


def finish(outcomes: list[Outcome], args: argparse.Namespace) -> int:
    """What follows the reports: JSON of several targets, the --all summary and index; the
    exit code (reference nets: as declared; user targets: all passed)."""
    if args.format == "json" and len(outcomes) > 1:
        print(json.dumps({o.name: o.report.to_dict() for o in outcomes}, indent=2, allow_nan=False))
    if not args.all:
        return EXIT_OK if all(o.report.passed for o in outcomes) else EXIT_MISMATCH
    mismatched = [o.name for o in outcomes if o.expected != o.got]
    if args.out:  # before printing: a reader that has gone must not cost the index
        try:
            write_index([(o.name, o.stem, o.expected, o.got) for o in outcomes], args.out)
        except OSError as exc:
            warn(f"could not write {args.out / 'index.md'}: {exc.strerror or exc}")
    if args.format in ("text", "markdown"):
        print(
            f"{len(outcomes) - len(mismatched)} of {len(outcomes)} reference nets behaved "
            "as declared" + (f"; not: {visible(', '.join(mismatched))}" if mismatched else "")
        )
    return EXIT_MISMATCH if mismatched else EXIT_OK


def verdict(ref: Reference, report: Report) -> str:
    """``pass``, ``fail``, or, for a bug caught elsewhere than its declared ``bug_params``,
    ``fail at <params>, declared at <params>`` (which then differs from the declared ``fail``)."""
    if report.passed:
        return "pass"
    failed = report.failed_params
    if ref.bug_params and set(failed) != ref.bug_params:
        return f"fail at {', '.join(failed)}, declared at {', '.join(sorted(ref.bug_params))}"
    return "fail"


def emit(
    name: str, ref: Reference | None, report: Report, fmt: str, max_rows: int | None, single: bool
) -> None:
    """Print one report in the chosen format (JSON for several targets is printed at the end)."""
    if fmt == "json":
        if single:
            print(report.to_json())
        return
    if fmt == "html":
        print(report.to_html(title=name, max_rows=max_rows), end="")
        return
    title = visible(name if ref is None else f"{name}: {ref.description}", fmt == "markdown")
    if fmt == "markdown":
        print(f"## {title}\n\n" + report.to_markdown(max_rows=max_rows))
        return
    print(f"== {title}")
    if ref is not None:
        expected = "pass" if ref.expect_pass else "fail"
        got = verdict(ref, report)
        where = f" at {', '.join(report.failed_params)}" if got == "fail" else ""
        print(
            f"   declared to {expected}; it did {visible(got + where)}"
            + ("" if expected == got else "  <-- MISMATCH")
        )
    print(report.to_text(max_rows=max_rows))


def write_index(outcome: list[tuple[str, str, str, str]], out: Path) -> None:
    """``index.md``: one row per net (name, report stem, declared and actual verdict)."""
    lines = [
        "# Reference nets",
        "",
        "| net | declared | verdict | as declared | report |",
        "|---|---|---|---|---|",
    ]
    for name, stem, expected, got in outcome:
        lines.append(
            f"| {visible(name, markdown=True)} | {expected} | {visible(got, markdown=True)} "
            f"| {'yes' if expected == got else 'NO'} | [{stem}.md]({stem}.md) |"
        )
    (out / "index.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage and the reason (or --help)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    saved_path = list(sys.path)  # user code may change it while it runs
    try:
        if args.command == "list":
            return cmd_list(load_references(warn=warn))
        return cmd_check(args)
    except BrokenPipeError:  # `gradcheck check ... | head`: the reader has gone, stop quietly
        _silence_stdout()
        return EXIT_PIPE
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("gradcheck: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            raise
        print(f"gradcheck: error: {visible(one_line(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # gradcheck never exits from here: code it ran did (a net's build)
        if args.debug:
            raise
        print(
            f"gradcheck: error: {describe_exit(exc)} was called by code gradcheck ran; it "
            "must raise an exception or return, not end the process",
            file=sys.stderr,
        )
        return EXIT_USAGE
    finally:
        sys.path[:] = saved_path


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (captured in tests)
        pass


def one_line(exc: BaseException) -> str:
    """The reason in one line; errors gradcheck did not expect say so and how to see more."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, GradcheckError):
        return text
    return (
        f"unexpected {type(exc).__name__}: {text} (rerun with --debug for the traceback; "
        "if your input looks fine, please report it)"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
