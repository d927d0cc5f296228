"""check_jacobian, check_hessian, check_hvp: per-element verdicts named J[i, j], H[i, j], Hv[j]."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from gradcheck import (
    InputError,
    NondeterministicLossError,
    check_hessian,
    check_hvp,
    check_jacobian,
)
from gradcheck.core.differences import PILOT_ELEMENTS, PILOT_EVALUATIONS

A = np.array([[1.0, 0.5, -0.3], [0.2, -1.0, 0.8], [0.4, 0.1, 1.5], [-0.7, 0.3, 0.2]])
X = np.array([0.3, -0.6, 0.9])


def fun(x):
    return np.sin(A @ x)


def jac(x):
    return np.cos(A @ x)[:, None] * A


def _wrong(report):
    return sorted((e.param, e.index) for e in report.entries if e.status == "wrong")


def test_jacobian_correct_passes_user_x_untouched_and_fun_called_about_2n_times():
    x = X.copy()
    calls = []
    report = check_jacobian(lambda v: calls.append(1) or fun(v), jac, x)
    assert report.passed, report.to_text()
    assert x.tobytes() == X.tobytes()
    assert [(p.name, p.shape) for p in report.params] == [("J", (4, 3))]
    # shared steps reuse calls across rows: about 2n plus the pilot's (noise table and step
    # ladder, a few dozen whatever the size), not 2 m n
    tall = np.tile(A, (20, 1))
    calls.clear()
    report = check_jacobian(
        lambda v: calls.append(1) or np.sin(tall @ v),
        lambda v: np.cos(tall @ v)[:, None] * tall,
        x,
    )
    assert report.passed
    assert len(calls) < 4 * X.size + 10 + PILOT_EVALUATIONS * PILOT_ELEMENTS < tall.size


def test_jacobian_planted_element_pinned_and_sparse_accepted():
    def wrong(x):
        J = jac(x)
        J[2, 1] *= 2
        return sp.csr_matrix(J)

    report = check_jacobian(fun, wrong, X)
    assert _wrong(report) == [("J", (2, 1))]
    assert "J[2, 1]" in report.to_text()


def test_transposed_square_jacobian_is_named_as_such():
    B = A[:3]
    report = check_jacobian(lambda x: B @ x + x**3, lambda x: (B + np.diag(3 * x**2)).T, X)
    assert {i != j for _, (i, j) in _wrong(report)} == {True}
    assert "J: the hand-written gradient is the transpose of the true one" in report.to_text()


def test_named_x_with_matrix_or_dict_jacobian():
    named = {"a": X[:2].copy(), "c": float(X[2])}

    def f(d):
        return fun(np.r_[d["a"], d["c"]])

    def wrong_matrix(d):
        J = jac(np.r_[d["a"], d["c"]])
        J[1, 2] += 1.0
        return J

    report = check_jacobian(f, wrong_matrix, named)
    assert _wrong(report) == [('J["c"]', (1,))]

    def as_dict(d):
        J = jac(np.r_[d["a"], d["c"]])
        return {"a": J[:, :2], "c": J[:, 2]}

    assert check_jacobian(f, as_dict, named).passed


def test_jacobian_refuses_nondeterministic_fun_and_matrix_x():
    rng = np.random.default_rng(0)
    with pytest.raises(NondeterministicLossError):
        check_jacobian(lambda x: fun(x) + rng.normal(size=4) * 1e-9, jac, X)
    with pytest.raises(InputError, match="pass a flat vector"):
        check_jacobian(fun, jac, np.ones((2, 2)))


def grad(x):  # of f(x) = sum(cos(A x)) + 0.5 |x|^2
    return -A.T @ np.sin(A @ x) + x


def hess(x):
    return -A.T @ (np.cos(A @ x)[:, None] * A) + np.eye(3)


def test_hessian_correct_passes_without_a_symmetry_note():
    report = check_hessian(grad, hess, X)
    assert report.passed, report.to_text()
    assert not any("symmetric" in n for n in report.notes)


def test_asymmetric_hessian_pinned_and_reported():
    def wrong(x):
        H = hess(x)
        H[0, 2] += 0.25
        return H

    report = check_hessian(grad, wrong, X)
    assert _wrong(report) == [("H", (0, 2))]
    assert any("not symmetric: H[0, 2]" in n and "H[2, 0]" in n for n in report.notes)


def test_hvp_correct_passes_and_wrong_product_pinned():
    assert check_hvp(grad, lambda x, v: hess(x) @ v, X).passed

    def wrong(x, v):
        Hv = hess(x) @ v
        Hv[1] *= 1.5
        return Hv

    assert _wrong(check_hvp(grad, wrong, X)) == [("Hv", (1,))]


def test_hvp_with_named_x():
    named = {"u": X[:2].copy(), "z": float(X[2])}

    def g(d):
        out = grad(np.r_[d["u"], d["z"]])
        return {"u": out[:2], "z": out[2]}

    def hvp(d, v):
        Hv = hess(np.r_[d["u"], d["z"]]) @ np.r_[v["u"], v["z"]]
        return {"u": Hv[:2], "z": Hv[2] * 0.5}  # bug on z

    assert _wrong(check_hvp(g, hvp, named)) == [('Hv["z"]', ())]


# QA: check_hessian(f, hess, x) with the objective f in grad's place read f's scalar as a 1-row
# Jacobian ("H has shape (1, 3) ... no simple relation"); check_hvp failed on an array loss.
@pytest.mark.parametrize(
    "call",
    [
        lambda f: check_hessian(f, hess, X),
        lambda f: check_hvp(f, lambda x, v: hess(x) @ v, X),
    ],
    ids=["hessian", "hvp"],
)
def test_the_objective_in_place_of_the_gradient_is_refused(call):
    def objective(x):
        return float(np.sum(np.cos(A @ x)))

    refused = r"grad\(x\) returned 1 value\(s\) for an x of 3; .*not the objective"
    with pytest.raises(InputError, match=refused):
        call(objective)


def test_a_jacobian_report_speaks_of_the_checked_scalar_not_of_training():
    def fun(x):
        return np.array([x[0] ** 2, x[0] * x[1]])

    def jac(x):
        return np.array([[2 * x[0], 0.0], [x[1], 2 * x[0]]])  # J[1, 1] should be x[0]

    report = check_jacobian(fun, jac, np.array([1.0, 2.0]))
    assert report.failed_params == ["J"]
    assert report.subject == "Jacobian"
    text = report.to_text()
    assert "Jacobian checked through a scalar" in text.splitlines()[0]
    assert "cosine" not in text
    assert "lowers the loss" not in text
    data = json.loads(report.to_json())
    assert (data["subject"], data["cosine"], data["descent"]) == ("Jacobian", None, None)
