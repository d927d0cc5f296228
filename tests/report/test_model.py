"""The Report object itself (rendering is tested in test_text.py, test_html.py)."""

from __future__ import annotations

import numpy as np

from gradcheck import check


# QA: `assert report.passed, report` printed the dataclass repr, thousands of characters of
# arrays, in pytest (which shows an assertion message's repr).
def test_repr_is_the_verdict_in_one_line():
    w = np.array([0.5, -1.0, 2.0])
    bad = check(lambda p: float(np.sum(p["w"] ** 2)), lambda p: {"w": p["w"]}, {"w": w})
    assert repr(bad) == (
        f"<Report: gradcheck FAILED: 1 of 1 parameters with wrong partials, loss 5.25, "
        f"{bad.evaluations} loss evaluations; failing: w>"
    )
    good = check(lambda p: float(np.sum(p["w"] ** 2)), lambda p: {"w": 2 * p["w"]}, {"w": w})
    assert repr(good).startswith("<Report: gradcheck PASSED: 0 of 1 parameters")
    assert "\n" not in repr(good)
