"""Building the corpus: plan utterances and splits, synthesise in parallel, write manifests.

Layout of a built corpus::

    audio/<speaker>/<id>.wav        16 kHz mono 16-bit, RMS-normalised
    manifest.jsonl                  every utterance {"path", "text", "speaker", "duration", "split",
                                    "id", "raw_text"}
    train.jsonl dev.jsonl test.jsonl
    speakers.json                   voice settings per speaker
    summary.json SUMMARY.md         counts, hours, per-voice intelligibility when measured

The same ``(size, seed)`` always gives the same sentences, speakers, splits and audio. The build
happens in a hidden sibling folder that is renamed into place at the end, so a half-built corpus is
never mistaken for a finished one.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from audiotok.data.audio_io import save_audio
from audiotok.data.corpus.sentences import generate_sentences
from audiotok.data.corpus.summary import SUMMARY_JSON, write_summary
from audiotok.data.corpus.voices import VOICES, Voice, check_engines, synthesize
from audiotok.data.sources import AudioItem, write_manifest
from audiotok.data.text import normalize_text
from audiotok.data.transforms import normalize_loudness, resample

CORPUS_VERSION = 1
CORPUS_SAMPLE_RATE = 16_000
SPLITS = ("train", "dev", "test")
# utterances per speaker
SIZES = {"tiny": 5, "small": 25, "full": 160}


@dataclass(frozen=True)
class PlannedUtterance:
    id: str
    voice: Voice
    raw_text: str
    split: str

    @property
    def relative_path(self) -> str:
        return f"audio/{self.voice.speaker}/{self.id}.wav"


def default_root(size: str = "tiny", seed: int = 0) -> Path:
    """``$AUDIOTOK_CACHE/corpus/<size>-seed<seed>``, else ``~/.cache/audiotok/corpus/...``."""
    cache = Path(os.environ.get("AUDIOTOK_CACHE") or Path.home() / ".cache" / "audiotok")
    return cache / "corpus" / f"{size}-seed{seed}"


def utterances_per_speaker(size: str | int) -> int:
    if isinstance(size, int):
        return size
    if size not in SIZES:
        raise ValueError(f"unknown corpus size {size!r}; choose one of {', '.join(SIZES)}")
    return SIZES[size]


def plan_corpus(
    size: str | int = "tiny", seed: int = 0, voices: Sequence[Voice] = VOICES
) -> list[PlannedUtterance]:
    """Who says which sentence, in which split. Held-out voices go to test only; the others are
    split about 80/10/10 per speaker (at least one dev and one test utterance from 3 up)."""
    per_speaker = utterances_per_speaker(size)
    sentences = generate_sentences(per_speaker * len(voices), seed)
    rng = random.Random(f"audiotok-corpus-splits-{seed}")
    plan = []
    for v_index, voice in enumerate(voices):
        own = sentences[v_index::len(voices)]
        splits = ["test"] * per_speaker
        if not voice.held_out:
            n_eval = max(1, round(0.1 * per_speaker)) if per_speaker >= 3 else 0
            splits = ["dev"] * n_eval + ["test"] * n_eval + ["train"] * (per_speaker - 2 * n_eval)
            rng.shuffle(splits)
        plan += [
            PlannedUtterance(f"{voice.speaker}-{i:04d}", voice, text, split)
            for i, (text, split) in enumerate(zip(own, splits, strict=True))
        ]
    return plan


def render_utterance(utt: PlannedUtterance, root: Path) -> float:
    """Synthesise one utterance into ``root``; return its duration in seconds."""
    samples, sample_rate = synthesize(utt.voice, utt.raw_text)
    wav = torch.from_numpy(np.ascontiguousarray(samples))[None]
    wav = normalize_loudness(resample(wav, sample_rate, CORPUS_SAMPLE_RATE), -23.0, 0.95)
    save_audio(root / utt.relative_path, wav, CORPUS_SAMPLE_RATE)
    return wav.shape[-1] / CORPUS_SAMPLE_RATE


def _progress(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="utt", disable=not enabled)


def synthesize_all(
    plan: Sequence[PlannedUtterance], root: Path, workers: int = 2, progress: bool = True
) -> list[float]:
    """Render every planned utterance (``workers`` synthesiser processes at a time)."""
    durations = [0.0] * len(plan)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, _progress(
        len(plan), progress, "synthesising corpus"
    ) as bar:
        futures = {pool.submit(render_utterance, utt, root): i for i, utt in enumerate(plan)}
        for future in futures:
            durations[futures[future]] = future.result()
            bar.update(1)
    return durations


def summarize(items: list[AudioItem], voices: Sequence[Voice], size, seed) -> dict:
    """Counts and hours per split and per speaker."""
    def hours(rows):
        return sum(r.duration for r in rows) / 3600.0

    splits = {}
    for split in SPLITS:
        rows = [i for i in items if i.split == split]
        splits[split] = {"utterances": len(rows), "hours": hours(rows),
                         "speakers": sorted({r.speaker for r in rows})}
    train_speakers = set(splits["train"]["speakers"])
    speakers = {}
    for voice in voices:
        rows = [i for i in items if i.speaker == voice.speaker]
        speakers[voice.speaker] = {**voice.settings(), "utterances": len(rows), "hours": hours(rows)}
    return {
        "version": CORPUS_VERSION,
        "size": size,
        "seed": seed,
        "sample_rate": CORPUS_SAMPLE_RATE,
        "utterances": len(items),
        "hours": hours(items),
        "splits": splits,
        "unseen_test_speakers": [s for s in splits["test"]["speakers"] if s not in train_speakers],
        "speakers": speakers,
        "intelligibility": None,
        "complete": True,
    }


def write_corpus_files(root: Path, plan, durations, voices, size, seed) -> dict:
    items = [
        AudioItem(root / utt.relative_path, utt.id, normalize_text(utt.raw_text), utt.voice.speaker,
                  round(duration, 4), utt.split, {"raw_text": utt.raw_text})
        for utt, duration in zip(plan, durations, strict=True)
    ]
    write_manifest(root / "manifest.jsonl", items)
    for split in SPLITS:
        write_manifest(root / f"{split}.jsonl", [i for i in items if i.split == split])
    speakers = {v.speaker: v.settings() for v in voices}
    (root / "speakers.json").write_text(json.dumps(speakers, indent=2) + "\n", encoding="utf-8")
    summary = summarize(items, voices, size, seed)
    write_summary(root, summary)
    return summary


def is_built(root: str | Path) -> bool:
    path = Path(root) / SUMMARY_JSON
    if not path.is_file():
        return False
    summary = json.loads(path.read_text(encoding="utf-8"))
    return bool(summary.get("complete")) and summary.get("version") == CORPUS_VERSION


def build_corpus(
    root: str | Path | None = None,
    size: str | int = "tiny",
    seed: int = 0,
    voices: Sequence[Voice] = VOICES,
    workers: int = 2,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Synthesise the corpus into ``root`` (default: :func:`default_root`) and return it.

    ``size`` is "tiny" (~5 utterances per speaker), "small" (25), "full" (160) or an int. An
    existing non-corpus folder is refused unless ``force`` (which deletes it first).
    """
    check_engines(voices)
    root = Path(root) if root is not None else default_root(str(size), seed)
    if root.exists() and any(root.iterdir()):
        if not force:
            raise FileExistsError(f"{root} exists and is not empty; pass force=True (--force) to rebuild")
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.parent / f".{root.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        plan = plan_corpus(size, seed, voices)
        durations = synthesize_all(plan, staging, workers, progress)
        write_corpus_files(staging, plan, durations, voices, size, seed)
        if root.exists():
            root.rmdir()  # empty (checked above)
        os.replace(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root
