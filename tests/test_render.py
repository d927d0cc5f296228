"""Rendering, tested with exact expected strings."""

from __future__ import annotations

import numpy as np

from gradcheck import check


def small_report():
    params = {"w": np.array([1.0, -2.0])}
    return check(lambda p: float(np.sum(p["w"] ** 2)), lambda p: {"w": np.array([2.0, 4.0])},
                 params)


def test_text_table_exact():
    report = small_report()
    text = report.to_text()
    lines = text.splitlines()
    assert lines[0] == (f"gradcheck FAILED: 1 of 1 parameters with wrong partials, loss 5, "
                        f"{report.evaluations} loss evaluations")
    assert "Elements (failing first):" in lines
    start = lines.index("Elements (failing first):")
    assert lines[start + 3].split() == ["X", "w[1]", "+4", "-4", "8.0e+00", "2.0e+00",
                                        lines[start + 3].split()[6], "wrong"]
    assert lines[start + 4].split()[:4] == ["w[0]", "+2", "+2", lines[start + 4].split()[3]]
    assert lines[start + 4].split()[-1] == "ok"


def test_markdown_uses_github_tables():
    md = small_report().to_markdown()
    assert "### Parameters" in md
    assert "| X  | w       | (2,)    | (2,)         | wrong    | 1/2     |" in md
