"""Which numbers the diagnosis builds on; partials near 1e308 and NaN neither raise nor warn."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from gradcheck import check
from gradcheck.diagnosis.classify import diagnose, name_factor
from gradcheck.diagnosis.groups import poisson_tail
from tests.helpers import toy


def test_unconverged_partials_get_no_class_and_are_named():
    """A numeric partial known only to 50% supports no sign, factor or zero claim."""
    loss, grad, params = toy.regression(bug="sign_all")
    report = check(loss, grad, params)
    # as a noisy loss would leave them (results are immutable: build the altered ones)
    noisy = [replace(p, fd_error=0.5 * np.abs(p.numeric)) for p in report.params]
    diagnosis = diagnose(noisy)
    for p in noisy:
        wrong = p.statuses == "wrong"
        assert set(diagnosis.classes[p.name][wrong].tolist()) <= {"unresolved"}
    kinds = {f.kind for f in diagnosis.findings}
    assert "sign_flipped" not in kinds
    assert "group" not in kinds
    unresolved = next(f for f in diagnosis.findings if f.kind == "unresolved")
    assert unresolved.message.startswith("numeric partial did not converge at w (all 3) (e.g. w[0]")


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("value", [1e308, -1e308, 1e-310])
def test_partials_near_the_float_limits_neither_raise_nor_warn(value):
    """Hand-written partials of 1e308 (or subnormal) against ordinary numeric ones."""
    loss, grad, params = toy.regression()

    def extreme(p):
        g = grad(p)
        g["w"] = np.full_like(g["w"], value)
        return g

    report = check(loss, extreme, params)
    assert "w" in report.failed_params
    report.to_text()
    report.to_json()
    if report.diagnosis.descent is not None:
        assert report.diagnosis.descent["direction"] in {"ascent", "descent", "flat"}


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("ratio", [np.inf, -np.inf, np.nan, 1e-310, 1e308, 0.0])
def test_name_factor_skips_ratios_that_do_not_fit(ratio):
    assert name_factor(ratio, 1e-9) is None


def test_poisson_tail():
    assert poisson_tail(0.0, 2) == 0.0
    assert poisson_tail(5.0, 0) == 1.0
    assert poisson_tail(1e-3, 1) == pytest.approx(1 - np.exp(-1e-3), rel=1e-9)
    assert poisson_tail(1e-3, 3) == pytest.approx(1e-9 / 6, rel=1e-2)
    assert poisson_tail(0.1, 10**5) == 0.0  # no overflow for huge groups


def test_no_stall_finding_from_partials_that_did_not_converge():
    loss, grad, params = toy.regression(bug="sign_all")
    report = check(loss, grad, params)
    assert report.diagnosis.descent["direction"] == "ascent"
    # errors larger than the partials
    unsure = [replace(p, fd_error=2 * np.abs(p.numeric)) for p in report.params]
    descent = diagnose(unsure).descent
    assert descent["direction"] == "unknown"
    assert "stall" not in descent["message"]
