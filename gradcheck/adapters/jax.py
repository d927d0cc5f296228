"""JAX adapter (extra ``jax``): a hand-written ``jax.custom_vjp`` rule, checked element by element.

:func:`from_jax_function` takes a function whose derivative is a hand-written rule (a
``jax.custom_vjp`` with its ``fwd``/``bwd`` pair, or any JAX function whose VJP is in question)
and returns a :class:`~gradcheck.protocol.Problem`: the loss is a fixed random projection of
its outputs, ``sum_i <r_i, out_i>``, and the hand-written gradient is ``jax.vjp``'s pullback of
``r`` (which runs the ``bwd`` rule); the loss is compiled once with ``jax.jit``. Every call
runs under ``jax.enable_x64(True)``, so the check is in float64 without changing the user's
global JAX configuration; the parameters are float64 NumPy copies of the inputs (the user's
arrays are never modified). Importing this module does not import JAX; calling it does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gradcheck.errors import InputError
from gradcheck.protocol import Problem


def _jax():
    try:
        import jax
    except ImportError as exc:
        raise InputError("the JAX adapter needs jax: pip install 'gradcheck[jax]'") from exc
    return jax


def _is_float(value: Any) -> bool:
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return isinstance(value, float)
    return np.issubdtype(np.dtype(dtype), np.floating)


def from_jax_function(
    function: Callable[..., Any],
    *inputs: Any,
    names: Sequence[str] | None = None,
    seed: int = 0,
    name: str | None = None,
) -> Problem:
    """Check the VJP rule of ``function`` (a ``jax.custom_vjp``) against finite differences.

    Args:
        function: ``function(*inputs)`` returning an array or a tuple of arrays.
        inputs: its arguments. Float arrays and floats (NumPy or JAX) are checked, as float64
            copies; anything else (ints, flags, integer arrays) is passed through unchanged.
        names: names for the checked inputs (default ``x0``, ``x1``, ...).
        seed: seeds the random projection of the outputs that defines the loss.
    """
    jax = _jax()
    if not callable(function):
        raise InputError(f"function must be callable, got {type(function).__name__}")
    slots = [i for i, x in enumerate(inputs) if _is_float(x)]
    if not slots:
        raise InputError("none of the inputs is a float array or a float; nothing to check")
    labels = list(names) if names is not None else [f"x{k}" for k in range(len(slots))]
    if len(labels) != len(slots):
        raise InputError(f"names has {len(labels)} entries for {len(slots)} float inputs")
    arrays = {
        label: np.array(inputs[i], dtype=np.float64, copy=True)
        for label, i in zip(labels, slots, strict=True)
    }
    scalar = {label: np.ndim(inputs[i]) == 0 for label, i in zip(labels, slots, strict=True)}

    def of_checked(*xs):
        """``function`` with the checked inputs replaced (the others fixed, as given)."""
        full = list(inputs)
        for i, x in zip(slots, xs, strict=True):
            full[i] = x
        result = function(*full)
        return result if isinstance(result, (tuple, list)) else (result,)

    with jax.enable_x64(True):
        shapes = jax.eval_shape(of_checked, *(arrays[label] for label in labels))
        # one fixed random direction per output: the loss is the same function everywhere
        rng = np.random.default_rng(seed)
        projections = [rng.standard_normal(s.shape) for s in shapes]

        def projected(*xs):
            return sum((o * r).sum() for o, r in zip(of_checked(*xs), projections, strict=True))

        compiled = jax.jit(projected)  # one compilation; 2P calls follow

    def loss(params):
        with jax.enable_x64(True):
            return float(compiled(*(np.asarray(params[label]) for label in labels)))

    def grad(params):
        with jax.enable_x64(True):
            _, pullback = jax.vjp(of_checked, *(np.asarray(params[label]) for label in labels))
            pulled = pullback(tuple(np.asarray(r) for r in projections))
        return {
            label: float(np.asarray(g)) if scalar[label] else np.asarray(g, dtype=np.float64)
            for label, g in zip(labels, pulled, strict=True)
        }

    return Problem(loss, grad, arrays, name or str(getattr(function, "__name__", "function")))
