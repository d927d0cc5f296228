"""Compose forward/backward pairs into a network whose backward is the layers' backwards chained.

A :class:`Network` is a chain of :class:`Stage` s ending in a loss stage. Its ``grad`` runs the
forwards, keeps every cache, and calls the backwards in reverse order, handing each one the
``dx`` of the stage after it: no derivative is written at the network level, so the network's
gradient is right exactly when every layer's backward is. A parameter used by several stages
gets the sum of their gradients.

    net = Network([Stage("fc", dense_forward, dense_backward, ("W", "b")),
                   Stage("loss", mse_forward, mse_backward, options={"target": t})], inputs=x)
    problem = net.problem({"W": w, "b": b}, name="dense")   # a gradcheck Problem
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from gradcheck.protocol import Problem


@dataclass(frozen=True)
class Stage:
    """One layer of a network.

    Attributes:
        name: unique within the network (``replace_backward`` finds stages by it).
        forward: ``forward(x, *params, **options) -> (out, cache)``.
        backward: ``backward(dout, cache)``: ``dx`` when ``params`` is empty, else
            ``(dx, *dparams)`` in the order of ``params``.
        params: names of the network parameters the forward takes after ``x``.
        options: fixed keyword arguments of the forward (stride, target, seed, ...).
    """

    name: str
    forward: Callable[..., tuple[Any, Any]]
    backward: Callable[[Any, Any], Any]
    params: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Network:
    """A chain of stages; the last one returns the scalar loss.

    ``inputs`` is the data fed to the first stage, or the name of a parameter holding it (then
    the first stage's ``dx`` is that parameter's gradient, as in a layer's own check).
    """

    stages: tuple[Stage, ...]
    inputs: Any

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")

    def forward(self, params: Mapping[str, Any]) -> tuple[float, list[Any]]:
        """The loss and every stage's cache."""
        x = params[self.inputs] if isinstance(self.inputs, str) else self.inputs
        caches = []
        for stage in self.stages:
            x, cache = stage.forward(x, *(params[p] for p in stage.params), **stage.options)
            caches.append(cache)
        return float(x), caches

    def loss(self, params: Mapping[str, Any]) -> float:
        """The scalar loss at ``params``."""
        return self.forward(params)[0]

    def grad(self, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """dL/dparam for every parameter, by chaining the stages' backwards (dL/dL = 1)."""
        _, caches = self.forward(params)
        parts: list[tuple[str, Any]] = []  # (parameter, its gradient through one use)
        dout: Any = 1.0
        for stage, cache in zip(reversed(self.stages), reversed(caches), strict=True):
            if stage.params:
                dout, *dparams = stage.backward(dout, cache)
                parts += zip(stage.params, dparams, strict=True)
            else:
                dout = stage.backward(dout, cache)
        if isinstance(self.inputs, str):
            parts.append((self.inputs, dout))
        grads: dict[str, np.ndarray] = {}
        for name, d in parts:  # a parameter used twice gets the sum of both paths
            grads[name] = grads[name] + d if name in grads else d
        return grads

    def replace_backward(self, stage: str, backward: Callable[[Any, Any], Any]) -> Network:
        """The same network with the named stage's backward swapped (how bugs are planted)."""
        if stage not in {s.name for s in self.stages}:
            raise KeyError(f"no stage {stage!r}; stages are {[s.name for s in self.stages]}")
        stages = [replace(s, backward=backward) if s.name == stage else s for s in self.stages]
        return replace(self, stages=tuple(stages))

    def problem(self, params: Mapping[str, Any], name: str = "") -> Problem:
        """This network at ``params`` as a :class:`gradcheck.protocol.Problem`."""
        return Problem(self.loss, self.grad, dict(params), name)
