"""`Tokenizer`: audio in any common form → codes ``[B, Q, F]`` and back, exactly per item.

What it adds on top of :class:`~audiotok.codecs.Codec`:

* **Inputs**: a tensor or array ``[T]``, ``[C, T]`` or ``[B, C, T]``, a path, or a list of paths /
  arrays of different lengths. Channels are averaged, audio is resampled to the codec's rate
  (``sample_rate=None`` means the audio already is at ``tok.sample_rate``).
* **Batching that never changes an item's codes.** A causal codec never looks ahead, so right zero
  padding cannot touch the frames of the real audio: items of any lengths share a batch. A non-causal
  codec (reflect padding, BiLSTM, Vocos attention) sees the padding, so only items of *equal length*
  share a batch; the rest run one length-group at a time. Either way the codes of an item equal
  those of encoding it alone.
* **Long audio in bounded memory** (longer than ``chunk_seconds``): a causal codec streams through a
  :class:`~audiotok.tokenizers.streaming.Stream` in whole-frame chunks, which is exact; a non-causal
  codec encodes overlapping windows and keeps each window's central frames (``context_seconds`` on each
  side), which is *approximate*: frames near a window edge may differ from encoding the whole file at
  once. Decoding long code sequences works the same way; :meth:`Tokenizer.iter_detokenize` yields one
  item's audio chunk by chunk, so a long output can be written without holding its whole waveform.
* **Validation at the boundary**: ``tokenize`` checks the audio and ``n_q`` once per call,
  ``detokenize`` the codes' layout (their values: ``Codec.decode``, or once per long item); the
  batching and chunking inside pass the checked values on.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from audiotok.codecs.codec import Codec
from audiotok.data.audio_io import (AudioError, audio_info, from_array, iter_audio_blocks, load_audio,
                                    resampled_length)
from audiotok.tokenizers.streaming import Stream

# Chunking defaults: bounded memory for hour-long files at little cost for normal utterances.
DEFAULT_CHUNK_SECONDS = 30.0
DEFAULT_CONTEXT_SECONDS = 2.0
# Peak amplitudes of float audio (see Tokenizer.tokenize): above WARN_PEAK a warning (clipped or
# unnormalised audio gives poor codes), above REFUSE_PEAK a ValueError (no float audio is that loud:
# it is integer PCM passed as float, and its codes would be meaningless).
WARN_PEAK = 1.5
REFUSE_PEAK = 1000.0
PCM_DIVIDE = "divide 16-bit PCM by 32768 (24-bit by 2**23, 32-bit by 2**31) to get floats in [-1, 1]"


@dataclass
class TokenizedAudio:
    """``codes [B, Q, F]`` int64 (zero after each item's end), ``lengths [B]`` valid frames,
    ``num_samples [B]`` input samples at ``sample_rate`` (so decoding trims to the exact length)."""

    codes: torch.Tensor
    lengths: torch.Tensor
    num_samples: torch.Tensor
    sample_rate: int
    frame_rate: float

    def __len__(self) -> int:
        return self.codes.shape[0]

    def unbatch(self) -> list[torch.Tensor]:
        """Each item's codes ``[Q, F_i]`` without padding."""
        return [c[:, :n] for c, n in zip(self.codes, self.lengths.tolist())]


@dataclass
class DetokenizedAudio:
    """``audio [B, 1, T]`` (zero after each item's end), ``lengths [B]`` samples, ``sample_rate``."""

    audio: torch.Tensor
    lengths: torch.Tensor
    sample_rate: int

    def __len__(self) -> int:
        return self.audio.shape[0]

    def unbatch(self) -> list[torch.Tensor]:
        """Each item's audio ``[1, T_i]``."""
        return [a[:, :n] for a, n in zip(self.audio, self.lengths.tolist())]


def pad_stack(items: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack ``[..., L_i]`` tensors into ``[B, ..., L_max]`` with zeros after each one's end."""
    longest = max(t.shape[-1] for t in items)
    out = items[0].new_zeros(len(items), *items[0].shape[:-1], longest)
    for i, t in enumerate(items):
        out[i, ..., : t.shape[-1]] = t
    return out


def _check_layout(array: np.ndarray, name: str) -> None:
    """Reject the classic ``[T, C]`` mix-up (soundfile's layout) before it becomes 48000 channels."""
    if array.ndim >= 2 and array.shape[-2] > 16 and array.shape[-1] <= 16:
        raise AudioError(name, f"shape {tuple(array.shape)} looks like [T, C] (time first); "
                               "pass channels first, e.g. array.T")


class _ForwardReader:
    """Samples ``[a, b)`` of a file read forward block by block (requests move forward); samples
    before the latest request are dropped, so memory stays at about one chunk plus one block."""

    def __init__(self, blocks: Iterator[torch.Tensor], num_samples: int,
                 check: Callable[[torch.Tensor], None]):
        self.blocks, self.shape, self.check = blocks, (1, num_samples), check
        self.buffer, self.start, self.peak = torch.zeros(1, 0), 0, 0.0

    def samples(self, a: int, b: int) -> torch.Tensor:
        """``[1, b - a]`` (zeros past the end of the file)."""
        if a < self.start:
            raise RuntimeError("_ForwardReader only moves forward")
        self.buffer, self.start = self.buffer[:, a - self.start:], a
        pieces = [self.buffer]
        have = self.buffer.shape[-1]
        for block in self.blocks if have < b - a else ():
            self.check(block)
            self.peak = max(self.peak, float(block.abs().max()) if block.numel() else 0.0)
            pieces.append(block)
            have += block.shape[-1]
            if have >= b - a:
                break
        self.buffer = torch.cat(pieces, dim=-1) if len(pieces) > 1 else self.buffer.clone()
        out = self.buffer[:, : b - a]
        return torch.nn.functional.pad(out, (0, b - a - out.shape[-1]))


class Tokenizer:
    """Wraps a :class:`Codec` for inference: ``tokenize`` / ``detokenize`` plus metadata.

    ``n_q``: codebooks to use (default: the codec's default, e.g. Mimi's 8 of 32).
    ``semantic_only``: only the first codebook (SpeechTokenizer / Mimi: the distilled semantic level).
    ``device`` / ``dtype``: where and in what precision the codec runs.
    ``fold_weight_norm``: bake weight norm into plain weights (faster; the codec is changed in place).
    ``batch_size``: items encoded together; ``chunk_seconds`` / ``context_seconds``: long-audio chunking.
    """

    def __init__(self, codec: Codec, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, n_q: int | None = None,
                 semantic_only: bool = False, fold_weight_norm: bool = False, batch_size: int = 16,
                 chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS,
                 context_seconds: float = DEFAULT_CONTEXT_SECONDS, source: str | None = None):
        if fold_weight_norm:
            codec.fold_weight_norm()
        self.codec = codec.eval().to(device=device, dtype=dtype)
        if semantic_only:
            n_q = 1
        if n_q is not None:
            self.codec.set_num_codebooks(n_q)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if chunk_seconds is not None and chunk_seconds <= 0:
            raise ValueError(f"chunk_seconds must be positive (or None for no chunking), got {chunk_seconds}")
        self.device = torch.device(device)
        self.dtype = dtype
        self.batch_size = batch_size
        self.chunk_seconds = chunk_seconds
        self.context_seconds = context_seconds
        self.source = source or codec.config.name  # how it was loaded (written next to saved codes)

    # ---- metadata -------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.codec.frame_rate

    @property
    def hop_length(self) -> int:
        return self.codec.hop_length

    @property
    def num_codebooks(self) -> int:
        """Codebooks produced by ``tokenize`` (the active number, not the codec's maximum)."""
        return self.codec.num_codebooks

    @property
    def codebook_size(self) -> int:
        return self.codec.codebook_size

    @property
    def bitrate(self) -> float:
        """Bits per second at the active number of codebooks."""
        return self.codec.bitrate

    @property
    def is_causal(self) -> bool:
        return self.codec.is_causal

    def __repr__(self) -> str:
        return (f"Tokenizer({self.source!r}: {self.sample_rate} Hz, {self.frame_rate:g} frames/s, "
                f"{self.num_codebooks} × {self.codebook_size} codes, {self.bitrate:.0f} bit/s, "
                f"{'causal' if self.is_causal else 'non-causal'}, {self.device})")

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the codec as ``config.json`` + ``model.safetensors``, or copy its ONNX export (load
        again with ``audiotok.load``)."""
        return self.codec.save_pretrained(directory)

    # ---- inputs ---------------------------------------------------------------------------------
    def prepare(self, audio, sample_rate: int | None = None) -> list[torch.Tensor]:
        """Any supported input → a list of mono ``[1, T_i]`` float32 waveforms at ``self.sample_rate``.

        Raises :class:`~audiotok.data.AudioError` (a ``ValueError``) naming the bad input.
        """
        if isinstance(audio, (str, Path)):
            return [load_audio(audio, self.sample_rate, mono=True)[0]]
        if isinstance(audio, (list, tuple)):
            if not audio:
                raise ValueError("tokenize got an empty list; pass at least one path or array")
            wavs = []
            for i, item in enumerate(audio):
                if isinstance(item, (str, Path)):
                    wavs.append(load_audio(item, self.sample_rate, mono=True)[0])
                else:
                    wavs.append(self._from_array(item, sample_rate, f"item {i}", max_dims=2)[0])
            return wavs
        if isinstance(audio, (torch.Tensor, np.ndarray)):
            return self._from_array(audio, sample_rate, "audio", max_dims=3)
        raise TypeError(f"cannot tokenize a {type(audio).__name__}; pass a tensor/array [T], [C, T] or "
                        "[B, C, T], a path, or a list of paths/arrays")

    def _from_array(self, array, sample_rate: int | None, name: str, max_dims: int) -> list[torch.Tensor]:
        if isinstance(array, torch.Tensor):
            array = array.detach().float().cpu().numpy()
        array = np.asarray(array)
        if array.ndim == 0 or array.ndim > max_dims:
            shapes = "[T], [C, T] or [B, C, T]" if max_dims == 3 else "[T] or [C, T]"
            raise AudioError(name, f"expected audio shaped {shapes}, got shape {tuple(array.shape)}")
        if not np.issubdtype(array.dtype, np.floating):
            raise AudioError(name, f"expected float samples in [-1, 1], got dtype {array.dtype}; "
                                   "convert integer PCM with array / 32768")
        _check_layout(array, name)
        rate = self.sample_rate if sample_rate is None else sample_rate
        rows = array if array.ndim == 3 else [array]
        label = (lambda i: f"{name}[{i}]") if array.ndim == 3 else (lambda i: name)
        return [from_array(row, rate, self.sample_rate, mono=True, name=label(i))[0]
                for i, row in enumerate(rows)]

    # ---- batching -------------------------------------------------------------------------------
    def _batches(self, lengths: Sequence[int]) -> Iterator[list[int]]:
        """Groups of item indices that may share a batch without changing anyone's result."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        if self.is_causal:  # right padding is invisible to earlier frames
            groups = [order]
        else:  # padding would leak in: only equal lengths together
            groups: list[list[int]] = []
            for i in order:
                if groups and lengths[groups[-1][0]] == lengths[i]:
                    groups[-1].append(i)
                else:
                    groups.append([i])
        for group in groups:
            for start in range(0, len(group), self.batch_size):
                yield group[start : start + self.batch_size]

    def _chunk_frames(self) -> int | None:
        if self.chunk_seconds is None:
            return None
        return max(1, math.ceil(self.chunk_seconds * self.frame_rate))

    def _context_frames(self) -> int:
        return max(1, math.ceil(self.context_seconds * self.frame_rate))

    # ---- tokenize -------------------------------------------------------------------------------
    @torch.inference_mode()
    def tokenize(self, audio, sample_rate: int | None = None, n_q: int | None = None,
                 semantic_only: bool = False) -> TokenizedAudio:
        """Audio → :class:`TokenizedAudio` with ``codes [B, Q, F]`` and per-item frame ``lengths``.

        ``sample_rate`` is the rate of array inputs (None: already ``self.sample_rate``; files know
        their own). ``n_q`` / ``semantic_only`` override the codebooks for this call.

        Audio must be float samples in [-1, 1]. If an item peaks above ``WARN_PEAK`` (1.5) one
        ``UserWarning`` per call names the loud items (unnormalised or clipped audio gives poor
        codes); above ``REFUSE_PEAK`` (1000) it raises :class:`~audiotok.data.AudioError` (a
        ``ValueError``): such values are integer PCM passed as float (divide 16-bit PCM by 32768).
        """
        n_q = 1 if semantic_only else self.codec.resolve_n_q(n_q)
        if isinstance(audio, (str, Path)) and self.chunk_seconds is not None:
            frames, rate = audio_info(audio)
            num_samples = resampled_length(frames, rate, self.sample_rate)
            if self.codec.num_frames(num_samples) > self._chunk_frames():  # never loaded whole
                return self._tokenize_long_file(audio, num_samples, rate, n_q)
        wavs = self.prepare(audio, sample_rate)
        self._check_peaks(wavs, audio)
        return self._encode_waveforms(wavs, n_q)

    @staticmethod
    def _check_peaks(wavs: Sequence[torch.Tensor], audio, refuse_only: bool = False) -> None:
        """Refuse integer-PCM-sized amplitudes; warn once about audio well outside [-1, 1]."""
        peaks = [float(w.abs().max()) if w.numel() else 0.0 for w in wavs]
        labels = ([str(audio)] if isinstance(audio, (str, Path)) else
                  [str(a) if isinstance(a, (str, Path)) else f"item {i}" for i, a in enumerate(audio)]
                  if isinstance(audio, (list, tuple)) else
                  ["audio"] if len(wavs) == 1 else [f"audio[{i}]" for i in range(len(wavs))])
        huge = [(label, peak) for label, peak in zip(labels, peaks) if peak > REFUSE_PEAK]
        if huge:
            label, peak = huge[0]
            raise AudioError(label, f"samples reach {peak:g}, far outside [-1, 1]: this looks like integer "
                                    f"PCM passed as float; {PCM_DIVIDE}"
                             + (f" ({len(huge)} items like this)" if len(huge) > 1 else ""))
        loud = [(label, peak) for label, peak in zip(labels, peaks) if peak > WARN_PEAK]
        if loud and not refuse_only:
            names = ", ".join(f"{label} (peak {peak:.3g})" for label, peak in loud[:3])
            warnings.warn(f"audio outside [-1, 1]: {names}{' …' if len(loud) > 3 else ''}. It looks like "
                          f"integer PCM passed as float, or unnormalised audio: {PCM_DIVIDE}, or normalise it "
                          "(audio / abs(audio).max()); codes of audio this loud are unreliable",
                          UserWarning, stacklevel=4)

    @torch.inference_mode()
    def encode_waveforms(self, wavs: Sequence[torch.Tensor], n_q: int | None = None) -> TokenizedAudio:
        """Mono ``[1, T_i]`` waveforms already at ``self.sample_rate`` → :class:`TokenizedAudio`."""
        return self._encode_waveforms(wavs, self.codec.resolve_n_q(n_q))

    def _encode_waveforms(self, wavs: Sequence[torch.Tensor], n_q: int) -> TokenizedAudio:
        """:meth:`encode_waveforms` with ``n_q`` already checked (by the public method that called it)."""
        lengths = [w.shape[-1] for w in wavs]
        limit = self._chunk_frames()
        codes: list[torch.Tensor | None] = [None] * len(wavs)
        short = [i for i, n in enumerate(lengths) if limit is None or self.codec.num_frames(n) <= limit]
        for i in set(range(len(wavs))) - set(short):
            codes[i] = self._encode_long(wavs[i], n_q)
        for batch in self._batches([lengths[i] for i in short]):
            items = [short[j] for j in batch]
            out = self.codec.encode(pad_stack([wavs[i] for i in items]).to(self.device, self.dtype), n_q)
            for row, i in enumerate(items):
                codes[i] = out[row, :, : self.codec.num_frames(lengths[i])].cpu()
        frames = torch.tensor([c.shape[-1] for c in codes], dtype=torch.long)
        return TokenizedAudio(codes=pad_stack(codes), lengths=frames,
                              num_samples=torch.tensor(lengths, dtype=torch.long),
                              sample_rate=self.sample_rate, frame_rate=self.frame_rate)

    def _encode_long(self, wav: torch.Tensor | "_ForwardReader", n_q: int) -> torch.Tensor:
        """One long ``[1, T]`` waveform (or a file read forward) → ``[Q, F]`` in chunks (exact if
        causal, see module doc)."""
        hop, total = self.hop_length, self.codec.num_frames(wav.shape[-1])
        samples = wav.samples if isinstance(wav, _ForwardReader) else (
            lambda a, b: wav[..., a:b])

        def encode(step, start: int, stop: int) -> torch.Tensor:
            # Causal: streaming takes whole frames, so the tail is padded with the zeros offline pads.
            chunk = samples(start * hop, min(stop * hop, wav.shape[-1]))
            if self.is_causal:
                chunk = torch.nn.functional.pad(chunk, (0, (stop - start) * hop - chunk.shape[-1]))
            return step(chunk[None].to(self.device, self.dtype))

        return self._run_chunked(total, encode, lambda x: self.codec.encode(x, n_q), "encode_step",
                                 out_per_frame=1, n_q=n_q)[0].cpu()

    def _tokenize_long_file(self, path: str | Path, num_samples: int, rate: int, n_q: int) -> TokenizedAudio:
        """A file longer than ``chunk_seconds``, read, resampled and encoded chunk by chunk: memory
        stays bounded by the chunk (plus context), whatever the duration; codes equal ``tokenize`` of
        the whole waveform."""
        block = max(1, math.ceil((self.chunk_seconds + 2 * self.context_seconds) * rate))
        reader = _ForwardReader(iter_audio_blocks(path, block, self.sample_rate), num_samples,
                                lambda wav: self._check_peaks([wav], path, refuse_only=True))
        codes = self._encode_long(reader, n_q)
        self._check_peaks([torch.tensor([[reader.peak]])], path)
        return TokenizedAudio(codes=codes[None], lengths=torch.tensor([codes.shape[-1]]),
                              num_samples=torch.tensor([num_samples]), sample_rate=self.sample_rate,
                              frame_rate=self.frame_rate)

    def _run_chunked(self, *args, **kwargs) -> torch.Tensor:
        """:meth:`_iter_chunked`'s outputs joined along the last axis."""
        return torch.cat(list(self._iter_chunked(*args, **kwargs)), dim=-1)

    def _iter_chunked(self, total: int, run: Callable[[Callable, int, int], torch.Tensor], offline: Callable,
                      step: str, out_per_frame: int, n_q: int | None = None) -> Iterator[torch.Tensor]:
        """Yield ``run(call, a, b)`` (frames ``[a, b)``) chunk by chunk over ``[0, total)``, in order.

        Causal: consecutive chunks through one :class:`~audiotok.tokenizers.streaming.Stream` (``call`` is
        its ``step`` method, ``"encode_step"`` or ``"decode_step"``), which carries every module's state
        across the cut (exact). Non-causal: chunks widened by the context on both sides (``call`` is
        ``offline``), keeping the central part (approximate). ``out_per_frame``: output steps per frame
        (1 for codes, hop for audio). The stream stays open until the generator ends or is closed.
        """
        chunk = self._chunk_frames()
        if self.is_causal:
            with Stream(self.codec, 1, n_q) as stream:
                for start in range(0, total, chunk):
                    yield run(getattr(stream, step), start, min(start + chunk, total))
        else:
            context = self._context_frames()
            for start in range(0, total, chunk):
                stop = min(start + chunk, total)
                lo, hi = max(0, start - context), min(total, stop + context)
                out = run(offline, lo, hi)
                yield out[..., (start - lo) * out_per_frame : (stop - lo) * out_per_frame]

    # ---- detokenize -----------------------------------------------------------------------------
    @torch.inference_mode()
    def detokenize(self, codes, lengths=None) -> DetokenizedAudio:
        """Codes → :class:`DetokenizedAudio` trimmed to each item's true length.

        ``codes``: a :class:`TokenizedAudio` (trimmed to the exact input samples), a tensor/array
        ``[B, Q, F]`` or ``[Q, F]``, or a list of ``[Q, F_i]``. ``lengths``: valid frames per item
        (default: all); audio is then ``lengths * hop`` samples long. To write one long item without
        holding its whole waveform, use :meth:`iter_detokenize`.
        """
        items, samples = self._items_and_samples(codes, lengths)
        audio: list[torch.Tensor | None] = [None] * len(items)
        frames = [c.shape[-1] for c in items]
        for i in [i for i, f in enumerate(frames) if self.decodes_in_chunks(f)]:
            audio[i] = self._decode_long(items[i])
        short = [i for i, f in enumerate(frames) if audio[i] is None]
        for batch in self._batches([frames[i] for i in short]):
            idx = [short[j] for j in batch]
            for i, wav in zip(idx, self._decode_batch([items[i] for i in idx])):
                audio[i] = wav
        audio = [a[:, :n] for a, n in zip(audio, samples)]
        return DetokenizedAudio(audio=pad_stack(audio), sample_rate=self.sample_rate,
                                lengths=torch.tensor([a.shape[-1] for a in audio], dtype=torch.long))

    @torch.inference_mode()
    def iter_detokenize(self, codes, num_samples: int | None = None) -> Iterator[torch.Tensor]:
        """One item's codes → consecutive audio pieces ``[1, n_i]``; joined, they equal that item's
        ``detokenize(codes)`` exactly.

        ``codes``: ``[Q, F]`` (or ``[1, Q, F]``) or a :class:`TokenizedAudio` of one item.
        ``num_samples``: the true length to trim to (default: the TokenizedAudio's, else ``F * hop``).
        An item longer than ``chunk_seconds`` is decoded chunk by chunk, one piece per chunk, so memory
        stays at about one chunk whatever its duration; a shorter one is one piece. A causal codec's
        stream stays open until the generator is exhausted or closed.
        """
        items, samples = self._items_and_samples(codes, None)
        if len(items) != 1:
            raise ValueError(f"iter_detokenize decodes one item, got {len(items)}; call it per item")
        item, left = items[0], samples[0] if num_samples is None else int(num_samples)
        long = self.decodes_in_chunks(item.shape[-1])
        pieces = self._iter_decode_long(item) if long else (wav for wav in self._decode_batch([item]))
        with contextlib.closing(pieces):
            for piece in pieces:  # stop decoding once the true length is reached
                yield piece[:, : max(left, 0)]
                left -= piece.shape[-1]
                if left <= 0:
                    break

    def _items_and_samples(self, codes, lengths) -> tuple[list[torch.Tensor], list[int]]:
        """Checked ``[Q, F_i]`` items and the samples each decodes to (a TokenizedAudio's true lengths)."""
        if isinstance(codes, TokenizedAudio):
            items = self._code_items(codes.codes, codes.lengths)
            return items, codes.num_samples.tolist()
        items = self._code_items(codes, lengths)
        return items, [c.shape[-1] * self.hop_length for c in items]

    def decodes_in_chunks(self, num_frames: int) -> bool:
        """Whether an item of ``num_frames`` frames is longer than ``chunk_seconds``, so detokenize
        decodes it chunk by chunk (and :meth:`iter_detokenize` yields one piece per chunk)."""
        limit = self._chunk_frames()
        return limit is not None and num_frames > limit

    def _decode_batch(self, items: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """``[Q, F_i]`` items decoded together → float32 CPU audio ``[1, F_i * hop]`` each."""
        out = self.codec.decode(pad_stack(items).to(self.device))
        return [out[row, :, : c.shape[-1] * self.hop_length].float().cpu() for row, c in enumerate(items)]

    def _code_items(self, codes, lengths) -> list[torch.Tensor]:
        """Normalise decoder input to a list of ``[Q, F_i]`` int64 tensors (validated)."""
        if isinstance(codes, (list, tuple)):
            items = [torch.as_tensor(np.asarray(c) if not isinstance(c, torch.Tensor) else c) for c in codes]
        else:
            codes = torch.as_tensor(np.asarray(codes) if not isinstance(codes, torch.Tensor) else codes)
            if codes.dim() == 2:
                codes = codes[None]
            if codes.dim() != 3:
                raise ValueError(f"codes must be [B, Q, F] or [Q, F], got shape {tuple(codes.shape)}")
            items = list(codes)
        if lengths is not None:
            lengths = torch.as_tensor(lengths).tolist()
            if len(lengths) != len(items):
                raise ValueError(f"got {len(lengths)} lengths for {len(items)} code sequences")
            items = [c[..., : int(n)] for c, n in zip(items, lengths)]
        if not items:
            raise ValueError("detokenize got no code sequences; pass at least one [Q, F] item")
        for i, c in enumerate(items):
            if c.dim() != 2:
                raise ValueError(f"codes item {i} must be [Q, F], got shape {tuple(c.shape)}")
            if c.is_floating_point():
                raise ValueError(f"codes must be integers, got {c.dtype}")
            if c.shape[0] == 0 or c.shape[1] == 0:
                what = "no codebooks (Q = 0)" if c.shape[0] == 0 else "no frames (F = 0)"
                raise ValueError(f"codes item {i} has {what}: shape {tuple(c.shape)}. Each item needs at "
                                 "least one codebook and one frame; drop empty items (their audio is empty) "
                                 "or check the lengths passed")
        if len({c.shape[0] for c in items}) > 1:
            raise ValueError(f"codes have different numbers of codebooks {sorted({c.shape[0] for c in items})}; "
                             "detokenize items with the same Q together")
        return [c.long() for c in items]

    def _decode_long(self, codes: torch.Tensor) -> torch.Tensor:
        """``[Q, F]`` → ``[1, F * hop]`` in chunks (exact if causal): :meth:`_iter_decode_long` joined."""
        return torch.cat(list(self._iter_decode_long(codes)), dim=-1)

    def _iter_decode_long(self, codes: torch.Tensor) -> Iterator[torch.Tensor]:
        """``[Q, F]`` → float32 CPU pieces ``[1, k * hop]``, one per chunk of ``k`` frames."""
        if isinstance(self.codec, Codec):  # once, on the host: streaming steps do not read device codes
            self.codec.check_codes(codes[None])
        codes = codes[None].to(self.device)

        def decode(step, start: int, stop: int) -> torch.Tensor:
            return step(codes[..., start:stop])

        pieces = self._iter_chunked(codes.shape[-1], decode, self.codec.decode, "decode_step",
                                    out_per_frame=self.hop_length)
        with contextlib.closing(pieces):
            for piece in pieces:
                yield piece[0].float().cpu()
