"""Localization by group testing: from a failing tensor probe to the wrong elements.

A failing probe says the probed elements carry a discrepancy ``D - A`` beyond the tolerance.
Bisection splits each failing range in two halves and probes the left half with the *same*
direction and step (:mod:`gradcheck.fast.probe`), so the halves' discrepancies add up to the
parent's up to finite-difference error. The right half's is then known without a probe:
``(D - A)_right = (D - A)_parent - (D - A)_left``, within ``T_parent + T_left``; when that
already exceeds its bound the right half fails for certain and costs nothing, otherwise it is
probed itself. One wrong element is thus found with 2 to 4 loss evaluations per halving, about
``3 log2 P`` in all, and ``k`` wrong elements with ``O(k log P)``.

Several wrong elements, of either sign, do not hide one another: every range's discrepancy is a
Gaussian-weighted sum of its errors (small-ball bound in
:func:`gradcheck.core.numerics.small_ball`). A range passes only by its own probe, never by
inference, so every element outside the located ones was covered by a measured passing probe.

Elements localization narrows to are then measured one by one with the engine's full procedure
(:meth:`gradcheck.core.differences.FiniteDifferences.differentiate` on those indices): only that
measurement calls an element wrong, so a probe's false lead (a kink, say) ends as ``ok`` or
``uncertain``.

Graceful fallbacks:
* when measuring the failing ranges element by element is cheaper than bisecting them further
  (small tensors, or most of a range wrong), every element in them is measured;
* when more than ``max_wrong`` ranges fail at once (a whole tensor wrong), bisecting would cost
  more than it tells: the tensor is reported wrong (``unresolved``), ``fallback_samples``
  elements of its failing ranges are measured one by one, and the rest of those ranges stay
  ``unchecked``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from gradcheck.core.differences import FiniteDifferences
from gradcheck.fast.probe import Direction, FastOptions, Record, probe

# Cost model (loss evaluations) for choosing between bisecting and measuring one by one.
PER_HALVING = 4  # a left probe, and the right one when it cannot be inferred
PER_ELEMENT = 2  # the main central difference of a measured element
PILOT = 4  # the engine's pilot per pilot element (up to three)


@dataclass
class Outcome:
    """Where localization got to, in positions of the direction (not flat indices yet)."""

    passed: list[Record] = field(default_factory=list)  # ranges a probe cleared
    unresolved: list[Record] = field(default_factory=list)  # failing ranges left as they are
    located: list[int] = field(default_factory=list)  # single elements bisection reached
    measure: list[int] = field(default_factory=list)  # positions to measure one by one
    probes: int = 0
    fallback: str | None = None


def localize(
    differences: FiniteDifferences,
    direction: Direction,
    top: Record,
    options: FastOptions,
    rng: np.random.Generator,
) -> Outcome:
    """Bisect the failing range ``top`` of ``direction`` down to its wrong elements."""
    out = Outcome()
    frontier = [top]
    while frontier:
        out.located += [r.lo for r in frontier if r.size == 1]
        frontier = [r for r in frontier if r.size > 1]
        if not frontier:
            break
        total = sum(r.size for r in frontier)
        depth = math.ceil(math.log2(max(r.size for r in frontier)))
        if PER_ELEMENT * total + PILOT * min(3, total) <= len(frontier) * PER_HALVING * (depth + 1):
            out.measure += [i for r in frontier for i in range(r.lo, r.hi)]
            break
        if len(frontier) + len(out.located) > options.max_wrong:
            out.fallback = (
                f"{len(frontier)} ranges of {total} elements still failing after "
                f"{out.probes} probes: too many wrong elements to bisect; "
                f"{options.fallback_samples} of them sampled"
            )
            out.unresolved += frontier
            break
        frontier = _halve(differences, direction, frontier, out)
    out.measure = sorted(set(out.measure) | set(out.located) | set(_sample(out, options, rng)))
    return out


def _halve(
    differences: FiniteDifferences, direction: Direction, frontier: list[Record], out: Outcome
) -> list[Record]:
    """Split every failing range; return the failing halves."""
    lefts = probe(differences, direction, [(r.lo, (r.lo + r.hi) // 2) for r in frontier])
    out.probes += len(lefts)
    failing: list[Record] = []
    undecided: list[tuple[int, int]] = []
    for parent, left in zip(frontier, lefts, strict=True):
        (out.passed if left.passed else failing).append(left)
        right = Record(
            left.hi,
            parent.hi,
            parent.difference - left.difference,
            float(direction.contribution[left.hi : parent.hi].sum()),
            parent.tolerance + left.tolerance,
            inferred=True,
        )
        if right.passed:  # consistent with no error, which proves nothing: probe it
            undecided.append((right.lo, right.hi))
        else:
            failing.append(right)
    rights = probe(differences, direction, undecided)
    out.probes += len(rights)
    for right in rights:
        (out.passed if right.passed else failing).append(right)
    # A parent whose halves both pass failed by errors spread out near the sensitivity; its
    # halves' passes contradict it, so neither clears its elements: it stays failing.
    for parent in frontier:
        if not any(parent.lo <= r.lo and r.hi <= parent.hi for r in failing):
            out.unresolved.append(parent)
            out.passed = [r for r in out.passed if not (parent.lo <= r.lo and r.hi <= parent.hi)]
    failing.sort(key=lambda r: r.lo)
    return failing


def _sample(out: Outcome, options: FastOptions, rng: np.random.Generator) -> list[int]:
    """Up to ``fallback_samples`` positions drawn from the unresolved ranges (no repeats)."""
    if not out.unresolved:
        return []
    if out.fallback is None:
        out.fallback = (
            f"{len(out.unresolved)} failing range(s) whose halves both passed "
            "(errors spread out near the sensitivity); elements sampled"
        )
    sizes = np.array([r.size for r in out.unresolved])
    total = int(sizes.sum())
    picks = rng.choice(total, size=min(options.fallback_samples, total), replace=False)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    which = np.searchsorted(np.cumsum(sizes), picks, side="right")
    return [int(out.unresolved[w].lo + p - starts[w]) for w, p in zip(which, picks, strict=True)]
