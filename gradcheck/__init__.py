"""gradcheck: pinpoint and diagnose wrong partial derivatives in hand-written backprop."""

from gradcheck.api import check
from gradcheck.errors import (
    GradcheckError,
    InputError,
    LossError,
    NondeterministicLossError,
    StateMutationError,
)
from gradcheck.numerics import Tolerance
from gradcheck.probe import FastOptions
from gradcheck.report import Entry, Report

__all__ = [
    "Entry",
    "FastOptions",
    "GradcheckError",
    "InputError",
    "LossError",
    "NondeterministicLossError",
    "Report",
    "StateMutationError",
    "Tolerance",
    "check",
]
