"""``audiotok demo [--codec NAME] [--audio FILE] [--out DIR]``: the main job on a built-in default.

Tokenizes a test utterance of the offline speech corpus (or ``--audio``), decodes it back and prints the
rates and how close the resynthesis is (:mod:`audiotok.demo` does the work). The default codec is a small
RVQ + Vocos tokenizer trained on that corpus and shipped with the package; a registered architecture name
has random weights.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--codec", default="rvq-vocos-small-trained",
                        help="shipped trained name (e.g. mimi-tiny-trained), registered architecture "
                        "(random weights), saved folder, checkpoint or official weights "
                        "(default: rvq-vocos-small-trained, 3.2 kbps, trained on the built-in corpus)")
    parser.add_argument("--audio", default=None, help="an audio file (default: a built-in corpus utterance)")
    parser.add_argument("--out", default="demo_out", help="folder for the resynthesised audio")
    parser.add_argument("--n-q", type=int, default=None, help="number of codebooks to use")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    import audiotok
    from audiotok.errors import CommandError
    from audiotok.data import AudioError
    from audiotok.data.sources import path_problem
    from audiotok.demo import HUM_HZ, MEL_DISTANCE_MEANING, corpus_utterance, resynthesize

    path, text = corpus_utterance() if args.audio is None else (Path(args.audio), None)
    problem = path_problem(path, expect="file")
    if problem is not None:  # before the model loads
        raise CommandError(f"{path}: {problem}")
    tok = audiotok.load(args.codec)
    try:
        result = resynthesize(tok, path, args.out, n_q=args.n_q)
    except AudioError as err:
        raise CommandError(str(err)) from None
    codes, seconds = result.codes, result.seconds

    table = Table(title=f"audiotok demo: {args.codec}")
    table.add_column("quantity")
    table.add_column("value")
    rows = [
        ("input", f"{path} ({seconds:.2f} s)" + (f' "{text}"' if text else "")),
        ("sample rate", f"{result.sample_rate} Hz"),
        ("frame rate", f"{result.frame_rate:g} Hz"),
        ("codebooks used × size", f"{codes.shape[0]} × {result.codebook_size}"),
        ("bitrate", f"{result.bitrate / 1000:.3f} kbps"),
        ("tokens", f"{codes.numel()} ({codes.numel() / seconds:.1f} tokens/s)"),
        ("first frame codes", " ".join(str(int(c)) for c in codes[:, 0])),
        ("encode / decode real-time factor",
         f"{result.encode_seconds / seconds:.3f} / {result.decode_seconds / seconds:.3f}"),
        ("mel distance, original vs resynthesis", f"{result.mel_distance:.3f}"),
        ("  what it means", f"{MEL_DISTANCE_MEANING}; 0 = identical; a steady {HUM_HZ:g} Hz hum as "
                            f"loud as the input scores {result.hum_distance:.2f} here"),
        ("written", ", ".join(str(p) for p in result.written)),
    ]
    console = Console()
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    from audiotok.codecs import available

    if args.codec in available():
        console.print("[yellow]note:[/] a registered name has random weights: train one with "
                      "`audiotok fit --config configs/mimi-tiny.yaml` or load official weights.")
    return 0
