"""One long vector, ``L = mean(c * tanh(w)) + mean(w**2) / 2``: the memory-lean scale test bed.

The loss runs over blocks and the gradient is built in place, so neither allocates anything of
the vector's size beyond the gradient it returns: a tracemalloc peak taken around a check of it
measures the check, not the net. ``dtype`` sets the parameter's and the coefficients' precision
(float32 for the half-size memory rows).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class TanhVector:
    """``L = mean(c * tanh(w)) + mean(w**2) / 2`` over one tensor ``w`` of ``size`` elements."""

    BLOCK = 1 << 16  # elements per block of the loss: its only temporaries

    def __init__(self, size: int, dtype: Any = np.float64, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.c = rng.standard_normal(size).astype(dtype)
        self.start = {"w": (rng.standard_normal(size) * 0.5).astype(dtype)}

    def params(self) -> dict[str, Any]:
        """A fresh copy of the starting parameters."""
        return {k: v.copy() for k, v in self.start.items()}

    def loss(self, params: dict[str, Any]) -> float:
        w = params["w"]
        total = 0.0
        for i in range(0, w.size, self.BLOCK):
            piece = w[i : i + self.BLOCK]
            total += float(self.c[i : i + self.BLOCK] @ np.tanh(piece) + 0.5 * (piece @ piece))
        return total / w.size

    def grad(self, params: dict[str, Any]) -> dict[str, Any]:
        w = params["w"]
        out = np.tanh(w)
        out *= out
        np.subtract(1, out, out=out)
        out *= self.c
        out += w
        out /= w.size
        return {"w": out}
