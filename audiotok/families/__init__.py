"""Codec families, one module each: configs, training recipe, checkpoint formats, benchmark defaults.

Importing this package registers the built-in families (order matters for checkpoint detection:
formats are tried in registration order). A family of your own: a module that ends with
``register_family(Family(...))`` (see :mod:`audiotok.families.base` and docs/architecture.md),
imported before you use its names.
"""
from audiotok.families.base import (
    FAMILIES,
    RECIPES,
    BenchDefaults,
    Family,
    hub_files,
    register_family,
)
from audiotok.families import speechtokenizer, mimi, wavtokenizer, mixes, xcodec2, encodec, units  # noqa: E402,F401  (registers)

__all__ = ["FAMILIES", "RECIPES", "BenchDefaults", "Family", "hub_files", "register_family"]
