"""Finding utterances: audio folders, JSONL manifests and LibriSpeech-layout trees.

Each lister returns :class:`AudioItem` records (where the audio is and what we know about it); the
datasets in :mod:`audiotok.data.datasets` load them.
"""
from __future__ import annotations

import errno
import json
import os
import stat
import warnings
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


class FolderListingWarning(UserWarning):
    """An entry under an audio folder could not be listed (symlink loop, permission denied, broken
    link); :func:`list_folder` warns with it when the caller collects no ``problems``."""


PERMISSION_ADVICE = "fix its permissions (chmod/chown) or run as a user who can read it"


def path_problem(path: str | Path, expect: str = "any") -> str | None:
    """What keeps ``path`` from being used, in words, or None when it is fine.

    ``expect`` is ``"file"`` (an audio file: a folder is a problem, and the file must be readable),
    ``"folder"`` or ``"any"``. Tells apart what a bare ``exists()`` lumps together: a missing path, a
    broken symbolic link, a symbolic link loop, permission denied, and a folder where a file belongs.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return ("symbolic link loop: the link leads back to itself, so nothing can be read through "
                    "it; fix or remove the link")
        if err.errno in (errno.EACCES, errno.EPERM):
            return f"permission denied: cannot reach it (a folder on its path is not searchable); {PERMISSION_ADVICE}"
        if err.errno == errno.ENOENT and os.path.islink(path):
            return (f"broken symbolic link: it points to {os.readlink(path)}, which does not exist; "
                    "fix or remove the link")
        if err.errno == errno.ENOENT:
            return f"{'file ' if expect == 'file' else ''}does not exist (check the path or the manifest)"
        if err.errno == errno.ENOTDIR:
            return "does not exist (a part of its path is a file, not a folder)"
        return f"cannot access it ({err.strerror or err})"
    is_dir = stat.S_ISDIR(info.st_mode)
    if expect == "file" and is_dir:
        return "is a folder, not an audio file; give the path of an audio file inside it"
    if expect == "folder" and not is_dir:
        return "is a file, not a folder"
    if expect == "file":
        try:
            with open(path, "rb"):
                pass
        except PermissionError:
            return f"permission denied: cannot read the file; {PERMISSION_ADVICE}"
        except OSError as err:
            return f"cannot open the file ({err.strerror or err})"
    return None


def path_error(path: str | Path, problem: str) -> OSError:
    """An ``OSError`` of the fitting kind whose message is ``"<path>: <problem>"``."""
    message = f"{path}: {problem}"
    if problem.startswith(("does not exist", "file does not exist", "broken symbolic link")):
        return FileNotFoundError(message)
    if problem.startswith("permission denied"):
        return PermissionError(message)
    return OSError(message)


def is_audio_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES


def find_audio_files(root: str | Path, problems: dict[str, str] | None = None) -> list[Path]:
    """Every audio file under the folder ``root`` (recursive, sorted), following symbolic links.

    Nothing unreadable is skipped silently: a symbolic link loop (a link to itself, or a folder link
    leading back to a folder being listed), a folder that cannot be listed (permission denied) and a
    broken link named like audio go to ``problems`` (``{path: problem}``), or, when ``problems`` is
    None, are reported with a :class:`FolderListingWarning`. A folder reached twice through links
    (not a loop) is listed once.
    """
    found, found_problems = [], {}
    visited: set[tuple[int, int]] = set()

    def visit(folder: Path, ancestors: dict[tuple[int, int], Path]) -> None:
        try:
            info = folder.stat()
        except OSError:
            found_problems[str(folder)] = path_problem(folder) or "cannot access this folder"
            return
        key = (info.st_dev, info.st_ino)
        if key in ancestors:
            found_problems[str(folder)] = (f"symbolic link loop: it leads back to {ancestors[key]}, which "
                                           "is being listed already; its files were listed once, there")
            return
        if key in visited:
            return
        visited.add(key)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except PermissionError:
            found_problems[str(folder)] = f"permission denied: cannot list this folder; {PERMISSION_ADVICE}"
            return
        except OSError as err:
            found_problems[str(folder)] = f"cannot list this folder ({err.strerror or err})"
            return
        inside = {**ancestors, key: folder}
        for entry in entries:
            path = Path(entry.path)
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()
            except OSError:  # ELOOP: a link to itself
                is_dir = is_file = False
            if is_dir:
                visit(path, inside)
            elif is_file:
                if path.suffix.lower() in AUDIO_SUFFIXES:
                    found.append(path)
            elif entry.is_symlink():
                problem = path_problem(path)
                if problem and (problem.startswith("symbolic link loop")
                                or path.suffix.lower() in AUDIO_SUFFIXES):
                    found_problems[str(path)] = problem

    visit(Path(root), {})
    if problems is not None:
        problems.update(found_problems)
    else:
        for path, problem in found_problems.items():
            warnings.warn(f"{path}: {problem}", FolderListingWarning, stacklevel=3)
    return sorted(found)


def list_folder(root: str | Path, problems: dict[str, str] | None = None) -> list[AudioItem]:
    """Every audio file under ``root`` (recursive, sorted); transcript from a sidecar ``.txt``.

    Speaker is the parent folder's name relative to ``root`` (None for files directly in it);
    id is the path relative to ``root`` without suffix. ``root`` may also be a single file.
    Entries that cannot be listed (symbolic link loops, permission denied, broken links) go to
    ``problems`` or are warned about (see :func:`find_audio_files`); a ``root`` that cannot be used
    raises an ``OSError`` that says why (``FileNotFoundError`` when it does not exist).
    """
    root = Path(root)
    problem = path_problem(root)
    if problem is not None and problem.startswith("does not exist"):
        raise FileNotFoundError(f"{root}: no such file or folder")
    if problem is not None:
        raise path_error(root, problem)
    if root.is_dir():
        files, base = find_audio_files(root, problems), root
    else:
        files, base = [root], root.parent
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
