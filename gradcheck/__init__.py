"""gradcheck: pinpoint and diagnose wrong partial derivatives in hand-written backprop."""

from gradcheck.adapters import find_params, from_attributes, from_params_dict
from gradcheck.api import check, check_problem
from gradcheck.assertions import GradientMismatch, assert_gradients
from gradcheck.errors import (
    GradcheckError,
    InputError,
    LossError,
    NondeterministicLossError,
    StateMutationError,
)
from gradcheck.numerics import Tolerance
from gradcheck.probe import FastOptions
from gradcheck.protocol import NodeTrace, Problem
from gradcheck.report import Entry, Report
from gradcheck.training import PrecisionWarning, from_training_step

__all__ = [
    "Entry",
    "FastOptions",
    "GradcheckError",
    "GradientMismatch",
    "InputError",
    "LossError",
    "NodeTrace",
    "NondeterministicLossError",
    "PrecisionWarning",
    "Problem",
    "Report",
    "StateMutationError",
    "Tolerance",
    "assert_gradients",
    "check",
    "check_problem",
    "find_params",
    "from_attributes",
    "from_params_dict",
    "from_training_step",
]
