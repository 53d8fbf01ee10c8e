"""Official checkpoints -> our :class:`~audiotok.codecs.Codec` (compatibility names).

Each family module (:mod:`audiotok.families`) owns its formats' detectors and converters; detection
over all of them is :mod:`audiotok.checkpoints.formats`, re-exported here, and the shared converter
helpers are :mod:`audiotok.checkpoints.convert`. The per-family modules of this package re-export
their family's converter for code written against the old layout.
"""
from __future__ import annotations

from audiotok.checkpoints.convert import WEIGHT_SUFFIXES, Files, PathLike  # noqa: F401
from audiotok.checkpoints.formats import FORMATS, detect, detect_and_convert
from audiotok.errors import CheckpointError

__all__ = ["FORMATS", "CheckpointError", "Files", "detect", "detect_and_convert"]
