"""Speech recognisers for resynthesis WER. ``transcribe([T] float32 at 16 kHz) -> str``.

``pocketsphinx`` (default) ships its English model inside the wheel, so it works offline; it is far
weaker than neural ASR: compare its WERs with each other, not with published numbers.
``whisper:PATH`` runs a local transformers Whisper checkpoint (the paper uses medium.en).
Both sides of a WER go through :func:`audiotok.data.normalize_text`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

ASR_RATE = 16_000


class WhisperRecognizer:
    """A local Whisper checkpoint through transformers (greedy, English)."""

    def __init__(self, path: str):
        if not Path(path).expanduser().exists():
            raise FileNotFoundError(
                f"whisper checkpoint {path!r} not found; pass a local folder (e.g. a downloaded "
                "openai/whisper-medium.en) as --asr whisper:/path/to/folder")
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        self.processor = WhisperProcessor.from_pretrained(path)
        self.model = WhisperForConditionalGeneration.from_pretrained(path).eval()
        self.name = f"whisper ({Path(path).name}, transformers)"

    def transcribe(self, samples: np.ndarray) -> str:
        import torch

        features = self.processor(samples, sampling_rate=ASR_RATE, return_tensors="pt").input_features
        with torch.no_grad():
            ids = self.model.generate(features, max_new_tokens=200)
        return self.processor.batch_decode(ids, skip_special_tokens=True)[0]


def _pocketsphinx():
    from audiotok.data.corpus.intelligibility import PocketsphinxRecognizer

    asr = PocketsphinxRecognizer()
    asr.name = f"pocketsphinx {asr.version} (default en-us model)"
    return asr


def build_asr(spec: str):
    """``"pocketsphinx"`` or ``"whisper:PATH"`` -> an object with ``transcribe`` and ``name``."""
    if spec == "pocketsphinx":
        return _pocketsphinx()
    if spec.startswith("whisper:"):
        return WhisperRecognizer(spec.split(":", 1)[1])
    raise ValueError(f"unknown ASR backend {spec!r}; use 'pocketsphinx' or 'whisper:/local/checkpoint'")
