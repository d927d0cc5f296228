"""Losses that break a finite-difference error model built on assumptions (issue 11).

Each case is a correct loss/gradient pair whose numbers are hard for a checker: noise far
above a few ulps (cancellation inside the loss), parameters and curvature on scales far from 1,
losses of extreme magnitude, a third derivative near float64's largest number, mixed
precisions. The gradient of every case is correct to the
precision its own arithmetic allows (closed forms, evaluated in extended precision where the
float64 formula itself cancels), so any failure on them is a false alarm of the checker.

``CASES`` maps a name to a builder ``() -> Case``; ``exact`` is the true gradient (float64).
``plant(case, relative, fraction)`` makes a wrong gradient: every element of the first tensor
whose exact partial is at least ``fraction`` of that tensor's largest is scaled by ``1 +
relative`` -- the smallest wrong partials a check promises to catch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from nets.tanh_mlp import TanhMLP


class Case(NamedTuple):
    name: str
    loss: Callable[[dict[str, Any]], Any]
    grad: Callable[[dict[str, Any]], dict[str, np.ndarray]]
    params: dict[str, np.ndarray]
    exact: dict[str, np.ndarray]  # the true gradient at params, float64
    float64: bool  # parameters and loss both float64: the detection target applies


def _case(name, loss, grad, params, exact=None, float64=True) -> Case:
    exact = grad(params) if exact is None else exact
    exact = {k: np.asarray(v, dtype=np.float64) for k, v in exact.items()}
    return Case(name, loss, grad, params, exact, float64)


# -- ill-conditioned least squares: residuals ~1e-4 under terms of the parameters' size ------
def least_squares(scale: float, seed: int = 0) -> Case:
    """``L = |A x - y|**2 / 2``, ``A`` 12x6 with condition number 1e6, ``x ~ scale``, residuals
    ~1e-4: the loss (~1e-8) is the difference of terms ~``scale``, so its noise is millions of
    ulps of ``|L|`` at ``scale = 1e4``. The gradient ``A^T (A x - y)`` is evaluated in extended
    precision (the float64 residual would itself cancel)."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((12, 6)))
    v, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    a = u @ np.diag(np.logspace(0, -6, 6)) @ v.T
    x = scale * rng.standard_normal(6)
    y = a @ x + 1e-4 * rng.standard_normal(12)
    along = a.astype(np.longdouble)

    def loss(p):
        r = a @ p["x"] - y
        return float(0.5 * (r @ r))

    def grad(p):
        r = along @ p["x"].astype(np.longdouble) - y.astype(np.longdouble)
        return {"x": (along.T @ r).astype(np.float64)}

    return _case(f"least squares x~{scale:g}", loss, grad, {"x": x})


# -- scaled losses ----------------------------------------------------------------------------
def scaled_mlp(factor: float) -> Case:
    """A small tanh MLP's loss times ``factor`` (1e-12, 1e12): nothing about it is different
    but the unit, so nothing about the verdict may be."""
    net = TanhMLP(sizes=(6, 10, 3), batch=8, seed=1)

    def loss(p):
        return factor * net.loss(p)

    def grad(p):
        return {k: factor * v for k, v in net.grad(p).items()}

    return _case(f"tanh MLP loss x {factor:g}", loss, grad, net.params())


# -- parameters ~1e-5 whose loss varies on that scale -----------------------------------------
def tiny_log(scale: float = 1e-5, seed: int = 2) -> Case:
    """``L = sum(log(a**2 + c))``, ``a ~ scale``, ``c = scale**2``: curvature on the scale of
    ``a`` itself, where a step of ``eps**(1/3)`` is ~100 times too large."""
    rng = np.random.default_rng(seed)
    c = scale**2
    a = scale * rng.standard_normal(8)

    def loss(p):
        return float(np.sum(np.log(p["a"] ** 2 + c)))

    def grad(p):
        return {"a": 2 * p["a"] / (p["a"] ** 2 + c)}

    return _case(f"log(a^2 + {c:g}), a~{scale:g}", loss, grad, {"a": a})


def tiny_exp(scale: float = 1e-4, seed: int = 3) -> Case:
    """``L = sum(exp(b / scale))``, ``b ~ scale / 10``: a partial of ~1e4 that changes by
    ``e`` over a step of ``scale``."""
    rng = np.random.default_rng(seed)
    b = 0.1 * scale * rng.standard_normal(8)

    def loss(p):
        return float(np.sum(np.exp(p["b"] / scale)))

    def grad(p):
        return {"b": np.exp(p["b"] / scale) / scale}

    return _case(f"exp(b / {scale:g})", loss, grad, {"b": b})


# -- curvature near float64's largest number ---------------------------------------------------
def huge_third(third: float = 1e308, seed: int = 9) -> Case:
    """``L = sum(third * x**3 / 6)``, ``x ~ 0.5``: a third derivative of ``third`` (1e308, 56%
    of float64's largest), a loss ~1e307 and partials ~1e307. Any safety margin on ``|f'''|``
    leaves float64's range; the check must still measure it (or refuse it with a reason),
    never pass or fail it on an overflow."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.3, 0.7, 6) * rng.choice([-1.0, 1.0], 6)

    def loss(p):
        return float(np.sum((third / 6.0) * p["x"] ** 3))

    def grad(p):
        return {"x": (third / 2.0) * p["x"] ** 2}

    return _case(f"x^3 f''' = {third:g}", loss, grad, {"x": x})


def sine_on_a_tiny_scale(k: float = 1e102, amplitude: float = 10.0, seed: int = 10) -> Case:
    """``L = amplitude * sum(sin(k x))``, ``x ~ 1 / k``: the same third derivative near
    float64's largest (``amplitude k**3 = 1e307``) reached through a scale of 1e-102 instead of
    a huge amplitude. A pilot ladder that starts at ``eps**(1/5)`` walks 100 decades down to it."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 2.0, 4) / k

    def loss(p):
        return float(amplitude * np.sum(np.sin(k * p["x"])))

    def grad(p):
        return {"x": amplitude * k * np.cos(k * p["x"])}

    return _case(f"{amplitude:g} sin({k:g} x), x~{1 / k:g}", loss, grad, {"x": x})


# -- mixed precisions -------------------------------------------------------------------------
def float32_loss() -> Case:
    """float64 parameters, a loss computed and returned in float32 (data and arithmetic); the
    gradient is the exact float64 one of the same net (finer than the loss)."""
    net = TanhMLP(sizes=(6, 10, 3), batch=8, seed=4, dtype=np.float32)
    exact = TanhMLP(sizes=(6, 10, 3), batch=8, seed=4)
    exact.x, exact.y = net.x.astype(np.float64), net.y.astype(np.float64)
    params = {k: v.astype(np.float64) for k, v in net.params().items()}

    def loss(p):
        return net.loss({k: v.astype(np.float32) for k, v in p.items()})

    return _case("float32 loss of float64 parameters", loss, exact.grad, params, float64=False)


def float32_cast_inside() -> Case:
    """float64 parameters that the loss rounds to float32 before computing in float64: a
    staircase in each parameter (steps of a float32 ulp), not noise in the loss values."""
    net = TanhMLP(sizes=(6, 10, 3), batch=8, seed=4)

    def loss(p):
        return net.loss({k: v.astype(np.float32).astype(np.float64) for k, v in p.items()})

    name = "float64 loss of float32-rounded parameters"
    return _case(name, loss, net.grad, net.params(), float64=False)


def float32_params() -> Case:
    """float32 parameters, a loss computed in float64 from them, the float64 gradient."""
    net = TanhMLP(sizes=(6, 10, 3), batch=8, seed=5)
    params = {k: v.astype(np.float32) for k, v in net.params().items()}

    def loss(p):
        return net.loss({k: v.astype(np.float64) for k, v in p.items()})

    def grad(p):
        return net.grad({k: v.astype(np.float64) for k, v in p.items()})

    return _case("float64 loss of float32 parameters", loss, grad, params, float64=False)


# -- cancellation inside the loss --------------------------------------------------------------
SHIFT = 1e4


def cancelling_penalty(seed: int = 6) -> Case:
    """``L = sum(x**2) / 2`` computed as ``(sum((x + K)**2) - 2 K sum(x) - n K**2) / 2`` with
    ``K = 1e4``: the value is ~1, its noise ~1e-8 (1e8 ulps), a quadratic with no kink."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(16)

    def loss(p):
        w = p["x"]
        return float(0.5 * (np.sum((w + SHIFT) ** 2) - 2 * SHIFT * np.sum(w) - w.size * SHIFT**2))

    def grad(p):
        return {"x": p["x"].copy()}

    return _case("quadratic with cancellation (K = 1e4)", loss, grad, {"x": x})


def cancelling_to_zero(n: int = 2000, scale: float = 1e4) -> Case:
    """``L = K sum(sin(w))``, ``K = 1e4``, ``w`` spread evenly over [-1, 1]: the terms (up to
    ~8e3) cancel to a value of ~1e-9 that is all rounding (~5e-10, the partial sums' ulps).
    Over any spacing the values vary by far more than their size, which More and Wild's 10%
    test takes for a spacing too large: every noise table was refused, and 60% of the
    elements failed against ulps of 1e-9."""
    w = np.linspace(-1.0, 1.0, n)

    def loss(p):
        return float(scale * np.sum(np.sin(p["w"])))

    def grad(p):
        return {"w": scale * np.cos(p["w"])}

    return _case(f"{scale:g} sum(sin(w)), cancelling to ~1e-9", loss, grad, {"w": w})


def quiet_beside_cancelling(quiet: int = 5, cancelling: int = 900) -> Case:
    """``L = sum(a**2) + 1e4 sum(sin(v))``, ``a`` first: ``v``'s sum cancels to ~1e-9 and
    carries ~1e-10 of rounding whenever ``v`` moves, ``a``'s moves leave it as it was. A noise
    table along ``a`` alone measured ~1e-16 for both, and 30% of ``v``'s correct elements
    failed; at ``quiet = 1200, cancelling = 2000`` (a pilot each) ``v`` reused ``a``'s noise."""
    a = np.linspace(0.1, 0.9, quiet)
    v = np.linspace(-1.0, 1.0, cancelling)

    def loss(p):
        return float(np.sum(p["a"] ** 2)) + SHIFT * float(np.sum(np.sin(p["v"])))

    def grad(p):
        return {"a": 2 * p["a"], "v": SHIFT * np.cos(p["v"])}

    return _case(
        f"sum(a^2) + 1e4 sum(sin(v)), {quiet} + {cancelling}", loss, grad, {"a": a, "v": v}
    )


def mlp_with_cancelling_penalty() -> Case:
    """A tanh MLP's loss plus ``1e-3 |W1|**2`` computed with the same cancellation."""
    net = TanhMLP(sizes=(6, 10, 3), batch=8, seed=7)

    def penalty(w):
        return np.sum((w + SHIFT) ** 2) - 2 * SHIFT * np.sum(w) - w.size * SHIFT**2

    def loss(p):
        return float(net.loss(p) + 1e-3 * penalty(p["W1"]))

    def grad(p):
        g = net.grad(p)
        g["W1"] = g["W1"] + 2e-3 * p["W1"]
        return g

    return _case("tanh MLP + cancelling penalty", loss, grad, net.params())


# -- a big tensor: small partials inside ------------------------------------------------------
def big_mlp(sizes: tuple[int, ...] = (100, 160, 25), batch: int = 32) -> Case:
    """A tanh MLP of about 20,000 parameters (W1 has 16,000): the small partials of a big
    tensor, where a tensor-wide curvature bound is far too pessimistic."""
    net = TanhMLP(sizes=sizes, batch=batch, seed=8)
    return _case(f"tanh MLP {sizes}", net.loss, net.grad, net.params())


CASES: dict[str, Callable[[], Case]] = {
    "least-squares-1": lambda: least_squares(1.0),
    "least-squares-1e4": lambda: least_squares(1e4),
    "least-squares-1e8": lambda: least_squares(1e8),
    "scaled-1e-12": lambda: scaled_mlp(1e-12),
    "scaled-1e12": lambda: scaled_mlp(1e12),
    "tiny-log-1e-5": lambda: tiny_log(1e-5),
    "tiny-log-1e-6": lambda: tiny_log(1e-6),
    "tiny-exp-1e-4": lambda: tiny_exp(1e-4),
    "huge-third-1e308": huge_third,
    "huge-third-tiny-scale": sine_on_a_tiny_scale,
    "float32-loss": float32_loss,
    "float32-params": float32_params,
    "float32-cast-inside": float32_cast_inside,
    "cancelling-quadratic": cancelling_penalty,
    "cancelling-to-zero": cancelling_to_zero,
    "quiet-beside-cancelling": quiet_beside_cancelling,
    "quiet-beside-cancelling-big": lambda: quiet_beside_cancelling(1200, 2000),
    "mlp-cancelling-penalty": mlp_with_cancelling_penalty,
}


def plant(
    case: Case, relative: float, fraction: float, name: str | None = None
) -> tuple[Callable[[dict[str, Any]], dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """A gradient wrong by ``relative`` on every element of tensor ``name`` (the first by
    default) whose exact partial is at least ``fraction`` of the tensor's largest; returns it
    and the flat indices planted, per tensor."""
    name = name or next(iter(case.params))
    exact = np.abs(case.exact[name].reshape(-1))
    where = np.flatnonzero(exact >= fraction * exact.max())

    def grad(p):
        g = {k: np.array(v, dtype=np.float64, copy=True) for k, v in case.grad(p).items()}
        flat = g[name].reshape(-1)
        flat[where] *= 1.0 + relative
        return g

    return grad, {name: where}
