"""The stencil arithmetic on functions whose derivatives are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck.core.stencil import analyse

H = 1e-3
LEVELS = (0.25, 0.5, 1.0)


def central(f, x=0.0, levels=LEVELS):
    """Loss values at x +- m H for each level, with exactly representable steps."""
    return {
        m: (
            np.array([f(x + m * H)]),
            np.array([f(x - m * H)]),
            np.array([m * H]),
            np.array([m * H]),
        )
        for m in levels
    }


def run(f, x=0.0, levels=LEVELS):
    """The analysis with the engine's noise model: 32 ulps of the largest |f| the stencil saw
    (at least a tiny floor)."""
    values = central(f, x, levels)
    largest = max([abs(f(x))] + [abs(float(v[k][0])) for v in values.values() for k in (0, 1)])
    noise = 32 * np.finfo(float).eps * max(largest, 1e-300)
    return analyse(f(x), values, np.array([noise]))


def test_smooth_function_gives_the_derivative_with_an_honest_error_bar():
    out = run(lambda t: np.exp(2 * t) + t**3, x=0.3)
    exact = 2 * np.exp(0.6) + 3 * 0.09
    assert not out["kink"][0]
    assert abs(out["numeric"][0] - exact) <= out["error"][0]
    assert out["error"][0] < 1e-8


@pytest.mark.parametrize("offset", [0.0, 0.1 * H, 0.2 * H])
def test_kink_at_or_near_the_point_is_flagged(offset):
    out = run(lambda t: max(t - offset, 0.0) + 0.5 * t**2)
    assert out["kink"][0]
    assert out["backward"][0] < out["forward"][0]
    # only a kink at the point makes the one-sided slopes the subgradients' ends; one beside
    # it (0.4 and 0.8 of the smallest step) is crossed: the engine shrinks the steps
    assert out["crossed"][0] == (offset > 0)


# (not 1.6 smallest steps: from three levels alone a kink there mimics one at the point, both
# extrapolated jumps equal; the engine's next, smaller round sees past it)
@pytest.mark.parametrize("offset", [0.3 * H, -0.35 * H, 0.45 * H])
def test_kink_between_the_two_smallest_levels_is_crossed_not_smooth(offset):
    """Issue 11 (CS231n's TwoLayerNet at init, W1[79, 5]): a kink between the smallest step
    and the next leaves the smallest stencil's slopes equal; it was taken for smooth, and the
    Richardson value through the kink called the correct partial wrong."""
    out = run(lambda t: 0.3 * t + 0.5 * max(t - offset, 0.0) + 1e-6 * t**2)
    assert out["kink"][0]
    assert out["crossed"][0]
    slope = 0.3 + (0.5 if offset < 0 else 0.0)
    assert abs(out["numeric"][0] - slope) <= out["error"][0]


def test_small_jump_beside_a_large_curvature_is_a_kink():
    """An L2 term's curvature (s f'' = 1e-2 at the step) keeps the gaps' proportion within
    KINK_RELATIVE beside a jump of 2e-4 at 1.4 smallest steps; the jump extrapolated to a zero
    step does not grow like the step cubed, so it is a kink, crossed."""
    out = run(lambda t: 5.0 * t**2 + 2e-4 * max(t - 0.35 * H, 0.0))
    assert out["kink"][0]
    assert out["crossed"][0]


def test_kinks_of_opposite_jumps_on_both_sides_are_crossed_not_smooth():
    """A convex kink ahead and a concave one behind cancel in the one-sided slopes' gap (it
    grows with the step as a smooth loss's does) but add in the central values, which then
    change less per halving than a smooth loss allows. Seen on CS231n's two-layer net (seed
    11, 30 inputs: W1[15, 2] off by 2e-3 of its value, its error estimate 1e-9): a false
    alarm. They are crossed: smaller steps, as for any kink crossed."""
    jump = 0.02

    def f(t):
        ahead, behind = max(t - 0.1 * H, 0.0), max(-t - 0.1 * H, 0.0)
        return 0.7 * t + 40.0 * t**2 + jump * ahead - jump * behind

    out = run(f)
    assert out["kink"][0]
    assert out["crossed"][0]
    assert not out["smooth"][0]
    assert abs(out["numeric"][0] - 0.7) <= out["error"][0]


@pytest.mark.parametrize(
    "f",
    [
        lambda t: np.sin(t + np.pi / 2 - 0.1),  # third derivative 0 at x: fourth order rules
        lambda t: np.exp(30 * t),  # large curvature against the step
        lambda t: t**5 - t**3 + 2 * t,  # n(s) = f' + A s**2 + B s**4, A and B of both signs
    ],
    ids=["third-zero", "steep", "quintic"],
)
def test_smooth_losses_converge_at_an_order_they_allow(f):
    out = run(f, x=0.1)
    assert not out["kink"][0]
    assert out["smooth"][0]


def test_smooth_minimum_is_not_a_kink():
    out = run(lambda t: np.tanh(3 * t) ** 2 / 2)
    assert not out["kink"][0]
    assert abs(out["numeric"][0]) <= out["error"][0] + 1e-12


def test_jump_in_the_second_derivative_is_extrapolated_to_first_order():
    out = run(lambda t: max(t, 0.0) ** 2 + 0.3 * t)
    assert not out["kink"][0]
    assert out["numeric"][0] == pytest.approx(0.3, abs=1e-12)


def test_two_levels_give_a_third_derivative():
    out = run(lambda t: t**3, x=0.5, levels=(1.0, 2.0))
    assert out["third"][0] == pytest.approx(6.0, rel=1e-6)


def test_noise_is_not_a_kink():
    """A smooth loss with noise far above its ulps (cancellation): given the measured noise,
    one-sided slopes that differ only by it are smooth, never a kink; read with a floor of a
    few ulps, the same values often look like slope jumps."""
    rng = np.random.default_rng(0)
    sigma = 1e-7

    def noisy(f):
        return f + sigma * rng.standard_normal()

    seen_as_kinks = 0
    for _ in range(20):
        values = {
            m: (
                np.array([noisy(np.sin(0.3 + m * H))]),
                np.array([noisy(np.sin(0.3 - m * H))]),
                np.array([m * H]),
                np.array([m * H]),
            )
            for m in LEVELS
        }
        out = analyse(np.sin(0.3), values, np.array([3 * sigma]))
        assert not out["kink"][0]
        assert abs(out["numeric"][0] - np.cos(0.3)) <= out["error"][0]
        seen_as_kinks += int(analyse(np.sin(0.3), values, np.array([1e-15]))["kink"][0])
    assert seen_as_kinks >= 10


def test_ladder_converges_on_the_functions_own_scale():
    """f = log(a**2 + 1e-10) at a = 1e-5 from steps of 7e-4 down: estimates of f''' change
    by orders of magnitude per level until the steps reach ~1e-6, then agree."""
    from gradcheck.core.stencil import ladder_third

    def f(a):
        return np.log(a**2 + 1e-10)

    slopes, halves = [], []
    h = 7e-4
    for _ in range(14):
        slopes.append((f(1e-5 + h) - f(1e-5 - h)) / (2 * h))
        halves.append(h)
        verdict = ladder_third(slopes, halves, 1e-14)
        if verdict is not None:
            break
        h /= 4
    third, largest, how = verdict
    a, c = 1e-5, 1e-10
    exact = -4 * a * (3 * c - a**2) / (a**2 + c) ** 3  # f''' at a
    assert how == "converged"
    assert largest < 2e-5  # far below the starting 7e-4
    assert third == pytest.approx(abs(exact), rel=0.5)


def test_ladder_stops_where_differences_sink_into_noise():
    from gradcheck.core.stencil import ladder_third

    # a quadratic: slopes identical at every step, so the first pair is noise-limited
    assert ladder_third([0.7, 0.7], [1e-3, 2.5e-4], 1e-16)[2] == "noise"
    assert ladder_third([0.7], [1e-3], 1e-16) is None


@pytest.mark.parametrize("offset", [0.05 * H, -0.08 * H])
def test_a_kink_hidden_by_noise_puts_half_the_gap_in_the_error(offset):
    """A float32 ReLU unit 1/20 of a step from its kink, under noise large enough that the
    gaps' departure from proportion is within its allowance: smooth, but the central value
    carries half the kink's jump at every step, which Richardson's error (1% of the partial)
    did not see: a correct partial was called wrong. The error is at least half the gap."""
    jump, sigma = 2e-4, 2e-9

    def f(t):
        return 1e-3 * t + 0.05 * t**2 + jump * max(t - offset, 0.0)

    values = central(f)
    out = analyse(f(0.0), values, np.array([3 * sigma]))
    assert not out["kink"][0]
    gap = out["forward"][0] - out["backward"][0]
    assert out["error"][0] >= abs(gap) / 2
    # the one-sided slope at the point (the partial a hand-written ReLU gives) is within the
    # verdict's tolerance of the numeric value
    true = 1e-3 + (jump if offset < 0 else 0.0)
    assert abs(out["numeric"][0] - true) <= 10 * out["error"][0]


def test_a_jump_held_from_both_pairs_of_levels_is_told_from_a_smooth_loss():
    """A kink at the point whose jump is 1e-7 of the curvature's gap: below the jump test's
    floor (JUMP_RELATIVE of the gaps), but the same from both pairs of levels, as no smooth
    loss's (8x per doubling) and no rounding's is."""
    from gradcheck.core.stencil import held_jump

    def kinked(t):
        return 0.5 * t**2 + 1e-10 * max(t - 1e-13, 0.0)

    out = run(kinked)
    assert not out["kink"][0]  # the kink test does not see it
    assert held_jump(out)[0]
    assert out["jump"][0] == pytest.approx(1e-10, rel=1e-2)
    for smooth in (lambda t: 0.5 * t**2 + t**4, lambda t: np.exp(3 * t)):
        assert not held_jump(run(smooth, x=0.2))[0]
