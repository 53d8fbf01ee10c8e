"""Compatibility names: SpeechTokenizer's converter lives in :mod:`audiotok.families.speechtokenizer`."""
from audiotok.families.speechtokenizer import (  # noqa: F401
    CONFIG_FIELDS,
    KEY_RULES,
    WEIGHTS_NAME,
    config_from_json,
    convert,
    convert_state,
    is_speechtokenizer_config,
)
