"""Exceptions that carry a message meant for the user.

Everything that is the user's input being wrong (a missing file, mismatched
sizes, an empty mask...) raises :class:`InputError`, whose message names the
file and the problem. The CLI prints these messages without a traceback; any
other exception is a bug in infusion.
"""

from __future__ import annotations


class InfusionError(Exception):
    """Base class of the errors infusion reports to the user."""


class InputError(InfusionError, ValueError):
    """The user's input (file, array, option) cannot be used as given."""


class NothingToDo(InfusionError):
    """The mask is empty: the input is returned unchanged."""


class ResumeError(InfusionError):
    """A work folder cannot be resumed (different input or settings)."""
