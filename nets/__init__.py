"""Reference networks with hand-written backprop, correct and deliberately buggy.

``REGISTRY`` maps a name to a :class:`gradcheck.protocol.Reference`; gradcheck finds it through
the ``gradcheck.registries`` entry point (the library never imports this package by name).

The repository keeps this package at its top level as ``nets`` (``python -m nets.letters``);
the wheel installs it as ``gradcheck_nets``, so that it takes no generic name from the user's
own code. Imports inside it are therefore relative.
"""

from __future__ import annotations

from gradcheck.protocol import Problem, Reference

from . import asker, zoo
from .recommended import RecommendedNet


def _asker(net_class, labels):
    return lambda: asker.problem(net_class, labels=labels, name=net_class.__name__)


def _recommended() -> Problem:
    return RecommendedNet(seed=0).problem()


_SECOND = frozenset(asker._SecondArchitecture.NAMES)

REGISTRY: dict[str, Reference] = {
    ref.name: ref
    for ref in [
        Reference(
            "asker-first",
            _asker(asker.FirstNet, asker.Y_SINGLE),
            True,
            "asker's first architecture: 4-2-1 sigmoid, MSE, labels [[0], [1]]",
            tags=frozenset({"asker"}),
        ),
        Reference(
            "asker-literal",
            _asker(asker.LiteralNet, asker.Y_ONE_HOT),
            False,
            "asker's softmax net as posted: the 2-vector dL/dy_pred is multiplied into "
            "every scalar partial",
            bug_params=_SECOND,
            tags=frozenset({"asker"}),
        ),
        Reference(
            "asker-meant",
            _asker(asker.MeantNet, asker.Y_ONE_HOT),
            False,
            "asker's softmax net as meant: each output uses its own dL/dy_pred, but the "
            "softmax derivative and one path into each hidden node are missing",
            bug_params=_SECOND,
            tags=frozenset({"asker"}),
        ),
        Reference(
            "asker-corrected",
            _asker(asker.CorrectedNet, asker.Y_ONE_HOT),
            True,
            "asker's softmax net with correct backprop: softmax Jacobian, both paths",
            tags=frozenset({"asker"}),
        ),
        Reference(
            "recommended",
            _recommended,
            True,
            "logits -> softmax -> cross-entropy with output biases (dL/dz = p - y)",
            tags=frozenset({"asker"}),
        ),
    ]
}
REGISTRY.update(zoo.REGISTRY)
