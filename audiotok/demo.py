"""The demo's work (``audiotok demo`` prints it: :mod:`audiotok.cli.demo`): tokenize an utterance with a
codec, decode it back, and measure what a speech-LM builder wants to know: sample rate, frame rate,
codebooks, bitrate, tokens per second, and how close the resynthesis is. The default input is a test
utterance of the offline speech corpus (built or reused).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

MEL_DISTANCE_MEANING = "mean |ln mel(original) - ln mel(resynthesis)| over 80 mel bands and all frames"
HUM_HZ = 120.0


def log_mel_distance(reference, estimate, sample_rate: int) -> float:
    """Mean absolute difference of natural-log magnitude mel spectrograms (80 mels, 1024/256):
    0 for identical audio; see :data:`MEL_DISTANCE_MEANING`."""
    import torch

    from audiotok.dsp import MelSpectrogram

    mel = MelSpectrogram(sample_rate, n_fft=1024, hop_length=256, n_mels=80)
    n = min(reference.shape[-1], estimate.shape[-1])
    with torch.no_grad():
        return (mel(reference[None, :, :n]) - mel(estimate[None, :, :n])).abs().mean().item()


def steady_hum(wav, sample_rate: int):
    """A steady ``HUM_HZ`` sine with the loudness (RMS) and length of ``wav`` ``[1, T]``: the demo's
    yardstick for "sounds nothing like the input"."""
    import math

    import torch

    t = torch.arange(wav.shape[-1], dtype=torch.float32) / sample_rate
    rms = wav.pow(2).mean().sqrt()
    return (math.sqrt(2) * rms * torch.sin(2 * math.pi * HUM_HZ * t))[None]


def corpus_utterance() -> tuple[Path, str]:
    """``(path, transcript)`` of the first test utterance of the tiny built-in corpus (built if missing)."""
    from audiotok.data.corpus import ensure_corpus
    from audiotok.data.sources import read_manifest

    item = next(iter(read_manifest(ensure_corpus("tiny") / "test.jsonl")))
    return Path(item.path), item.text


@dataclass
class DemoResult:
    """What :func:`resynthesize` measured: ``codes [Q, F]`` of the input, rates, timings, distances."""

    codes: object  # torch.Tensor [Q, F], the valid frames only
    seconds: float  # input duration
    sample_rate: int
    frame_rate: float
    codebook_size: int
    encode_seconds: float
    decode_seconds: float
    mel_distance: float  # original vs resynthesis, see MEL_DISTANCE_MEANING
    hum_distance: float  # original vs a steady hum as loud as it (the scale of "unrelated")
    written: tuple[Path, Path]  # original.wav, resynthesis.wav

    @property
    def bitrate(self) -> float:
        """Bits per second of the codes used."""
        import math

        return self.frame_rate * self.codes.shape[0] * math.log2(self.codebook_size)


def resynthesize(tok, path: str | Path, out: str | Path, n_q: int | None = None) -> DemoResult:
    """Tokenize the audio file ``path`` with ``tok``, decode it to the input's exact length, write
    ``out/original.wav`` and ``out/resynthesis.wav`` and measure both. An unreadable file raises
    :class:`audiotok.data.AudioError`."""
    from audiotok.data import load_audio, save_audio

    wav, sr = load_audio(path, sample_rate=tok.sample_rate)
    start = time.perf_counter()
    tokens = tok.tokenize(wav, sample_rate=sr, n_q=n_q)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded = tok.detokenize(tokens)  # trimmed to the input's exact length
    decode_s = time.perf_counter() - start
    audio = decoded.audio[0, :, : int(decoded.lengths[0])]
    assert audio.shape[-1] == wav.shape[-1], (audio.shape, wav.shape)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = (out / "original.wav", out / "resynthesis.wav")
    save_audio(written[0], wav, tok.sample_rate)
    save_audio(written[1], audio, tok.sample_rate)
    return DemoResult(
        codes=tokens.codes[0, :, : int(tokens.lengths[0])], seconds=wav.shape[-1] / tok.sample_rate,
        sample_rate=tok.sample_rate, frame_rate=tok.frame_rate, codebook_size=tok.codebook_size,
        encode_seconds=encode_s, decode_seconds=decode_s,
        mel_distance=log_mel_distance(wav, audio, tok.sample_rate),
        hum_distance=log_mel_distance(wav, steady_hum(wav, tok.sample_rate), tok.sample_rate), written=written)
