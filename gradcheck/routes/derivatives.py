"""Jacobians of vector functions, Hessians and Hessian-vector products, element by element.

The engine differentiates scalar losses, so each matrix becomes one, exactly:

* **Jacobian** ``J[i, j] = d fun_i / d x_j``: the check's parameter is ``P``, ``m`` stacked
  copies of ``x`` (shape ``(m, n)``), and its loss is ``L(P) = sum_i fun_i(P[i])``. Then
  ``dL/dP[i, j] = J[i, j]`` at ``P[i] = x``: the finite difference of ``P[i, j]`` moves row ``i``
  only, so ``L`` changes by ``fun_i(x + h e_j) - fun_i(x)`` and every element has its own
  step, tolerance and verdict, named ``J[i, j]``; the diagnosis sees the whole matrix (a
  transposed Jacobian is named as such). Rows not being moved contribute ``fun_i(x)`` from the
  one evaluation at ``x``; a moved row costs one call of ``fun``, and calls at the same point
  (row ``i`` and row ``k`` moved by the same step on column ``j``) are made once: ``fun`` is
  called about ``2n`` times in all, not ``2mn``. ``fun`` is checked to be deterministic first.
* **Hessian** ``H[i, j] = d grad_i / d x_j``: the Jacobian of the hand-written gradient, named
  ``H[i, j]``, plus a note when the hand-written ``H`` is not symmetric. It checks the Hessian
  against the gradient (what a trust-region method needs them to agree on).
* **Hessian-vector product**: for seeded random ``v_k`` the scalar ``sum_k v_k . grad(x)`` has
  the gradient ``sum_k H^T v_k = sum_k H v_k`` (``H`` is symmetric), which the hand-written
  ``hvp`` gives as ``sum_k hvp(x, v_k)``; several ``v`` exercise several calls, as in
  :mod:`.layer`. Elements are named ``Hv[j]``.

``x`` is a flat vector (elements ``J[i, j]``) or a dict name -> array or float (elements
``J["w"][i, j]``, columns in the dict's order for a matrix-valued ``jac``). The user's ``x``
is never written (the check perturbs its own copies); sparse matrices (``scipy.sparse``) are
densified.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gradcheck.api import check
from gradcheck.core.tree import StructureError
from gradcheck.errors import InputError, NondeterministicLossError
from gradcheck.report.model import Report
from gradcheck.routes import with_notes

# A hand-written Hessian is reported as asymmetric when |H - H^T| exceeds this fraction of its
# largest entry: well above the rounding of a symmetric formula evaluated in two orders
# (a few ulps), well below any real asymmetry (a wrong or transposed block).
SYMMETRY_RTOL = 1e-8
# How many random vectors check_hvp uses by default (see the module docstring).
DEFAULT_VECTORS = 3


def check_jacobian(fun: Callable, jac: Callable, x: Any, **options: Any) -> Report:
    """Check a hand-written Jacobian ``jac(x)`` (shape ``(m, n)``) of a vector ``fun(x)``.

    Elements are named ``J[i, j] = d fun_i / d x_j`` (see the module docstring for the exact
    scalar that is checked). ``jac`` may return a ``scipy.sparse`` matrix; for a dict ``x`` it
    returns an ``(m, n)`` matrix over the dict's values in order, or a dict name -> ``(m, ...)``.
    ``**options`` are those of :func:`gradcheck.check`.
    """
    return _check_matrix(fun, jac, x, "J", "fun", "jac", options)


def check_hessian(grad: Callable, hess: Callable, x: Any, **options: Any) -> Report:
    """Check a hand-written Hessian ``hess(x)`` (``(n, n)``) against the gradient ``grad(x)``.

    Elements are named ``H[i, j] = d grad_i / d x_j``; a hand-written Hessian that is not
    symmetric is reported in ``report.notes`` (its largest asymmetry, where). ``grad`` returns
    a vector (a dict like ``x`` for a dict ``x``, taken in its order).
    """
    return _check_matrix(grad, hess, x, "H", "grad", "hess", options)


def check_hvp(
    grad: Callable,
    hvp: Callable,
    x: Any,
    *,
    vectors: int = DEFAULT_VECTORS,
    seed: int = 0,
    **options: Any,
) -> Report:
    """Check a Hessian-vector product ``hvp(x, v)`` (scipy's ``hessp``) against ``grad(x)``.

    For ``vectors`` seeded random ``v_k``, the derivative of ``sum_k v_k . grad(x)`` is compared
    with ``sum_k hvp(x, v_k)``, element by element (``Hv[j]``, or by ``x``'s names).
    """
    if not callable(grad) or not callable(hvp):
        raise InputError("grad and hvp must be callable as grad(x) and hvp(x, v)")
    if isinstance(vectors, bool) or not isinstance(vectors, (int, np.integer)) or vectors < 1:
        raise InputError(f"vectors must be a positive int, got {vectors!r}")
    point = _Point(x)
    rng = np.random.default_rng(seed)
    vs = [rng.standard_normal(point.size) for _ in range(int(vectors))]
    params = point.copies("Hv")
    _gradient_sized(
        point,
        _values(point, grad, point.unflat(point.flat), "grad"),
        "grad",
        "check_hvp(grad, hvp, x)",
    )

    def loss(view):
        g = point.vector(grad(point.user(view, "Hv")), "grad")
        return sum(np.dot(v.astype(g.dtype), g) for v in vs)

    def hand(view):
        at = point.user(view, "Hv")
        products = [point.vector(hvp(at, point.unflat(v)), "hvp") for v in vs]
        return point.split(functools.reduce(operator.add, products), "Hv")  # vectors >= 1

    report = check(loss, hand, params, seed=seed, **options)
    return with_notes(
        report,
        f"checked d/dx of sum_k v_k . grad(x) against sum_k hvp(x, v_k) for {len(vs)} random "
        f"v_k (seed {seed})",
        subject="Hessian-vector product",
    )


class _Point:
    """``x`` flat or named: its values, copies the check perturbs, and its layout as a vector."""

    def __init__(self, x: Any):
        if isinstance(x, Mapping):
            self.names = [str(n) for n in x]
            values = [_floats(v, f"x[{n!r}]") for n, v in x.items()]
            self.scalar = {n: not isinstance(v, np.ndarray) for n, v in x.items()}
        else:
            array = _floats(x, "x")
            if array.ndim != 1:
                raise InputError(
                    f"x has shape {array.shape}; pass a flat vector (x.ravel()) or a dict of "
                    "named arrays"
                )
            self.names = []
            values = [array]
            self.scalar = {}
        self.values = values
        self.sizes = [v.size for v in values]
        self.size = sum(self.sizes)
        self.flat = np.concatenate([v.reshape(-1) for v in values]).astype(np.float64)

    def label(self, symbol: str, k: int) -> str:
        return symbol if not self.names else f"{symbol}[{json.dumps(self.names[k])}]"

    def copies(self, symbol: str, rows: int | None = None) -> dict[str, np.ndarray]:
        """The check's parameters: ``x`` (or ``rows`` stacked copies of it), per name."""
        return {
            self.label(symbol, k): np.array(v, copy=True)
            if rows is None
            else np.tile(v.reshape(1, -1), (rows, 1)).reshape((rows, *v.shape))
            for k, v in enumerate(self.values)
        }

    def unflat(self, vector: np.ndarray) -> Any:
        """A flat vector in ``x``'s form (an array, or a dict name -> array or float)."""
        if not self.names:
            return vector.astype(self.values[0].dtype)
        out, start = {}, 0
        for name, v, n in zip(self.names, self.values, self.sizes, strict=True):
            part = vector[start : start + n].reshape(v.shape).astype(v.dtype)
            out[name] = float(part) if self.scalar[name] else part
            start += n
        return out

    def user(self, view: Mapping[str, Any], symbol: str, row: int | None = None) -> Any:
        """What the user's function gets: the check's copy (row ``row`` of the stacked copies)."""
        parts = [
            np.array(
                view[self.label(symbol, k)] if row is None else view[self.label(symbol, k)][row]
            )
            for k in range(len(self.values))
        ]
        if not self.names:
            return parts[0]
        return {
            n: float(p) if self.scalar[n] else p for n, p in zip(self.names, parts, strict=True)
        }

    def vector(self, value: Any, what: str) -> np.ndarray:
        """A function's value as a flat vector (a dict like ``x`` is taken in ``x``'s order)."""
        if self.names and isinstance(value, Mapping):
            missing = [n for n in self.names if n not in value]
            if missing:
                raise StructureError(f"{what} returned a dict without {missing[0]!r}")
            value = [np.reshape(value[n], -1) for n in self.names]
            value = np.concatenate(value) if value else np.zeros(0)
        out = np.asarray(value)
        if not np.issubdtype(out.dtype, np.floating):
            out = out.astype(np.float64)
        return out.reshape(-1)

    def split(self, matrix: np.ndarray, symbol: str) -> dict[str, np.ndarray]:
        """Columns of ``matrix`` (last axis over the flat ``x``) as the check's gradients."""
        if not self.names:
            return {symbol: matrix}
        if matrix.shape[-1] != self.size:
            raise StructureError(
                f"the hand-written matrix has {matrix.shape[-1]} columns; x has {self.size} "
                f"values ({', '.join(self.names)})"
            )
        out, start = {}, 0
        for k, (v, n) in enumerate(zip(self.values, self.sizes, strict=True)):
            block = matrix[..., start : start + n]
            out[self.label(symbol, k)] = block.reshape((*matrix.shape[:-1], *v.shape))
            start += n
        return out


def _floats(value: Any, what: str) -> np.ndarray:
    array = np.asarray(value)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise InputError(f"{what} has dtype {array.dtype}; expected float values")
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    return array


def _dense(matrix: Any) -> np.ndarray:
    if hasattr(matrix, "toarray"):  # scipy.sparse matrices and arrays
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=np.float64)


def _check_matrix(fun, jac, x, symbol: str, fun_name: str, jac_name: str, options) -> Report:
    if not callable(fun) or not callable(jac):
        raise InputError(f"{fun_name} and {jac_name} must be callable as {fun_name}(x)")
    point = _Point(x)
    base = point.user(point.copies(symbol), symbol)
    f0 = _values(point, fun, base, fun_name)
    again = _values(point, fun, point.user(point.copies(symbol), symbol), fun_name)
    if f0.tobytes() != again.tobytes():
        raise NondeterministicLossError(
            f"{fun_name}(x) returned different values on two calls at the same x; finite "
            "differences need a deterministic function"
        )
    if symbol == "H":
        _gradient_sized(point, f0, fun_name, "check_hessian(grad, hess, x)")
    rows = f0.size
    params = point.copies(symbol, rows)
    stacked_x = [np.tile(v.reshape(1, -1), (rows, 1)) for v in point.values]
    memo: dict[bytes, np.ndarray] = {}

    def loss(view):
        moved = np.zeros(rows, dtype=bool)
        for k in range(len(point.values)):
            current = np.asarray(view[point.label(symbol, k)]).reshape(rows, -1)
            moved |= (current != stacked_x[k]).any(axis=1)
        values = f0.copy()
        for i in np.flatnonzero(moved):
            at = point.user(view, symbol, row=int(i))
            key = b"".join(np.asarray(v).tobytes() for v in (at.values() if point.names else [at]))
            if key not in memo:
                memo[key] = _values(point, fun, at, fun_name)
            values[i] = memo[key][i]
        return values.sum()

    def hand(view):
        matrix = jac(point.user(point.copies(symbol), symbol))
        if point.names and isinstance(matrix, Mapping):
            missing = [n for n in point.names if n not in matrix]
            if missing:
                raise StructureError(f"{jac_name} returned a dict without {missing[0]!r}")
            return {point.label(symbol, k): _dense(matrix[n]) for k, n in enumerate(point.names)}
        matrix = _dense(matrix)
        if matrix.ndim != 2 or matrix.shape[0] != rows:
            if not point.names:
                return {symbol: matrix}  # the report shows the shape mismatch
            raise StructureError(
                f"{jac_name} returned shape {matrix.shape}; expected ({rows}, {point.size})"
            )
        return point.split(matrix, symbol)

    report = check(loss, hand, params, **options)
    notes = [
        f"checked {symbol}[i, j] = d {fun_name}_i / d x_j as the derivative of the scalar "
        f"sum_i {fun_name}_i(P[i]) over m = {rows} stacked copies P of x; "
        f"{fun_name} was called {len(memo) + 2} times"
    ]
    if symbol == "H":
        notes.append(_asymmetry(_dense(jac(point.user(point.copies(symbol), symbol))), symbol))
    return with_notes(report, *notes, subject="Jacobian" if symbol == "J" else "Hessian")


def _values(point: _Point, fun: Callable, at: Any, what: str) -> np.ndarray:
    try:
        value = fun(at)
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as exc:
        raise InputError(f"{what} raised {type(exc).__name__}: {exc}") from exc
    out = point.vector(value, what)
    with np.errstate(invalid="ignore"):
        if not np.isfinite(out).all():
            raise InputError(f"{what} returned non-finite values; expected finite values")
    return out


def _gradient_sized(point: _Point, g: np.ndarray, what: str, call: str) -> None:
    """Refuse a ``grad`` whose value is not one partial per element of ``x`` (the objective
    ``f`` passed in its place, typically: its scalar would be read as a 1-row Jacobian)."""
    if g.size != point.size:
        raise InputError(
            f"{what}(x) returned {g.size} value(s) for an x of {point.size}; {call} takes the "
            f"gradient {what}(x) (one partial per element of x), not the objective f(x)"
        )


def _asymmetry(hess: np.ndarray, symbol: str) -> str:
    """A note when the hand-written Hessian is not symmetric ("" when it is)."""
    if hess.ndim != 2 or hess.shape[0] != hess.shape[1]:
        return ""
    with np.errstate(invalid="ignore"):
        gap = np.abs(hess - hess.T)
        scale = float(np.nanmax(np.abs(hess))) if hess.size else 0.0
    if not gap.size or not np.nanmax(gap) > SYMMETRY_RTOL * scale:
        if np.isnan(gap).any():
            return "the hand-written Hessian has NaN entries; its symmetry cannot be judged"
        return ""
    i, j = np.unravel_index(int(np.nanargmax(gap)), gap.shape)
    count = int(np.count_nonzero(np.triu(gap > SYMMETRY_RTOL * scale, 1)))
    return (
        f"the hand-written Hessian is not symmetric: {symbol}[{i}, {j}] = {hess[i, j]:+.6g} but "
        f"{symbol}[{j}, {i}] = {hess[j, i]:+.6g} ({count} asymmetric pair(s)); a true Hessian "
        "of a smooth function is symmetric"
    )
