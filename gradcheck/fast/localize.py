"""Localization: from a failing probe to the wrong elements, using the probes' values.

A failing probe of a range measures ``r = D - A = -sum_i e_i span_i`` (plus finite-difference
error within its tolerance ``T``), a real number, not one bit. Three moves use it:

**Ratio matching** (:func:`scan`, :func:`leads`, first, for one wrong element in the tensor).
The fast check runs its ``probes`` tensor-wide probes whether they fail or not, along
independent random directions. If one element ``i`` carries the error, ``r_j = -e span_ij`` for
every probe ``j``, so the ratios of the probes' values are those of ``i``'s weights, which no
other element shares beyond chance: per element, the errors consistent with every probe within
its tolerance form an interval (:func:`gradcheck.fast.numerics.consistent_errors`), and the
elements where it is not empty are the candidates. No loss evaluation (the spans are
regenerated from the directions' seeds); at most ``MATCH_MOST`` candidates are confirmed, best
fit first. When more are consistent (a weak error, or many elements), the same pass ranks
every element by its least-squares single-error fit over every probe: the wrong one fits to
the probes' actual noise, far below their tolerance, and is a lead when a chance element
would fit as well with probability at most ``LEAD_CHANCE``
(:func:`gradcheck.fast.numerics.chance_fit`, read off the runner-up); else a probe more
sharpens the fits (up to ``MATCH_PROBES``, :mod:`gradcheck.fast.mode`), and then (several
wrong elements, or a weaker one) decoding and bisection take over.

**Decoding** (for one wrong element in the range). Split the range into ``k`` groups and probe
it again along the *same* direction with group ``g`` weighted ``c_g``, ``k`` levels evenly
spread over ``[-1, 1]``: if one element ``i`` carries the error, ``r' = c_g(i) r`` up to both
probes' errors, so the ratio ``r' / r`` *reads* the group of ``i`` (the adaptive form of the
ratio ``v1[i] / v2[i]`` of two independent projections). How many groups one probe can tell
apart follows from ``|r| / T`` (:func:`gradcheck.fast.numerics.decoding_groups`): a strong
error is located among ``P`` in ``log(P) / log(k)`` probes, a weak one falls back to ``k = 2``.
A ratio that sits near no level, or near two, means the range holds more than one error:
decoding stops and bisection takes over.

**Bisection** (the fallback, and for several wrong elements): probe the left half along the same
direction; the right half's discrepancy is then ``r - r_left`` within ``T + T_left``. A half
that fails is followed; when both halves seem to pass the right one is probed on its own, and
if it passes too the range's errors are spread out near the sensitivity: it stays failing
(``unresolved``).

**Confirmation** (:meth:`Measured.confirm`). Every element matching, decoding or bisection
names is measured one by one, and only that measurement calls it wrong: central differences
along the element alone at the probes' step and at a half and a quarter of it
(``CONFIRM_EVALUATIONS``), analysed as the engine refines an element (a Richardson value, an
error estimate of the element's own, the kink test) and judged by the full check's rule. It is
wrong when that rule says so *and* the error it measures agrees with the error the probes
attributed to it (two independent measurements of one error); a measurement that is right
where the probes' error is out of its reach is a false lead (``ok``); anything else (a kink
bracketing the hand-written value: ``uncertain``; a disagreement; a loss noisier than the
probes assumed) is settled by the engine's full procedure
(:meth:`gradcheck.core.differences.FiniteDifferences.differentiate`: measured noise, pilot
ladder, refinement). A false lead ends ``ok`` or ``uncertain`` and the range is bisected
instead. An element measured wrong has its measured error ``a - numeric`` removed from every
probe (``known``; arithmetic on the regenerated spans, no evaluation), so the range it sat in
is looked at again for what is left: several errors are peeled one after the other.

Guarantees. *False alarm*: an element is called wrong only by its own measurement, with the
full check's rule (and, when the cheap confirmation decides, in agreement with the probes'
independent reading of the same error), so the probability is at most the full check's.
A correct tensor fails one of its ``m`` tensor-wide probes with probability at most
``m * false_alarm`` (union bound); its failure then stands (``unresolved``) unless an element is
measured wrong. *Found*: one wrong element is always among the matching candidates when every
probe's finite-difference error is within its tolerance (the intervals are exact), so matching
misses it only by having too many candidates, and then decoding and bisection look for it.
*Miss*: localization never clears an element; what fast mode finally states about the
elements it did not measure comes from the tensor-wide probes that pass once the measured
errors are removed (:mod:`gradcheck.fast.mode`).
When more than ``max_wrong`` ranges fail at once (a whole tensor wrong), the tensor is reported
wrong (``unresolved``), ``fallback_samples`` elements of its failing ranges are measured, and
the rest of those ranges stays ``unchecked``. A failing probe is localized a second time, or
declared ``unresolved``, only once the loss has been found smooth along its direction (kinks:
see :mod:`gradcheck.fast.mode`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from gradcheck.core.compare import CODE, compare
from gradcheck.core.differences import (
    PILOT_ELEMENTS,
    REFINE_LEVELS,
    FiniteDifferences,
    TensorDifferences,
)
from gradcheck.core.differences import PILOT_EVALUATIONS as ENGINE_PILOT
from gradcheck.core.numerics import Tolerance, noise_bound, smallest_step, taken_steps
from gradcheck.core.params import Param
from gradcheck.core.stencil import analyse
from gradcheck.fast.numerics import (
    CONFIRM_LEVELS,
    LEAD_CHANCE,
    MATCH_MOST,
    chance_fit,
    consistent_errors,
    decoding_groups,
    decoding_levels,
    narrow,
    single_fit,
)
from gradcheck.fast.probe import (
    CHUNK,
    PROBE_EVALUATIONS,
    Direction,
    FastOptions,
    Record,
    Weights,
    Work,
    correct,
    probe,
)

# Cost model (loss evaluations), from the engine's own procedure.
PER_ELEMENT = 2  # the main central difference of a measured element
CONFIRM_WRONG = 2 + 2 * len(REFINE_LEVELS)  # a wrong element is refined as well
CONFIRM_EVALUATIONS = 2 * len(CONFIRM_LEVELS)  # a lead confirmed at a step the probes fixed
MOST_GROUPS = 1 << 12  # levels one decoding probe may use (bookkeeping, not information)
FAILING_CODES = (int(CODE["wrong"]), int(CODE["nonfinite"]))


def measure_cost(count: int) -> int:
    """Evaluations to measure ``count`` elements one by one: the engine's pilot on up to
    ``PILOT_ELEMENTS`` of them, and a central difference each."""
    return ENGINE_PILOT * min(PILOT_ELEMENTS, count) + PER_ELEMENT * count


@dataclass
class Measured:
    """Elements measured one by one so far: their differences and verdicts (small)."""

    param: Param
    grad: np.ndarray
    precision: np.dtype
    tolerance: Tolerance
    fd: dict[int, TensorDifferences] = field(default_factory=dict)  # position -> its row
    known: dict[int, tuple[float, float]] = field(default_factory=dict)  # wrong: (error, bound)
    spent: dict[tuple[int, int], int] = field(default_factory=dict)  # range -> evaluations

    def measure(self, differences: FiniteDifferences, positions: list[int]) -> list[int]:
        """Measure the new ``positions``; return those measured wrong."""
        new = np.array(sorted(set(positions) - set(self.fd)), dtype=np.intp)
        if not new.size:
            return []
        analytic = self.grad.reshape(-1)
        fd = differences.differentiate(self.param.name, analytic[new], self.precision, indices=new)
        verdict = compare(self.param, self.grad, fd, self.tolerance, elements=new)
        wrong = []
        for k, p in enumerate(new.tolist()):
            self.fd[p] = _row(fd, k)
            if int(verdict.codes[k]) in FAILING_CODES:
                wrong.append(p)
                if np.isfinite(verdict.abs_err[k]):
                    error = float(analytic[p] - verdict.numeric[k])
                    self.known[p] = (error, float(verdict.tolerance[k]))
        return wrong

    def confirm(
        self, differences: FiniteDifferences, direction: Direction, position: int, claim: Claim
    ) -> bool:
        """Measure one lead the probes' values named, cheaply; whether it is wrong.

        Two central differences along the element alone (``CONFIRM_EVALUATIONS``), at the
        probes' step (:func:`confirm_step`) and half of it, analysed as the engine refines an
        element (:func:`gradcheck.core.stencil.analyse`: a Richardson value, an error estimate
        of the element's own from how the two levels differ, the kink test), and judged by the
        full check's rule (:func:`gradcheck.core.compare.compare`). The element is wrong when
        that rule says so *and* its measured error ``a - numeric`` agrees with ``claim``, the
        error the probes attributed to it (within the verdict's allowance): two independent
        measurements of the same error, and no kink within the steps (kinks on both sides of a
        step this large give one-sided slopes that need not bracket the true subgradients: the
        engine isolates them with smaller steps). Anything else (a kink, a verdict ``ok``, an
        error the probes did not see, a loss noisier than the probes assumed) is settled by the
        engine's own procedure (:meth:`measure`: measured noise, pilot ladder, refinement)."""
        if position in self.fd:
            return position in self.known
        name = self.param.name
        t = direction.tensor
        x = t.x[position : position + 1]
        h = np.array([confirm_step(direction, position)])
        evaluator = differences.evaluator
        evaluator.plan(CONFIRM_EVALUATIONS)
        index = np.array([position], dtype=np.intp)
        central, values = {}, [np.array([evaluator.f0])]
        for m in CONFIRM_LEVELS:
            up, down, _ = taken_steps(x, m * h)
            f_up = evaluator.at_elements(name, index, up)
            f_down = evaluator.at_elements(name, index, down)
            x64 = x.astype(np.float64)
            central[m] = (f_up, f_down, up.astype(np.float64) - x64, x64 - down.astype(np.float64))
            values += [f_up, f_down]
        if all(np.all(v == evaluator.f0) for v in values) and t.analytic[position] != 0:
            # the loss did not move at any step, as the hand-written partial says it does: its
            # resolution near f0 first (a cross-entropy of 1e-17 moves in steps of 1e-18)
            differences.pilots.measure_quantum(name, position)
        sigma = float(np.fmax(differences.pilots.sigma, differences.pilots.quantum_sigma))
        noise = noise_bound(sigma, np.abs(np.stack(values)).max(axis=0), t.eps, t.tol)
        got = analyse(evaluator.f0, central, noise)
        fd = _confirmation(got, h, direction.third, t.rtol, sigma, self.tolerance)
        verdict = compare(self.param, self.grad, fd, self.tolerance, elements=index)
        with np.errstate(over="ignore", invalid="ignore"):  # NaN agrees with nothing
            error = float(t.analytic[position] - verdict.numeric[0])
            allowance = float(verdict.tolerance[0])
            agrees = bool(claim.low - allowance <= error <= claim.high + allowance)
        code = int(verdict.codes[0])
        if code == int(CODE["wrong"]) and agrees and not fd.kink[0]:
            self.fd[position] = fd
            self.known[position] = (error, allowance)
            return True
        if (code == int(CODE["ok"]) and not agrees) or code == int(CODE["uncertain"]):
            # right within its own error bound, and the probes' error is not within reach of
            # it: a false lead, measured (a true error hides in its bound only if that bound
            # understates the truncation; the tensor-wide probes would then keep failing). Or
            # a kink whose one-sided slopes bracket the hand-written value: uncertain, as the
            # engine's refinement would find it at these very levels
            self.fd[position] = fd
            return False
        return bool(self.measure(differences, [position]))


@dataclass(frozen=True)
class Claim:
    """The error ``e`` (``a - true``) the probes attribute to one element: ``low <= e <= high``
    explains every probe's discrepancy within its tolerance."""

    position: int
    low: float
    high: float
    fit: float = 0.0  # its least-squares single-error residual, sum_j ((r_j + e s_j) / T_j)**2


def claim_of(direction: Direction, record: Record, position: int) -> Claim:
    """The error ``record`` attributes to ``position`` if that element alone explains it."""
    span = direction.spans_at(
        Weights(record.lo, record.hi), np.array([position], np.intp), direction.half_step
    )
    low, high = consistent_errors(
        np.array([record.discrepancy]), np.array([record.tolerance]), span[None, :]
    )
    return Claim(position, float(low[0]), float(high[0]))


def confirm_step(direction: Direction, position: int) -> float:
    """The step of a lead's own central difference: the probes' step along the unit-length
    direction, ``h``, on the element's scale ``max(1, |x_i|)``, as the probe moved it per unit
    of ``z``. ``h`` came from the noise and the curvature the pilot measured along a random
    direction of the same tensor; the two-level stencil then measures the element's own
    truncation, so the error bound is the element's, not the direction's. Never below the
    engine's smallest step (the span must stay resolved)."""
    x = direction.tensor.x[position : position + 1]
    scale = np.maximum(1.0, np.abs(x.astype(np.float64)))
    return float(np.maximum(direction.half_step * scale, smallest_step(x, direction.tensor.eps))[0])


def _confirmation(
    got: dict[str, np.ndarray],
    h: np.ndarray,
    third: float,
    rtol: float,
    sigma: float,
    tolerance: Tolerance,
) -> TensorDifferences:
    """A one-element TensorDifferences from a two-level stencil (refined: its own error)."""
    numeric, error = got["numeric"], got["error"]
    return TensorDifferences(
        numeric=numeric,
        error=error,
        step=h,
        forward=got["forward"],
        backward=got["backward"],
        slack=got["slack"],
        kink=got["kink"],
        refined=np.ones(1, dtype=bool),
        third=third,
        rtol=rtol,
        noise=sigma,
        detectable=tolerance.safety * error,
    )


@dataclass(frozen=True)
class Fit:
    """One element's least-squares fit as the single wrong element: ``residual`` is
    ``min_e sum_j ((r_j + e span_ij) / T_j)**2`` (:func:`gradcheck.fast.numerics.single_fit`),
    reached at ``error``."""

    position: int
    residual: float
    error: float


@dataclass(frozen=True)
class Scan:
    """What one pass over a tensor's elements found (:func:`scan`): ``claims`` the elements
    ratio matching leaves (``None``: more than ``MATCH_MOST``), ``fits`` the ``FIT_KEEP``
    elements whose single-error fit is best (smallest residual first, consistent or not), and
    ``total`` the residual of no error at all, ``sum_j (r_j / T_j)**2``."""

    claims: list[Claim] | None
    fits: list[Fit]
    total: float


FIT_KEEP = 2  # the best fit and its runner-up: what the lead rule compares


def scan(
    tops: list[tuple[Direction, Record]],
    known: dict[int, tuple[float, float]],
    skip: frozenset[int] = frozenset(),
) -> Scan:
    """Ratio matching and the likelihood ranking, in one pass over the regenerated spans (no
    loss evaluation, ``O(CHUNK)`` memory).

    Probe ``j`` measured ``r_j = D - A`` (the known errors removed) within ``T_j``. If one
    element ``i`` carries an error ``e``, ``r_j = -e span_ij`` up to ``T_j`` for every ``j``:
    the ratios ``r_1 : r_2 : r_3`` are those of ``i``'s weights in the independent random
    directions, which no other element shares beyond chance. *Ratio matching*: per element
    the errors consistent with all probes form an interval
    (:func:`gradcheck.fast.numerics.consistent_errors`); the claims are the elements where it
    is not empty, ``None`` when more than ``MATCH_MOST`` are (a weak error, several wrong
    elements, or many elements). *Ranking*: every element's least-squares single-error fit
    (:func:`gradcheck.fast.numerics.single_fit`), the ``FIT_KEEP`` best kept, from which
    :func:`leads` reads a lead when the claims are too many. A claim's ``fit`` is its
    residual. Elements in ``known`` (measured wrong) or ``skip`` (measured right) are neither
    claimed nor fitted."""
    if not tops:
        return Scan(None, [], float("nan"))
    size = tops[0][0].tensor.x.size
    r = np.array([rec.discrepancy for _, rec in tops])
    tol = np.array([rec.tolerance for _, rec in tops])
    if not (np.isfinite(r).all() and np.isfinite(tol).all() and (tol > 0).all()):
        return Scan(None, [], float("nan"))
    y = r / tol
    total = float(y @ y)
    found: list[Claim] | None = []
    best: list[Fit] = []
    excluded = sorted(set(known) | set(skip))
    width = min(size, CHUNK)
    work, along, power = np.empty(width), np.empty(width), np.empty(width)  # reused
    # one span stream per probe, walked in step chunk by chunk, sharing one set of buffers:
    # each piece is used before the next stream is advanced
    shared = Work.of(tops[0][0].tensor.x.dtype, spans=True)
    streams = [d.spans(Weights(0, size), d.half_step, shared) for d, _ in tops]
    for start in range(0, size, CHUNK):
        n = min(size, start + CHUNK) - start
        w, a, b = work[:n], along[:n], power[:n]
        a[:], b[:] = 0.0, 0.0
        if found is not None:
            low, high = np.full(n, -np.inf), np.full(n, np.inf)
        for j, stream in enumerate(streams):
            s = next(stream)[2]  # the shared span buffer: used (and scaled) before the next
            if found is not None:
                narrow(low, high, float(r[j]), float(tol[j]), s)
            with np.errstate(over="ignore", invalid="ignore"):
                s /= tol[j]
                a += np.multiply(s, y[j], out=w)
                b += np.multiply(s, s, out=w)
        residual, error = single_fit(total, a, b)
        i, k = np.searchsorted(excluded, (start, start + n))
        residual[np.array(excluded[i:k], dtype=np.intp) - start] = np.inf
        if found is not None:
            for k in np.flatnonzero(low <= high):
                if np.isfinite(residual[k]):  # not excluded
                    found.append(
                        Claim(start + int(k), float(low[k]), float(high[k]), float(residual[k]))
                    )
            if len(found) > MATCH_MOST:
                found = None  # too many: the fits go on, the claims stop
        best = _best(best, residual, error, start)
    claims = None if found is None else sorted(found, key=lambda c: (c.fit, c.position))
    return Scan(claims, best, total)


def _best(best: list[Fit], residual: np.ndarray, error: np.ndarray, start: int) -> list[Fit]:
    """The ``FIT_KEEP`` smallest residuals of ``best`` and this chunk's (ties: lower position);
    ``residual`` is a work buffer (its smallest are set to infinity on the way)."""
    merged = list(best)
    for _ in range(min(FIT_KEEP, residual.size)):
        k = int(np.argmin(residual))  # no index array of the chunk's size
        if not np.isfinite(residual[k]):
            break
        merged.append(Fit(start + k, float(residual[k]), float(error[k])))
        residual[k] = np.inf
    return sorted(merged, key=lambda f: (f.residual, f.position))[:FIT_KEEP]


def leads(tops: list[tuple[Direction, Record]], measured: Measured) -> list[Claim] | None:
    """The elements to confirm, best first, for a failure one wrong element may explain
    (:func:`scan`): every element ratio matching leaves consistent when they are at most
    ``MATCH_MOST``; otherwise the best single-error fit when a chance element would fit that
    well with probability at most ``LEAD_CHANCE`` (:func:`gradcheck.fast.numerics.chance_fit`)
    and its interval of consistent errors is not empty. ``None``: no lead. Elements measured
    already are skipped."""
    got = scan(tops, measured.known, frozenset(measured.fd) - frozenset(measured.known))
    if got.claims is not None:
        return got.claims
    if len(got.fits) < 2:
        return None
    if chance_fit(got.fits[0].residual, got.fits[1].residual, len(tops)) > LEAD_CHANCE:
        return None
    claim = claim_at(tops, got.fits[0].position)
    return None if claim is None else [claim]


def claim_at(tops: list[tuple[Direction, Record]], position: int) -> Claim | None:
    """The claim of ``position`` as the single wrong element over every probe (its interval of
    consistent errors, :func:`gradcheck.fast.numerics.consistent_errors`); ``None`` when it is
    empty: no single error there explains every probe within its tolerance."""
    size = tops[0][0].tensor.x.size
    at = np.array([position], np.intp)
    r = np.array([rec.discrepancy for _, rec in tops])
    tol = np.array([rec.tolerance for _, rec in tops])
    spans = np.array([d.spans_at(Weights(0, size), at, d.half_step) for d, _ in tops])
    low, high = consistent_errors(r, tol, spans)
    if not low[0] <= high[0]:
        return None
    y, scaled = r / tol, spans[:, 0] / tol
    residual, _ = single_fit(float(y @ y), np.array([y @ scaled]), np.array([scaled @ scaled]))
    fit = float(residual[0])
    return Claim(position, float(low[0]), float(high[0]), fit)


def _row(fd: TensorDifferences, k: int) -> TensorDifferences:
    """Element ``k`` of ``fd`` as a one-element TensorDifferences."""
    arrays = {
        name: getattr(fd, name)[k : k + 1]
        for name in ("numeric", "error", "step", "forward", "backward", "slack", "kink", "refined")
    }
    return TensorDifferences(**arrays, third=fd.third, rtol=fd.rtol)


@dataclass
class Outcome:
    """What one localization run did (positions are flat indices)."""

    decoded: list[int] = field(default_factory=list)
    located: list[int] = field(default_factory=list)
    unresolved: list[Record] = field(default_factory=list)
    probes: int = 0
    fallback: str | None = None


def localize(
    differences: FiniteDifferences,
    direction: Direction,
    top: Record,
    measured: Measured,
    options: FastOptions,
    rng: np.random.Generator,
) -> Outcome:
    """Find and measure the wrong elements behind the failing record ``top``."""
    out = Outcome()
    evaluator = differences.evaluator
    spent = measured.spent
    pending = [top]
    while pending:
        node = pending.pop(0)
        if len(pending) + 1 > options.max_wrong:
            out.unresolved += [node, *pending]
            out.fallback = (
                f"{len(pending) + 1} ranges still failing after {out.probes} probes: too many "
                f"wrong elements to follow; {options.fallback_samples} of them sampled"
            )
            break
        start = evaluator.evaluations
        node = _again(direction, node, measured)
        if node.passed:
            continue
        so_far = spent.get((node.lo, node.hi), 0) + evaluator.evaluations - start
        if measure_cost(node.size) <= so_far + _search_cost(node.size):
            # measuring the range whole is no dearer than searching it (small ranges, or
            # one where the search has already cost that much: many wrong elements)
            measured.measure(differences, list(range(node.lo, node.hi)))
            continue
        lead = _decode(differences, direction, node, measured, out)
        if lead is not None and lead not in measured.fd:
            out.decoded.append(lead)
            if measured.confirm(differences, direction, lead, claim_of(direction, node, lead)):
                pending.insert(0, node)  # what is left in the range, looked at again
                spent[(node.lo, node.hi)] = so_far + evaluator.evaluations - start
                continue
        elif measure_cost(node.size) <= so_far + 2 * _search_cost(node.size):
            # not one error (decoding failed): searching costs at least two searches
            measured.measure(differences, list(range(node.lo, node.hi)))
            continue
        pending[:0] = _halve(differences, direction, node, measured, out)
    if out.unresolved:
        measured.measure(differences, _sample(out.unresolved, options, rng))
    return out


def _search_cost(size: int) -> int:
    """Evaluations bisection would need for one wrong element in ``size``, and its check."""
    return 2 * PROBE_EVALUATIONS * math.ceil(math.log2(max(size, 2))) + measure_cost(1) + 4


def _again(direction: Direction, node: Record, measured: Measured) -> Record:
    """``node`` with the elements measured wrong since its probe removed (no evaluation)."""
    return correct(direction, Weights(node.lo, node.hi), node, measured.known)


def _decode(
    differences: FiniteDifferences,
    direction: Direction,
    node: Record,
    measured: Measured,
    out: Outcome,
) -> int | None:
    """Read the position of a single wrong element in ``node`` off ratios of probes."""
    lo, hi = node.lo, node.hi
    signal, tolerance = node.discrepancy, node.tolerance
    while hi - lo > 1:
        k = min(hi - lo, decoding_groups(signal, tolerance, MOST_GROUPS))
        if k < 2:
            return None
        edges = np.linspace(lo, hi, k + 1).round().astype(np.intp)
        levels = decoding_levels(k)
        weighted = probe(differences, direction, Weights(lo, hi, edges, levels), measured.known)
        out.probes += 1
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            ratio = weighted.discrepancy / signal
            bound = (weighted.tolerance + tolerance) / (abs(signal) - tolerance)
        distance = np.abs(levels - ratio)
        g = int(np.argmin(distance))
        spacing = 2.0 / (k - 1)
        if not (distance[g] <= bound and bound < spacing / 2):
            return None  # near no level, or near two: not one error
        lo, hi = int(edges[g]), int(edges[g + 1])
    return lo


def _halve(
    differences: FiniteDifferences,
    direction: Direction,
    node: Record,
    measured: Measured,
    out: Outcome,
) -> list[Record]:
    """Split ``node``; return its failing halves (``node`` itself when neither fails)."""
    mid = (node.lo + node.hi) // 2
    left = probe(differences, direction, Weights(node.lo, mid), measured.known)
    out.probes += 1
    right = Record(
        mid,
        node.hi,
        node.discrepancy - left.discrepancy,
        node.tolerance + left.tolerance,
        frozenset(p for p in node.peeled if p >= mid),
    )
    if right.passed and left.passed:  # inference proves nothing: probe it
        right = probe(differences, direction, Weights(mid, node.hi), measured.known)
        out.probes += 1
    failing = [r for r in (left, right) if not r.passed]
    for r in failing:
        if r.size == 1:
            out.located.append(r.lo)
            measured.confirm(differences, direction, r.lo, claim_of(direction, r, r.lo))
    failing = [r for r in failing if r.size > 1]
    if not failing and left.passed and right.passed:
        # errors spread out near the sensitivity: the halves' passes contradict the parent
        out.unresolved.append(node)
        out.fallback = out.fallback or (
            "a failing range whose halves both passed (errors spread out near the "
            "sensitivity); elements sampled"
        )
    return failing


def _sample(unresolved: list[Record], options: FastOptions, rng: np.random.Generator) -> list[int]:
    """Up to ``fallback_samples`` positions drawn from the unresolved ranges (no repeats)."""
    sizes = np.array([r.size for r in unresolved])
    total = int(sizes.sum())
    picks = rng.choice(total, size=min(options.fallback_samples, total), replace=False)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    which = np.searchsorted(np.cumsum(sizes), picks, side="right")
    return [int(unresolved[w].lo + p - starts[w]) for w, p in zip(which, picks, strict=True)]
