"""Error types shared across layers (a leaf module: it imports nothing from ``audiotok``)."""
from __future__ import annotations


class CheckpointError(ValueError):
    """Weights that cannot be loaded; the message says what was found and what to do."""


class CommandError(Exception):
    """A problem with a command's arguments or surroundings (bad ``-o``, a model that does not load,
    ``--n-q`` out of range, a busy output folder): the ``audiotok`` command prints ``error: <message>``
    as one line and returns ``code`` (2, like argparse's usage errors) instead of a traceback. Library
    code that checks what a command hands it (output folders, benchmark inputs) raises it too."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


__all__ = ["CheckpointError", "CommandError"]
