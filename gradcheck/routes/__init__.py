"""Entry points for derivatives written in other shapes than ``loss(params)`` + ``grad(params)``.

Each is a thin adapter that builds a scalar loss and its hand-written gradient and hands them to
:func:`gradcheck.check`: same engine, same report, same diagnosis.

* :mod:`.value_and_grad`: ``fun(params) -> (loss, grads)`` in one call.
* :mod:`.layer`: a layer's ``forward``/``backward`` pair with an upstream ``dout``.
* :mod:`.derivatives`: Jacobians of vector functions, Hessians and Hessian-vector products.
"""

from __future__ import annotations

import dataclasses

from gradcheck.report.model import Report


def with_notes(report: Report, *notes: str, subject: str = "loss") -> Report:
    """``report`` with ``notes`` added (empty ones dropped): what a route says about the scalar
    it built, and ``subject``, what that scalar checks (see :class:`Report`); a subject other
    than a training loss drops the diagnosis's cosine and descent, which are about training.
    A new Report: the one :func:`gradcheck.check` built is not changed."""
    diagnosis = report.diagnosis
    if subject != "loss" and diagnosis is not None:
        diagnosis = dataclasses.replace(diagnosis, cosine=None, descent=None)
    return dataclasses.replace(
        report,
        notes=[*report.notes, *(n for n in notes if n)],
        subject=subject,
        diagnosis=diagnosis,
    )
