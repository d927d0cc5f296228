"""Node-level localization: which backward step lets the error in.

For a :class:`~gradcheck.protocol.NodeTrace` the checker runs two checks per node ``n``:

* **dL/dn** (global): the hand-written ``grads[n]`` against finite differences of the loss
  with ``n`` perturbed and everything after it recomputed. Walking back from the loss, the
  first node found wrong is where the error has reached.
* **the step n -> m** (local, ``m`` the next node): the hand-written ``grads[n]`` against finite
  differences of ``<grads[m], m(n)>``, i.e. the true vector-Jacobian product of that one step
  applied to the *hand-written* upstream gradient. It fails exactly when the backward of that
  step is wrong, whatever happened upstream, so every step that lets an error in is named,
  not only the first. For the last node the local check is the loss's own derivative.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from gradcheck.errors import InputError
from gradcheck.protocol import NodeTrace


@dataclass
class NodeResult:
    """The two checks of one node (each a full :class:`~gradcheck.report.model.Report`)."""

    name: str
    step: str  # what produces the next node, e.g. "softmax" ("" if unknown)
    next: str | None  # the next node toward the loss; None for the last one
    total: Any  # Report: dL/dnode
    local: Any  # Report: the backward of the step node -> next
    paths: list[str] = field(default_factory=list)  # missing-path findings of the step

    @property
    def right(self) -> bool:
        return self.total.passed

    @property
    def enters_here(self) -> bool:
        """The backward of the step from this node toward the loss is itself wrong."""
        return not self.local.passed


def _validate(trace: NodeTrace) -> None:
    if not isinstance(trace, NodeTrace):
        raise InputError(
            f"nodes(params) must return a gradcheck NodeTrace, got {type(trace).__name__}"
        )
    for name in trace.order:
        if name not in trace.values or name not in trace.grads:
            raise InputError(
                f"node {name!r} is in NodeTrace.order but has no value or no hand-written gradient"
            )


class NodePlan(NamedTuple):
    """The two checks of one node, as ``(loss, grad, params)`` triples for the checker.

    ``local`` is ``None`` for the last node, whose step is the loss itself (its local check is
    its total one).
    """

    name: str
    next: str | None
    total: tuple[Callable[..., Any], Callable[..., Any], dict[str, np.ndarray]]
    local: tuple[Callable[..., Any], Callable[..., Any], dict[str, np.ndarray]] | None


def node_plans(trace: NodeTrace) -> list[NodePlan]:
    """What to check for every node of ``trace``, input side first (see the module doc)."""
    _validate(trace)
    plans = []
    order = list(trace.order)
    for i, name in enumerate(order):
        value = np.array(trace.values[name], dtype=np.float64, copy=True)
        hand = {name: np.asarray(trace.grads[name], dtype=np.float64)}

        def loss(p, name=name):
            return trace.forward({name: p[name]})[1]

        def grad(_p, hand=hand):
            return hand

        following = order[i + 1] if i + 1 < len(order) else None
        local = None
        if following is not None:
            upstream = np.asarray(trace.grads[following], dtype=np.float64)

            def surrogate(p, name=name, following=following, upstream=upstream):
                values, _ = trace.forward({name: p[name]})
                return float(np.sum(upstream * np.asarray(values[following])))

            local = (surrogate, grad, {name: value.copy()})
        plans.append(NodePlan(name, following, (loss, grad, {name: value.copy()}), local))
    return plans


def node_result(trace: NodeTrace, plan: NodePlan, total: Any, local: Any) -> NodeResult:
    """A node's two reports (``local is total`` for the last node) read as a finding."""
    following = plan.next
    step = trace.steps.get(following, "") if following else "loss"
    paths = []
    if following is not None and not local.passed:
        paths = skipped_step(trace, plan.name, following) or missing_paths(
            trace, plan.name, following, local.params[0]
        )
    return NodeResult(plan.name, step, following, total, local, paths)


# Path analysis enumerates subsets of the paths out of one element: keep it small.
MAX_PATHS = 12
MAX_NODE_SIZE = 256


def element_name(trace: NodeTrace, node: str, flat: int) -> str:
    """The net's own name for element ``flat`` of ``node`` (``h1``), else ``h[0]``."""
    names = trace.names.get(node)
    if names is not None:
        return str(np.asarray(names, dtype=object).reshape(-1)[flat])
    shape = np.shape(trace.values[node])
    if not shape:
        return node
    return f"{node}[{', '.join(str(int(i)) for i in np.unravel_index(flat, shape))}]"


def skipped_step(trace: NodeTrace, node: str, following: str) -> list[str]:
    """The hand-written dL/dnode is the upstream dL/dnext itself: the step was skipped."""
    hand = np.asarray(trace.grads[node], dtype=np.float64)
    upstream = np.asarray(trace.grads[following], dtype=np.float64)
    if hand.shape != upstream.shape or not np.allclose(hand, upstream, rtol=1e-12, atol=0):
        return []
    step = trace.steps.get(following, "")
    return [
        f"dL/d{node} equals dL/d{following}: the derivative of the step "
        f"{node} -> {following}{' (' + step + ')' if step else ''} was never applied"
    ]


def missing_paths(trace: NodeTrace, node: str, following: str, result) -> list[str]:
    """Which paths from ``node`` into ``following`` a wrong backward step left out.

    The true local gradient of element j is a sum of per-path contributions
    ``c_jk = upstream_k * d following_k / d node_j`` (measured by central differences of the
    forward pass). When the hand-written value equals the sum over a proper subset of the
    paths, the others are missing: a hidden unit that feeds two outputs but was given the
    gradient of one.
    """
    value = np.asarray(trace.values[node], dtype=np.float64)
    upstream = np.asarray(trace.grads[following], dtype=np.float64).reshape(-1)
    if value.size > MAX_NODE_SIZE or upstream.size > MAX_NODE_SIZE:
        return []
    base = value.reshape(-1)
    step = np.finfo(np.float64).eps ** (1 / 3) * np.maximum(1.0, np.abs(base))
    contributions = np.empty((base.size, upstream.size))
    for j in range(base.size):
        moved = [base.copy(), base.copy()]
        moved[0][j] += step[j]
        moved[1][j] -= step[j]
        up, down = (
            np.asarray(
                trace.forward({node: m.reshape(value.shape)})[0][following], dtype=np.float64
            ).reshape(-1)
            for m in moved
        )
        contributions[j] = upstream * (up - down) / (2 * step[j])
    findings = []
    for j in np.flatnonzero(result.statuses == "wrong").tolist():  # ints, as j above
        row = contributions[j]
        paths = np.flatnonzero(np.abs(row) > 1e-9 * np.abs(row).max(initial=0.0))
        if not 2 <= paths.size <= MAX_PATHS:
            continue
        hand = result.analytic[j]
        slack = result.tolerance[j] + 1e-6 * np.abs(row).sum()
        best = None
        for mask in range(1, 2**paths.size - 1):  # proper, non-empty subsets
            kept = paths[[bool(mask >> b & 1) for b in range(paths.size)]]
            if abs(row[kept].sum() - hand) <= slack and (best is None or kept.size > best.size):
                best = kept
        if best is not None:
            missing = [k for k in paths if k not in best]
            findings.append(
                f"{element_name(trace, node, int(j))} gets only the path"
                f"{'s' if best.size > 1 else ''} through "
                f"{', '.join(element_name(trace, following, int(k)) for k in best)}; missing: "
                f"{', '.join(element_name(trace, following, int(k)) for k in missing)}"
            )
    return findings


def summarize(results: list[NodeResult]) -> list[str]:
    """Plain sentences, walking back from the loss."""
    lines = []
    walked = list(reversed(results))
    first_wrong = next((r for r in walked if not r.right), None)
    if first_wrong is None:
        return ["every node's hand-written gradient is right"]
    previous = None
    for r in walked:
        if r is first_wrong:
            if previous is None:
                line = (
                    f"dL/d{r.name} is wrong: the error enters in the derivative of the loss itself"
                )
            else:
                line = (
                    f"dL/d{previous.name} is right, dL/d{r.name} is wrong: the error is in "
                    f"the backward of {_step(r)}"
                )
            lines.append(line + _detail(r))
        elif r.enters_here:
            lines.append(
                f"dL/d{r.name}: the backward of {_step(r)} is wrong as well (checked "
                "against the hand-written upstream gradient): another error enters "
                "here" + _detail(r)
            )
        previous = r
    return lines


def _detail(r: NodeResult) -> str:
    """The local check's own diagnosis, when it names a simple pattern."""
    diagnosis = r.local.diagnosis
    simple = list(r.paths)
    if diagnosis is not None:
        simple += [
            f.message
            for f in diagnosis.findings
            if f.kind in {"scaled", "sign_flipped", "missing", "spurious", "transposed"}
        ]
        if not simple:
            simple += [
                f"{g.message} ({g.meaning})"
                for g in diagnosis.groups
                if len(g.members) == r.local.params[0].size
            ]
    return f": {'; '.join(simple)}" if simple else ""


def _step(r: NodeResult) -> str:
    if r.next is None:
        return "the loss"
    return f"{r.name} -> {r.next}" + (f" ({r.step})" if r.step else "")


def batch_trace(traces: list[NodeTrace]) -> NodeTrace:
    """One trace for a batch whose loss is the mean of per-sample losses.

    For code that runs sample by sample (like the asker's): node values are stacked along a
    new first axis, hand-written gradients are stacked and divided by the number of samples
    (the batch loss is their mean), and the forward pass runs each sample with its own row.
    """
    if not traces:
        raise InputError("batch_trace needs at least one per-sample trace")
    order = traces[0].order
    if any(t.order != order for t in traces):
        raise InputError("every per-sample trace must have the same node order")
    count = len(traces)
    values = {
        k: np.stack([np.asarray(t.values[k], dtype=np.float64) for t in traces]) for k in order
    }
    grads = {
        k: np.stack([np.asarray(t.grads[k], dtype=np.float64) for t in traces]) / count
        for k in order
    }

    def forward(overrides):
        runs = [
            t.forward({k: np.asarray(v)[i] for k, v in overrides.items()})
            for i, t in enumerate(traces)
        ]
        stacked = {
            k: np.stack([np.asarray(r[0][k], dtype=np.float64) for r in runs]) for k in order
        }
        return stacked, float(np.mean([r[1] for r in runs]))

    names = {}
    for k in order:
        size = values[k][0].size
        names[k] = [
            f"{element_name(t, k, j)} (sample {i})"
            for i, t in enumerate(traces)
            for j in range(size)
        ]
    return NodeTrace(order, values, grads, forward, dict(traces[0].steps), names)
