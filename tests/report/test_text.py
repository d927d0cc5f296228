"""Rendering, tested with exact expected strings."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest

from gradcheck import check, check_problem
from gradcheck.core.compare import ParamResult, status_codes
from gradcheck.fast.probe import ProbeSummary
from gradcheck.protocol import load_references
from gradcheck.report.model import Report
from gradcheck.report.text import (
    SCALE_CAPTION,
    fast_lines,
    fmt_error,
    render_text,
    summary_rows,
    visible,
)
from tests.helpers.toy import two_layer_net

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
        # the rounding of a central difference of a quadratic (0, or 6e-13 at the pilot's step)
        fmt_error(float(report["w"].abs_err[0])),
        fmt_error(float(report["w"].rel_err[0])),
        fmt_error(float(report["w"].tolerance[0])),
        "ok",
    ]
    assert re.fullmatch(r"\d\.\de-\d\d", fmt_error(float(report["w"].tolerance[1])))
    assert report["w"].abs_err[0] <= 1e-12


def test_markdown_uses_github_tables():
    md = small_report().to_markdown()
    assert "### Parameters" in md
    assert "| X  | w       | (2,)    | (2,)         | wrong    | 1/2     |" in md


# --- from test_render_fast.py ----------------------------------------

LEGEND = (
    "probed: not measured on its own, covered by the passing probes: errors whose "
    "||e * max(1, |x|)|| exceeds the sensitivity pass them all with at most the probability "
    "stated; unchecked: not examined"
)


def fast_result(name, size, wrong, probe):
    """A fast-mode result: only the elements in ``wrong`` measured (analytic k + 1, numeric
    k), the others probed."""
    elements = np.array(sorted(wrong), dtype=np.intp)
    analytic = elements + 1.0
    numeric = elements.astype(float)
    abs_err = np.abs(analytic - numeric)
    nan = np.full(elements.size, np.nan)
    return ParamResult(
        name=name,
        shape=(size,),
        dtype="float64",
        grad_shape=(size,),
        analytic=analytic,
        numeric=numeric,
        fd_error=nan.copy(),
        tolerance=np.full(elements.size, 1e-8),
        abs_err=abs_err,
        rel_err=abs_err / analytic,
        codes=status_codes(["wrong"] * elements.size),
        step=nan.copy(),
        forward=nan.copy(),
        backward=nan.copy(),
        kink=np.zeros(elements.size, bool),
        refined=np.zeros(elements.size, bool),
        raw_grad=np.arange(1.0, size + 1),
        probe=probe,
        elements=elements,
        unmeasured={"probed": size - elements.size},
    )


def probe_dict(discrepancy, tolerance, passed):
    return {"discrepancy": discrepancy, "tolerance": tolerance, "passed": passed, "step": 1e-5}


SENSITIVITY = {"abs": 2e-6, "relative": 1e-3, "miss": 0.05, "probes": 1}


def test_fast_section_lines():
    passing = ProbeSummary(probes=(probe_dict(0.0, 2e-8, True),), sensitivity=SENSITIVITY)
    failing = ProbeSummary(
        probes=(probe_dict(1.0, 2e-8, False),),
        localization_evaluations=18,
        localization_probes=4,
        decoded=(2,),
        proven_wrong=(2,),
        measured=1,
    )
    report = Report(
        params=[fast_result("a", 4, [], passing), fast_result("b", 4, [2], failing)],
        evaluations=40,
        loss=0.5,
        options={"mode": "fast", "mode_reason": "fast mode: 12 planned evaluations"},
    )
    assert fast_lines(report) == [
        "a: 1 of 1 random-direction probe(s) passed (sensitivity 2.0e-06 absolute, 1.0e-03 of "
        "the median partial, missed with probability <= 0.05); 4 probed",
        "b: 0 of 1 random-direction probe(s) passed; localization: 18 evaluations, 4 probes, 1 "
        "element(s) measured one by one, 1 proven wrong: b[2]; 3 probed",
        LEGEND,
        "fast mode: 12 planned evaluations",
    ]
    assert report.passed is False
    assert report.failed_params == ["b"]
    text = render_text(report)
    assert "gradcheck FAILED: 1 of 2 parameters with wrong partials" in text
    assert "X   b[2]       +3          +2         1.0e+00    3.3e-01    1.0e-08      wrong" in text
    assert "a[" not in text.split("Elements")[1]  # only measured elements are listed


def test_unresolved_probe_fails_the_tensor_with_no_element_wrong():
    summary = ProbeSummary(
        probes=(probe_dict(1.0, 2e-8, False),), unresolved=True, fallback="too many", measured=0
    )
    p = replace(fast_result("w", 4, [], summary), unmeasured={"unchecked": 4})
    report = Report(params=[p], evaluations=20, loss=0.5)
    assert p.status == "wrong"
    assert p.n_wrong == 0
    assert not report.passed
    assert (
        "the tensor is wrong but not every wrong element was found (too many)"
        in (fast_lines(report)[0])
    )


def test_unchecked_and_probed_alone_do_not_fail():
    summary = ProbeSummary(probes=(probe_dict(0.0, 1e-8, True),))
    p = replace(fast_result("w", 4, [], summary), unmeasured={"unchecked": 2, "probed": 2})
    report = Report(params=[p], evaluations=14, loss=0.5)
    assert report.passed
    assert report["w"].status == "unchecked"
    assert p.counts() == {"unchecked": 2, "probed": 2}
    assert report.entries == []  # nothing measured one by one: no per-element entries


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


def test_the_headline_says_which_passing_parameters_this_precision_cannot_resolve():
    # a float32 ReLU net at CS231n init: partials ~1e-5 under a loss of 2.3, whose float32
    # rounding makes the smallest error each check could see ~100x the partials. "PASSED"
    # alone would read as a verdict on them; the headline names them
    loss, grad, params = two_layer_net(seed=1, inputs=100, dtype=np.float32)
    report = check(loss, grad, params)
    first = report.to_text().splitlines()[0]
    assert report.passed
    assert "3 not resolved at this precision (W1, b1, W2:" in first
    for name in ("W1", "b1", "W2"):
        median, _ = report[name].sensitivity_summary()
        assert median > 1.0
    # the same net in float64 resolves every partial: nothing to say
    loss, grad, params = two_layer_net(seed=1, inputs=100)
    assert "not resolved" not in check(loss, grad, params).to_text().splitlines()[0]
    # nor do elements at kinks, whose tolerance spans their one-sided slopes: they are
    # `uncertain`, and the headline counts them as such
    at_kinks = check_problem(load_references()["zoo-relu-at-kinks"].build())
    first = at_kinks.to_text().splitlines()[0]
    assert at_kinks.passed
    assert "elements at kinks (uncertain)" in first
    assert "not resolved" not in first
    assert at_kinks["x"].sensitivity_summary()[0] > 1.0  # all elements: the kinks' spans
