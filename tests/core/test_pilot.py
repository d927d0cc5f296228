"""The pilot's ladders read as a whole: their extrapolated value and the kink test it needs."""

from __future__ import annotations

import math

import numpy as np

import gradcheck
from gradcheck.core.differences import FiniteDifferences
from gradcheck.core.evaluation import Evaluator
from gradcheck.core.numerics import NOISE_TRIES
from gradcheck.core.params import ParamSet
from gradcheck.core.pilot import Level, Reading, _fit_residual, ladder_kinked, own_richardson
from nets.hard_numerics import least_squares

HALVES = (7.4e-4, 1.85e-4, 4.625e-5)  # a ladder's levels from eps**(1/5), 4x apart
X = 0.3


def _ladder(f) -> list[Level]:
    return [Level(h, X + h, X - h, f(X + h), f(X - h)) for h in HALVES]


def test_a_smooth_ladder_gives_its_extrapolated_value_within_its_error():
    levels = _ladder(math.sin)
    reading = Reading(1.0, HALVES[0], 1e-16, fifth=1.0)  # |f'''|, |f^(5)| of sin: at most 1
    assert not ladder_kinked(levels, X, math.sin(X), 1e-16)
    value, error = own_richardson(levels, reading)
    assert abs(value - math.cos(X)) <= error < 1e-11
    # no fifth derivative measured (the ladder did not converge on three levels): no value
    unmeasured = Reading(1.0, HALVES[0], 1e-16)
    assert math.isnan(own_richardson(levels, unmeasured)[1])


def test_a_ladder_across_a_kink_shows_it_in_its_one_sided_slopes():
    # a ReLU's kink 1e-5 above x, inside every level: the central slopes alone cannot tell
    def kinked(x):
        return math.sin(x) + 0.5 * max(x - (X + 1e-5), 0.0)

    assert ladder_kinked(_ladder(kinked), X, kinked(X), 1e-16)

    # a kink beyond the smallest level, inside the two larger ones
    def far(x):
        return math.sin(x) + 0.5 * max(x - (X + 1e-4), 0.0)

    assert ladder_kinked(_ladder(far), X, far(X), 1e-16)


def _kinks_beside(rows: int = 20, seed: int = 0):
    """A loss along one bias ``b`` (at 0) with a batch's ``abs`` kinks at ``-z_r``, ``z_r``
    ~1e-8 (a second layer's pre-activations at a 1e-4 initialisation), on top of a constant
    whose rounding is the loss's only noise."""
    rng = np.random.default_rng(seed)
    z, c = 1e-8 * rng.standard_normal(rows), 1e-5 * rng.standard_normal(rows)

    def loss(p):
        return float(2.3 + np.sum(c * np.abs(z + p["b"][0])))

    return loss


def test_a_table_across_several_kinks_is_not_noise():
    # the first table's spacing (2**-27 at 0) straddles several rows' kinks: they read as a
    # noise of their jumps times the spacing, hundreds of times the loss's rounding. Tables at
    # smaller spacings find the loss's own rounding instead (or none above its resolution)
    pset = ParamSet({"b": np.zeros(1)})
    evaluator = Evaluator(pset, _kinks_beside())
    evaluator.baseline()
    pilots = FiniteDifferences(evaluator, gradcheck.Tolerance()).pilots
    rounding = np.finfo(np.float64).eps * 2.3
    first, _ = pilots._measure_noise("b", 0)
    assert first > 30 * rounding  # what the table alone reads
    above = 4.0 * 32 * rounding  # NOISE_MARGIN times the floor: a noise that would matter
    sigma, _ = pilots.measure_noise("b", 0, above)
    assert sigma < 4 * rounding
    # a noise at or below the caller's threshold is not confirmed: no calls
    calls = evaluator.evaluations
    assert pilots.measure_noise("b", 0, np.inf)[0] == first
    assert evaluator.evaluations - calls == 6
    pset.finish()


def test_real_noise_is_confirmed_at_smaller_spacings():
    # cancellation inside the loss (a least-squares fit whose residuals are 1e-8 of its
    # terms): its noise does not shrink with the spacing, and the table's finding stands (at
    # x ~ 1 the noise is only ~1e3 ulps of the loss, by how the BLAS sums: 990x on one CPU)
    case = least_squares(1e4)
    pset = ParamSet(case.params)
    name = next(iter(case.params))
    evaluator = Evaluator(pset, case.loss)
    evaluator.baseline()
    pilots = FiniteDifferences(evaluator, gradcheck.Tolerance()).pilots
    calls = evaluator.evaluations
    first, _ = pilots._measure_noise(name, 0)
    tables = evaluator.evaluations - calls
    rounding = np.finfo(np.float64).eps * abs(evaluator.f0)
    assert first > 1e3 * rounding
    calls = evaluator.evaluations
    sigma, _ = pilots.measure_noise(name, 0, 0.0)
    assert first / 4 < sigma <= first
    # the tables again, and one at a smaller spacing
    assert evaluator.evaluations - calls == tables + 6
    pset.finish()


def test_a_trend_bounds_the_noise_by_what_is_left_about_its_line():
    t = np.arange(-3.0, 4.0)
    assert _fit_residual(t, 2.5 + 1e-3 * t) < 1e-15
    noise = np.random.default_rng(0).standard_normal(7)
    bound = _fit_residual(t, 1e250 + 1e240 * t + 1e238 * noise)  # no overflow squared
    assert 0.3e238 < bound < 3e238
    assert np.isnan(_fit_residual(t, np.array([0, 1, np.inf, 3, 4, 5, 6.0])))
    assert np.isfinite(_fit_residual(t, 1.7e308 - 1e300 * t))  # summed, these overflow


def test_a_dead_relu_unit_is_no_noise_and_a_missing_mask_is_caught_in_float32():
    # a table straddling the kink at -0.0063 read as 4,000x the rounding; the smaller one was
    # exactly flat (the dead side) and kept it, taken for a float32 cast's staircase though
    # float32 tells its points apart: every bound of x loosened to 5 and the bug passed
    from nets.bugs import relu_no_mask
    from nets.layers import relu_backward, relu_forward
    from nets.network import Stage
    from nets.zoo import _layer_net

    x = np.array(
        [
            [-0.11815914, 0.07301566, 0.1064871, -0.0875189, -0.06827352],
            [-0.02755796, -0.04666831, -0.06696536, 0.05795749, 0.08292975],
            [-0.02634361, -0.00634579, 0.01456937, 0.03495616, 0.00607104],
        ],
        dtype=np.float32,
    )
    net, params = _layer_net(Stage("relu", relu_forward, relu_backward), {"x": x}, 283)
    correct = gradcheck.check(net.loss, net.grad, params)
    assert correct.passed, correct.to_text()
    assert correct["x"].noise < 1e-15
    bad = net.replace_backward("relu", relu_no_mask)
    report = gradcheck.check(bad.loss, bad.grad, params)
    dead = np.flatnonzero(x.reshape(-1) < 0)
    assert np.flatnonzero(report["x"].statuses == "wrong").tolist() == dead.tolist()


def test_only_trend_tables_that_agree_across_spacings_are_noise():
    from gradcheck.core.pilot import _steady_trend

    assert _steady_trend([1e-16, 1.5e-16]) == 1e-16  # the same at two spacings: noise
    assert _steady_trend([6.4e-15, 1e-16]) == 0.0  # shrinking with the spacing: a kink
    assert _steady_trend([1e-16]) == 0.0  # one table says nothing
    assert _steady_trend([1e-16, float("nan")]) == 0.0


def _round_point_noise(amplify: float = 1e3):
    """``L(b) = 2 + amplify ((b + 7) - 8)`` at ``b = 1``: ``b + 7`` rounds to ulps of 8, exactly
    at the round points ``1 + j 2**-27`` of a power-of-two table and by up to 9e-16 at a
    stencil's ``1 + h``: a noise of ``amplify`` times 5e-16 that only full-mantissa points see."""

    def loss(p):
        return 2.0 + amplify * ((p["b"][0] + 7.0) - 8.0)

    return loss


def test_noise_only_full_mantissa_points_see_is_measured_off_the_round_grid():
    pset = ParamSet({"b": np.ones(1)})
    evaluator = Evaluator(pset, _round_point_noise())
    evaluator.baseline()
    pilots = FiniteDifferences(evaluator, gradcheck.Tolerance()).pilots
    rounding = np.finfo(np.float64).eps * 2.0
    first, _ = pilots._measure_noise("b", 0)
    assert not first > 4 * rounding  # the round points: no rounding to see (NaN: a line)
    truth = 1e3 * 2.0**-49 / math.sqrt(12)  # uniform within half an ulp of 8 either way
    above = 4.0 * 32 * rounding
    calls = evaluator.evaluations
    sigma, _ = pilots.measure_noise("b", 0, above)
    assert truth / 3 < sigma < 3 * truth
    assert ("b", 0) in pilots.off_grid
    assert evaluator.evaluations - calls == 12  # the off-grid table, confirmed at a smaller one
    # no noise at stake (a caller that can take none): the tables at x alone, as before
    calls = evaluator.evaluations
    assert not pilots.measure_noise("b", 0, np.inf)[0] > 4 * rounding
    assert evaluator.evaluations - calls == 6 * NOISE_TRIES  # each table a straight line
    pset.finish()


def test_a_clean_loss_at_a_round_point_shows_no_noise_off_the_grid():
    # the points' offsets from equal spacing (up to half an ulp of x) times the slope of 1e3
    # would read as a noise of 1e-13, a million times the loss's rounding (its values ~1e-3;
    # b - 1 is exact): each value is moved back along the table's slope
    def loss(p):
        return float(1e-3 + 1e3 * (p["b"][0] - 1.0) + 0.5 * (p["b"][0] - 1.0) ** 2)

    pset = ParamSet({"b": np.ones(1)})
    evaluator = Evaluator(pset, loss)
    evaluator.baseline()
    pilots = FiniteDifferences(evaluator, gradcheck.Tolerance()).pilots
    rounding = np.finfo(np.float64).eps * abs(evaluator.f0)
    sigma, _ = pilots.measure_noise("b", 0, 4.0 * 32 * rounding)
    assert sigma <= 4 * rounding
    pset.finish()
