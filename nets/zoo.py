"""The zoo: a small net per layer, correct, and every catalogued bug planted in one of them.

A layer's net feeds the parameter ``x`` through the layer into a mean-squared error against a
fixed random target (a loss layer's net is the loss alone), so the check covers ``dx`` and every
parameter gradient of the layer. Inputs are seeded and kept away from kinks (ReLU at 0, max-pool
ties) except in the two ``-at-kinks`` nets, whose inputs sit exactly on them: there the engine
reports ``uncertain`` and the check must still pass. ``mlp`` and ``letters`` are compositions:
a bug planted in one stage must fail at that stage's parameters and those upstream of it only.

``REGISTRY`` lists each net (``expect_pass=True``) followed by its bugs (``expect_pass=False``,
``bug_params`` = the parameters the bug makes wrong).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from gradcheck.protocol import Problem, Reference

from . import letters
from .catalogue import BUGS, Bug
from .conv import conv2d_backward, conv2d_forward, maxpool_backward, maxpool_forward
from .layers import (
    cross_entropy_backward,
    cross_entropy_forward,
    dense_backward,
    dense_forward,
    mse_backward,
    mse_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    softmax_backward,
    softmax_forward,
    tanh_backward,
    tanh_forward,
)
from .network import Network, Stage
from .norms import (
    batchnorm_backward,
    batchnorm_forward,
    dropout_backward,
    dropout_forward,
    layernorm_backward,
    layernorm_forward,
)
from .sequence import attention_backward, attention_forward, rnn_backward, rnn_forward

Built = tuple[Network, dict[str, np.ndarray]]


def _layer_net(stage: Stage, params: dict[str, np.ndarray], seed: int) -> Built:
    """x -> stage -> MSE against a seeded random target shaped like the stage's output."""
    out, _ = stage.forward(params["x"], *(params[p] for p in stage.params), **stage.options)
    target = np.random.default_rng(seed).normal(size=out.shape)
    loss = Stage("loss", mse_forward, mse_backward, options={"target": target})
    return Network((stage, loss), "x"), params


def _away_from_zero(rng, shape, low=0.2):
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(low, 1.5, size=shape)


def _normal(seed: int, **shapes) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=shape) for name, shape in shapes.items()}


def _elementwise(name, forward, backward, seed=0) -> Callable[[], Built]:
    return lambda: _layer_net(Stage(name, forward, backward), _normal(seed, x=(3, 4)), seed)


def _softmax() -> Built:
    stage = Stage("softmax", softmax_forward, softmax_backward)
    return _layer_net(stage, _normal(9, x=(2, 3, 4)), 9)


def _relu(at_kinks: bool) -> Built:
    rng = np.random.default_rng(3)
    x = _away_from_zero(rng, (3, 4))
    if at_kinks:
        x.flat[[0, 5, 6, 11]] = 0.0
    return _layer_net(Stage("relu", relu_forward, relu_backward), {"x": x}, 3)


def _cross_entropy() -> Built:
    rng = np.random.default_rng(5)
    stage = Stage(
        "cross_entropy",
        cross_entropy_forward,
        cross_entropy_backward,
        options={"target": np.array([0, 3, 1])},
    )
    return Network((stage,), "z"), {"z": rng.normal(size=(3, 4))}


def _mse() -> Built:
    rng = np.random.default_rng(6)
    stage = Stage("mse", mse_forward, mse_backward, options={"target": rng.normal(size=(3, 4))})
    return Network((stage,), "pred"), {"pred": rng.normal(size=(3, 4))}


def _dense() -> Built:
    stage = Stage("dense", dense_forward, dense_backward, ("w", "b"))
    return _layer_net(stage, _normal(1, x=(3, 4), w=(4, 4), b=4), 1)


def _conv2d() -> Built:
    stage = Stage(
        "conv2d", conv2d_forward, conv2d_backward, ("w", "b"), options={"stride": 2, "pad": 1}
    )
    return _layer_net(stage, _normal(7, x=(2, 2, 5, 7), w=(3, 2, 3, 3), b=3), 7)


def _maxpool(ties: bool) -> Built:
    rng = np.random.default_rng(8)
    # distinct values 0.1 apart: no window has a near-tie, so no step crosses a kink
    x = (rng.permutation(2 * 2 * 6 * 8) * 0.1 - 9.6).reshape(2, 2, 6, 8)
    if ties:  # each window's maximum copied onto its two diagonal cells: every window ties
        top = maxpool_forward(x)[0]
        x[:, :, ::2, ::2] = top
        x[:, :, 1::2, 1::2] = top
    return _layer_net(Stage("maxpool", maxpool_forward, maxpool_backward), {"x": x}, 8)


def _norm(name, forward, backward, seed, n, d) -> Callable[[], Built]:
    def build():
        params = _normal(seed, x=(n, d), gamma=d, beta=d)
        params["x"] = 2.0 * params["x"] + 1.0
        return _layer_net(Stage(name, forward, backward, ("gamma", "beta")), params, seed)

    return build


def _dropout() -> Built:
    stage = Stage("dropout", dropout_forward, dropout_backward, options={"p": 0.3, "seed": 7})
    return _layer_net(stage, _normal(11, x=(3, 4)), 11)


def _rnn() -> Built:
    params = {
        k: 0.6 * v
        for k, v in _normal(12, x=(2, 3, 2), h0=(2, 4), wx=(2, 4), wh=(4, 4), b=4).items()
    }
    return _layer_net(Stage("rnn", rnn_forward, rnn_backward, ("h0", "wx", "wh", "b")), params, 12)


def _attention() -> Built:
    params = _normal(13, x=(2, 3, 4), wq=(4, 4), wk=(4, 4), wv=(4, 4))
    return _layer_net(
        Stage("attention", attention_forward, attention_backward, ("wq", "wk", "wv")), params, 13
    )


def _mlp() -> Built:
    params = _normal(14, W1=(3, 5), b1=5, W2=(5, 3), b2=3)
    x = np.random.default_rng(15).normal(size=(4, 3))
    return Network(
        (
            Stage("dense1", dense_forward, dense_backward, ("W1", "b1")),
            Stage("tanh", tanh_forward, tanh_backward),
            Stage("dense2", dense_forward, dense_backward, ("W2", "b2")),
            Stage(
                "loss",
                cross_entropy_forward,
                cross_entropy_backward,
                options={"target": np.array([0, 2, 1, 2])},
            ),
        ),
        x,
    ), params


def _tied() -> Built:
    params = _normal(18, w=(4, 4), b=4)
    rng = np.random.default_rng(19)
    x, target = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    return Network(
        (
            Stage("dense1", dense_forward, dense_backward, ("w", "b")),
            Stage("tanh", tanh_forward, tanh_backward),
            Stage("dense2", dense_forward, dense_backward, ("w", "b")),
            Stage("loss", mse_forward, mse_backward, options={"target": target}),
        ),
        x,
    ), params


def _letters() -> Built:
    images, labels = letters.letters_dataset()
    return letters.convnet(images, labels), letters.init_convnet(filters=1, seed=0)


class Net(NamedTuple):
    build: Callable[[], Built]
    description: str


NETS: dict[str, Net] = {
    "dense": Net(_dense, "x -> dense (x @ w + b) -> MSE"),
    "sigmoid": Net(
        _elementwise("sigmoid", sigmoid_forward, sigmoid_backward, 2), "x -> sigmoid -> MSE"
    ),
    "tanh": Net(_elementwise("tanh", tanh_forward, tanh_backward, 4), "x -> tanh -> MSE"),
    "relu": Net(lambda: _relu(False), "x (|x| >= 0.2) -> ReLU -> MSE"),
    "relu-at-kinks": Net(lambda: _relu(True), "x with four exact zeros -> ReLU -> MSE"),
    "softmax": Net(_softmax, "x (2, 3, 4) -> softmax over the last axis -> MSE"),
    "cross-entropy": Net(_cross_entropy, "logits z -> softmax cross-entropy (stable)"),
    "mse": Net(_mse, "predictions -> mean squared error"),
    "conv2d": Net(_conv2d, "x (2, 2, 5, 7) -> conv 3x3, stride 2, pad 1 -> MSE"),
    "maxpool": Net(lambda: _maxpool(False), "x (no near-ties) -> max-pool 2x2 -> MSE"),
    "maxpool-at-kinks": Net(lambda: _maxpool(True), "x (every window tied) -> max-pool -> MSE"),
    "batchnorm": Net(
        _norm("batchnorm", batchnorm_forward, batchnorm_backward, 16, 4, 3),
        "x -> batch normalisation (training mode) -> MSE",
    ),
    "layernorm": Net(
        _norm("layernorm", layernorm_forward, layernorm_backward, 17, 4, 4),
        "x -> layer normalisation -> MSE",
    ),
    "dropout": Net(_dropout, "x -> inverted dropout (p = 0.3, seeded mask) -> MSE"),
    "rnn": Net(_rnn, "x (2 sequences of 3 steps) -> tanh RNN -> MSE on every hidden state"),
    "attention": Net(_attention, "x -> single-head self-attention -> MSE"),
    "mlp": Net(_mlp, "dense -> tanh -> dense -> softmax cross-entropy (x is data)"),
    "tied": Net(_tied, "dense (w, b) -> tanh -> the same dense (w, b) again -> MSE (x is data)"),
    "letters": Net(
        _letters, "the O/X letters: conv -> max-pool to 2x2 -> dense -> softmax cross-entropy"
    ),
}


def build(net: str, bug: Bug | None = None) -> Problem:
    """A fresh :class:`Problem` of zoo net ``net``, with ``bug`` planted if given."""
    network, params = NETS[net].build()
    if bug is not None:
        network = network.replace_backward(bug.stage, bug.backward)
    return network.problem(params, bug.name if bug else f"zoo-{net}")


def _references() -> dict[str, Reference]:
    refs: dict[str, Reference] = {}
    for net, spec in NETS.items():
        tags = frozenset({"zoo", "kinks" if net.endswith("at-kinks") else "layer"})
        refs[f"zoo-{net}"] = Reference(
            f"zoo-{net}", lambda n=net: build(n), True, spec.description, tags=tags
        )
        for bug in (b for b in BUGS if b.net == net):
            refs[bug.name] = Reference(
                bug.name,
                lambda n=net, b=bug: build(n, b),
                False,
                f"{net}: {bug.description}",
                bug_params=bug.touches,
                tags=frozenset({"zoo", "bug"}),
            )
    return refs


REGISTRY: dict[str, Reference] = _references()
