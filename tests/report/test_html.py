"""The HTML report, tested with exact expected strings on small hand-built results."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradcheck import check
from gradcheck.core.compare import ParamResult, status_codes
from gradcheck.core.numerics import relative_error
from gradcheck.report.html import (
    COLORS,
    bin_label,
    heat_bin,
    heatmap,
    legend,
    render_html,
    scalar_strip,
)
from gradcheck.report.model import Report

TOL = 1e-8


def result(name, analytic, numeric):
    """A ParamResult from hand-picked partials: wrong where they differ by more than TOL."""
    a = np.asarray(analytic, dtype=float)
    flat_a, flat_n = a.reshape(-1), np.asarray(numeric, dtype=float).reshape(-1)
    abs_err = np.abs(flat_a - flat_n)
    nan = np.full(a.size, np.nan)
    return ParamResult(
        name=name,
        shape=a.shape,
        dtype="float64",
        grad_shape=a.shape,
        analytic=flat_a,
        numeric=flat_n,
        fd_error=np.full(a.size, 1e-10),
        tolerance=np.full(a.size, TOL),
        abs_err=abs_err,
        rel_err=relative_error(flat_a, flat_n),
        codes=status_codes(np.where(abs_err > TOL, "wrong", "ok")),
        step=np.full(a.size, 1e-5),
        forward=nan,
        backward=nan,
        kink=np.zeros(a.size, bool),
        refined=np.zeros(a.size, dtype=bool),
        raw_grad=a,
    )


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        (0.0, 0),
        (1e-13, 0),
        (1e-11, 1),
        (3e-9, 3),
        (1e-7, 5),
        (0.05, 10),
        (0.5, 11),
        (1.0, 12),
        (2.0, 12),
        (math.nan, None),
    ],
)
def test_heat_bin_is_one_per_decade(rel, expected):
    assert heat_bin(rel) == expected


def test_bin_labels():
    assert [bin_label(k) for k in (0, 1, 11, 12)] == ["&lt;1e-11", "1e-11", "1e-1", "&ge;1"]


def test_heatmap_exact_for_a_1x2_vector():
    p = result("v", [1.0, 2.0], [1.0, 1.0])  # v[1]: rel err 0.5, wrong
    assert heatmap(p) == (
        '<table class="heat" style="--cell:32px"><tr><th></th><th>0</th><th>1</th></tr>'
        "<tr><th>0</th>"
        f'<td class="c" style="background:{COLORS[0]}" title="v[0]: ok, rel err 0.0e+00, '
        'analytic +1, numeric +1"></td>'
        f'<td class="c dark" style="background:{COLORS[11]}" title="v[1]: wrong, rel err '
        '5.0e-01, analytic +2, numeric +1">X</td></tr></table>'
    )


def test_scalar_strip_exact():
    assert scalar_strip([result("w1", 3.0, -3.0)]) == (
        '<table class="heat" style="--cell:32px"><tr><th>w1</th></tr><tr>'
        f'<td class="c dark" style="background:{COLORS[12]}" title="w1: wrong, rel err '
        '2.0e+00, analytic +3, numeric -3">X</td></tr></table>'
    )


def test_legend_has_one_cell_per_decade():
    text = legend()
    assert text.startswith(
        f'<table class="legend"><tr><td style="background:{COLORS[0]}">&lt;1e-11</td>'
    )
    assert text.count("<td") == len(COLORS) == 13
    assert text.endswith(f'<td style="background:{COLORS[12]}" class=dark>&ge;1</td></tr></table>')


def test_transposed_gradient_lights_up_off_the_diagonal():
    true = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    text = heatmap(result("W", true.T, true))
    cells = [c.split(">", 1)[1] for c in text.split('<td class="c')[1:]]
    marks = np.array([c.startswith("X") for c in cells]).reshape(3, 3)
    assert np.array_equal(marks, ~np.eye(3, dtype=bool))


def test_one_wrong_row_lights_up_one_row():
    true = np.arange(1.0, 13.0).reshape(3, 4)
    hand = true.copy()
    hand[1] *= 1.5
    cells = heatmap(result("W", hand, true)).split('<td class="c')[1:]
    marks = np.array(['">X</td>' in c for c in cells]).reshape(3, 4)
    assert marks.any(axis=1).tolist() == [False, True, False]
    assert marks[1].all()


def test_large_matrix_is_shown_as_block_maxima():
    true = np.ones((200, 3))
    hand = true.copy()
    hand[150, 2] = 5.0
    text = heatmap(result("W", hand, true))
    assert text.count("<tr>") == 1 + 50  # header + ceil(200 / 4) blocks of 4 rows
    assert text.count(">X</td>") == 1
    assert "W[150, 2]: wrong" in text
    assert "(worst of 4 elements)" in text


def test_document_is_self_contained_and_ordered():
    report = Report(
        params=[
            result("W<b>", [[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0, 5.0]]),
            result("c", 1.0, 1.0),
        ],
        evaluations=20,
        loss=0.5,
    )
    page = render_html(report, title="t & u")
    assert page.startswith(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        "<title>t &amp; u</title><style>"
    )
    assert page.endswith("</body></html>\n")
    for absent in ("<script", "http://", "https://", "<link", "@import", "url("):
        assert absent not in page
    assert "W&lt;b&gt;" in page
    assert "W<b>" not in page
    order = [
        page.index(f'<section id="{s}">')
        for s in ("diagnosis", "parameters", "heatmaps", "elements")
    ]
    assert order == sorted(order)
    assert '<p class="verdict fail">gradcheck FAILED: 1 of 2 parameters' in page
    assert "<h3>W&lt;b&gt; (2, 2)</h3>" in page
    assert "<h3>scalar parameters</h3>" in page


def test_real_report_with_shape_mismatch_renders():
    report = check(lambda p: float(p["a"] ** 2), lambda p: {"a": np.array([1.0, 2.0])}, {"a": 1.5})
    page = report.to_html()
    assert '<td class="c na"' in page  # hatched: no usable hand-written value
    assert "shape_mismatch" in page


def test_table_exact():
    from gradcheck.report.html import table

    assert table(
        ["", "param", "wrong"], [["X", "w<1>", "1/2"], ["", "b", "0/2"]], [True, False]
    ) == (
        '<table class="grid"><tr><th></th><th class="name">param</th><th>wrong</th></tr>'
        '<tr class=bad><td class="mark">X</td><td class="name">w&lt;1&gt;</td><td>1/2</td></tr>'
        '<tr><td class="mark"></td><td class="name">b</td><td>0/2</td></tr></table>'
    )


def test_nested_lists_for_per_sample_lines():
    from gradcheck.report.html import nested

    assert nested(["sample 0: failed", "  group: a < b", "sample 1: passed"]) == (
        "<ul><li>sample 0: failed<ul><li>group: a &lt; b</li></ul></li>"
        "<li>sample 1: passed</li></ul>"
    )
