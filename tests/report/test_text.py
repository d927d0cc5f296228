"""Rendering, tested with exact expected strings."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from gradcheck import check
from gradcheck.core.compare import ParamResult
from gradcheck.fast.probe import ProbeSummary
from gradcheck.report.model import Report
from gradcheck.report.text import (
    SCALE_CAPTION,
    fast_lines,
    fmt_error,
    render_text,
    summary_rows,
    visible,
)

# --- from test_render.py ----------------------------------------


def small_report():
    params = {"w": np.array([1.0, -2.0])}
    return check(
        lambda p: float(np.sum(p["w"] ** 2)), lambda p: {"w": np.array([2.0, 4.0])}, params
    )


def test_text_table_exact():
    report = small_report()
    text = report.to_text()
    lines = text.splitlines()
    assert lines[0] == (
        f"gradcheck FAILED: 1 of 1 parameters with wrong partials, loss 5, "
        f"{report.evaluations} loss evaluations"
    )
    assert "Elements (failing first):" in lines
    start = lines.index("Elements (failing first):")
    assert lines[start + 3].split() == [
        "X",
        "w[1]",
        "+4",
        "-4",
        "8.0e+00",
        "2.0e+00",
        fmt_error(float(report["w"].tolerance[1])),
        "wrong",
    ]
    assert lines[start + 4].split() == [
        "w[0]",
        "+2",
        "+2",
        "0.0e+00",
        "0.0e+00",
        fmt_error(float(report["w"].tolerance[0])),
        "ok",
    ]
    assert re.fullmatch(r"\d\.\de-\d\d", fmt_error(float(report["w"].tolerance[1])))


def test_markdown_uses_github_tables():
    md = small_report().to_markdown()
    assert "### Parameters" in md
    assert "| X  | w       | (2,)    | (2,)         | wrong    | 1/2     |" in md


# --- from test_render_fast.py ----------------------------------------

LEGEND = (
    "probed: covered by a passing random-direction probe, not measured on its own: a "
    "subset's errors K times the probe's tolerance pass it with probability below 1.6/K; "
    "unchecked: not examined"
)


def result(name, statuses, probe, numeric=None):
    n = len(statuses)
    nan = np.full(n, np.nan)
    numeric = nan.copy() if numeric is None else np.array(numeric, dtype=float)
    analytic = np.arange(1.0, n + 1)
    abs_err = np.abs(analytic - numeric)
    return ParamResult(
        name=name,
        shape=(n,),
        dtype="float64",
        grad_shape=(n,),
        analytic=analytic,
        numeric=numeric,
        fd_error=nan.copy(),
        tolerance=np.where(np.isnan(numeric), nan, 1e-8),
        abs_err=abs_err,
        rel_err=abs_err / analytic,
        statuses=np.array(statuses, dtype="<U14"),
        step=nan.copy(),
        forward=nan.copy(),
        backward=nan.copy(),
        kink=np.zeros(n, bool),
        refined=np.zeros(n, bool),
        raw_grad=analytic,
        probe=probe,
    )


def probe_dict(analytic, numeric, tolerance, passed):
    return {
        "analytic": analytic,
        "numeric": numeric,
        "tolerance": tolerance,
        "passed": passed,
        "step": 1e-5,
        "size": 4,
    }


def test_fast_section_lines():
    passing = ProbeSummary(probes=[probe_dict(1.5, 1.5, 2e-8, True)])
    failing = ProbeSummary(
        probes=[probe_dict(2.0, 1.0, 2e-8, False)],
        localization_evaluations=18,
        localization_probes=4,
        located=[2],
        proven_wrong=[2],
        measured=1,
    )
    report = Report(
        params=[
            result("a", ["probed"] * 4, passing),
            result(
                "b",
                ["probed", "probed", "wrong", "probed"],
                failing,
                numeric=[np.nan, np.nan, 2.0, np.nan],
            ),
        ],
        evaluations=40,
        loss=0.5,
        options={"mode": "fast"},
    )
    assert fast_lines(report) == [
        "a: 1 random-direction probe(s): passed (analytic +1.5, numeric +1.5, tolerance "
        "2.0e-08); 4 probed",
        "b: 1 random-direction probe(s): FAILED (analytic +2, numeric +1, tolerance 2.0e-08); "
        "localization: 18 evaluations, 4 subset probes, 1 element(s) measured one by one, 1 "
        "proven wrong: b[2]; 3 probed",
        LEGEND,
    ]
    assert report.passed is False
    assert report.failed_params == ["b"]
    text = render_text(report)
    assert "gradcheck FAILED: 1 of 2 parameters with wrong partials" in text
    assert "X   b[2]       +3          +2         1.0e+00    3.3e-01    1.0e-08      wrong" in text
    assert "~   a[0]       +1          -          -          -          -            probed" in text


def test_unresolved_probe_fails_the_tensor_with_no_element_wrong():
    summary = ProbeSummary(
        probes=[probe_dict(2.0, 1.0, 2e-8, False)], unresolved=True, fallback="too many", measured=0
    )
    p = result("w", ["unchecked"] * 4, summary)
    report = Report(params=[p], evaluations=20, loss=0.5)
    assert p.status == "wrong"
    assert p.n_wrong == 0
    assert not report.passed
    assert (
        "the tensor is wrong but not every wrong element was found (too many)"
        in (fast_lines(report)[0])
    )


def test_unchecked_and_probed_alone_do_not_fail():
    report = Report(
        params=[
            result(
                "w",
                ["unchecked", "probed", "probed", "unchecked"],
                ProbeSummary(probes=[probe_dict(1.0, 1.0, 1e-8, True)]),
            )
        ],
        evaluations=14,
        loss=0.5,
    )
    assert report.passed
    assert report["w"].status == "unchecked"
    assert [e.status for e in report.entries] == ["unchecked", "probed", "probed", "unchecked"]


# issue 12.18: names and messages from user code are shown, never obeyed, in every format
HOSTILE = "w\x1b[2J|x\n# forged\u202e\x07\r\u2066\t"
RAW_CONTROL = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069]"
)


def hostile_report():
    return check(
        lambda p: float(np.sum(p[HOSTILE] ** 2)),
        lambda p: {HOSTILE: 3 * p[HOSTILE]},
        {HOSTILE: np.array([1.0, -2.0])},
    )


def test_visible_escapes_controls_bidi_and_newlines():
    assert visible(HOSTILE) == "w\\x1b[2J|x\\n# forged\\u202e\\x07\\r\\u2066\\t"
    assert visible(HOSTILE, markdown=True) == "w\\x1b[2J\\|x\\n# forged\\u202e\\x07\\r\\u2066\\t"
    assert visible("caf\u00e9 \u03b8 dL/dW[0, 1]") == "caf\u00e9 \u03b8 dL/dW[0, 1]"


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_hostile_names_are_escaped_in_every_rendering(fmt):
    report = hostile_report()
    out = {
        "text": report.to_text,
        "markdown": report.to_markdown,
        "html": lambda: report.to_html(title=HOSTILE),
    }[fmt]()
    assert not RAW_CONTROL.search(out)
    assert "w\\x1b[2J" in out
    assert not any(line.startswith("# forged") for line in out.splitlines())
    if fmt == "markdown":  # a | in a name stays inside its cell: one column count per table
        tables = re.split(r"\n(?!\|)[^\n]*", out)
        widths = [
            {len(re.split(r"(?<!\\)\|", row)) for row in table.splitlines() if row.startswith("|")}
            for table in tables
        ]
        assert [len(w) for w in widths if w] == [1, 1]


def test_hostile_names_survive_json_exactly():
    text = hostile_report().to_json()
    assert text.isascii()  # controls and bidi characters as \u escapes
    assert json.loads(text)["params"][0]["name"] == HOSTILE


def test_a_passing_partial_near_zero_reads_small_against_its_tensor_scale():
    """w[1] has a partial of 2e-11 known to rounding: its elementwise rel err is large, but
    against the tensor's scale its error is rounding, and the column says so."""
    params = {"w": np.array([1.0, 1e-11, -0.5])}
    report = check(lambda p: float(np.sum(p["w"] ** 2) + 1.0), lambda p: {"w": 2 * p["w"]}, params)
    assert report.passed
    [row] = summary_rows(report)
    assert float(row[7]) > 1e-4  # max rel err: alarming on its own
    assert float(row[8]) < 1e-8  # err / scale
    text = report.to_text()
    assert "err / scale" in text
    assert SCALE_CAPTION in text
    assert report.to_dict()["params"][0]["max_scaled_err"] == pytest.approx(float(row[8]), rel=0.1)
