"""The corpus build summary: ``summary.json`` (machine-readable) and ``SUMMARY.md`` (for people)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SUMMARY_JSON = "summary.json"
SUMMARY_MD = "SUMMARY.md"


def read_summary(corpus_dir: str | Path) -> dict[str, Any]:
    path = Path(corpus_dir) / SUMMARY_JSON
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: {corpus_dir} is not a built corpus (run `audiotok corpus build`)"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def write_summary(corpus_dir: str | Path, summary: dict[str, Any]) -> None:
    """Write both summary files into ``corpus_dir``."""
    corpus_dir = Path(corpus_dir)
    (corpus_dir / SUMMARY_JSON).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (corpus_dir / SUMMARY_MD).write_text(render_markdown(summary), encoding="utf-8")


def render_markdown(summary: dict[str, Any]) -> str:
    lines = [
        f"# audiotok speech corpus ({summary['size']}, seed {summary['seed']})",
        "",
        f"{summary['utterances']} utterances, {summary['hours']:.2f} h, "
        f"{len(summary['speakers'])} speakers, {summary['sample_rate']} Hz mono 16-bit WAV. "
        "Synthesised offline with flite and espeak-ng.",
        "",
        "| split | utterances | hours | speakers |",
        "| --- | ---: | ---: | ---: |",
    ]
    for split, s in summary["splits"].items():
        lines.append(f"| {split} | {s['utterances']} | {s['hours']:.3f} | {len(s['speakers'])} |")
    lines += [
        "",
        f"Test speakers unseen in train: {', '.join(summary['unseen_test_speakers']) or 'none'}.",
        "",
        "## Speakers",
        "",
        "| speaker | engine | voice | pitch | rate | utterances | minutes | WER |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    wers = (summary.get("intelligibility") or {}).get("speakers", {})
    for name, s in summary["speakers"].items():
        wer = f"{wers[name]['wer']:.1%}" if name in wers else "-"
        pitch = "-" if s["pitch"] is None else f"{s['pitch']:g}"
        rate = "-" if s["rate"] is None else f"{s['rate']:g}"
        lines.append(
            f"| {name} | {s['engine']} | {s['voice']} | {pitch} | {rate} | {s['utterances']} | "
            f"{s['hours'] * 60:.1f} | {wer} |"
        )
    intel = summary.get("intelligibility")
    if intel:
        lines += [
            "",
            "## Intelligibility",
            "",
            f"pocketsphinx {intel['recognizer_version']} with its default English model, "
            f"{intel['per_voice']} utterances per voice; WER on normalised text.",
            "",
            "| engine | WER |",
            "| --- | ---: |",
        ]
        lines += [f"| {engine} | {wer:.1%} |" for engine, wer in intel["engines"].items()]
    else:
        lines += ["", "Intelligibility not measured (`audiotok corpus intelligibility DIR`)."]
    return "\n".join(lines) + "\n"
