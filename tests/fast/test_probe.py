"""Probe records and directions: a probe passes only on finite numbers within a finite bound."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gradcheck
from gradcheck.fast.probe import Record

NONFINITE = [math.inf, -math.inf, math.nan]


@pytest.mark.parametrize("bad", NONFINITE)
def test_a_record_with_a_nonfinite_discrepancy_or_tolerance_never_passes(bad):
    # issue 12 item 2: an overflowed tolerance passed every probe
    assert not Record(0, 4, 1.0, bad).passed
    assert not Record(0, 4, bad, 1.0).passed
    assert not Record(0, 4, bad, bad).passed


def test_a_record_passes_only_within_a_finite_tolerance():
    assert Record(0, 4, -0.5, 0.5).passed
    assert not Record(0, 4, 0.6, 0.5).passed


@pytest.mark.parametrize("huge", [1e155, 1e160, 1e200, 1e300, 1.7e308])
def test_a_huge_wrong_partial_fails_fast_mode_at_its_element(huge):
    # issue 12 item 2: a partial of 1e160 made the probe's tolerance inf and fast mode PASSED
    params = {"w": np.linspace(-1.0, 1.0, 40)}

    def grad(p):
        g = 2.0 * p["w"]
        g[7] = huge
        return {"w": g}

    report = gradcheck.check(lambda p: float(np.sum(p["w"] ** 2)), grad, params, mode="fast")
    assert not report.passed
    result = report["w"]
    failing = result.indices[np.isin(result.statuses, ["wrong", "nonfinite"])]
    assert failing.tolist() == [7]


@pytest.mark.parametrize("huge", [1e155, 1e200, 1e300])
def test_huge_correct_partials_pass_fast_mode(huge):
    # the rounding allowance's norm is computed without overflow, so no inf tolerance appears
    slope = np.linspace(-1.0, 1.0, 40) * huge
    report = gradcheck.check(
        lambda p: float(np.sum(slope * p["w"])),
        lambda p: {"w": slope.copy()},
        {"w": np.linspace(0.5, 1.5, 40)},
        mode="fast",
    )
    assert report.passed, report.to_text()
    assert all(math.isfinite(d["tolerance"]) for d in report["w"].probe.probes)
