"""Reading audio files into float32 tensors, with one clear error for every kind of bad input.

Everything goes through soundfile (libsndfile: WAV, FLAC, OGG/Vorbis/Opus, MP3), so any sample rate,
channel count and PCM format (int or float) is read the same way: float32 in [-1, 1] for integer PCM.
"""
from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import torch

from audiotok.data.sources import PERMISSION_ADVICE, path_problem
from audiotok.data.transforms import resample, to_mono

# Sample rates outside this range are almost surely a broken header, not real audio.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000

AudioSource = Union[str, Path, bytes, BinaryIO]


class AudioError(ValueError):
    """An audio input that cannot be used; the message names the file and the problem."""

    def __init__(self, name: str, problem: str):
        self.name = str(name)
        self.problem = problem
        super().__init__(f"{self.name}: {problem}")


def check_sample_rate(sample_rate: int, name: str = "audio") -> int:
    """Return ``sample_rate`` as int, or raise :class:`AudioError` if it is absurd."""
    if not (MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE):
        raise AudioError(
            name,
            f"absurd sample rate {sample_rate} Hz (expected {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE}); "
            "the header is probably broken: re-encode the file",
        )
    return int(sample_rate)


def check_samples(samples: np.ndarray, name: str = "audio") -> None:
    """Raise :class:`AudioError` for empty audio or NaN/Inf samples (``samples`` is ``[T, C]``)."""
    if samples.size == 0 or samples.shape[0] == 0:
        raise AudioError(name, "zero-length audio (no samples); remove or replace the file")
    bad = ~np.isfinite(samples)
    if bad.any():
        raise AudioError(
            name,
            f"{int(bad.sum())} NaN/Inf samples out of {samples.size}; the file is corrupt, "
            "re-export it",
        )


@contextmanager
def _decoding(source: AudioSource, name: str) -> Iterator:
    """``sf.SoundFile`` of ``source`` (rate checked); every decoding failure as :class:`AudioError`."""
    import soundfile as sf

    if isinstance(source, (str, Path)):
        problem = path_problem(source, expect="file")  # missing, a folder, a link loop, no permission
        if problem is not None:
            raise AudioError(name, problem)
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        with sf.SoundFile(source) as f:
            check_sample_rate(f.samplerate, name)
            yield f
    except AudioError:
        raise
    except PermissionError as err:
        raise AudioError(name, f"permission denied: cannot read the file ({err}); {PERMISSION_ADVICE}") from err
    except (sf.LibsndfileError, sf.SoundFileError, RuntimeError, TypeError, OSError) as err:
        raise AudioError(
            name,
            f"cannot decode audio ({err}); the file is corrupt or not a WAV/FLAC/OGG/MP3 file",
        ) from err


def _read(source: AudioSource, name: str) -> tuple[np.ndarray, int]:
    """Decode ``source`` to ``([T, C] float32, sample_rate)`` or raise :class:`AudioError`."""
    with _decoding(source, name) as f:
        sample_rate = f.samplerate
        samples = f.read(dtype="float32", always_2d=True)
    check_samples(samples, name)
    return samples, sample_rate


def audio_info(path: AudioSource, name: str | None = None) -> tuple[int, int]:
    """``(frames, sample_rate)`` of an audio file from its header (nothing decoded)."""
    name = name or str(path)
    with _decoding(path, name) as f:
        return int(f.frames), int(f.samplerate)


def resampled_length(num_samples: int, orig_sr: int, new_sr: int) -> int:
    """Samples after resampling ``num_samples`` (soxr's length, ``ceil(T · new / orig)``)."""
    return num_samples if orig_sr == new_sr else -(-num_samples * int(new_sr) // int(orig_sr))


def iter_audio_blocks(path: AudioSource, block_frames: int, sample_rate: int | None = None,
                      name: str | None = None) -> Iterator[torch.Tensor]:
    """Read a file block by block as mono ``[1, n]`` float32 at ``sample_rate``, in bounded memory.

    Blocks of ``block_frames`` file frames are averaged to mono and resampled with soxr's streaming
    resampler, so the concatenated blocks equal :func:`load_audio` (``mono=True``) sample for sample
    while at most one block is held. Raises :class:`AudioError` like :func:`load_audio`, for a bad
    block when that block is reached.
    """
    import soxr

    name = name or (str(path) if isinstance(path, (str, Path)) else "<in-memory audio>")
    if block_frames < 1:
        raise ValueError(f"block_frames must be >= 1, got {block_frames}")
    with _decoding(path, name) as f:
        sr, total, done = int(f.samplerate), int(f.frames), 0
        if total == 0:
            raise AudioError(name, "zero-length audio (no samples); remove or replace the file")
        target = sr if sample_rate is None else check_sample_rate(sample_rate, f"target rate for {name}")
        stream = None if target == sr else soxr.ResampleStream(sr, target, 1, dtype="float32", quality="HQ")
        while done < total:
            samples = f.read(min(block_frames, total - done), dtype="float32", always_2d=True)
            if samples.shape[0] == 0:  # the header promised more frames than the file holds
                break
            done += samples.shape[0]
            check_samples(samples, name)
            mono = to_mono(torch.from_numpy(np.ascontiguousarray(samples.T)))
            if stream is not None:
                mono = torch.from_numpy(stream.resample_chunk(mono[0].numpy(), last=done >= total))[None]
            yield mono
        if stream is not None and done < total:  # cut short: flush the resampler's tail
            yield torch.from_numpy(stream.resample_chunk(np.zeros(0, np.float32), last=True))[None]


def load_audio(
    path: AudioSource,
    sample_rate: int | None = None,
    mono: bool = True,
    name: str | None = None,
) -> tuple[torch.Tensor, int]:
    """Read an audio file (or bytes / file object) as ``([C, T] float32, sample_rate)``.

    ``mono`` averages the channels to ``[1, T]``; ``sample_rate`` resamples with soxr (the returned
    rate is then ``sample_rate``). ``name`` labels errors for in-memory sources.
    Raises :class:`AudioError` (a ``ValueError``) naming the file and what is wrong with it.
    """
    name = name or (str(path) if isinstance(path, (str, Path)) else "<in-memory audio>")
    samples, sr = _read(path, name)
    wav = torch.from_numpy(np.ascontiguousarray(samples.T))
    if mono:
        wav = to_mono(wav)
    if sample_rate is not None and int(sample_rate) != sr:
        wav = resample(wav, sr, check_sample_rate(sample_rate, f"target rate for {name}"))
        sr = int(sample_rate)
    return wav, sr


def from_array(
    array, sample_rate: int, target_rate: int | None = None, mono: bool = True, name: str = "audio"
) -> tuple[torch.Tensor, int]:
    """Validate an in-memory array (``[T]``, or ``[C, T]`` channels first) like :func:`load_audio`."""
    samples = np.asarray(array, dtype=np.float32)
    if samples.ndim == 1:
        samples = samples[:, None]
    elif samples.ndim == 2:
        samples = samples.T
    else:
        raise AudioError(name, f"expected a 1-D or 2-D [C, T] array, got shape {samples.shape}")
    sr = check_sample_rate(sample_rate, name)
    check_samples(samples, name)
    wav = torch.from_numpy(np.ascontiguousarray(samples.T))
    if mono:
        wav = to_mono(wav)
    if target_rate is not None and int(target_rate) != sr:
        wav = resample(wav, sr, int(target_rate))
        sr = int(target_rate)
    return wav, sr


def save_audio(path: str | Path, wav: torch.Tensor | np.ndarray, sample_rate: int) -> Path:
    """Write ``[C, T]`` (or ``[T]``) float audio; format from the suffix, WAV/FLAC as 16-bit PCM."""
    return save_audio_pieces(path, [wav], sample_rate)


def save_audio_pieces(path: str | Path, pieces: Iterable[torch.Tensor | np.ndarray], sample_rate: int) -> Path:
    """Write consecutive ``[C, n_i]`` (or ``[n_i]``) pieces as one file, one piece in memory at a time;
    the bytes equal :func:`save_audio` of the pieces joined."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    subtype = "PCM_16" if path.suffix.lower() in (".wav", ".flac") else None
    with ExitStack() as stack:
        file = None
        for wav in pieces:
            array = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
            array = array.T if array.ndim == 2 else array
            if file is None:  # opened at the first piece: its channels
                channels = array.shape[1] if array.ndim == 2 else 1
                file = stack.enter_context(sf.SoundFile(str(path), "w", int(sample_rate), channels, subtype))
            file.write(np.clip(array, -1.0, 1.0))
        if file is None:
            raise ValueError(f"no audio to write to {path}")
    return path
