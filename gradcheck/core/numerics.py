"""Every numerical choice of the finite-difference check, each with its reason.

Notation: ``f`` is the loss, ``x`` one parameter element, ``h`` the step, ``eps`` the machine
epsilon of the coarser of the parameter's and the loss's dtype.

Error model of the central difference ``(f(x+h) - f(x-h)) / 2h``:

* truncation: ``h**2 * |f'''| / 6``;
* rounding: the loss is only known to ``noise``, so the quotient carries ``noise / h``.

The noise is **measured** (:func:`ecnoise`, More and Wild's difference table of a few loss
values at a tiny spacing): a loss with cancellation inside (a least-squares fit with parameters
~1e4 and residuals ~1e-4) is millions of ulps noisy, a clean one a few. ``noise_ulps * eps *
|f|`` (:func:`evaluation_noise`) is only the floor; the bound used is :func:`noise_bound`.

The step minimising truncation + rounding is ``h* = (3 noise / |f'''|) ** (1/3)``
(:func:`scale_free_step`). ``|f'''|`` comes from a pilot ladder of central differences at steps
shrinking 4x per level until two consecutive third-derivative estimates agree, or the
differences sink into the measured noise (:func:`gradcheck.core.stencil.ladder_third`), so the
step fits the function's own scale: a parameter of 1e-6 whose loss varies on that scale gets a
step far below 1e-6. ``max(1, |x|)`` only says where the ladder starts.

Where even the best central step leaves an error above ``ACCURACY_TRIGGER`` of the partials (a
loss large against its variation on its own scale), the main pass extrapolates central values
at ``h`` and ``2h`` instead (:func:`fourth_order_pays`, :func:`fourth_order_step`), its
truncation bounded by the pilot's ``|f^(5)|`` (:func:`ladder_fifth`). Safety margins saturate at
float64's largest number (:func:`margined`): a third derivative near 1e308 is still measured.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

from gradcheck.errors import InputError

MAX_NOISE_ULPS = 2.0**52  # float64 has 52 fraction bits: that many ulps leave none
MAX_RTOL = 0.5  # |2n - n| <= 0.5 * |2n|: from here on a factor-2 bug passes


def number(
    option: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    closed_low: bool = False,
    what: str,
) -> float:
    """Validate a numeric option: a real, finite number in ``(low, high)`` (``[low, high)``
    with ``closed_low``), else :class:`InputError` naming ``option`` and saying ``what`` it
    must be. NaN and infinities are refused: a non-finite setting makes every comparison
    built on it meaningless, and an infinite tolerance passes anything."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Real, np.floating)):
        raise InputError(f"{option} must be {what}, got {value!r} ({type(value).__name__})")
    as_float = float(value)
    inside = math.isfinite(as_float)
    if inside and low is not None:
        inside = as_float >= low if closed_low else as_float > low
    if inside and high is not None:
        inside = as_float < high
    if not inside:
        raise InputError(f"{option} must be {what}, got {value!r}")
    return as_float


@dataclass(frozen=True)
class Tolerance:
    """How far a hand-written partial may sit from the finite-difference one and still pass.

    An element passes when ``|analytic - numeric| <= safety * err + rtol * max(|analytic|,
    |numeric|)``, where ``err`` is the engine's estimate of the finite-difference error of that
    element (truncation + rounding, see :func:`central_error`).

    Attributes:
        safety: how many estimated errors a discrepancy must exceed to count as wrong. The
            estimate is an order of magnitude, not a bound, hence a margin of 10.
        noise_ulps: the floor of the noise bound, in units in the last place of ``|f|``: the
            engine measures the noise of the loss (:func:`ecnoise`) and never assumes less
            than this (a rounded value is off by half an ulp; a few operations, a few ulps).
        rtol: relative floor; ``None`` means ``sqrt(eps)`` of the parameter dtype, the accuracy
            a hand-written gradient in that precision can promise (its own rounding).
    """

    safety: float = 10.0
    noise_ulps: float = 1.0
    rtol: float | None = None

    def __post_init__(self) -> None:
        number("Tolerance.safety", self.safety, low=0.0, what="> 0 and finite")
        number(
            "Tolerance.noise_ulps",
            self.noise_ulps,
            low=0.0,
            high=MAX_NOISE_ULPS,
            what=f"a finite number in (0, {MAX_NOISE_ULPS:.3g}) (at 2**52 ulps a float64 loss "
            "has no significant digit left)",
        )
        if self.rtol is not None:
            number(
                "Tolerance.rtol",
                self.rtol,
                low=0.0,
                high=MAX_RTOL,
                closed_low=True,
                what=f"None or a finite number in [0, {MAX_RTOL:g}) (a relative floor of "
                f"{MAX_RTOL:g} passes a partial twice its true size, a factor-2 bug)",
            )

    def relative_floor(self, dtype: np.dtype) -> float:
        """The relative floor for a parameter of this dtype."""
        return float(np.sqrt(machine_eps(dtype))) if self.rtol is None else self.rtol


def step_rule(richardson: bool) -> str:
    """The step rule in words: the one description the report, the pytest plugin's header and
    the command line show (keep it true to :func:`scale_free_step` and the engine)."""
    refine = "on every element" if richardson else "where the verdict needs it"
    return (
        "central differences, h = (3 noise / |f'''|)^(1/3), noise measured (ECnoise), "
        "|f'''| from a pilot ladder on the function's own scale (fourth order at h, 2h where "
        f"that cannot reach {ACCURACY_TRIGGER:g} of the partials); Richardson on h/4, h/2 "
        f"(and 2h, 4h where smooth and still off) {refine}"
    )


def machine_eps(dtype: np.dtype) -> float:
    """Machine epsilon of a floating dtype (float64 for anything else)."""
    return _eps_of(np.dtype(dtype))


@functools.cache
def _eps_of(dtype: np.dtype) -> float:
    """:func:`machine_eps`, once per dtype: a check asks it dozens of times per tensor."""
    if np.issubdtype(dtype, np.floating):
        return float(np.finfo(dtype).eps)
    return float(np.finfo(np.float64).eps)


def coarser_dtype(*dtypes: np.dtype | None) -> np.dtype:
    """The floating dtype with the largest epsilon among ``dtypes`` (float64 if none is).

    A hand-written gradient computed in float32 is only as precise as float32, even for
    float64 parameters: the tolerance's relative floor must come from the coarser of the two.
    """
    try:
        return _coarser(dtypes)  # once per combination: the full check asks once per tensor
    except TypeError:  # an unhashable dtype-like
        return _coarser.__wrapped__(dtypes)


@functools.cache
def _coarser(dtypes: tuple[Any, ...]) -> np.dtype:
    floats = [np.dtype(d) for d in dtypes if d is not None and np.issubdtype(d, np.floating)]
    return max(floats, key=machine_eps, default=np.dtype(np.float64))


def coarser_eps(*dtypes: np.dtype) -> float:
    """The largest epsilon among dtypes: the loss is only as precise as its coarsest input."""
    try:
        return _coarser_eps(dtypes)  # once per combination: the pilot asks once per level
    except TypeError:  # an unhashable dtype-like
        return _coarser_eps.__wrapped__(dtypes)


@functools.cache
def _coarser_eps(dtypes: tuple[Any, ...]) -> float:
    return max(machine_eps(d) for d in dtypes)


def step_bounds(x: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest step allowed at ``x``.

    ``eps**(1/3)`` is optimal when ``|f'''| ~ |f|``; below it rounding dominates whatever the
    curvature. ``eps**(1/5)`` is optimal for the pilot's third differences; above it the step
    crosses kinks (ReLU, max) too often. Both scale with ``max(1, |x|)`` so the step stays
    representable for large parameters.
    """
    scale = np.maximum(1.0, np.abs(x.astype(np.float64)))
    return eps ** (1 / 3) * scale, eps ** (1 / 5) * scale


def pilot_step(x: np.ndarray, eps: float) -> np.ndarray:
    """Step for estimating ``f'''`` by third differences: ``eps**(1/5) * max(1, |x|)``.

    Third differences carry rounding ``noise / h**3``, so they need a larger step than first
    differences; ``eps**(1/5)`` balances that against their own ``h**2`` truncation.
    """
    return step_bounds(x, eps)[1]


def optimal_step(x: np.ndarray, noise: float, third: float, eps: float) -> np.ndarray:
    """Central-difference step minimising truncation + rounding, clipped to :func:`step_bounds`.

    ``h* = (3 noise / |f'''|) ** (1/3)``; ``third`` is the largest ``|f'''|`` the pilot saw on
    this tensor (a larger value is the safe side: a smaller step).
    """
    low, high = step_bounds(x, eps)
    if third <= 0 or not np.isfinite(third):
        return high
    return np.clip((3.0 * noise / third) ** (1 / 3), low, high)


def taken_steps(x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The points ``x + h`` and ``x - h`` in ``x``'s dtype, and the distance actually spanned.

    ``x + h`` is rounded to the dtype, so the step taken is ``(x + h) - x``, not ``h``
    (scipy's ``_numdiff``, numdifftools' ``make_exact``). Dividing by the true span removes
    that representation error entirely.
    """
    with np.errstate(over="ignore"):
        h = h.astype(x.dtype)
        upper = x + h
        lower = x - h
    span = upper.astype(np.float64) - lower.astype(np.float64)
    # a point past the dtype's largest value is infinite: no difference quotient there (NaN,
    # a nonfinite element) rather than a finite value divided by an infinite span (0)
    return upper, lower, np.where(np.isfinite(upper) & np.isfinite(lower), span, np.nan)


def taken_step(x: np.floating, h: float) -> tuple[np.floating, np.floating, float]:
    """:func:`taken_steps` for one element (``x`` a NumPy scalar of the parameter's dtype):
    the same points and span, bit for bit, without the fixed cost of array operations (the
    pilot ladder asks once per level)."""
    if type(x) is np.float64:  # Python float arithmetic: the same bits, no warning to silence
        upper, lower = np.float64(float(x) + h), np.float64(float(x) - h)
    else:
        with np.errstate(over="ignore"):
            step = x.dtype.type(h)
            upper = x + step
            lower = x - step
    if not (math.isfinite(upper) and math.isfinite(lower)):
        return upper, lower, math.nan
    return upper, lower, float(upper) - float(lower)


def evaluation_noise(values: np.ndarray, eps: float, tol: Tolerance) -> np.ndarray:
    """Absolute uncertainty of loss values: ``noise_ulps * eps * |f|`` (at least a tiny floor)."""
    return tol.noise_ulps * eps * np.maximum(np.abs(values), TINY)


def central_error(noise: np.ndarray, span: np.ndarray, third: float) -> np.ndarray:
    """Error estimate of a central difference: rounding ``2 noise / span`` + truncation.

    ``span`` is ``2h``; truncation is ``h**2 |f'''| / 6`` with the pilot's ``|f'''|``.
    """
    half = span / 2.0
    with np.errstate(over="ignore", invalid="ignore"):  # inf: a bound that passes nothing
        # half * third first: half**2 underflows to 0 at steps below 1e-162, and the
        # truncation with it, though third may be 1e307
        return 2.0 * noise / span + half * (half * third) / 6.0


# -- measured noise (More and Wild, "Estimating computational noise", SIAM J. Sci. Comput.
# 33(3), 2011) -------------------------------------------------------------------------------
NOISE_OFFSETS = (-3, -2, -1, 1, 2, 3)  # with f0: seven equally spaced values, six loss calls
NOISE_SIGMAS = 3.0  # the noise bound, in measured standard deviations (seven values estimate
# a standard deviation to within a factor of about 2)
NOISE_RESCALE = 64.0  # the spacing's change after a table that saw no noise or only slope
NOISE_TRIES = 4


def ecnoise(values: np.ndarray) -> tuple[float, str]:
    """Standard deviation of the noise in ``values``, loss values at equally spaced points.

    More and Wild's ECnoise: the k-th differences of a smooth function at a tiny spacing
    ``d`` are ``d**k f^(k)``, vanishing with ``k``; those of noise of deviation ``sigma`` have
    mean square ``sigma**2 (2k)! / (k!)**2``. The estimate at order ``k`` is accepted when
    orders ``k .. k+2`` agree within 4x (noise dominates them) and the k-th differences
    change sign (they are not a smooth trend). Returns ``(sigma, status)``; ``status`` is
    ``"measured"``, ``"flat"`` (at least half the first differences are exactly 0: the
    spacing is below the loss's resolution, so try a larger one) or ``"slope"`` (no order
    is noise-dominated, the values vary by more than 10%, or the table straddles a kink:
    try a smaller spacing).

    A kink is not noise: a table across a ReLU's kink (a max-pool tie, ``abs`` at 0) has
    second differences all but zero except at the one or two next to the kink, whose
    higher differences then pass the test above with a "noise" of the jump times the
    spacing (1e-9 for a loss whose rounding is 1e-16), which would loosen every tolerance of
    the check. Noise spreads over all of them (:func:`_one_kink`).
    """
    # (array methods rather than numpy's module functions: the same reductions, without their
    # wrappers' fixed cost; a check builds a table or two, with a dozen reductions each)
    f = np.asarray(values, dtype=np.float64)
    count = f.size
    if not np.isfinite(f).all():
        return float("nan"), "slope"
    with np.errstate(over="ignore", invalid="ignore"):  # past float64's range: "too much"
        spread = f.max() - f.min()
        if spread > 0.1 * np.abs(f).max() and not _linear(f):
            return float("nan"), "slope"
    # mostly no change at all, before the kink test: a staircase (a loss that reads the
    # parameter through a float32 cast, 780 of its ulps per step at x = 0.04) moves once in a
    # table of seven, which the kink test would take for a kink and send to a smaller spacing,
    # flat there, and the staircase never seen
    with np.errstate(over="ignore", invalid="ignore"):
        if np.count_nonzero(f[1:] == f[:-1]) >= count / 2:
            return 0.0, "flat"
        if _one_kink(f):
            return float("nan"), "slope"
    levels, changes_sign = [], []
    gamma = 1.0
    diff = f
    for k in range(1, count):
        diff = diff[1:] - diff[:-1]
        gamma *= 0.5 * k / (2 * k - 1)
        # the root mean square, scaled first: differences of values near float64's largest
        # would overflow when squared
        largest = float(np.abs(diff).max())
        rms = largest * math.sqrt(((diff / largest) ** 2).mean()) if largest > 0 else 0.0
        levels.append(math.sqrt(gamma) * rms)
        changes_sign.append(bool(diff.min() < 0 < diff.max()))
        # the windows in order, each as soon as its three orders are known: the first that
        # passes is the answer, so the higher orders need not be computed
        k = len(levels) - 3
        if k >= 0:
            window = levels[k : k + 3]
            if max(window) <= 4.0 * min(window) and changes_sign[k]:
                return levels[k], "measured"
    return float("nan"), "slope"


# A table whose values vary by more than 10% of their size is taken at too large a spacing
# (More and Wild's test), unless the variation is a straight line: its second differences at
# most this fraction of its first. A loss that is small by cancellation (a sum of terms ~1e4
# that comes to ~1e-9) varies by far more than its size over any spacing, yet its table is a
# slope plus rounding of the terms: no spacing would pass the 10% test, and the noise would be
# left to the floor, ulps of a value that is all rounding.
LINEAR = 0.01


def _linear(f: np.ndarray) -> bool:
    """Whether a table's second differences are at most ``LINEAR`` of its first: a slope plus
    noise, not a curve over the table (the spacing is far below the function's scale)."""
    first = f[1:] - f[:-1]
    second = first[1:] - first[:-1]
    return bool(np.abs(second).max() <= LINEAR * np.abs(first).max())


# A table's second differences are a kink's when the one or two largest adjacent ones hold all but
# this fraction of their energy (sum of squares): Gaussian noise over five of them does so with a
# probability far below 1e-6; a kink whose jump times the spacing is 100x the rounding, always.
KINK_ENERGY = 1e-4
# ... and when that largest one is at least this many units in the last place of the values: a
# loss rounded to its last bits has second differences of one or two ulps, one of them often
# alone (quantization, measured as noise: it is tiny either way).
KINK_ULPS = 64.0
# A second difference this small beside the table's largest is a straight stretch's (rounding),
# not noise: two such in a table of seven values are straight stretches between kinks.
STRAIGHT = 1e-3


def _one_kink(f: np.ndarray) -> bool:
    """Whether the values ``f`` (a noise table) straddle a kink: their second differences
    are far above the values' last bits (``KINK_ULPS``; float32 ulps when every value is a
    float32 number, a float32 loss read as float64), and zero but at one or two adjacent
    positions (within ``KINK_ENERGY`` of their energy), or at least two of them next to
    nothing beside the largest (``STRAIGHT``: straight stretches between several kinks).

    A smooth loss's curvature puts about the same second difference at every position
    (``f'' d**2``, changing by ``d**3 f'''``), which can outweigh "zero" beside a kink: a
    trained ReLU net's unit 3e-11 from its kink, in a table at spacing 1e-8 whose curvature
    was 5% of the kink's second difference, read as noise 1e6 times the loss's rounding, and
    the stencil's kink test, loosened by that noise, called the unit smooth. So the same
    tests run on the second differences less their median (the curvature's) too."""
    first = f[1:] - f[:-1]
    second = first[1:] - first[:-1]  # np.diff(f, 2), without its wrapper
    if not second.size:
        return False
    top = float(np.abs(f).max())
    narrow = np.float32 if (f.astype(np.float32) == f).all() else np.float64
    floor = KINK_ULPS * float(np.spacing(narrow(top)))
    if _kinked(second, floor, 2):
        return True
    # less the curvature: the median's own position is then 0, so straight stretches take
    # one position more to count
    return second.size > 2 and _kinked(second - np.median(second), floor, 3)


def _kinked(second: np.ndarray, floor: float, straight: int) -> bool:
    """:func:`_one_kink`'s tests on second differences ``second``: the largest above
    ``floor``, and all but one adjacent pair within ``KINK_ENERGY`` of their energy, or at
    least ``straight`` of them within ``STRAIGHT`` of the largest."""
    largest = float(np.abs(second).max())
    if not largest > 0 or not math.isfinite(largest) or largest < floor:
        return False
    energy = (second / largest) ** 2
    pair = (energy[:-1] + energy[1:]).max() if energy.size > 1 else energy.max()
    if energy.sum() - pair <= KINK_ENERGY * energy.sum():
        return True
    # kinks at more than one place (a batch's ReLU units crossing 0 one after another): the
    # table is straight between them, so some second differences vanish beside the largest,
    # which noise of that size would leave there with a chance of about 1e-5 per table
    return bool(np.count_nonzero(energy <= STRAIGHT**2) >= straight)


def noise_spacing(x: float, eps: float) -> float:
    """First spacing of the noise table at ``x``: ``sqrt(eps) * |x|`` (``sqrt(eps)`` at 0),
    rounded down to a power of two so ``x + j d`` stays exactly equally spaced. Small enough
    that third differences of a function varying on the scale of ``|x|`` are below rounding;
    :data:`NOISE_RESCALE` moves it when the table says otherwise."""
    scale = abs(float(x)) if x != 0 else 1.0
    # at a subnormal x the product underflows: the smallest normal spacing is the floor
    spacing = max(float(np.sqrt(eps)) * scale, float(np.finfo(np.float64).tiny))
    return float(2.0 ** np.floor(np.log2(spacing)))


def noise_bound(sigma: float, values: np.ndarray, eps: float, tol: Tolerance) -> np.ndarray:
    """How far a loss value may be off: ``NOISE_SIGMAS`` measured standard deviations, never
    below the floor :func:`evaluation_noise` (a noise table that saw nothing measures 0)."""
    floor = evaluation_noise(values, eps, tol)
    if not np.isfinite(sigma):
        return floor
    return np.maximum(NOISE_SIGMAS * sigma, floor)


def noise_bound_at(sigma: float, value: float, eps: float, tol: Tolerance) -> float:
    """:func:`noise_bound` at one loss value, as a float (NaN where it would be NaN)."""
    floor = tol.noise_ulps * eps * max(abs(value), TINY) if value == value else math.nan
    if not math.isfinite(sigma) or floor != floor:
        return floor
    return max(NOISE_SIGMAS * sigma, floor)


TINY = float(np.finfo(np.float64).tiny)


# -- steps from the function's own scale ----------------------------------------------------
LADDER_RATIO = 4.0  # the pilot ladder's step shrinks 4x per level
LADDER_LEVELS = 14  # at most: 4**-13 ~ 1.5e-8 of the starting step
# A ladder that has not met the function's scale by then is far above it (sin(k x) with k =
# 1e102 varies on a scale of 1e-102): it goes on 256x per level, at most this many more levels
# (down to ~1e-115 of its start), until its verdict comes or the step reaches a few hundred ulps
# of x. Only such losses pay for it.
DEEP_RATIO = LADDER_RATIO**4
DEEP_LEVELS = 48
STEP_ULPS = 256.0  # the smallest step, in ulps of x: the span stays exactly resolved


def smallest_step(x: np.ndarray, eps: float) -> np.ndarray:
    """``STEP_ULPS`` ulps of ``x`` (``eps`` the parameter dtype's): below that the points
    ``x +- h`` are too few representable numbers apart to make a difference quotient; at 0
    the smallest normal float64 number times the same."""
    return np.maximum(STEP_ULPS * eps * np.abs(x.astype(np.float64)), STEP_ULPS * 2.0**-1000)


def scale_free_step(
    x: np.ndarray,
    noise: float,
    third: float,
    largest: float | np.ndarray,
    eps: float,
    low: np.ndarray | None = None,
) -> np.ndarray:
    """Central-difference step ``h* = (3 noise / |f'''|) ** (1/3)``, from the measured noise
    and the pilot ladder's ``|f'''|`` only: no assumption on the scale of ``x``.

    Clipped to ``[smallest_step(x), largest]``: ``largest`` is the largest step the pilot
    ladder saw the function behave smoothly at (beyond it nothing says the third derivative
    still bounds the truncation); ``eps`` is the parameter dtype's; ``low``, when the caller
    has it already, is ``smallest_step(x, eps)``.
    """
    low = smallest_step(x, eps) if low is None else low
    high = np.maximum(low, largest)
    if not third > 0 or not np.isfinite(third):
        return high if np.isfinite(third) else low
    with np.errstate(over="ignore", divide="ignore"):
        # each side's root first: noise / third underflows to 0 for 1e-18 / 1e307
        h = (3.0 * noise) ** (1 / 3) / third ** (1 / 3)
    return np.clip(h, low, high)


def richardson_rounding(noise: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Rounding in the Richardson value ``(4 n(s) - n(2s)) / 3`` at ``s = half``: each central
    value ``n`` carries up to ``noise / s``, so ``4/3 noise/s + 1/3 noise/(2s) = 1.5 noise/s``."""
    return 1.5 * noise / half


def relative_error(
    analytic: np.ndarray, numeric: np.ndarray, scale: np.ndarray | None = None
) -> np.ndarray:
    """The one error metric used everywhere: ``|a - n| / max(|a|, |n|)``, 0 where both are 0.

    Symmetric, bounded by 2, and 2 exactly when the signs are opposite. Near-zero partials make
    it meaningless, which is why the verdict uses the error estimate, not this number.
    ``scale``: ``max(|a|, |n|)`` when the caller has it already (the comparison does).
    """
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    if scale is None:
        scale = np.maximum(np.abs(analytic), np.abs(numeric))
    # each side divided first: |a - n| itself overflows for a = -n = 1e308
    with np.errstate(invalid="ignore", divide="ignore"):
        safe = np.where(scale > 0, scale, 1.0)
        return np.where(scale > 0, np.abs(analytic / safe - numeric / safe), 0.0)


def within(discrepancy: Any, bound: Any) -> np.ndarray:
    """Where ``|discrepancy| <= bound`` is proven: both finite and the inequality holds.

    Every pass decision goes through here (fail closed): a NaN or infinite discrepancy or bound
    (a tolerance that overflowed on partials near 1e160, a loss that overflowed) never passes;
    it can only fail or stay undecided.
    """
    discrepancy = np.asarray(discrepancy, dtype=np.float64)
    bound = np.asarray(bound, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.isfinite(discrepancy) & np.isfinite(bound) & (np.abs(discrepancy) <= bound)


def beyond(discrepancy: Any, bound: Any) -> np.ndarray:
    """Where ``|discrepancy| > bound`` is proven: both finite and the inequality holds.

    Not the negation of :func:`within`: where either is not finite, neither is proven.
    """
    discrepancy = np.asarray(discrepancy, dtype=np.float64)
    bound = np.asarray(bound, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.isfinite(discrepancy) & np.isfinite(bound) & (np.abs(discrepancy) > bound)


def euclidean_norm(values: np.ndarray) -> float:
    """``||values||_2`` without overflow: scaled by the largest magnitude first.

    ``sqrt(sum(v**2))`` overflows to inf once an element passes ~1e154 although the norm is
    representable; an inf there would become an infinite tolerance.
    """
    values = np.abs(np.asarray(values, dtype=np.float64))
    if values.size == 0:
        return 0.0
    largest = float(values.max())
    if largest == 0.0 or not math.isfinite(largest):
        return largest
    return largest * float(np.sqrt(np.sum((values / largest) ** 2)))


# -- past float64's range, and past second order ---------------------------------------------
NOISE_LEVELS = 2  # a clean loss's pilot noise: the largest at the two levels a verdict compares
LARGEST = float(np.finfo(np.float64).max)


def margined(value: float, margin: float) -> float:
    """``value`` times a safety ``margin``, saturating at float64's largest number.

    The margin widens an estimate from a few pilot elements to a whole tensor; a third
    derivative near 1e307 times 4 would overflow to inf, and an infinite curvature bound
    leaves no step and no error estimate (a correct gradient refused as nonfinite). The
    saturated bound still exceeds the estimate itself; an estimate that is itself infinite
    stays infinite (fail closed).
    """
    value = float(value)
    if not math.isfinite(value):
        return value
    return min(value * margin, LARGEST) if value < LARGEST / margin else LARGEST


def ladder_fifth(slopes: list[float], halves: list[float], noise: float) -> float:
    """``|f^(5)|`` from central slopes at three shrinking half-steps ``H0 > H1 > H2``.

    With ``n(h) = f' + a h**2 + b h**4``, the Richardson value of two levels ``R(h1, h2) =
    (h1**2 n(h2) - h2**2 n(h1)) / (h1**2 - h2**2)`` is ``f' - b h1**2 h2**2``, so two of them
    differ by ``b H1**2 (H0**2 - H2**2)``; ``|f^(5)| = 120 |b|``. Their rounding (each slope
    carries ``noise / h``) is added, so a difference buried in noise gives the most it could
    hide, never 0. NaN where the arithmetic leaves float64's range (steps near 1e300 or 1e-80).
    """
    s = np.asarray(slopes, dtype=np.float64)
    h2 = np.asarray(halves, dtype=np.float64) ** 2
    if s.size != 3 or not np.all(np.isfinite(s)):
        return float("nan")
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        early = (h2[0] * s[1] - h2[1] * s[0]) / (h2[0] - h2[1])
        late = (h2[1] * s[2] - h2[2] * s[1]) / (h2[1] - h2[2])
        h = np.sqrt(h2)
        rounding = (h2[0] * noise / h[1] + h2[1] * noise / h[0]) / (h2[0] - h2[1]) + (
            h2[1] * noise / h[2] + h2[2] * noise / h[1]
        ) / (h2[1] - h2[2])
        fifth = 120.0 * ((abs(early - late) + rounding) / (h2[1] * (h2[0] - h2[2])))
    return float(fifth) if np.isfinite(fifth) and fifth > 0 else float("nan")


def ladder_richardson(
    slopes: tuple[float, float], halves: tuple[float, float], noise: float, fifth: float
) -> tuple[float, float]:
    """The Richardson value of central slopes at two half-steps ``H1 > H2`` (a pilot ladder's
    two smallest levels) and its error estimate.

    With ``n(h) = f' + a h**2 + b h**4``, ``R = (H1**2 n(H2) - H2**2 n(H1)) / (H1**2 - H2**2)``
    is off by ``|b| H1**2 H2**2`` (``|b| <= fifth / 120``, ``fifth`` a bound on ``|f^(5)|``)
    plus its rounding (each slope carries ``noise / h``): ``(16 + 1/4) / 15 noise / H2`` at
    the ladder's 4:1 levels. A ladder that converged near the function's own scale measures
    its element there better than a central difference at the tensor's step ``h* < H2``,
    which carries ``1.5 noise / h*`` and a truncation from the tensor's largest ``|f'''|``.
    NaN where the arithmetic leaves float64's range or ``fifth`` is not finite."""
    h1, h2 = float(halves[0]), float(halves[1])
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        far, near = np.float64(h1) ** 2, np.float64(h2) ** 2
        spread = far - near
        value = (far * np.float64(slopes[1]) - near * np.float64(slopes[0])) / spread
        rounding = (far * noise / h2 + near * noise / h1) / spread
        error = rounding + (fifth / 120.0) * far * near
    if not (h1 > h2 > 0 and np.isfinite(value) and np.isfinite(error)):
        return float("nan"), float("nan")
    return float(value), float(error)


def fourth_order_error(noise: Any, half: Any, fifth: float) -> np.ndarray:
    """Error estimate of the Richardson value ``(4 n(h) - n(2h)) / 3`` at half-step ``h``:
    rounding ``1.5 noise / h`` (:func:`richardson_rounding`) + truncation ``4 b h**4`` with
    ``b = |f^(5)| / 120``, i.e. ``h**4 |f^(5)| / 30``."""
    half = np.asarray(half, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return richardson_rounding(np.asarray(noise), half) + (half**2 * fifth) * half**2 / 30.0


def fourth_order_step(
    x: np.ndarray, noise: float, fifth: float, largest: float | np.ndarray, eps: float
) -> np.ndarray:
    """The half-step minimising :func:`fourth_order_error`: ``h**5 = 11.25 noise / |f^(5)|``
    (from ``1.5 noise / h**2 = 16 b h**3``), clipped like :func:`scale_free_step`, with the
    wider level ``2h`` inside ``largest``."""
    low = smallest_step(x, eps)
    high = np.maximum(low, largest / 2.0)
    with np.errstate(over="ignore", divide="ignore"):
        h = (11.25 * noise) ** (1 / 5) / fifth ** (1 / 5)  # roots first: no underflow
    return np.clip(h, low, high)


# The accuracy a numeric partial should reach, relative to the tensor's largest partial (issue
# 11: a median of 1e-10, every element within 1e-8). A tensor whose second-order (central)
# error bound, from the pilot's noise and |f'''| with their margins, exceeds this many of its
# partials' scale gets a fourth-order main pass instead: the bound is pessimistic for the
# element of largest curvature, so this sits between the two targets. Measured: ordinary nets'
# tensors reach bounds of ~1.1e-9 (a 12,409-element slice of an MLP's first layer, whose true
# errors are ~1e-11: at 1e-9 it paid four evaluations per element for nothing), a loss large
# against its variation 2.8e-9 to 3.6e-9 (log(a**2 + 1e-10) at a ~ 1e-5, medians 3.6e-10 with
# central differences alone). Either side of the line costs accuracy or evaluations, never a
# verdict: every element's own error bound is what it is judged with.
ACCURACY_TRIGGER = 2e-9
# ... and only where the fourth-order bound is this many times smaller: it costs two more
# evaluations per element, which must buy accuracy, not shift it.
FOURTH_ORDER_GAIN = 4.0


def partials_scale(slope: float, analytic: np.ndarray | None) -> float:
    """The partials' scale a tensor's accuracy is judged against: the largest |f'| the pilot
    saw (on up to three elements), or the largest finite hand-written partial if larger. The
    pilot's elements alone may all sit far below the tensor's largest partials (three of a
    12,409-element slice of an MLP's first layer: their 1e-9 would double the cost of a check
    that is already accurate to 1e-9 of the real scale). A hand-written gradient too large
    only keeps the cheaper central pass; one too small leaves the pilot's scale."""
    if analytic is None or not np.size(analytic):
        return slope
    with np.errstate(invalid="ignore"):
        finite = np.abs(analytic[np.isfinite(analytic)])
    largest = float(finite.max()) if finite.size else 0.0
    return max(slope, largest) if math.isfinite(slope) else largest


def fourth_order_pays(central: np.ndarray, fourth: np.ndarray, slope: float) -> bool:
    """Whether a tensor gets the fourth-order main pass (four evaluations per element instead
    of two): its central differences' error bound ``central`` (per element) exceeds
    ``ACCURACY_TRIGGER`` times the partials' scale ``slope`` (the largest |f'| the pilot
    saw), and the fourth-order bound ``fourth`` is ``FOURTH_ORDER_GAIN`` times smaller.

    A loss whose value is large against its variation on the function's own scale
    (``log(a**2 + 1e-10)`` at ``a ~ 1e-5``: values ~-23, variation ~1) carries rounding that
    central differences at their best step turn into errors ~1e-9 of the partials; the
    Richardson value at a ~30x larger step cuts that rounding 20x and leaves a truncation of
    fourth order. An ordinary net (errors ~1e-11 at the central step) never pays for it.
    """
    worst_central = float(np.max(central)) if np.size(central) else 0.0
    worst_fourth = float(np.max(fourth)) if np.size(fourth) else math.inf
    if not (math.isfinite(worst_central) and math.isfinite(worst_fourth)):
        return False
    if not (math.isfinite(slope) and slope > 0):
        return False
    return worst_central > ACCURACY_TRIGGER * slope and (
        FOURTH_ORDER_GAIN * worst_fourth < worst_central
    )


def fourth_order_pays_per(
    central: np.ndarray,
    fourth: np.ndarray,
    slope: float,
    analytic: np.ndarray | None,
    starts: Sequence[int],
) -> np.ndarray:
    """:func:`fourth_order_pays` for each segment ``starts[k]:starts[k + 1]`` of the per-element
    bounds, with that segment's :func:`partials_scale` (``analytic`` its hand-written
    partials): the same decision, segment by segment, in a few array operations (a group of
    14 scalars decides for each of its members)."""
    bounds = np.asarray(starts, dtype=np.intp)
    sizes = np.diff(bounds)
    pays = np.zeros(sizes.size, dtype=bool)
    full = sizes > 0
    if not full.any():
        return pays
    at = bounds[:-1][full]
    with np.errstate(invalid="ignore", over="ignore"):
        worst_central = np.maximum.reduceat(central, at)
        worst_fourth = np.maximum.reduceat(fourth, at)
        if analytic is None or not np.size(analytic):
            scale = np.full(at.size, slope)
        else:
            finite = np.where(np.isfinite(analytic), np.abs(analytic), 0.0)
            largest = np.maximum.reduceat(finite, at)
            scale = np.maximum(slope, largest) if math.isfinite(slope) else largest
        decided = (
            np.isfinite(worst_central)
            & np.isfinite(worst_fourth)
            & np.isfinite(scale)
            & (scale > 0)
            & (worst_central > ACCURACY_TRIGGER * scale)
            & (FOURTH_ORDER_GAIN * worst_fourth < worst_central)
        )
    pays[full] = decided
    return pays
