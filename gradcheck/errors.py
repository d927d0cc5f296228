"""Exceptions raised by gradcheck. Every one derives from :class:`GradcheckError`."""

from __future__ import annotations


class GradcheckError(Exception):
    """Base class of every error gradcheck raises on purpose."""


class InputError(GradcheckError, ValueError):
    """What the user handed in (parameters, loss, gradient, options) is not usable.

    The message names the offending parameter or option and says what was expected.
    """


class LossError(GradcheckError):
    """The user's loss function raised or returned something unusable during the check."""


class NondeterministicLossError(GradcheckError):
    """The loss gives different values at the same point, so finite differences mean nothing."""


class StateMutationError(GradcheckError):
    """Calling the loss or the gradient function changed the parameters."""
