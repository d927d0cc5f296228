"""Checking code that never returns gradients but updates its weights in a training step.

The asker's ``train`` is the typical case: per-sample SGD whose loop body computes partials
and applies ``self.w1 -= learn_rate * ...`` at once. One plain SGD step moves every weight by
``-learning_rate * g``, so ``g = (theta_before - theta_after) / learning_rate`` is the gradient
the code believes in, and that is what gets checked, sample by sample, with the net put back
after every step.

The recovered ``g`` carries a rounding error of a few ulps of ``theta`` divided by the learning
rate; a :class:`PrecisionWarning` says when that is large next to the partials themselves.

Every call of the step and the loss gets a fresh copy of its sample, so a step that changes its
sample in place (``x.shape += (1,)``, ``x -= mean``) cannot change the function being checked
from one call to the next; it is reported once with a :class:`SampleChangedWarning`.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

import numpy as np

from gradcheck.adapters.attributes import Slots, as_method, find_params
from gradcheck.core.tree import Tree, is_container
from gradcheck.errors import InputError, LossError
from gradcheck.protocol import Problem


class PrecisionWarning(UserWarning):
    """A recovered gradient keeps too few digits to be judged finely (tiny training step)."""


class SampleChangedWarning(UserWarning):
    """The training step (or the loss) changed its sample in place; the check gave it a copy."""


# The recovered gradient is judged untrustworthy when its rounding error exceeds this fraction
# of the largest recovered partial.
RECOVERY_DIGITS = 1e-6
# Up to this many samples, each is also checked on its own by default.
PER_SAMPLE_LIMIT = 16


def from_training_step(
    obj: Any,
    step: Callable | str,
    loss: Callable | str,
    *,
    learning_rate: float,
    samples: Iterable[Any] | None = None,
    key: str | None = None,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    per_sample: bool | None = None,
    name: str | None = None,
) -> Problem:
    """Check code that updates its weights in place instead of returning gradients.

    One plain SGD step moves every weight by ``-learning_rate * g``, so the gradient it
    implies is ``g = (theta_before - theta_after) / learning_rate``. For each sample the
    weights are set to the point being checked, the step runs once, ``g`` is read off, and
    everything the step touched (attributes, arrays updated in place) is put back. The checked
    gradient is the mean of the per-sample ``g``; the checked loss the mean per-sample loss.

    A step that turns a scalar weight into an array (the asker's ``d_L_d_ypred`` vector
    multiplied into scalar updates) shows up as a shape mismatch for that weight.

    Args:
        obj: the net; weights are its float attributes (or ``obj.<key>`` dict entries).
        step: ``step(obj, *sample)``, or a method name: one training update for one sample.
        loss: ``loss(obj, *sample) -> float``, or a method name: the loss that step descends.
        learning_rate: the rate the step uses (it must be plain SGD: no momentum, no Adam).
        samples: the samples; each is unpacked into the step's arguments if it is a tuple
            (``zip(data, labels)`` works). ``None``: call ``step(obj)`` and ``loss(obj)``.
        key, include, exclude: where the weights are and which ones (see
            :func:`from_params_dict` and :func:`find_params`).
        per_sample: also check every sample on its own (``report.samples``), which tells
            an error in one sample's update from one in all; default: when there are 2 to
            :data:`PER_SAMPLE_LIMIT` samples.
    """
    rate = float(learning_rate)
    if not np.isfinite(rate) or rate <= 0:
        raise InputError(f"learning_rate must be a positive number, got {learning_rate!r}")
    cases = [()] if samples is None else [s if isinstance(s, tuple) else (s,) for s in samples]
    if not cases:
        raise InputError("samples is empty; pass at least one sample (or None)")
    container = obj if key is None else getattr(obj, key, None)
    if key is not None and not isinstance(container, MutableMapping):
        raise InputError(
            f"{type(obj).__name__}.{key} is a {type(container).__name__}; "
            "expected a dict of name -> float or array"
        )
    slots = Slots(container, find_params(container, include, exclude))
    user_step = as_method(step, obj, "step")
    user_loss = as_method(loss, obj, "loss")

    loss_fn, grad_fn = _functions(obj, container, slots, user_step, user_loss, cases, rate)
    if per_sample is None:
        per_sample = 1 < len(cases) <= PER_SAMPLE_LIMIT
    each: tuple[Problem, ...] = ()
    if per_sample and len(cases) > 1:
        each = tuple(
            Problem(
                *_functions(obj, container, slots, user_step, user_loss, [case], rate, k),
                params={},
                name=f"sample {k}",
            )
            for k, case in enumerate(cases)
        )
    return Problem(loss_fn, grad_fn, slots.current(), name or type(obj).__name__, samples=each)


def _functions(
    obj, container, slots: Slots, user_step, user_loss, cases, rate, first=0
) -> tuple[Callable[[dict[str, Any]], float], Callable[[dict[str, Any]], Any]]:
    """``loss(params)`` (mean per-sample loss) and ``grad(params)`` (mean implied gradient)."""

    def mean_loss(params: dict[str, Any]) -> float:
        saved = slots.bind(params)
        try:
            values = [_on_copy(user_loss, obj, case, "loss") for case in cases]
        finally:
            slots.unbind(saved)
        for k, value in enumerate(values, start=first):
            if np.ndim(value) != 0:
                raise InputError(
                    f"loss for sample {k} has shape {np.shape(value)}; expected "
                    "a scalar (reduce it with sum or mean)"
                )
        return float(np.mean(values))

    def implied_grad(params: dict[str, Any]) -> Any:
        per_sample = [
            _one_step(obj, container, slots, params, user_step, case, rate, k)
            for k, case in enumerate(cases, start=first)
        ]
        tree = Tree({n: params[n] for n in slots.names})  # lists of weights: one path a leaf
        out = {}
        for path, leaf in tree.leaves.items():
            own = np.shape(leaf)
            odd = [g[path] for g in per_sample if g[path].shape != own]
            # samples disagreeing on a shape cannot be averaged: show the odd one
            out[path] = odd[0] if odd else np.mean([g[path] for g in per_sample], axis=0)
        return tree.build(out)

    return mean_loss, implied_grad


def _one_step(obj, container, slots: Slots, params, user_step, case, rate, k):
    """The gradient one step implies at ``params``, with the net put back afterwards."""
    saved = slots.bind(params)
    state = _capture(obj, container)
    try:
        before = _numbers(slots, "before")
        try:
            _on_copy(user_step, obj, case, "training step")
        except (KeyboardInterrupt, SystemExit, MemoryError):
            raise
        except Exception as exc:
            raise LossError(  # the user's code raised, as a loss that raises does
                f"the training step raised {type(exc).__name__}: {exc} (sample {k})"
            ) from exc
        after = _numbers(slots, "after")
        if list(after) != list(before):
            first = next(p for p in [*before, *after] if p not in after or p not in before)
            raise InputError(
                f"after the training step, the weights have another structure (at {first!r}); "
                "a step must update each weight, not add or remove some"
            )
    finally:
        _restore(state)
        slots.unbind(saved)
    grads = {}
    for n in before:
        try:
            grads[n] = (before[n] - after[n]) / rate
        except ValueError:  # shapes that do not even broadcast: keep the step's shape
            grads[n] = np.full(after[n].shape, np.nan)
    _warn_precision(before, after, grads, rate)
    return grads


def _numbers(slots: Slots, when: str) -> dict[str, np.ndarray]:
    """The weights as ``{path: float64 copy}`` (a list attribute gives ``weights[1]`` ...)."""
    out = {}
    for n in slots.names:
        value = slots.get(n)
        leaves = Tree({n: value}).leaves if is_container(value) else {n: value}
        for path, leaf in leaves.items():
            try:
                out[path] = np.array(leaf, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise InputError(
                    f"{when} the training step, weight {path!r} is not a number "
                    f"({type(exc).__name__}: {exc})"
                ) from exc
    return out


def _on_copy(function, obj, case: tuple, what: str):
    """``function(obj, *case)`` on a fresh copy of the sample, warning if it changed the copy."""
    fresh = tuple(_copy(item) for item in case)
    try:
        return function(obj, *fresh)
    finally:
        change = _change(case, fresh)
        if change:
            warnings.warn(
                # no sample number: the same change on every sample is reported once
                f"the {what} changes its sample in place ({change}); gradcheck passes every "
                "call a fresh copy, so the check is not affected, but the code would change "
                "its data when called twice on the same sample",
                SampleChangedWarning,
                stacklevel=2,
            )


def _copy(item: Any) -> Any:
    if isinstance(item, np.ndarray):
        return item.copy()
    try:
        return copy.deepcopy(item)
    except Exception:  # uncopyable objects are passed as they are
        return item


def _change(case: tuple, fresh: tuple) -> str:
    """How the copies differ from the samples they were made from ("" when they do not)."""
    for i, (before, after) in enumerate(zip(case, fresh, strict=True)):
        if isinstance(before, np.ndarray) and isinstance(after, np.ndarray):
            if after.shape != before.shape:
                return f"argument {i} changed shape {before.shape} -> {after.shape}"
            if after.dtype != before.dtype or after.tobytes() != before.tobytes():
                return f"argument {i} changed values"
    return ""


def _capture(obj, container) -> list:
    """Everything a step may touch: attribute/key bindings and the contents of arrays.

    Arrays inside lists, tuples and dicts of the object are captured too (list-valued weights);
    other objects (an optimiser's state) are not: a step checked this way is plain SGD.
    """
    mappings: list[MutableMapping] = []
    for owner in (obj, container):
        mapping = owner if isinstance(owner, MutableMapping) else getattr(owner, "__dict__", None)
        if mapping is not None and all(mapping is not m for m in mappings):
            mappings.append(mapping)
    state = []
    for mapping in mappings:
        bindings = dict(mapping)
        arrays = [(a, a.copy()) for a in _writable_arrays(list(bindings.values()))]
        state.append((mapping, bindings, arrays))
    return state


def _writable_arrays(values: list) -> list[np.ndarray]:
    """Writable arrays among ``values`` and inside their lists, tuples and dicts (the arrays
    of ``self.weights = [W1, W2]`` that a step may update in place)."""
    out, stack = [], list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, np.ndarray):
            if value.flags.writeable:
                out.append(value)
        elif isinstance(value, MutableMapping):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
    return out


def _restore(state: list) -> None:
    for mapping, bindings, arrays in state:
        for array, saved in arrays:
            np.copyto(array, saved, casting="no")
        mapping.clear()
        mapping.update(bindings)


def _warn_precision(before, after, grads, rate) -> None:
    largest = max((float(np.max(np.abs(g))) for g in grads.values() if g.size), default=0.0)
    for n, g in grads.items():
        if g.shape != before[n].shape or not g.size:
            continue
        scale = np.maximum(np.abs(before[n]), np.abs(after[n]))
        rounding = float(np.max(4 * np.spacing(scale) / rate))
        if rounding > RECOVERY_DIGITS * largest:
            warnings.warn(
                f"the training step moved {n} by only ~{rate * largest:.1e} (learning rate "
                f"{rate:g}); its recovered gradient is only good to ~{rounding:.1e}: use a "
                "larger learning rate for the check if the step takes one",
                PrecisionWarning,
                stacklevel=4,
            )
            return
