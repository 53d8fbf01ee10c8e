"""Compatibility names: Mimi's moshi-format converter lives in :mod:`audiotok.families.mimi`."""
from audiotok.families.mimi import (  # noqa: F401
    MOSHI_KEY_RULES as KEY_RULES,
    convert_codebooks,
    convert_moshi as convert,
    convert_moshi_state as convert_state,
    is_moshi_mimi,
    moshi_config_for as config_for,
)
