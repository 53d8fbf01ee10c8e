"""Speaker encoders for resynthesis similarity: ``embed([T] float32 at 16 kHz) -> [D]`` unit vector;
similarity is the cosine of two embeddings.

``resemblyzer`` (default) ships its GE2E encoder in the wheel (offline). ``wavlm:PATH`` runs a local
WavLM speaker-verification checkpoint (``WavLMForXVector``, e.g. microsoft/wavlm-base-sv). The two
scales differ: never compare a resemblyzer similarity with a published WavLM one.

What speaker similarity means here, and where it is missing:

* It is the cosine between the embedding of the original utterance (the *reference*) and that of its
  resynthesis: does the codec keep the voice?
* It needs speech in the reference. With resemblyzer, speech is what its voice activity detector
  (webrtcvad, mode 3, 30 ms windows, as used to train the encoder) keeps: a reference with under
  0.1 s of voiced audio — silence, a tone, music the detector rejects, a clip too short — has no speaker,
  so the score is missing with a reason starting ``"no speech"`` (for every tokenizer and the ground
  truth alike) and is left out of the means. WavLM has no detector here: only a silent or too-short
  reference is "no speech".
* The resynthesis is not required to contain speech: when the detector finds none in it (the codec
  destroyed the voice), the whole clip is embedded untrimmed, so the codec gets a (low) score instead
  of dropping out of the average.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from audiotok.benchmarks.scores import NoSpeech

SPEAKER_RATE = 16_000
MIN_VOICED_SECONDS = 0.1  # less voiced audio than this in a reference: "no speech"
SILENCE_PEAK = 1e-4  # -80 dBFS: digital silence


def _no_speech(samples: np.ndarray, detail: str) -> NoSpeech:
    return NoSpeech(f"no speech: {detail} in the {len(samples) / SPEAKER_RATE:.2f} s reference; speaker "
                    "similarity is undefined without a speaker")


class ResemblyzerEncoder:
    def __init__(self):
        from resemblyzer import VoiceEncoder

        self.encoder = VoiceEncoder("cpu", verbose=False)
        self.name = "resemblyzer 0.1.4 GE2E (VoiceEncoder, cpu)"

    def embed(self, samples: np.ndarray, require_speech: bool = True) -> np.ndarray:
        """Embedding of the voiced part of ``samples`` (16 kHz). Under 0.1 s voiced: :class:`NoSpeech`
        when ``require_speech`` (a reference), else the whole clip is embedded (a resynthesis)."""
        from resemblyzer.audio import normalize_volume, trim_long_silences
        from resemblyzer.hparams import audio_norm_target_dBFS

        wav = np.asarray(samples, dtype=np.float32).reshape(-1)
        if wav.size == 0 or float(np.abs(wav).max()) < SILENCE_PEAK:
            voiced, whole = wav[:0], wav
        else:
            with np.errstate(all="ignore"):
                whole = normalize_volume(wav, audio_norm_target_dBFS, increase_only=True)
                voiced = trim_long_silences(whole)
        if voiced.size >= MIN_VOICED_SECONDS * SPEAKER_RATE:
            return self.encoder.embed_utterance(voiced)
        if require_speech:
            raise _no_speech(wav, f"the voice activity detector found {voiced.size / SPEAKER_RATE:.2f} s of "
                                  "voiced audio")
        if whole.size == 0:
            raise ValueError("empty resynthesis: nothing to embed")
        return self.encoder.embed_utterance(whole)


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

    def embed(self, samples: np.ndarray, require_speech: bool = True) -> np.ndarray:
        """Embedding of ``samples`` (16 kHz); a silent or under-0.1 s reference is :class:`NoSpeech`."""
        import torch

        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if require_speech and (samples.size < MIN_VOICED_SECONDS * SPEAKER_RATE
                               or float(np.abs(samples).max(initial=0.0)) < SILENCE_PEAK):
            raise _no_speech(samples, "silence or under 0.1 s of audio")
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
