"""The quality benchmark: information preservation, codec metrics, efficiency and probes for several
tokenizers on one set of utterances, gathered into one report dict (see :mod:`.report`).

Protocol: each utterance is read at the tokenizer's rate, encoded once with all codebooks, decoded
from codebook prefixes (``resynth_codebooks``), and scored against the original at 16 kHz. ASR and
speaker similarity run on the test split; probes train on the train split and test on the test split.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from audiotok.benchmarks.codec_metrics import CODEC_METRICS, METRIC_RATE, codec_metrics
from audiotok.benchmarks.efficiency import codebook_usage, token_rates
from audiotok.benchmarks.probe_inputs import (
    ProbeExample,
    codebook_label,
    parse_codebook_sets,
)
from audiotok.benchmarks.protocol import has_random_weights, load_tokenizer
from audiotok.benchmarks.resynthesis import Resynthesizer
from audiotok.benchmarks.scores import MetricUndefined, Missing, measure, split_scores, summarize
from audiotok.benchmarks.speaker_probe import SpeakerProbeConfig, run_speaker_probe
from audiotok.benchmarks.text_probe import ProbeConfig, run_text_probe
from audiotok.data import load_audio, resample
from audiotok.data.sources import AudioItem
from audiotok.data.text import normalize_text
from audiotok.data.wer import word_edits


@dataclass
class BenchConfig:
    asr: str | None = "pocketsphinx"  # None: no resynthesis WER
    speaker: str | None = "resemblyzer"  # None: no speaker similarity
    resynth_codebooks: str = "1;all"  # codebook prefixes to resynthesise: counts, ';'-separated
    probe_codebooks: str | None = "all"  # codebook sets for the probes (None: no probes)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    speaker_probe: SpeakerProbeConfig = field(default_factory=SpeakerProbeConfig)
    max_items: int | None = None  # at most this many test utterances (seeded choice)
    seed: int = 0


def resynth_prefixes(spec: str, num_codebooks: int) -> list[int]:
    """``"1;2;all"`` -> sorted distinct prefix lengths within ``1..num_codebooks``."""
    counts = set()
    for part in spec.split(";"):
        part = part.strip()
        if not part:
            continue
        if part == "all":
            counts.add(num_codebooks)
        elif part.isdigit():
            counts.add(min(int(part), num_codebooks))
        else:
            raise ValueError(f"bad --resynth-codebooks entry {part!r}: use counts like '1;4;all'")
    return sorted(c for c in counts if c >= 1)


def _at_metric_rate(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    return resample(torch.as_tensor(wav, dtype=torch.float32)[None], sample_rate, METRIC_RATE)[0].numpy()


class Judges:
    """ASR and speaker encoder shared by all tokenizers, with the originals' results computed once."""

    def __init__(self, config: BenchConfig):
        from audiotok.benchmarks.asr import build_asr
        from audiotok.benchmarks.speaker import build_speaker_encoder

        self.asr = build_asr(config.asr) if config.asr else None
        self.offline_asr = config.asr == "pocketsphinx"
        self.speaker = build_speaker_encoder(config.speaker) if config.speaker else None
        self._reference_embeddings: dict[str, np.ndarray | Missing] = {}

    def names(self) -> dict[str, str | None]:
        return {"asr": getattr(self.asr, "name", None), "speaker": getattr(self.speaker, "name", None)}

    def score(self, item: AudioItem, reference: np.ndarray, audio: np.ndarray) -> tuple[dict, str | None]:
        """(``{"wer", "word_edits", "words", "speaker_sim"}`` as numbers or Missing, hypothesis)."""
        from audiotok.benchmarks.speaker import cosine

        scores, hyp = {}, None
        if self.asr is not None:
            ref_text = normalize_text(item.text or "")
            if not ref_text:
                scores["wer"] = Missing("no transcript")
            elif self.offline_asr and item.extra.get("offline_asr_unreliable"):
                scores["wer"] = Missing(f"pocketsphinx cannot transcribe voice {item.speaker} even in the "
                                        "original (corpus intelligibility); use --asr whisper:PATH for it")
            else:
                try:
                    hyp = normalize_text(self.asr.transcribe(audio))
                    edits = word_edits(ref_text.split(), hyp.split())
                    scores.update(wer=edits / len(ref_text.split()), word_edits=float(edits),
                                  words=float(len(ref_text.split())))
                except Exception as err:  # noqa: BLE001
                    scores["wer"] = Missing(f"{type(err).__name__}: {err}")
        if self.speaker is not None:
            if item.id not in self._reference_embeddings:
                self._reference_embeddings[item.id] = _embed_or_missing(self.speaker, reference)
            ref_emb = self._reference_embeddings[item.id]
            if isinstance(ref_emb, Missing):
                scores["speaker_sim"] = ref_emb
            else:
                scores["speaker_sim"] = measure(
                    lambda: cosine(ref_emb, self.speaker.embed(audio, require_speech=False)))
        return scores, hyp


def _embed_or_missing(encoder, audio):
    """The reference's embedding, or Missing (``"no speech: ..."`` when it holds no speech)."""
    try:
        embedding = encoder.embed(audio, require_speech=True)
    except MetricUndefined as err:
        return Missing(str(err))
    except Exception as err:  # noqa: BLE001
        return Missing(f"{type(err).__name__}: {err}")
    if not np.all(np.isfinite(embedding)):
        return Missing("the speaker encoder returned a non-finite embedding for the reference")
    return embedding


def choose_test_items(items: Sequence[AudioItem], config: BenchConfig) -> list[AudioItem]:
    test = [i for i in items if i.split == "test"] or list(items)
    if config.max_items is not None and len(test) > config.max_items:
        test = sorted(random.Random(config.seed).sample(test, config.max_items), key=lambda i: i.id)
    return test


def run_quality_benchmark(tokenizers: Sequence[str], items: Sequence[AudioItem], out_dir: str | Path,
                          config: BenchConfig | None = None, source: str = "", progress=None) -> dict:
    """Score every tokenizer; return the report dict (``config``, ``backends``, ``rows``,
    ``probes``, ``usage``, ``items``). ``progress(description, total)`` -> callable advancing a bar."""
    config = config or BenchConfig()
    progress = progress or (lambda description, total: (lambda: None))
    out_dir = Path(out_dir)
    test = choose_test_items(items, config)
    train = [i for i in items if i.split == "train"]
    judges = Judges(config)
    references = {i.id: load_audio(i.path, METRIC_RATE)[0][0].numpy() for i in test}
    rows, probes, usage, per_item, cache = [], [], {}, [], {}

    if judges.asr is not None or judges.speaker is not None:  # the ground-truth row
        step = progress("ground truth (ASR, speaker)", len(test))
        records = []
        for item in test:
            scores, hyp = judges.score(item, references[item.id], references[item.id])
            records.append(_record("ground truth", "-", item, scores, hyp))
            step()
        per_item += records
        rows.append(_summary_row("ground truth", "-", {}, records))

    for name in tokenizers:
        try:
            tok = load_tokenizer(name, config.seed)
        except (ValueError, OSError) as err:  # CheckpointError is a ValueError
            from audiotok.errors import CommandError

            raise CommandError(f"cannot load the tokenizer {name}: {err} (the tokenizers before it are "
                               f"cached under {out_dir / 'cache'}; a re-run reuses them)") from None
        resynth = Resynthesizer(name, tok, out_dir / "cache")
        needed = {i.id: i for i in [*test, *train, *(i for i in items if i.split == "dev")]}
        step = progress(f"{name}: encode", len(needed))
        codes = resynth.codes(list(needed.values()), step)
        cache[name] = {"folder": str(resynth.folder), "num_codebooks": tok.num_codebooks,
                       "sample_rate": tok.sample_rate}
        if not getattr(tok, "is_reference", False):
            usage[name] = codebook_usage([codes[i.id] for i in test], tok.codebook_size)
        for n_q in resynth_prefixes(config.resynth_codebooks, tok.num_codebooks):
            no_decoder = no_decoder_reason(tok, n_q)
            if no_decoder:  # e.g. units without a vocoder: every resynthesis score missing, with the reason
                row, records = _unscored(name, tok, n_q, test, judges, no_decoder)
            else:
                row, records = _resynthesis(name, tok, resynth, n_q, test, references, judges, progress)
            rows.append(row)
            per_item += records
        if config.probe_codebooks and not getattr(tok, "is_reference", False):
            probes += _run_probes(name, tok, codes, train, items, test, config, progress)
        rows_meta = {"random_weights": has_random_weights(name), "sample_rate": tok.sample_rate,
                     "num_codebooks": tok.num_codebooks, "codebook_size": tok.codebook_size}
        for row in rows:
            if row["tokenizer"] == name:
                row.update(rows_meta)
    return {"source": source, "config": asdict(config), "backends": judges.names(),
            "metric_rate": METRIC_RATE, "test_items": len(test), "train_items": len(train),
            "rows": rows, "probes": probes, "usage": usage, "items": per_item,
            "audio": {i.id: str(i.path) for i in test}, "cache": cache}


def _resynthesis(name, tok, resynth: Resynthesizer, n_q: int, test, references, judges: Judges,
                 progress) -> tuple[dict, list[dict]]:
    """Decode the first ``n_q`` codebooks of every test item and score it: (summary row, records)."""
    label = "all" if n_q == tok.num_codebooks else f"first {n_q}"
    step = progress(f"{name} ({label}): resynthesis + metrics", len(test))
    records = []
    for item in test:
        audio = _at_metric_rate(resynth.audio(item, n_q), tok.sample_rate)
        scores = codec_metrics(references[item.id], audio)
        judged, hyp = judges.score(item, references[item.id], audio)
        records.append(_record(name, label, item, {**scores, **judged}, hyp))
        step()
    rates = token_rates(tok.frame_rate, n_q, tok.codebook_size)
    return _summary_row(name, label, {**rates, **resynth.real_time_factors()}, records), records


def no_decoder_reason(tok, n_q: int | None = None) -> str | None:
    """Why ``tok`` cannot detokenize (:attr:`~audiotok.codecs.Codec.decoder_unavailable`), or cannot
    decode the first ``n_q`` codebooks (ONNX graphs decode exactly the exported number); None when
    it can."""
    codec = getattr(tok, "codec", None)
    reason = getattr(codec, "decoder_unavailable", None)
    if reason is None and n_q is not None and hasattr(codec, "check_decodes"):
        try:
            codec.check_decodes(n_q)
        except ValueError as err:
            reason = str(err)
    return reason


def _unscored(name, tok, n_q: int, test, judges: Judges, reason: str) -> tuple[dict, list[dict]]:
    """The resynthesis row of a tokenizer that cannot decode: each score missing with ``reason``."""
    label = "all" if n_q == tok.num_codebooks else f"first {n_q}"
    metrics = list(CODEC_METRICS) + (["wer"] if judges.asr else []) + (["speaker_sim"] if judges.speaker else [])
    records = [_record(name, label, item, {m: Missing(reason) for m in metrics}, None) for item in test]
    return _summary_row(name, label, token_rates(tok.frame_rate, n_q, tok.codebook_size), records), records


def _run_probes(name, tok, codes, train, items, test, config: BenchConfig, progress) -> list[dict]:
    results = []
    held_out = [i for i in items if i.split in ("dev", "test")]
    for chosen in parse_codebook_sets(config.probe_codebooks, tok.num_codebooks):
        label = codebook_label(chosen, tok.num_codebooks)

        def examples(subset, chosen=chosen):
            return [ProbeExample(codes[i.id][chosen], tok.frame_rate, i.text, i.speaker, i.id)
                    for i in subset if i.id in codes]

        step = progress(f"{name} ({label}): text + speaker probes", config.probe.steps)
        row = {"tokenizer": name, "codebooks": label, "probe_size": config.probe.size}
        try:
            text = run_text_probe(examples(train), examples(test), tok.codebook_size, config.probe,
                                  progress=lambda _, step=step: step())
            row.update(probe_cer=text["cer"], probe_wer=text["wer"], mi=text["mi"],
                       mi_negatives=text["negatives"], text_probe_items=text["items"])
            _drop_non_finite(row, ("probe_cer", "probe_wer", "mi"), "text_probe_missing")
        except ValueError as err:
            row["text_probe_missing"] = str(err)
        try:
            spk = run_speaker_probe(examples(train), examples(held_out), tok.codebook_size, config.speaker_probe)
            row.update(speaker_acc=spk["accuracy"], speaker_chance=spk["chance"],
                       speaker_probe_utterances=spk["utterances"])
            _drop_non_finite(row, ("speaker_acc",), "speaker_probe_missing")
        except ValueError as err:
            row["speaker_probe_missing"] = str(err)
        results.append(row)
    return results


def _drop_non_finite(row: dict, keys: tuple[str, ...], reason_key: str) -> None:
    """A probe result that came out NaN/Inf (a diverged probe) is missing, with the reason."""
    bad = [k for k in keys if isinstance(row.get(k), float) and not np.isfinite(row[k])]
    for key in bad:
        row[key] = None
    if bad:
        row[reason_key] = f"non-finite {', '.join(bad)} (the probe diverged)"


def _record(name: str, label: str, item: AudioItem, scores: dict, hyp: str | None) -> dict:
    values, missing = split_scores(scores)
    return {"tokenizer": name, "codebooks": label, "id": item.id, "speaker": item.speaker,
            "scores": values, "missing": missing, "hyp": hyp, "ref": normalize_text(item.text or "") or None}


def _summary_row(name: str, label: str, extra: dict, records: list[dict]) -> dict:
    row = {"tokenizer": name, "codebooks": label, **extra}
    for metric in (*CODEC_METRICS, "speaker_sim"):
        present = [r for r in records if metric in r["scores"] or metric in r["missing"]]
        if present:
            s = summarize(r["scores"].get(metric, Missing("")) for r in present)
            row[metric], row[f"{metric}_missing"] = s.mean, s.missing
    judged = [r for r in records if "word_edits" in r["scores"]]
    if judged:  # corpus WER: all edits over all reference words
        row["wer"] = sum(r["scores"]["word_edits"] for r in judged) / sum(r["scores"]["words"] for r in judged)
    if any("wer" in r["missing"] for r in records):
        row["wer_missing"] = sum("wer" in r["missing"] for r in records)
    return row
