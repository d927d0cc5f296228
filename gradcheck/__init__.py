"""gradcheck: pinpoint and diagnose wrong partial derivatives in hand-written backprop.

The public API is exactly the names in ``__all__`` below, plus the documented modules
:mod:`gradcheck.plugin` (the pytest plugin) and :mod:`gradcheck.cli` (the command line).
Everything else (the subpackages ``core``, ``fast``, ``diagnosis``, ``report`` and
``adapters``) is internal and may change without notice.
"""

from gradcheck.adapters.attributes import find_params, from_attributes, from_params_dict
from gradcheck.adapters.training import (
    PrecisionWarning,
    SampleChangedWarning,
    from_training_step,
)
from gradcheck.api import check, check_problem
from gradcheck.assertions import GradientMismatch, UnresolvedWarning, assert_gradients
from gradcheck.core.compare import ParamResult
from gradcheck.core.numerics import Tolerance
from gradcheck.errors import (
    GradcheckError,
    InputError,
    LossError,
    NondeterministicLossError,
    StateMutationError,
)
from gradcheck.fast.probe import FastOptions
from gradcheck.protocol import NodeTrace, Problem
from gradcheck.report.model import Entry, Report
from gradcheck.routes.derivatives import check_hessian, check_hvp, check_jacobian
from gradcheck.routes.layer import check_layer
from gradcheck.routes.value_and_grad import check_value_and_grad

__all__ = [
    "Entry",
    "FastOptions",
    "GradcheckError",
    "GradientMismatch",
    "InputError",
    "LossError",
    "NodeTrace",
    "NondeterministicLossError",
    "ParamResult",
    "PrecisionWarning",
    "Problem",
    "Report",
    "SampleChangedWarning",
    "StateMutationError",
    "Tolerance",
    "UnresolvedWarning",
    "assert_gradients",
    "check",
    "check_hessian",
    "check_hvp",
    "check_jacobian",
    "check_layer",
    "check_problem",
    "check_value_and_grad",
    "find_params",
    "from_attributes",
    "from_params_dict",
    "from_training_step",
]
