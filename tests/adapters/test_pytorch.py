"""PyTorch adapter (skipped without torch): modules and custom autograd Functions."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import InputError, check_problem

torch = pytest.importorskip("torch")
from gradcheck.adapters.pytorch import from_torch_function, from_torch_module  # noqa: E402


def linear_function(bug=None):
    """out = x @ w.T + b with a hand-written backward; ``bug`` plants one mistake."""

    class Linear(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w, b):
            ctx.save_for_backward(x, w)
            return x @ w.T + b

        @staticmethod
        def backward(ctx, dout):
            x, w = ctx.saved_tensors
            dx, dw, db = dout @ w, dout.T @ x, dout.sum(0)
            if bug == "dw_transposed":  # w is square in these tests
                dw = dw.T
            if bug == "db_mean":
                db = dout.mean(0)
            return dx, dw, db

    return Linear


def inputs(square=True):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=gen)
    w = torch.randn(3 if square else 4, 3, generator=gen)
    b = torch.randn(w.shape[0], generator=gen)
    return x, w, b


@pytest.mark.parametrize(
    ("bug", "wrong"), [(None, []), ("dw_transposed", ["w"]), ("db_mean", ["b"])]
)
def test_custom_function_backward(bug, wrong):
    x, w, b = inputs()
    before = [t.clone() for t in (x, w, b)]
    report = check_problem(
        from_torch_function(linear_function(bug), x, w, b, names=["x", "w", "b"])
    )
    assert report.failed_params == wrong
    assert [p.dtype for p in report.params] == ["float64"] * 3  # checked in float64
    if bug == "db_mean":  # the same diagnosis as for NumPy code: a missing factor 5
        assert "true = 5 x hand-written for b (all 3)" in report.to_text()
    if bug == "dw_transposed":
        assert "transpose" in report.to_text()
    for t, old in zip((x, w, b), before, strict=True):  # the user's tensors are untouched
        assert t.dtype == torch.float32
        assert torch.equal(t, old)


def test_module_with_hand_written_function_inside():
    x, _, _ = inputs()
    y = torch.randn(5, 2, generator=torch.Generator().manual_seed(1))

    class Net(torch.nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn
            self.l1 = torch.nn.Linear(3, 4)
            self.l2 = torch.nn.Linear(4, 2)

        def forward(self, inp):
            return self.l2(torch.tanh(self.fn.apply(inp, self.l1.weight, self.l1.bias)))

    torch.manual_seed(0)
    for bug, wrong in [(None, []), ("db_mean", ["l1.bias"])]:
        net = Net(linear_function(bug))
        weights = {k: v.clone() for k, v in net.state_dict().items()}
        problem = from_torch_module(net, lambda m: ((m(x.double()) - y.double()) ** 2).mean())
        assert list(problem.params) == ["l1.weight", "l1.bias", "l2.weight", "l2.bias"]
        assert check_problem(problem).failed_params == wrong
        for k, v in net.state_dict().items():  # the user's module is untouched (and float32)
            assert v.dtype == torch.float32
            assert torch.equal(v, weights[k])


def test_refusals():
    with pytest.raises(InputError, match=r"torch\.nn\.Module"):
        from_torch_module(object(), lambda m: 0)
    with pytest.raises(InputError, match="no parameters"):
        from_torch_module(torch.nn.Linear(2, 2), lambda m: 0, include=[])
    with pytest.raises(InputError, match="'nope'"):
        from_torch_module(torch.nn.Linear(2, 2), lambda m: 0, include=["nope"])
    with pytest.raises(InputError, match="floating-point tensor"):
        from_torch_function(linear_function(), 1, np.zeros(2))
    with pytest.raises(InputError, match="names has 1 entries for 3"):
        from_torch_function(linear_function(), *inputs(), names=["x"])


def test_non_scalar_loss_is_refused():
    problem = from_torch_module(
        torch.nn.Linear(2, 2), lambda m: m(torch.ones(1, 2, dtype=torch.float64))
    )
    with pytest.raises(InputError, match=r"shape \(1, 2\); expected a scalar"):
        problem.loss(problem.params)
