"""The arithmetic of a finite-difference stencil: from loss values at ``x +- m h`` (two or
three levels ``m``) to a numeric partial, its error estimate, the one-sided slopes and a kink
flag. Pure functions of loss values; :class:`gradcheck.core.differences.FiniteDifferences` evaluates
the points.
"""

from __future__ import annotations

import numpy as np

from gradcheck.core.numerics import richardson_rounding

# Kink test: how far (as a fraction of their size) the slope gaps at two steps may depart from
# proportionality before the element counts as a kink. A smooth loss departs by O(s**2 f''''/f'');
# a kink by at least 37% at one of two consecutive pairs of levels (see analyse).
KINK_RELATIVE = 0.15
# How many times its noise estimate a departure from proportionality must exceed to count. Lower
# than the verdict's safety factor on purpose: a kink taken for smooth biases the numeric value
# (a false alarm), while a smooth element taken for a kink is only called uncertain.
KINK_NOISE = 2.0
# The jump test (a small slope jump beside a large smooth gap): a jump extrapolated to a zero step
# counts only above this fraction of the gaps it comes from. The loss's rounding at the stencil's
# points can exceed the noise measured at x (a least-squares fit's residuals, and their rounding,
# grow with the step), and the extrapolation amplifies it; the ReLU kinks it is for jump by 25%
# of the gap and more, an L2 penalty's hidden jump by a few percent.
JUMP_RELATIVE = 1e-3
# A kink at the point: the jumps extrapolated from two pairs of levels agree within this fraction
# (one at t times the smallest step moves them apart by 3 t / 8 of their size; at the point only
# the curvature's own change, O(s**2), does). Tighter than KINK_RELATIVE: a kink taken for one at
# the point makes its one-sided slopes the subgradients' ends, while one taken for crossed only
# costs a round of smaller steps.
AT_POINT_RELATIVE = 0.02

# a level: f(x + s), f(x - s), and the up and down steps actually taken
Level = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def analyse(f0: float, central: dict[float, Level], noise: np.ndarray) -> dict[str, np.ndarray]:
    """Analyse central differences at two or three step levels (``central``: level -> values).

    Returns, per element, a Richardson value with an error estimate, the one-sided slopes
    at the smallest step, ``|f'''|``, the kink flag, and ``smooth``: the gaps scale and no
    jump shows between any two levels, not only the two smallest.

    Richardson: with central values ``n(s) = f' + a s**2 + b s**4``, ``R(s, 2s) = (4 n(s)
    - n(2s)) / 3`` leaves ``-4 b s**4``; with a third level, ``R(2s, 4s) - R(s, 2s) = -60 b
    s**4`` measures it, so ``R(s, 2s)`` is off by that difference / 15 and ``R(2s, 4s)`` by
    16/15 of it (plus rounding, larger at smaller steps): the better of the two is kept.
    With two levels only (the pilot), the error bar is the truncation of ``n(s)`` itself.

    Kinks: the gap between the one-sided slopes, ``g(s) = forward(s) - backward(s)``, is
    ``s f'' + O(s**3)`` for a smooth loss, so it doubles when the step doubles; a kink with
    a jump ``J`` at distance ``t s`` gives ``g(m s) = J (1 - t / m)``, which does not. An
    element meets a kink (``kink``) when the gap between its two smallest levels does not
    scale (beyond noise), whatever the jump's size; a kink seen only between the two larger
    levels lies outside the small stencil, whose Richardson value is then used alone.
    One-sided slopes within ``KINK_NOISE`` noise bounds of each other at both small levels
    are never a kink (``noise`` is the measured noise bound of the loss values: rounding is
    not a slope jump).

    Where the kink sits (``crossed``): only a kink at the point itself makes the one-sided
    slopes there the subgradients' ends. There each side is smooth, ``g(s) = J + s k +
    O(s**2)``, so the jump extrapolated to ``s = 0`` from two levels, ``J(s, 2s) = 2 g(s) -
    g(2s)``, is the same from ``(s, 2s)`` as from ``(2s, 4s)``. A kink at ``t s`` with ``0 <
    t < 2`` (between the point and the middle level; several of them, as a ReLU layer over a
    batch puts along one weight) moves it, and a smallest stencil whose sides agree within
    noise while the next one's do not has the kink beyond it: both are ``crossed``. The
    point is then differentiable, or its kink hidden among others, and the one-sided slopes
    prove nothing about the hand-written value: the caller shrinks the steps until the
    kink leaves the stencil (:meth:`gradcheck.core.differences.FiniteDifferences._isolate`).
    With two levels there is no third to tell: every kink counts as at the point.

    Central values that converge at no order a smooth loss allows (:func:`_erratic`) count
    as a kink crossed, whatever the gaps say: kinks with jumps of opposite signs on both
    sides hide from the gaps.
    """
    levels = sorted(central)
    n, half, gap, gap_noise, rounding = {}, {}, {}, {}, {}
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for m, (f_up, f_down, hu, hd) in central.items():
            half[m] = (hu + hd) / 2
            n[m] = (f_up - f_down) / (hu + hd)
            gap[m] = (f_up - f0) / hu - (f0 - f_down) / hd
            gap_noise[m] = 4.0 * noise / half[m]
            rounding[m] = noise / half[m]

        def scales(a, b, noise=True):
            """Whether the slope gap grows in proportion to the step from level a to b
            (``noise``: or departs from it by no more than noise could)."""
            ratio = half[b] / half[a]
            residual = np.abs(gap[b] - ratio * gap[a])
            allowed = KINK_RELATIVE * (np.abs(gap[b]) + ratio * np.abs(gap[a]))
            if noise:
                allowed = allowed + KINK_NOISE * (gap_noise[b] + ratio * gap_noise[a])
            return residual <= allowed

        def richardson(a, b):
            return (half[b] ** 2 * n[a] - half[a] ** 2 * n[b]) / (half[b] ** 2 - half[a] ** 2)

        a, b = levels[0], levels[1]
        smooth = scales(a, b)
        # the slope jump at a zero step the two smallest levels imply, and its noise
        jump, jump_noise = _jump(gap, gap_noise, half, a, b)
        # its rounding alone (no JUMP_RELATIVE floor), and the jump the next pair implies
        span = half[b] - half[a]
        jump_rounding = KINK_NOISE * (half[b] * gap_noise[a] + half[a] * gap_noise[b]) / span
        jump_far = np.full(jump.shape, np.nan)
        far = np.zeros(smooth.shape, dtype=bool)
        if len(levels) > 2:
            # a small jump next to a large smooth gap (an L2 penalty's) keeps the gaps'
            # proportion within KINK_RELATIVE; their extrapolations to a zero step do not
            # grow like the step cubed, as a smooth loss's do
            near, far = _jump_crossed(gap, gap_noise, half, a, b, levels[2])
            smooth &= ~near
        rich_ab = richardson(a, b)
        truncation = np.abs(n[a] - n[b]) * half[a] ** 2 / (half[b] ** 2 - half[a] ** 2)
        numeric = rich_ab
        error = truncation + richardson_rounding(noise, half[a])
        both = smooth  # every pair of levels smooth (the pilot's ladders read it too)
        erratic = np.zeros(smooth.shape, dtype=bool)
        # a jump the same from (a, b) as from (b, c), beyond noise, whatever the gaps'
        # proportions say: a kink at the point, for callers that know kinks are about
        steady = np.zeros(smooth.shape, dtype=bool)
        if len(levels) > 2:
            c = levels[2]
            jump_far = _jump(gap, gap_noise, half, b, c)[0]
            rich_bc = richardson(b, c)
            spread = np.abs(rich_bc - rich_ab)
            err_ab = spread / 15.0 + richardson_rounding(noise, half[a])
            err_bc = spread * 16.0 / 15.0 + richardson_rounding(noise, half[b])
            both = smooth & scales(b, c) & ~far
            numeric = np.where(both & (err_bc < err_ab), rich_bc, rich_ab)
            error = np.where(both, np.minimum(err_ab, err_bc), error)
            # a loss that is C1 but not C2 here (relu(z)**2 with z = 0: a jump in f'')
            # leaves central differences an error linear in the step, which the h**2
            # extrapolation above does not remove: detect the order, extrapolate linearly
            linear = _first_order(n[a], n[b], n[c], rounding[a])
            # central values that converge at no order: kinks the slope gaps cannot see (a
            # jump up on one side and down on the other cancel in the gap but add in the
            # central value), or steps beyond the function's own scale; no extrapolation holds
            erratic = _erratic(n, half, rounding, a, b, c) & ~linear
            steady = _jump_at_point(gap, gap_noise, half, a, b, c)
            both &= ~erratic
            lin_ab = (half[b] * n[a] - half[a] * n[b]) / (half[b] - half[a])
            lin_bc = (half[c] * n[b] - half[b] * n[c]) / (half[c] - half[b])
            numeric = np.where(linear, lin_ab, numeric)
            error = np.where(linear, np.abs(lin_ab - lin_bc) / 3.0 + 6.0 * rounding[a], error)
        # smooth only as far as noise can tell: a kink within the stencil whose jump the
        # noise hides moves the central value by up to half the slope gap, which
        # Richardson's error does not see (a float32 ReLU unit 1/20 of a step from its kink:
        # the central value off by 20% with an error estimate of 1%); the gap bounds it
        hidden = smooth & ~scales(a, b, noise=False)
        error = np.where(hidden, np.fmax(error, np.abs(gap[a]) / 2), error)
        third = 6.0 * np.abs(n[b] - n[a]) / (half[b] ** 2 - half[a] ** 2)
        fp, fm, hu, hd = central[a]
        forward = (fp - f0) / hu
        backward = (f0 - fm) / hd
        # how far the measured one-sided slopes may sit from the true ones: their change
        # from the smallest to the next level (curvature), and noise
        fp_b, fm_b, hu_b, hd_b = central[b]
        slack = (
            np.abs((fp_b - f0) / hu_b - forward)
            + np.abs((f0 - fm_b) / hd_b - backward)
            + KINK_NOISE * gap_noise[a]
        )
        # noise is not a kink: one-sided slopes that agree within the measured noise at both
        # small levels are those of a smooth function, whatever the gaps' proportions
        quiet = {m: np.abs(gap[m]) <= KINK_NOISE * gap_noise[m] for m in (a, b)}
        kink = ~smooth & ~(quiet[a] & quiet[b]) & np.isfinite(gap[a])
        crossed = kink & quiet[a]  # the smallest stencil is clear; the next one is not
        if len(levels) > 2:
            crossed |= kink & ~_jump_at_point(gap, gap_noise, half, a, b, levels[2])
            # central values that do not converge: smaller steps, as for a kink crossed
            kink |= erratic
            crossed |= erratic
        # a crossed stencil's central value at the smallest step, which may still see the
        # kink: no Richardson value, and an error as large as the kink's reach
        reach = np.abs(n[a] - n[b]) + np.abs(gap[a]) / 2 + rounding[a]
        # every one-sided slope measured, for an element whose kinks stay unisolated
        slopes = np.stack(
            [(v[0] - f0) / v[2] for v in central.values()]
            + [(f0 - v[1]) / v[3] for v in central.values()]
        )
    return {
        "numeric": np.where(kink, n[a], numeric),
        "error": np.where(crossed, reach, np.where(kink, np.abs(gap[a]) / 2, error)),
        "forward": forward,
        "backward": backward,
        "slack": slack,
        "kink": kink,
        "crossed": crossed,
        "jump": jump,
        "jump_rounding": jump_rounding,
        "jump_far": jump_far,
        "jump_noise": jump_noise,
        "lowest": np.min(slopes, axis=0),
        "highest": np.max(slopes, axis=0),
        "third": third,
        "smooth": both,
        "steady": steady,
    }


def _jump(
    gap: dict[float, np.ndarray],
    gap_noise: dict[float, np.ndarray],
    half: dict[float, np.ndarray],
    p: float,
    q: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The slope gap extrapolated linearly to a zero step from levels ``p < q``, and the
    ``KINK_NOISE`` bound of its noise (at least ``JUMP_RELATIVE`` of the larger gap). A
    smooth loss leaves ``-f'''' s**3 / 2`` (``g(s) = s f''
    + s**3 f'''' / 12``); a kink at the point, its jump ``J`` whatever the smooth part."""
    span = half[q] - half[p]
    value = (half[q] * gap[p] - half[p] * gap[q]) / span
    noise = KINK_NOISE * (half[q] * gap_noise[p] + half[p] * gap_noise[q]) / span
    return value, np.maximum(noise, JUMP_RELATIVE * np.maximum(np.abs(gap[p]), np.abs(gap[q])))


def _jump_crossed(
    gap: dict[float, np.ndarray],
    gap_noise: dict[float, np.ndarray],
    half: dict[float, np.ndarray],
    a: float,
    b: float,
    c: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Kinks the jump test sees at levels ``a < b < c``: ``(near, far)``, a jump within reach
    of the pair ``(a, b)`` and one only of ``(b, c)``.

    With ``g(s) = k s + m s**3``, the jump extrapolated from levels ``p, q`` is ``-m s_p s_q
    (s_p + s_q)``: from ``(b, c)`` it is that product's ratio (8 for doubling steps) times
    the one from ``(a, b)``. Beyond noise and ``KINK_RELATIVE`` of the two, it is no smooth
    loss: near if the ``(a, b)`` jump itself stands out of its noise, far otherwise."""
    (j_ab, noise_ab), (j_bc, noise_bc) = (
        _jump(gap, gap_noise, half, a, b),
        _jump(gap, gap_noise, half, b, c),
    )
    growth = half[b] * half[c] * (half[b] + half[c]) / (half[a] * half[b] * (half[a] + half[b]))
    residual = np.abs(j_bc - growth * j_ab)
    cubic = residual <= KINK_RELATIVE * (np.abs(j_bc) + growth * np.abs(j_ab)) + (
        noise_bc + growth * noise_ab
    )
    near = ~cubic & (np.abs(j_ab) > noise_ab)
    return near, ~cubic & ~near


def _jump_at_point(
    gap: dict[float, np.ndarray],
    gap_noise: dict[float, np.ndarray],
    half: dict[float, np.ndarray],
    a: float,
    b: float,
    c: float,
) -> np.ndarray:
    """Whether the slope gaps at levels ``a < b < c`` are those of one kink at the point:
    the jump extrapolated to a zero step (``g(s) = J + s k`` on each pair of levels) is the
    same, beyond noise, from ``(a, b)`` as from ``(b, c)``, and not buried in noise."""
    (j_ab, noise_ab), (j_bc, noise_bc) = (
        _jump(gap, gap_noise, half, a, b),
        _jump(gap, gap_noise, half, b, c),
    )
    steady = np.abs(j_ab - j_bc) <= AT_POINT_RELATIVE * (np.abs(j_ab) + np.abs(j_bc)) + (
        noise_ab + noise_bc
    )
    return steady & (np.abs(j_ab) > noise_ab)


def _erratic(
    n: dict[float, np.ndarray],
    half: dict[float, np.ndarray],
    rounding: dict[float, np.ndarray],
    a: float,
    b: float,
    c: float,
) -> np.ndarray:
    """Whether central values ``n`` at levels ``a < b < c`` converge at no order a smooth loss
    allows: with ``n(s) = f' + A s**2 + B s**4`` (``A`` and ``B`` of one sign, the regime in
    which Richardson's error estimate holds), the change from ``b`` to ``c`` is between
    ``r2`` and ``r4`` times the change from ``a`` to ``b`` (4 and 16 for doubling steps),
    beyond ``KINK_RELATIVE`` of them and ``KINK_NOISE`` rounding bounds. (First order, a jump
    in ``f''``, is :func:`_first_order`'s and is left to the caller.)

    A ReLU layer puts several kinks along one weight; kinks crossed on both sides with jumps
    of opposite signs leave the one-sided slopes' gap growing with the step as a smooth
    loss's does, yet move the central values by a share of their jumps that changes little
    with the step: changes that shrink slower than the step (CS231n's two-layer net, seed 11:
    0.5x per halving, a partial off by 2e-3 of its value with an error estimate of 2e-4)."""
    low, high = n[b] - n[a], n[c] - n[b]
    sa, sb, sc = half[a], half[b], half[c]
    r2 = (sc**2 - sb**2) / (sb**2 - sa**2)
    r4 = (sc**4 - sb**4) / (sb**4 - sa**4)

    def noise(r: np.ndarray) -> np.ndarray:  # of high - r low
        return KINK_NOISE * (rounding[c] + (1.0 + r) * rounding[b] + r * rounding[a])

    sign = np.where(low < 0, -1.0, 1.0)
    size, ahead = np.abs(low), sign * high
    slower = ahead < r2 * (1.0 - KINK_RELATIVE) * size - noise(r2)
    faster = ahead > r4 * (1.0 + KINK_RELATIVE) * size + noise(r4)
    return (slower | faster) & np.isfinite(high) & np.isfinite(low)


def _first_order(
    n_a: np.ndarray, n_b: np.ndarray, n_c: np.ndarray, rounding: np.ndarray
) -> np.ndarray:
    """Whether central values at steps s, 2s, 4s converge to first order (error ~ s).

    Smooth: differences between levels grow 4x per doubling (error ~ s**2); a jump in the
    second derivative makes them grow 2x. Differences buried in rounding say nothing.
    """
    low, high = n_b - n_a, n_c - n_b
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = high / low
    visible = np.abs(low) > 10.0 * rounding
    return visible & (ratio > 1.4) & (ratio < 2.8)


# Pilot ladder: consecutive third-derivative estimates within this factor have converged (the
# asymptotic regime, where they differ by O(h**2)); a slope difference within this many
# rounding bounds says nothing but "below the noise".
LADDER_AGREE = 2.0
LADDER_RESOLVE = 4.0


def ladder_third(
    slopes: list[float], halves: list[float], noise: float
) -> tuple[float, float, str] | None:
    """Read the pilot ladder: central slopes at half-steps ``halves`` (shrinking), loss noise
    bound ``noise``. ``None``: go one level down. Otherwise ``(third, largest, how)``:

    * ``"converged"``: the estimates of ``|f'''|`` from the last two pairs of levels agree
      within ``LADDER_AGREE``; ``third`` is the larger, ``largest`` the largest step used;
    * ``"noise"``: the last two slopes differ by no more than ``LADDER_RESOLVE`` rounding
      bounds: the truncation there is below the noise, so ``third`` is the most that
      difference could hide (which puts the optimal step near the current one).

    Far above the function's own scale the estimates change by ~64x per level (a slope
    falling like ``1/h``), so they never agree there: the ladder goes down until it reaches
    that scale, whatever the magnitude of ``x``.
    """
    k = len(slopes) - 1
    if k < 1 or not (np.isfinite(slopes[k]) and np.isfinite(slopes[k - 1])):
        return None
    # float64 arithmetic, not Python floats: at |x| ~ 1e300 a squared step overflows, and the
    # curvature estimates then rightly come out as 0 (the function is linear on that scale)
    h = np.asarray(halves, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        difference = abs(np.float64(slopes[k - 1]) - np.float64(slopes[k]))
        spread = h[k - 1] ** 2 - h[k] ** 2
        rounding = noise / h[k - 1] + noise / h[k]
        if difference <= LADDER_RESOLVE * rounding:
            third = 6.0 * LADDER_RESOLVE * rounding / spread
            return (float(third), float(h[k - 1]), "noise") if np.isfinite(third) else None
        if k >= 2 and np.isfinite(slopes[k - 2]):
            earlier_spread = h[k - 2] ** 2 - h[k - 1] ** 2
            earlier = (
                6.0 * abs(np.float64(slopes[k - 2]) - np.float64(slopes[k - 1])) / (earlier_spread)
            )
            latest = 6.0 * difference / spread
            agree = max(earlier, latest) <= LADDER_AGREE * min(earlier, latest)
            if np.isfinite(earlier) and np.isfinite(latest) and agree:
                return float(max(earlier, latest)), float(h[k - 2]), "converged"
    return None


def held_jump(out: dict[str, np.ndarray]) -> np.ndarray:
    """Where an :func:`analyse` of three levels shows one jump at the point beyond its
    rounding, the same (within ``AT_POINT_RELATIVE``) from both pairs of levels, however
    small beside the curvature's gap: a smooth loss's extrapolated jump grows 8x per doubling
    of the steps, and rounding does not repeat itself. (:func:`_jump_at_point` asks more: a
    jump beyond ``JUMP_RELATIVE`` of the gaps, for every element; this is for an element
    whose verdict fails by no more than that jump.)"""
    jump, far, rounding = out["jump"], out["jump_far"], out["jump_rounding"]
    with np.errstate(invalid="ignore"):
        same = np.abs(jump - far) <= AT_POINT_RELATIVE * (np.abs(jump) + np.abs(far)) + rounding
        return same & (np.abs(jump) > rounding) & np.isfinite(far)
