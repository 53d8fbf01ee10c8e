"""Finding utterances: audio folders, JSONL manifests and LibriSpeech-layout trees.

Each lister returns :class:`AudioItem` records (where the audio is and what we know about it); the
datasets in :mod:`audiotok.data.datasets` load them.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3")
MANIFEST_KEYS = ("path", "text", "speaker", "duration", "split")


@dataclass
class AudioItem:
    """One utterance: an audio file and its optional transcript and speaker label."""

    path: Path
    id: str
    text: str | None = None
    speaker: str | None = None
    duration: float | None = None
    split: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def is_audio_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES


def list_folder(root: str | Path) -> list[AudioItem]:
    """Every audio file under ``root`` (recursive, sorted); transcript from a sidecar ``.txt``.

    Speaker is the parent folder's name relative to ``root`` (None for files directly in it);
    id is the path relative to ``root`` without suffix. ``root`` may also be a single file.
    """
    root = Path(root)
    if root.is_file():
        files, base = [root], root.parent
    elif root.is_dir():
        files, base = sorted(p for p in root.rglob("*") if is_audio_file(p)), root
    else:
        raise FileNotFoundError(f"{root}: no such file or folder")
    items = []
    for path in files:
        rel = path.relative_to(base)
        sidecar = path.with_suffix(".txt")
        text = sidecar.read_text(encoding="utf-8").strip() if sidecar.is_file() else None
        speaker = rel.parent.as_posix() if rel.parent != Path(".") else None
        items.append(AudioItem(path, rel.with_suffix("").as_posix(), text, speaker))
    return items


def read_manifest(path: str | Path, split: str | None = None) -> list[AudioItem]:
    """Rows of a JSONL manifest (``{"path", "text", "speaker", "duration", "split"}``).

    Relative paths are resolved against the manifest's folder; ``split`` keeps only that split.
    A row without ``path`` or with broken JSON raises ``ValueError`` naming the line.
    """
    path = Path(path)
    items = []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                audio = Path(row["path"])
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ValueError(
                    f"{path}:{line_no}: bad manifest row ({err!r}); each line must be a JSON object "
                    'with at least "path"'
                ) from None
            if split is not None and row.get("split") != split:
                continue
            audio = audio if audio.is_absolute() else path.parent / audio
            extra = {k: v for k, v in row.items() if k not in MANIFEST_KEYS and k != "id"}
            items.append(
                AudioItem(
                    path=audio,
                    id=str(row.get("id") or Path(row["path"]).with_suffix("").as_posix()),
                    text=row.get("text"),
                    speaker=None if row.get("speaker") is None else str(row["speaker"]),
                    duration=row.get("duration"),
                    split=row.get("split"),
                    extra=extra,
                )
            )
    return items


def manifest_row(item: AudioItem, base: Path) -> dict[str, Any]:
    """The JSONL row for ``item`` with its path relative to ``base`` (the manifest's folder)."""
    row = asdict(item)
    extra = row.pop("extra")
    try:
        row["path"] = Path(item.path).relative_to(base).as_posix()
    except ValueError:
        row["path"] = str(Path(item.path).resolve())
    return {**row, **extra}


def write_manifest(path: str | Path, items: Iterable[AudioItem]) -> Path:
    """Write ``items`` as JSONL (one row per line, paths relative to the manifest's folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(manifest_row(item, path.parent), ensure_ascii=False) + "\n")
    return path


def is_librispeech_tree(root: str | Path) -> bool:
    """True when ``root`` holds ``*.trans.txt`` transcripts (LibriSpeech layout)."""
    return Path(root).is_dir() and next(Path(root).rglob("*.trans.txt"), None) is not None


def list_librispeech(root: str | Path) -> list[AudioItem]:
    """Utterances of a LibriSpeech-layout tree: ``<speaker>/<chapter>/<spk>-<ch>-<utt>.flac`` with
    ``<spk>-<ch>.trans.txt`` lines ``<utt-id> <TRANSCRIPT>``. Lines whose audio is missing are kept
    (the dataset reports them as unreadable)."""
    root = Path(root)
    items = []
    for trans in sorted(root.rglob("*.trans.txt")):
        for line in trans.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            utt_id, _, text = line.strip().partition(" ")
            audio = next(
                (trans.parent / f"{utt_id}{s}" for s in AUDIO_SUFFIXES
                 if (trans.parent / f"{utt_id}{s}").is_file()),
                trans.parent / f"{utt_id}.flac",
            )
            speaker = utt_id.split("-")[0]
            items.append(AudioItem(audio, utt_id, text.strip(), speaker))
    return items
