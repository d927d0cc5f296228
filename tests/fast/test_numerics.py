"""Fast mode's numerical rules: the kink test along a probe's direction tells a loss that is
not smooth at the probe's scale from a smooth one, and never excuses a NaN."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck.core.stencil import analyse
from gradcheck.fast.numerics import KINK_MULTIPLES, kink_along

H = 1e-3
NOISE = 1e-16


def along(f, h=H):
    """``F(0)`` and ``{m: (F(m h), F(-m h), m h)}`` at the kink test's levels."""
    return f(0.0), {m: (f(m * h), f(-m * h), m * h) for m in KINK_MULTIPLES}


def relu(s):
    return max(s, 0.0)


@pytest.mark.parametrize(
    "f",
    [
        lambda s: np.exp(0.3 * s) + 5.0 * s**2,  # curvature dwarfing the slope
        lambda s: np.sin(3.0 * s) - 2.0 * s,
        lambda s: 1.0 + 1e-9 * s,  # flat: everything in rounding
        lambda s: relu(s - 5 * H),  # a kink beyond the largest step
    ],
)
def test_smooth_along_the_probe_is_no_kink(f):
    assert not kink_along(*along(f), NOISE)


def test_a_small_jump_at_the_point_under_a_large_curvature_is_a_kink():
    # an L2 penalty along a direction over many weights (s F'' = 1e-2 at the step) hides a
    # slope jump of 2e-4 from the gaps' proportion; the gap extrapolated to zero does not, in
    # the one-element test too (a kink at the point, not one crossed away from it)
    f0, central = along(lambda s: 5.0 * s**2 + 1e-4 * abs(s))
    one = {m: tuple(np.array([v]) for v in (*c, c[2])) for m, c in central.items()}
    out = analyse(f0, one, np.array([NOISE]))
    assert out["kink"][0]
    assert not out["crossed"][0]
    assert kink_along(f0, central, NOISE)


@pytest.mark.parametrize("where", [0.0, 0.1 * H, 0.3 * H, 0.7 * H])
def test_a_kink_at_or_near_the_point_is_a_kink(where):
    assert kink_along(*along(lambda s: 0.3 * s + 0.5 * relu(s - where)), NOISE)


def test_a_nan_excuses_nothing():
    f0, central = along(lambda s: 0.5 * abs(s))
    central[0.5] = (float("nan"), central[0.5][1], central[0.5][2])
    assert not kink_along(f0, central, NOISE)


def test_consistent_errors_keep_the_one_error_that_explains_every_probe():
    # element 1 wrong by e = 2: r_j = -2 s_1j within T_j; element 0's ratios differ; element 2
    # did not move in the failing first probe; element 3 did not move in a passing one
    from gradcheck.fast.numerics import consistent_errors

    spans = np.array([[1.0, 0.5, 0.0, 1.0], [1.0, -0.25, 1.0, 0.0]])
    tolerance = np.array([0.01, 0.01])
    discrepancy = -2.0 * spans[:, 1] + np.array([0.005, -0.005])
    low, high = consistent_errors(discrepancy, tolerance, spans)
    assert (low <= high).tolist() == [False, True, False, False]
    assert low[1] <= 2.0 <= high[1]
    assert high[1] - low[1] <= 2 * 0.01 / 0.25
    passing = consistent_errors(np.array([0.0]), np.array([0.01]), np.array([[0.0, 1.0]]))
    assert passing[0][0] == -np.inf
    assert passing[1][0] == np.inf  # an unmoved element allows any error in a passing probe


def test_single_fit_is_exact_for_one_error_and_leaves_unmoved_elements_at_the_total():
    from gradcheck.fast.numerics import single_fit

    scaled = np.array([[1.0, 0.5, 0.0], [2.0, -0.25, 0.0], [-1.0, 1.0, 0.0]])  # probe x element
    y = -3.0 * scaled[:, 1]  # element 1 wrong by e = 3, in tolerance units
    residual, error = single_fit(float(y @ y), y @ scaled, (scaled * scaled).sum(axis=0))
    assert residual[1] == pytest.approx(0.0, abs=1e-12)
    assert error[1] == pytest.approx(3.0)
    assert residual[0] > 0.5 * float(y @ y)  # another direction: a poor fit
    assert residual[2] == float(y @ y)  # unmoved: no error there explains anything
    assert np.isnan(error[2])


@pytest.mark.parametrize("probes", [3, 5])
def test_chance_fit_is_a_true_probability_for_elements_that_carry_no_error(probes):
    # no element wrong: the probes' values are noise, and every element's weights are
    # independent uniform ones; the rule must name a chance lead at most as often as it says
    from gradcheck.fast.numerics import LEAD_CHANCE, chance_fit, single_fit

    rng = np.random.default_rng(0)
    trials, elements, named = 400, 2000, 0
    for _ in range(trials):
        z = rng.uniform(-np.sqrt(3), np.sqrt(3), size=(probes, elements))
        y = rng.standard_normal(probes)
        residual, _ = single_fit(float(y @ y), y @ z, (z * z).sum(axis=0))
        first, second = np.partition(residual, 1)[:2]
        named += chance_fit(float(first), float(second), probes) <= LEAD_CHANCE
    assert named <= trials * LEAD_CHANCE + 3 * np.sqrt(trials * LEAD_CHANCE)  # 3 sigma


def test_chance_fit_is_small_for_an_element_that_fits_far_better_than_the_rest():
    from gradcheck.fast.numerics import chance_fit

    assert chance_fit(1e-6, 1e-2, 5) == pytest.approx(1e-8)
    assert chance_fit(1.0, 1.0, 5) == 1.0
    for nonsense in [(float("nan"), 1.0), (1.0, 0.0), (1.0, float("inf"))]:
        assert chance_fit(*nonsense, 5) == 1.0  # no lead from a NaN or a zero spread
    assert chance_fit(0.0, 1.0, 1) == 1.0  # one probe fits every moved element exactly
