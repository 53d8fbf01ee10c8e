"""Map-style audio datasets: folders, JSONL manifests, LibriSpeech trees, Hugging Face datasets.

Every dataset yields ``{"audio": [C, T] (C = 1 when mono), "sample_rate", "path", "text" (or None),
"speaker", "id", "length", "offset"}``; ``length`` is the number of real samples (< T when a short clip was
padded to ``segment_length``), ``offset`` the crop's first sample in the file (0 when not cropped; what
a feature cache needs to find the teacher frames of exactly this crop). Batch with :func:`audiotok.data.collate_items`.

Bad files (unreadable, empty, NaN/Inf, absurd rate) never crash an epoch by default
(``on_error="skip"``): the file is reported once with an :class:`AudioSkipWarning`, counted in
:meth:`AudioDataset.skip_summary`, and the next readable item is returned in its place.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

from audiotok.data.audio_io import AudioError, from_array, load_audio
from audiotok.data.sources import (
    AudioItem,
    is_librispeech_tree,
    list_folder,
    list_librispeech,
    path_error,
    path_problem,
    read_manifest,
)
from audiotok.data.transforms import crop_or_pad, normalize_loudness


def crop_with_offset(
    wav: torch.Tensor, segment_length: int, random: bool = True, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, int, int]:
    """:func:`crop_or_pad` that also says where the crop starts: ``(segment [C, L], valid, offset)``.

    Draws the offset exactly as ``crop_or_pad`` does (same generator use), so crops are unchanged.
    """
    spare = wav.shape[-1] - segment_length
    offset = int(torch.randint(0, spare + 1, (1,), generator=generator)) if random and spare > 0 else 0
    segment, valid = crop_or_pad(wav[..., offset:], segment_length, random=False)
    return segment, valid, offset


class AudioSkipWarning(UserWarning):
    """A bad audio file was skipped by a dataset (``on_error="skip"``)."""


class AudioDataset(Dataset):
    """Shared loading, cropping and bad-file handling; subclasses say what item ``i`` is.

    Options: ``sample_rate`` (resample on load; None keeps each file's rate), ``mono`` (downmix),
    ``segment_length`` (samples; random crop, zero padded when shorter), ``random_crop`` (False:
    crop from the start, for evaluation), ``normalize_db`` (RMS loudness target, None = off),
    ``on_error`` ("skip" or "raise").
    """

    def __init__(
        self,
        sample_rate: int | None = None,
        segment_length: int | None = None,
        mono: bool = True,
        on_error: str = "skip",
        random_crop: bool = True,
        normalize_db: float | None = None,
    ):
        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
        if segment_length is not None and segment_length <= 0:
            raise ValueError(f"segment_length must be a positive number of samples, got {segment_length}")
        self.sample_rate = sample_rate
        self.segment_length = segment_length
        self.mono = mono
        self.on_error = on_error
        self.random_crop = random_crop
        self.normalize_db = normalize_db
        self.skipped: dict[str, str] = {}  # path or id -> problem, in this process
        self.listing_problems: dict[str, str] = {}  # folder entries that could not be listed

    # -- what subclasses provide -------------------------------------------------------------
    def __len__(self) -> int:
        raise NotImplementedError

    def metadata(self, index: int) -> dict[str, Any]:
        """``{"id", "path", "text", "speaker"}`` of item ``index`` (no audio read)."""
        raise NotImplementedError

    def read(self, index: int) -> tuple[torch.Tensor, int]:
        """Decode item ``index`` to ``([C, T], sample_rate)``; raise :class:`AudioError` if bad."""
        raise NotImplementedError

    # -- shared behaviour --------------------------------------------------------------------
    def load(self, index: int) -> dict[str, Any]:
        """Item ``index`` with audio, or :class:`AudioError` (no skipping)."""
        meta = self.metadata(index)
        wav, sr = self.read(index)
        if self.normalize_db is not None:
            wav = normalize_loudness(wav, self.normalize_db)
        length, offset = wav.shape[-1], 0
        if self.segment_length is not None:
            wav, length, offset = crop_with_offset(wav, self.segment_length, random=self.random_crop)
        return {**meta, "audio": wav, "sample_rate": sr, "length": length, "offset": offset}

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} items")
        index %= n
        for offset in range(n):
            candidate = (index + offset) % n
            key = self._key(candidate)
            if key in self.skipped:
                continue
            try:
                return self.load(candidate)
            except AudioError as err:
                if self.on_error == "raise":
                    raise
                self.skipped[key] = err.problem
                warnings.warn(f"skipping bad audio {err}", AudioSkipWarning, stacklevel=2)
        raise AudioError(
            type(self).__name__,
            f"none of the {n} items could be read ({len(self.skipped)} skipped); see the warnings",
        )

    def _key(self, index: int) -> str:
        meta = self.metadata(index)
        return str(meta.get("path") or meta["id"])

    def skip_summary(self) -> str:
        """One line per skipped file, after a count (what this process saw)."""
        lines = [f"{len(self.skipped)} of {len(self)} audio files skipped"]
        lines += [f"  {key}: {problem}" for key, problem in sorted(self.skipped.items())]
        if self.listing_problems:
            lines.append(f"{len(self.listing_problems)} folder entries could not be listed")
            lines += [f"  {key}: {problem}" for key, problem in sorted(self.listing_problems.items())]
        return "\n".join(lines)

    def scan(self) -> dict[str, str]:
        """Read every item once, mark the bad ones as skipped and return them (path -> problem)."""
        for index in range(len(self)):
            key = self._key(index)
            if key in self.skipped:
                continue
            try:
                self.read(index)
            except AudioError as err:
                if self.on_error == "raise":
                    raise
                self.skipped[key] = err.problem
        return dict(self.skipped)


class ItemsDataset(AudioDataset):
    """A dataset over a list of :class:`AudioItem` (the base of the folder/manifest/LibriSpeech sets)."""

    def __init__(self, items: Sequence[AudioItem], **options):
        super().__init__(**options)
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def metadata(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        return {"id": item.id, "path": str(item.path), "text": item.text, "speaker": item.speaker}

    def read(self, index: int) -> tuple[torch.Tensor, int]:
        return load_audio(self.items[index].path, self.sample_rate, mono=self.mono)

    def speakers(self) -> list[str]:
        return sorted({i.speaker for i in self.items if i.speaker is not None})


class AudioFolderDataset(ItemsDataset):
    """Every audio file under a folder (recursive); transcript from a sidecar ``.txt`` if present."""

    def __init__(self, root: str | Path, **options):
        self.root = Path(root)
        problems: dict[str, str] = {}
        items = list_folder(self.root, problems)
        if not items:
            unreadable = "".join(f"; {path}: {problem}" for path, problem in problems.items())
            raise ValueError(f"{root}: no audio files (.wav/.flac/.ogg/.opus/.mp3) found{unreadable}")
        super().__init__(items, **options)
        self.listing_problems = problems
        for path, problem in problems.items():  # symlink loops, unreadable folders: never silent
            warnings.warn(f"skipping {path}: {problem}", AudioSkipWarning, stacklevel=2)


class ManifestDataset(ItemsDataset):
    """Rows of a JSONL manifest ``{"path", "text", "speaker", "duration", "split"}``.

    ``split`` keeps only the rows of that split (e.g. the corpus' ``manifest.jsonl``).
    """

    def __init__(self, manifest: str | Path, split: str | None = None, **options):
        self.manifest = Path(manifest)
        items = read_manifest(self.manifest, split=split)
        if not items:
            what = f" with split={split!r}" if split else ""
            raise ValueError(f"{manifest}: manifest has no rows{what}")
        super().__init__(items, **options)


class LibriSpeechDataset(ItemsDataset):
    """A LibriSpeech-layout tree (``<spk>/<chapter>/*.flac`` + ``*.trans.txt``)."""

    def __init__(self, root: str | Path, **options):
        self.root = Path(root)
        items = list_librispeech(self.root)
        if not items:
            raise ValueError(f"{root}: no *.trans.txt transcripts found (not a LibriSpeech tree)")
        super().__init__(items, **options)


class HFAudioDataset(AudioDataset):
    """A Hugging Face ``datasets.Dataset`` with an audio column.

    The audio column is read undecoded (``Audio(decode=False)``) and decoded with soundfile, so no
    torchcodec/ffmpeg is needed; plain path strings and ``{"array", "sampling_rate"}`` dicts work too.
    Text and speaker columns are guessed from common names unless given.
    """

    TEXT_COLUMNS = ("text", "sentence", "transcription", "transcript", "normalized_text")
    SPEAKER_COLUMNS = ("speaker_id", "speaker", "client_id")

    def __init__(
        self,
        dataset,
        audio_column: str = "audio",
        text_column: str | None = None,
        speaker_column: str | None = None,
        **options,
    ):
        super().__init__(**options)
        columns = list(dataset.column_names)
        if audio_column not in columns:
            raise ValueError(f"dataset has no audio column {audio_column!r}; columns: {columns}")
        try:
            from datasets import Audio

            if isinstance(dataset.features[audio_column], Audio):
                dataset = dataset.cast_column(audio_column, Audio(decode=False))
        except ImportError:  # pragma: no cover - an HF dataset implies the package
            pass
        self.dataset = dataset
        self.audio_column = audio_column
        self.text_column = text_column or next((c for c in self.TEXT_COLUMNS if c in columns), None)
        self.speaker_column = speaker_column or next(
            (c for c in self.SPEAKER_COLUMNS if c in columns), None
        )

    def __len__(self) -> int:
        return len(self.dataset)

    def _audio_field(self, index: int):
        return self.dataset[index][self.audio_column]

    def metadata(self, index: int) -> dict[str, Any]:
        row = self.dataset[index]
        audio = row[self.audio_column]
        path = audio.get("path") if isinstance(audio, dict) else (audio if isinstance(audio, str) else None)
        speaker = row.get(self.speaker_column) if self.speaker_column else None
        return {
            "id": str(row.get("id", index)),
            "path": path,
            "text": row.get(self.text_column) if self.text_column else None,
            "speaker": None if speaker is None else str(speaker),
        }

    def _key(self, index: int) -> str:
        return f"{self.audio_column}[{index}]"

    def read(self, index: int) -> tuple[torch.Tensor, int]:
        audio = self._audio_field(index)
        name = f"dataset row {index}"
        if isinstance(audio, str):
            return load_audio(audio, self.sample_rate, mono=self.mono)
        if isinstance(audio, dict) and audio.get("array") is not None:
            return from_array(
                audio["array"], audio["sampling_rate"], self.sample_rate, self.mono, name
            )
        if isinstance(audio, dict) and audio.get("bytes"):
            return load_audio(audio["bytes"], self.sample_rate, mono=self.mono,
                              name=f"{name} ({audio.get('path') or 'bytes'})")
        if isinstance(audio, dict) and audio.get("path"):
            return load_audio(audio["path"], self.sample_rate, mono=self.mono)
        raise AudioError(name, f"audio column holds no path, bytes or array ({type(audio).__name__})")


def build_dataset(source, **options) -> AudioDataset:
    """Pick the dataset type for ``source`` and build it with ``options`` (see :class:`AudioDataset`).

    ``source`` may be a ``datasets.Dataset``; a ``.jsonl`` manifest; a folder holding
    ``manifest.jsonl`` (e.g. a built corpus; ``split=`` selects a split); a LibriSpeech tree
    (``*.trans.txt``); any other folder of audio; or a single audio file.
    """
    if hasattr(source, "column_names") and hasattr(source, "features"):
        return HFAudioDataset(source, **options)
    path = Path(source)
    if path.is_file() and path.suffix == ".jsonl":
        return ManifestDataset(path, **options)
    split = options.pop("split", None)
    if path.is_dir() and (path / "manifest.jsonl").is_file():
        return ManifestDataset(path / "manifest.jsonl", split=split, **options)
    if split is not None:
        raise ValueError(f"split={split!r} needs a manifest with a split column; {path} has none")
    if is_librispeech_tree(path):
        return LibriSpeechDataset(path, **options)
    if path.is_dir() or path.is_file():
        return AudioFolderDataset(path, **options)
    problem = path_problem(path)
    if problem is not None and not problem.startswith("does not exist"):
        raise path_error(source, problem)
    raise FileNotFoundError(
        f"{source}: no such file or folder (expected an audio folder, a .jsonl manifest, "
        "a LibriSpeech tree or a datasets.Dataset)"
    )
