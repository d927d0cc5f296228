"""gradcheck: pinpoint and diagnose wrong partial derivatives in hand-written backprop."""

from gradcheck.api import check, check_problem
from gradcheck.errors import (
    GradcheckError,
    InputError,
    LossError,
    NondeterministicLossError,
    StateMutationError,
)
from gradcheck.numerics import Tolerance
from gradcheck.protocol import NodeTrace, Problem
from gradcheck.report import Entry, Report

__all__ = [
    "Entry",
    "GradcheckError",
    "InputError",
    "LossError",
    "NodeTrace",
    "NondeterministicLossError",
    "Problem",
    "Report",
    "StateMutationError",
    "Tolerance",
    "check",
    "check_problem",
]
