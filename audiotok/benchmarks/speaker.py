"""Speaker encoders for resynthesis similarity: ``embed([T] float32 at 16 kHz) -> [D]`` unit vector;
similarity is the cosine of two embeddings.

``resemblyzer`` (default) ships its GE2E encoder in the wheel (offline). ``wavlm:PATH`` runs a local
WavLM speaker-verification checkpoint (``WavLMForXVector``, e.g. microsoft/wavlm-base-sv). The two
scales differ: never compare a resemblyzer similarity with a published WavLM one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SPEAKER_RATE = 16_000


class ResemblyzerEncoder:
    def __init__(self):
        from resemblyzer import VoiceEncoder

        self.encoder = VoiceEncoder("cpu", verbose=False)
        self.name = "resemblyzer 0.1.4 GE2E (VoiceEncoder, cpu)"

    def embed(self, samples: np.ndarray) -> np.ndarray:
        from resemblyzer import preprocess_wav

        wav = preprocess_wav(np.asarray(samples, dtype=np.float32), source_sr=SPEAKER_RATE)
        if wav.size < SPEAKER_RATE // 10:
            raise ValueError("too little voiced audio for a speaker embedding")
        return self.encoder.embed_utterance(wav)


class WavLMEncoder:
    def __init__(self, path: str):
        if not Path(path).expanduser().exists():
            raise FileNotFoundError(
                f"WavLM speaker checkpoint {path!r} not found; pass a local folder (e.g. a downloaded "
                "microsoft/wavlm-base-sv) as --speaker wavlm:/path/to/folder")
        from transformers import AutoFeatureExtractor, WavLMForXVector

        self.extractor = AutoFeatureExtractor.from_pretrained(path)
        self.model = WavLMForXVector.from_pretrained(path).eval()
        self.name = f"WavLM x-vector ({Path(path).name}, transformers)"

    def embed(self, samples: np.ndarray) -> np.ndarray:
        import torch

        inputs = self.extractor(samples, sampling_rate=SPEAKER_RATE, return_tensors="pt")
        with torch.no_grad():
            emb = self.model(**inputs).embeddings[0]
        return torch.nn.functional.normalize(emb, dim=-1).numpy()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def build_speaker_encoder(spec: str):
    """``"resemblyzer"`` or ``"wavlm:PATH"`` -> an object with ``embed`` and ``name``."""
    if spec == "resemblyzer":
        return ResemblyzerEncoder()
    if spec.startswith("wavlm:"):
        return WavLMEncoder(spec.split(":", 1)[1])
    raise ValueError(f"unknown speaker backend {spec!r}; use 'resemblyzer' or 'wavlm:/local/checkpoint'")
