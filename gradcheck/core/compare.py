"""Comparison: hand-written partials against numeric ones, one verdict per element.

Statuses, from worst to best (a parameter takes the worst of its elements):

* ``no_gradient``: the gradient function returned no value (or ``None``) for the parameter;
* ``shape_mismatch``: it returned an array whose shape is not the parameter's;
* ``nonfinite``: the hand-written or the numeric partial is NaN or infinite, or comparing them
  overflowed (a tolerance or discrepancy beyond float64's range): nothing is proven, so it
  fails (fail closed, :func:`gradcheck.core.numerics.within`);
* ``wrong``: ``|analytic - numeric|`` exceeds the element's tolerance (see
  :class:`gradcheck.core.numerics.Tolerance`);
* ``uncertain``: the loss has a kink here (one-sided slopes disagree), so no single derivative
  exists, and the hand-written value lies between the one-sided slopes (a valid subgradient);
  never counted as a failure. A value outside them is ``wrong``. A kink beside the point is
  isolated first (:meth:`gradcheck.core.differences.FiniteDifferences._isolate`); one that
  could not be comes with the range of every one-sided slope measured as its slopes;
* ``unchecked`` (fast mode): not examined; never counted as a failure;
* ``probed`` (fast mode): covered by a passing random-direction probe, not measured on its own
  (see :mod:`gradcheck.fast.mode` for what that proves); never counted as a failure;
* ``ok``.

In fast mode a failing probe that localization could not pin to elements fails its tensor
(``ParamResult.status`` is then ``wrong`` though no element is).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from gradcheck.core.differences import TensorDifferences
from gradcheck.core.numerics import Tolerance, beyond, relative_error, within
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
# Sensitivity is summarised over the partials at least this fraction of their tensor's largest.
SENSITIVITY_FRACTION = 0.01
# Up to this many elements, a result's worst status comes from a Python min over its codes.
FEW = 32
# One byte per element: a status is its position in STATUS_ORDER.
CODE = {status: np.uint8(k) for k, status in enumerate(STATUS_ORDER)}
_NAMES = np.array(STATUS_ORDER)
# code -> whether it fails: a lookup table, one fancy index per tensor (np.isin sorts)
_FAILS = np.array([s in FAILING for s in STATUS_ORDER], dtype=bool)


# The per-element (and gradient) arrays of a ParamResult, made read-only on construction.
_ARRAY_FIELDS = (
    "analytic", "numeric", "fd_error", "tolerance", "abs_err", "rel_err", "codes", "step",
    "forward", "backward", "kink", "refined", "raw_grad", "elements", "detectable",
)  # fmt: skip


def read_only(value: Any) -> np.ndarray:
    """A read-only view of ``value`` (as an array): what a result holds, so nobody edits it."""
    view = np.asarray(value).view()
    view.flags.writeable = False
    return view


@functools.cache
def dtype_name(dtype: np.dtype) -> str:
    """``str(dtype)``, once per dtype (numpy builds the text anew on every call)."""
    return str(dtype)


def status_codes(statuses: Iterable[str]) -> np.ndarray:
    """Status names as the one-byte codes a :class:`ParamResult` stores."""
    return np.array([CODE[str(s)] for s in statuses], dtype=np.uint8)


@dataclass(frozen=True, eq=False)
class ParamResult:
    """Everything known about one parameter after the check; immutable once built.

    Per-element arrays (flat, float64) run over the elements that were measured one by one:
    every element in the full check (``elements is None``), and in fast mode only those listed
    in ``elements`` (sorted flat indices); the others are counted per status in
    ``unmeasured`` (``probed``, ``unchecked``, or the whole tensor's ``no_gradient``), so a
    result's size grows with what was measured, not with the parameter. Arrays are read-only.
    """

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
    codes: np.ndarray  # uint8 status per element: its position in STATUS_ORDER
    step: np.ndarray
    forward: np.ndarray
    backward: np.ndarray
    kink: np.ndarray  # bool: the loss is not differentiable at this element
    refined: np.ndarray
    raw_grad: np.ndarray | None  # what the gradient function returned, as an array
    probe: ProbeSummary | None = None  # fast mode: the tensor's probes and localization
    elements: np.ndarray | None = None  # flat indices the arrays describe; None: all
    unmeasured: Mapping[str, int] = field(default_factory=dict)  # status -> count
    noise: float = float("nan")  # measured standard deviation of the loss values (ECnoise)
    # the smallest |analytic - numeric| the check was sure to flag, per element (None: unknown)
    detectable: np.ndarray | None = None
    status: str = field(init=False)  # the worst status of its elements

    def __post_init__(self) -> None:
        for f in _ARRAY_FIELDS:
            value = getattr(self, f)
            # a read-only view: nobody edits a result (a slice of another result's arrays,
            # as a group's member gets, is one already)
            if value is not None and not (type(value) is np.ndarray and not value.flags.writeable):
                object.__setattr__(self, f, read_only(value))
        object.__setattr__(self, "unmeasured", dict(self.unmeasured))
        object.__setattr__(self, "status", self._worst())

    @classmethod
    def of_read_only(cls, values: Mapping[str, Any]) -> ParamResult:
        """``ParamResult(**values)`` when every array among ``values`` is a read-only view
        already (a group member's slices of its group's result): the same result without a
        second pass over its arrays, which costs more than the slicing (a net of 14 scalars
        builds 14 such results). ``values`` holds every field ``__init__`` takes."""
        self = object.__new__(cls)
        self.__dict__.update(values)
        object.__setattr__(self, "unmeasured", dict(self.unmeasured))
        object.__setattr__(self, "status", self._worst())
        return self

    def _worst(self) -> str:
        present = {int(CODE[s]) for s, n in self.unmeasured.items() if n}
        if self.codes.size:  # codes run from worst to best
            # a few codes (a group's scalar member): Python's min, not a numpy reduction's
            # fixed cost (a net of 14 scalars builds 14 results)
            few = self.codes.size <= FEW
            present.add(min(self.codes.tolist()) if few else int(self.codes.min()))
        worst = STATUS_ORDER[min(present)] if present else "ok"
        if self.probe is not None and self.probe.unresolved and worst not in FAILING:
            return "wrong"  # a failing probe convicts the tensor though no element is pinned
        return worst

    @property
    def size(self) -> int:
        """Elements of the parameter (measured or not)."""
        return math.prod(self.shape)

    @property
    def indices(self) -> np.ndarray:
        """Flat indices of the elements the per-element arrays describe."""
        return np.arange(self.size) if self.elements is None else self.elements

    @property
    def statuses(self) -> np.ndarray:
        """Status names of the elements the per-element arrays describe (see ``indices``)."""
        return _NAMES[self.codes]

    @property
    def failed(self) -> bool:
        return self.status in FAILING

    @property
    def sensitivity(self) -> np.ndarray:
        """Per measured element, the smallest relative error its check could detect:
        ``detectable / max(|analytic|, |numeric|)`` (inf for a zero partial, NaN unknown)."""
        if self.detectable is None:
            return np.full(self.numeric.size, np.nan)
        scale = np.abs(self.numeric)
        if self.analytic is not None:
            scale = np.fmax(scale, np.abs(self.analytic))
        # (over: a bound over a subnormal partial is past float64's range: inf, as at 0)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return np.where(scale > 0, self.detectable / np.where(scale > 0, scale, 1.0), np.inf)

    def sensitivity_summary(self, smooth: bool = False) -> tuple[float, float] | None:
        """Median and worst :attr:`sensitivity` over the elements whose partial (the larger of
        the numeric and hand-written one, as :attr:`sensitivity` scales it) is at least
        ``SENSITIVITY_FRACTION`` of the tensor's largest (the partials a check promises to
        judge relative to their size); ``None`` when there are none. ``smooth``: over the
        elements not at kinks only (an ``uncertain`` element's tolerance spans its one-sided
        slopes: what it could detect is the kink's business, not the precision's)."""
        # the partials' sizes as :attr:`sensitivity` scales them (a loss exactly 0 along every
        # element reads numeric partials of 0 against hand-written ones of 1e-18)
        scale = np.abs(self.numeric)
        if self.analytic is not None:
            scale = np.fmax(scale, np.abs(self.analytic))
        finite = np.isfinite(scale)
        if smooth:
            finite &= self.codes != CODE["uncertain"]
        if not finite.any() or not scale[finite].max() > 0:
            return None
        with np.errstate(invalid="ignore"):
            large = finite & (scale >= SENSITIVITY_FRACTION * scale[finite].max())
        values = self.sensitivity[large]
        values = values[~np.isnan(values)]
        if not values.size:
            return None
        return float(np.median(values)), float(values.max())

    def count(self, status: str) -> int:
        """Elements with this status, measured or not."""
        stored = int(np.count_nonzero(self.codes == CODE[status]))
        return stored + int(self.unmeasured.get(status, 0))

    def counts(self) -> dict[str, int]:
        """Elements per status (statuses with none left out), worst first."""
        return {s: n for s in STATUS_ORDER if (n := self.count(s))}

    def position(self, flat: int) -> int | None:
        """Where element ``flat`` sits in the per-element arrays (None: not measured)."""
        if self.elements is None:
            return flat
        k = int(np.searchsorted(self.elements, flat))
        return k if k < self.elements.size and self.elements[k] == flat else None

    @property
    def n_wrong(self) -> int:
        """Elements that fail (wrong, nonfinite, or unusable gradient)."""
        stored = int(np.count_nonzero(_FAILS[self.codes]))
        return stored + sum(n for s, n in self.unmeasured.items() if s in FAILING)

    @property
    def failing(self) -> np.ndarray:
        """Bool per stored element: its status fails."""
        return _FAILS[self.codes]

    @property
    def significance(self) -> np.ndarray:
        """``abs_err / tolerance`` per stored element: above 1 means wrong; how far above says
        how sure."""
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            s = self.abs_err / self.tolerance
        return np.where(np.isnan(s), -1.0, s)

    @property
    def worst(self) -> int:
        """Flat index of the element whose discrepancy is most significant."""
        if not self.codes.size:
            return 0
        failing = self.failing
        score = np.where(failing, np.inf, 0.0)
        score = np.where(failing & ~np.isnan(self.abs_err), self.significance, score)
        if not failing.any():
            score = self.significance
        return int(self.indices[int(np.argmax(score))])

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
    if type(value) is np.ndarray and value.dtype == np.float64:  # the common case, checked fast
        return np.array(value, copy=True)
    if type(value) is float or type(value) is np.float64:  # a scalar's partial (w1..w12)
        return np.array(value, dtype=np.float64)
    if isinstance(value, np.ma.MaskedArray):
        raise InputError(
            f"gradient for {name!r} is a masked array (numpy.ma); a masked partial has no value "
            "to compare: return a plain array (the partial is 0 where the loss ignores an "
            "element)"
        )
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


def _judge_kinks(
    codes: np.ndarray, analytic: np.ndarray, fd: TensorDifferences, finite: np.ndarray
) -> None:
    """At a kink a valid value lies between the one-sided slopes (the subgradients along this
    coordinate), widened by how far those may be off and by the relative floor: ``uncertain``
    there, ``wrong`` outside (``codes`` edited in place, at kinks with finite values only)."""
    with np.errstate(invalid="ignore", over="ignore"):
        low = np.minimum(fd.forward, fd.backward)
        high = np.maximum(fd.forward, fd.backward)
        margin = fd.slack + fd.rtol * np.maximum(np.abs(analytic), np.abs(high - low))
        gap = np.maximum(np.maximum(low - analytic, analytic - high), 0.0)  # NaN stays NaN
    codes[finite & fd.kink & within(gap, margin)] = CODE["uncertain"]
    codes[finite & fd.kink & beyond(gap, margin)] = CODE["wrong"]


def compare(
    param: Param,
    grad: np.ndarray | None,
    fd: TensorDifferences,
    tolerance: Tolerance,
    *,
    elements: np.ndarray | None = None,
    unmeasured: Mapping[str, int] | None = None,
    probe: ProbeSummary | None = None,
) -> ParamResult:
    """Put a parameter's hand-written and numeric partials side by side, element by element.

    ``fd`` runs over every element, or over the sorted flat indices ``elements`` only (fast
    mode); ``unmeasured`` counts the others per status and ``probe`` says what fast mode did."""
    numeric = fd.numeric
    n = numeric.size
    analytic = None
    if grad is not None and grad.shape == param.shape:
        analytic = grad.reshape(-1) if elements is None else grad.reshape(-1)[elements]
    codes = np.full(n, CODE["ok"], dtype=np.uint8)
    if analytic is None:
        abs_err = np.full(n, np.nan)
        rel_err = np.full(n, np.nan)
        with np.errstate(over="ignore"):
            allowed = tolerance.safety * fd.error
        scale = np.abs(numeric)
        codes[:] = CODE["no_gradient" if grad is None else "shape_mismatch"]
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            abs_err = np.abs(analytic - numeric)
            scale = np.maximum(np.abs(analytic), np.abs(numeric))
            rel_err = relative_error(analytic, numeric, scale)
            allowed = tolerance.safety * fd.error + fd.rtol * scale
        finite = np.isfinite(analytic) & np.isfinite(numeric)
        wrong = beyond(abs_err, allowed)
        codes[finite & wrong] = CODE["wrong"]
        # fail closed: a comparison that overflowed (an infinite tolerance or discrepancy)
        # proves nothing, so it cannot pass
        codes[finite & ~wrong & ~within(abs_err, allowed)] = CODE["nonfinite"]
        if fd.kink.any():  # (no kink: nothing below would change a code)
            _judge_kinks(codes, analytic, fd, finite)
        codes[~finite] = CODE["nonfinite"]
    return ParamResult(
        name=param.name,
        shape=param.shape,
        dtype=dtype_name(param.dtype),
        grad_shape=None if grad is None else tuple(grad.shape),
        analytic=analytic,
        numeric=numeric,
        fd_error=fd.error,
        tolerance=allowed,
        abs_err=abs_err,
        rel_err=rel_err,
        codes=codes,
        step=fd.step,
        forward=fd.forward,
        backward=fd.backward,
        kink=fd.kink,
        refined=fd.refined,
        raw_grad=grad,
        probe=probe,
        elements=None if elements is None else np.asarray(elements, dtype=np.intp),
        unmeasured=dict(unmeasured or {}),
        noise=float(fd.noise),
        detectable=(fd.detectable + fd.rtol * scale) if fd.detectable.size == n else None,
    )
