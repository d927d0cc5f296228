"""Findings: plain-language statements with the elements they are about and the share of the
error they explain."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradcheck.core.compare import ParamResult
from gradcheck.diagnosis.resolve import error_sizes, share, squared_norm


@dataclass(frozen=True)
class Finding:
    """One plain-language statement backed by numbers.

    ``count`` is how many failing elements it is about and ``share`` the fraction of the
    squared error norm (over all failing elements) they carry: what ranks findings.
    ``meaning`` is what such a finding usually means (said once per report).
    """

    kind: str
    message: str
    params: tuple[str, ...] = ()
    elements: tuple[str, ...] = ()
    factor: float | None = None
    count: int = 0
    share: float = 0.0
    meaning: str = ""


def members_text(
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


class Builder:
    """Makes findings with their element count and share of the error norm."""

    def __init__(self, params: list[ParamResult]):
        self.params = {p.name: p for p in params}
        self.sizes = {p.name: p.size for p in params}
        self._errors: dict[str, np.ndarray] | None = None
        self._total = 0.0  # the squared norm of the errors, with them

    @property
    def errors(self) -> dict[str, np.ndarray]:
        """:func:`error_sizes` of the parameters, computed when the first finding is made (a
        check where everything passes makes none)."""
        if self._errors is None:
            self._errors = error_sizes(list(self.params.values()))
            self._total = squared_norm(self._errors)
        return self._errors

    def make(self, kind, message, where, factor=None, labels=True, meaning="") -> Finding:
        where = {k: np.asarray(v) for k, v in where.items()}
        where = {k: (np.flatnonzero(v) if v.dtype == bool else v) for k, v in where.items()}
        names = (
            tuple(self.params[k].label(int(i)) for k, v in where.items() for i in v)
            if labels
            else ()
        )
        return Finding(
            kind,
            message,
            tuple(where),
            names,
            factor,
            int(sum(v.size for v in where.values())),
            share(self.errors, where, self._total),
            meaning,
        )

    def elements(self, p: ParamResult, where: np.ndarray) -> str:
        return members_text(tuple(p.label(int(i)) for i in where), self.sizes)


def merge_alike(findings: list[Finding]) -> list[Finding]:
    """One finding for the same statement about several parameters (``w1: <text>`` and
    ``w2: <text>`` become ``w1, w2: <text>``), counts and shares added: fourteen scalar
    weights with the same missing sum are one cause, and rank as one."""
    merged: dict[tuple[str, str, str], list[Finding]] = {}
    order: list[tuple[str, str, str] | int] = []
    for i, f in enumerate(findings):
        head = f"{f.params[0]}: " if len(f.params) == 1 else None
        if head is None or not f.message.startswith(head):
            order.append(i)
            continue
        key = (f.kind, f.message[len(head) :], f.meaning)
        if key not in merged:
            order.append(key)
        merged.setdefault(key, []).append(f)
    out = []
    for item in order:
        if isinstance(item, int):
            out.append(findings[item])
            continue
        alike = merged[item]
        if len(alike) == 1:
            out.append(alike[0])
            continue
        params = tuple(p for f in alike for p in f.params)
        out.append(
            Finding(
                item[0],
                f"{', '.join(params)}: {item[1]}",
                params,
                tuple(e for f in alike for e in f.elements),
                alike[0].factor,
                sum(f.count for f in alike),
                min(sum(f.share for f in alike), 1.0),
                item[2],
            )
        )
    return out
