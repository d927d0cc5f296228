"""Joint probes: one random direction over every tensor at once, fast mode's first pass.

A correct net needs a pilot and ``probes`` passing probes whatever its number of tensors:
the loss's noise is paid once per probe, not once per tensor. The joint direction is the
concatenation of one segment per tensor, segment ``k`` the tensor's own direction
(:class:`gradcheck.fast.probe.Direction`: ``z * max(1, |x|) / sqrt(n_k)`` from its own seed,
regenerated chunk by chunk, never materialised) weighted ``c_k``
(:func:`segment_weights`): a probe at step ``h`` moves tensor ``k`` by ``h c_k`` along its own
unit-length direction, so each segment *is* a per-tensor direction with half step ``h c_k``,
and everything per tensor (spans, correction for known errors, ratio matching, confirmation,
the stated sensitivity) runs on it unchanged.

Why weighted segments. An error ``e`` in tensor ``k`` adds ``-2 h c_k scale_k sum e_i s_i z_i``
to a joint probe whose tolerance ``T`` is shared by every tensor, so the tensor's stated
sensitivity is ``T / (h c_k ...)``: a tensor whose segment moves little is barely seen. With
every element weighted alike (``c_k`` proportional to ``sqrt(n_k)``), a bias of 10 elements
beside a weight of 10^6 moves 300x less than its own probe would move it. Weighting each
segment by the inverse of its hand-written partials' scale (``Tensor.spread``, which already
carries the parameter's ``max(1, |x|)``, as the step rules do) makes every segment contribute
alike to ``A = a . span`` and to the hand-written rounding in ``T``: a tensor is then seen
about as well as its own probes would see it, up to the shared tolerance of all segments
(``sqrt(K)`` for the rounding of ``K`` tensors, the step set by the joint curvature).

The joint step comes from a joint pilot (four evaluations, as the per-tensor pilot, along the
whole direction), clipped so that no segment moves further than its own pilot would, nor (for
the segment that moves most) by fewer than ``MOVE_ULPS`` units in the last place. The
tolerance: the loss's noise (the coarsest dtype's floor), the truncation ``h**3 |F'''| / 3``
along the joint direction, and the hand-written rounding of every segment in quadrature
(independent weights), each at its own relative floor.

What :func:`run` decides (:mod:`gradcheck.fast.mode` builds the results):

* every joint probe passes, with the errors measured so far removed: each tensor is ``probed``
  at the sensitivity its segment gives (:func:`gradcheck.fast.mode` states it per tensor);
* a failing joint probe that one wrong element explains: ratio matching and the likelihood
  ranking (:func:`gradcheck.fast.localize.scan`) on every segment, leads across all tensors
  (:func:`candidates`; up to ``MATCH_PROBES`` probes more when none is a lead), each
  confirmed one by one (:meth:`gradcheck.fast.localize.Measured.confirm`); found wrong, it
  is removed from every joint probe and the probes are judged again;
* a failure ratio matching does not explain (several errors, a kink, a loss noisier than its
  floor): every tensor of the joint direction goes to the per-tensor machinery (its own pilot,
  probes, localization, kink test, full check of the tensor), starting from the elements
  already measured, so every per-tensor guarantee holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from gradcheck.core.differences import FiniteDifferences
from gradcheck.core.numerics import noise_bound
from gradcheck.fast.localize import MATCH_MOST, Claim, Fit, Measured, claim_at, scan
from gradcheck.fast.numerics import (
    LEAD_CHANCE,
    MOVE_ULPS,
    chance_fit,
    direction_tolerance,
    miss_threshold,
    pilot_step,
    sensitivity,
)
from gradcheck.fast.probe import (
    PILOT_MULTIPLES,
    Direction,
    FastOptions,
    Record,
    Sums,
    Tensor,
    Weights,
    correct,
    largest_partial,
    pilot_third,
    points,
    unmoved_loss,
)

# A segment's weight never exceeds the one of a tensor whose partials' scale is this fraction
# of the median tensor's: a tensor with (near) zero partials would otherwise take the whole
# direction, and every other tensor's sensitivity with it.
SPREAD_FLOOR = 0.1
# A tensor whose joint sensitivity is more than this many times what its own probes could
# state at best (:func:`own_best`) gets its own probes: the joint pass would state a guarantee
# that much weaker than the per-tensor one it replaces.
OWN_RATIO = 10.0


@dataclass(frozen=True)
class Joint:
    """A random direction over several tensors: ``segments[k]`` is tensor ``k``'s direction at
    half step ``half_step * weights[k]``; ``third`` is ``|F'''|`` along the whole direction."""

    segments: tuple[Direction, ...]
    weights: tuple[float, ...]
    half_step: float
    third: float

    def reseeded(self, seeds: Sequence[int]) -> Joint:
        """The same steps along an independent direction (a new seed per segment)."""
        return replace(
            self,
            segments=tuple(replace(d, seed=s) for d, s in zip(self.segments, seeds, strict=True)),
        )


def segment_weights(tensors: Sequence[Tensor]) -> np.ndarray:
    """``c_k = n_k**(1/4) / spread_k``, normalised to unit length (the joint direction as long
    as one coordinate step, as a per-tensor one).

    ``spread_k`` (``Tensor.spread``: the root mean square of ``a * max(1, |x|)`` over the
    tensor, the parameter's scale included as the step rules do) makes segment ``k``'s
    hand-written rounding, the term that dominates a probe's tolerance, proportional to
    ``n_k**(1/4)``. Tensor ``k`` then gets the share ``f_k = n_k**(1/2) / sum_j n_j**(1/2)`` of
    that tolerance's square, and its sensitivity is ``1 / sqrt(f_k)`` times what it would be
    alone along its segment. Equal shares (``f_k = 1/K``) would widen every tensor ``sqrt(K)``
    times, the largest ones included, whose relative sensitivity is the coarsest to begin
    with (a partial is seen through ``1/sqrt(n_k)`` of a step); shares by size (``f_k ~ n_k``,
    every element weighted alike) would equalise the relative sensitivities but widen a bias
    of ten elements beside 10^6 weights some 300 times. ``n_k**(1/2)`` is the geometric mean
    of the two: the widening falls as ``n_k**(-1/4)`` and the relative sensitivity rises as
    ``n_k**(1/4)``, so no tensor is seen more coarsely, relative to its partials, than the
    largest ones. A spread below ``SPREAD_FLOOR`` of the median tensor's is taken at that floor;
    a tensor whose spread is not finite gets weight 0 (not moved: it gets its own probes,
    :func:`needs_own`)."""
    spread = np.array([t.spread if t.spread is not None else np.nan for t in tensors])
    sizes = np.array([max(t.finite, 1) for t in tensors], dtype=np.float64)
    finite = np.isfinite(spread)
    positive = spread[finite & (spread > 0)]
    floor = SPREAD_FLOOR * float(np.median(positive)) if positive.size else 1.0
    scale = np.maximum(np.where(finite, spread, 1.0), floor)
    # each scale relative to the smallest first: 1 / scale overflows at the spreads of
    # subnormal partials (a classifier converged to margins of ~700 nats)
    positive_scale = scale[finite & (scale > 0)]  # (a floor of subnormal spreads underflows)
    least = float(positive_scale.min()) if positive_scale.size else 1.0
    scale = np.where(scale > 0, scale, least)
    weights = np.where(finite, sizes**0.25 * (least / scale), 0.0)
    weights /= weights.max() if weights.max() > 0 else 1.0  # each <= 1: the norm cannot overflow
    norm = float(np.linalg.norm(weights))
    return weights / norm if norm > 0 else weights


def _bounds(tensors: Sequence[Tensor], weights: np.ndarray) -> tuple[float, float]:
    """The joint step's clips: no segment moves further than its own pilot would move it
    (:func:`gradcheck.fast.numerics.pilot_step`), and the segment that moves most moves a
    typical element by at least ``MOVE_ULPS`` units in the last place."""
    high, low = math.inf, math.inf
    for t, c in zip(tensors, weights, strict=True):
        if c > 0:
            high = min(high, pilot_step(t.eps, t.finite) / c)
            low = min(low, MOVE_ULPS * t.eps * math.sqrt(max(t.finite, 1)) / c)
    return min(low, high), high


def _evaluate(
    differences: FiniteDifferences, joint: Joint, step: float
) -> tuple[float, float, list[Sums]]:
    """The loss at ``x + step w`` and ``x - step w`` over every segment at once."""
    ups, downs, sums = [], [], []
    for d, c in zip(joint.segments, joint.weights, strict=True):
        if c > 0:
            up, down, s = points(d, Weights(0, d.tensor.x.size), step * c)
            ups.append(up)
            downs.append(down)
            sums.append(s)
    evaluator = differences.evaluator
    f_up, f_down = evaluator.pair(ups, downs)
    return f_up, f_down, sums


def _taken(joint: Joint, sums: list[Sums]) -> float:
    """The step actually taken along the joint direction: ``span . w / (2 w . w)``."""
    moving = [c for c in joint.weights if c > 0]
    taken = sum(c * s.taken for c, s in zip(moving, sums, strict=True))
    norm = sum(c * c * s.norm for c, s in zip(moving, sums, strict=True))
    return taken / (2.0 * norm) if norm > 0 else float("nan")


def pilot(differences: FiniteDifferences, tensors: Sequence[Tensor], seeds: Sequence[int]) -> Joint:
    """The joint direction of ``seeds`` and its step, from ``|F'''|`` measured along it (four
    evaluations, central differences at ``hp`` and ``2 hp``, as the per-tensor pilot)."""
    weights = segment_weights(tensors)
    low, high = _bounds(tensors, weights)
    segments = tuple(
        Direction(t, s, high * c, float("nan"))
        for t, s, c in zip(tensors, seeds, weights, strict=True)
    )
    joint = Joint(segments, tuple(float(c) for c in weights), high, float("nan"))
    slopes, steps = [], []
    unmoved = False
    for m in PILOT_MULTIPLES:
        f_up, f_down, sums = _evaluate(differences, joint, m * high)
        unmoved |= unmoved_loss(differences, f_up, f_down, sum(s.analytic for s in sums))
        step = _taken(joint, sums)
        steps.append(step)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            slopes.append((f_up - f_down) / (2.0 * step))
    third = pilot_third(slopes, steps)
    t0 = tensors[0]
    if unmoved:
        differences.pilots.measure_quantum(t0.name, largest_partial(t0))
    # the floor, or the loss's measured resolution near f0 (Pilots.quantum_sigma)
    quantum = differences.pilots.quantum_sigma
    noise = float(noise_bound(quantum, np.array(differences.evaluator.f0), _eps(tensors), t0.tol))
    if not np.isfinite(third):
        h = low
    elif third <= 0:
        h = high
    else:
        h = float(np.clip((3.0 * noise / third) ** (1 / 3), low, high))
    return at_step(joint, h, third)


def at_step(joint: Joint, h: float, third: float) -> Joint:
    """``joint`` with half step ``h`` (each segment at ``h c_k``) and curvature ``third``."""
    segments = tuple(
        replace(d, half_step=h * c, third=third)
        for d, c in zip(joint.segments, joint.weights, strict=True)
    )
    return Joint(segments, joint.weights, h, third)


def _eps(tensors: Sequence[Tensor]) -> float:
    return max(t.eps for t in tensors)


def probe(differences: FiniteDifferences, joint: Joint) -> Record:
    """One joint probe: two loss calls, every segment moved at once. ``D - A`` with ``A`` the
    sum of every segment's ``a . span``; the tolerance: the loss's noise, the truncation along
    the joint direction, and every segment's hand-written rounding (in quadrature, each at its
    own relative floor)."""
    h = joint.half_step
    f_up, f_down, sums = _evaluate(differences, joint, h)
    moving = [d for d, c in zip(joint.segments, joint.weights, strict=True) if c > 0]
    analytic = sum(s.analytic for s in sums)
    with np.errstate(over="ignore", invalid="ignore"):
        discrepancy = (f_up - f_down) - analytic
        rounding = math.hypot(
            *(d.tensor.rtol * s.rounding for d, s in zip(moving, sums, strict=True))
        )
    t0 = moving[0].tensor
    largest = np.array(max(abs(f_up), abs(f_down)))
    quantum = differences.pilots.quantum_sigma  # 0 unless measured (Pilots.quantum_sigma)
    noise = float(noise_bound(quantum, largest, _eps([d.tensor for d in moving]), t0.tol))
    tolerance = direction_tolerance(noise, h, joint.third, rounding, 1.0, t0.tol, t0.quantile)
    size = sum(d.tensor.x.size for d in joint.segments)
    return Record(0, size, discrepancy, tolerance, values=(f_up, f_down, _taken(joint, sums)))


def restricted(joint: Joint, members: Sequence[int]) -> Joint:
    """``joint`` moving only the segments ``members`` (the others weighted 0, half step 0), at
    the same steps and seeds: its probe measures those tensors' share of the joint probe's
    discrepancy."""
    keep = set(members)
    return Joint(
        tuple(d if k in keep else replace(d, half_step=0.0) for k, d in enumerate(joint.segments)),
        tuple(c if k in keep else 0.0 for k, c in enumerate(joint.weights)),
        joint.half_step,
        joint.third,
    )


def involved(
    differences: FiniteDifferences,
    tops: list[tuple[Joint, Record]],
    measured: Sequence[Measured],
) -> tuple[list[int], dict[int, dict[int, Record]]]:
    """Which tensors a failing joint probe ratio matching did not explain points at, by
    bisection over the tensors: the failing probes (``tops``' indices) restricted to the first
    half of a failing group's tensors are probed (2 evaluations each), the second half's share
    inferred as the difference (within both tolerances; probed too when both halves seem to
    pass), as :mod:`gradcheck.fast.localize` bisects a range.

    Returns the tensors left failing on their own (for the per-tensor machinery; every tensor of
    a group whose halves both passed where the group failed, errors spread thin or a crossed
    kink), and, for each other tensor, its passing record of every failing probe (restricted
    to a group it belongs to): with the joint probes that passed, those are the probes its
    stated sensitivity rests on."""
    failing = {j: r for j, (_, r) in enumerate(tops) if not r.passed}
    size = len(tops[0][0].segments)
    groups = [(list(range(size)), failing)]
    out: list[int] = []
    settled: dict[int, dict[int, Record]] = {}
    while groups:
        members, records = groups.pop()
        if all(r.passed for r in records.values()):
            settled.update({k: records for k in members})
            continue
        if len(members) == 1:
            out += members
            continue
        left, right = members[: len(members) // 2], members[len(members) // 2 :]
        lefts = {j: _share(differences, tops[j][0], left, measured) for j in records}
        rights = {
            j: replace(
                r,
                discrepancy=r.discrepancy - lefts[j].discrepancy,
                tolerance=r.tolerance + lefts[j].tolerance,
                values=None,
            )
            for j, r in records.items()
        }
        if all(r.passed for r in [*lefts.values(), *rights.values()]):
            # inference proves nothing: probe the second half
            rights = {j: _share(differences, tops[j][0], right, measured) for j in records}
            if all(r.passed for r in rights.values()):
                out += members  # both halves pass where the group failed: per tensor
                continue
        groups += [(right, rights), (left, lefts)]
    return sorted(out), settled


def _share(
    differences: FiniteDifferences, joint: Joint, members: list[int], measured: Sequence[Measured]
) -> Record:
    """The joint probe restricted to ``members``, the errors measured so far removed."""
    part = restricted(joint, members)
    return corrected(part, probe(differences, part), measured)


def corrected(joint: Joint, record: Record, measured: Sequence[Measured]) -> Record:
    """``record`` with every segment's known wrong elements removed (their measured error
    times their span, and their bound times |span| added to the tolerance): no evaluation."""
    discrepancy, tolerance = record.discrepancy, record.tolerance
    for d, m in zip(joint.segments, measured, strict=True):
        if m.known:
            n = d.tensor.x.size
            delta = correct(d, Weights(0, n), Record(0, n, 0.0, 0.0), m.known)
            discrepancy += delta.discrepancy
            tolerance += delta.tolerance
    return replace(record, discrepancy=discrepancy, tolerance=tolerance)


def for_tensor(joint: Joint, k: int, record: Record, measured: Measured) -> Record:
    """A corrected joint ``record`` as tensor ``k``'s probe record: its range the tensor's,
    its own known errors marked as removed already."""
    n = joint.segments[k].tensor.x.size
    return replace(record, lo=0, hi=n, peeled=frozenset(measured.known))


def candidates(
    tops: list[tuple[Joint, Record]], measured: Sequence[Measured]
) -> list[tuple[int, Claim]] | None:
    """The leads one wrong element would explain every corrected joint probe by, best first:
    ``(tensor, claim)``.

    Ratio matching over the concatenation (:func:`gradcheck.fast.localize.scan` per segment):
    the elements whose interval of consistent errors is not empty, all of them when they are
    ``MATCH_MOST`` or fewer across all tensors. Otherwise the likelihood ranking of the same
    pass: the element whose least-squares single-error fit over every probe is best, when a
    chance element would fit that well with probability at most ``LEAD_CHANCE``
    (:func:`gradcheck.fast.numerics.chance_fit`, against the runner-up across all tensors) and
    its interval is not empty (a single wrong element's always is). ``None``: no lead (more
    probes, or the bisection over tensors). Elements measured already are skipped."""
    found: list[tuple[int, Claim]] | None = []
    fits: list[tuple[float, int, Fit]] = []
    for k, m in enumerate(measured):
        if tops[0][0].weights[k] <= 0:
            continue
        segment = [(j.segments[k], r) for j, r in tops]
        got = scan(segment, m.known, frozenset(m.fd) - frozenset(m.known))
        fits += [(f.residual, k, f) for f in got.fits]
        if found is not None and got.claims is not None:
            found += [(k, c) for c in got.claims]
        if got.claims is None or (found is not None and len(found) > MATCH_MOST):
            found = None
    if found is not None:
        return sorted(found, key=lambda kc: (kc[1].fit, kc[0], kc[1].position))
    fits.sort(key=lambda t: (t[0], t[1], t[2].position))
    if len(fits) < 2 or chance_fit(fits[0][0], fits[1][0], len(tops)) > LEAD_CHANCE:
        return None
    k, lead = fits[0][1], fits[0][2]
    claim = claim_at([(j.segments[k], r) for j, r in tops], lead.position)
    return None if claim is None else [(k, claim)]


def own_best(tensor: Tensor, options: FastOptions, noise: float) -> float:
    """The finest sensitivity the tensor's own probes could state: all ``probes`` passing at
    its largest step (its pilot's) with no truncation at all, only the loss's noise floor and
    its own hand-written rounding. Its real one is never finer, so a joint sensitivity within
    ``OWN_RATIO`` of this is within ``OWN_RATIO`` of what the per-tensor pass would state."""
    h = pilot_step(tensor.eps, tensor.finite)
    rounding = (tensor.spread or 0.0) * 2.0 * h
    tolerance = direction_tolerance(
        noise, h, 0.0, rounding, tensor.rtol, tensor.tol, tensor.quantile
    )
    t = miss_threshold(options.miss, options.probes)
    return sensitivity(tolerance, h, tensor.scale, tensor.eps, t)


def widening(tensors: Sequence[Tensor]) -> np.ndarray:
    """Per tensor, ``1 / sqrt(f_k)``: how much coarser than along its own segment alone the
    weights (:func:`segment_weights`) make its sensitivity by design, ``f_k`` its share
    ``n_k**(1/2) / sum_j n_j**(1/2)`` of the joint tolerance."""
    roots = np.sqrt(np.array([max(t.finite, 1) for t in tensors], dtype=np.float64))
    return np.sqrt(roots.sum() / roots)


def needs_own(stated: float | None, best: float, widened: float) -> bool:
    """Whether a tensor gets its own probes after the joint ones passed: it has no finite
    joint sensitivity (``stated``), or that is more than ``OWN_RATIO`` times ``widened`` (its
    designed widening, :func:`widening`) coarser than what its own probes could state at best
    (``best``, :func:`own_best`, a lower bound of the real one, hence the margin): the joint
    direction then sees it far worse than the weights intended (a step forced small by
    another tensor's curvature, a tensor whose partials dwarf the others')."""
    if stated is None or not math.isfinite(stated):
        return True
    return not stated <= OWN_RATIO * widened * best
