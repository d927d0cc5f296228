"""The Report object itself (rendering is tested in test_text.py, test_html.py): its repr, and
strict JSON whatever floats it holds (issue 12 item 7).

``to_json`` raised ``ValueError: Out of range float values`` on a ``nonfinite`` element's
``max_abs_err`` or a fast-mode probe's infinite bound; every float now goes through one
conversion (null when not finite). The property test builds random reports, NaN, infinities,
-0.0, subnormals and float64's extremes anywhere a float can be, and renders each in every
format.
"""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradcheck import ParamResult, Report, check
from gradcheck.core.compare import status_codes
from gradcheck.diagnosis.classify import Diagnosis, Finding, Group
from gradcheck.fast.probe import ProbeSummary
from gradcheck.report.model import json_ready

STATUSES = ("no_gradient", "shape_mismatch", "nonfinite", "wrong", "uncertain", "probed", "ok")
SPECIAL = [math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1e-300, 1e308, -1.7976931348623157e308]
FLOATS = st.one_of(st.sampled_from(SPECIAL), st.floats(allow_nan=True, allow_infinity=True))
SETTINGS = settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


def strict_loads(text: str):
    """json.loads that refuses NaN and Infinity, which Python's json accepts by default."""

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@st.composite
def param_results(draw, name):
    shape = draw(st.sampled_from([(), (1,), (3,), (2, 2)]))
    n = int(np.prod(shape))

    def floats():
        return np.array(draw(st.lists(FLOATS, min_size=n, max_size=n)), dtype=np.float64)

    missing = draw(st.booleans())
    statuses = np.array(draw(st.lists(st.sampled_from(STATUSES), min_size=n, max_size=n)))
    probe = None
    if draw(st.booleans()):
        probe = ProbeSummary(
            step=draw(FLOATS),
            sensitivity={"abs": draw(FLOATS), "relative": draw(FLOATS), "miss": draw(FLOATS)},
            probes=tuple(
                [
                    {
                        "analytic": draw(FLOATS),
                        "numeric": draw(FLOATS),
                        "tolerance": draw(FLOATS),
                        "passed": draw(st.booleans()),
                        "step": draw(FLOATS),
                        "size": n,
                    }
                    for _ in range(draw(st.integers(0, 2)))
                ]
            ),
            unresolved=draw(st.booleans()),
        )
    return ParamResult(
        name=name,
        shape=shape,
        dtype="float64",
        grad_shape=None if missing else shape,
        analytic=None if missing else floats(),
        numeric=floats(),
        fd_error=floats(),
        tolerance=floats(),
        abs_err=floats(),
        rel_err=floats(),
        codes=status_codes(statuses),
        step=floats(),
        forward=floats(),
        backward=floats(),
        kink=np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool),
        refined=np.zeros(n, dtype=bool),
        raw_grad=None,
        probe=probe,
    )


@st.composite
def reports(draw, depth=1):
    names = draw(st.lists(st.sampled_from(["w", "b", "W1"]), min_size=1, max_size=3, unique=True))
    params = [draw(param_results(name)) for name in names]
    diagnosis = None
    if draw(st.booleans()):
        diagnosis = Diagnosis(
            findings=[Finding("scaled", "a finding", (names[0],), (), draw(FLOATS))],
            groups=[Group(draw(FLOATS), draw(FLOATS), (names[0],), "a group", "meaning")],
            cosine=draw(st.one_of(st.none(), FLOATS)),
            descent={"slope": draw(FLOATS), "message": "a descent message"},
        )
    samples = [draw(reports(depth=0))] if depth and draw(st.booleans()) else []
    return Report(
        params=params,
        evaluations=draw(st.integers(0, 10**6)),
        loss=draw(FLOATS),
        options={"safety": draw(FLOATS), "rtol": draw(st.one_of(st.none(), FLOATS))},
        notes=["a note"],
        diagnosis=diagnosis,
        samples=samples,
    )


@SETTINGS
@given(reports())
def test_every_report_is_strict_json_and_renders(report):
    text = report.to_json()
    data = strict_loads(text)
    assert data["passed"] == report.passed
    assert len(data["entries"]) == sum(p.size for p in report.params)
    for p, row in zip(report.params, data["params"], strict=True):
        expected = p.max_abs_err
        assert row["max_abs_err"] == (
            expected if expected is not None and math.isfinite(expected) else None
        )
    report.to_text()
    report.to_markdown()
    report.to_html()


def test_nonfinite_floats_become_null_and_finite_ones_stay_bitwise():
    values = {"a": math.inf, "b": np.float32(math.nan), "c": -0.0, "d": 5e-324, "e": (1e308,)}
    data = json_ready(values)
    assert data == {"a": None, "b": None, "c": -0.0, "d": 5e-324, "e": [1e308]}
    assert math.copysign(1.0, data["c"]) == -1.0
    assert strict_loads(json.dumps(data, allow_nan=False)) == data


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
