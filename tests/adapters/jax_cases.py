"""JAX adapter cases, run by tests/adapters/test_jax.py in a separate process.

JAX starts threads when imported, and a process that has imported it must not fork (the
process-pool tests of the executor do): so these cases never run inside the main test process.
"""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import check_problem

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from gradcheck.adapters.jax import from_jax_function  # noqa: E402


def softplus_layer(bug=None):
    """out = softplus(x @ w + b) with a hand-written VJP; ``bug`` plants one mistake."""

    @jax.custom_vjp
    def layer(x, w, b):
        return jnp.logaddexp(0.0, x @ w + b)

    def fwd(x, w, b):
        z = x @ w + b
        return jnp.logaddexp(0.0, z), (x, w, z)

    def bwd(res, dout):
        x, w, z = res
        dz = dout * jax.nn.sigmoid(z)
        dw = x.T @ dz
        if bug == "dw_row":
            dw = dw.at[1].multiply(2.0)
        db = dz.sum(0) if bug != "db_mean" else dz.mean(0)
        return dz @ w.T, dw, db

    layer.defvjp(fwd, bwd)
    return layer


def _inputs():
    rng = np.random.default_rng(0)
    return rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)


def _wrong(report):
    return sorted((e.param, e.index) for e in report.entries if e.status == "wrong")


def test_correct_rule_passes_in_float64_and_leaves_global_config_alone():
    x, w, b = _inputs()
    before = jax.config.jax_enable_x64
    report = check_problem(from_jax_function(softplus_layer(), x, w, b, names=["x", "w", "b"]))
    assert report.passed, report.to_text()
    assert {p.dtype for p in report.params} == {"float64"}
    assert jax.config.jax_enable_x64 == before


def test_planted_bugs_are_pinned_to_their_elements():
    x, w, b = _inputs()
    report = check_problem(from_jax_function(softplus_layer("dw_row"), x, w, b))
    assert _wrong(report) == [("x1", (1, 0)), ("x1", (1, 1))]
    report = check_problem(from_jax_function(softplus_layer("db_mean"), x, w, b))
    assert _wrong(report) == [("x2", (0,)), ("x2", (1,))]
    assert "true = 4 x hand-written" in report.to_text()


def test_inputs_are_not_modified_and_non_floats_pass_through():
    @jax.custom_vjp
    def scaled(x, k):
        return x * k

    scaled.defvjp(lambda x, k: (x * k, k), lambda k, d: (d * k, None))
    x = np.array([1.0, -2.0])
    saved = x.copy()
    report = check_problem(from_jax_function(scaled, x, 3))
    assert report.passed, report.to_text()
    assert [p.name for p in report.params] == ["x0"]
    assert x.tobytes() == saved.tobytes()
