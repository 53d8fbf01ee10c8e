"""Compatibility names: Mimi's Hugging Face-format converter lives in :mod:`audiotok.families.mimi`."""
from audiotok.families.mimi import (  # noqa: F401
    HF_KEY_RULES as KEY_RULES,
    config_from_hf,
    convert_hf as convert,
    convert_hf_state as convert_state,
    fuse_attention,
    interleave_rope_rows,
    is_hf_mimi_config,
)
