"""Benchmarks of tokenizers: SLMTokBench-style probes, codec metrics, resynthesis WER and speaker
similarity, efficiency, and reports (``audiotok bench``); speed/streaming/training benchmarks.

Quick use::

    from audiotok.benchmarks import BenchConfig, run_quality_benchmark, write_report
    from audiotok.benchmarks.inputs import bench_items

    items, source = bench_items()                      # the built-in corpus
    report = run_quality_benchmark(["mimi-tiny"], items, "out", BenchConfig(), source)
    write_report(report, "out")                        # report.json, summary.md, report.html

Probes on chosen codebooks: ``run_text_probe`` / ``run_speaker_probe`` on ``ProbeExample`` lists
(``codes[chosen]``), with sets from ``parse_codebook_sets("0;1-7", Q)``. Names resolve lazily.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "BenchConfig": "quality", "run_quality_benchmark": "quality", "write_report": "report",
    "ProbeConfig": "text_probe", "run_text_probe": "text_probe",
    "SpeakerProbeConfig": "speaker_probe", "run_speaker_probe": "speaker_probe",
    "ProbeExample": "probe_inputs", "parse_codebook_sets": "probe_inputs",
    "codec_metrics": "codec_metrics", "IdentityTokenizer": "protocol", "BenchTokenizer": "protocol",
    "Missing": "scores",
}
__all__ = list(_EXPORTS)


def __getattr__(name):  # PEP 562: nothing heavy is imported until a name is used
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"audiotok.benchmarks.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'audiotok.benchmarks' has no attribute {name!r}")
