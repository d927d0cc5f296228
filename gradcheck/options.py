"""The options of a check: one frozen, validated object shared by the API, the plugin and the CLI.

:func:`gradcheck.check` takes them as keyword arguments and builds a :class:`CheckOptions`
once; the pytest plugin and the command line build one from their flags. Every setting is
validated here, so each front-end refuses the same values with the same message (an
:class:`~gradcheck.errors.InputError` naming the option and what it expects), and the one
description of the step rule (:func:`gradcheck.core.numerics.step_rule`) reaches the report, the
plugin's header and the CLI alike.
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradcheck.core.numerics import Tolerance, step_rule
from gradcheck.errors import InputError
from gradcheck.fast.probe import FastOptions

MODES = ("full", "fast")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class CheckOptions:
    """How a check measures and judges; every field validated on construction.

    Attributes:
        mode: ``"full"`` measures every element; ``"fast"`` probes each tensor along random
            directions and localizes the wrong elements (see :mod:`gradcheck.fast.mode`).
        richardson: refine every element with Richardson extrapolation (four more loss
            evaluations each), not only those whose verdict needs it.
        tolerance: the pass rule (:class:`~gradcheck.core.numerics.Tolerance`).
        seed: seeds fast mode's random directions (the plugin and the CLI also seed ``random``
            and ``numpy.random`` with it before the user's code runs).
        fast: fast mode's knobs (:class:`~gradcheck.fast.probe.FastOptions`).
    """

    mode: str = "full"
    richardson: bool = False
    tolerance: Tolerance = field(default_factory=Tolerance)
    seed: int = 0
    fast: FastOptions = field(default_factory=FastOptions)

    def __post_init__(self) -> None:
        if not isinstance(self.mode, str) or self.mode not in MODES:
            raise InputError(f"mode must be 'full' or 'fast', got {self.mode!r}")
        if not isinstance(self.richardson, (bool, np.bool_)):
            raise InputError(f"richardson must be True or False, got {self.richardson!r}")
        if not isinstance(self.tolerance, Tolerance):
            raise InputError(
                f"tolerance must be a gradcheck.Tolerance, got {type(self.tolerance).__name__}"
            )
        if not _is_int(self.seed) or self.seed < 0:
            raise InputError(f"seed must be a non-negative int, got {self.seed!r}")
        if not isinstance(self.fast, FastOptions):
            raise InputError(
                f"fast must be a gradcheck.FastOptions, got {type(self.fast).__name__}"
            )
        object.__setattr__(self, "richardson", bool(self.richardson))
        object.__setattr__(self, "seed", int(self.seed))

    @classmethod
    def build(
        cls,
        *,
        mode: str = "full",
        richardson: bool = False,
        tolerance: Tolerance | None = None,
        seed: int = 0,
        fast: FastOptions | None = None,
    ) -> CheckOptions:
        """From :func:`gradcheck.check`'s keyword arguments (``None`` means the default)."""
        plain = type(mode) is str and type(seed) is int and richardson is False
        if plain and mode == "full" and seed == 0 and tolerance is None and fast is None:
            return _default()  # frozen: the defaults validated once, not on every check
        return cls(
            mode=mode,
            richardson=richardson,
            tolerance=Tolerance() if tolerance is None else tolerance,
            seed=seed,
            fast=FastOptions() if fast is None else fast,
        )

    @property
    def step(self) -> str:
        """The step rule in words (the same text everywhere it is shown)."""
        return step_rule(self.richardson)

    def describe(self) -> dict[str, Any]:
        """The options as a report records them (``Report.options``, the JSON)."""
        tol = self.tolerance
        out: dict[str, Any] = {
            "step": self.step,
            "richardson": self.richardson,
            "safety": tol.safety,
            "noise_ulps": tol.noise_ulps,
            "rtol": tol.rtol,
            "mode": self.mode,
            "seed": self.seed,
        }
        if self.mode == "fast":
            out |= {
                "probes": self.fast.probes,
                "false_alarm": self.fast.false_alarm,
                "miss": self.fast.miss,
                "auto": self.fast.auto,
                "max_wrong": self.fast.max_wrong,
                "fallback_samples": self.fast.fallback_samples,
            }
        return out


@functools.cache
def _default() -> CheckOptions:
    return CheckOptions()


def seed_argument(text: str) -> int:
    """A command-line seed (``--seed``, ``--gradcheck-seed``): a non-negative integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**32), got {value}")
    return value
