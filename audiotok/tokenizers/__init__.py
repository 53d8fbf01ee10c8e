"""Tokenize and detokenize audio with any codec: ``tok = audiotok.load(...)``.

Quick use::

    import audiotok
    tok = audiotok.load("path/to/codec")                  # saved folder, .ckpt, official weights, hub id
    tokens = tok.tokenize("speech.wav")                   # tokens.codes [B, Q, F], tokens.lengths [B]
    audio = tok.detokenize(tokens).unbatch()[0]           # [1, T] at tok.sample_rate

Nothing here imports Lightning or transformers.
"""
from audiotok.tokenizers.flatten import FlattenSpec, flatten_codes, llasa_offset, unflatten_tokens
from audiotok.tokenizers.loading import CheckpointError, load, load_codec, load_training_checkpoint
from audiotok.tokenizers.tokenizer import DetokenizedAudio, TokenizedAudio, Tokenizer

__all__ = [
    "CheckpointError",
    "DetokenizedAudio",
    "FlattenSpec",
    "TokenizedAudio",
    "Tokenizer",
    "flatten_codes",
    "llasa_offset",
    "load",
    "load_codec",
    "load_training_checkpoint",
    "unflatten_tokens",
]
