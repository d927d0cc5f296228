"""Comparison: hand-written partials against numeric ones, one verdict per element.

Statuses, from worst to best (a parameter takes the worst of its elements):

* ``no_gradient``: the gradient function returned no value (or ``None``) for the parameter;
* ``shape_mismatch``: it returned an array whose shape is not the parameter's;
* ``nonfinite``: the hand-written or the numeric partial is NaN or infinite;
* ``wrong``: ``|analytic - numeric|`` exceeds the element's tolerance (see
  :class:`gradcheck.core.numerics.Tolerance`);
* ``uncertain``: the loss has a kink here (one-sided slopes disagree), so no single derivative
  exists, and the hand-written value lies between the one-sided slopes (a valid subgradient);
  never counted as a failure. A value outside them is ``wrong``;
* ``unchecked`` (fast mode): not examined; never counted as a failure;
* ``probed`` (fast mode): covered by a passing random-direction probe, not measured on its own
  (see :mod:`gradcheck.fast.mode` for what that proves); never counted as a failure;
* ``ok``.

In fast mode a failing probe that localization could not pin to elements fails its tensor
(``ParamResult.status`` is then ``wrong`` though no element is).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from gradcheck.core.differences import TensorDifferences
from gradcheck.core.numerics import Tolerance, relative_error
from gradcheck.core.params import Param, element_label
from gradcheck.errors import InputError

if TYPE_CHECKING:
    from gradcheck.fast.probe import ProbeSummary

STATUS_ORDER = (
    "no_gradient",
    "shape_mismatch",
    "nonfinite",
    "wrong",
    "uncertain",
    "unchecked",
    "probed",
    "ok",
)
FAILING = frozenset({"no_gradient", "shape_mismatch", "nonfinite", "wrong"})


@dataclass
class ParamResult:
    """Everything known about one parameter after the check. Arrays are flat, float64."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    grad_shape: tuple[int, ...] | None
    analytic: np.ndarray | None  # None when the gradient is missing or mis-shaped
    numeric: np.ndarray
    fd_error: np.ndarray  # estimated error of the numeric partial
    tolerance: np.ndarray  # allowed |analytic - numeric| per element
    abs_err: np.ndarray  # NaN where there is no analytic value
    rel_err: np.ndarray
    statuses: np.ndarray  # one status string per element
    step: np.ndarray
    forward: np.ndarray
    backward: np.ndarray
    kink: np.ndarray  # bool: the loss is not differentiable at this element
    refined: np.ndarray
    raw_grad: np.ndarray | None  # what the gradient function returned, as an array
    probe: ProbeSummary | None = None  # fast mode: the tensor's probes and localization

    @property
    def size(self) -> int:
        return self.numeric.size

    @cached_property
    def status(self) -> str:
        """The worst status of its elements (cached: whoever rewrites ``statuses`` after
        construction must drop it, ``vars(result).pop("status", None)``, as fast mode does)."""
        present = (
            set(np.unique(self.statuses).tolist())
            if self.size > 4096
            else set(self.statuses.tolist())
        )
        worst = next(s for s in STATUS_ORDER if s in present)
        if self.probe is not None and self.probe.unresolved and worst not in FAILING:
            return "wrong"  # a failing probe convicts the tensor though no element is pinned
        return worst

    @property
    def failed(self) -> bool:
        return self.status in FAILING

    def count(self, status: str) -> int:
        return int(np.count_nonzero(self.statuses == status))

    @property
    def n_wrong(self) -> int:
        """Elements that fail (wrong, nonfinite, or unusable gradient)."""
        return int(np.isin(self.statuses, list(FAILING)).sum())

    @property
    def significance(self) -> np.ndarray:
        """``abs_err / tolerance``: above 1 means wrong; how far above says how sure."""
        with np.errstate(invalid="ignore", divide="ignore"):
            s = self.abs_err / self.tolerance
        return np.where(np.isnan(s), -1.0, s)

    @property
    def worst(self) -> int:
        """Flat index of the element whose discrepancy is most significant."""
        failing = np.isin(self.statuses, list(FAILING))
        score = np.where(failing, np.inf, 0.0)
        score = np.where(failing & ~np.isnan(self.abs_err), self.significance, score)
        if not failing.any():
            score = self.significance
        return int(np.argmax(score))

    @property
    def worst_index(self) -> tuple[int, ...]:
        return tuple(int(i) for i in np.unravel_index(self.worst, self.shape))

    @property
    def max_abs_err(self) -> float | None:
        return _nanmax(self.abs_err)

    @property
    def max_rel_err(self) -> float | None:
        return _nanmax(self.rel_err)

    def label(self, flat: int) -> str:
        return element_label(self.name, self.shape, flat)


def _nanmax(values: np.ndarray) -> float | None:
    finite = values[~np.isnan(values)]
    return float(finite.max()) if finite.size else None


def analytic_array(name: str, value: Any) -> np.ndarray | None:
    """The hand-written gradient of ``name`` as a float64 array, ``None`` if it is ``None``.

    Raises a clear error for values that are not numbers at all (strings, objects).
    """
    if value is None:
        return None
    try:
        array = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise InputError(
            f"gradient for {name!r} could not be read as an array ({exc}); expected a float "
            "or an ndarray"
        ) from exc
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    ):
        raise InputError(
            f"gradient for {name!r} has dtype {array.dtype}; expected a float or a float ndarray"
        )
    if np.issubdtype(array.dtype, np.complexfloating):
        raise InputError(f"gradient for {name!r} is complex; expected real values")
    return np.array(array, dtype=np.float64, copy=True)


def compare(
    param: Param, grad: np.ndarray | None, fd: TensorDifferences, tolerance: Tolerance
) -> ParamResult:
    """Put a parameter's hand-written and numeric partials side by side, element by element."""
    n = param.size
    numeric = fd.numeric
    fits = grad is not None and grad.shape == param.shape
    analytic = grad.reshape(-1) if fits else None
    statuses = np.full(n, "ok", dtype="<U14")
    if analytic is None:
        abs_err = np.full(n, np.nan)
        rel_err = np.full(n, np.nan)
        allowed = tolerance.safety * fd.error
        statuses[:] = "no_gradient" if grad is None else "shape_mismatch"
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            abs_err = np.abs(analytic - numeric)
            rel_err = relative_error(analytic, numeric)
            allowed = tolerance.safety * fd.error + fd.rtol * np.maximum(
                np.abs(analytic), np.abs(numeric)
            )
        finite = np.isfinite(analytic) & np.isfinite(numeric)
        statuses[finite & (abs_err > allowed)] = "wrong"
        # at a kink a valid value lies between the one-sided slopes (the subgradients along
        # this coordinate), widened by how far those may be off and by the relative floor
        with np.errstate(invalid="ignore"):
            low = np.minimum(fd.forward, fd.backward)
            high = np.maximum(fd.forward, fd.backward)
            margin = fd.slack + fd.rtol * np.maximum(np.abs(analytic), np.abs(high - low))
            subgradient = (analytic >= low - margin) & (analytic <= high + margin)
        statuses[finite & fd.kink & subgradient] = "uncertain"
        statuses[finite & fd.kink & ~subgradient] = "wrong"
        statuses[~finite] = "nonfinite"
    return ParamResult(
        name=param.name,
        shape=param.shape,
        dtype=str(param.dtype),
        grad_shape=None if grad is None else tuple(grad.shape),
        analytic=analytic,
        numeric=numeric,
        fd_error=fd.error,
        tolerance=allowed,
        abs_err=abs_err,
        rel_err=rel_err,
        statuses=statuses,
        step=fd.step,
        forward=fd.forward,
        backward=fd.backward,
        kink=fd.kink,
        refined=fd.refined,
        raw_grad=grad,
    )
