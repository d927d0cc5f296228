"""A layer's ``forward``/``backward`` pair, checked through a scalar built from its outputs.

A backward takes an upstream gradient ``dout`` and returns the gradients of the inputs: the
vector-Jacobian product ``J^T dout``. For seeded random upstream gradients ``dout_1..dout_K``
the scalar ``L(inputs) = sum_k sum(out * dout_k)`` has the exact gradient
``sum_k J^T dout_k``, which the hand-written backward gives as ``sum_k backward(dout_k)``; that
pair (loss, gradient) goes to :func:`gradcheck.check`.

Why several ``dout`` (3 by default) when one random ``dout`` already exposes any wrong linear
backward with probability 1: each ``dout`` is a separate forward/backward call, so a backward
that keeps state between calls (accumulates into a gradient buffer it never zeroes) gives a
sum that is wrong even when its first call is right. The finite differences cost the same for
any ``K`` (one forward call per loss evaluation: the ``K`` dot products reuse its output).

Every backward call gets fresh copies of the ``dout`` arrays, so a backward that adds into
its argument (``dnext_c += ...``) cannot change the function being checked; it is reported in
the notes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from gradcheck.adapters.attributes import is_weight
from gradcheck.api import check
from gradcheck.core.tree import StructureError
from gradcheck.errors import InputError, LossError
from gradcheck.report.model import Report
from gradcheck.routes import with_notes

# How many upstream gradients by default: enough for a second and third call of the backward
# to expose state kept between calls, and cheap (the finite differences do not depend on it).
DEFAULT_DOUTS = 3


def check_layer(
    forward: Callable[..., Any],
    backward: Callable[..., Any],
    inputs: Mapping[str, Any] | Sequence[Any],
    *,
    douts: int | Sequence[Any] = DEFAULT_DOUTS,
    outputs: int | None = None,
    wrt: Sequence[str] | None = None,
    seed: int = 0,
    **options: Any,
) -> Report:
    """Check a layer's hand-written ``backward`` against its ``forward``, element by element.

    Args:
        forward: ``forward(*inputs)`` returning ``out``, ``(out, cache)`` or, for a layer with
            several outputs, ``(out_1, ..., out_n, cache)`` (``(next_h, next_c, cache)`` of an
            LSTM step). A bare array is one output with cache ``None``.
        backward: ``backward(dout, cache)`` (``backward(dout_1, ..., dout_n, cache)`` for
            several outputs) returning the gradients of the checked inputs in input order:
            ``dx`` or ``(dx, dw, db)``.
        inputs: ``{name: value}`` in ``forward``'s argument order, or a list (named ``x0``,
            ``x1``, ...). Float arrays and floats are checked (perturbed in place and restored
            bitwise); anything else (a ``bn_param`` dict, an int) is passed as it is.
        douts: how many seeded random upstream gradients (standard normal), or the list of
            them (each an array, or a tuple of arrays for several outputs).
        outputs: how many outputs ``forward`` returns, when its tuple has no trailing cache
            (default: every item but the last of a tuple is an output).
        wrt: names of the inputs ``backward`` returns gradients for, in its order (default:
            every float input).
        seed: seeds the random ``dout`` (and fast mode, as in :func:`gradcheck.check`).
        **options: any option of :func:`gradcheck.check`.

    Returns:
        The :class:`~gradcheck.report.model.Report` of the scalar ``sum_k sum(out * dout_k)``
        with parameters named by the inputs (``w[2, 0]``).
    """
    for name, fn in (("forward", forward), ("backward", backward)):
        if not callable(fn):
            raise InputError(f"{name} must be callable, got {type(fn).__name__}")
    if outputs is not None and (not isinstance(outputs, int) or outputs < 1):
        raise InputError(f"outputs must be a positive int, got {outputs!r}")
    named = _named(inputs)
    checked = [n for n, v in named.items() if is_weight(v)]
    if wrt is not None:
        wrt = list(wrt)
        unknown = [n for n in wrt if n not in named]
        if unknown:
            raise InputError(f"wrt names {unknown!r}, which are not inputs ({list(named)})")
        checked = wrt
    if not checked:
        raise InputError("no input is a float or a float array; nothing to check")
    pair = _Pair(forward, backward, named, checked, outputs)
    pair.douts = _douts(douts, pair.first_outputs(), seed)
    params = {n: named[n] for n in checked}
    report = check(pair.loss, pair.grad, params, seed=seed, **options)
    return with_notes(
        report,
        f"checked the scalar sum_k sum(out * dout_k) over {len(pair.douts)} upstream "
        f"gradient(s) dout_k (seed {seed}), against sum_k backward(dout_k)",
        *pair.notes,
        subject="layer",
    )


def _named(inputs: Any) -> dict[str, Any]:
    if isinstance(inputs, Mapping):
        bad = [k for k in inputs if not isinstance(k, str)]
        if bad:
            raise InputError(f"inputs names must be strings, got {bad[0]!r}")
        return dict(inputs)
    if isinstance(inputs, (list, tuple)):
        return {f"x{i}": v for i, v in enumerate(inputs)}
    one = " (one input: pass {'x': x} or [x])" if isinstance(inputs, np.ndarray) else ""
    raise InputError(
        f"inputs must be a dict name -> array (forward's argument order) or a list, got "
        f"{type(inputs).__name__}{one}"
    )


def _douts(douts: Any, outs: tuple[np.ndarray, ...], seed: int) -> list[tuple[np.ndarray, ...]]:
    """The upstream gradients, one tuple per ``dout_k``, each shaped and typed like the outputs."""
    if isinstance(douts, (int, np.integer)) and not isinstance(douts, bool):
        if douts < 1:
            raise InputError(f"douts must be at least 1, got {douts}")
        rng = np.random.default_rng(seed)
        return [
            tuple(rng.standard_normal(np.shape(o)).astype(_dtype(o)) for o in outs)
            for _ in range(int(douts))
        ]
    if not isinstance(douts, (list, tuple)) or not douts:
        raise InputError(f"douts must be a count or a non-empty list of arrays, got {douts!r}")
    out = []
    for k, d in enumerate(douts):
        d = tuple(d) if isinstance(d, tuple) else (d,)
        if len(d) != len(outs):
            raise InputError(f"douts[{k}] has {len(d)} arrays for {len(outs)} outputs")
        arrays = tuple(np.array(a, dtype=_dtype(o)) for a, o in zip(d, outs, strict=True))
        for a, o in zip(arrays, outs, strict=True):
            if a.shape != np.shape(o):
                raise InputError(f"douts[{k}] has shape {a.shape}; the output is {np.shape(o)}")
        out.append(arrays)
    return out


def _dtype(out: Any) -> np.dtype:
    dtype = np.asarray(out).dtype
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)


class _Pair:
    """The loss ``sum_k sum(out * dout_k)`` and its hand-written gradient, on the check's view."""

    def __init__(self, forward, backward, named, checked, outputs):
        self.forward = forward
        self.backward = backward
        self.named = named
        self.checked = checked
        self.outputs = outputs
        self.douts: list[tuple[np.ndarray, ...]] = []
        self.notes: list[str] = []

    def _args(self, view: Mapping[str, Any]) -> list[Any]:
        return [view.get(n, v) if n in self.checked else v for n, v in self.named.items()]

    def _split(self, result: Any) -> tuple[tuple[Any, ...], Any]:
        """``(outputs, cache)`` from what ``forward`` returned."""
        if not isinstance(result, tuple):
            return (result,), None
        if self.outputs is not None:
            if len(result) not in (self.outputs, self.outputs + 1):
                raise StructureError(
                    f"forward returned {len(result)} items; outputs={self.outputs} expects "
                    f"{self.outputs} outputs and maybe a cache"
                )
            cache = result[self.outputs] if len(result) > self.outputs else None
            return result[: self.outputs], cache
        if len(result) < 2:
            raise StructureError("forward returned a 1-tuple; return out or (out, cache)")
        return result[:-1], result[-1]

    def first_outputs(self) -> tuple[np.ndarray, ...]:
        """The outputs at the starting inputs (on copies: nothing of the user's is touched)."""
        copies = [
            np.array(v, copy=True) if isinstance(v, np.ndarray) else v for v in self.named.values()
        ]
        try:
            outs, _ = self._split(self.forward(*copies))
        except InputError:
            raise
        except Exception as exc:
            raise LossError(
                f"forward raised {type(exc).__name__}: {exc} at the starting inputs"
            ) from exc
        for i, o in enumerate(outs):
            if not isinstance(o, (np.ndarray, float, np.floating)):
                raise InputError(
                    f"forward output {i} is a {type(o).__name__}; expected a float array (is the "
                    "last item of its tuple not the cache? pass outputs=n)"
                )
        return tuple(np.asarray(o) for o in outs)

    def loss(self, view: Mapping[str, Any]) -> Any:
        outs, _ = self._split(self.forward(*self._args(view)))
        total = None
        for dout in self.douts:
            for o, d in zip(outs, dout, strict=True):
                term = np.sum(np.asarray(o) * d)
                total = term if total is None else total + term
        return total

    def grad(self, view: Mapping[str, Any]) -> dict[str, Any]:
        total: dict[str, Any] = {}
        for k, dout in enumerate(self.douts):
            _, cache = self._split(self.forward(*self._args(view)))
            fresh = tuple(d.copy() for d in dout)
            grads = self.backward(*fresh, cache)
            self._note_writes(dout, fresh, k)
            grads = grads if isinstance(grads, (tuple, list)) else (grads,)
            if len(grads) != len(self.checked):
                raise StructureError(
                    f"backward returned {len(grads)} gradient(s) for the {len(self.checked)} "
                    f"checked input(s) {', '.join(self.checked)}; return them in input order "
                    "(or name the ones it returns with wrt=[...])"
                )
            for name, g in zip(self.checked, grads, strict=True):
                g = None if g is None else np.asarray(g, dtype=np.float64)
                total[name] = g if k == 0 or total[name] is None or g is None else total[name] + g
        return total

    def _note_writes(self, dout, fresh, k) -> None:
        if self.notes:
            return
        for i, (d, f) in enumerate(zip(dout, fresh, strict=True)):
            if f.shape != d.shape or f.tobytes() != d.tobytes():
                which = "dout" if len(dout) == 1 else f"dout argument {i}"
                self.notes.append(
                    f"backward writes into its {which} in place (call {k}); the check gave it a "
                    "copy, so the function checked did not change, but a caller reusing that "
                    "array would see it changed"
                )
                return
