"""audiotok: neural audio codecs and speech tokenizers behind one API.

Nothing heavy is imported here: ``import audiotok`` stays fast, and ``audiotok.load`` pulls in
only what tokenizing needs (never Lightning or transformers).
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["load", "Tokenizer", "__version__"]


def __getattr__(name):  # lazy public API (PEP 562)
    if name in ("load", "Tokenizer"):
        from audiotok import tokenizers

        return getattr(tokenizers, name)
    raise AttributeError(f"module 'audiotok' has no attribute {name!r}")
