"""The ``jac``, ``hess`` and ``hessp`` handed to ``minimize(method="trust-ncg")``, checked.

The Rosenbrock function with hand-written gradient, Hessian and Hessian-vector product.
``check_hessian(grad, hess, x)`` checks every ``H[i, j]`` against the gradient and reports an
asymmetric Hessian; ``check_hvp(grad, hessp, x)`` checks the product for random vectors. The
planted bug gives the upper off-diagonal term ``H[0, 1]`` the factor ``-100 x0`` instead of
``-400 x0``, which makes the Hessian asymmetric too (reported in the notes); the same slip in
``hessp`` is caught at ``Hv[0]``.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

import gradcheck


def rosen(x):
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def rosen_grad(x):
    g = np.zeros_like(x)
    g[:-1] = -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2.0 * (1 - x[:-1])
    g[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    return g


def rosen_hess(x, bug=False):
    n = x.size
    H = np.zeros((n, n))
    for i in range(n - 1):
        H[i, i] += 1200.0 * x[i] ** 2 - 400.0 * x[i + 1] + 2.0
        H[i + 1, i + 1] += 200.0
        H[i, i + 1] = (-100.0 if bug and i == 0 else -400.0) * x[i]
        H[i + 1, i] = -400.0 * x[i]
    return H


def rosen_hessp(x, p, bug=False):
    return rosen_hess(x, bug) @ p


def main() -> int:
    x0 = np.array([-1.2, 1.0, 0.8])
    right = gradcheck.check_hessian(rosen_grad, rosen_hess, x0)
    wrong = gradcheck.check_hessian(rosen_grad, lambda x: rosen_hess(x, bug=True), x0)
    print("correct hess:", "passed" if right.passed else "FAILED")
    print("hess with H[0, 1] off:", [e.index for e in wrong.entries if e.status == "wrong"])
    print(*wrong.notes[:1])
    right_p = gradcheck.check_hvp(rosen_grad, rosen_hessp, x0)
    wrong_p = gradcheck.check_hvp(rosen_grad, lambda x, p: rosen_hessp(x, p, bug=True), x0)
    print("correct hessp:", "passed" if right_p.passed else "FAILED")
    print("hessp with H[0, 1] off:", [e.index for e in wrong_p.entries if e.status == "wrong"])
    fit = minimize(rosen, x0, jac=rosen_grad, hess=rosen_hess, method="trust-ncg")
    print("trust-ncg with the checked hess: x =", np.round(fit.x, 4))
    ok = right.passed and right_p.passed and not wrong_p.passed
    ok = ok and [e.index for e in wrong.entries if e.status == "wrong"] == [(0, 1)]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
