"""Adapters: attribute nets, params-dict nets, in-place training steps."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gradcheck
from gradcheck import (
    InputError,
    PrecisionWarning,
    check_problem,
    find_params,
    from_attributes,
    from_params_dict,
    from_training_step,
)
from nets import asker

LR = 0.01
SAMPLES = list(zip(asker.X, asker.Y_ONE_HOT, strict=True))


# -- an attribute net with scalar and array weights, gradient switchable ------------------
class Attr:
    """y = tanh(W x + b) . v + c; L = mean (y - t)^2. Hyper-parameters as non-float attrs."""

    def __init__(self, bug=None, seed=3):
        rng = np.random.default_rng(seed)
        self.W = rng.normal(size=(3, 4))
        self.b = rng.normal(size=3)
        self.v = rng.normal(size=3)
        self.c = float(rng.normal())
        self.epochs = 100  # int: not a weight
        self._cache = np.zeros(3)  # private: not a weight
        self.x = rng.normal(size=(6, 4))
        self.t = rng.normal(size=6)
        self.bug = bug

    def loss(self):
        y = np.tanh(self.x @ self.W.T + self.b) @ self.v + self.c
        return float(np.mean((y - self.t) ** 2))

    def grads(self):
        h = np.tanh(self.x @ self.W.T + self.b)
        dy = 2 * (h @ self.v + self.c - self.t) / len(self.t)
        dh = np.outer(dy, self.v) * (1 - h**2)
        g = {"W": dh.T @ self.x, "b": dh.sum(0), "v": h.T @ dy, "c": dy.sum()}
        if self.bug == "W_row":
            g["W"][1] *= 2
        if self.bug == "c_sign":
            g["c"] = -g["c"]
        return g

    def sgd_step(self, lr):
        """Plain SGD written the way people write it: in place for arrays, rebinding scalars."""
        g = self.grads()
        self.W -= lr * g["W"]
        self.b -= lr * g["b"]
        self.v -= lr * g["v"]
        self.c -= lr * g["c"]
        self._cache[:] = 1.0  # side effect that must be undone


def test_find_params_keeps_float_attributes_in_order():
    net = Attr()
    assert find_params(net) == ["W", "b", "v", "c", "x", "t"]
    assert find_params(net, exclude=["x", "t"]) == ["W", "b", "v", "c"]
    assert find_params(net, include=["c", "W"]) == ["c", "W"]


def test_find_params_refuses_unknown_and_empty():
    with pytest.raises(InputError, match="'nope'"):
        find_params(Attr(), include=["nope"])
    with pytest.raises(InputError, match="list of names"):
        find_params(Attr(), include="W")
    with pytest.raises(InputError, match="no weights found"):
        find_params(object())


def test_find_params_refuses_a_list_mixing_float_arrays_with_other_leaves():
    class Net:
        def __init__(self):
            self.W = np.ones((2, 2))
            self.layers = [np.ones(3), np.arange(3)]  # a float weight beside an int mask
            self.config = (0.1, 32)  # floats beside ints, but no array: hyper-parameters
            self.sizes = [784, 30]

    with pytest.raises(InputError, match=r"'layers'.*layers\[0\].*int64 array at layers\[1\]"):
        find_params(Net())
    assert find_params(Net(), exclude=["layers"]) == ["W"]
    assert find_params(Net(), include=["W"]) == ["W"]


@pytest.mark.parametrize(("bug", "wrong"), [(None, []), ("W_row", ["W"]), ("c_sign", ["c"])])
def test_from_attributes_finds_the_wrong_weight(bug, wrong):
    net = Attr(bug)
    before = {k: (v, np.array(v, copy=True)) for k, v in vars(net).items()}
    problem = from_attributes(net, "loss", "grads", exclude=["x", "t"])
    report = check_problem(problem)
    assert report.failed_params == wrong
    if bug == "W_row":  # exactly the planted row
        rows = {e.index[0] for e in report.entries if e.param == "W" and e.status == "wrong"}
        assert rows == {1}
    for k, (obj, bits) in before.items():  # same objects, same bits
        assert getattr(net, k) is obj
        assert np.array_equal(np.asarray(obj), bits)


def test_from_params_dict_object_and_plain_dict():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3))

    class DictNet:
        def __init__(self):
            self.params = {"W": rng.normal(size=(2, 3)), "s": 0.5}

        def loss(self):
            return float(np.sum((x @ self.params["W"].T) ** 2) * self.params["s"])

        def grads(self):
            z = x @ self.params["W"].T
            return {"W": 2 * self.params["s"] * z.T @ x, "s": float(np.sum(z**2))}

    net = DictNet()
    assert check_problem(from_params_dict(net, "loss", "grads")).passed
    weights = net.params
    # a plain dict, with functions closing over it and a planted factor 2 in dW
    problem = from_params_dict(
        weights, lambda _: net.loss(), lambda _: {**net.grads(), "W": 2 * net.grads()["W"]}
    )
    report = check_problem(problem)
    assert report.failed_params == ["W"]
    assert net.params is weights
    assert net.params["s"] == 0.5
    with pytest.raises(InputError, match=r"DictNet\.weights is a NoneType"):
        from_params_dict(net, "loss", "grads", key="weights")


def test_training_step_recovers_a_correct_gradient_and_restores_everything():
    net = Attr()
    net.x, net.t = net.x[:3], net.t[:3]
    before = {k: (v, np.array(v, copy=True)) for k, v in vars(net).items()}
    problem = from_training_step(
        net, lambda n: n.sgd_step(LR), "loss", learning_rate=LR, exclude=["x", "t"]
    )
    report = check_problem(problem)
    assert report.passed, report.to_text()
    for k, (obj, bits) in before.items():
        assert getattr(net, k) is obj, k
        assert np.array_equal(np.asarray(obj), bits), k


def test_training_step_finds_planted_bug():
    net = Attr("W_row")
    problem = from_training_step(
        net, lambda n: n.sgd_step(LR), "loss", learning_rate=LR, exclude=["x", "t"]
    )
    report = check_problem(problem)
    assert report.failed_params == ["W"]
    assert {e.index[0] for e in report.entries if e.status == "wrong"} == {1}


@pytest.mark.parametrize(("cls", "passes"), [(asker.CorrectedNet, True), (asker.MeantNet, False)])
def test_training_step_on_asker_nets_per_sample(cls, passes):
    """The asker's per-sample SGD (train on one sample) checked through the step it takes."""
    net = cls(seed=0)
    start = dict(vars(net))
    problem = from_training_step(
        net,
        lambda n, x, y: n.train([x], [y], learn_rate=LR),
        "sample_loss",
        learning_rate=LR,
        samples=SAMPLES,
    )
    assert len(problem.samples) == 2
    report = check_problem(problem)
    assert report.passed is passes
    if not passes:
        assert set(report.failed_params) == set(asker.MeantNet.NAMES)
        assert all(not s.passed for s in report.samples)
    assert vars(net) == start
    assert all(vars(net)[k] is v for k, v in start.items())


def test_literal_asker_step_is_a_shape_mismatch_not_a_crash():
    """The posted update multiplies a 2-vector into scalar weights: each becomes shape (2,)."""
    net = asker.LiteralNet(seed=0)
    problem = from_training_step(
        net,
        lambda n, x, y: n.train([x], [y], learn_rate=LR),
        "sample_loss",
        learning_rate=LR,
        samples=SAMPLES,
    )
    report = check_problem(problem)
    assert set(report.failed_params) == set(asker.LiteralNet.NAMES)
    assert {p.status for p in report.params} == {"shape_mismatch"}
    assert {p.grad_shape for p in report.params} == {(2,)}
    assert all(isinstance(getattr(net, n), float) for n in asker.LiteralNet.NAMES)


def test_training_step_refuses_bad_arguments():
    net = Attr()
    with pytest.raises(InputError, match="learning_rate"):
        from_training_step(net, "sgd_step", "loss", learning_rate=0)
    with pytest.raises(InputError, match="samples is empty"):
        from_training_step(net, "sgd_step", "loss", learning_rate=LR, samples=[])
    with pytest.raises(InputError, match="not a method"):
        from_training_step(net, "fit", "loss", learning_rate=LR)


def test_training_step_that_raises_is_reported_and_restores():
    net = Attr()
    w = net.W.copy()

    def step(n):
        n.W -= 1.0
        raise RuntimeError("diverged")

    problem = from_training_step(net, step, "loss", learning_rate=LR, exclude=["x", "t"])
    with pytest.raises(gradcheck.LossError, match="diverged"):
        check_problem(problem)
    assert np.array_equal(net.W, w)


def test_tiny_step_warns_about_precision():
    net = Attr()
    problem = from_training_step(
        net, lambda n: n.sgd_step(1e-13), "loss", learning_rate=1e-13, exclude=["x", "t"]
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        problem.grad(problem.params)
    assert any(issubclass(w.category, PrecisionWarning) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)
        from_training_step(
            net, lambda n: n.sgd_step(LR), "loss", learning_rate=LR, exclude=["x", "t"]
        ).grad(problem.params)


def test_core_plugin_and_cli_never_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, gradcheck, gradcheck.plugin, gradcheck.cli, gradcheck.adapters.pytorch; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr


class DictSGD:
    """Weights in self.params; the step updates arrays in place and rebinds the scalar."""

    def __init__(self, bug=None):
        rng = np.random.default_rng(5)
        self.params = {"W": rng.normal(size=(2, 3)), "s": 0.8}
        self.steps = 0
        self.bug = bug

    def loss(self, x, y):
        return float(np.sum((self.params["s"] * self.params["W"] @ x - y) ** 2))

    def step(self, x, y, lr=LR):
        W, s = self.params["W"], self.params["s"]
        r = 2 * (s * W @ x - y)
        dW = s * np.outer(r, x)
        ds = float(r @ (W @ x)) * (0.5 if self.bug else 1.0)
        W -= lr * dW  # in place
        self.params["s"] = s - lr * ds  # rebinding
        self.steps += 1


@pytest.mark.parametrize(("bug", "wrong"), [(None, []), ("half_ds", ["s"])])
def test_training_step_on_a_params_dict(bug, wrong):
    net = DictSGD(bug)
    weights, w_array, w_bits = net.params, net.params["W"], net.params["W"].copy()
    rng = np.random.default_rng(6)
    samples = [(rng.normal(size=3), rng.normal(size=2)) for _ in range(3)]
    problem = from_training_step(
        net, "step", "loss", learning_rate=LR, samples=samples, key="params"
    )
    report = check_problem(problem)
    assert report.failed_params == wrong
    assert [s.failed_params for s in report.samples] == [wrong] * 3
    assert net.params is weights
    assert net.params["W"] is w_array
    assert np.array_equal(w_array, w_bits)
    assert net.params["s"] == 0.8
    assert net.steps == 0  # the step counter is put back too
