"""Compatibility name of :mod:`audiotok.checkpoints.convert` (the shared converter helpers)."""
from audiotok.checkpoints.convert import *  # noqa: F401,F403
from audiotok.checkpoints.convert import __all__  # noqa: F401
