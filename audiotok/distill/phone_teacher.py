"""Offline teacher: frame-level phone labels from pocketsphinx forced alignment of the transcript.

Why this teacher. Distillation exists to put *linguistic content* into the first quantizer. Where
HuBERT / WavLM weights cannot be downloaded (CI, demos) we still want a teacher that carries that
content, not a random network. pocketsphinx ships, inside its pip wheel, an English acoustic model
and the CMU dictionary, so it needs no download; given the transcript (our built-in corpus has one
per file) its forced alignment says which of the 39 CMU phones (plus silence) is spoken in every
10 ms frame. Those labels are exactly the information the probes measure (phones are what ABX and
text-alignment probes look for), they are speaker-independent, and forced alignment against a known
text is far more reliable than free recognition. Costs: English only, needs the transcript, so it is
computed once into the feature cache (``audiotok distill cache --teacher phones``) rather than live.

Output at 50 Hz on 16 kHz audio (hop 320, ``ceil(N/320)`` frames, the codec convention): class ids
``[B, T]`` for the pseudo-label cross-entropy, or one-hot ``[B, 40, T]`` for the continuous losses.
"""
from __future__ import annotations

import logging
from fractions import Fraction
from importlib import metadata

import numpy as np
import torch
import torch.nn.functional as F

from audiotok.distill.align import num_frames
from audiotok.distill.teacher import Teacher

PHONES = (
    "SIL", "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH",
    "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW",
    "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
PHONE_INDEX = {phone: index for index, phone in enumerate(PHONES)}
SAMPLE_RATE = 16000
HOP_LENGTH = 320  # 50 Hz labels
ALIGN_HOP = 160  # pocketsphinx frames: 10 ms
logger = logging.getLogger(__name__)


def phone_teacher_config() -> dict:
    return {
        "kind": "phones",
        "pocketsphinx": metadata.version("pocketsphinx"),
        "phones": len(PHONES),
        "decoder": "cmn=batch beams=1e-200",
        "sample_rate": SAMPLE_RATE,
        "hop_length": HOP_LENGTH,
    }


class PhoneTeacher(Teacher):
    """Forced-aligned phone labels (40 classes, index 0 = silence) at 50 Hz; no download needed."""

    output = "labels"

    def __init__(self) -> None:
        super().__init__()
        self.sample_rate = SAMPLE_RATE
        self.frame_rate = Fraction(SAMPLE_RATE, HOP_LENGTH)
        self.dim = len(PHONES)
        self._decoder = None

    def config_dict(self) -> dict:
        return phone_teacher_config()

    def decoder(self):
        """One pocketsphinx decoder, created on first use (about 0.5 s) and reused."""
        if self._decoder is None:
            from pocketsphinx import Decoder

            # Per-utterance (batch) cepstral mean normalisation; beams far wider than recognition
            # defaults, since the search space is a single sentence: with the defaults 12 of the 80
            # tiny-corpus files (espeak voices) found no alignment.
            wide = 1e-200
            self._decoder = Decoder(
                samprate=SAMPLE_RATE, bestpath=False, loglevel="FATAL", cmn="batch",
                beam=wide, wbeam=wide, pbeam=wide, lpbeam=wide, lponlybeam=wide,
            )  # fmt: skip
        return self._decoder

    def _alignable_words(self, text: str) -> list[str]:
        """Transcript words; a word missing from the dictionary is added, spelled letter by letter."""
        decoder = self.decoder()
        from audiotok.data.text import (
            normalize_text,  # lowercase, numbers spelled out, no punctuation
        )

        words = normalize_text(text).split()
        if not words:
            raise ValueError(f"transcript {text!r} has no words to align; the phone teacher needs the text")
        for word in words:
            if decoder.lookup_word(word) is None:
                letters = [decoder.lookup_word(f"{ch}.") or decoder.lookup_word(ch) for ch in word if ch != "'"]
                pronunciation = " ".join(p for p in letters if p)
                logger.warning("word %r not in the pocketsphinx dictionary; aligning it as %r", word, pronunciation)
                decoder.add_word(word, pronunciation, True)
        return words

    def align(self, audio: np.ndarray, text: str) -> list[tuple[str, int, int]]:
        """Phones ``(name, start, duration)`` in 10 ms frames for mono float audio at 16 kHz."""
        words = self._alignable_words(text)
        return self._run_alignment(audio, " ".join(words))

    def _run_alignment(self, audio: np.ndarray, text: str) -> list[tuple[str, int, int]]:
        decoder = self.decoder()
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        # Reset feature extraction (cepstral mean state): otherwise an alignment depends on the
        # utterances processed before it, and a cache would depend on file order.
        decoder.reinit_feat()
        try:
            decoder.set_align_text(text)
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            decoder.set_alignment()  # second pass: phone-level segmentation
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            alignment = decoder.get_alignment()
        except RuntimeError as error:
            raise ValueError(f"pocketsphinx could not align the transcript {text!r}: {error}") from error
        if alignment is None:
            raise ValueError(f"pocketsphinx found no alignment for {text!r}; check that the text matches the audio")
        return [(phone.name, phone.start, phone.duration) for word in alignment for phone in word]

    def labels_for(self, audio: np.ndarray, text: str) -> torch.Tensor:
        """Phone ids ``[T]`` at 50 Hz (``ceil(N/320)`` frames) for one utterance; unaligned frames = SIL."""
        fine = np.zeros(max(1, -(-len(audio) // ALIGN_HOP)), dtype=np.int64)  # 100 Hz labels
        for name, start, duration in self.align(audio, text):
            fine[start : start + duration] = PHONE_INDEX.get(name, 0)  # noise phones → silence
        frames = num_frames(len(audio), SAMPLE_RATE, self.frame_rate)
        centres = np.minimum(np.arange(frames) * 2 + 1, len(fine) - 1)  # 10 ms frame at each 20 ms centre
        return torch.from_numpy(fine[centres])

    def labels(self, wav: torch.Tensor, texts: list[str], lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Phone ids ``[B, T]`` for ``wav [B, 1, T]`` at 16 kHz and one transcript per item (padding = SIL)."""
        if wav.dim() != 3 or wav.shape[1] != 1 or len(texts) != wav.shape[0]:
            raise ValueError(f"need mono wav [B, 1, T] at 16 kHz and B transcripts; got {tuple(wav.shape)}, {len(texts)}")
        samples = wav.shape[-1]
        lengths = [samples] * wav.shape[0] if lengths is None else [int(n) for n in lengths]
        out = torch.zeros(wav.shape[0], num_frames(samples, SAMPLE_RATE, self.frame_rate), dtype=torch.long)
        for item, (text, length) in enumerate(zip(texts, lengths)):
            labels = self.labels_for(wav[item, 0, :length].float().cpu().numpy(), text)
            out[item, : labels.shape[0]] = labels
        return out

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor | None = None, texts: list[str] | None = None):
        """One-hot phones ``[B, 40, T]`` (float); ``texts`` (one transcript per item) is required."""
        if texts is None:
            raise ValueError("the phone teacher needs transcripts: call it with texts=[...] (or use a cache)")
        return one_hot_phones(self.labels(wav, texts, lengths))


def one_hot_phones(labels: torch.Tensor) -> torch.Tensor:
    """Phone ids ``[B, T]`` → one-hot float ``[B, 40, T]``."""
    return F.one_hot(labels.long(), len(PHONES)).transpose(1, 2).float()
