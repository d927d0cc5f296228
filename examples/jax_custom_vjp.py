"""JAX: a ``jax.custom_vjp`` with a hand-written ``bwd`` rule (needs the jax extra).

    pip install 'gradcheck[jax]'
    gradcheck check examples/jax_custom_vjp.py:make       # exit 1: dw is wrong
    python examples/jax_custom_vjp.py

The check runs in float64 (under ``jax.enable_x64``, the global setting untouched) on copies
of the inputs, and shows the same tables and diagnosis as for NumPy code.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

from gradcheck import check_problem
from gradcheck.adapters.jax import from_jax_function


def scaled_linear(bug):
    """out = (x @ w.T) * scale with its VJP written by hand; ``bug`` forgets the scale in dw."""

    @jax.custom_vjp
    def f(x, w, scale):
        return (x @ w.T) * scale

    def fwd(x, w, scale):
        return f(x, w, scale), (x, w, scale)

    def bwd(res, dout):
        x, w, scale = res
        dw = dout.T @ x if bug else (dout * scale).T @ x  # planted: the scale forgotten
        return (dout * scale) @ w, dw, jnp.sum(dout * (x @ w.T))

    f.defvjp(fwd, bwd)
    return f


def make(bug=True):
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(6, 4)), rng.normal(size=(3, 4))
    return from_jax_function(scaled_linear(bug), x, w, 3.0, names=["x", "w", "scale"])


if __name__ == "__main__":
    good = check_problem(make(bug=False))
    report = check_problem(make())
    print("correct bwd:", "passed" if good.passed else "FAILED")
    print(report)
    sys.exit(0 if good.passed and not report.passed else 1)
