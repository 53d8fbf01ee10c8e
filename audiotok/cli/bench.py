"""``audiotok bench``: the quality benchmark, or ``audiotok bench speed|streaming|training ...``.

Quality: ``audiotok bench --tokenizer mimi-tiny --tokenizer speechtokenizer-tiny [--data DIR|manifest]
--out DIR`` writes ``report.json``, ``summary.md`` and ``report.html``; resynthesised audio is cached
under ``DIR/cache`` so a second report is fast. The other benchmarks live in their own modules.
"""
from __future__ import annotations

import argparse
import importlib
import sys

SUB_BENCHMARKS = {  # name -> (module, help)
    "speed": ("audiotok.benchmarks.speed", "encode/decode throughput and real-time factor"),
    "streaming": ("audiotok.benchmarks.streaming", "frame-by-frame streaming latency"),
    "training": ("audiotok.benchmarks.training_speed", "training steps per second"),
    "memory": ("audiotok.benchmarks.memory", "peak memory of tokenizing and detokenizing long files vs duration"),
    "tokenize-dataset": ("audiotok.benchmarks.tokenize_dataset", "tokenize-dataset: local engine vs Ray workers"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="{" + ",".join(SUB_BENCHMARKS) + "}",
                                help="another benchmark instead of the quality report (see its --help)")
    for name, (_, help_text) in SUB_BENCHMARKS.items():
        # Its own options are parsed in run(), so its module is imported only when it runs.
        # prefix_chars that no option uses: every word after the name (even --help) lands in `rest`.
        p = sub.add_parser(name, help=help_text, add_help=False, prefix_chars="\x00")
        p.add_argument("rest", nargs="*")
    q = parser
    q.add_argument("--tokenizer", "-t", action="append", default=None, metavar="NAME_OR_PATH",
                   help="tokenizer to benchmark (repeatable): a registered name, saved folder, checkpoint, "
                        "or 'identity' (audio passed through: the ground-truth reference)")
    q.add_argument("--data", default=None, help="folder of audio (sidecar .txt transcripts optional) or a "
                                                "manifest .jsonl; default: the built-in corpus")
    q.add_argument("--corpus", default="tiny", help="built-in corpus size when --data is not given")
    q.add_argument("--out", default="bench_out", help="output folder (reports and the audio cache)")
    q.add_argument("--asr", default="pocketsphinx", help="'pocketsphinx', 'whisper:/local/checkpoint' or 'none'")
    q.add_argument("--speaker", default="resemblyzer", help="'resemblyzer', 'wavlm:/local/checkpoint' or 'none'")
    q.add_argument("--resynth-codebooks", default="1;all",
                   help="codebook prefixes to resynthesise, e.g. '1;4;all' (first 1, first 4, all)")
    q.add_argument("--probe-codebooks", default="all",
                   help="codebook sets for the text and speaker probes, e.g. 'all;0;1-7' (0-based), or 'none'")
    q.add_argument("--probe-size", default="small", choices=["tiny", "small", "paper"],
                   help="BiLSTM size: tiny 32, small 128, paper 1024 units per direction")
    q.add_argument("--probe-steps", type=int, default=400, help="text-probe training steps")
    q.add_argument("--probe-negatives", type=int, default=8, help="negative transcripts per utterance for MI")
    q.add_argument("--max-items", type=int, default=None, help="at most this many test utterances")
    q.add_argument("--examples", type=int, default=2, help="items with audio players and spectrograms in the HTML")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: steady real-time factors on a shared machine)")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "benchmark", None) in SUB_BENCHMARKS:
        return run_sub_benchmark(args.benchmark, args.rest)
    return run_quality(args)


def run_sub_benchmark(name: str, argv: list[str]) -> int:
    module_name, help_text = SUB_BENCHMARKS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        print(f"audiotok bench {name}: not available in this installation ({module_name} is missing); "
              "`audiotok bench --help` lists what is", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"audiotok bench {name}", description=help_text)
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(argv)) or 0)


def run_quality(args: argparse.Namespace) -> int:
    import random

    import numpy as np
    import torch
    from rich.console import Console

    from audiotok.benchmarks.inputs import bench_items
    from audiotok.errors import CommandError
    from audiotok.benchmarks.quality import BenchConfig, run_quality_benchmark
    from audiotok.benchmarks.report import write_report
    from audiotok.benchmarks.results import emit
    from audiotok.benchmarks.speaker_probe import SpeakerProbeConfig
    from audiotok.benchmarks.text_probe import ProbeConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    tokenizers = args.tokenizer or ["speechtokenizer-tiny", "mimi-tiny", "wavtokenizer-tiny"]
    none = lambda v: None if v in (None, "none", "") else v
    config = BenchConfig(asr=none(args.asr), speaker=none(args.speaker), resynth_codebooks=args.resynth_codebooks,
                         probe_codebooks=none(args.probe_codebooks),
                         probe=ProbeConfig(size=args.probe_size, steps=args.probe_steps,
                                           negatives=args.probe_negatives, seed=args.seed),
                         speaker_probe=SpeakerProbeConfig(seed=args.seed), max_items=args.max_items, seed=args.seed)
    console = Console(stderr=True)
    try:
        items, source = bench_items(args.data, args.corpus)
    except (OSError, ValueError) as err:  # no such folder, nothing readable in it, a bad manifest line
        raise CommandError(str(err)) from None
    console.print(f"benchmarking {', '.join(tokenizers)} on {source} ({len(items)} utterances)")
    with _progress(console) as progress:
        report = run_quality_benchmark(tokenizers, items, args.out, config, source, progress)
    paths = write_report(report, args.out, args.examples)
    terminal = ("tokenizer", "codebooks", "bitrate", "wer", "speaker_sim", "mel_distance", "pesq_wb", "stoi")
    emit("audiotok bench: resynthesis", [{k: r.get(k) for k in terminal} for r in report["rows"]], None)
    if report["probes"]:
        emit("audiotok bench: probes", [{k: p.get(k) for k in ("tokenizer", "codebooks", "probe_cer", "mi",
                                                                 "speaker_acc")} for p in report["probes"]], None)
    for kind, path in paths.items():
        console.print(f"wrote {kind}: {path}")
    return 0


class _progress:
    """Rich progress bars: ``progress(description, total)`` returns a callable advancing a new bar."""

    def __init__(self, console):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), console=console, transient=False)

    def __enter__(self):
        self.bars.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bars.__exit__(*exc)

    def __call__(self, description: str, total: int):
        task = self.bars.add_task(description, total=total)
        return lambda: self.bars.advance(task)
