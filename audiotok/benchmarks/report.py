"""Writing a quality report: ``report.json`` (every per-item score and missing reason, config,
backends, machine), ``summary.md`` (tables) and ``report.html`` (self-contained: plots as base64 PNG,
audio players as base64 WAV)."""
from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path

import numpy as np

RESYNTH_COLUMNS = (  # (key, header, format)
    ("tokenizer", "tokenizer", "{}"), ("codebooks", "codebooks", "{}"), ("bitrate", "kbps", "kbps"),
    ("tokens_per_second", "tok/s", "{:.0f}"), ("wer", "WER ↓", "{:.3f}"), ("speaker_sim", "SIM ↑", "{:.3f}"),
    ("mel_distance", "mel ↓", "{:.3f}"), ("mrstft_distance", "MR-STFT ↓", "{:.3f}"),
    ("si_sdr", "SI-SDR ↑", "{:.2f}"), ("pesq_wb", "PESQ-WB ↑", "{:.2f}"), ("pesq_nb", "PESQ-NB ↑", "{:.2f}"),
    ("stoi", "STOI ↑", "{:.3f}"), ("encode_rtf", "enc RTF", "{:.4f}"), ("decode_rtf", "dec RTF", "{:.4f}"),
)
PROBE_COLUMNS = (
    ("tokenizer", "tokenizer", "{}"), ("codebooks", "codebooks", "{}"), ("probe_cer", "probe CER ↓", "{:.3f}"),
    ("probe_wer", "probe WER ↓", "{:.3f}"), ("mi", "MI (nats) ↑", "{:.2f}"), ("speaker_acc", "speaker acc", "{:.3f}"),
    ("speaker_chance", "chance", "{:.3f}"),
)


PROBE_MISSING = {"probe_cer": "text_probe_missing", "probe_wer": "text_probe_missing", "mi": "text_probe_missing",
                 "speaker_acc": "speaker_probe_missing"}


def _cell(row: dict, key: str, fmt: str) -> str:
    """A table cell: the value, ``"0.812 (2 missing)"`` when some items lack it, ``"missing (3)"`` when
    all do (the reasons are in the "Missing scores" table), ``"—"`` when it was not measured."""
    value = row.get(key)
    missing = row.get(f"{key}_missing")
    if isinstance(value, float) and not math.isfinite(value):  # never show NaN as a number
        value = None
    if value is None:
        if isinstance(missing, int) and missing:
            return f"missing ({missing})"
        if key in PROBE_MISSING and row.get(PROBE_MISSING[key]):
            return "missing"
        return "—"
    text = f"{value / 1000:.3g}" if fmt == "kbps" else fmt.format(value)
    return f"{text} ({missing} missing)" if missing else text


def table_rows(rows: list[dict], columns) -> tuple[list[str], list[list[str]]]:
    return [h for _, h, _ in columns], [[_cell(r, k, f) for k, _, f in columns] for r in rows]


def notes(report: dict) -> list[str]:
    out = [(f"Data: {report['source']}; {report['test_items']} test utterances, {report['train_items']} "
            f"training utterances (probes). Signal metrics at {report['metric_rate']} Hz."),
           (f"ASR: {report['backends']['asr'] or 'not run'}. Speaker similarity: "
            f"{report['backends']['speaker'] or 'not run'} (cosine)."),
           ("RTF = compute seconds per audio second on this machine (below 1 is faster than real time): "
            f"{report['machine']['cpu']}, {report['machine']['torch_threads']} torch threads.")]
    probe = report["config"]["probe"]
    if report["probes"]:
        negatives = sorted({p.get("mi_negatives") for p in report["probes"] if p.get("mi_negatives") is not None})
        out.append(f"Text probe: 2-layer BiLSTM ({probe['size']}), character CTC, {probe['steps']} steps, "
                   f"greedy decoding; MI = mean log q(y_i|x_i) − mean log q(y_j|x_i) over "
                   f"{', '.join(map(str, negatives)) or '?'} random negative transcripts per utterance.")
    random_names = sorted({r["tokenizer"] for r in report["rows"] if r.get("random_weights")})
    if random_names:
        out.append(f"Random (untrained) weights: {', '.join(random_names)} — numbers show the pipeline, "
                   "not the codec.")
    return out


def markdown(report: dict) -> str:
    def md_table(header, body):
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in body])

    parts = ["# Tokenizer benchmark", "", *[f"- {n}" for n in notes(report)], "",
             "## Resynthesis and efficiency", "", md_table(*table_rows(report["rows"], RESYNTH_COLUMNS))]
    if report["probes"]:
        parts += ["", "## Probes (text alignment, speaker)", "", md_table(*table_rows(report["probes"], PROBE_COLUMNS))]
    missing = missing_counts(report)
    if missing:
        parts += ["", "## Missing scores", "", md_table(["tokenizer", "codebooks", "metric", "items", "reason"],
                                                        [list(map(str, m)) for m in missing])]
    return "\n".join(parts) + "\n"


def missing_counts(report: dict) -> list[tuple]:
    """``(tokenizer, codebooks, metric, items, reason)`` for every distinct reason a score is missing:
    per-item metrics (``report["items"]``) and whole probes that could not run."""
    counts: dict[tuple, int] = {}
    for item in report["items"]:
        for metric, reason in item["missing"].items():
            key = (item["tokenizer"], item["codebooks"], metric, reason)
            counts[key] = counts.get(key, 0) + 1
    rows = [(tok, books, metric, n, reason) for (tok, books, metric, reason), n in counts.items()]
    for probe in report.get("probes", []):
        for key, metric in (("text_probe_missing", "text probe"), ("speaker_probe_missing", "speaker probe")):
            if probe.get(key):
                rows.append((probe["tokenizer"], probe["codebooks"], metric, "all", probe[key]))
    return rows


def finite_or_none(value):
    """``value`` with every NaN/Inf float replaced by None (JSON has no NaN; a missing score is null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def _wav_data_uri(audio: np.ndarray, sample_rate: int) -> str:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(audio, dtype=np.float32), sample_rate, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode()


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _html_table(header, body) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def example_audio(report: dict, count: int) -> list[tuple[str, list[tuple[str, np.ndarray, int]]]]:
    """For the first ``count`` test items: [(id, [(label, audio, rate), ...])] original + resyntheses."""
    import soundfile as sf

    examples = []
    for item_id, path in list(report["audio"].items())[:count]:
        original, rate = sf.read(path, dtype="float32", always_2d=True)
        entries = [("original", original.mean(1), rate)]
        for name, info in report["cache"].items():
            wav = Path(info["folder"]) / f"nq{info['num_codebooks']}" / f"{_safe(item_id)}.wav"
            if wav.is_file():
                entries.append((f"{name} (all codebooks)", *sf.read(wav, dtype="float32")))
        examples.append((item_id, entries))
    return examples


def _safe(item_id: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", item_id)


def html_report(report: dict, examples: int = 2, figures: dict[str, bytes] | None = None) -> str:
    from audiotok.benchmarks import plots

    figures = figures if figures is not None else summary_figures(report)
    sections = [f"<h1>Tokenizer benchmark</h1><ul>{''.join(f'<li>{html.escape(n)}</li>' for n in notes(report))}</ul>",
                "<h2>Metric by tokenizer</h2>", _html_table(*table_rows(report["rows"], RESYNTH_COLUMNS))]
    if report["probes"]:
        sections += ["<h2>Probes</h2>", _html_table(*table_rows(report["probes"], PROBE_COLUMNS))]
    sections += ["<h2>Bitrate vs quality</h2>", _img(figures["bitrate_vs_quality"], "bitrate vs quality")]
    if "codebook_usage" in figures:
        sections += ["<h2>Codebook usage</h2>", _img(figures["codebook_usage"], "codebook usage")]
    for item_id, entries in example_audio(report, examples):
        import torch

        from audiotok.data import resample

        rate = 16_000
        at_rate = [(label, resample(torch.as_tensor(a)[None], r, rate)[0].numpy()) for label, a, r in entries]
        players = "".join(f"<div><span>{html.escape(label)}</span><br><audio controls src=\"{_wav_data_uri(a, rate)}\">"
                          "</audio></div>" for label, a in at_rate)
        sections += [f"<h2>Example {html.escape(item_id)}</h2>", f'<div class="players">{players}</div>',
                     _img(plots.spectrograms(at_rate, rate), f"spectrograms of {item_id}")]
    missing = missing_counts(report)
    if missing:
        sections += ["<h2>Missing scores</h2>",
                     _html_table(["tokenizer", "codebooks", "metric", "items", "reason"],
                                 [list(map(str, m)) for m in missing])]
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse;"
             "font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
             ".players{display:flex;gap:1em;flex-wrap:wrap}img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>audiotok benchmark</title>"
            f"<style>{style}</style></head><body>{''.join(sections)}</body></html>")


def summary_figures(report: dict) -> dict[str, bytes]:
    """``{"bitrate_vs_quality": png, "codebook_usage": png}`` (usage only when codes were seen)."""
    from audiotok.benchmarks import plots

    figures = {"bitrate_vs_quality": plots.bitrate_vs_quality(report)}
    if report["usage"]:
        figures["codebook_usage"] = plots.codebook_usage_plot(report)
    return figures


def write_report(report: dict, out_dir: str | Path, examples: int = 2) -> dict[str, Path]:
    """Write ``report.json``, ``summary.md``, ``report.html`` and the summary figures as PNG files
    into ``out_dir``; return their paths."""
    from audiotok.benchmarks.results import machine_info
    from audiotok.data.outputs import write_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report.setdefault("machine", machine_info())
    paths = {"json": out_dir / "report.json", "markdown": out_dir / "summary.md", "html": out_dir / "report.html"}
    write_text_atomic(paths["json"], json.dumps(finite_or_none(report), indent=1, default=str, allow_nan=False))
    write_text_atomic(paths["markdown"], markdown(report))
    figures = summary_figures(report)
    for name, png in figures.items():
        paths[name] = out_dir / f"{name}.png"
        write_atomic(paths[name], lambda tmp, png=png: tmp.write_bytes(png))
    write_text_atomic(paths["html"], html_report(report, examples, figures))
    return paths


def write_text_atomic(path: Path, text: str) -> None:
    """A report file is either the old one or the complete new one (never half written: full disk, Ctrl-C)."""
    from audiotok.data.outputs import write_atomic

    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
