"""Compatibility names: WavTokenizer's converter lives in :mod:`audiotok.families.wavtokenizer`."""
from audiotok.families.wavtokenizer import (  # noqa: F401
    FRAME_RATES,
    check_pair,
    config_from_yaml,
    convert,
    convert_state,
    is_wavtokenizer_yaml,
    read_lightning_state,
)
