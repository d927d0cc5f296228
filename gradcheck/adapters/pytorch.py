"""PyTorch adapter (extra ``torch``): hand-written backward passes in torch, checked in float64.

* :func:`from_torch_module`: an ``nn.Module``; the hand-written part is whatever produces the
  parameters' ``.grad`` in ``loss_fn(module).backward()`` (custom Functions inside it, hooks,
  a manual ``backward``).
* :func:`from_torch_function`: a custom ``torch.autograd.Function`` with a hand-written
  ``backward``; the loss is a fixed random projection of its outputs, ``sum_i <r_i, out_i>``,
  so every output element's gradient is exercised.

Both work on float64 copies (the user's module and tensors are never modified), whose memory
the checker perturbs in place through NumPy views, and give the same Problem, tables and
diagnosis as NumPy code. Importing this module does not import torch; calling it does.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from gradcheck.errors import InputError
from gradcheck.protocol import Problem


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise InputError("the PyTorch adapter needs torch: pip install 'gradcheck[torch]'") from exc
    return torch


def _scalar(value: Any, where: str) -> float:
    torch = _torch()
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise InputError(
                f"{where} returned a tensor of shape {tuple(value.shape)}; expected "
                "a scalar (reduce it with .sum() or .mean())"
            )
        return float(value.detach().item())
    return float(value)


def from_torch_module(
    module: Any,
    loss_fn: Callable[[Any], Any],
    *,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    name: str | None = None,
) -> Problem:
    """Check the parameter gradients ``loss_fn(module).backward()`` produces.

    Args:
        module: an ``nn.Module``. A float64 deep copy is checked; put it in ``eval()`` mode
            first if it has dropout (a random loss cannot be differentiated numerically).
        loss_fn: ``loss_fn(module) -> scalar tensor``, e.g. ``lambda m: F.mse_loss(m(x), y)``.
            The module it gets is float64, so the inputs it closes over must be float64 too
            (``x.double()``).
        include, exclude: parameter names (as in ``named_parameters()``) to check or skip;
            by default every parameter with ``requires_grad``.
    """
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if not callable(loss_fn):
        raise InputError("loss_fn must be callable as loss_fn(module)")
    work = copy.deepcopy(module).double()
    named = dict(work.named_parameters())
    wanted = [n for n, p in named.items() if p.requires_grad] if include is None else list(include)
    missing = [n for n in wanted if n not in named]
    if missing:
        raise InputError(
            f"include names {', '.join(map(repr, missing))}, which are not "
            f"parameters of {type(module).__name__} (it has {', '.join(named)})"
        )
    names = [n for n in wanted if n not in set(exclude)]
    if not names:
        raise InputError(f"{type(module).__name__} has no parameters to check")
    # NumPy views of the float64 copy's storage: perturbing them moves the module's weights
    arrays = {n: named[n].detach().numpy() for n in names}

    def loss(params):
        with torch.no_grad():
            return _scalar(loss_fn(work), "loss_fn(module)")

    def grad(params):
        work.zero_grad(set_to_none=True)
        with torch.enable_grad():
            out = loss_fn(work)
            _scalar(out, "loss_fn(module)")
            out.backward()
        return {
            n: None if named[n].grad is None else named[n].grad.detach().numpy().copy()
            for n in names
        }

    return Problem(loss, grad, arrays, name or type(module).__name__)


def from_torch_function(
    function: Any,
    *inputs: Any,
    names: Sequence[str] | None = None,
    seed: int = 0,
    name: str | None = None,
) -> Problem:
    """Check a custom ``torch.autograd.Function``'s hand-written ``backward``.

    Args:
        function: the Function class (``function.apply(*inputs)`` is called).
        inputs: its arguments. Floating tensors are checked (as float64 copies); anything else
            (ints, flags, integer tensors) is passed through unchanged.
        names: names for the checked tensors (default ``x0``, ``x1``, ...).
        seed: seeds the random projection of the outputs that defines the loss.
    """
    torch = _torch()
    if not hasattr(function, "apply"):
        raise InputError(
            f"function must be a torch.autograd.Function class, got {type(function).__name__}"
        )
    slots = [
        i for i, x in enumerate(inputs) if isinstance(x, torch.Tensor) and x.is_floating_point()
    ]
    if not slots:
        raise InputError("none of the inputs is a floating-point tensor; nothing to check")
    labels = list(names) if names is not None else [f"x{k}" for k in range(len(slots))]
    if len(labels) != len(slots):
        raise InputError(f"names has {len(labels)} entries for {len(slots)} floating inputs")
    tensors = {i: inputs[i].detach().to(torch.float64).clone().contiguous() for i in slots}
    arrays = {label: tensors[i].numpy() for label, i in zip(labels, slots, strict=True)}
    projections: list = []
    rng = np.random.default_rng(seed)

    def project(outputs) -> Any:
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        floats = [o for o in outputs if isinstance(o, torch.Tensor) and o.is_floating_point()]
        if not projections:  # drawn once, on the first call: same loss everywhere after
            projections.extend(
                torch.from_numpy(rng.standard_normal(tuple(o.shape))) for o in floats
            )
        return sum((o * r).sum() for o, r in zip(floats, projections, strict=True))

    def call(args_for):
        args = [args_for.get(i, x) for i, x in enumerate(inputs)]
        return function.apply(*args)

    def loss(params):
        with torch.no_grad():
            return float(project(call(tensors)))

    def grad(params):
        leaves = {i: t.detach().requires_grad_(True) for i, t in tensors.items()}
        with torch.enable_grad():
            total = project(call(leaves))
            total.backward()
        return {
            label: None if leaves[i].grad is None else leaves[i].grad.numpy().copy()
            for label, i in zip(labels, slots, strict=True)
        }

    return Problem(loss, grad, arrays, name or str(getattr(function, "__name__", "Function")))
