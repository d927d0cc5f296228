"""Notebook display: Report._repr_html_ (an inline fragment) and _repr_markdown_."""

from __future__ import annotations

import numpy as np

from gradcheck import check
from gradcheck.report.notebook import scoped_css


def _report():
    W = np.array([[1.0, 2.0], [3.0, -1.0]])
    return check(lambda p: float(np.sum(p["W"] ** 2)), lambda p: {"W": 2 * p["W"].T}, {"W": W})


def test_repr_html_is_a_fragment_with_the_reports_content():
    report = _report()
    html = report._repr_html_()
    assert html.startswith('<div class="gradcheck-report"><style>')
    assert html.endswith("</div>")
    for page_only in ("<html", "<body", "<!DOCTYPE", "<title", "<h1>"):
        assert page_only not in html
    assert "W[0, 1]" in html
    assert 'class="verdict fail"' in html
    assert '<section id="heatmaps">' in html


def test_styles_are_scoped_to_the_fragment():
    assert scoped_css("body{margin:0}h1,h2{color:red}") == (
        ".gradcheck-report{margin:0}.gradcheck-report h1,.gradcheck-report h2{color:red}"
    )
    style = _report()._repr_html_().split("<style>", 1)[1].split("</style>", 1)[0]
    assert all(rule.startswith(".gradcheck-report") for rule in style.split("}") if rule)


def test_repr_markdown_is_the_markdown_report():
    report = _report()
    assert report._repr_markdown_() == report.to_markdown()
    assert "W[0, 1]" in report._repr_markdown_()
