"""The ``gradcheck`` command.

Exit codes:
    0  every check passed (with ``--all``: every reference net's verdict matched its
       declaration, so deliberately buggy nets must fail for the run to pass);
    1  a gradient mismatch (with ``--all``: some verdict differed from its declaration);
    2  bad usage or bad input, reported in one line (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gradcheck.api import check
from gradcheck.errors import GradcheckError
from gradcheck.protocol import Reference, load_references
from gradcheck.report import Report

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradcheck",
        description="Pinpoint and diagnose wrong partial derivatives in hand-written backprop.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="name the reference nets")
    run = sub.add_parser("check", help="check reference nets")
    run.add_argument("targets", nargs="*", metavar="NAME", help="reference net names")
    run.add_argument("--all", action="store_true", help="check every reference net")
    run.add_argument("--out", type=Path, help="write <name>.md and <name>.json into this folder")
    run.add_argument("--full", action="store_true", help="show every element, not the first 10")
    run.add_argument("--richardson", action="store_true", help="refine every element")
    return parser


def cmd_list(references: dict[str, Reference]) -> int:
    width = max(map(len, references), default=0)
    for name, ref in references.items():
        verdict = "passes" if ref.expect_pass else "fails "
        print(f"{name:<{width}}  {verdict}  {ref.description}")
    return EXIT_OK


def write_reports(report: Report, name: str, out: Path, max_rows: int | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(f"# {name}\n\n" + report.to_markdown(max_rows=max_rows))
    (out / f"{name}.json").write_text(report.to_json() + "\n")


def cmd_check(args: argparse.Namespace, references: dict[str, Reference]) -> int:
    if args.all and args.targets:
        raise GradcheckError("give reference names or --all, not both")
    names = list(references) if args.all else args.targets
    if not names:
        raise GradcheckError("nothing to check: name a reference net (see 'gradcheck list') "
                             "or use --all")
    unknown = [n for n in names if n not in references]
    if unknown:
        raise GradcheckError(f"unknown reference net(s) {', '.join(unknown)}; "
                             f"known: {', '.join(references)}")
    max_rows = None if args.full else 10
    outcome = []
    for name in names:
        ref = references[name]
        problem = ref.build()
        report = check(problem.loss, problem.grad, problem.params, richardson=args.richardson)
        expected = "pass" if ref.expect_pass else "fail"
        got = "pass" if report.passed else "fail"
        failed = ", ".join(report.failed_params)
        if got == "fail" and ref.bug_params and set(report.failed_params) != ref.bug_params:
            got = f"fail at {failed}, declared at {', '.join(sorted(ref.bug_params))}"
        print(f"== {name}: {ref.description}")
        where = f" at {failed}" if got == "fail" else ""
        print(f"   declared to {expected}; it did {got}{where}"
              + ("" if expected == got else "  <-- MISMATCH"))
        print(report.to_text(max_rows=max_rows))
        if args.out:
            write_reports(report, name, args.out, max_rows)
        outcome.append((name, expected, got, report))
    if args.all:
        mismatched = [n for n, e, g, _ in outcome if e != g]
        print(f"{len(outcome) - len(mismatched)} of {len(outcome)} reference nets behaved as "
              "declared" + (f"; not: {', '.join(mismatched)}" if mismatched else ""))
        if args.out:
            write_index(outcome, args.out)
        return EXIT_MISMATCH if mismatched else EXIT_OK
    return EXIT_OK if all(r.passed for *_, r in outcome) else EXIT_MISMATCH


def write_index(outcome, out: Path) -> None:
    lines = ["# Reference nets", "", "| net | declared | verdict | as declared | report |",
             "|---|---|---|---|---|"]
    for name, expected, got, _ in outcome:
        lines.append(f"| {name} | {expected} | {got} | {'yes' if expected == got else 'NO'} "
                     f"| [{name}.md]({name}.md) |")
    (out / "index.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        references = load_references()
        if args.command == "list":
            return cmd_list(references)
        return cmd_check(args, references)
    except GradcheckError as exc:
        if args.debug:
            raise
        print(f"gradcheck: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
