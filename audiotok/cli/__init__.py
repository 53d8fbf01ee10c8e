"""The ``audiotok`` command: the one home of the command line.

One module per subcommand in this package (``audiotok/cli/<subcommand>.py``, dashes as underscores),
each providing ``add_arguments(parser)`` and ``run(args) -> int``: it parses and prints; the work it
drives lives in the library. Only the chosen subcommand's module is imported, so ``audiotok --help``
and ``audiotok tokenize`` never pay for Lightning or transformers.

Training subcommands (``fit``, ``validate``, ``test``, ``predict``) hand the rest of the command line to
LightningCLI untouched (:mod:`audiotok.cli.train`).
"""
from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["LIGHTNING_SUBCOMMANDS", "SUBCOMMANDS", "main"]

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("audiotok.cli.demo", "encode and decode a built-in sample with a codec; print its rates"),
    "info": ("audiotok.cli.info", "list codecs and shipped trained tokenizers: rates, sizes, trained or random weights"),
    "corpus": ("audiotok.cli.corpus", "build the offline multi-speaker speech corpus"),
    "tokenize": ("audiotok.cli.tokenize", "tokenize audio files or folders to codes"),
    "detokenize": ("audiotok.cli.detokenize", "decode saved codes back to audio"),
    "tokenize-dataset": ("audiotok.cli.tokenize_dataset", "tokenize a dataset into shards for LMs"),
    "stream": ("audiotok.cli.stream", "stream a file frame by frame; report latency"),
    "distill": ("audiotok.cli.distill", "teacher feature caches and k-means units"),
    "bench": ("audiotok.cli.bench", "benchmark tokenizers: probes, metrics, reports"),
    "export": ("audiotok.cli.export", "export a codec for other runtimes: audiotok export onnx NAME -o DIR"),
}
LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in LIGHTNING_SUBCOMMANDS:
        from audiotok.cli.train import run_lightning_cli

        return run_lightning_cli(argv)

    parser = argparse.ArgumentParser(
        prog="audiotok",
        description="Neural audio codecs and speech tokenizers: tokenize, train, stream, benchmark.",
        epilog="Training: audiotok fit|validate|test --config configs/<recipe>.yaml (LightningCLI).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the chosen subcommand's module is imported.
    chosen = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    for name in LIGHTNING_SUBCOMMANDS:
        sub.add_parser(name, help=f"LightningCLI {name} (see configs/)", add_help=False)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from audiotok.errors import CommandError  # (not before: `audiotok --help` imports nothing of ours)

    try:
        return int(args._run(args) or 0)
    except CommandError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
