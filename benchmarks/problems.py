"""Benchmark problems and the adapters that hand the same function to every checker.

Every checker sees the same numpy loss and the same hand-written gradient:

* gradcheck: ``loss(params)``, ``grad(params)`` on the named parameters;
* scipy.optimize.check_grad and numdifftools.Gradient: :class:`Flat`, the same loss of one flat
  float64 vector (views into it, no copies);
* torch.autograd.gradcheck: :func:`torch_function`, a ``torch.autograd.Function`` whose forward
  calls the numpy loss and whose backward returns the hand-written gradient.

Every call of the numpy loss is counted (:class:`Counted`). :class:`Slice` restricts a problem
to the first ``m`` elements of one tensor (the rest held fixed, written in place so a call costs
one forward), to time per-element methods that would take too long on the whole net.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from nets.tanh_mlp import TanhMLP

MLPS = {  # name: layer sizes (about 1e3, 5e4 and 1e6 parameters), batch 32
    "mlp-1e3": (10, 32, 16, 5),
    "mlp-5e4": (64, 256, 128, 10),
    "mlp-1e6": (784, 1024, 256, 10),
}
BATCH = 32


class Counted:
    """A loss that counts its calls and the process CPU time spent inside them (a check's
    bookkeeping is then its CPU less its loss calls', under the very load they ran in)."""

    def __init__(self, loss: Callable[[Any], Any]):
        self.loss = loss
        self.calls = 0
        self.cpu = 0.0

    def reset(self) -> None:
        self.calls, self.cpu = 0, 0.0

    def __call__(self, params):
        self.calls += 1
        start = time.process_time()
        try:
            return self.loss(params)
        finally:
            self.cpu += time.process_time() - start


class Problem:
    """Named parameters, a counted loss and the hand-written gradient."""

    def __init__(self, name: str, loss, grad, params: Mapping[str, Any]):
        self.name = name
        self.loss = Counted(loss)
        self.grad = grad
        self.params = dict(params)
        self.names = list(self.params)
        self.shapes = [np.shape(v) for v in self.params.values()]
        self.size = int(sum(np.size(v) for v in self.params.values()))

    def fresh(self) -> dict[str, Any]:
        return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self.params.items()}


def mlp(name: str) -> tuple[Problem, TanhMLP]:
    net = TanhMLP(sizes=MLPS[name], batch=BATCH, seed=0)
    return Problem(name, net.loss, net.grad, net.params()), net


class Slice(Problem):
    """The first ``m`` elements of tensor ``tensor`` as the only parameter; the rest fixed."""

    def __init__(self, base: Problem, tensor: str, m: int):
        self.base_params = base.fresh()
        self.flat = self.base_params[tensor].reshape(-1)
        self.tensor, self.m, self.inner = tensor, m, base.loss.loss
        self.base_grad = base.grad
        start = self.flat[:m].copy()
        super().__init__(f"{base.name}[{tensor}[:{m}]]", self._loss, self._grad, {"slice": start})

    def _put(self, params):
        self.flat[: self.m] = params["slice"]
        return self.base_params

    def _loss(self, params):
        return self.inner(self._put(params))

    def _grad(self, params):
        return {"slice": self.base_grad(self._put(params))[self.tensor].reshape(-1)[: self.m]}


class Flat:
    """The problem as a function of one flat float64 vector (scipy, numdifftools)."""

    def __init__(self, problem: Problem):
        self.problem = problem
        self.sizes = [int(np.prod(s)) for s in problem.shapes]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        self.x0 = np.concatenate(
            [np.asarray(v, dtype=np.float64).reshape(-1) for v in problem.params.values()]
        )

    def unpack(self, x: np.ndarray) -> dict[str, Any]:
        out = {}
        for name, shape, a, b in zip(
            self.problem.names,
            self.problem.shapes,
            self.offsets[:-1],
            self.offsets[1:],
            strict=True,
        ):
            out[name] = x[a:b].reshape(shape) if shape else x[a]
        return out

    def loss(self, x: np.ndarray) -> float:
        return float(self.problem.loss(self.unpack(x)))

    def grad(self, x: np.ndarray) -> np.ndarray:
        g = self.problem.grad(self.unpack(x))
        return np.concatenate(
            [np.asarray(g[n], dtype=np.float64).reshape(-1) for n in self.problem.names]
        )


def torch_function(problem: Problem):
    """``(fn, inputs)`` for torch.autograd.gradcheck: the numpy loss and hand-written gradient
    wrapped as one autograd Function of one float64 tensor per parameter."""
    import torch

    names, loss, grad = problem.names, problem.loss, problem.grad

    def as_params(tensors):
        return {
            n: (t.detach().numpy() if t.dim() else float(t))
            for n, t in zip(names, tensors, strict=True)
        }

    class NumpyLoss(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *tensors):
            ctx.save_for_backward(*tensors)
            return torch.tensor(float(loss(as_params(tensors))), dtype=torch.float64)

        @staticmethod
        def backward(ctx, grad_output):
            g = grad(as_params(ctx.saved_tensors))
            return tuple(
                grad_output * torch.as_tensor(np.asarray(g[n], dtype=np.float64)) for n in names
            )

    inputs = tuple(
        torch.tensor(np.asarray(v, dtype=np.float64), requires_grad=True)
        for v in problem.params.values()
    )
    return (lambda *tensors: NumpyLoss.apply(*tensors)), inputs
