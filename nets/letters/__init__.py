"""The asker's O/X letters end to end: images, the conv -> max-pool -> dense -> softmax pipeline,
its check, and training runs that compare the corrected net with the asker's update rules.

Data: a 6x6 "O" (a ring) and "X" (both diagonals), each shifted by one pixel in the four
directions (zero fill), plus noisy copies (seeded Gaussian noise, clipped to [0, 1]).

Two pipelines:

* the **convnet**: conv 3x3 (learned, ``filters`` channels) -> max-pool to 2x2 -> dense ->
  softmax cross-entropy, trained end to end by full-batch gradient descent with the gradient of
  :class:`nets.network.Network` (the layers' backwards chained);
* the **asker's**: a fixed 3x3 filter -> sigmoid -> max-pool to 2x2 gives the 4 numbers the
  asker fed to the nets of :mod:`nets.asker`, trained by the asker's per-sample update rules.

``python -m nets.letters`` (``make letters``, :mod:`nets.letters.command`) runs everything and
prints the curves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit

from .. import asker
from ..conv import conv2d_backward, conv2d_forward, maxpool_backward, maxpool_forward
from ..layers import (
    cross_entropy_backward,
    cross_entropy_forward,
    dense_backward,
    dense_forward,
    flatten_backward,
    flatten_forward,
)
from ..network import Network, Stage

LETTER_O = np.array(
    [
        [0, 1, 1, 1, 1, 0],
        [1, 0, 0, 0, 0, 1],
        [1, 0, 0, 0, 0, 1],
        [1, 0, 0, 0, 0, 1],
        [1, 0, 0, 0, 0, 1],
        [0, 1, 1, 1, 1, 0],
    ],
    dtype=float,
)
LETTER_X = np.maximum(np.eye(6), np.eye(6)[::-1])
CLASSES = ("O", "X")  # label 0 is "O", label 1 is "X": the one-hot targets teach the net this
SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))
# The asker did not show their filter; a diagonal-stroke detector gives 4 numbers of the same
# kind (0.5-0.75 after the sigmoid) that separate the letters.
ASKER_FILTER = np.eye(3)[None, None] / 3


def shift(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``image`` moved down by ``dy`` and right by ``dx`` pixels; vacated pixels are 0."""
    out = np.zeros_like(image)
    h, w = image.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def letters_dataset(noisy_copies: int = 2, noise: float = 0.25, seed: int = 0):
    """``(images (N, 1, 6, 6), labels (N,))``: every letter at every shift, then noisy copies."""
    clean = np.array([shift(letter, *s) for letter in (LETTER_O, LETTER_X) for s in SHIFTS])
    labels = np.repeat(np.arange(2), len(SHIFTS))
    rng = np.random.default_rng(seed)
    noisy = [
        np.clip(clean + rng.normal(scale=noise, size=clean.shape), 0.0, 1.0)
        for _ in range(noisy_copies)
    ]
    images = np.concatenate([clean, *noisy])[:, None]
    return images, np.tile(labels, noisy_copies + 1)


def render(image: np.ndarray) -> str:
    """A 2-D image in [0, 1] as text, one character per pixel."""
    shades = " .:#"
    return "\n".join("".join(shades[min(int(v * 4), 3)] for v in row) for row in image)


# ------------------------------------------------------------------------------- the convnet
def convnet(images: np.ndarray, labels: np.ndarray) -> Network:
    """conv 3x3 (wc, bc) -> max-pool 2x2 -> flatten -> dense (wd, bd) -> softmax cross-entropy."""
    return Network(
        (
            Stage("conv", conv2d_forward, conv2d_backward, ("wc", "bc")),
            Stage("pool", maxpool_forward, maxpool_backward),
            Stage("flatten", flatten_forward, flatten_backward),
            Stage("dense", dense_forward, dense_backward, ("wd", "bd")),
            Stage(
                "loss", cross_entropy_forward, cross_entropy_backward, options={"target": labels}
            ),
        ),
        images,
    )


def init_convnet(filters: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded starting parameters of :func:`convnet` (6x6 -> 4x4 -> pooled 2x2 per filter)."""
    rng = np.random.default_rng(seed)
    return {
        "wc": rng.normal(scale=0.5, size=(filters, 1, 3, 3)),
        "bc": rng.normal(scale=0.1, size=filters),
        "wd": rng.normal(scale=0.5, size=(4 * filters, 2)),
        "bd": rng.normal(scale=0.1, size=2),
    }


def convnet_logits(params, images):
    """The convnet's class scores (N, 2), for accuracy."""
    out, _ = conv2d_forward(images, params["wc"], params["bc"])
    pooled, _ = maxpool_forward(out)
    return dense_forward(pooled.reshape(len(images), -1), params["wd"], params["bd"])[0]


def asker_features(images: np.ndarray) -> np.ndarray:
    """The asker's 4 inputs: fixed filter -> sigmoid -> max-pool to 2x2, flattened (N, 4)."""
    out, _ = conv2d_forward(images, ASKER_FILTER, np.zeros(1))
    pooled, _ = maxpool_forward(expit(out))
    return pooled.reshape(len(images), -1)


# ---------------------------------------------------------------------------------- training
@dataclass
class Run:
    """One training run: the loss and accuracy before training and after every epoch."""

    name: str
    losses: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    crash: str | None = None  # "epoch E, sample S: ValueError: ..." if the update rule raised

    @property
    def final_accuracy(self) -> float:
        return self.accuracies[-1]


def train_convnet(images, labels, *, epochs=150, lr=0.5, seed=0, filters=2) -> Run:
    """Full-batch gradient descent on the convnet with the chained layer backwards."""
    net = convnet(images, labels)
    params = init_convnet(filters, seed)
    run = Run("convnet (conv, pool, dense, softmax cross-entropy)")
    for epoch in range(epochs + 1):
        run.losses.append(net.loss(params))
        run.accuracies.append(float(np.mean(convnet_logits(params, images).argmax(1) == labels)))
        if epoch < epochs:
            grads = net.grad(params)
            params = {k: v - lr * grads[k] for k, v in params.items()}
    return run


def asker_step(net, x, y_true, learn_rate: float) -> None:
    """One of the asker's per-sample updates, in place as posted (``self.w1 -= lr * ...``).

    A float parameter whose partial is an array becomes an array; the next ``-=`` then writes
    into that array in place, which raises when the partial's shape has grown.
    """
    grads = net.partials(x, y_true)
    for name in net.NAMES:
        value = getattr(net, name)
        value -= learn_rate * grads[name]
        setattr(net, name, value)


def train_asker(net_class, features, labels, *, epochs=150, lr=1.0, seed=0) -> Run:
    """The asker's per-sample SGD with ``net_class``'s rules on one-hot labels; stops at a crash."""
    net = net_class(seed=seed)
    onehot = np.eye(2)[labels]
    run = Run(f"asker's 4-2-2 net, {net_class.__name__} rules")
    for epoch in range(epochs + 1):
        predictions = np.array([net.feedforward(x) for x in features])
        run.losses.append(asker.mse_loss(onehot, predictions))
        run.accuracies.append(float(np.mean(predictions.argmax(1) == labels)))
        if epoch == epochs:
            break
        for i, (x, y) in enumerate(zip(features, onehot, strict=True)):
            try:
                asker_step(net, x, y, lr)
            except ValueError as exc:  # the shape error the asker met
                run.crash = f"epoch {epoch + 1}, sample {i + 1}: {type(exc).__name__}: {exc}"
                return run
    return run
