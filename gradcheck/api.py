"""The functional entry point: :func:`check`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gradcheck.compare import analytic_array, compare
from gradcheck.engine import Engine
from gradcheck.errors import InputError, StateMutationError
from gradcheck.numerics import Tolerance
from gradcheck.params import ParamSet
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
    progress: Callable[[int, int], None] | None = None,
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
        progress: ``progress(done, total)`` after every loss evaluation (``total`` is the
            planned count; it grows if refinement adds evaluations). For progress bars.

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
    pset = ParamSet(params)
    if progress is not None and not callable(progress):
        raise InputError(f"progress must be callable as progress(done, total), got "
                         f"{type(progress).__name__}")
    engine = Engine(pset, loss, tolerance, richardson=richardson, progress=progress)
    try:
        f0 = engine.baseline()
        gradients = _call_grad(grad, pset)
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
