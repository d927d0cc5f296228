"""PyTorch: a custom autograd Function with a hand-written backward (needs the torch extra).

    pip install 'gradcheck[torch]'
    gradcheck check examples/torch_function.py:make       # exit 1: dw is wrong
    python examples/torch_function.py

The check runs in float64 on copies of the inputs and shows the same tables and diagnosis as
for NumPy code. ``gradcheck.adapters.pytorch.from_torch_module`` does the same for a whole
``nn.Module`` and a loss closure.
"""

import sys

import torch

from gradcheck import check_problem
from gradcheck.adapters.pytorch import from_torch_function


class ScaledLinear(torch.autograd.Function):
    """out = (x @ w.T) * scale; backward written by hand, with the scale forgotten in dw."""

    @staticmethod
    def forward(ctx, x, w, scale):
        ctx.save_for_backward(x, w)
        ctx.scale = scale
        return (x @ w.T) * scale

    @staticmethod
    def backward(ctx, dout):
        x, w = ctx.saved_tensors
        dx = (dout * ctx.scale) @ w
        dw = dout.T @ x  # planted: should be (dout * scale).T @ x
        return dx, dw, None


def make():
    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(6, 4, generator=gen), torch.randn(3, 4, generator=gen)
    return from_torch_function(ScaledLinear, x, w, 3.0, names=["x", "w"])


if __name__ == "__main__":
    report = check_problem(make())
    print(report)
    sys.exit(0 if report.passed else 1)
