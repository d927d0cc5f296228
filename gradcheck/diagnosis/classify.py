"""Diagnosis: what kind of mistake each wrong partial shows, decided from the numbers alone.

Nothing here knows any particular net. Every finding comes from the analytic and numeric
partials, each numeric partial's estimated error, and the shapes:

* per element (only where the numeric partial supports it, see
  :mod:`gradcheck.diagnosis.resolve`): ``sign_flipped`` (numeric / analytic = -1 within error),
  ``scaled`` (another ratio), ``missing`` (hand-written 0, numeric not), ``spurious`` (numeric
  0 within its error, hand-written not), ``not_subgradient`` (at a kink, outside the one-sided
  derivatives), ``nonfinite``, ``unresolved`` (wrong, but the numeric partial did not converge
  well enough to say more); otherwise ``wrong_value``;
* per parameter (:mod:`gradcheck.diagnosis.patterns`): transposed, swapped, summed over the
  wrong axis, clipped, and the likely cause of a shape mismatch;
* across parameters (:mod:`gradcheck.diagnosis.groups`): groups of partials sharing one ratio,
  kept only when unlikely to be a coincidence;
* the story (:mod:`gradcheck.diagnosis.story`): which tensors are wrong and which right, and
  what that says about where the error enters; cosine and descent of the whole gradient.

Findings are ranked by how much of the error they explain (their share of the squared error
norm); the story comes first, and a finding about a handful of elements never leads while many
elements are wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gradcheck.core.compare import CODE, ParamResult
from gradcheck.diagnosis import patterns
from gradcheck.diagnosis.findings import Builder, Finding, members_text, merge_alike
from gradcheck.diagnosis.groups import Group, significant_runs, weighted
from gradcheck.diagnosis.resolve import (
    converged,
    failing,
    numeric_error,
    ratios,
    zero_within_error,
)
from gradcheck.diagnosis.story import dominates, rank, tensor_story, whole_gradient

__all__ = ["Diagnosis", "Finding", "Group", "diagnose", "name_factor"]

# Named factors: a ratio within its uncertainty of k or 1/k gets a plain name; a derivative of
# x^k is a plausible reading only for small k.
POWER_NAMED_UP_TO = 4
LARGEST_NAMED_INTEGER = 4096
# Group findings shown per parameter; the others are counted in one finding (all in the JSON).
GROUPS_PER_PARAM = 3


@dataclass
class Diagnosis:
    """Everything the numbers say about why a gradient is wrong; ``findings`` ranked."""

    classes: dict[str, np.ndarray] = field(default_factory=dict)  # param -> class per element
    findings: list[Finding] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    cosine: float | None = None
    descent: dict[str, object] | None = None
    lead: int = 0  # findings told before the whole-gradient line (a dominant cause, the story)

    def class_of(self, param: str, flat: int) -> str | None:
        classes = self.classes.get(param)
        if classes is None or not classes[flat]:
            return None
        return str(classes[flat])


# -- factors ---------------------------------------------------------------------------------
def name_factor(ratio: float, uncertainty: float, dims: dict[str, int] | None = None) -> str | None:
    """A plain name for a ratio numeric / analytic, if it is a simple one.

    ``2`` means the true partial is twice the hand-written one (a factor 2 is missing);
    ``1/2`` that the hand-written one is twice too large. Integers up to 4096 and their
    reciprocals are named, with the sizes in ``dims`` (batch size, number of outputs) that
    match them. Non-finite ratios (partials near 1e308) have no name.
    """
    if not np.isfinite(ratio) or ratio == 0 or not np.isfinite(uncertainty):
        return None
    sign = "-" if ratio < 0 else ""
    magnitude = abs(ratio)
    tolerance = max(uncertainty, 1e-9 * magnitude)
    for value, text in ((magnitude, "{k}"), (1 / magnitude, "1/{k}")):
        if not np.isfinite(value) or value > 2 * LARGEST_NAMED_INTEGER:
            continue
        k = round(value)
        if 2 <= k <= LARGEST_NAMED_INTEGER:
            off = abs(value - k) * (1.0 if text == "{k}" else magnitude**2)
            if off <= tolerance:
                label = sign + text.format(k=k)
                matches = [name for name, size in (dims or {}).items() if size == k]
                return label + (f" (= {' = '.join(matches)})" if matches else "")
    return None


def factor_text(factor: float, uncertainty: float, label: str | None) -> str:
    """The label, or the number with enough digits not to read as 1 (or as its neighbour)."""
    if label is not None:
        return label
    digits = 4
    while digits < 12 and float(f"{factor:.{digits}g}") == 1.0:
        digits += 1
    return f"{factor:.{digits}g}"


def factor_sentence(factor: float, label: str | None) -> str:
    """What a shared ratio numeric / analytic usually means, in one sentence."""
    if label is not None and label.lstrip("-").startswith("1/"):
        k = label.lstrip("-")[2:].split(" ")[0]
        return (
            f"the hand-written values are {k} times too large: an extra factor {k}, or a "
            f"sum over {k} items where the loss takes their mean"
        )
    if label is not None:
        k = label.lstrip("-").split(" ")[0]
        power = f"a derivative of x^{k}, or " if int(k) <= POWER_NAMED_UP_TO else ""
        return (
            f"the hand-written values are {k} times too small: a factor {k} is missing "
            f"({power}a mean over {k} items where the loss sums)"
        )
    return (
        "the true partials are this multiple of the hand-written ones: a factor shared by "
        "everything downstream of one node is missing or extra; look at the node all of "
        "them pass through"
    )


SIGN_SENTENCE = (
    "the sign is flipped in all of them: one sign error upstream of all of them (y - p where "
    "p - y is meant, or a subtraction reversed)"
)


# -- per element ------------------------------------------------------------------------------
def classify_elements(p: ParamResult) -> np.ndarray:
    """One class per element (empty string where the element is not failing)."""
    classes = np.zeros(p.size, dtype="<U16")  # empty strings (np.full is slower)
    if not p.failed or not failing(p).any():  # passing: no failing element (cheap test first)
        return classes
    for status in ("nonfinite", "shape_mismatch", "no_gradient"):
        classes[p.statuses == status] = status
    if p.analytic is None:
        return classes
    wrong = p.statuses == "wrong"
    a = p.analytic
    zero = zero_within_error(p)
    ratio, sigma = ratios(p)
    with np.errstate(invalid="ignore"):
        flipped = np.abs(ratio + 1) <= sigma
    resolved = converged(p) & (a != 0)
    classes[wrong] = "unresolved"
    classes[wrong & (a == 0) & ~zero] = "missing"
    classes[wrong & (a != 0) & zero] = "spurious"
    classes[wrong & resolved] = "scaled"
    classes[wrong & resolved & flipped] = "sign_flipped"
    classes[wrong & p.kink] = "not_subgradient"
    return classes


ELEMENT_TEXT = {
    "missing": "hand-written partial is 0 but the loss depends on it: a term or a path was "
    "never added",
    "spurious": "the loss does not depend on it (numeric partial 0 within its error) but the "
    "hand-written partial is not 0",
    "sign_flipped": "the sign is flipped (numeric / hand-written = -1 within error)",
}


def _element_findings(p: ParamResult, classes: np.ndarray, build: Builder, dims) -> list:
    """One finding per class of ``p``'s elements: missing, spurious, sign, factor, kinks,
    and the elements too imprecise to classify."""
    if not p.failed:  # every class below is of failing elements: only the kinks remain
        return _kink_findings(p, build)
    out = []
    for kind, text in ELEMENT_TEXT.items():
        where = np.flatnonzero(classes == kind)
        if where.size:
            out.append(build.make(kind, f"{build.elements(p, where)}: {text}", {p.name: where}))
    # a named factor (2, 1/2, the batch size...) shared by a tensor's scaled elements
    where = np.flatnonzero(classes == "scaled")
    if where.size:
        ratio, sigma = ratios(p)
        low, high = np.max(ratio[where] - sigma[where]), np.min(ratio[where] + sigma[where])
        factor = float(np.median(ratio[where]))
        label = name_factor(factor, float(sigma[where].max()), dims)
        if low <= high and label is not None:  # every ratio agrees within its error
            out.append(
                build.make(
                    "scaled",
                    f"{build.elements(p, where)}: true = {label} x hand-written",
                    {p.name: where},
                    factor,
                    meaning=factor_sentence(factor, label),
                )
            )
    where = np.flatnonzero(classes == "unresolved")
    # classify_elements marks "unresolved" only where there is a hand-written value
    if where.size and p.analytic is not None:
        first = int(where[0])
        out.append(
            build.make(
                "unresolved",
                f"numeric partial did not converge at {build.elements(p, where)} (e.g. "
                f"{p.label(first)}: numeric {p.numeric[first]:+.3g} +- "
                f"{numeric_error(p)[first]:.1g}, hand-written {p.analytic[first]:+.3g}): "
                "wrong, but no cause is inferred from it",
                {p.name: where},
            )
        )
    out += _kink_findings(p, build)
    outside = np.flatnonzero(classes == "not_subgradient")
    if outside.size:
        slopes = ", ".join(
            f"{p.label(int(i))} {p.backward[i]:+.4g} / {p.forward[i]:+.4g}" for i in outside[:4]
        )
        out.append(
            build.make(
                "not_subgradient",
                f"{build.elements(p, outside)}: at a kink, but the hand-written value lies "
                f"outside the one-sided derivatives (left / right: {slopes}): not a subgradient",
                {p.name: outside},
            )
        )
    return out


def _kink_findings(p: ParamResult, build: Builder) -> list[Finding]:
    """The elements of ``p`` at a kink whose hand-written value is a valid subgradient."""
    kinks = np.flatnonzero(p.codes == CODE["uncertain"])
    if not kinks.size:
        return []
    return [
        build.make(
            "kink",
            f"{build.elements(p, kinks)}: the loss has a kink here (one-sided derivatives "
            "differ), so no single derivative exists; the hand-written values lie between "
            "them: valid subgradients",
            {p.name: kinks},
        )
    ]


# -- all together -----------------------------------------------------------------------------
def diagnose(
    params: list[ParamResult], dims: dict[str, int] | None = None, nodes: bool = False
) -> Diagnosis:
    """Classify every failing element and collect the findings the numbers support, ranked.
    ``nodes``: node checks were declared (the story then does not suggest declaring them)."""
    diagnosis = Diagnosis()
    build = Builder(params)
    findings: list[Finding] = []
    for p in params:
        diagnosis.classes[p.name] = classify_elements(p)
        if p.failed or p.status == "uncertain":  # a passing tensor without kinks says nothing
            findings += _tensor_findings(p, diagnosis.classes[p.name], build, dims)
    for a, b in patterns.swapped_pairs(params):
        for name in (a, b):
            diagnosis.classes[name][diagnosis.classes[name] != ""] = "swapped"
        where = {n: diagnosis.classes[n] == "swapped" for n in (a, b)}
        findings.append(
            build.make(
                "swapped",
                f"{a} and {b}: their hand-written gradients are exchanged",
                where,
                None,
                labels=False,
            )
        )
    for bound, where in patterns.clipped(params):
        for name, flats in where.items():
            diagnosis.classes[name][flats] = "clipped"
        names = ", ".join(where)
        findings.append(
            build.make(
                "clipped",
                f"{names}: {sum(v.size for v in where.values())} hand-written partials sit "
                f"exactly on +-{bound:.6g} where the true ones are larger: the gradient is "
                f"clipped at +-{bound:.6g} inside the gradient function (clip after the check, "
                "in the training step)",
                where,
                labels=False,
            )
        )
    diagnosis.groups, group_findings = _groups(params, build, dims)
    grouped = {label for g in diagnosis.groups for label in g.members}
    flipped = {label for g in diagnosis.groups if g.meaning == SIGN_SENTENCE for label in g.members}
    findings += group_findings
    # a tensor-wide pattern explains its elements: drop their per-element findings
    explained = {f.params[0] for f in findings if f.kind in WHOLE_TENSOR}
    findings = [
        f
        for f in findings
        if not (f.kind in PER_ELEMENT and f.params and f.params[0] in explained)
        and not (f.kind == "scaled" and set(f.elements) <= grouped)
        and not (f.kind == "sign_flipped" and set(f.elements) <= flipped)
    ]
    findings = merge_alike(findings)
    total_wrong = sum(p.n_wrong for p in params if p.failed)
    ranked = rank(findings, total_wrong)
    dominant = bool(ranked) and dominates(ranked[0], total_wrong)
    # with one cause explaining nearly all, the story only says which tensors it touched
    story = tensor_story(params, build, infer=not dominant, nodes=nodes)
    diagnosis.findings = rank(story + findings, total_wrong)
    diagnosis.lead = diagnosis.findings.index(story[0]) + 1 if story else int(dominant)
    diagnosis.cosine, diagnosis.descent = whole_gradient(params)
    return diagnosis


WHOLE_TENSOR = frozenset({"transposed", "reshaped", "wrong_axis", "missing_sum", "sum_axis"})
# "permuted" keeps its element findings: which elements got a value they should not have
PER_ELEMENT = frozenset({"missing", "spurious", "sign_flipped", "scaled", "unresolved"})


def _tensor_findings(p: ParamResult, classes, build: Builder, dims) -> list[Finding]:
    """Whole-tensor patterns of ``p`` (relabelling its elements), then its element findings."""
    if not p.failed:  # the patterns are of wrong gradients
        return _element_findings(p, classes, build, dims)
    out = []
    every = {p.name: failing(p)}
    if p.status == "shape_mismatch":
        kind, message = patterns.shape_cause(p, dims)
        out.append(build.make(kind, message, every, labels=False))
    elif p.status == "no_gradient":
        message = f"{p.name}: no hand-written gradient was returned"
        out.append(build.make("no_gradient", message, every, labels=False))
    elif patterns.transposed(p):
        classes[p.statuses == "wrong"] = "transposed"
        message = (
            f"{p.name}: the hand-written gradient is the transpose of the true one "
            "(x.T @ dout where dout.T @ x is meant, or the reverse)"
        )
        out.append(build.make("transposed", message, every, labels=False))
    elif patterns.transposed_reshaped(p):
        classes[p.statuses == "wrong"] = "transposed"
        message = (
            f"{p.name}: the hand-written values are the transpose of the true gradient, "
            f"reshaped from {p.shape[::-1]} to {p.shape} to fit (x.T @ dout where dout.T @ x "
            "is meant, then a reshape)"
        )
        out.append(build.make("transposed", message, every, labels=False))
    elif (order := patterns.axes_permuted(p)) is not None:
        classes[p.statuses == "wrong"] = "transposed"
        message = (
            f"{p.name}: the hand-written values, read with their axes in the order {order} "
            f"and reshaped back to {p.shape}, are the true gradient: it was unfolded with its "
            "axes in another order (e.g. (F, HH, WW, C) where (F, C, HH, WW) is meant)"
        )
        out.append(build.make("transposed", message, every, labels=False))
    elif not _one_ratio(p, classes):  # a sign or a factor says more than a rearrangement
        if patterns.permuted(p):
            message = (
                f"{p.name}: the hand-written values are the true ones in another order: an "
                "index mix-up (values routed to the wrong elements), not a wrong formula"
            )
            out.append(build.make("permuted", message, every, labels=False))
        else:
            cause = patterns.axis_reduction(p)
            if cause is not None:
                classes[p.statuses == "wrong"] = "wrong_axis"
                out.append(build.make("sum_axis", f"{p.name}: {cause}", every, labels=False))
    return out + _element_findings(p, classes, build, dims)


def _one_ratio(p: ParamResult, classes: np.ndarray) -> bool:
    """Every wrong element of ``p`` is sign-flipped, or scaled by one ratio within error."""
    wrong = p.statuses == "wrong"
    kinds = set(classes[wrong].tolist())
    if kinds == {"sign_flipped"}:
        return True
    if kinds != {"scaled"}:
        return False
    ratio, sigma = ratios(p)
    return bool(np.max(ratio[wrong] - sigma[wrong]) <= np.min(ratio[wrong] + sigma[wrong]))


def _groups(params, build: Builder, dims) -> tuple[list[Group], list[Finding]]:
    """The significant groups, and their findings: at most ``GROUPS_PER_PARAM`` per parameter,
    the rest counted in one finding per parameter."""
    sizes = {p.name: p.size for p in params}
    groups, findings = [], []
    shown: dict[str, int] = {}
    hidden: dict[str, list[Group]] = {}
    meanings: set[str] = set()
    for run in significant_runs(params):
        factor, uncertainty = weighted(run)
        label = name_factor(factor, uncertainty, dims)
        flats = tuple(sorted((params[pos].name, flat) for _, _, pos, flat in run))
        names = tuple(
            params[pos].label(flat) for _, _, pos, flat in sorted(run, key=lambda m: m[2:])
        )
        meaning = (
            SIGN_SENTENCE if abs(factor + 1) <= uncertainty else factor_sentence(factor, label)
        )
        message = (
            f"true = {factor_text(factor, uncertainty, label)} x hand-written for "
            f"{members_text(names, sizes)}"
        )
        group = Group(factor, uncertainty, names, message, meaning, flats)
        groups.append(group)
        where: dict[str, list[int]] = {}
        for name, flat in flats:
            where.setdefault(name, []).append(flat)
        home = max(where, key=lambda n: len(where[n]))
        if shown.get(home, 0) >= GROUPS_PER_PARAM:
            hidden.setdefault(home, []).append(group)
            continue
        shown[home] = shown.get(home, 0) + 1
        findings.append(
            build.make(
                "group",
                message + (f" ({len(names)} elements)" if " more" in message else ""),
                where,
                factor,
                meaning="" if meaning in meanings else meaning,
            )
        )
        meanings.add(meaning)
    for home, rest in hidden.items():
        where = {}
        for g in rest:
            for name, flat in g.flats:
                where.setdefault(name, []).append(flat)
        findings.append(
            build.make(
                "groups_more",
                f"{home}: {len(rest)} more group{'s' if len(rest) > 1 else ''} of shared "
                f"ratios ({_span(len(g.members) for g in rest)} elements each; all in the JSON)",
                where,
                labels=False,
            )
        )
    return groups, findings


def _span(sizes) -> str:
    """``3`` or ``2-5``."""
    sizes = list(sizes)
    low, high = min(sizes), max(sizes)
    return str(low) if low == high else f"{low}-{high}"
