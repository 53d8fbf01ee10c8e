"""Named codec configs: :data:`CODECS` (``"mimi"``, ``"wavtokenizer-tiny"``, ...) and
``available`` / ``get_config`` / ``build_codec``.

The configs themselves live in their family modules (:mod:`audiotok.families`), which register them
here; this registry imports them on its first lookup, so the codecs layer never imports a family.
"""
from __future__ import annotations

from audiotok.registry import Registry

from .codec import Codec, CodecConfig

# name -> zero-argument factory of a fresh CodecConfig
CODECS = Registry("codec", plugins=("audiotok.families",), class_path=False)
REGISTRY = CODECS  # the former dict's name


def available() -> list[str]:
    """Registered codec names, sorted."""
    return CODECS.names()


def get_config(name: str) -> CodecConfig:
    """The registered config called ``name`` (a fresh copy); ``KeyError`` listing the names if none."""
    return CODECS.get(name)()


def build_codec(name_or_config: str | CodecConfig) -> Codec:
    """A :class:`Codec` with random weights from a registered name or a config."""
    config = get_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
    return Codec(config)
