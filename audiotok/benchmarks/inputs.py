"""Which utterances a benchmark runs on: a folder, a manifest, or the built-in corpus by default.

Transcripts are optional (manifest ``text`` or sidecar ``.txt``); items without them only get the
metrics that need no text. Items without a split are assigned one from a hash of their id (80 %
train, 20 % test), so the same folder always splits the same way.
"""
from __future__ import annotations

import zlib
from pathlib import Path

from audiotok.data.sources import AudioItem, list_folder, read_manifest


def bench_items(data: str | Path | None = None, corpus_size: str = "tiny") -> tuple[list[AudioItem], str]:
    """(items, a description of where they came from)."""
    if data is None:
        from audiotok.data.corpus import ensure_corpus

        folder = ensure_corpus(corpus_size)
        items = read_manifest(folder / "manifest.jsonl")
        hard = offline_asr_cannot_judge(folder)
        for item in items:
            item.extra["offline_asr_unreliable"] = item.speaker in hard
        return items, f"built-in corpus '{corpus_size}' ({folder})"
    path = Path(data).expanduser()
    if path.is_file() and path.suffix == ".jsonl":
        items, source = read_manifest(path), f"manifest {path}"
    elif path.is_dir() and (path / "manifest.jsonl").is_file():
        items, source = read_manifest(path / "manifest.jsonl"), f"manifest {path / 'manifest.jsonl'}"
    elif path.exists():
        items, source = list_folder(path), f"audio folder {path}"
    else:
        raise FileNotFoundError(f"--data {data}: no such folder or manifest; give a folder of audio "
                                "files, a manifest.jsonl, or leave it out for the built-in corpus")
    if not items:
        raise ValueError(f"--data {data}: no audio files found (looked for .wav .flac .ogg .opus .mp3)")
    for item in items:
        if item.split is None:
            item.split = "test" if zlib.crc32(item.id.encode()) % 5 == 0 else "train"
    return items, source


def offline_asr_cannot_judge(corpus_dir: Path, max_wer: float = 0.5) -> set[str]:
    """Voices of the built-in corpus that pocketsphinx cannot transcribe (measured WER above
    ``max_wer``; where intelligibility was not measured, every non-flite voice, as the corpus notes)."""
    from audiotok.data.corpus import read_summary, voice_intelligibility

    measured = voice_intelligibility(corpus_dir)
    if measured:
        return {speaker for speaker, wer in measured.items() if wer > max_wer}
    speakers = read_summary(corpus_dir).get("speakers", {})
    return {name for name, info in speakers.items() if info.get("engine") != "flite"}
