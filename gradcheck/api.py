"""The functional entry point: :func:`check`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any

import numpy as np

from gradcheck.compare import analytic_array, compare
from gradcheck.engine import Engine
from gradcheck.errors import InputError, StateMutationError
from gradcheck.fast import fast_results
from gradcheck.numerics import Tolerance
from gradcheck.params import ParamSet
from gradcheck.points import check_executor
from gradcheck.probe import FastOptions
from gradcheck.report import Report

Loss = Callable[[dict[str, Any]], Any]
Grad = Callable[[dict[str, Any]], Mapping[str, Any]]


def check(
    loss: Loss,
    grad: Grad,
    params: Mapping[str, Any],
    *,
    richardson: bool = False,
    tolerance: Tolerance | None = None,
    mode: str = "full",
    seed: int = 0,
    executor: Executor | None = None,
    fast: FastOptions | None = None,
) -> Report:
    """Compare every hand-written partial with a finite-difference one.

    Args:
        loss: ``loss(params) -> float``, the scalar the gradient differentiates.
        grad: ``grad(params) -> {name: array}``, the hand-written gradient, one entry per
            parameter, each shaped like its parameter.
        params: ``{name: float or ndarray}`` (float32 or float64; Python floats and 0-d
            arrays for scalars). They are perturbed in place one element at a time and are
            bitwise what they were when ``check`` returns or raises, whatever happens.
        richardson: refine every element with Richardson extrapolation (two more loss
            evaluations each) instead of only those whose verdict needs it.
        tolerance: the pass rule, :class:`~gradcheck.numerics.Tolerance` by default.
        mode: ``"full"`` measures every element (about ``2P`` loss evaluations). ``"fast"``
            probes each tensor along random directions (a dozen evaluations per tensor) and,
            where a probe fails, finds the wrong elements by bisection in ``O(k log P)``
            evaluations and measures them one by one; the other elements are ``probed`` or
            ``unchecked``, never ``ok`` (see :mod:`gradcheck.fast`).
        seed: seeds the ``numpy.random.Generator`` that draws fast mode's directions.
        executor: any ``concurrent.futures.Executor`` (a process or thread pool, Dask's
            ``client.get_executor()``, ...) to evaluate the loss on; results are bitwise those
            of a serial run. A process pool needs a picklable loss that reads the parameters
            from its argument (see :mod:`gradcheck.points`).
        fast: fast mode's knobs, :class:`~gradcheck.probe.FastOptions` by default.

    Returns:
        A :class:`~gradcheck.report.Report`; ``report.passed`` is the verdict and
        ``print(report)`` the diff table.

    Raises:
        InputError: parameters, loss value or gradient are not usable (the message says which
            and what was expected).
        LossError: the loss raised; the message says at which point.
        NondeterministicLossError, StateMutationError: the loss is not a pure function of the
            parameters, so no finite difference can be trusted.
    """
    if not callable(loss):
        raise InputError(f"loss must be callable as loss(params), got {type(loss).__name__}")
    if not callable(grad):
        raise InputError(f"grad must be callable as grad(params), got {type(grad).__name__}")
    tolerance = Tolerance() if tolerance is None else tolerance
    if not isinstance(tolerance, Tolerance):
        raise InputError(f"tolerance must be a gradcheck.Tolerance, got {type(tolerance).__name__}")
    if mode not in ("full", "fast"):
        raise InputError(f"mode must be 'full' or 'fast', got {mode!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise InputError(f"seed must be a non-negative int, got {seed!r}")
    fast = FastOptions() if fast is None else fast
    if not isinstance(fast, FastOptions):
        raise InputError(f"fast must be a gradcheck.FastOptions, got {type(fast).__name__}")
    if executor is not None:
        check_executor(executor, loss)
    pset = ParamSet(params)
    engine = Engine(pset, loss, tolerance, richardson=richardson, executor=executor)
    try:
        f0 = engine.baseline()
        gradients = _call_grad(grad, pset)
        if mode == "fast":
            results = fast_results(engine, pset, gradients, tolerance, fast, int(seed))
        else:
            results = [
                compare(pset[name], gradients.get(name), engine.differentiate(
                    name, _fitting(gradients.get(name), pset[name].shape)), tolerance)
                for name in pset.names
            ]
        extra = [str(k) for k in gradients if k not in pset.params]
    finally:
        pset.restore_all()
    return Report(
        params=results,
        evaluations=engine.evaluations,
        loss=f0,
        options={
            "step": "central, h = (3 noise / |f'''|)^(1/3) from a pilot, clipped to "
                    "[eps^(1/3), eps^(1/5)] * max(1, |x|)",
            "richardson": richardson,
            "safety": tolerance.safety,
            "noise_ulps": tolerance.noise_ulps,
            "rtol": tolerance.rtol,
            "mode": mode,
            **({"seed": int(seed), "probes": fast.probes, "false_alarm": fast.false_alarm,
                "max_wrong": fast.max_wrong, "samples": fast.samples} if mode == "fast" else {}),
        },
        notes=pset.notes,
        extra_gradients=extra,
    )


def _fitting(grad: Any, shape: tuple[int, ...]):
    """The flat analytic partials when they fit the parameter, else ``None``."""
    if grad is None or grad.shape != shape:
        return None
    return grad.reshape(-1)


def _call_grad(grad: Grad, pset: ParamSet) -> dict[str, Any]:
    try:
        raw = grad(pset.view)
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as exc:
        from gradcheck.errors import LossError

        raise LossError(
            f"grad raised {type(exc).__name__}: {exc} at the starting parameters"
        ) from exc
    changed = pset.changed()
    if changed:
        raise StateMutationError(
            f"calling grad changed parameter(s) {', '.join(map(repr, changed))}; a gradient "
            "function must not update the parameters (is it a training step? see the "
            "in-place update adapter)"
        )
    if not isinstance(raw, Mapping):
        raise InputError(
            f"grad must return a dict name -> array (one entry per parameter), got "
            f"{type(raw).__name__}"
        )
    # copy now: a gradient function may return views of buffers it reuses
    return {name: analytic_array(str(name), value) for name, value in raw.items()}
