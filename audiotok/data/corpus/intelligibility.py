"""Per-voice intelligibility: how well an offline recogniser (pocketsphinx) transcribes each voice.

The WER table lands in the corpus summary so that benchmarks know which voices an offline ASR can
judge (flite voices: yes; espeak-ng voices are far harder for pocketsphinx's acoustic model).
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from audiotok.data.audio_io import load_audio
from audiotok.data.corpus.summary import read_summary, write_summary
from audiotok.data.sources import AudioItem, read_manifest
from audiotok.data.text import normalize_text
from audiotok.data.wer import word_edits

RECOGNIZER_RATE = 16_000


class PocketsphinxRecognizer:
    """pocketsphinx 5 with its default US-English model; ``transcribe([T] float at 16 kHz) -> str``."""

    def __init__(self):
        try:
            from pocketsphinx import Decoder
        except ImportError as err:
            raise RuntimeError(
                "measuring intelligibility needs pocketsphinx; install it with: "
                "pip install -c .ci/constraints.txt pocketsphinx"
            ) from err
        import pocketsphinx

        self.version = getattr(pocketsphinx, "__version__", None) or _package_version()
        self.decoder = Decoder(loglevel="FATAL")

    def transcribe(self, samples: np.ndarray) -> str:
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        # Reset the feature state (cepstral mean): otherwise an utterance's hypothesis depends on
        # the utterances decoded before it.
        self.decoder.reinit_feat()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr if hyp is not None else ""


def _package_version() -> str:
    from importlib.metadata import version

    return version("pocketsphinx")


def sample_per_voice(items: list[AudioItem], per_voice: int) -> dict[str, list[AudioItem]]:
    """The first ``per_voice`` utterances of each speaker, by id (deterministic)."""
    by_speaker: dict[str, list[AudioItem]] = defaultdict(list)
    for item in sorted(items, key=lambda i: i.id):
        if len(by_speaker[item.speaker]) < per_voice:
            by_speaker[item.speaker].append(item)
    return dict(by_speaker)


def measure_intelligibility(
    corpus_dir: str | Path,
    per_voice: int = 10,
    progress: bool = True,
    speakers: Sequence[str] | None = None,
) -> dict:
    """Transcribe ``per_voice`` utterances of every voice (or of ``speakers``), store the WER table
    in the summary (replacing an earlier one), and
    return the ``intelligibility`` section: ``{"speakers": {name: {"wer", "utterances", "words",
    "engine"}}, "engines": {engine: wer}, "per_voice", "recognizer", "recognizer_version",
    "examples"}``."""
    from tqdm.auto import tqdm

    corpus_dir = Path(corpus_dir)
    summary = read_summary(corpus_dir)
    recognizer = PocketsphinxRecognizer()
    items = read_manifest(corpus_dir / "manifest.jsonl")
    if speakers is not None:
        items = [i for i in items if i.speaker in set(speakers)]
    chosen = sample_per_voice(items, per_voice)
    table, engine_counts, examples = {}, defaultdict(lambda: [0, 0]), {}
    total = sum(len(v) for v in chosen.values())
    with tqdm(total=total, desc="pocketsphinx", unit="utt", disable=not progress) as bar:
        for speaker, items in chosen.items():
            edits = words = 0
            for item in items:
                wav, _ = load_audio(item.path, RECOGNIZER_RATE)
                hyp = normalize_text(recognizer.transcribe(wav[0].numpy()))
                ref = normalize_text(item.text or "")
                edits += word_edits(ref.split(), hyp.split())
                words += len(ref.split())
                examples.setdefault(speaker, {"ref": ref, "hyp": hyp})
                bar.update(1)
            engine = summary["speakers"].get(speaker, {}).get("engine", "unknown")
            table[speaker] = {"wer": edits / max(words, 1), "utterances": len(items),
                                 "words": words, "engine": engine}
            engine_counts[engine][0] += edits
            engine_counts[engine][1] += words
    section = {
        "recognizer": "pocketsphinx (default en-us acoustic model, language model, dictionary)",
        "recognizer_version": recognizer.version,
        "per_voice": per_voice,
        "speakers": table,
        "engines": {e: edits / max(words, 1) for e, (edits, words) in sorted(engine_counts.items())},
        "examples": examples,
    }
    summary["intelligibility"] = section
    write_summary(corpus_dir, summary)
    return section


def voice_intelligibility(corpus_dir: str | Path) -> dict[str, float]:
    """``{speaker: WER}`` from the corpus summary (empty when intelligibility was not measured)."""
    section = read_summary(corpus_dir).get("intelligibility") or {}
    return {speaker: row["wer"] for speaker, row in section.get("speakers", {}).items()}
