"""Error types shared across layers (a leaf module: it imports nothing from ``audiotok``)."""
from __future__ import annotations


class CheckpointError(ValueError):
    """Weights that cannot be loaded; the message says what was found and what to do."""


__all__ = ["CheckpointError"]
