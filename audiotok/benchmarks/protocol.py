"""What the benchmark needs from a tokenizer, and an identity "tokenizer" that fits it.

Any object with the metadata below and ``tokenize`` / ``detokenize`` returning objects with the
fields of :class:`audiotok.tokenizers.TokenizedAudio` / ``DetokenizedAudio`` can be benchmarked.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

IDENTITY = "identity"


@runtime_checkable
class BenchTokenizer(Protocol):
    sample_rate: int
    frame_rate: float
    num_codebooks: int
    codebook_size: int
    bitrate: float

    def tokenize(self, audio, sample_rate: int | None = None, n_q: int | None = None): ...

    def detokenize(self, codes, lengths=None): ...


@dataclass
class IdentityTokens:
    codes: torch.Tensor  # [B, 1, T] int64: each float32 sample's bit pattern, one token per sample
    lengths: torch.Tensor  # [B]


@dataclass
class IdentityAudio:
    audio: torch.Tensor  # [B, 1, T]
    lengths: torch.Tensor
    sample_rate: int

    def unbatch(self) -> list[torch.Tensor]:
        return [a[:, :n] for a, n in zip(self.audio, self.lengths.tolist())]


class IdentityTokenizer:
    """Audio passed through: each float32 sample's 32-bit pattern is one token (one codebook of
    2^32, one token per sample), so detokenize returns the input exactly.

    It gives the ground-truth row of a report (ASR WER and speaker similarity of the originals).
    Probes are not run on it: one token per sample is far too long a sequence for them.
    """

    codebook_size = 2**32
    num_codebooks = 1
    is_reference = True

    def __init__(self, sample_rate: int = 16_000):
        self.sample_rate = sample_rate
        self.frame_rate = float(sample_rate)
        self.bitrate = 32.0 * sample_rate
        self.codec = None

    def tokenize(self, audio, sample_rate: int | None = None, n_q: int | None = None) -> IdentityTokens:
        """``audio``: a ``[1, T]`` / ``[T]`` waveform or a list of them."""
        from audiotok.data import resample
        from audiotok.tokenizers.tokenizer import pad_stack

        if isinstance(audio, torch.Tensor) and audio.dim() <= 2:
            audio = [audio]
        wavs = [resample(torch.as_tensor(w).reshape(1, -1).float(), sample_rate or self.sample_rate,
                         self.sample_rate).contiguous() for w in audio]
        codes = [w.view(torch.int32).long() & 0xFFFFFFFF for w in wavs]
        return IdentityTokens(pad_stack(codes), torch.tensor([c.shape[-1] for c in codes]))

    def detokenize(self, codes, lengths=None) -> IdentityAudio:
        codes = codes.codes if isinstance(codes, IdentityTokens) else torch.as_tensor(codes)
        lengths = torch.full((codes.shape[0],), codes.shape[-1]) if lengths is None else torch.as_tensor(lengths)
        signed = torch.where(codes >= 2**31, codes - 2**32, codes).to(torch.int32)
        return IdentityAudio(signed.view(torch.float32).clone(), lengths, self.sample_rate)


def load_tokenizer(name: str, seed: int = 0) -> BenchTokenizer:
    """``"identity"`` or anything :func:`audiotok.load` accepts. The seed is set first, so a
    registered architecture with random weights gets the same weights on every run."""
    if name == IDENTITY:
        return IdentityTokenizer()
    import warnings

    import audiotok

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*weights are random.*")
        return audiotok.load(name)


def has_random_weights(name: str) -> bool:
    """True when ``name`` is a registered architecture name and no such file exists (random weights)."""
    from pathlib import Path

    from audiotok.codecs.families import REGISTRY

    return name in REGISTRY and not Path(name).expanduser().exists()


def tokenizer_identity(name: str, tok) -> str:
    """A short hash of the name and the weights: the cache key of resynthesised audio."""
    digest = hashlib.sha1(name.encode())
    codec = getattr(tok, "codec", None)
    folder = getattr(codec, "directory", None)  # an ONNX export: its graph and weight files
    if folder is not None:
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            digest.update(path.name.encode())
            with path.open("rb") as file:
                for block in iter(lambda: file.read(1 << 20), b""):
                    digest.update(block)
    elif codec is not None:
        for key, value in sorted(codec.state_dict().items()):
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]
