"""Localization: from a failing probe to the wrong elements, using the probes' values.

A failing probe of a range measures ``r = D - A = -sum_i e_i span_i`` (plus finite-difference
error within its tolerance ``T``), a real number, not one bit. Two moves use it:

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

**Confirmation.** Every element decoding or bisection names is measured one by one with the
engine's full procedure (:meth:`gradcheck.core.differences.FiniteDifferences.differentiate`) and
only that measurement calls it wrong; a false lead (a kink, noise, a mixture of errors read as
one) ends ``ok`` or ``uncertain`` and the range is bisected instead. An element measured wrong
has its measured error ``a - numeric`` removed from every probe (``known``; arithmetic on the
regenerated spans, no evaluation), so the range it sat in is looked at again for what is left:
several errors are peeled one after the other.

Guarantees. *False alarm*: an element is called wrong only by its own measurement, with the
full check's rule, so the probability is the full check's. *Miss*: localization never clears an
element; what fast mode finally states about the elements it did not measure comes from the
tensor-wide probes that pass once the measured errors are removed (:mod:`gradcheck.fast.mode`).
When more than ``max_wrong`` ranges fail at once (a whole tensor wrong), the tensor is reported
wrong (``unresolved``), ``fallback_samples`` elements of its failing ranges are measured, and
the rest of those ranges stays ``unchecked``. A failing probe is localized only once the loss
has been found smooth along its direction (kinks: see :mod:`gradcheck.fast.mode`).
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
from gradcheck.core.numerics import Tolerance
from gradcheck.core.params import Param
from gradcheck.fast.numerics import decoding_groups, decoding_levels
from gradcheck.fast.probe import (
    PROBE_EVALUATIONS,
    Direction,
    FastOptions,
    Record,
    Weights,
    correct,
    probe,
)

# Cost model (loss evaluations), from the engine's own procedure.
PER_ELEMENT = 2  # the main central difference of a measured element
CONFIRM_WRONG = 2 + 2 * len(REFINE_LEVELS)  # a wrong element is refined as well
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
            if measured.measure(differences, [lead]):
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
            measured.measure(differences, [r.lo])
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
