"""Fast mode's probes: central differences along random directions, per parameter tensor.

A direction over a tensor's ``n`` elements is ``w = z * max(1, |x|) / sqrt(n)``, ``z`` uniform on
``[-sqrt(3), sqrt(3)]`` (unit variance; zero where the hand-written partial is not finite). It
is never stored: ``z`` is drawn in chunks of ``CHUNK`` elements from one PCG64 stream of the
direction's seed (32 bits per element, chunk ``c`` reached by ``advance``), so any range of it
is regenerated from the seed in ``O(range)`` time and ``O(CHUNK)`` memory.

A probe of the positions ``lo:hi`` (optionally weighted ``c_g`` per group, for decoding) writes
``u = x + h w`` there, calls the loss, writes ``d = x - (u - x)`` (the displacement ``u``
actually took, mirrored), calls it again, and compares ``D = f(u) - f(d)`` with
``A = a . span`` (``span = u - d``, the displacement actually taken in the parameter's dtype,
so rounding of the points costs nothing): two loss evaluations. The first point is written
chunk by chunk straight into the parameter (a :class:`gradcheck.core.params.Fill`) and the
sums ride on its pass; the second is derived from the first in place (no draw of the
direction again): no temporary of the range's size, whatever the tensor's size.

The step comes from a pilot (four evaluations, central differences at ``hp`` and ``2hp``,
:func:`gradcheck.fast.numerics.pilot_step`) that measures ``F'''`` along a direction, and
:func:`gradcheck.fast.numerics.direction_step`; every direction of a tensor shares it (its
curvature is that of a random direction of the same tensor, within the engine's
``THIRD_MARGIN``). A probe passes when ``|D - A|`` is within
:func:`gradcheck.fast.numerics.direction_tolerance`.

Why uniform weights: errors ``e_i`` enter ``D - A`` as ``-sum e_i span_i``, a sum of independent
uniform variables whatever their signs, whose density never exceeds ``1/sqrt(6)`` per unit of
its standard deviation (Ball's cube-slicing theorem), barely more than a Gaussian's
``1/sqrt(2 pi)``: several wrong elements never cancel except with that small-ball probability
(:func:`gradcheck.fast.numerics.small_probability`). Rademacher (+-1) weights would cancel two
equal and opposite errors half of the time; Gaussian ones cost four times as much to draw as
uniform ones, more than the loss of a cheap net.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np

from gradcheck.core.differences import THIRD_MARGIN, FiniteDifferences
from gradcheck.core.numerics import (
    NOISE_RESCALE,
    NOISE_TRIES,
    Tolerance,
    coarser_eps,
    ecnoise,
    noise_bound,
)
from gradcheck.core.params import Fill
from gradcheck.errors import InputError
from gradcheck.fast.numerics import (
    KINK_MULTIPLES,
    MIN_FALSE_ALARM,
    direction_scale,
    direction_step,
    direction_tolerance,
    kink_along,
    pilot_step,
    rounding_quantile,
)

NOISE_SPACING = 2.0**-10  # the first noise table's spacing along w, in units of the probe's step
CHUNK = 1 << 14  # elements of a direction drawn at once (its temporaries: ~1 MB in all)
# Dot products over a chunk are summed over pieces of at most this many elements: below
# OpenBLAS's threading threshold for a dot (10,000). Above it every chunk's sums wake the BLAS
# threads, 4 us a dot at 16,384 elements on one thread and 15-65 us on two, far more when
# another process holds a core: a fast check at 10^6 parameters took 1.2 s instead of 0.1 s
# with the default BLAS threads on a loaded 2-core machine. (Halving the chunk instead made
# every pass's Python overhead 15% dearer.)
DOT_PIECE = 1 << 13


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """``a . b`` for a chunk's pieces, each below BLAS's threading threshold (DOT_PIECE)."""
    if a.size <= DOT_PIECE:
        return float(np.dot(a, b))
    return sum(
        float(np.dot(a[k : k + DOT_PIECE], b[k : k + DOT_PIECE]))
        for k in range(0, a.size, DOT_PIECE)
    )


SQRT3 = float(np.sqrt(3.0))  # weights uniform on [-SQRT3, SQRT3] have unit variance
RAW_PER_CHUNK = CHUNK // 2  # 64-bit draws per chunk: 32 bits per weight
Z_STEP = 2.0 * SQRT3 / 2.0**32  # weight k of 2**32 levels: (k + 1/2) * Z_STEP - SQRT3
Z_LOW = Z_STEP / 2.0 - SQRT3
PILOT_MULTIPLES = (1.0, 2.0)  # the pilot's steps, in units of hp (as the engine's pilot)
PILOT_EVALUATIONS = 2 * len(PILOT_MULTIPLES)
PROBE_EVALUATIONS = 2
KINK_EVALUATIONS = 2 * (len(KINK_MULTIPLES) - 1)  # the probe's own step is reused


@dataclass(frozen=True)
class FastOptions:
    """Knobs of ``check(mode="fast")``.

    Attributes:
        probes: independent random directions that must pass (each costs 2 evaluations,
            after one pilot of 4): joint directions over every tensor at once, and a tensor's
            own ones where it needs them (:mod:`gradcheck.fast.joint`). More probes, finer
            sensitivity.
        false_alarm: per probe, the chance that the hand-written gradient's own rounding alone
            exceeds its allowance (see :func:`gradcheck.fast.numerics.rounding_quantile`).
        miss: the chance allowed for an error at the stated sensitivity to pass every probe;
            the report states each tensor's sensitivity at this probability.
        max_wrong: how many failing ranges localization follows at once; beyond that the
            wrong elements are too many to find one by one cheaply, so the tensor is reported
            wrong and ``fallback_samples`` of the elements in its failing ranges are measured.
        fallback_samples: elements measured one by one in that fallback.
        auto: run the full check instead when it plans at most 8x the loss evaluations of
            fast mode (small nets): it measures every element, at about fast mode's time there.
    """

    probes: int = 3
    false_alarm: float = 1e-9
    miss: float = 0.05
    max_wrong: int = 16
    fallback_samples: int = 16
    auto: bool = True

    def __post_init__(self) -> None:
        for name in ("probes", "max_wrong", "fallback_samples"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise InputError(f"FastOptions.{name} must be an int >= 1, got {value!r}")
        for name in ("false_alarm", "miss"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value < 1):
                raise InputError(f"FastOptions.{name} must be in (0, 1), got {value!r}")
        if self.false_alarm < MIN_FALSE_ALARM:  # its quantile would be infinite
            raise InputError(
                f"FastOptions.false_alarm must be in [{MIN_FALSE_ALARM:g}, 1), got "
                f"{self.false_alarm!r}"
            )
        if not isinstance(self.auto, bool):
            raise InputError(f"FastOptions.auto must be a bool, got {self.auto!r}")


@dataclass(frozen=True)
class Record:
    """One probe of the positions ``lo:hi`` (or an inference about them), in ``D`` units:
    ``discrepancy`` is ``D - A`` with the contributions of the elements in ``peeled``
    (measured wrong) removed."""

    lo: int
    hi: int
    discrepancy: float
    tolerance: float
    peeled: frozenset[int] = frozenset()
    values: tuple[float, float, float] | None = None  # (F(h), F(-h), h taken), when probed
    rounding: float = float("nan")  # ||a * 2h w / z||, the hand-written rounding's scale

    @property
    def size(self) -> int:
        return self.hi - self.lo

    @property
    def passed(self) -> bool:
        """Within a finite tolerance: a NaN or an infinity anywhere passes nothing."""
        return bool(abs(self.discrepancy) <= self.tolerance < float("inf"))


@dataclass(frozen=True)
class Weights:
    """Which elements a probe moves: positions ``lo:hi``, each group ``edges[g]:edges[g+1]``
    weighted ``levels[g]`` (no groups: weight 1)."""

    lo: int
    hi: int
    edges: np.ndarray | None = None
    levels: np.ndarray | None = None

    def levels_in(self, a: int, b: int) -> np.ndarray:
        """The weight of each position in ``a:b``: ``levels[g]`` in group ``g`` (positions before
        the first edge in the first group, after the last in the last), from the group edges
        inside ``a:b`` (a repeat per group, not a search per element)."""
        if self.edges is None or self.levels is None:
            return np.ones(b - a)
        last = self.levels.size - 1
        g0, g1 = (
            min(max(int(g) - 1, 0), last) for g in self.edges.searchsorted((a, b - 1), "right")
        )
        starts = [a, *self.edges[g0 + 1 : g1 + 1].tolist()]  # groups g0 + 1 .. g1 start inside
        lengths = [stop - start for start, stop in zip(starts, [*starts[1:], b], strict=True)]
        return np.repeat(self.levels[g0 : g1 + 1], lengths)


@dataclass(frozen=True)
class Tensor:
    """What every probe of one tensor shares: its values, partials, step and tolerance rule.

    ``analytic`` stays in the gradient's own dtype (float32 or float64: read chunk by chunk in
    float64); ``nonfinite`` lists the positions of its non-finite partials, ``unit`` says per
    chunk whether every ``|x| <= 1`` there (then ``max(1, |x|)`` is 1 and costs no pass), and
    ``spread`` is ``||a * max(1, |x|) * scale||`` over the finite partials, the hand-written
    rounding's scale of every tensor-wide probe (see :func:`tensor_of`)."""

    name: str
    x: np.ndarray  # flat snapshot (read only)
    analytic: np.ndarray  # flat hand-written partials
    finite: int  # elements with a finite hand-written partial
    eps: float
    tol: Tolerance
    rtol: float
    quantile: float
    scale: float  # 1/sqrt(finite)
    nonfinite: np.ndarray | None = None  # sorted positions; None: not computed (scan)
    unit: np.ndarray | None = None  # per chunk: every |x| <= 1
    spread: float | None = None


class Work(NamedTuple):
    """The work buffers of a stream of moves (``move`` and ``factor``, float64; ``narrow``, the
    parameter's dtype, none for float64) and of spans (``point``): ``CHUNK`` elements each."""

    move: np.ndarray
    narrow: np.ndarray | None
    factor: np.ndarray  # max(1, |x|) where some |x| > 1
    point: np.ndarray | None

    @classmethod
    def of(cls, dtype: np.dtype, spans: bool = False) -> Work:
        """New buffers for moves in ``dtype`` (and for spans, with ``spans``)."""
        narrow = None if dtype == np.float64 else np.empty(CHUNK, dtype=dtype)
        point = np.empty(CHUNK, dtype=dtype) if spans else None
        return cls(np.empty(CHUNK), narrow, np.empty(CHUNK), point)


def _bits(seed: int, chunk: int) -> np.random.PCG64:
    """The bit generator of a direction, positioned at the start of chunk ``chunk``: each chunk
    takes ``RAW_PER_CHUNK`` raw 64-bit draws, so any chunk is reached by ``advance`` (no
    generator built per chunk)."""
    bits = np.random.PCG64(seed)
    if chunk:
        bits.advance(chunk * RAW_PER_CHUNK)
    return bits


@dataclass(frozen=True)
class Direction:
    """A random direction over one tensor, regenerated from ``seed``, with its step."""

    tensor: Tensor
    seed: int
    half_step: float  # h
    third: float  # |F'''| along w, with THIRD_MARGIN
    sigma: float = 0.0  # measured noise of the loss along w (std); 0: not measured, the floor

    def moves(
        self, weights: Weights, step: float, work: Work | None = None
    ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """``(a, b, move, narrow)`` for consecutive pieces of the range: ``move = step * w`` in
        float64 (``w = z * max(1, |x|) * scale * level``, 0 where the partial is not finite) and
        ``narrow`` the same in the parameter's dtype (``move`` itself for float64). Both are
        work buffers that the next piece overwrites: use them before asking for the next.

        ``z`` takes 32 random bits ``k`` per element: ``(k + 1/2) * 2 sqrt(3) / 2**32 -
        sqrt(3)``, uniform over cell centres, symmetric, unit variance within 1e-19. The step
        and the scale are folded into that conversion (``k * alpha + beta``: two operations per
        element from the bits to the move, see :func:`fold`). ``work``: the buffers to use
        (several streams walked in step share one set), new ones by default."""
        t = self.tensor
        first, last = weights.lo // CHUNK, -(-weights.hi // CHUNK)
        bits = _bits(self.seed, first)
        move, narrow, factor, _ = work or Work.of(t.x.dtype)
        alpha, beta = fold(step * t.scale)
        for c in range(first, last):
            raw = bits.random_raw(RAW_PER_CHUNK).view(np.uint32)  # whole chunks stay aligned
            start = c * CHUNK
            a, b = max(weights.lo, start), min(weights.hi, start + CHUNK, t.x.size)
            if a >= b:
                continue
            m = move[: b - a]
            # the error state is set per piece, never across a yield: streams walked in step
            # would otherwise leave it changed when they are closed out of order
            with np.errstate(over="ignore", invalid="ignore"):  # past the range: infinities
                np.multiply(raw[a - start : b - start], alpha, out=m)
                m += beta
                if not (t.unit is not None and t.unit[c]):  # max(1, |x|): three more passes
                    f = np.abs(t.x[a:b], out=factor[: b - a], dtype=np.float64)
                    m *= np.maximum(f, 1.0, out=f)
                bad = _nonfinite(t, a, b)
                if bad is not None:
                    m[bad - a] = 0.0
                if weights.edges is not None:
                    m *= weights.levels_in(a, b)
                if narrow is not None:
                    np.copyto(narrow[: b - a], m, casting="same_kind")
            yield a, b, m, m if narrow is None else narrow[: b - a]

    def spans(
        self, weights: Weights, step: float, work: Work | None = None
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(a, b, span)`` for consecutive pieces of the range: ``u - d`` in float64 (see
        :func:`span_of`), in a work buffer that the next piece overwrites. One generator
        walks the whole range: the bit generator is positioned once, not once per piece.
        ``u`` takes ``work.point``, ``d`` and the span the spent move's buffers; streams that
        share ``work`` (ratio matching's, one per probe) must each use a piece before the
        next stream is advanced."""
        x = self.tensor.x
        work = work or Work.of(x.dtype, spans=True)
        point = work.point
        assert point is not None, "spans need Work.of(dtype, spans=True)"
        for a, b, move, narrow in self.moves(weights, step, work):
            with np.errstate(over="ignore", invalid="ignore"):  # per piece, as in moves
                up = np.add(x[a:b], narrow, out=point[: b - a])
                mirrored(x[a:b], up, narrow)  # the move is spent: d takes its buffer
                span = np.subtract(up, narrow, out=move, dtype=np.float64)
            yield a, b, span

    def spans_at(self, weights: Weights, positions: np.ndarray, step: float) -> np.ndarray:
        """The spans ``u - d`` of a few ``positions`` (float64, see :func:`span_of`)."""
        out = np.zeros(positions.size)
        x = self.tensor.x
        for c in np.unique(positions // CHUNK):
            inside = (positions // CHUNK) == c
            a, b = int(c) * CHUNK, min(int(c + 1) * CHUNK, x.size)
            for lo, hi, _, move in self.moves(
                Weights(max(a, weights.lo), min(b, weights.hi), weights.edges, weights.levels), step
            ):
                picks = positions[inside]
                ok = (picks >= lo) & (picks < hi)
                k = picks[ok] - lo
                out[np.flatnonzero(inside)[ok]] = span_of(x[lo:hi][k], move[k])
        return out


def fold(factor: float) -> tuple[float, float]:
    """``(alpha, beta)`` with ``k * alpha + beta = factor * z`` for the weight ``z`` of the bits
    ``k`` (``z = k * Z_STEP + Z_LOW``): the step and the scale ride on the conversion of the
    bits instead of a pass of their own. The same levels as ``z`` times ``factor``, up to a
    rounding of the largest term (``2**-52 sqrt(3) factor``: the two terms cancel near 0); the
    sums use the points as written anyway."""
    return factor * Z_STEP, factor * Z_LOW


def _nonfinite(t: Tensor, a: int, b: int) -> np.ndarray | None:
    """The positions in ``a:b`` whose hand-written partial is not finite, or ``None``."""
    if t.finite == t.x.size:
        return None
    if t.nonfinite is None:
        bad = np.flatnonzero(~np.isfinite(t.analytic[a:b])) + a
    else:
        i, j = np.searchsorted(t.nonfinite, (a, b))
        bad = t.nonfinite[i:j]
    return bad if bad.size else None


def tensor_of(
    differences: FiniteDifferences,
    name: str,
    analytic: np.ndarray,
    precision: np.dtype,
    false_alarm: float,
) -> Tensor:
    """The tensor's shared state, from one pass over it chunk by chunk (no temporary of its
    size): its non-finite partials, which chunks have every ``|x| <= 1``, and ``spread``."""
    param = differences.params[name]
    tol = differences.tolerance
    x = param.snapshot.reshape(-1)
    nonfinite, unit = [], np.zeros(-(-x.size // CHUNK), dtype=bool)
    spread = ScaledNorm()
    squares = 0.0  # the plain sum of squares of the chunks whose sum is safe (plain_squares)
    wide, scaled = np.empty(CHUNK), np.empty(CHUNK)
    for c in range(unit.size):
        a, b = c * CHUNK, min((c + 1) * CHUNK, x.size)
        piece, xs = analytic[a:b], x[a:b]
        if piece.dtype != np.float64:  # in float64, as the sums are
            np.copyto(wide[: b - a], piece)
            piece = wide[: b - a]
        unit[c] = bool(max(float(xs.max()), -float(xs.min())) <= 1.0)  # no temporary
        weighted = piece if unit[c] else _times_magnitude(piece, xs, scaled[: b - a])
        plain = plain_squares(weighted)
        if plain is not None:  # every partial finite, no overflow or underflow
            squares += plain
            continue
        if not np.isfinite(piece).all():  # the mask is kept only where it finds one
            piece = piece.astype(np.float64)
            bad = ~np.isfinite(piece)
            nonfinite.append(np.flatnonzero(bad) + a)
            piece[bad] = 0.0
            weighted = piece if unit[c] else _times_magnitude(piece, xs, scaled[: b - a])
        spread.add(weighted)
    spread.add(np.array([np.sqrt(squares)]))
    positions = np.concatenate(nonfinite) if nonfinite else np.empty(0, dtype=np.intp)
    finite = x.size - positions.size
    scale = direction_scale(finite)
    return Tensor(
        name=name,
        x=x,
        analytic=analytic,
        finite=finite,
        eps=coarser_eps(param.dtype, differences.evaluator.loss_dtype),
        tol=tol,
        rtol=tol.relative_floor(precision),
        quantile=rounding_quantile(false_alarm),
        scale=scale,
        nonfinite=positions.astype(np.intp),
        unit=unit,
        spread=spread.value * scale,
    )


def _times_magnitude(piece: np.ndarray, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``piece * max(1, |x|)`` in float64, into ``out``."""
    magnitude = np.maximum(np.abs(x, out=out, dtype=np.float64), 1.0, out=out)
    with np.errstate(over="ignore"):  # past float64: the norm is infinite, as before
        return np.multiply(piece, magnitude, out=out)


# A chunk's plain sum of squares is used for the spread when it lies in this range: no square
# underflowed to nothing, and the sum of every chunk's stays far below float64's largest.
PLAIN_SQUARES = (2.0**-900, 2.0**900)


def plain_squares(piece: np.ndarray) -> float | None:
    """``piece . piece`` (one pass, no temporary) when it can stand for the careful norm
    (:class:`ScaledNorm`): finite (so every partial is) and within ``PLAIN_SQUARES``; ``None``
    otherwise (non-finite partials, or magnitudes where squares overflow or underflow)."""
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        total = dot(piece, piece)
    return total if PLAIN_SQUARES[0] <= total <= PLAIN_SQUARES[1] else None


@dataclass
class Sums:
    """What the first point's pass over a probe's range accumulates besides the point."""

    analytic: float = 0.0  # A = a . span
    rounding: float = 0.0  # ||a * 2h w / z||, the hand-written rounding's standard deviation
    taken: float = 0.0  # span . w
    norm: float = 0.0  # w . w


class ScaledNorm:
    """A Euclidean norm accumulated piece by piece without overflow or underflow: the sum of
    squares is kept relative to the largest magnitude seen (as BLAS ``nrm2`` does), so partials
    of 1e160 give a finite norm instead of an infinite tolerance."""

    def __init__(self) -> None:
        self.largest = 0.0
        self.squares = 0.0  # sum of (v / largest)**2

    def add(self, values: np.ndarray) -> None:
        if not values.size:
            return
        top = max(float(values.max()), -float(values.min()))  # max |v|, without a temporary
        if not np.isfinite(top):
            self.largest, self.squares = float("inf"), 1.0
            return
        if top == 0.0 or not np.isfinite(self.largest):
            return
        if top > self.largest:
            self.squares *= (self.largest / top) ** 2
            self.largest = top
        ratio = values / self.largest
        self.squares += dot(ratio, ratio)

    @property
    def value(self) -> float:
        return self.largest * float(np.sqrt(self.squares))


def mirrored(x: np.ndarray, up: np.ndarray, out: np.ndarray) -> np.ndarray:
    """A probe's second point ``d = x - (u - x)`` from its first ``u = x + step w``, in the
    parameter's dtype, into ``out`` (which may be ``up`` itself): the displacement the first
    point actually took, mirrored. Computed as ``x + (x - u)``, the same bits (rounding to
    nearest is symmetric: ``x - u`` is exactly ``-(u - x)``), in two passes and no work buffer.
    Derived from ``u`` alone, it needs no draw of the direction, so the second point of a pair
    is written from the first one in place (:class:`gradcheck.core.params.Fill`'s
    ``follow``). Both points are whatever rounding made them: the sums take ``span = u - d``
    as they were written."""
    np.subtract(x, up, out=out)
    return np.add(x, out, out=out)


def span_of(x: np.ndarray, move: np.ndarray) -> np.ndarray:
    """``u - d`` in float64 for ``u = x + move`` and ``d`` :func:`mirrored`: the displacement
    between a probe's two points, in the parameter's dtype's exact values."""
    up = x + move
    return up.astype(np.float64) - mirrored(x, up, np.empty_like(up)).astype(np.float64)


def _evaluate(
    differences: FiniteDifferences, direction: Direction, weights: Weights, step: float
) -> tuple[float, float, Sums]:
    """The loss at the two points of :func:`points`, in one call of the evaluator (which
    writes the second from the first in place)."""
    up, down, sums = points(direction, weights, step)
    f_up, f_down = differences.evaluator.at([up, down])
    return float(f_up), float(f_down), sums


def points(
    direction: Direction, weights: Weights, step: float
) -> tuple[tuple[str, slice, Fill], tuple[str, slice, Fill], Sums]:
    """The changes ``u = x + step w`` and ``d = x - (u - x)`` over the range, as evaluator
    points, and the :class:`Sums` the first one fills in as it is written.

    The first point is written chunk by chunk straight into the parameter (a
    :class:`gradcheck.core.params.Fill`: no buffer of the range's size), the direction
    regenerated for it, and the sums ride on that pass (``d`` is computed there too, chunk by
    chunk, for the spans). The second point is written from the first in place
    (:func:`mirrored`: two operations per element, no draw), the evaluator leaving the first
    point in the slice instead of restoring it in between; where it cannot be written in
    place (an executor's worker, an array that is not C-contiguous) it is computed whole from
    the direction, to the same bits. A tensor-wide probe without group weights takes the
    hand-written rounding's scale from ``Tensor.spread`` instead of summing it again."""
    t = direction.tensor
    lo, hi = weights.lo, weights.hi
    dtype = t.x.dtype
    whole = lo == 0 and hi == t.x.size and weights.edges is None and t.spread is not None
    sums = Sums()

    def up(out: np.ndarray) -> None:
        # per piece: the move (2 passes from the bits), u (1), d and span = u - d (3), and the
        # three sums (dots): nothing else touches every element
        scaled = ScaledNorm()
        down, span = np.empty(CHUNK, dtype=dtype), np.empty(CHUNK)
        wide = np.empty(CHUNK) if t.analytic.dtype != np.float64 else None
        analytic = taken = norm = 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            for a, b, move, narrow in direction.moves(weights, step):
                piece, x, n = out[a - lo : b - lo], t.x[a:b], b - a
                np.add(x, narrow, out=piece)
                mirrored(x, piece, down[:n])
                gap = np.subtract(piece, down[:n], out=span[:n], dtype=np.float64)
                a_piece = t.analytic[a:b]
                if wide is not None:  # float32 partials, read in float64 as the sums are
                    np.copyto(wide[:n], a_piece)
                    a_piece = wide[:n]
                bad = _nonfinite(t, a, b)
                if bad is not None:  # their move is 0: their partial must not make A NaN
                    a_piece = a_piece.copy() if wide is None else a_piece
                    a_piece[bad - a] = 0.0
                analytic += dot(a_piece, gap)
                taken += dot(gap, move)
                norm += dot(move, move)
                if not whole:
                    unit = t.unit is not None and t.unit[a // CHUNK]
                    s = t.scale if unit else np.maximum(np.abs(x, dtype=np.float64), 1.0) * t.scale
                    spread = a_piece * s
                    if weights.edges is not None:
                        spread *= weights.levels_in(a, b)
                    scaled.add(spread)
            sums.analytic = analytic
            # w = move / step: the sums are along w, as the step rules read them
            sums.taken = taken / step if step else float("nan")
            sums.norm = norm / (step * step) if step else float("nan")
            spread_norm = t.spread if whole and t.spread is not None else scaled.value
            sums.rounding = spread_norm * (2.0 * step)

    def down(out: np.ndarray) -> None:  # from scratch: u again, then mirrored in place
        with np.errstate(over="ignore", invalid="ignore"):
            for a, b, _, narrow in direction.moves(weights, step):
                piece, x = out[a - lo : b - lo], t.x[a:b]
                np.add(x, narrow, out=piece)
                mirrored(x, piece, piece)

    def follow(out: np.ndarray) -> None:  # out holds u
        with np.errstate(over="ignore", invalid="ignore"):
            for a in range(lo, hi, CHUNK):
                b = min(hi, a + CHUNK)
                piece = out[a - lo : b - lo]
                mirrored(t.x[a:b], piece, piece)

    index = slice(lo, hi)
    return (
        (t.name, index, Fill(up, hi - lo, dtype)),
        (t.name, index, Fill(down, hi - lo, dtype, follow=follow)),
        sums,
    )


def pilot_third(slopes: list[float], steps: list[float]) -> float:
    """|f'''| along a direction from the pilot's central slopes at two steps (they differ by
    ``f''' (h2^2 - h1^2) / 6``), times ``THIRD_MARGIN``; infinite where it is not finite (fail
    closed: the step falls to its lower clip)."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        third = 6.0 * abs(slopes[1] - slopes[0]) / (steps[1] ** 2 - steps[0] ** 2)
    return float(third) * THIRD_MARGIN if np.isfinite(third) else float("inf")


def unmoved_loss(differences: FiniteDifferences, f_up: float, f_down: float, a: float) -> bool:
    """Whether a pilot's step left the loss exactly where it was on both sides while the
    hand-written partials say it moves (``a``, their sum along the step, not 0): a loss whose
    values move in steps far above its ulps (a cross-entropy of 1e-17 moves in steps of
    1e-18), whose resolution near ``f0`` the probes' noise must be
    (:meth:`gradcheck.core.pilot.Pilots.measure_quantum`)."""
    f0 = differences.evaluator.f0
    return f_up == f0 and f_down == f0 and a != 0 and bool(np.isfinite(a))


def largest_partial(tensor: Tensor) -> int:
    """The position of ``tensor``'s largest finite hand-written partial: where the loss moves
    soonest, for a measurement of its resolution (one pass over the partials, ``CHUNK`` at a
    time: no temporary of the tensor's size)."""
    best, where = -1.0, 0
    for a in range(0, tensor.analytic.size, CHUNK):
        chunk = np.abs(tensor.analytic[a : a + CHUNK].astype(np.float64))
        chunk[~np.isfinite(chunk)] = -1.0
        k = int(np.argmax(chunk))
        if chunk[k] > best:
            best, where = float(chunk[k]), a + k
    return where


def pilot(differences: FiniteDifferences, tensor: Tensor, seed: int) -> Direction:
    """Measure the third derivative along the direction of ``seed`` (4 evaluations) and fix
    the step."""
    hp = pilot_step(tensor.eps, tensor.finite)
    whole = Weights(0, tensor.x.size)
    probe_dir = Direction(tensor, seed, hp, float("nan"))
    slopes, steps = [], []
    unmoved = False
    for m in PILOT_MULTIPLES:
        f_up, f_down, sums = _evaluate(differences, probe_dir, whole, m * hp)
        unmoved |= unmoved_loss(differences, f_up, f_down, sums.analytic)
        # the step actually taken along w (rounding to the dtype moves the points slightly)
        step = sums.taken / (2.0 * sums.norm) if sums.norm > 0 else float("nan")
        steps.append(step)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            slopes.append((f_up - f_down) / (2.0 * step))
    third = pilot_third(slopes, steps)
    if unmoved:
        differences.pilots.measure_quantum(tensor.name, largest_partial(tensor))
    # the floor, or the loss's measured resolution near f0 (Pilots.quantum_sigma: a loss
    # exactly 0, or one that moves in steps far above its ulps)
    quantum = differences.pilots.quantum_sigma
    noise = float(noise_bound(quantum, np.array(differences.evaluator.f0), tensor.eps, tensor.tol))
    h = direction_step(noise, third, tensor.eps, tensor.finite)
    return Direction(tensor, seed, h, third, quantum)


def probe(
    differences: FiniteDifferences,
    direction: Direction,
    weights: Weights,
    known: Mapping[int, tuple[float, float]] | None = None,
) -> Record:
    """Probe the range of ``weights`` along ``direction``: two loss calls.

    ``known`` maps positions measured wrong to ``(error, bound)``: their contribution
    ``error * span`` is removed from ``D - A`` and ``bound * |span|`` added to the tolerance,
    so the record speaks of the other elements only."""
    h = direction.half_step
    f_up, f_down, sums = _evaluate(differences, direction, weights, h)
    with np.errstate(over="ignore", invalid="ignore"):
        discrepancy = (f_up - f_down) - sums.analytic
    tolerance = _tolerance(direction, f_up, f_down, sums.rounding)
    taken = sums.taken / (2.0 * sums.norm) if sums.norm > 0 else float("nan")
    record = Record(
        weights.lo,
        weights.hi,
        discrepancy,
        tolerance,
        values=(f_up, f_down, taken),
        rounding=sums.rounding,
    )
    return correct(direction, weights, record, known)


def _tolerance(direction: Direction, f_up: float, f_down: float, rounding: float) -> float:
    """The probe's tolerance: its loss values' noise (the direction's measured ``sigma``, never
    below the floor :func:`gradcheck.core.numerics.evaluation_noise`), its truncation and the
    hand-written rounding."""
    t = direction.tensor
    largest = np.array(max(abs(f_up), abs(f_down)))
    noise = float(noise_bound(direction.sigma, largest, t.eps, t.tol))
    return direction_tolerance(
        noise, direction.half_step, direction.third, rounding, t.rtol, t.tol, t.quantile
    )


def rejudged(direction: Direction, record: Record) -> Record:
    """A tensor-wide probe's raw ``record`` judged again with ``direction``'s noise (after it
    was measured): the same loss values, no evaluation."""
    if record.values is None:
        return record
    f_up, f_down, _ = record.values
    return replace(record, tolerance=_tolerance(direction, f_up, f_down, record.rounding))


def direction_noise(differences: FiniteDifferences, direction: Direction) -> float:
    """Standard deviation of the loss's noise along ``direction`` (the whole tensor), measured
    as the full check's pilot measures it along one element: Moré and Wild's ECnoise on seven
    equally spaced values ``F(k d)``, ``k = -3 .. 3`` (:func:`gradcheck.core.numerics.ecnoise`;
    six calls per table, at most ``NOISE_TRIES`` tables, the spacing ``d`` starting at
    ``NOISE_SPACING`` of the probe's step and moved ``NOISE_RESCALE``-fold while a table sees
    only a flat or only a slope). 0 when no table saw noise (the floor stands), NaN when no
    spacing isolated it (the floor stands too).

    A sum over 10^6 terms rounds at many of its ulps, a float32 loss at its own ulps of each
    term: the floor of one ulp of ``|f|`` is then too small, and a correct gradient's probe
    fails on rounding alone, or the kink test reads rounding as a kink."""
    whole = Weights(0, direction.tensor.x.size)
    f0 = float(differences.evaluator.f0)
    spacing = direction.half_step * NOISE_SPACING
    seen: set[str] = set()
    for _ in range(NOISE_TRIES):
        ups, downs = [], []
        differences.evaluator.plan(6)  # planned as it goes, as the full check's noise table
        for k in (1.0, 2.0, 3.0):
            f_up, f_down, _ = _evaluate(differences, direction, whole, k * spacing)
            ups.append(f_up)
            downs.append(f_down)
        sigma, status = ecnoise(np.array([*downs[::-1], f0, *ups]))
        if status == "measured":
            return sigma
        seen.add(status)
        if len(seen) == 2:
            break
        spacing = spacing * NOISE_RESCALE if status == "flat" else spacing / NOISE_RESCALE
    return 0.0 if "flat" in seen else float("nan")


Central = dict[float, tuple[float, float, float]]  # multiple -> (F(s), F(-s), s taken)


def kinked(
    differences: FiniteDifferences, direction: Direction, values: tuple[Central, float]
) -> bool:
    """Whether the loss along ``direction`` (the whole tensor) has a kink at the probe's scale,
    from its :func:`kink_values`, judged by :func:`gradcheck.fast.numerics.kink_along` against
    the direction's own ``third`` and noise (its measured ``sigma``, never below the floor)."""
    t = direction.tensor
    central, largest = values
    noise = float(noise_bound(direction.sigma, np.array(largest), t.eps, t.tol))
    return kink_along(float(differences.evaluator.f0), central, noise, direction.third)


def kink_values(
    differences: FiniteDifferences, direction: Direction, top: Record
) -> tuple[Central, float]:
    """The loss on both sides of ``x`` along ``direction`` at each of ``KINK_MULTIPLES`` of its
    step (the tensor-wide probe ``top`` supplies its own step's values; ``KINK_EVALUATIONS``
    more), and the largest |loss| among them and ``f0``."""
    t = direction.tensor
    f0 = float(differences.evaluator.f0)
    central: Central = {}
    largest = abs(f0)
    for m in KINK_MULTIPLES:
        if m == 1.0 and top.values is not None:
            central[m] = top.values
        else:
            f_up, f_down, sums = _evaluate(
                differences, direction, Weights(0, t.x.size), m * direction.half_step
            )
            step = sums.taken / (2.0 * sums.norm) if sums.norm > 0 else float("nan")
            central[m] = (f_up, f_down, step)
        largest = max(largest, abs(central[m][0]), abs(central[m][1]))
    return central, largest


def correct(
    direction: Direction,
    weights: Weights,
    record: Record,
    known: Mapping[int, tuple[float, float]] | None,
) -> Record:
    """``record`` with the contributions of the ``known`` wrong elements in its range removed
    (those it has not had removed yet): arithmetic on the spans, no loss evaluation."""
    if not known:
        return record
    inside = np.array(
        sorted(p for p in known if record.lo <= p < record.hi and p not in record.peeled),
        dtype=np.intp,
    )
    if not inside.size:
        return record
    spans = direction.spans_at(weights, inside, direction.half_step)
    errors = np.array([known[int(p)][0] for p in inside])
    bounds = np.array([known[int(p)][1] for p in inside])
    with np.errstate(over="ignore", invalid="ignore"):
        return Record(
            record.lo,
            record.hi,
            record.discrepancy + float(errors @ spans),
            record.tolerance + float(bounds @ np.abs(spans)),
            record.peeled | frozenset(inside.tolist()),
        )


@dataclass(frozen=True)
class ProbeSummary:
    """What fast mode did for one tensor; attached to its ``ParamResult.probe``. Built once,
    before the result.

    ``probes`` are the tensor-wide probes in directional-derivative units along ``w`` (analytic,
    numeric, tolerance, passed; corrected for the elements measured wrong). ``sensitivity``
    says what a pass proves: ``abs`` is the error ``||e * max(1, |x|)||_2`` that passes every
    passing probe with probability at most ``miss``, ``relative`` the same for one element at
    the tensor's median ``|partial|`` with ``|x| <= 1``, as a fraction of that partial.
    """

    probes: tuple[Mapping[str, Any], ...] = ()
    step: float = float("nan")
    localization_evaluations: int = 0
    localization_probes: int = 0
    decoded: tuple[int, ...] = ()  # flat indices decoding named (confirmed or not)
    located: tuple[int, ...] = ()  # flat indices bisection narrowed to
    proven_wrong: tuple[int, ...] = ()  # measured one by one and wrong
    measured: int = 0  # elements measured one by one
    unresolved: bool = False  # a failing probe not pinned to elements: the tensor is wrong
    unchecked: tuple[tuple[int, int], ...] = ()  # flat ranges not examined
    fallback: str | None = None  # why localization stopped, if it did
    kinked: bool = False  # a failing probe crossed a kink: every element measured (full)
    joint: int = 0  # tensors the probes spanned (gradcheck.fast.joint); 0: its own probes
    sensitivity: Mapping[str, float | None] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(not p["passed"] for p in self.probes) or self.localization_probes > 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (indices are flat, C order)."""
        return {
            "probes": [dict(p) for p in self.probes],
            "step": self.step,
            "localization_evaluations": self.localization_evaluations,
            "localization_probes": self.localization_probes,
            "decoded": list(self.decoded),
            "located": list(self.located),
            "proven_wrong": list(self.proven_wrong),
            "measured": self.measured,
            "unresolved": self.unresolved,
            "unchecked": [list(r) for r in self.unchecked],
            "fallback": self.fallback,
            "kinked": self.kinked,
            "joint": self.joint,
            "sensitivity": dict(self.sensitivity),
        }
