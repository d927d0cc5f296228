"""The story before the details: which tensors are wrong, where that says the error enters, how
the whole gradient points, and the order the findings are told in.

Without declared nodes the graph is unknown, but one inference always holds: a parameter whose
gradient is right has a right backward all the way from the loss to it, so the error enters on
a path that reaches only the wrong parameters, or in their own formulas.
"""

from __future__ import annotations

import numpy as np

from gradcheck.core.compare import ParamResult
from gradcheck.diagnosis.findings import Builder, Finding
from gradcheck.diagnosis.resolve import (
    CONVERGED_FRACTION,
    failing,
    numeric_error,
    zero_within_error,
)

# A finding about fewer elements than this never leads while more elements than this are wrong.
HANDFUL = 5
# A named cause explaining this share of the squared error norm leads, before the story.
DOMINANT = 0.9
NAMED_CAUSES = frozenset(
    {
        "transposed",
        "reshaped",
        "swapped",
        "clipped",
        "sum_axis",
        "permuted",
        "wrong_axis",
        "missing_sum",
        "sign_flipped",
        "scaled",
        "group",
        "missing",
        "spurious",
        "no_gradient",
    }
)
# Parameters named in the story line before "and N more".
STORY_NAMES = 8


def _names(items: list[str]) -> str:
    if len(items) <= STORY_NAMES:
        return ", ".join(items)
    return ", ".join(items[:STORY_NAMES]) + f" and {len(items) - STORY_NAMES} more"


def _coverage(p: ParamResult, build: Builder, several: bool) -> str:
    """``Whh (all 64, 62% of the error)``; ``Wxh (24 of 48, the rest 0)``."""
    if p.size == 1:
        parts = []
    elif p.n_wrong == p.size:
        parts = [f"all {p.size}"]
    else:
        rest = ~failing(p)
        zero_rest = (
            p.analytic is not None
            and bool(np.all(p.analytic[rest] == 0))
            and bool(np.all(zero_within_error(p)[rest]))
        )
        parts = [f"{p.n_wrong} of {p.size}" + (", the rest 0" if zero_rest else "")]
    if several:
        part = build.make("", "", {p.name: failing(p)}, labels=False).share
        parts.append(f"{100 * part:.0f}% of the error")
    return f"{p.name} ({', '.join(parts)})" if parts else p.name


def _largest_shares(wrong: list[ParamResult], build: Builder, shown: int = 3) -> str:
    """``; most of the error in Whh (54%), Wxh (24%), bh (22%)``."""
    shares = sorted(
        ((build.make("", "", {p.name: failing(p)}, labels=False).share, p.name) for p in wrong),
        reverse=True,
    )[:shown]
    parts = ", ".join(f"{name} ({100 * value:.0f}%)" for value, name in shares)
    return f"; most of the error in {parts}"


def tensor_story(
    params: list[ParamResult], build: Builder, infer: bool = True, nodes: bool = False
) -> list[Finding]:
    """Which parameters are wrong and which right, and (``infer``) what that says about where
    the error enters. Nothing for a single parameter (the findings say it all)."""
    wrong = [p for p in params if p.failed]
    if not wrong or len(params) < 2:
        return []
    right = [p.name for p in params if not p.failed]
    names = _names([p.name for p in wrong])
    if right:
        wrong_text = _names([_coverage(p, build, len(wrong) > 1) for p in wrong])
    else:
        wrong_text = f"all {len(wrong)}" + _largest_shares(wrong, build)
    if not infer:
        message = f"wrong: {wrong_text}" + (f"; right: {_names(right)}" if right else "")
    elif right:
        verb = "is" if len(wrong) == 1 else "are"
        message = (
            f"{wrong_text} {verb} wrong; {_names(right)} {'is' if len(right) == 1 else 'are'} "
            f"right: every backward step on the way to {_names(right)} is right, so the error "
            f"enters on a path that reaches only {names}, or in "
            f"{'its own formula' if len(wrong) == 1 else 'their own formulas'}"
            + ("" if nodes else " (declare nodes to pin the step)")
        )
    else:
        message = (
            f"every parameter is wrong ({wrong_text}): the error enters on the way from the "
            "loss to all of them, in a step every backward path passes through (the loss's own "
            "derivative, a node all share, a recurrence), or there are several errors"
        )
    where = {p.name: failing(p) for p in wrong}
    return [build.make("tensors", message, where, labels=False)]


def dominates(f: Finding, total_wrong: int) -> bool:
    """A named cause that explains nearly all of the error, about more than a handful of
    elements (or all there are)."""
    enough = f.count >= HANDFUL or f.count >= total_wrong
    return f.kind in NAMED_CAUSES and f.share >= DOMINANT and enough


def rank(findings: list[Finding], total_wrong: int) -> list[Finding]:
    """A named cause that explains nearly all of the error first (``DOMINANT`` of the squared
    error norm), then the story, then the rest by share of the error; a finding about fewer
    than ``HANDFUL`` elements goes after every larger one while more than ``HANDFUL`` elements
    are wrong."""
    many = total_wrong > HANDFUL

    def key(item: tuple[int, Finding]):
        position, f = item
        small = many and f.count < HANDFUL
        last = f.kind == "groups_more"  # the count of the groups not shown closes the list
        return (not dominates(f, total_wrong), f.kind != "tensors", last, small, -f.share, position)

    return [f for _, f in sorted(enumerate(findings), key=key)]


def whole_gradient(params: list[ParamResult]) -> tuple[float | None, dict[str, object] | None]:
    """Cosine between hand-written and numeric gradients, and the first-order loss change
    along minus the hand-written gradient (``-g_hand . g_true``; positive means following the
    hand-written gradient makes the loss go up).

    Computed on finite elements, scaled by the largest magnitudes first so partials near 1e308
    neither overflow nor warn; a slope that does not fit a float is reported as its sign.
    """
    usable = [p for p in params if p.analytic is not None]
    if not usable:
        return None, None
    a = np.concatenate([p.analytic for p in usable])
    n = np.concatenate([p.numeric for p in usable])
    err = np.concatenate([numeric_error(p) for p in usable])
    keep = np.isfinite(a) & np.isfinite(n) & np.isfinite(err)
    a, n, err = a[keep], n[keep], err[keep]
    scale_a = float(np.abs(a).max(initial=0.0))
    scale_n = float(np.abs(n).max(initial=0.0))
    if scale_a == 0 or scale_n == 0:
        cosine = None
        dot = uncertainty = norms = 0.0
    else:
        a, n, err = a / scale_a, n / scale_n, err / scale_n
        # the norms as np.linalg.norm takes them (sqrt of the dot product), without its checks
        norms = float(np.sqrt(a.dot(a)) * np.sqrt(n.dot(n)))
        dot, uncertainty = float(a @ n), float(np.abs(a) @ err)
        # both scaled to a largest magnitude of 1, so norms >= 1: no division by zero
        cosine = min(max(dot / norms, -1.0), 1.0)
    with np.errstate(over="ignore"):
        slope = float(-dot * scale_a * scale_n)
    shown = f"{slope:+.3g}" if np.isfinite(slope) else ("+inf" if dot < 0 else "-inf")
    if -dot > uncertainty:
        verdict = "ascent"
        message = (
            "following the hand-written gradient INCREASES the loss: a small step "
            f"-lr * g changes it by {shown} * lr (first order)"
        )
    elif -dot < -uncertainty:
        verdict = "descent"
        message = (
            f"stepping against the hand-written gradient lowers the loss ({shown} "
            "* lr to first order)"
        )
    elif uncertainty > CONVERGED_FRACTION * norms:
        verdict = "unknown"  # no stall finding from partials that did not converge
        message = (
            "the numeric partials are too imprecise to tell whether stepping against the "
            "hand-written gradient lowers the loss"
        )
    else:
        verdict = "flat"
        message = (
            "stepping against the hand-written gradient leaves the loss unchanged to "
            "first order: training would stall"
        )
    finite = slope if np.isfinite(slope) else None
    return cosine, {"direction": verdict, "slope": finite, "message": message}
