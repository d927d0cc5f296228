"""``check(mode="fast")``: random-direction probes, joint over every tensor, localization where
one fails.

First, joint probes (:mod:`gradcheck.fast.joint`, for two tensors or more with a usable
gradient): one pilot and ``probes`` probes along directions over every tensor at once, each
tensor a weighted segment; a failure one element explains is read off the probes' values
(ratio matching over the concatenation) and confirmed; a failure it does not explain is
narrowed to its tensors by bisection over them. Every tensor the joint probes do not settle
(those it points at, and any whose joint sensitivity is far coarser than its own probes could
state, :func:`gradcheck.fast.joint.needs_own`) gets the per-tensor procedure below, starting
from the elements measured so far.

Per tensor: one pilot fixes the step (:func:`gradcheck.fast.probe.pilot`), then independent
random directions are probed until ``probes`` of them pass. A failing one is localized
(:mod:`gradcheck.fast.localize`): the elements it names are measured one by one, and those
measured wrong have their error removed from every probe of the tensor, the earlier ones
included (the spans are regenerated from the directions' seeds). The tensor is done when
``probes`` directions pass with the measured errors removed.

Element statuses in fast mode:

* ``wrong`` / ``ok`` / ``uncertain`` / ``nonfinite``: measured one by one with the full check's
  rule (named by localization, or sampled; a non-finite hand-written partial needs no
  measurement);
* ``probed``: not measured on its own, covered by the ``probes`` passing directions (joint or
  its own: ``ProbeSummary.joint``). What that proves is the tensor's stated sensitivity,
  computed from those probes' tolerance and the tensor's own segment of them: errors ``e``
  with ``||e * max(1, |x|)||_2`` above it pass all of them with probability at most ``miss``
  (:func:`gradcheck.fast.numerics.sensitivity`; one element at the tensor's median partial,
  as a fraction of it, in ``sensitivity["relative"]``);
* ``unchecked``: not examined (a failing range localization gave up on, see ``fallback``).

Neither ``probed`` nor ``unchecked`` fails a report; a failing probe that localization did not
pin to elements (``unresolved``) fails its tensor on its own. The result keeps per-element
arrays for the measured elements only; ``probed`` and ``unchecked`` are counts and ranges.

Kinks. A probe assumes the loss is smooth along its direction. When a failing probe is not
explained by the elements named and measured wrong (ratio matching, then one localization
round: each named element's own stencil has its own kink test), and before it is localized
again or declared ``unresolved``, the loss is evaluated along its direction at two smaller steps
(:func:`gradcheck.fast.probe.kinked`, :func:`gradcheck.fast.numerics.kink_along`): if it is not
smooth at the probe's scale (ReLU pre-activations at or near zero, ``abs`` at zero), the
failure says nothing about the gradient, since a valid subgradient fails a probe as readily as
a wrong partial, and localization's probes would cross the same kinks. The tensor then gets the
full check (every element measured, kinks ``uncertain`` element by element; ``kinked`` in its
summary): never worse than the full check, at its price for that tensor. A failure the kink
test does not explain still fails the tensor (localization, then ``unresolved``).

When to run fast at all (:func:`choose_mode`): the full check measures every element; when it
plans at most ``FULL_FACTOR`` (8) times the loss evaluations fast mode would for a correct net
(one joint pilot and its probes: 12 by default, whatever the number of tensors), it is run
instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gradcheck.core.compare import ParamResult, compare
from gradcheck.core.differences import (
    FiniteDifferences,
    TensorDifferences,
    pilot_evaluations,
    planned_evaluations,
)
from gradcheck.core.numerics import Tolerance, coarser_dtype, evaluation_noise
from gradcheck.core.params import ParamSet
from gradcheck.fast import joint
from gradcheck.fast.localize import FAILING_CODES, Measured, leads, localize
from gradcheck.fast.numerics import miss_threshold, sensitivity
from gradcheck.fast.probe import (
    KINK_EVALUATIONS,
    PILOT_EVALUATIONS,
    PROBE_EVALUATIONS,
    Direction,
    FastOptions,
    ProbeSummary,
    Record,
    Tensor,
    Weights,
    correct,
    direction_noise,
    kink_values,
    kinked,
    pilot,
    probe,
    rejudged,
    tensor_of,
)

BASELINE = 2
# A failing probe of a tensor this small (or smaller) that localization pins to no element is
# settled by the full check of the tensor (2 evaluations per element): an unexplained failure
# (rounding or kinks the probe's error model missed, as well as errors spread thin) gets the
# full check's verdict instead of a FAILED with no wrong element. Larger tensors keep the
# failure, fail closed, with the unchecked ranges named.
WHOLE_LIMIT = 50_000
# Probes a joint check may add when neither ratio matching (at most MATCH_MOST elements
# consistent) nor the likelihood ranking (a best fit no chance element matches,
# gradcheck.fast.joint.candidates) names a lead. Each probe raises the exponent of the chance
# a null element fits as well as the wrong one by 1/2 (gradcheck.fast.numerics.chance_fit):
# measured, the planted element of bench-big's stand-ins (4x10^6 to 1.2x10^8 parameters, 3x
# the stated sensitivity) was a lead after 4 to 5 joint probes. Four more at most (8
# evaluations) keep one error's cost within 12 + 8 + one confirmation; beyond that the
# failure is not one error's, and the bisection over tensors takes over.
MATCH_PROBES = 4
KINKED = (
    "a failing probe crossed a kink (the loss is not differentiable along it), so every "
    "element was measured one by one: the full check's verdict"
)
UNPINNED = (
    "a failing probe that localization pinned to no element, so every element was measured "
    "one by one: the full check's verdict"
)
# Fast mode runs only where the full check plans more than this many times its evaluations.
# The full check measures every element (``ok``, not ``probed``), a stronger verdict, and on a
# small net its cost is of the order of fast mode's own: fast mode's work per evaluation grows
# with the number of tensors (one segment each), the full check's hardly at all. Measured on
# the asker's 14 scalars (66 planned against 12): fast mode took 2.4x the full check's time.
# At 8x a small net's full check costs under a hundred loss calls.
FULL_FACTOR = 8
MEDIAN_SAMPLE = 4096  # partials the median |partial| is estimated from


def planned_fast(params: ParamSet, options: FastOptions, names: list[str] | None = None) -> int:
    """Loss evaluations of a fast check of a correct net: the baseline, one pilot and
    ``probes`` probes, joint over every tensor (of ``names``, all by default;
    :mod:`gradcheck.fast.joint`), whatever their number."""
    count = len(params.names if names is None else names)
    return BASELINE + (PILOT_EVALUATIONS + PROBE_EVALUATIONS * options.probes) * min(count, 1)


def choose_mode(
    params: ParamSet, options: FastOptions, richardson: bool, names: list[str] | None = None
) -> tuple[str, str]:
    """``("full" | "fast", why)``: fast mode is never worse than the full check, so a net whose
    full check plans at most ``FULL_FACTOR`` times the evaluations of the fast one gets the
    full check."""
    full = planned_evaluations(params, richardson, names) + pilot_evaluations(params, names)
    fast = planned_fast(params, options, names)
    if options.auto and full <= FULL_FACTOR * fast:
        return "full", (
            f"fast mode asked, full check run: it plans {full} loss evaluations, at most "
            f"{FULL_FACTOR}x fast mode's {fast} for a correct net, and measures every element"
        )
    if full <= FULL_FACTOR * fast:
        return "fast", (
            f"fast mode (FastOptions(auto=False)), though the full check plans only {full} "
            f"evaluations against {fast}"
        )
    return "fast", f"fast mode: {fast} planned evaluations for a correct net against {full} full"


def fast_results(
    differences: FiniteDifferences,
    pset: ParamSet,
    gradients: Mapping[str, Any],
    grad_dtypes: Mapping[str, Any],
    tolerance: Tolerance,
    options: FastOptions,
    seed: int,
    names: list[str] | None = None,
) -> list[ParamResult]:
    """One :class:`ParamResult` per parameter (of ``names``, all by default), each with its
    :class:`ProbeSummary`.

    ``grad_dtypes``: the dtype each hand-written gradient came in (the relative floor is
    the coarser of it and the parameter's, as in the full check)."""
    rng = np.random.default_rng(seed)
    names = pset.names if names is None else names
    differences.evaluator.plan(planned_fast(pset, options, names) - BASELINE)
    results: dict[str, ParamResult] = {}
    prepared: dict[str, _Prepared] = {}
    for name in names:
        param = pset[name]
        grad = gradients.get(name)
        precision = coarser_dtype(param.dtype, grad_dtypes.get(name))
        if grad is None or grad.shape != param.shape:
            status = "no_gradient" if grad is None else "shape_mismatch"
            results[name] = compare(
                param,
                grad,
                _blank(0, tolerance.relative_floor(precision)),
                tolerance,
                elements=np.empty(0, dtype=np.intp),
                unmeasured={status: param.size},
            )
            continue
        analytic = grad.reshape(-1)
        prepared[name] = _Prepared(
            param,
            grad,
            precision,
            tensor_of(differences, name, analytic, precision, options.false_alarm),
            Measured(param, grad, precision, tolerance),
        )
    if differences.evaluator.f0 == 0.0 and prepared:
        # a loss exactly 0: the probes' noise is its resolution there, measured first
        # (Pilots.measure_quantum; the noise floor, ulps of |f|, is 0)
        first = next(iter(prepared))
        differences.pilots.measure_quantum(first, prepared[first].param.size // 2)
    together = [n for n, p in prepared.items() if p.tensor.finite]
    if len(together) >= 2:
        results.update(_joint(differences, prepared, together, tolerance, options, rng))
    own = [n for n in prepared if n not in results]
    if len(own) > (len(together) < 2):  # the plan counted one pilot and its probes
        per_tensor = PILOT_EVALUATIONS + PROBE_EVALUATIONS * options.probes
        differences.evaluator.plan(per_tensor * (len(own) - (len(together) < 2)))
    for name in own:
        p = prepared[name]
        results[name] = _tensor(
            differences, p.param, p.grad, p.precision, tolerance, options, rng, p.tensor, p.measured
        )
    return [results[name] for name in names]


@dataclass(frozen=True)
class _Prepared:
    """One tensor with a gradient of its shape: what its checking starts from."""

    param: Any
    grad: np.ndarray
    precision: np.dtype
    tensor: Tensor
    measured: Measured


def _joint(
    differences: FiniteDifferences,
    prepared: Mapping[str, _Prepared],
    names: list[str],
    tolerance: Tolerance,
    options: FastOptions,
    rng: np.random.Generator,
) -> dict[str, ParamResult]:
    """The tensors ``names`` settled by joint probes (:mod:`gradcheck.fast.joint`): one pilot
    and ``probes`` probes along directions over all of them, single errors read off the
    probes' values and confirmed. The tensors left out of the answer go to the per-tensor
    machinery: all of them when a failing joint probe is not explained by the elements
    measured wrong, and each one whose joint sensitivity is more than ``OWN_RATIO`` times
    what its own probes could state (:func:`gradcheck.fast.joint.needs_own`)."""
    tensors = [prepared[n].tensor for n in names]
    measured = [prepared[n].measured for n in names]
    evaluator = differences.evaluator
    first = joint.pilot(differences, tensors, [_seed(rng) for _ in names])
    tops = []
    for i in range(options.probes):
        direction = first if i == 0 else first.reseeded([_seed(rng) for _ in names])
        tops.append((direction, joint.probe(differences, direction)))
    decoded: list[list[int]] = [[] for _ in names]
    spent = [0.0] * len(names)  # shared work split evenly, rounded once at the end
    matched_at = None
    while True:
        now = [(d, joint.corrected(d, r, measured)) for d, r in tops]
        failing = next(((d, r) for d, r in now if not r.passed), None)
        # what the last matching saw: a new wrong element, a lead measured right, a new probe
        key = (tuple(len(m.known) for m in measured), sum(len(m.fd) for m in measured), len(tops))
        if failing is None or key == matched_at:
            break
        matched_at = key  # one error alone may explain every probe: read it off their values
        found = joint.candidates(now, measured)
        if found is None and len(tops) < options.probes + MATCH_PROBES:
            # too many elements fit the probes' ratios (their count grows with the tensor's
            # size, shrinks by the ratio's precision with every probe): one probe more
            before = evaluator.evaluations - evaluator.spot_checks
            evaluator.plan(PROBE_EVALUATIONS)
            direction = first.reseeded([_seed(rng) for _ in names])
            tops.append((direction, joint.probe(differences, direction)))
            share = (evaluator.evaluations - evaluator.spot_checks - before) / len(names)
            spent = [s + share for s in spent]
            continue
        for k, claim in found or []:
            before = evaluator.evaluations - evaluator.spot_checks
            decoded[k].append(claim.position)
            wrong = measured[k].confirm(differences, failing[0].segments[k], claim.position, claim)
            spent[k] += evaluator.evaluations - evaluator.spot_checks - before
            if wrong:
                break
    settled: dict[int, dict[int, Record]] = {}
    if failing is not None:
        # not explained by one element: which tensors does it point at? (bisection over the
        # tensors); those go to the per-tensor machinery, the others keep the joint probes
        before = evaluator.evaluations - evaluator.spot_checks
        evaluator.plan(2 * PROBE_EVALUATIONS * len(names).bit_length())
        left, settled = joint.involved(differences, now, measured)
        share = (evaluator.evaluations - evaluator.spot_checks - before) / len(names)
        spent = [s + share for s in spent]
        if len(left) == len(names):
            return {}
    noise = float(
        evaluation_noise(np.array(evaluator.f0), max(t.eps for t in tensors), tensors[0].tol)
    )
    own = {
        name: [
            (d.segments[k], joint.for_tensor(d, k, settled.get(k, {}).get(j, r), measured[k]))
            for j, (d, r) in enumerate(now)
        ]
        for k, name in enumerate(names)
        if failing is None or k in settled
    }
    stated = {
        name: _sensitivity(prepared[name].tensor, [r for _, r in own[name]], own[name], options)
        for name in own
    }
    widened = joint.widening(tensors)
    out = {}
    for k, name in enumerate(names):
        if name not in own:
            continue
        p = prepared[name]
        best = joint.own_best(p.tensor, options, noise)
        if joint.needs_own(stated[name]["abs"], best, float(widened[k])):
            continue
        out[name] = _result(
            differences,
            p.param,
            p.grad,
            p.tensor,
            own[name],
            measured[k],
            tolerance,
            options,
            ProbeSummary(
                localization_evaluations=round(spent[k]),
                decoded=tuple(decoded[k]),
                joint=len(names),
            ),
            [],
        )
    return out


def _tensor(
    differences: FiniteDifferences,
    param: Any,
    grad: np.ndarray,
    precision: np.dtype,
    tolerance: Tolerance,
    options: FastOptions,
    rng: np.random.Generator,
    tensor: Tensor,
    measured: Measured,
) -> ParamResult:
    """One tensor on its own: its pilot, ``probes`` passing probes, localization of failing
    ones (from the elements ``measured`` so far, e.g. by joint probes)."""
    evaluator = differences.evaluator
    tops: list[tuple[Direction, Record]] = []
    localized = {"evaluations": 0, "probes": 0}
    decoded: list[int] = []
    located: list[int] = []
    unresolved: list[Record] = []
    fallback = None
    direction = None
    smooth: set[int] = set()  # seeds of failing directions found free of kinks
    noise_measured = False
    if tensor.finite:
        direction = pilot(differences, tensor, _seed(rng))
    rounds = 0
    matched_at: tuple[frozenset[int], int] | None = None  # known errors, probes: last matched
    while direction is not None:
        corrected = [(d, correct(d, Weights(0, tensor.x.size), r, measured.known)) for d, r in tops]
        failing = next(((d, r) for d, r in corrected if not r.passed), None)
        if failing is None or len(tops) < options.probes:
            # the tensor-wide probes a pass needs are run in any case, failing or not: a
            # failure's localization then starts from all of their values
            if failing is None and sum(r.passed for _, r in corrected) >= options.probes:
                break
            if tops:
                direction = replace(direction, seed=_seed(rng))
            tops.append((direction, probe(differences, direction, Weights(0, tensor.x.size))))
            continue
        if matched_at != (frozenset(measured.known), len(tops)):
            # one error alone may explain every probe: read it off their values (no
            # evaluation) and confirm the leads one by one, best fit first
            matched_at = (frozenset(measured.known), len(tops))
            before = evaluator.evaluations
            found = False
            named = leads(corrected, measured)
            for claim in named or []:
                decoded.append(claim.position)
                if measured.confirm(differences, failing[0], claim.position, claim):
                    found = True
                    break
            more = named is None and len(tops) < options.probes + MATCH_PROBES
            if more:  # no lead: one probe more sharpens every element's fit (as the joint check)
                evaluator.plan(PROBE_EVALUATIONS)
                direction = replace(direction, seed=_seed(rng))
                tops.append((direction, probe(differences, direction, Weights(0, tensor.x.size))))
            localized["evaluations"] += evaluator.evaluations - before
            if found or more:
                continue
        seed = failing[0].seed
        if (rounds or tensor.x.size <= WHOLE_LIMIT) and seed not in smooth:
            # a failure no lead explained (in a tensor whose full check is affordable), or one
            # localization has not explained in one round: is it a kink's? (counted as
            # localization: it examines a failing probe). Not before the leads: an element
            # named and measured wrong (its own stencil has its own kink test) explains the
            # failure at a fraction of the whole-tensor measurement a kink (or a false kink)
            # would cost. Not before a round in a large tensor, whose full check is dear; in
            # a small one bisection across kinks measures a good part of it one by one anyway
            # (measured: 5,300 evaluations of a 5,000-element ReLU layer at init before its
            # full check, which then cost 14,500), and the test costs KINK_EVALUATIONS
            evaluator.plan(KINK_EVALUATIONS)
            top = next(r for d, r in tops if d.seed == seed)
            values = kink_values(differences, failing[0], top)
            if kinked(differences, failing[0], values):
                if tensor.x.size > WHOLE_LIMIT and not noise_measured:
                    # a large tensor's full check is dear: is the "kink" the loss's rounding?
                    noise_measured = True
                    before = evaluator.evaluations
                    sigma, tops, direction = _with_noise(differences, tops, direction, seed)
                    localized["evaluations"] += evaluator.evaluations - before
                    along = next(d for d, _ in tops if d.seed == seed)
                    if sigma > 0 and not kinked(differences, along, values):
                        localized["evaluations"] += KINK_EVALUATIONS
                        smooth.add(seed)
                        continue  # judged again with the measured noise
                return _whole(differences, param, grad, precision, tensor, tops, tolerance, KINKED)
            localized["evaluations"] += KINK_EVALUATIONS
            smooth.add(seed)
        if rounds > options.max_wrong or unresolved:
            unresolved = unresolved or [failing[1]]
            fallback = fallback or "tensor-wide probes still fail after localization"
            break
        rounds += 1
        before = evaluator.evaluations
        wrong_before = len(measured.known)
        outcome = localize(differences, failing[0], failing[1], measured, options, rng)
        localized["evaluations"] += evaluator.evaluations - before
        localized["probes"] += outcome.probes
        decoded += outcome.decoded
        located += outcome.located
        unresolved += outcome.unresolved
        fallback = fallback or outcome.fallback
        if len(measured.known) == wrong_before and not outcome.unresolved:
            # nothing new measured wrong: the failing probe is not pinned to elements
            unresolved = [failing[1]]
            fallback = fallback or "a failing probe that localization pinned to no element"
    if unresolved and not measured.known:  # a failure pinned to no element
        if tensor.x.size <= WHOLE_LIMIT:
            return _whole(differences, param, grad, precision, tensor, tops, tolerance, UNPINNED)
        if not noise_measured and tops:  # is it the loss's rounding? then every probe passes
            before = evaluator.evaluations
            sigma, tops, direction = _with_noise(differences, tops, direction, tops[0][0].seed)
            localized["evaluations"] += evaluator.evaluations - before
            whole = Weights(0, tensor.x.size)
            if sigma > 0 and all(correct(d, whole, r, measured.known).passed for d, r in tops):
                unresolved, fallback = [], None
    return _result(
        differences,
        param,
        grad,
        tensor,
        tops,
        measured,
        tolerance,
        options,
        ProbeSummary(
            localization_evaluations=localized["evaluations"],
            localization_probes=localized["probes"],
            decoded=tuple(decoded),
            located=tuple(located),
            unresolved=bool(unresolved),
            unchecked=tuple(_merge([(r.lo, r.hi) for r in unresolved])),
            fallback=fallback,
        ),
        unresolved,
    )


def _whole(
    differences: FiniteDifferences,
    param: Any,
    grad: np.ndarray,
    precision: np.dtype,
    tensor: Tensor,
    tops: list[tuple[Direction, Record]],
    tolerance: Tolerance,
    reason: str,
) -> ParamResult:
    """The full check of the tensor, after a failing probe crossed a kink (``reason`` is
    :data:`KINKED`), or failed where localization pinned no element (:data:`UNPINNED`).

    A probe assumes the loss is smooth along its direction; where it is not (ReLU
    pre-activations at or near zero, ``abs`` at zero), its failure says nothing about the
    gradient: a valid subgradient fails it as readily as a wrong partial. Localization cannot
    help either, since its probes cross the same kinks. So every element is measured one by one
    with the full check's procedure (whose stencil tells kinks from errors per element:
    ``uncertain``, not ``wrong``), and the tensor takes the full check's verdict: never worse
    than the full check, at its price for this tensor. A failure with no kink behind it goes
    to localization first; only one that it pins to no element comes here (in a tensor of at
    most ``WHOLE_LIMIT`` elements; a larger one stays failed, ``unresolved``)."""
    name = param.name
    differences.evaluator.plan(
        planned_evaluations(differences.params, differences.richardson, [name]) - BASELINE
    )
    fd = differences.differentiate(name, tensor.analytic, precision)
    codes = compare(param, grad, fd, tolerance).codes
    summary = ProbeSummary(
        probes=tuple(_probe_dict(d, r) for d, r in tops),
        step=tops[0][0].half_step if tops else float("nan"),
        measured=param.size,
        proven_wrong=tuple(int(i) for i in np.flatnonzero(np.isin(codes, FAILING_CODES))),
        fallback=reason,
        kinked=reason == KINKED,
    )
    return compare(param, grad, fd, tolerance, probe=summary)


def _with_noise(
    differences: FiniteDifferences,
    tops: list[tuple[Direction, Record]],
    direction: Direction | None,
    seed: int,
) -> tuple[float, list[tuple[Direction, Record]], Direction | None]:
    """The loss's noise measured along the probe of ``seed``
    (:func:`gradcheck.fast.probe.direction_noise`), and the tensor-wide probes and the current
    direction carrying it: the probes judged again with it, no evaluation."""
    along = next(d for d, _ in tops if d.seed == seed)
    sigma = direction_noise(differences, along)
    if not sigma > 0:
        return sigma, tops, direction
    tops = [(replace(d, sigma=sigma), rejudged(replace(d, sigma=sigma), r)) for d, r in tops]
    return sigma, tops, None if direction is None else replace(direction, sigma=sigma)


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**63))


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


def _result(
    differences: FiniteDifferences,
    param: Any,
    grad: np.ndarray,
    tensor: Tensor,
    tops: list[tuple[Direction, Record]],
    measured: Measured,
    tolerance: Tolerance,
    options: FastOptions,
    partial: ProbeSummary,
    unresolved: list[Record],
) -> ParamResult:
    """The tensor's result, built once from what was measured and what the probes state."""
    analytic = tensor.analytic
    nonfinite = tensor.nonfinite  # (probe) found chunk by chunk: no mask of the tensor's size
    if nonfinite is None:
        nonfinite = np.flatnonzero(~np.isfinite(analytic))
    positions = np.array(sorted(measured.fd), dtype=np.intp)
    rows = [measured.fd[int(p)] for p in positions]
    elements = np.union1d(positions, nonfinite).astype(np.intp)
    fd = _blank(elements.size, tensor.rtol)
    where = np.searchsorted(elements, positions)
    for name in ("numeric", "error", "step", "forward", "backward", "slack", "kink", "refined"):
        if rows:
            getattr(fd, name)[where] = np.concatenate([getattr(r, name) for r in rows])
    corrected = [(d, correct(d, Weights(0, tensor.x.size), r, measured.known)) for d, r in tops]
    unchecked = sum(hi - lo for lo, hi in partial.unchecked)
    unchecked -= int(
        sum(np.count_nonzero((elements >= lo) & (elements < hi)) for lo, hi in partial.unchecked)
    )
    probed = param.size - elements.size - unchecked
    summary = ProbeSummary(
        probes=tuple(_probe_dict(d, r) for d, r in corrected),
        step=tops[0][0].half_step if tops else float("nan"),
        localization_evaluations=partial.localization_evaluations,
        localization_probes=partial.localization_probes,
        decoded=tuple(int(i) for i in partial.decoded),
        located=tuple(int(i) for i in partial.located),
        proven_wrong=tuple(sorted(int(p) for p in measured.known)),
        measured=int(positions.size),
        unresolved=partial.unresolved,
        unchecked=partial.unchecked,
        fallback=partial.fallback,
        joint=partial.joint,
        sensitivity=_sensitivity(tensor, [r for _, r in corrected if r.passed], tops, options),
    )
    return compare(
        param,
        grad,
        fd,
        tolerance,
        elements=elements,
        unmeasured={"probed": probed, "unchecked": unchecked},
        probe=summary,
    )


def _sensitivity(
    tensor: Tensor,
    passing: list[Record],
    tops: list[tuple[Direction, Record]],
    options: FastOptions,
) -> dict[str, float | None]:
    """What the passing tensor-wide probes prove (:func:`gradcheck.fast.numerics.sensitivity`),
    and the two probabilities fast mode guarantees for the tensor: ``miss`` (errors above the
    sensitivity pass every passing probe with at most this probability, so end ``probed``)
    and ``false_alarm`` (a correct tensor fails at least one of its tensor-wide probes with at
    most this probability: ``false_alarm`` per probe, a union bound over the probes run; an
    element is still called wrong only by its own measurement, the full check's rule)."""
    guarantees = {"miss": options.miss, "false_alarm": options.false_alarm * max(len(tops), 1)}
    if not passing or not tops:
        return {"abs": None, "relative": None, **guarantees, "probes": len(passing)}
    h = tops[0][0].half_step
    t = miss_threshold(options.miss, len(passing))
    worst = max(r.tolerance for r in passing)
    absolute = sensitivity(worst, h, tensor.scale, tensor.eps, t)
    # (probe) sampled before the finite ones are picked: no copy of the tensor's size
    sample = tensor.analytic[:: max(1, tensor.analytic.size // MEDIAN_SAMPLE)]
    finite = sample[np.isfinite(sample)].astype(np.float64)
    median = float(np.median(np.abs(finite))) if finite.size else 0.0
    with np.errstate(over="ignore"):  # over subnormal partials: inf, stated as unknown
        relative = absolute / median if median > 0 else None
    return {
        "abs": _finite(absolute),
        "relative": None if relative is None else _finite(relative),
        **guarantees,
        "probes": len(passing),
        "median_partial": median,
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _probe_dict(direction: Direction, record: Record) -> dict[str, Any]:
    """A tensor-wide probe in directional-derivative units along ``w``."""
    two_h = 2.0 * direction.half_step
    return {
        "discrepancy": _finite(record.discrepancy / two_h),
        "tolerance": _finite(record.tolerance / two_h),
        "passed": record.passed,
        "step": direction.half_step,
    }


def _blank(n: int, rtol: float) -> TensorDifferences:
    """No element measured: NaN partials, no kink, nothing refined."""

    def nan() -> np.ndarray:
        return np.full(n, np.nan)

    def no() -> np.ndarray:
        return np.zeros(n, dtype=bool)

    return TensorDifferences(
        numeric=nan(),
        error=nan(),
        step=nan(),
        forward=nan(),
        backward=nan(),
        slack=nan(),
        kink=no(),
        refined=no(),
        third=float("nan"),
        rtol=rtol,
    )
