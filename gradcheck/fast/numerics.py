"""Fast mode's numerical rules: step, tolerance and guarantees of a probe along a direction.

A probe of ``n`` elements moves them along ``w = z * max(1, |x|) / sqrt(n)``, ``z`` uniform of
unit variance: the ``1/sqrt(n)`` makes ``w`` as long as one coordinate step, whatever ``n``, so
the engine's step rule (:func:`gradcheck.core.numerics.optimal_step`) applies along ``w`` unchanged
and the step comes from the measured curvature instead of sitting at a clip that ignores
``n``. It compares ``D = f(x + h w) - f(x - h w)`` with ``A = a . span`` (``span`` the
displacement actually taken in the parameter's dtype). Everything here is in units of ``D``.
"""

from __future__ import annotations

import math

import numpy as np

from gradcheck.core.numerics import Tolerance, central_error
from gradcheck.core.stencil import KINK_NOISE, KINK_RELATIVE, analyse
from gradcheck.errors import InputError

# A typical element must move by this many units in the last place, or its span is mostly
# rounding (exact, since ``A`` uses the span taken, but then it barely moves at all).
MOVE_ULPS = 64.0


def direction_scale(n: int) -> float:
    """``1/sqrt(n)``: a direction over ``n`` elements as long as one coordinate step."""
    return 1.0 / math.sqrt(max(n, 1))


def pilot_step(eps: float, n: int) -> float:
    """The pilot's step along the unit-length ``w``: ``eps**(1/5) * n**(1/4)``.

    ``eps**(1/5)`` is the engine's pilot step for one element (third differences carry
    rounding ``noise / hp**3``). Along a direction over ``n`` loosely coupled elements, the
    third derivative ``sum f_ijk w_i w_j w_k`` averages many terms and shrinks as ``n`` grows,
    so a pilot at ``eps**(1/5)`` would see only its own rounding and force a step far below the
    best one; the ``n**(1/4)`` keeps it measurable, while each element still moves by only
    ``hp / sqrt(n)`` of its scale, less than the engine's pilot moves one element."""
    return eps ** (1 / 5) * max(n, 1) ** 0.25


def direction_step(noise: float, third: float, eps: float, n: int) -> float:
    """Step ``h`` along the unit-length ``w``: ``h* = (3 noise / |F'''|) ** (1/3)`` with
    ``F(s) = f(x + s w)``, as the engine's rule per element.

    Clipped above at :func:`pilot_step` (beyond it the pilot says nothing) and below
    where a typical element, moved by ``h / sqrt(n)`` of its scale, would move by fewer than
    ``MOVE_ULPS`` units in the last place. Not at ``eps**(1/3)``: along a direction over many
    elements ``F'''`` grows with ``n``, and that clip made the truncation error thousands of
    times the gradient's own rounding in big tensors. A non-finite pilot (an overflow, a cliff)
    takes the smallest step."""
    high = pilot_step(eps, n)
    low = min(high, MOVE_ULPS * eps * math.sqrt(max(n, 1)))
    if not np.isfinite(third):
        return low
    if third <= 0:
        return high
    return float(np.clip((3.0 * noise / third) ** (1 / 3), low, high))


MIN_FALSE_ALARM = 1e-300  # the rounding quantile's floor (as before)


def rounding_quantile(false_alarm: float) -> float:
    """``c = sqrt(2 ln(2 / false_alarm))``: ``P(|X| > c sigma) <= false_alarm`` for the
    hand-written gradient's rounding ``X`` in a probe.

    That rounding ``rho_i a_i`` (``|rho_i| <= rtol``) enters a probe as
    ``sum_i rho_i a_i span_i`` with ``span_i ~ 2h w_i``: for any fixed rounding pattern, a sum of
    independent uniform weights of standard deviation at most ``sigma = rtol ||a * 2h w / z||``.
    A uniform variable is strictly sub-Gaussian (``E exp(l z) = sinh(l sqrt 3) / (l sqrt 3) <=
    exp(l**2 / 2)``), so Chernoff's bound gives the tail ``2 exp(-c**2 / 2)`` (6.5 deviations
    at 1e-9 where a Gaussian needs 6.1)."""
    if not 0 < false_alarm < 1:
        raise InputError(f"false_alarm must be in (0, 1), got {false_alarm!r}")
    return math.sqrt(2.0 * math.log(2.0 / false_alarm))


def direction_tolerance(
    noise: float,
    half_step: float,
    third: float,
    rounding_norm: float,
    rtol: float,
    tol: Tolerance,
    quantile: float,
) -> float:
    """Allowed ``|D - A|`` for a correct gradient.

    ``safety`` times the central difference's own error in ``D`` units (``2h`` times
    :func:`gradcheck.core.numerics.central_error`: rounding ``2 noise`` + truncation
    ``h**3 |F'''| / 3``), plus ``quantile`` standard deviations of the hand-written rounding
    (see :func:`rounding_quantile`); ``rounding_norm`` is ``||a * 2h w / z||_2`` over the
    probed elements. A NaN from non-finite inputs passes nothing (see ``Record.passed``).
    """
    span = np.array(2.0 * half_step)
    with np.errstate(over="ignore", invalid="ignore"):
        fd = float(central_error(np.array(noise), span, third) * span)
        return float(tol.safety * fd + quantile * rtol * rounding_norm)


# The density of sum_i a_i z_i (z_i uniform, unit variance, ||a||_2 = 1) never exceeds this at
# any point, whatever a: 1/(2 sqrt 3) times the largest hyperplane section of the unit cube,
# sqrt(2) (K. Ball, "Cube slicing in R^n", 1986). A Gaussian's peak is 1/sqrt(2 pi) = 0.399.
SMALL_BALL_DENSITY = 1.0 / math.sqrt(6.0)


def small_probability(threshold: float) -> float:
    """``P(|X| <= t) <= 2 t / sqrt(6)`` for ``X`` any unit-variance combination of a direction's
    uniform weights (``SMALL_BALL_DENSITY``): the chance errors land within ``t`` of
    cancelling, whatever their number and signs."""
    return min(1.0, 2.0 * threshold * SMALL_BALL_DENSITY)


def miss_threshold(miss: float, probes: int) -> float:
    """``t`` with ``small_probability(t) ** probes = miss``: the ``|X|`` below which every one of
    ``probes`` independent directions must fall for an error to pass them all."""
    return miss ** (1.0 / max(probes, 1)) / (2.0 * SMALL_BALL_DENSITY)


def sensitivity(tolerance: float, half_step: float, scale: float, eps: float, t: float) -> float:
    """Smallest ``||e * max(1, |x|)||_2`` (errors ``e`` of the partials) whose chance to pass
    probes of tolerance ``tolerance`` is at most ``small_probability(t)`` per probe.

    Errors add ``-sum e_i span_i = -2h * scale * sum e_i s_i z_i``, Gaussian in ``z`` with
    standard deviation ``sigma = 2h scale ||e s||`` whatever their signs and number; a probe
    passes only if that lands within ``2T`` (the finite-difference error may oppose it by ``T``),
    i.e. ``|N| <= 2T / sigma``. An element moves at all only when ``h scale |z_i| s_i`` exceeds
    half a unit in the last place (``eps s_i / 2``), which adds ``eps / (2 h scale)`` to the
    ``|z|`` a miss needs. Infinite when ``t`` cannot be reached."""
    moved = eps / (2.0 * half_step * scale)
    room = t - moved
    if not room > 0 or not np.isfinite(tolerance):
        return float("inf")
    return 2.0 * tolerance / (2.0 * half_step * scale * room)


def decoding_levels(k: int) -> np.ndarray:
    """``k`` weights evenly spread over ``[-1, 1]``, one per group of a decoding probe."""
    return np.linspace(-1.0, 1.0, k) if k > 1 else np.ones(1)


def decoding_groups(signal: float, tolerance: float, most: int) -> int:
    """How many groups one decoding probe can tell apart at this signal-to-tolerance ratio.

    The ratio ``r' / r`` of a probe weighted ``c_g`` per group to the unweighted one reads
    ``c_g`` of the group holding a single wrong element, off by at most
    ``b = (T' + T) / (|r| - T)`` (both probes' errors, ``|c_g| <= 1``). Levels ``2 / (k - 1)``
    apart are told apart when ``b`` is under a quarter of that (twice the margin needed), so
    ``k = 1 + floor(1 / (2 b))`` with ``T' ~ T``; below 2 decoding cannot split (bisect)."""
    if not (abs(signal) > tolerance and np.isfinite(signal) and np.isfinite(tolerance)):
        return 1
    bound = 2.0 * tolerance / (abs(signal) - tolerance)
    if bound <= 0:
        return most
    return int(min(most, 1 + math.floor(1.0 / (2.0 * bound))))


# A direction's kink test: the steps, as multiples of the probe's own step, at which the loss is
# evaluated on both sides (the probe's step and two smaller ones, as the engine's refinement).
KINK_MULTIPLES = (0.25, 0.5, 1.0)
# How much faster than a jump at the point the extrapolated slope gap of a smooth loss must
# grow from one pair of levels to the next (it grows 8x per doubling; a jump stays put).
SMOOTH_GROWTH = 4.0


def kink_along(
    f0: float,
    central: dict[float, tuple[float, float, float]],
    noise: float,
    third: float = float("nan"),
) -> bool:
    """Whether the loss along a probe's direction, ``F(s) = f(x + s w)``, is not smooth at the
    probe's scale: a kink at the point or crossed by the steps (ReLU pre-activations at or near
    zero, ``abs`` at zero, max-pool ties).

    ``central`` maps each of ``KINK_MULTIPLES`` to ``(F(s), F(-s), s)`` at steps ``s`` taken
    along ``w``; ``noise`` bounds the rounding of one loss value; ``third`` is the pilot's
    ``|F'''|`` (with its margin), on which the probe's tolerance rests. Four signs, any of
    which says kink (each a departure from the smooth model beyond its noise):

    * the full check's own test for one element (:func:`gradcheck.core.stencil.analyse`): the
      gap between the one-sided slopes, ``g(s) = s F'' + O(s**3)``, does not double when the
      step doubles;
    * a jump at the point: the gap extrapolated to zero, ``2 g(s) - g(2s)``, is
      ``-F'''' s**3 / 2`` for a smooth loss (it grows 8x per doubling) but the jump ``J`` of
      the slope at a kink (it stays put); the analyse test misses it when the smooth part
      ``s F''`` of the gap dwarfs ``J`` (an L2 penalty along a direction over many weights);
    * central values that do not converge as ``s**2``: ``n(s) = F' + F''' s**2 / 6`` changes
      4x as much from ``2s`` to ``4s`` as from ``s`` to ``2s``; a kink crossed only by the
      larger steps breaks that;
    * central values that change from the smallest step to the largest by more than
      ``third`` allows: the loss is not smooth on the scale the pilot saw (a ReLU layer's
      many kinks, each with a small jump, spread over the steps can mimic a smooth curve of
      far larger curvature and pass the other three; the probe's tolerance then undercounts
      its truncation). A NaN ``third`` (not given) skips this sign.

    A false kink costs evaluations only (the tensor is then measured element by element, the
    full check's verdict); a missed one leaves the probe's failure standing (fail closed), as
    does any non-finite value."""
    levels = sorted(central)
    if not np.isfinite([f0, noise, *(v for c in central.values() for v in c)]).all():
        return False  # a NaN or an infinity explains nothing: the probe's failure stands
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        step = {m: float(central[m][2]) for m in levels}
        gap = {m: (central[m][0] - 2.0 * f0 + central[m][1]) / step[m] for m in levels}
        n = {m: (central[m][0] - central[m][1]) / (2.0 * step[m]) for m in levels}
        gap_noise = {m: 4.0 * noise / step[m] for m in levels}
        one = {
            m: (np.array([c[0]]), np.array([c[1]]), np.array([c[2]]), np.array([c[2]]))
            for m, c in central.items()
        }
        if bool(analyse(f0, one, np.array([noise]))["kink"][0]):
            return True
        a, b, c = levels
        jump_ab = 2.0 * gap[a] - gap[b]
        jump_bc = 2.0 * gap[b] - gap[c]
        jump_noise = KINK_NOISE * (2.0 * gap_noise[a] + gap_noise[b])
        if abs(jump_ab) > jump_noise and abs(jump_bc) <= SMOOTH_GROWTH * abs(jump_ab):
            return True
        low, high = n[b] - n[a], n[c] - n[b]
        central_noise = KINK_NOISE * noise * (1 / step[c] + 5 / step[b] + 4 / step[a])
        departure = abs(high - 4.0 * low)
        if departure > KINK_RELATIVE * (abs(high) + 4.0 * abs(low)) + central_noise:
            return True
        allowed = third * (step[c] ** 2 - step[a] ** 2) / 6.0
        spread_noise = KINK_NOISE * noise * (1 / step[c] + 1 / step[a])
        return bool(abs(n[c] - n[a]) > allowed + spread_noise)


# -- ratio matching and cheap confirmation (localization, gradcheck.fast.localize) ------------
# At most this many elements may match the probes' values as a single error before matching
# gives way to decoding and bisection: each costs a confirmation (CONFIRM_LEVELS), and more
# candidates mean the probes do not single out one element (a weak error, or several).
MATCH_MOST = 4
# A lead's own central differences, as multiples of its step (confirm_step): two levels give
# a Richardson value, an error estimate of the element's own and the kink test, as the
# engine's pilot does with two.
CONFIRM_LEVELS = (0.25, 0.5, 1.0)


def consistent_errors(
    discrepancy: np.ndarray, tolerance: np.ndarray, spans: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per element, the interval ``[low, high]`` of errors ``e`` that alone explain every
    probe: ``|r_j + e span_ij| <= T_j`` for all ``j`` (an error ``e = a_i - true_i`` adds
    ``-e span_ij`` to probe ``j``'s ``r_j = D - A``, whose own finite-difference error is
    within ``T_j``).

    ``discrepancy`` and ``tolerance`` have one entry per probe, ``spans`` is ``(probes,
    elements)``. Empty (``low > high``) where no single error fits: an element that did not
    move in a failing probe, or whose weights' ratios are not the probes' ratios. Exact
    interval arithmetic, no distributional assumption: the true single wrong element is always
    in the set when every probe's error is within its tolerance."""
    low = np.full(spans.shape[1], -np.inf)
    high = np.full(spans.shape[1], np.inf)
    for r, t, span in zip(discrepancy, tolerance, spans, strict=True):
        narrow(low, high, float(r), float(t), span)
    return low, high


def narrow(low: np.ndarray, high: np.ndarray, r: float, t: float, span: np.ndarray) -> None:
    """Intersect ``[low, high]`` in place with the errors one probe allows (see
    :func:`consistent_errors`); a probe that did not move an element must pass on its own."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        a = (-r - t) / span
        b = (-r + t) / span
    np.maximum(low, np.minimum(a, b), out=low)
    np.minimum(high, np.maximum(a, b, out=b), out=high)
    still = span == 0
    if still.any():
        if abs(r) > t or not np.isfinite(r):
            low[still], high[still] = np.inf, -np.inf
        # otherwise the NaN from 0/0 must not poison the interval: the probe allows any e
        else:
            low[still] = np.where(np.isnan(low[still]), -np.inf, low[still])
            high[still] = np.where(np.isnan(high[still]), np.inf, high[still])


# -- the likelihood ranking of single-error fits (gradcheck.fast.localize.scan) -----------------
# A lead whose fit a chance element would match this often, or less (chance_fit), is confirmed
# even when the hard intervals leave more than MATCH_MOST candidates: a false lead costs one
# confirmation (CONFIRM_LEVELS: 6 evaluations), no verdict, and the search goes on; at 0.05 it
# costs 0.3 evaluations on average, less than the probe (2) that would be added instead.
LEAD_CHANCE = 0.05


def single_fit(total: float, along: np.ndarray, power: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per element, the least-squares fit of every probe by one error there: with
    ``y_j = r_j / T_j`` (``total = |y|**2``) and ``s_j = span_ij / T_j``, ``along = s . y`` and
    ``power = s . s``, the residual ``min_e |y + e s|**2 = |y|**2 - (s . y)**2 / s . s`` at
    ``e = -(s . y) / (s . s)``. Weighting each probe by its own tolerance makes a residual a
    sum of comparable squares; an element that did not move (or whose fit overflows) keeps
    ``|y|**2``, error NaN. Computed in place: returns ``(residual, error)`` in the arrays
    ``along`` and ``power`` (a scan's chunk buffers, no temporary of their size)."""
    still = ~(power > 0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        error = np.divide(along, power, out=power)  # -e
        residual = np.multiply(along, error, out=along)  # (s . y)**2 / s . s
        np.subtract(total, residual, out=residual)
    still |= ~np.isfinite(residual)
    np.maximum(residual, 0.0, out=residual)  # rounding below an exact fit
    residual[still] = total
    np.negative(error, out=error)
    error[still] = np.nan
    return residual, error


def chance_fit(best: float, second: float, probes: int) -> float:
    """How likely the best single-error fit is a chance element's rather than the wrong one's,
    read off the runner-up's fit: ``(best / second) ** ((probes - 1) / 2)``.

    An element that carries no error fits ``probes`` values only by its weights' direction
    lying close to theirs: the residual is ``|y|**2 sin(theta)**2``, and ``theta`` of a
    random direction in ``probes`` dimensions falls below a small angle with a probability
    proportional to ``theta ** (probes - 1)`` (its density near any point of the sphere is
    finite: the weights are independent and uniform). The chance fits' residuals ``x`` near
    zero thus form a Poisson process whose mean count below ``x`` is proportional to
    ``x ** a``, ``a = (probes - 1) / 2``, whatever their number (which only sets the scale);
    ``u = x ** a`` is then a uniform process, and for its two smallest
    ``P(x_1 / x_2 <= q) = P(u_1 / u_2 <= q ** a) = q ** a``. The measured spread of the
    chance fits (the runner-up) stands in for the noise the tolerances overstate: a wrong
    element fits to the probes' actual noise, far below ``T``, and its ratio to the runner-up
    is what makes it a lead.
    A ranking, never a verdict: every lead is measured one by one before it is called wrong."""
    if not (np.isfinite(best) and np.isfinite(second) and second > 0 and probes >= 2):
        return 1.0
    return float(min(1.0, (max(best, 0.0) / second) ** ((probes - 1) / 2.0)))
