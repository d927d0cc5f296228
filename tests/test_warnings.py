"""gradcheck runs clean under ``-W error`` (issue 12 item 9).

The suite runs with ``filterwarnings = ["error"]`` (pyproject.toml), so a RuntimeWarning from
gradcheck's own arithmetic (an overflow in a tolerance, an invalid value in a probe) fails any
test that triggers it. The checks below drive that arithmetic to its limits: partials and loss
values up to float64's largest, parameters near it, subnormals, NaN partials, kinks, float32
overflow. Their losses compute without warnings themselves (a warning in the user's loss is the
user's own, reported as a LossError).
"""

from __future__ import annotations

import numpy as np
import pytest

import gradcheck


def quiet(function):
    """The user's function with NumPy's own warnings off (they are not gradcheck's)."""

    def call(params):
        with np.errstate(all="ignore"):
            return function(params)

    return call


def _huge_partial(big):
    def grad(p):
        g = 2.0 * p["w"]
        g[3], g[5] = big, -big
        return {"w": g}

    return (quiet(lambda p: float(np.sum(p["w"] ** 2))), grad, {"w": np.linspace(-1, 1, 12)})


def _huge_loss(big, factor=1.0):
    c = np.linspace(-1, 1, 12) * big
    return (
        quiet(lambda p: float(np.sum(c * p["w"]))),
        lambda p: {"w": factor * c},
        {"w": np.linspace(0.1, 1, 12)},
    )


def _cubic(big):
    return (
        quiet(lambda p: float(big * np.sum(p["w"] ** 3))),
        quiet(lambda p: {"w": 3 * big * p["w"] ** 2}),
        {"w": np.linspace(0.1, 1, 5)},
    )


def _huge_parameters(big):
    return (
        quiet(lambda p: float(np.sum(np.sin(p["w"])))),
        quiet(lambda p: {"w": np.cos(p["w"])}),
        {"w": np.array([big, -big, 1.0])},
    )


def _subnormal(tiny):
    return (
        lambda p: float(np.sum(p["w"] ** 2)),
        lambda p: {"w": 2 * p["w"]},
        {"w": np.array([tiny, -tiny, -0.0, 0.0])},
    )


def _tiny_loss(tiny):
    return (
        lambda p: float(tiny * np.sum(p["w"])),
        lambda p: {"w": np.full(3, tiny)},
        {"w": np.ones(3)},
    )


HOSTILE = {
    "nan partials": (
        lambda p: float(np.sum(p["w"] ** 2)),
        lambda p: {"w": np.full(3, np.nan)},
        {"w": np.ones(3)},
    ),
    "kink": (
        lambda p: float(np.sum(np.abs(p["w"]))),
        lambda p: {"w": np.sign(p["w"])},
        {"w": np.array([0.0, 1.0, -1.0])},
    ),
    "float32 loss overflowing": (
        quiet(lambda p: np.sum(p["w"] ** 2)),
        lambda p: {"w": 2 * p["w"]},
        {"w": np.array([1e19, 3.0], dtype=np.float32)},
    ),
    "loss overflowing at perturbed points": (
        quiet(lambda p: float(np.exp(p["w"][0] * 800))),
        quiet(lambda p: {"w": np.array([800 * np.exp(p["w"][0] * 800)])}),
        {"w": np.array([0.887])},
    ),
    "loss NaN at perturbed points": (
        quiet(lambda p: float(np.log(p["w"][0] - 0.99999999))),
        lambda p: {"w": np.array([1e8])},
        {"w": np.array([1.0])},
    ),
    **{f"subnormal parameters {t:g}": _subnormal(t) for t in (5e-324, 1e-310)},
    **{f"tiny loss {t:g}": _tiny_loss(t) for t in (5e-324, 1e-300)},
}
# full mode runs the diagnosis on these; fast mode does not
EXTREME = {
    **{f"huge partial {b:g}": _huge_partial(b) for b in (1e160, 1e300, 1.7e308)},
    **{f"huge loss {b:g}": _huge_loss(b) for b in (1e160, 1e300)},
    **{f"huge loss, wrong {b:g}": _huge_loss(b, 3.0) for b in (1e160, 1e300)},
    **{f"cubic {b:g}": _cubic(b) for b in (1e300, 1e307)},
    **{f"huge parameters {b:g}": _huge_parameters(b) for b in (1e300, 1.7e308)},
    # found by tests/test_fuzz.py: probe points past float32's largest value
    "float32 parameters at float32's largest": (
        quiet(lambda p: float(np.sum(np.sin(p["w"].astype(np.float64))))),
        quiet(lambda p: {"w": np.cos(p["w"].astype(np.float64))}),
        {"w": np.array([0.0, 3.4028235e38, 3.4028235e38], dtype=np.float32)},
    ),
}


def _run(case, mode):
    loss, grad, params = case
    try:
        report = gradcheck.check(loss, grad, params, mode=mode)
    except gradcheck.GradcheckError:
        return
    report.to_json()
    report.to_text()
    report.to_markdown()
    report.to_html()


@pytest.mark.parametrize("mode", ["full", "fast"])
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_checks_raise_no_warning(name, mode):
    _run(HOSTILE[name], mode)


@pytest.mark.parametrize("name", list(EXTREME))
def test_extreme_values_raise_no_warning_in_fast_mode(name):
    _run(EXTREME[name], "fast")


@pytest.mark.parametrize("name", list(EXTREME))
def test_extreme_values_raise_no_warning_in_full_mode(name):
    _run(EXTREME[name], "full")
