"""A vectorised tanh MLP of any size with hand-written backprop: the scale test bed.

``sizes = (D, H1, ..., K)``: ``h = tanh(h @ W.T + b)`` for every hidden layer, then a linear
output and ``L = sum((out - y)**2) / (2 N)``. Parameters ``W1, b1, ..., Wn, bn`` (``Wl`` is
``(out, in)``). The net is a plain picklable object and its ``loss`` and ``grad`` are bound
methods, so both travel to worker processes.

Planted bugs (``bug=``), one line each:
    "tanh_derivative"   the first hidden layer backpropagates through 1 - h instead of
                        1 - h**2: every element of W1 and b1 is wrong.

``wrong_elements(grad, {name: {flat_index: delta}})`` shifts single hand-written partials, the
way an indexing slip does: exactly those elements are wrong, by ``delta``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from .recommended import dense_backward, dense_forward

BUGS = ("tanh_derivative",)


def tanh_forward(z):
    """t = tanh(z); the cache is t itself."""
    t = np.tanh(z)
    return t, t


def tanh_backward(dout, t):
    """dz = dout * (1 - t**2)."""
    return dout * (1.0 - t * t)


class Layer(NamedTuple):
    dense: Any
    tanh: Any


class TanhMLP:
    """Tanh MLP with MSE on seeded random data; ``loss(params)``, ``grad(params)``."""

    def __init__(
        self,
        sizes=(10, 32, 16, 5),
        batch: int = 32,
        seed: int = 0,
        dtype=np.float64,
        bug: str | None = None,
        zero_inputs: int = 0,
    ):
        """``zero_inputs`` zeroes that many input features, so the first-layer weights that
        read them have partials exactly 0 (the loss does not depend on them)."""
        if bug is not None and bug not in BUGS:
            raise ValueError(f"bug must be one of {BUGS} or None, got {bug!r}")
        rng = np.random.default_rng(seed)
        self.sizes = tuple(int(s) for s in sizes)
        self.bug = bug
        self.x = rng.standard_normal((batch, self.sizes[0])).astype(dtype)
        self.x[:, :zero_inputs] = 0
        self.y = rng.standard_normal((batch, self.sizes[-1])).astype(dtype)
        self.start = {}
        for layer, (fan_in, fan_out) in enumerate(
            zip(self.sizes[:-1], self.sizes[1:], strict=True), start=1
        ):
            self.start[f"W{layer}"] = (
                rng.standard_normal((fan_out, fan_in)) / np.sqrt(fan_in)
            ).astype(dtype)
            self.start[f"b{layer}"] = (0.1 * rng.standard_normal(fan_out)).astype(dtype)

    @property
    def depth(self) -> int:
        return len(self.sizes) - 1

    def params(self) -> dict[str, np.ndarray]:
        """A fresh copy of the starting parameters."""
        return {k: v.copy() for k, v in self.start.items()}

    @property
    def size(self) -> int:
        return sum(v.size for v in self.start.values())

    def forward(self, params: Mapping[str, np.ndarray]):
        h, caches = self.x, []
        for layer in range(1, self.depth + 1):
            z, dense = dense_forward(h, params[f"W{layer}"], params[f"b{layer}"])
            if layer < self.depth:
                h, tanh = tanh_forward(z)
            else:
                h, tanh = z, None
            caches.append(Layer(dense, tanh))
        diff = h - self.y
        return (diff * diff).sum() / (2 * self.x.shape[0]), diff, caches

    def loss(self, params: Mapping[str, np.ndarray]):
        """L = sum((out - y)**2) / (2 N), in the parameters' dtype."""
        return self.forward(params)[0]

    def grad(self, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """dL/dout = (out - y) / N, then dense and tanh backwards layer by layer."""
        _, diff, caches = self.forward(params)
        dout = diff / self.x.shape[0]
        grads = {}
        for layer in range(self.depth, 0, -1):
            cache = caches[layer - 1]
            if cache.tanh is not None:
                t = cache.tanh
                dout = (
                    dout * (1.0 - t)
                    if self.bug == "tanh_derivative" and layer == 1
                    else tanh_backward(dout, t)
                )
            dout, grads[f"W{layer}"], grads[f"b{layer}"] = dense_backward(dout, cache.dense)
        return grads


class WrongElements:
    """A gradient function whose listed elements are off by the given amounts (picklable)."""

    def __init__(self, grad, shifts: Mapping[str, Mapping[int, float]]):
        self.grad = grad
        self.shifts = {k: dict(v) for k, v in shifts.items()}

    def __call__(self, params):
        grads = dict(self.grad(params))
        for name, shifts in self.shifts.items():
            wrong = np.array(grads[name])  # a copy, also of a scalar partial
            for index, delta in shifts.items():
                wrong.reshape(-1)[index] += delta
            grads[name] = wrong
        return grads


def wrong_elements(grad, shifts: Mapping[str, Mapping[int, float]]) -> WrongElements:
    """``grad`` with ``shifts[name][flat_index]`` added to those hand-written partials."""
    return WrongElements(grad, shifts)
