"""A smooth loss of any parameters, with its exact gradient, for the robustness tests.

``loss(params) = sum over parameters and elements of sin(x) + x**2 / 2``, so the partial of
every element is ``cos(x) + x``: never zero near the test points, different per element, and
cheap to evaluate whatever the parameters' shapes, dtypes and layouts.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def loss(params: dict[str, Any]) -> float:
    """sum_k sum_i sin(x_ki) + x_ki**2 / 2, computed in float64."""
    total = 0.0
    for value in params.values():
        x = np.asarray(value, dtype=np.float64)
        total += float(np.sum(np.sin(x) + 0.5 * x * x))
    return total


def grad(params: dict[str, Any]) -> dict[str, np.ndarray]:
    """dL/dx = cos(x) + x, one array per parameter, shaped like it."""
    return {
        name: np.cos(np.asarray(v, dtype=np.float64)) + np.asarray(v, dtype=np.float64)
        for name, v in params.items()
    }


def planted(name: str, index: tuple[int, ...], delta: float = 0.1):
    """The gradient with ``delta`` added at ``params[name][index]``: one wrong partial."""

    def wrong(params: dict[str, Any]) -> dict[str, np.ndarray]:
        out = grad(params)
        out[name] = np.array(out[name], copy=True)
        out[name][index] += delta
        return out

    return wrong
