"""The Jacobian handed to ``scipy.optimize.least_squares(jac=...)``, checked element by element.

Fitting ``y = a exp(-b t) + c`` to data: the residuals ``r_i = a exp(-b t_i) + c - y_i`` and
their Jacobian ``J[i, j] = d r_i / d x_j`` for ``x = (a, b, c)``. The planted bug drops the
minus sign of ``d r_i / d b`` (a classic slip on ``exp(-b t)``): ``check_jacobian`` names the
column ``J[i, 1]`` wrong in every row but the first (at ``t = 0`` that partial is 0 either way).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

import gradcheck

T = np.linspace(0.0, 3.0, 8)
Y = 2.0 * np.exp(-1.3 * T) + 0.5 + 0.01 * np.sin(7 * T)


def residuals(x):
    a, b, c = x
    return a * np.exp(-b * T) + c - Y


def jacobian(x):
    a, b, _ = x
    e = np.exp(-b * T)
    return np.column_stack([e, -a * T * e, np.ones_like(T)])


def jacobian_wrong(x):
    """Bug: d r / d b = +a t exp(-b t) (the sign of the inner derivative lost)."""
    J = jacobian(x)
    J[:, 1] = -J[:, 1]
    return J


def main() -> int:
    x0 = np.array([1.0, 1.0, 0.0])
    right = gradcheck.check_jacobian(residuals, jacobian, x0)
    wrong = gradcheck.check_jacobian(residuals, jacobian_wrong, x0)
    wrong_elements = sorted({e.index for e in wrong.entries if e.status == "wrong"})
    print("correct jac:", "passed" if right.passed else "FAILED")
    print("jac with the sign of d/db lost, wrong elements:", wrong_elements)
    fit = least_squares(residuals, x0, jac=jacobian)
    print("least_squares with the checked jac: x =", np.round(fit.x, 3))
    ok = right.passed and wrong_elements == [(i, 1) for i in range(1, T.size)]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
