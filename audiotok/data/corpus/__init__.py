"""The built-in speech corpus: English speech with transcripts and speaker labels, synthesised
offline with flite and espeak-ng (no download).

``ensure_corpus("tiny")`` returns a built corpus folder (building and caching it on first use);
read it with ``audiotok.data.build_dataset(folder, split="train", sample_rate=...)``.
"""
from __future__ import annotations

from pathlib import Path

from audiotok.data.corpus.build import (
    CORPUS_SAMPLE_RATE,
    SIZES,
    build_corpus,
    default_root,
    is_built,
    plan_corpus,
)
from audiotok.data.corpus.intelligibility import measure_intelligibility, voice_intelligibility
from audiotok.data.corpus.summary import read_summary
from audiotok.data.corpus.voices import VOICES, Voice, check_engines


def ensure_corpus(
    size: str | int = "tiny", seed: int = 0, root: str | Path | None = None, progress: bool = False
) -> Path:
    """The folder of a built corpus (with ``manifest.jsonl``), building it if it is absent.

    Default folder: :func:`default_root` (``$AUDIOTOK_CACHE/corpus/<size>-seed<seed>`` or
    ``~/.cache/audiotok/corpus/...``). Safe when several processes ask at once; a non-empty
    folder that is not a corpus is never deleted (``FileExistsError``).
    """
    root = Path(root) if root is not None else default_root(size, seed)
    if is_built(root):
        return root
    outdated = (root / "summary.json").is_file()  # an older corpus version: rebuild it
    try:
        return build_corpus(root, size, seed, progress=progress, force=outdated)
    except OSError:
        if is_built(root):  # another process finished the same corpus first
            return root
        raise


__all__ = [
    "CORPUS_SAMPLE_RATE",
    "SIZES",
    "VOICES",
    "Voice",
    "build_corpus",
    "check_engines",
    "default_root",
    "ensure_corpus",
    "is_built",
    "measure_intelligibility",
    "plan_corpus",
    "read_summary",
    "voice_intelligibility",
]
