"""The result of a check: a pure data object. Rendering lives in :mod:`gradcheck.report.text`."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from gradcheck.core.compare import ParamResult
from gradcheck.diagnosis.classify import Diagnosis
from gradcheck.diagnosis.nodes import NodeResult, summarize
from gradcheck.report.html import render_html
from gradcheck.report.notebook import render_fragment
from gradcheck.report.text import headline, render_markdown, render_text, scaled_error


class Entry(NamedTuple):
    """One checked element."""

    param: str
    index: tuple[int, ...]  # type: ignore[assignment]  # a field, shadowing tuple.index
    analytic: float | None
    numeric: float
    abs_err: float | None
    rel_err: float | None
    status: str
    kind: str | None = None  # the diagnosis class of a failing element


def _number(value: Any) -> float | None:
    """The one conversion of a float for JSON: ``None`` (null) when it is NaN or infinite
    (strict JSON has no NaN or Infinity); a Python float otherwise."""
    value = float(value)
    return value if math.isfinite(value) else None


def _sensitivity(p: ParamResult) -> dict[str, float | None] | None:
    """Median and worst smallest-detectable relative error (partials >= 1% of the largest)."""
    summary = p.sensitivity_summary()
    if summary is None:
        return None
    return {"median": _number(summary[0]), "worst": _number(summary[1])}


def json_ready(value: Any) -> Any:
    """``value`` as plain JSON data: every float through :func:`_number`, NumPy scalars and
    arrays as Python numbers and lists, tuples and sets as lists, mapping keys as strings."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _number(value)
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_ready(v) for v in value]
    return str(value)  # anything else a user put in (a Path, an enum): its text


@dataclass(frozen=True)
class Report:
    """What a check found. ``print(report)`` shows the diff table.

    Attributes:
        params: one :class:`~gradcheck.core.compare.ParamResult` per parameter, in input order.
        evaluations: how many times the loss was called.
        loss: the loss at the starting parameters.
        options: the settings that produced this report (step rule, tolerance, ...), enough
            to replay it.
        notes: things the user should know (conversions made, read-only copies, ...).
        extra_gradients: names the gradient function returned that are not parameters.
        diagnosis: classes, groups and findings (:mod:`gradcheck.diagnosis.classify`).
        nodes: node-level checks, input side first (:mod:`gradcheck.diagnosis.nodes`), if asked for.
        samples: one report per sample, if per-sample problems were given.
        recheck: the same check in float64 (``check(recheck_float64=True)``), if asked for.
        subject: what ``loss`` is: ``"loss"``, a training loss (``check``,
            ``check_value_and_grad``); or the scalar a route built to check another derivative
            (``"layer"``, ``"Jacobian"``, ``"Hessian"``, ``"Hessian-vector product"``), which
            the reports call "the checked scalar" and say nothing about training of (no
            cosine, no descent line).
    """

    params: list[ParamResult]
    evaluations: int
    loss: float
    options: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra_gradients: list[str] = field(default_factory=list)
    diagnosis: Diagnosis | None = None
    nodes: list[NodeResult] = field(default_factory=list)
    samples: list[Report] = field(default_factory=list)
    recheck: Report | None = None
    subject: str = "loss"

    @property
    def passed(self) -> bool:
        """True when no parameter fails (``uncertain``, ``unchecked`` and ``probed`` elements do
        not fail; in fast mode a tensor whose failing probe was not pinned to elements does)."""
        return not any(p.failed for p in self.params)

    def __bool__(self) -> bool:  # `if report:` would read as "passed"; make that an error
        raise TypeError("use report.passed, not the truth value of a Report")

    def __getitem__(self, name: str) -> ParamResult:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def failed_params(self) -> list[str]:
        return [p.name for p in self.params if p.failed]

    def iter_entries(self) -> Iterator[Entry]:
        """Every measured element, parameter by parameter, in C order (in fast mode only the
        elements measured one by one: the others are counted per status in ``counts``)."""
        for p in self.params:
            statuses = p.statuses
            for k, flat in enumerate(p.indices.tolist()):
                index = tuple(int(i) for i in np.unravel_index(flat, p.shape))
                yield Entry(
                    param=p.name,
                    index=index,
                    analytic=None if p.analytic is None else float(p.analytic[k]),
                    numeric=float(p.numeric[k]),
                    abs_err=None if np.isnan(p.abs_err[k]) else float(p.abs_err[k]),
                    rel_err=None if np.isnan(p.rel_err[k]) else float(p.rel_err[k]),
                    status=str(statuses[k]),
                    kind=None if self.diagnosis is None else self.diagnosis.class_of(p.name, flat),
                )

    @property
    def entries(self) -> list[Entry]:
        """One record per checked element (see :meth:`iter_entries` for large nets)."""
        return list(self.iter_entries())

    def to_dict(self, entries: bool = True) -> dict[str, Any]:
        """The stable JSON schema (docs/reference/json.md); later versions only add keys.

        Strict JSON data: every float goes through one conversion (:func:`json_ready`), so a
        NaN or infinite value (a ``nonfinite`` element's error, a probe's bound) is ``None``.
        """
        diagnosis = self.diagnosis
        head = json_ready(
            {
                "passed": self.passed,
                "evaluations": self.evaluations,
                "loss": self.loss,
                "subject": self.subject,
                "options": self.options,
                "notes": self.notes,
                "extra_gradients": self.extra_gradients,
                "params": [
                    {
                        "name": p.name,
                        "shape": p.shape,
                        "grad_shape": p.grad_shape,
                        "dtype": p.dtype,
                        "status": p.status,
                        "max_abs_err": p.max_abs_err,
                        "max_rel_err": p.max_rel_err,
                        "max_scaled_err": scaled_error(p),
                        "n_wrong": p.n_wrong,
                        "n_uncertain": p.count("uncertain"),
                        "size": p.size,
                        "counts": p.counts(),
                        "worst_index": p.worst_index,
                        "probe": None if p.probe is None else p.probe.to_dict(),
                        "noise": p.noise,
                        "sensitivity": _sensitivity(p),
                    }
                    for p in self.params
                ],
            }
        )
        # entries: one per element, each float through the same conversion, built directly
        head["entries"] = [
            {
                "param": e.param,
                "index": list(e.index),
                "analytic": None if e.analytic is None else _number(e.analytic),
                "numeric": _number(e.numeric),
                "abs_err": None if e.abs_err is None else _number(e.abs_err),
                "rel_err": None if e.rel_err is None else _number(e.rel_err),
                "status": e.status,
                **({"class": e.kind} if e.kind else {}),
            }
            for e in (self.iter_entries() if entries else ())
        ]
        tail = json_ready(
            {
                "cosine": None if diagnosis is None else diagnosis.cosine,
                "descent": None if diagnosis is None else diagnosis.descent,
                "findings": []
                if diagnosis is None
                else [
                    {
                        "kind": f.kind,
                        "message": f.message,
                        "params": f.params,
                        "elements": f.elements,
                        "factor": f.factor,
                        "count": f.count,
                        "share": f.share,
                        "meaning": f.meaning,
                    }
                    for f in diagnosis.findings
                ],
                "groups": []
                if diagnosis is None
                else [
                    {
                        "factor": g.factor,
                        "uncertainty": g.uncertainty,
                        "members": g.members,
                        "message": g.message,
                    }
                    for g in diagnosis.groups
                ],
            }
        )
        nodes = [
            {
                **json_ready(
                    {
                        "name": r.name,
                        "next": r.next,
                        "step": r.step,
                        "right": r.right,
                        "enters_here": r.enters_here,
                    }
                ),
                "grad": r.total.to_dict(entries=entries),
                "local": None if r.local is r.total else r.local.to_dict(entries=entries),
            }
            for r in self.nodes
        ]
        return {
            **head,
            **tail,
            "nodes": nodes,
            "node_summary": json_ready(summarize(self.nodes)) if self.nodes else [],
            "samples": [s.to_dict(entries=entries) for s in self.samples],
            "recheck_float64": None if self.recheck is None else self.recheck.to_dict(entries),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text (strict JSON: no NaN, non-finite numbers are null)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_text(self, max_rows: int | None = 10) -> str:
        """The diff table; ``max_rows=None`` shows every element."""
        return render_text(self, max_rows=max_rows)

    def to_markdown(self, max_rows: int | None = 10) -> str:
        """The same report as GitHub-flavoured Markdown."""
        return render_markdown(self, max_rows=max_rows)

    def to_html(self, title: str = "gradcheck report", max_rows: int | None = 10) -> str:
        """A self-contained HTML page: diagnosis, tables and relative-error heatmaps."""
        return render_html(self, title=title, max_rows=max_rows)

    def _repr_html_(self) -> str:
        """Notebooks: the HTML report inline (a fragment with scoped styles, no page)."""
        return render_fragment(self)

    def _repr_markdown_(self) -> str:
        """Notebooks and other Markdown front-ends: :meth:`to_markdown`."""
        return self.to_markdown()

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        """The verdict in one line (``assert report.passed, report`` shows this in pytest, which
        prints the repr of an assertion's message; ``print(report)`` shows the tables)."""
        failed = self.failed_params
        where = (
            f"; failing: {', '.join(failed[:5])}{' ...' if len(failed) > 5 else ''}"
            if failed
            else ""
        )
        return f"<Report: {headline(self)}{where}>"
