"""Moved to :mod:`audiotok.data.outputs` (issue 13); this name stays only until the last modules importing
it (``tokenizers/dataset.py`` and the tokenize commands) are moved over."""
from audiotok.data.outputs import *  # noqa: F401,F403
