"""Text and Markdown renderings of a :class:`~gradcheck.report.model.Report` (pure functions)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from tabulate import tabulate

from gradcheck.core.compare import FAILING, ParamResult
from gradcheck.diagnosis.nodes import summarize

if TYPE_CHECKING:  # the model renders itself through this module, so it imports it
    from gradcheck.report.model import Report

MARK = {
    "ok": "",
    "uncertain": "?",
    "wrong": "X",
    "nonfinite": "X",
    "shape_mismatch": "X",
    "no_gradient": "X",
    "probed": "~",
    "unchecked": ".",
}


# C0 and C1 controls, DEL, and the invisible format characters that reorder or hide text:
# bidi embeddings and overrides (U+202A-202E), isolates (U+2066-2069), marks (U+200E-200F,
# U+061C), zero-width characters (U+200B-200D, U+2060, U+FEFF) and line/paragraph separators.
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if char in named:
        return named[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, markdown: bool = False) -> str:
    """``text`` on one line with every control or invisible character shown as its escape
    (ESC as ``\\x1b``, a newline as ``\\n``, a bidi override as ``\\u202e``), so that a
    name or message from user code cannot move the cursor, recolour the terminal, reorder what
    is shown or start a line of its own; with ``markdown``, ``|`` is escaped too so that it
    stays inside its table cell."""
    text = _INVISIBLE.sub(_escape, str(text))
    return text.replace("|", "\\|") if markdown else text


def scaled_error(p: ParamResult) -> float | None:
    """The largest ``|analytic - numeric|`` relative to the tensor's scale (its largest
    ``|numeric|``): unlike the elementwise relative error, a partial near 0 that is off by
    rounding reads as small, as it is."""
    err, numeric = p.abs_err, p.numeric
    finite_err = err[np.isfinite(err)]
    finite_num = numeric[np.isfinite(numeric)]
    if not finite_err.size:
        return None
    scale = float(np.abs(finite_num).max(initial=0.0))
    worst = float(finite_err.max())
    if scale == 0:
        return None if worst == 0 else float("inf")
    return worst / scale


def fmt_value(value: float | None) -> str:
    """Partials: 6 significant digits, signed, so a flipped sign stands out."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return f"{value:+.6g}"


def fmt_error(value: float | None) -> str:
    """Errors: 2 significant digits in scientific notation."""
    if value is None or np.isnan(value):
        return "-"
    return f"{value:.1e}"


def fmt_shape(shape: tuple[int, ...] | None) -> str:
    if shape is None:
        return "none"
    return (
        "()" if not shape else "(" + ", ".join(map(str, shape)) + (",)" if len(shape) == 1 else ")")
    )


def headline(report: Report) -> str:
    """One line: the verdict, how many parameters failed, the cost."""
    n = len(report.params)
    failed = report.failed_params
    uncertain = sum(p.count("uncertain") for p in report.params)
    verdict = "PASSED" if report.passed else "FAILED"
    parts = [f"gradcheck {verdict}: {len(failed)} of {n} parameters with wrong partials"]
    blind = unresolved_params(report)
    if blind:
        names = ", ".join(blind[:3]) + (", ..." if len(blind) > 3 else "")
        where = "Fast mode" if any(report[name].probe is not None for name in blind) else "Notes"
        parts.append(
            f"{len(blind)} not resolved at this precision ({names}: the smallest error their "
            f"check could see is larger than their partials; see {where})"
        )
    if uncertain:
        parts.append(f"{uncertain} elements at kinks (uncertain)")
    if report.subject == "loss":
        parts.append(f"loss {report.loss:.6g}, {report.evaluations} loss evaluations")
    else:
        parts.append(
            f"{report.subject} checked through a scalar ({report.loss:.6g} at x), "
            f"{report.evaluations} evaluations"
        )
    return ", ".join(parts)


def unresolved_params(report: Report) -> list[str]:
    """Passing parameters whose check could not have seen an error as large as their partials
    (median smallest detectable relative error above 1: a float32 loss of weights at 1e-4, a
    loss whose noise swamps them; in fast mode, the probes' sensitivity to one element at the
    median partial above 1: a loss exactly 0, whose resolution there dwarfs its partials).
    Their "ok" says nothing; the headline says so."""
    out = []
    for p in report.params:
        if p.failed:
            continue
        summary = p.sensitivity_summary(smooth=True)
        relative = p.probe.sensitivity.get("relative") if p.probe is not None else None
        if (summary is not None and summary[0] > 1.0) or (relative is not None and relative > 1.0):
            out.append(p.name)
    return out


def summary_rows(report: Report) -> list[list[str]]:
    rows = []
    for p in report.params:
        rows.append(
            [
                MARK[p.status],
                p.name,
                fmt_shape(p.shape),
                fmt_shape(p.grad_shape),
                p.status,
                f"{p.n_wrong}/{p.size}",
                fmt_error(p.max_abs_err),
                fmt_error(p.max_rel_err),
                fmt_error(scaled_error(p)),
                p.label(p.worst) if p.codes.size else "-",
            ]
        )
    return rows


SUMMARY_HEADERS = [
    "",
    "param",
    "shape",
    "grad shape",
    "status",
    "wrong",
    "max abs err",
    "max rel err",
    "err / scale",
    "worst",
]
ELEMENT_HEADERS = [
    "",
    "element",
    "analytic",
    "numeric",
    "abs err",
    "rel err",
    "tolerance",
    "status",
]


def element_order(p: ParamResult) -> np.ndarray:
    """Positions in the per-element arrays: failing elements first (most significant first),
    then uncertain, then the rest (measured elements only)."""
    statuses = p.statuses
    failing = np.isin(statuses, list(FAILING))
    rank = np.where(failing, 0, np.where(statuses == "uncertain", 1, 2))
    return np.lexsort((-p.significance, rank))


def element_rows(report: Report, max_rows: int | None) -> tuple[list[list[str]], list[str]]:
    """Rows of the element table, wrong first across all parameters, and omission notes."""
    rows: list[tuple[int, float, list[str]]] = []
    omitted = []
    for p in report.params:
        order = element_order(p)
        statuses = p.statuses
        indices = p.indices
        shown = order if max_rows is None else order[:max_rows]
        if max_rows is not None and order.size > max_rows:
            hidden = order[max_rows:]
            hidden_bad = int(np.isin(statuses[hidden], list(FAILING)).sum())
            omitted.append(
                f"{p.name}: {len(hidden)} more elements not shown ({hidden_bad} failing); "
                "show all with max_rows=None (--full)"
            )
        for k in shown:
            status = str(statuses[k])
            analytic = None if p.analytic is None else float(p.analytic[k])
            rank = 0 if status in FAILING else (1 if status == "uncertain" else 2)
            rows.append(
                (
                    rank,
                    -float(p.significance[k]),
                    [
                        MARK[status],
                        p.label(int(indices[k])),
                        fmt_value(analytic),
                        fmt_value(float(p.numeric[k])),
                        fmt_error(float(p.abs_err[k])),
                        fmt_error(float(p.rel_err[k])),
                        fmt_error(float(p.tolerance[k])),
                        status,
                    ],
                )
            )
    # stable sort: failing first, parameters keep their order within a rank
    rows.sort(key=lambda r: r[0])
    return [r[2] for r in rows], omitted


def notes(report: Report) -> list[str]:
    out = [
        f"{name}: the gradient function returned it, but it is not a parameter"
        for name in report.extra_gradients
    ]
    return out + list(report.notes) + sensitivity_lines(report)


def sensitivity_lines(report: Report) -> list[str]:
    """The measured noise and what the check could see: per parameter, the median and worst
    smallest detectable relative error over its partials >= 1% of its largest."""
    parts = [
        f"{p.name} {s[0]:.1g}/{s[1]:.1g}"
        for p in report.params
        if (s := p.sensitivity_summary()) is not None
    ]
    noise = [p.noise for p in report.params if np.isfinite(p.noise)]
    if not parts:
        return []
    measured = f"loss noise {max(noise):.2g} (measured); " if noise else ""
    return [f"{measured}smallest detectable relative error, median/worst: {', '.join(parts)}"]


def merge_by_message(lines: list[str]) -> list[str]:
    """Fold ``"a: same text"`` and ``"b: same text"`` into ``"a, b: same text"``."""
    merged: dict[str, list[str]] = {}
    for line in lines:
        head, sep, tail = line.partition(": ")
        key = tail if sep and " " not in head.strip() else line
        merged.setdefault(key, []).append(head if key is tail else "")
    out = []
    for tail, heads in merged.items():
        names = [h for h in heads if h]
        out.append(f"{', '.join(names)}: {tail}" if names else tail)
    return out


# The diagnosis section's budget: the story, the whole-gradient line and the top findings; the
# rest are counted (every finding is in the JSON).
DIAGNOSIS_LINES = 12
GROUPS_PER_SAMPLE = 3


def finding_lines(findings) -> list[str]:
    """One line per finding (its meaning after it, where it has one), equal tails merged."""
    return merge_by_message(
        [
            ("group: " if f.kind == "group" else "")
            + f.message
            + (f"; {f.meaning}" if f.meaning else "")
            for f in findings
        ]
    )


def diagnosis_lines(report: Report, budget: int | None = DIAGNOSIS_LINES) -> list[str]:
    """The diagnosis in plain sentences, most explanatory first, within ``budget`` lines:
    the tensor-level story, cosine and descent, then findings by share of the error."""
    d = report.diagnosis
    if d is None:
        return []
    lines = []
    if report.nodes and not report.passed:  # where the declared nodes say the error enters
        lines.append(f"node walk: {summarize(report.nodes)[0]}")
    lines += finding_lines(d.findings[: d.lead])
    if not report.passed and report.subject == "loss":  # a training loss: what a step does
        whole = []
        if d.cosine is not None:
            whole.append(f"cosine(hand-written, numeric gradient) = {d.cosine:+.4f}")
        if d.descent is not None:
            whole.append(str(d.descent["message"]))
        if whole:
            lines.append("; ".join(whole))
    rest = finding_lines(d.findings[d.lead :])
    if budget is not None and len(lines) + len(rest) > budget:
        room = max(budget - len(lines) - 1, 0)
        hidden = len(rest) - room
        more = f"and {hidden} more finding{'s' if hidden > 1 else ''}"
        rest = [*rest[:room], f'{more} (all in the JSON report, "findings")']
    return lines + rest


SCALE_CAPTION = (
    "err / scale: the largest |analytic - numeric| over the tensor's largest |numeric|. A "
    "passing partial near 0 can show a large elementwise rel err; against the tensor's scale "
    "its error is what it is, rounding"
)
# A passing parameter whose elementwise relative error is above this would read as a failure.
ALARMING_REL_ERR = 1e-4


def scale_caption(report: Report) -> str:
    """The caption of the ``err / scale`` column, when a passing parameter needs it."""
    alarming = any(
        not p.failed and (p.max_rel_err or 0.0) > ALARMING_REL_ERR for p in report.params
    )
    return SCALE_CAPTION if alarming else ""


def recheck_lines(report: Report, budget: int = 6) -> list[str]:
    """The float64 re-check: its verdict, its notes and the top of its diagnosis."""
    again = report.recheck
    if again is None:
        return []
    lines = [headline(again)]
    lines += list(again.notes)
    lines += diagnosis_lines(again, budget)
    return lines


NODE_HEADERS = ["", "node", "dL/dnode", "its backward step", "worst element"]


def node_rows(report: Report) -> list[list[str]]:
    rows = []
    for r in reversed(report.nodes):
        worst = r.total.params[0]
        rows.append(
            [
                "X" if not r.right else "",
                r.name,
                "right" if r.right else "wrong",
                ("wrong: error enters here" if r.enters_here else "right")
                + (
                    f" ({r.name} -> {r.next}{', ' + r.step if r.step else ''})"
                    if r.next
                    else " (the loss)"
                ),
                "" if r.right else f"{worst.label(worst.worst)} ({fmt_error(worst.max_rel_err)})",
            ]
        )
    return rows


def sample_lines(report: Report) -> list[str]:
    out = []
    for i, sample in enumerate(report.samples):
        verdict = "passed" if sample.passed else "failed"
        out.append(f"sample {i}: {verdict} ({len(sample.failed_params)} parameters wrong)")
        if sample.diagnosis is not None:
            groups = sample.diagnosis.groups
            out += [f"  group: {g.message}" for g in groups[:GROUPS_PER_SAMPLE]]
            if len(groups) > GROUPS_PER_SAMPLE:
                out.append(f"  and {len(groups) - GROUPS_PER_SAMPLE} more groups (in the JSON)")
        out += [f"  node: {line}" for line in _node_summary(sample)]
    return out


def _node_summary(report: Report) -> list[str]:

    return summarize(report.nodes) if report.nodes else []


def fast_lines(report: Report) -> list[str]:
    """Fast mode, per tensor: its probes, what they prove, and what localization found and
    cost; then which mode ran and why."""
    lines = []
    for p in report.params:
        if p.probe is None:
            continue
        summary = p.probe
        passed = sum(1 for d in summary.probes if d["passed"])
        line = f"{p.name}: {passed} of {len(summary.probes)} random-direction probe(s) passed"
        if summary.joint:
            line += f" (joint over {summary.joint} tensors)"
        sens = summary.sensitivity
        if sens.get("abs") is not None:
            line += (
                f" (sensitivity {fmt_error(sens['abs'])} absolute"
                + (
                    f", {fmt_error(sens['relative'])} of the median partial"
                    if sens.get("relative") is not None
                    else ""
                )
                + f", missed with probability <= {sens['miss']:g})"
            )
        wrong = [p.label(i) for i in summary.proven_wrong]
        shown = ", ".join(wrong[:10]) + (f" and {len(wrong) - 10} more" if len(wrong) > 10 else "")
        if summary.kinked:
            line += (
                f"; a failing probe crossed a kink (the loss is not differentiable along it): "
                f"all {summary.measured} elements measured one by one (the full check's "
                f"verdict), {len(wrong)} wrong" + (f": {shown}" if wrong else "")
            )
        elif summary.failed:
            line += (
                f"; localization: {summary.localization_evaluations} evaluations, "
                f"{summary.localization_probes} probes, {summary.measured} "
                f"element(s) measured one by one, {len(wrong)} proven wrong"
                + (f": {shown}" if wrong else "")
            )
            if summary.unresolved:
                line += (
                    "; the tensor is wrong but not every wrong element was found "
                    f"({summary.fallback})"
                )
        counts = [f"{p.count(s)} {s}" for s in ("probed", "unchecked") if p.count(s)]
        if counts:
            line += "; " + ", ".join(counts)
        lines.append(line)
    if lines:
        lines.append(
            "probed: not measured on its own, covered by the passing probes: errors whose "
            "||e * max(1, |x|)|| exceeds the sensitivity pass them all with at most the "
            "probability stated; unchecked: not examined"
        )
    reason = report.options.get("mode_reason")
    if reason:
        lines.append(str(reason))
    return lines


def _render(report: Report, max_rows: int | None, fmt: str, section: Callable[[str], str]) -> str:
    markdown = fmt == "github"

    def line(text: str) -> str:  # names and messages come from user code: one visible line
        return visible(text, markdown=markdown)

    def table(rows: list[list[str]], headers: list[str]) -> str:
        cells = [[line(cell) for cell in row] for row in rows]
        return tabulate(cells, headers, tablefmt=fmt, disable_numparse=True)

    out = [headline(report), ""]
    found = diagnosis_lines(report)
    if found:
        out += [section("Diagnosis")] + [f"- {line(text)}" for text in found] + [""]
    if report.nodes:
        out += (
            [
                section("Nodes (walking back from the loss)"),
                table(node_rows(report), NODE_HEADERS),
                "",
            ]
            + [f"- {line(text)}" for text in _node_summary(report)]
            + [""]
        )
    if report.samples:
        out += [section("Per sample")] + [
            f"- {line(text)}" if not text.startswith("  ") else f"  - {line(text.strip())}"
            for text in sample_lines(report)
        ]
        out += [""]
    recheck = recheck_lines(report)
    if recheck:
        out += [section("float64 re-check")] + [f"- {line(text)}" for text in recheck] + [""]
    out += [
        section("Parameters"),
        table(summary_rows(report), SUMMARY_HEADERS),
        "",
    ]
    scale = scale_caption(report)
    if scale:
        out += [scale, ""]
    fast = fast_lines(report)
    if fast:
        out += [section("Fast mode")] + [f"- {line(text)}" for text in fast] + [""]
    extra = notes(report)
    if extra:
        out += [section("Notes")] + [f"- {line(n)}" for n in extra] + [""]
    rows, omitted = element_rows(report, max_rows)
    out += [
        section("Elements (failing first)"),
        table(rows, ELEMENT_HEADERS),
    ]
    if omitted:
        out += [""] + [f"- {line(o)}" for o in omitted]
    return "\n".join(out).rstrip() + "\n"


def render_text(report: Report, max_rows: int | None = 10) -> str:
    """The plain-text diff table ``print(report)`` shows."""
    return _render(report, max_rows, "simple", lambda title: f"{title}:")


def render_markdown(report: Report, max_rows: int | None = 10) -> str:
    """The report as GitHub-flavoured Markdown, fit for an issue or a pull request."""
    return _render(report, max_rows, "github", lambda title: f"### {title}")
