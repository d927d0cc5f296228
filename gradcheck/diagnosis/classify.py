"""Diagnosis: what kind of mistake each wrong partial shows, decided from the numbers alone.

Nothing here knows any particular net. Every finding comes from the analytic and numeric
partials, their tolerances, and the shapes:

* per element: ``sign_flipped`` (numeric / analytic ~ -1), ``scaled`` (another constant
  ratio, with common factors named), ``missing`` (hand-written 0, numeric not), ``spurious``
  (numeric 0, hand-written not), ``not_subgradient`` (at a kink, outside the one-sided
  derivatives), ``nonfinite``; otherwise ``wrong_value``;
* per parameter: ``transposed`` (a square matrix whose gradient matches the transpose),
  ``swapped`` (two parameters' gradients exchanged), and the likely cause of a shape mismatch
  (an extra axis whose sum is missing, a transpose, a reshape);
* across parameters: groups of partials sharing one ratio numeric / analytic, the mark of a
  factor missing or extra at a node all of them pass through;
* whole gradient: cosine between hand-written and numeric gradients, and whether stepping
  against the hand-written gradient lowers the loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gradcheck.core.compare import FAILING, ParamResult

# Named factors: a ratio within its uncertainty of k or 1/k for these k gets a plain name.
COMMON_FACTORS = (2, 3, 4)
LARGEST_NAMED_INTEGER = 4096


@dataclass(frozen=True)
class Finding:
    """One plain-language statement backed by numbers."""

    kind: str
    message: str
    params: tuple[str, ...] = ()
    elements: tuple[str, ...] = ()
    factor: float | None = None


@dataclass(frozen=True)
class Group:
    """Wrong partials whose ratio numeric / analytic is one number within its uncertainty.

    ``message`` states the group with its numbers; ``meaning`` says what such a group
    usually means.
    """

    factor: float
    uncertainty: float
    members: tuple[str, ...]
    message: str
    meaning: str


@dataclass
class Diagnosis:
    """Everything the numbers say about why a gradient is wrong."""

    classes: dict[str, np.ndarray] = field(default_factory=dict)  # param -> class per element
    findings: list[Finding] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    cosine: float | None = None
    descent: dict[str, object] | None = None

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
    match them.
    """
    if not np.isfinite(ratio) or ratio == 0:
        return None
    sign = "-" if ratio < 0 else ""
    magnitude = abs(ratio)
    tolerance = max(uncertainty, 1e-9 * magnitude)
    for value, text in ((magnitude, "{k}"), (1 / magnitude, "1/{k}")):
        k = round(value)
        if 2 <= k <= LARGEST_NAMED_INTEGER:
            off = abs(value - k) * (1.0 if text == "{k}" else magnitude**2)
            if off <= tolerance:
                label = sign + text.format(k=k)
                matches = [name for name, size in (dims or {}).items() if size == k]
                return label + (f" (= {' = '.join(matches)})" if matches else "")
    return None


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
        return (
            f"the hand-written values are {k} times too small: a factor {k} is missing "
            f"(a derivative of x^{k}, or a mean over {k} items where the loss sums)"
        )
    return (
        "the true partials are this multiple of the hand-written ones: a factor shared by "
        "everything downstream of one node is missing or extra; look at the node all of "
        "them pass through"
    )


# -- per element ------------------------------------------------------------------------------
def classify_elements(p: ParamResult) -> np.ndarray:
    """One class per element (empty string where the element is not failing)."""
    classes = np.full(p.size, "", dtype="<U16")
    failing = np.isin(p.statuses, list(FAILING))
    if not failing.any():
        return classes
    classes[p.statuses == "nonfinite"] = "nonfinite"
    classes[p.statuses == "shape_mismatch"] = "shape_mismatch"
    classes[p.statuses == "no_gradient"] = "no_gradient"
    if p.analytic is None:
        return classes
    wrong = failing & (p.statuses == "wrong")
    a, n, tol = p.analytic, p.numeric, p.tolerance
    numeric_zero = np.abs(n) <= p.fd_error * 10 + np.finfo(float).tiny
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = n / a
        sigma = tol / np.abs(a)
    classes[wrong] = "wrong_value"
    classes[wrong & (a == 0)] = "missing"
    classes[wrong & (a != 0) & numeric_zero] = "spurious"
    scaled = wrong & (a != 0) & ~numeric_zero
    flipped = scaled & (np.abs(ratio + 1) <= sigma)
    classes[scaled] = "scaled"
    classes[flipped] = "sign_flipped"
    classes[wrong & p.kink] = "not_subgradient"
    return classes


# -- per parameter ----------------------------------------------------------------------------
def _matches(analytic: np.ndarray, p: ParamResult) -> bool:
    """Whether ``analytic`` (flat) would pass against ``p``'s numeric partials."""
    return bool(np.all(np.abs(analytic - p.numeric) <= p.tolerance + 1e-300))


def transposed(p: ParamResult) -> bool:
    """A square matrix whose hand-written gradient is the transpose of the true one."""
    if p.analytic is None or len(p.shape) != 2 or p.shape[0] != p.shape[1] or not p.failed:
        return False
    return _matches(p.analytic.reshape(p.shape).T.reshape(-1), p)


def swapped_pairs(params: list[ParamResult]) -> list[tuple[str, str]]:
    """Pairs of same-shaped parameters whose hand-written gradients are exchanged."""
    pairs = []
    wrong = [p for p in params if p.analytic is not None and p.status == "wrong"]
    for i, a in enumerate(wrong):
        for b in wrong[i + 1 :]:
            if a.shape == b.shape and _matches(a.analytic, b) and _matches(b.analytic, a):
                pairs.append((a.name, b.name))
    return pairs


def shape_cause(p: ParamResult, dims: dict[str, int] | None = None) -> Finding:
    """Why a gradient came back with the wrong shape, tested against the numeric partials."""
    grad = p.raw_grad
    shape, got = p.shape, tuple(grad.shape)
    base = f"{p.name}: the gradient has shape {got}, the parameter {shape}"
    if grad.size == p.size:
        if len(shape) == 2 and got == shape[::-1] and _matches(grad.T.reshape(-1), p):
            return Finding(
                "transposed", f"{base}: it is the transpose of the right gradient", (p.name,)
            )
        verdict = (
            "and reshaped it matches"
            if _matches(grad.reshape(-1), p)
            else ("and even reshaped its values are wrong")
        )
        return Finding("reshaped", f"{base}: same number of elements, {verdict}", (p.name,))
    for axis, length in enumerate(got):
        rest = got[:axis] + got[axis + 1 :]
        if rest != shape:
            continue
        summed = grad.sum(axis=axis).reshape(-1)
        sizes = [name for name, size in (dims or {}).items() if size == length]
        which = f" (the {' or the '.join(sizes)})" if sizes else ""
        if _matches(summed, p):
            tail = "summing over it gives the right gradient"
        else:
            shown = ", ".join(f"{v:+.3g}" for v in summed[:3])
            tail = (
                f"summing over it gives {shown}{'...' if summed.size > 3 else ''}, still "
                "not the true partials, so the values are wrong as well"
            )
        return Finding(
            "missing_sum",
            f"{base}: an extra axis {axis} of length {length}{which}; a sum over that axis is "
            f"missing; {tail}",
            (p.name,),
        )
    return Finding("shape_mismatch", f"{base}: no simple relation between them", (p.name,))


# -- groups -----------------------------------------------------------------------------------
def ratio_groups(params: list[ParamResult], dims: dict[str, int] | None = None) -> list[Group]:
    """Group wrong elements by their ratio numeric / analytic (intervals that overlap).

    Each element's ratio carries the uncertainty ``tolerance / |analytic|``; sorted by ratio, an
    element joins the current group while its interval overlaps the intersection of the
    group's intervals. Groups of two or more are returned, largest first.
    """
    items = []
    for position, p in enumerate(params):
        if p.analytic is None:
            continue
        for flat in np.flatnonzero(p.statuses == "wrong"):
            a, n = p.analytic[flat], p.numeric[flat]
            if a == 0 or not np.isfinite(n / a):
                continue
            items.append(
                (n / a, p.tolerance[flat] / abs(a), p.label(int(flat)), (position, int(flat)))
            )
    items.sort()
    groups: list[list[tuple]] = []
    low = high = 0.0
    for item in items:
        ratio, sigma = item[0], item[1]
        if groups and ratio - sigma <= high:
            groups[-1].append(item)
            low, high = max(low, ratio - sigma), min(high, ratio + sigma)
        else:
            groups.append([item])
            low, high = ratio - sigma, ratio + sigma
    out = []
    for members in groups:
        if len(members) < 2:
            continue
        ratios = np.array([m[0] for m in members])
        weights = 1 / np.array([m[1] for m in members]) ** 2
        factor = float(np.sum(ratios * weights) / np.sum(weights))
        uncertainty = float(np.max([m[1] for m in members]))
        label = name_factor(factor, uncertainty, dims)
        names = tuple(m[2] for m in sorted(members, key=lambda m: m[3]))
        if abs(factor + 1) <= uncertainty:
            sentence = (
                "the sign is flipped in all of them: one sign error upstream of all of "
                "them (y - p where p - y is meant, or a subtraction reversed)"
            )
        else:
            sentence = factor_sentence(factor, label)
        shown = label or f"{factor:.4g}"
        sizes = {p.name: p.size for p in params}
        out.append(
            Group(
                factor,
                uncertainty,
                names,
                f"true = {shown} x hand-written for {_members_text(names, sizes)}",
                sentence,
            )
        )
    out.sort(key=lambda g: -len(g.members))
    return out


def _members_text(
    names: tuple[str, ...], sizes: dict[str, int] | None = None, limit: int = 12
) -> str:
    """Element labels for a sentence; a parameter listed in full becomes ``W (all 12)``."""
    by_param: dict[str, list[str]] = {}
    for label in names:
        by_param.setdefault(label.split("[")[0], []).append(label)
    parts: list[str] = []
    for param, labels in by_param.items():
        size = (sizes or {}).get(param, 0)
        if size > 1 and len(labels) == size:
            parts.append(f"{param} (all {size})")
        else:
            parts.extend(labels)
    if len(parts) <= limit:
        return ", ".join(parts)
    return ", ".join(parts[:limit]) + f" and {len(parts) - limit} more"


# -- whole gradient ---------------------------------------------------------------------------
def whole_gradient(params: list[ParamResult]) -> tuple[float | None, dict[str, object] | None]:
    """Cosine between hand-written and numeric gradients, and the first-order loss change
    along minus the hand-written gradient (``-g_hand . g_true``; positive means following the
    hand-written gradient makes the loss go up)."""
    usable = [p for p in params if p.analytic is not None]
    if not usable:
        return None, None
    a = np.concatenate([p.analytic for p in usable])
    n = np.concatenate([p.numeric for p in usable])
    keep = np.isfinite(a) & np.isfinite(n)
    a, n = a[keep], n[keep]
    na, nn = np.linalg.norm(a), np.linalg.norm(n)
    cosine = float(a @ n / (na * nn)) if na > 0 and nn > 0 else None
    slope = float(-(a @ n))
    uncertainty = (
        float(np.abs(a) @ np.concatenate([p.fd_error for p in usable])[keep]) if a.size else 0.0
    )
    if slope > uncertainty:
        verdict = "ascent"
        message = (
            "following the hand-written gradient INCREASES the loss: a small step "
            f"-lr * g changes it by {slope:+.3g} * lr (first order)"
        )
    elif slope < -uncertainty:
        verdict = "descent"
        message = (
            f"stepping against the hand-written gradient lowers the loss ({slope:+.3g} "
            "* lr to first order)"
        )
    else:
        verdict = "flat"
        message = (
            "stepping against the hand-written gradient leaves the loss unchanged to "
            "first order: training would stall"
        )
    return cosine, {"direction": verdict, "slope": slope, "message": message}


# -- all together -----------------------------------------------------------------------------
def diagnose(params: list[ParamResult], dims: dict[str, int] | None = None) -> Diagnosis:
    """Classify every failing element and collect the findings the numbers support."""
    diagnosis = Diagnosis()
    for p in params:
        diagnosis.classes[p.name] = classify_elements(p)
        if p.status == "shape_mismatch":
            diagnosis.findings.append(shape_cause(p, dims))
        elif p.status == "no_gradient":
            diagnosis.findings.append(
                Finding(
                    "no_gradient", f"{p.name}: no hand-written gradient was returned", (p.name,)
                )
            )
        elif transposed(p):
            diagnosis.classes[p.name][p.statuses == "wrong"] = "transposed"
            diagnosis.findings.append(
                Finding(
                    "transposed",
                    f"{p.name}: the hand-written gradient is the transpose of the "
                    "true one (x.T @ dout where dout.T @ x is meant, or the reverse)",
                    (p.name,),
                )
            )
    for a, b in swapped_pairs(params):
        for name in (a, b):
            diagnosis.classes[name][diagnosis.classes[name] != ""] = "swapped"
        diagnosis.findings.append(
            Finding("swapped", f"{a} and {b}: their hand-written gradients are exchanged", (a, b))
        )
    diagnosis.groups = ratio_groups(params, dims)
    grouped = {label for g in diagnosis.groups for label in g.members}
    diagnosis.findings.extend(
        f
        for f in _element_findings(params, diagnosis, dims)
        # a group already states a shared factor, with its meaning
        if not (f.kind == "scaled" and set(f.elements) <= grouped)
    )
    diagnosis.cosine, diagnosis.descent = whole_gradient(params)
    return diagnosis


def _element_findings(params, diagnosis, dims) -> list[Finding]:
    """One finding per parameter and class: missing, spurious, sign, scale, kinks."""
    out = []
    sizes = {p.name: p.size for p in params}
    for p in params:
        classes = diagnosis.classes[p.name]
        if not classes.any() and not (p.statuses == "uncertain").any():
            continue  # nothing failed, no kink: nothing to say
        for kind, text in (
            (
                "missing",
                "hand-written partial is 0 but the loss depends on it: a term or a "
                "path was never added",
            ),
            (
                "spurious",
                "the loss does not depend on it (numeric partial 0) but the "
                "hand-written partial is not 0",
            ),
            ("sign_flipped", "the sign is flipped"),
        ):
            where = np.flatnonzero(classes == kind)
            if where.size:
                labels = tuple(p.label(int(i)) for i in where)
                out.append(
                    Finding(kind, f"{_members_text(labels, sizes)}: {text}", (p.name,), labels)
                )
        # a named factor (2, 1/2, the batch size...) is worth a sentence of its own; other
        # shared factors are reported by the groups
        where = np.flatnonzero(classes == "scaled")
        if where.size:
            ratios = p.numeric[where] / p.analytic[where]
            sigma = p.tolerance[where] / np.abs(p.analytic[where])
            factor = float(np.median(ratios))
            label = name_factor(factor, float(sigma.max()), dims)
            if np.ptp(ratios) <= 2 * sigma.max() and label is not None:
                labels = tuple(p.label(int(i)) for i in where)
                out.append(
                    Finding(
                        "scaled",
                        f"{_members_text(labels, sizes)}: true = {label} x hand-written; "
                        f"{factor_sentence(factor, label)}",
                        (p.name,),
                        labels,
                        factor,
                    )
                )
        kinks = np.flatnonzero(p.statuses == "uncertain")
        if kinks.size:
            labels = tuple(p.label(int(i)) for i in kinks)
            out.append(
                Finding(
                    "kink",
                    f"{_members_text(labels, sizes)}: the loss has a kink here (one-sided "
                    "derivatives differ), so no single derivative exists; the hand-written values "
                    "lie between them: valid subgradients",
                    (p.name,),
                    labels,
                )
            )
        outside = np.flatnonzero(classes == "not_subgradient")
        if outside.size:
            labels = tuple(p.label(int(i)) for i in outside)
            slopes = ", ".join(
                f"{p.label(int(i))} {p.backward[i]:+.4g} / {p.forward[i]:+.4g}" for i in outside[:4]
            )
            out.append(
                Finding(
                    "not_subgradient",
                    f"{_members_text(labels, sizes)}: at a kink, but the "
                    f"hand-written value lies outside the one-sided derivatives (left / right: "
                    f"{slopes}): not a subgradient",
                    (p.name,),
                    labels,
                )
            )
    return out
