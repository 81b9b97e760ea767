"""The one kind of error a user sees without a traceback.

A ``UserError`` is about the user's data, config, command or environment, never a bug: its
message names the file/row/key (or the store, or the option) and what is wrong, and says what
to do. The CLI prints it as one message and exits non-zero; ``--debug`` adds the traceback.
Everything else is a bug and is reported as one (with a hint to rerun with ``--debug``).
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input or environment; the message is complete on its own."""

    exit_code = 1


class InputRejected(UserError, ValueError):
    """A file, row or key of the user's input cannot be used (import, config, serving input)."""


class StoreUnavailable(UserError):
    """The MLflow tracking store (or another store) cannot be reached or written."""


class TrainingDiverged(UserError):
    """The loss became NaN or infinite: training stops instead of registering a broken model.
    The message names the epoch, batch and loss, and what to change."""
