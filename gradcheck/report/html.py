"""A self-contained HTML rendering of a :class:`~gradcheck.report.model.Report` (a pure function).

One file, no network: inline CSS, no scripts, heatmaps as HTML tables. On top the verdict and
the diagnosis; then the per-parameter table; then, for every matrix and vector parameter (and
all scalar parameters together), a heatmap of the relative error on a log scale, so that a
transposed gradient (everything off the diagonal hot) or one wrong row stands out at a glance;
last the element table, failing elements first.
"""

from __future__ import annotations

import math
from html import escape as escape_markup
from typing import TYPE_CHECKING

import numpy as np

from gradcheck.core.compare import FAILING, ParamResult
from gradcheck.diagnosis.nodes import summarize
from gradcheck.report.text import (
    ELEMENT_HEADERS,
    NODE_HEADERS,
    SUMMARY_HEADERS,
    diagnosis_lines,
    element_rows,
    fast_lines,
    fmt_error,
    fmt_shape,
    fmt_value,
    headline,
    node_rows,
    notes,
    recheck_lines,
    sample_lines,
    scale_caption,
    summary_rows,
    visible,
)

if TYPE_CHECKING:  # the model renders itself through this module, so it imports it
    from gradcheck.report.model import Report

# One colour per decade of relative error: bin k holds [1e(k-12), 1e(k-11)), bin 0 everything
# below 1e-11 (and exact agreement), bin 12 everything from 1 up. Cool colours sit below 1e-7,
# where float64 partials agree; warm ones above, darker the further off.
COLORS = (
    "#f7fbff",
    "#eef5fc",
    "#e3eef9",
    "#d6e6f4",
    "#c6dbef",
    "#ffeda0",
    "#fed976",
    "#feb24c",
    "#fd8d3c",
    "#fc4e2a",
    "#e31a1c",
    "#bd0026",
    "#800026",
)
DARK_FROM = 10  # bins from here on get white text
MAX_CELLS = 64  # per axis; larger tensors are shown as block maxima
CELL_PX = (10, 32)  # smallest and largest cell size

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;
max-width:72em;padding:0 1em;color:#1b1f23}
h1{font-size:1.5em;margin:0 0 .3em}h2{font-size:1.2em;margin:1.6em 0 .5em;
border-bottom:1px solid #d0d7de;padding-bottom:.2em}h3{font-size:1em;margin:1.2em 0 .3em}
.verdict{padding:.6em .9em;border-radius:6px;font-weight:600}
.pass{background:#dafbe1;border:1px solid #4ac26b}.fail{background:#ffebe9;border:1px solid #ff8182}
table.grid{border-collapse:collapse;font:12px/1.3 ui-monospace,SFMono-Regular,Menlo,monospace}
table.grid th,table.grid td{border:1px solid #d0d7de;padding:2px 7px;text-align:right}
table.grid th{background:#f6f8fa}table.grid .name{text-align:left}
tr.bad td{background:#fff5f5}tr.bad td.mark{color:#cf222e;font-weight:700}
table.heat{border-collapse:collapse;font:10px ui-monospace,monospace}
table.heat td.c{width:var(--cell);height:var(--cell);min-width:var(--cell);padding:0;
text-align:center;border:1px solid #fff;font-weight:700}
table.heat th{font-weight:400;color:#57606a;padding:0 3px}
td.na{background:repeating-linear-gradient(45deg,#eee,#eee 3px,#ccc 3px,#ccc 6px)}
td.dark{color:#fff}.legend td{min-width:3.2em;height:1.3em;text-align:center;white-space:nowrap;
font:10px ui-monospace,monospace;border:1px solid #fff}
.caption{color:#57606a;font-size:.9em;margin:.2em 0 .6em}
.maps{display:flex;flex-wrap:wrap;gap:1.5em 3em;align-items:flex-start}
footer{margin-top:2em;color:#57606a;font-size:.85em}
"""


def escape(text: str) -> str:
    """HTML-escaped, with control and invisible characters (ESC, CR, bidi overrides) from
    names and messages shown as their escapes, as in the text report."""
    return escape_markup(visible(text))


def heat_bin(rel_err: float) -> int | None:
    """The colour bin of a relative error (one per decade), ``None`` when there is none."""
    if rel_err is None or math.isnan(rel_err):
        return None
    if rel_err <= 0:
        return 0
    if math.isinf(rel_err):
        return len(COLORS) - 1
    return int(min(max(math.floor(math.log10(rel_err)) + 12, 0), len(COLORS) - 1))


def bin_label(k: int) -> str:
    """Legend text for bin ``k``: its lower edge."""
    if k == 0:
        return "&lt;1e-11"
    if k == len(COLORS) - 1:
        return "&ge;1"
    return f"1e{k - 12}"


def _cell(rel_err: float, failing: bool, uncertain: bool, title: str) -> str:
    k = heat_bin(rel_err)
    mark = "X" if failing else ("?" if uncertain else "")
    if k is None:
        return f'<td class="c na" title="{escape(title)}">{mark}</td>'
    dark = " dark" if k >= DARK_FROM else ""
    return f'<td class="c{dark}" style="background:{COLORS[k]}" title="{escape(title)}">{mark}</td>'


def _grid(p: ParamResult) -> np.ndarray:
    """Flat indices of ``p`` laid out as rows x columns (scalar: 1x1, vector: one row)."""
    flat = np.arange(p.size)
    if len(p.shape) < 2:
        return flat.reshape(1, -1)
    return flat.reshape(p.shape[0], -1)


def _blocks(n: int) -> list[range]:
    size = -(-n // MAX_CELLS)
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


def heatmap(p: ParamResult) -> str:
    """The relative-error heatmap of one parameter, as an HTML table.

    Beyond :data:`MAX_CELLS` rows or columns, each cell is the worst of a block of elements.
    """
    grid = _grid(p)
    rows, cols = _blocks(grid.shape[0]), _blocks(grid.shape[1])
    failing = np.isin(p.statuses, list(FAILING))
    uncertain = p.statuses == "uncertain"
    px = int(min(max(640 // max(len(cols), 1), CELL_PX[0]), CELL_PX[1]))
    every = 1 if len(cols) <= 16 else 5
    head = "".join(f"<th>{c.start if i % every == 0 else ''}</th>" for i, c in enumerate(cols))
    out = [f'<table class="heat" style="--cell:{px}px"><tr><th></th>{head}</tr>']
    for i, r in enumerate(rows):
        label = r.start if len(rows) <= 16 or i % 5 == 0 else ""
        cells = [f"<th>{label}</th>"]
        for c in cols:
            idx = grid[r.start : r.stop, c.start : c.stop].reshape(-1)
            errs = p.rel_err[idx]
            worst = idx[int(np.argmax(np.where(np.isnan(errs), -1.0, errs)))]
            bad = bool(failing[idx].any())
            worst = idx[int(np.argmax(failing[idx]))] if bad else worst
            rel = float(np.nanmax(errs)) if not np.isnan(errs).all() else float("nan")
            cells.append(_cell(rel, bad, bool(uncertain[idx].any()), _tip(p, int(worst), len(idx))))
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _tip(p: ParamResult, flat: int, block: int) -> str:
    analytic = None if p.analytic is None else float(p.analytic[flat])
    tip = (
        f"{p.label(flat)}: {p.statuses[flat]}, rel err {fmt_error(float(p.rel_err[flat]))}, "
        f"analytic {fmt_value(analytic)}, numeric {fmt_value(float(p.numeric[flat]))}"
    )
    return tip + (f" (worst of {block} elements)" if block > 1 else "")


def scalar_strip(params: list[ParamResult]) -> str:
    """All scalar parameters as one labelled row of heatmap cells."""
    head = "".join(f"<th>{escape(p.name)}</th>" for p in params)
    cells = "".join(
        _cell(float(p.rel_err[0]), p.failed, p.status == "uncertain", _tip(p, 0, 1)) for p in params
    )
    return (
        f'<table class="heat" style="--cell:{CELL_PX[1]}px"><tr>{head}</tr><tr>{cells}</tr></table>'
    )


def legend() -> str:
    """The colour scale, one cell per decade."""
    cells = "".join(
        f'<td style="background:{c}"{" class=dark" if k >= DARK_FROM else ""}>{bin_label(k)}</td>'
        for k, c in enumerate(COLORS)
    )
    return f'<table class="legend"><tr>{cells}</tr></table>'


# Columns holding words, not numbers: left-aligned.
TEXT_COLUMNS = frozenset(
    {
        "param",
        "element",
        "status",
        "worst",
        "node",
        "dL/dnode",
        "its backward step",
        "worst element",
    }
)


def table(headers: list[str], rows: list[list[str]], bad: list[bool]) -> str:
    """A plain HTML table; rows flagged ``bad`` are highlighted. Cells are escaped."""
    kinds = ["mark"] + ["name" if h in TEXT_COLUMNS else "" for h in headers[1:]]
    head = "".join(
        f'<th class="{k}">{escape(h)}</th>' if k == "name" else f"<th>{escape(h)}</th>"
        for k, h in zip(kinds, headers, strict=True)
    )
    body = []
    for row, flag in zip(rows, bad, strict=True):
        cells = [
            f'<td class="{k}">{escape(v)}</td>' if k else f"<td>{escape(v)}</td>"
            for k, v in zip(kinds, row, strict=True)
        ]
        body.append(f"<tr{' class=bad' if flag else ''}>" + "".join(cells) + "</tr>")
    return f'<table class="grid"><tr>{head}</tr>' + "".join(body) + "</table>"


def diagnosis(report: Report) -> str:
    """The diagnosis sentences (:func:`gradcheck.report.text.diagnosis_lines`) as a list; when there
    are none, what failed parameter by parameter."""
    items = diagnosis_lines(report)
    if not items and report.passed:
        items = ["Every hand-written partial matches its finite difference within tolerance."]
    elif not items:
        for p in report.params:
            if p.failed:
                w = p.worst
                k = p.position(w)
                if k is None:  # nothing measured (fast mode, an unresolved tensor)
                    items.append(f"{p.name}: {p.status}, no element measured wrong")
                    continue
                analytic = None if p.analytic is None else float(p.analytic[k])
                items.append(
                    f"{p.name}: {p.n_wrong} of {p.size} element(s) {p.status}; worst "
                    f"{p.label(w)}: analytic {fmt_value(analytic)}, numeric "
                    f"{fmt_value(float(p.numeric[k]))}"
                )
    return "<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>"


def _extra_sections(report: Report) -> list[str]:
    """Node-level and per-sample checks, when the report has them."""
    out = []
    recheck = recheck_lines(report)
    if recheck:
        out.append(f'<section id="recheck"><h2>float64 re-check</h2>{nested(recheck)}</section>')
    if report.nodes:
        rows = node_rows(report)
        out.append(
            '<section id="nodes"><h2>Nodes (walking back from the loss)</h2>'
            + table(NODE_HEADERS, rows, [r[0] == "X" for r in rows])
            + nested(summarize(report.nodes))
            + "</section>"
        )
    if report.samples:
        out.append(
            f'<section id="samples"><h2>Per sample</h2>{nested(sample_lines(report))}</section>'
        )
    fast = fast_lines(report)
    if fast:
        out.append(f'<section id="fast"><h2>Fast mode</h2>{nested(fast)}</section>')
    return out


def nested(lines: list[str]) -> str:
    """Lines as a list; indented lines become a sub-list of the line before them."""
    items: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.startswith("  ") and items:
            items[-1][1].append(line.strip())
        else:
            items.append((line.strip(), []))
    return (
        "<ul>"
        + "".join(
            f"<li>{escape(head)}"
            + (
                "<ul>" + "".join(f"<li>{escape(c)}</li>" for c in children) + "</ul>"
                if children
                else ""
            )
            + "</li>"
            for head, children in items
        )
        + "</ul>"
    )


def render_html(report: Report, title: str = "gradcheck report", max_rows: int | None = 10) -> str:
    """The whole report as one HTML document (UTF-8, no external resources)."""
    verdict = "pass" if report.passed else "fail"
    summary = summary_rows(report)
    rows, omitted = element_rows(report, max_rows)
    remarks = notes(report) + omitted
    # heatmaps of fully measured parameters only (fast mode measures a few elements)
    scalars = [p for p in report.params if p.shape == () and p.elements is None]
    tensors = [p for p in report.params if p.shape != () and p.elements is None]
    maps = []
    if scalars:
        maps.append(f"<div><h3>scalar parameters</h3>{scalar_strip(scalars)}</div>")
    for p in tensors:
        grid = _grid(p).shape
        reshaped = "" if len(p.shape) <= 2 else f", shown as {grid[0]} x {grid[1]}"
        block = "" if max(grid) <= MAX_CELLS else ", each cell the worst of a block"
        maps.append(
            f"<div><h3>{escape(p.name)} {fmt_shape(p.shape)}{reshaped}{block}</h3>"
            f"{heatmap(p)}</div>"
        )
    options = ", ".join(f"{k}={v}" for k, v in report.options.items())
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="verdict {verdict}">{escape(headline(report))}</p>',
        f'<section id="diagnosis"><h2>Diagnosis</h2>{diagnosis(report)}</section>',
        *_extra_sections(report),
        '<section id="parameters"><h2>Parameters</h2>',
        table(SUMMARY_HEADERS, summary, [p.failed for p in report.params]),
        f'<p class="caption">{escape(scale_caption(report))}</p>' if scale_caption(report) else "",
        "</section>",
    ]
    if remarks:
        parts.append(
            '<section id="notes"><h2>Notes</h2><ul>'
            + "".join(f"<li>{escape(n)}</li>" for n in remarks)
            + "</ul></section>"
        )
    parts += [
        '<section id="heatmaps"><h2>Relative error, |analytic - numeric| / max(|analytic|, '
        "|numeric|)</h2>",
        legend(),
        '<p class="caption">X: failing element; ?: kink (uncertain); hatched: no usable '
        "hand-written value. A cell without a mark passed: a large relative error on a "
        "partial near 0 can still be within the finite-difference error. Hover a cell for "
        "its values.</p>",
        f'<div class="maps">{"".join(maps)}</div></section>',
        '<section id="elements"><h2>Elements (failing first)</h2>',
        table(ELEMENT_HEADERS, rows, [r[-1] in FAILING for r in rows]),
        "</section>",
        f"<footer>{report.evaluations} {'loss ' if report.subject == 'loss' else ''}evaluations; "
        f"{escape(options)}</footer>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
