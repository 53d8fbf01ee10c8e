"""Frame-by-frame encoding and decoding with a causal codec, equal to offline by construction.

The codec's causal modules carry their own state between calls (see
``audiotok.codecs.modules.streaming``); this module only gives that machinery a small API:

* :class:`Stream` — an open stream of ``batch_size`` independent items:
  ``encode_step(chunk [B, 1, k·hop]) -> codes [B, Q, k]`` and
  ``decode_step(codes [B, Q, k]) -> audio [B, 1, k·hop]`` for any whole number ``k`` of frames per
  call, ``reset(mask)`` to restart some items (e.g. a new caller on that slot), ``close()``.
* :func:`stream_encode` / :func:`stream_decode` — run a whole signal through a stream in chunks of
  ``chunk_frames`` frames; the result equals ``codec.encode`` / ``codec.decode`` (codes identical,
  audio to float rounding).

:class:`Stream` is the one way in: the tokenizer's long-audio path, ``audiotok stream`` and the streaming
benchmark all stream through it. It checks what it is given (``n_q`` once when it opens; each step's
layout, and its codes on the CPU); the codec's step methods trust it. The state lives in the codec's
modules, so a codec holds one open stream at a time; encoding and decoding use disjoint modules and may
interleave within that stream. Non-causal codecs (SpeechTokenizer, WavTokenizer) look at future samples
and refuse to stream (:meth:`Codec.check_can_stream <audiotok.codecs.Codec.check_can_stream>`).
"""
from __future__ import annotations

from typing import Self

import torch

from audiotok.codecs.codec import Codec


def _as_codec(codec_or_tokenizer) -> Codec:
    """Accept a :class:`Codec`, anything exposing one as ``.codec`` (a ``Tokenizer``), or a codec with
    the same streaming methods (the ONNX runtime's ``OnnxCodec``)."""
    codec = getattr(codec_or_tokenizer, "codec", codec_or_tokenizer)
    if not isinstance(codec, Codec) and not all(
            hasattr(codec, name) for name in ("start_streaming", "encode_step", "decode_step")):
        raise TypeError(f"expected an audiotok Codec or Tokenizer, got {type(codec_or_tokenizer).__name__}")
    return codec


class Stream:
    """``batch_size`` independent streams through one causal codec.

    Usage::

        with Stream(codec, batch_size=1) as stream:
            for chunk in chunks:                      # [B, 1, k * hop]
                codes = stream.encode_step(chunk)     # [B, Q, k]
                audio = stream.decode_step(codes)     # [B, 1, k * hop]

    ``n_q`` picks how many codebooks ``encode_step`` returns (the codec's default when ``None``).
    """

    def __init__(self, codec, batch_size: int = 1, n_q: int | None = None):
        self.codec = _as_codec(codec)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if self.codec.is_streaming:
            raise RuntimeError("this codec already has an open stream (state lives in its modules); "
                               "close it first, or load a second codec for a second stream")
        self.batch_size = batch_size
        self.n_q = self.codec.resolve_n_q(n_q)
        # a codec cast to bfloat16/float16 gets its chunks in its precision; audio comes back float32
        self._dtype = self.codec._device_and_dtype()[1] if isinstance(self.codec, Codec) else None
        self.codec.start_streaming(batch_size)

    @property
    def hop_length(self) -> int:
        return self.codec.hop_length

    @property
    def is_open(self) -> bool:
        return self.codec.is_streaming

    def _check_open(self) -> None:
        if not self.is_open:
            raise RuntimeError("this stream is closed; open a new Stream(codec, batch_size)")

    @torch.no_grad()
    def encode_step(self, chunk: torch.Tensor) -> torch.Tensor:
        """``[B, 1, k·hop] -> codes [B, Q, k]`` (``k >= 1`` whole frames)."""
        self._check_open()
        if chunk.dim() != 3 or chunk.shape[0] != self.batch_size or chunk.shape[1] != 1:
            raise ValueError(f"chunks must be [{self.batch_size}, 1, k*{self.hop_length}], got "
                             f"{tuple(chunk.shape)}")
        if self._dtype is not None and chunk.is_floating_point():
            chunk = chunk.to(self._dtype)
        return self.codec.encode_step(chunk, self.n_q)

    @torch.no_grad()
    def decode_step(self, codes: torch.Tensor) -> torch.Tensor:
        """``codes [B, Q, k] -> audio [B, 1, k·hop]``.

        Checked here, once per step: the layout always, the code values when the codes are on the CPU.
        Codes on an accelerator are not read (that would wait for the device on every step); out-of-range
        codes there fail inside the codebook lookup.
        """
        self._check_open()
        if codes.dim() != 3 or codes.shape[0] != self.batch_size:
            raise ValueError(f"codes must be [{self.batch_size}, Q, k], got {tuple(codes.shape)}")
        if isinstance(self.codec, Codec):  # (an OnnxCodec checks its own codes on the host)
            self.codec.check_codes(codes, values=codes.device.type == "cpu")
        return self.codec.decode_step(codes).float()

    def reset(self, mask: torch.Tensor | None = None) -> None:
        """Restart the items selected by ``mask [B]`` (bool; all when ``None``); others go on."""
        self._check_open()
        if mask is not None:
            mask = torch.as_tensor(mask, dtype=torch.bool)
            if mask.shape != (self.batch_size,):
                raise ValueError(f"mask must be [{self.batch_size}] bool, got {tuple(mask.shape)}")
        self.codec.reset_streaming(mask)

    def close(self) -> None:
        """Drop the state; the codec runs offline again."""
        if self.is_open:
            self.codec.stop_streaming()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _chunks(total: int, step: int):
    for start in range(0, total, step):
        yield start, min(start + step, total)


def _check_chunk_frames(chunk_frames: int) -> int:
    if int(chunk_frames) < 1:
        raise ValueError(f"chunk_frames must be a whole number of frames >= 1, got {chunk_frames}")
    return int(chunk_frames)


@torch.no_grad()
def stream_encode(codec, wav: torch.Tensor, chunk_frames: int = 1, n_q: int | None = None) -> torch.Tensor:
    """Encode ``wav [B, 1, T]`` in chunks of ``chunk_frames`` frames: ``codes [B, Q, ceil(T/hop)]``.

    The tail is zero-padded to a whole frame, as offline ``encode`` does.
    """
    codec = _as_codec(codec)
    chunk_frames = _check_chunk_frames(chunk_frames)
    hop = codec.hop_length
    wav = torch.nn.functional.pad(wav, (0, -wav.shape[-1] % hop))
    with Stream(codec, wav.shape[0], n_q) as stream:
        codes = [stream.encode_step(wav[..., a:b])
                 for a, b in _chunks(wav.shape[-1], chunk_frames * hop)]
    return torch.cat(codes, dim=-1)


@torch.no_grad()
def stream_decode(codec, codes: torch.Tensor, chunk_frames: int = 1) -> torch.Tensor:
    """Decode ``codes [B, Q, F]`` in chunks of ``chunk_frames`` frames: ``audio [B, 1, F·hop]``."""
    codec = _as_codec(codec)
    chunk_frames = _check_chunk_frames(chunk_frames)
    with Stream(codec, codes.shape[0]) as stream:
        audio = [stream.decode_step(codes[..., a:b]) for a, b in _chunks(codes.shape[-1], chunk_frames)]
    return torch.cat(audio, dim=-1)
