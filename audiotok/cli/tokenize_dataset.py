"""``audiotok tokenize-dataset SOURCE -o OUT``: a corpus → resumable Parquet shards for speech LMs.

SOURCE: a ``.jsonl`` manifest, a folder with ``manifest.jsonl`` (``--split`` picks a split), a folder
of audio, a LibriSpeech tree, or a Hugging Face dataset saved with ``save_to_disk`` (``--hf-split``
/ ``--audio-column`` for ``load_dataset`` names). Re-run the same command after an interruption to
finish the missing shards; shards that are damaged or truncated on disk are redone (one message
each). A shard that cannot be written (disk full) leaves no partial file and stops the command with
one ``error:`` line and exit code 1; a second run into the same ``-o`` stops at once (exit code 2). ``--flatten`` adds a ``tokens`` column for LLMs (Llasa layout with
``--llasa-text-vocab 128256``). ``--num-proc N`` runs shards in N processes via ``datasets.map``.

``--engine ray`` tokenizes on a Ray cluster (``pip install 'audiotok[ray]'``): ``--address`` (default:
a Ray started on this machine, or ``RAY_ADDRESS``), ``--workers N`` tokenizer actors with
``--gpus-per-worker G`` / ``--cpus-per-worker C`` each, ``--batch-seconds S`` of audio per encode pass.
Same shards, rows and ``progress.json`` as the single-machine engine, so either can resume the other;
see :mod:`audiotok.tokenizers.dataset_ray` and docs/ray.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from audiotok.cli.tokenize import add_model_arguments, load_tokenizer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="manifest, corpus/audio folder, LibriSpeech tree or saved HF dataset")
    parser.add_argument("-o", "--output", required=True, help="folder for shard-*.parquet and progress.json")
    parser.add_argument("--split", default=None, help="manifest split to tokenize (e.g. train)")
    parser.add_argument("--hf-split", default=None,
                        help="SOURCE is a datasets.load_dataset name; tokenize this split of it")
    parser.add_argument("--audio-column", default="audio", help="audio column of a HF dataset")
    parser.add_argument("--shard-size", type=int, default=1000, help="items per shard (default 1000)")
    parser.add_argument("--num-proc", type=int, default=1, help="worker processes (datasets.map)")
    add_model_arguments(parser)
    dist = parser.add_argument_group("Ray engine (--engine ray; pip install 'audiotok[ray]')")
    dist.add_argument("--engine", choices=("local", "ray"), default="local",
                      help="local: this machine (default); ray: a Ray cluster")
    dist.add_argument("--address", default=None,
                      help="Ray cluster: 'auto', 'ray://HEAD:10001' or HEAD:6379 (default: RAY_ADDRESS, or a "
                           "Ray started on this machine)")
    dist.add_argument("--workers", type=int, default=None, help="tokenizer actors (default 1)")
    dist.add_argument("--gpus-per-worker", type=float, default=None,
                      help="GPUs per actor; the tokenizer runs on it (default 0: CPU; 0.5 shares a GPU)")
    dist.add_argument("--cpus-per-worker", type=float, default=None,
                      help="CPUs per actor, also its torch threads (default 1)")
    dist.add_argument("--resources-per-worker", type=json.loads, default=None, metavar="JSON",
                      help='custom Ray resources per actor, e.g. \'{"tokenizer_node": 1}\' (nodes started with '
                           "ray start --resources)")
    dist.add_argument("--batch-seconds", type=float, default=None,
                      help="most audio per encode pass; each call's items are grouped by length (default 60)")
    dist.add_argument("--items-per-call", type=int, default=None,
                      help="items per actor call, the window grouped by length (default 32)")
    flat = parser.add_argument_group("LLM tokens (a 'tokens' column)")
    flat.add_argument("--flatten", action="store_true", help="add flat token ids")
    flat.add_argument("--offset", type=int, default=0, help="id of code 0 of level 0 (default 0)")
    flat.add_argument("--llasa-text-vocab", type=int, default=None,
                      help="Llasa layout: offset = this text vocab size + 8 specials")
    flat.add_argument("--order", choices=("frame", "codebook"), default="frame",
                      help="interleave levels per frame, or one level after another")
    flat.add_argument("--bos", type=int, default=None, help="token id put before the codes")
    flat.add_argument("--eos", type=int, default=None, help="token id put after the codes")


def open_source(args: argparse.Namespace):
    """The path, or a ``datasets.Dataset`` for saved / named Hugging Face datasets."""
    path = Path(args.source)
    if path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file()):
        import datasets

        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            if args.hf_split is None:
                raise SystemExit(f"error: {path} holds splits {list(ds)}; pick one with --hf-split")
            ds = ds[args.hf_split]
        return ds
    if args.hf_split is not None:
        import datasets

        return datasets.load_dataset(args.source, split=args.hf_split)
    return args.source


RAY_FLAGS = ("address", "workers", "gpus_per_worker", "cpus_per_worker", "resources_per_worker", "batch_seconds",
             "items_per_call")


def ray_engine(args: argparse.Namespace):
    """``tokenize_dataset_ray`` bound to the Ray flags, or None for the local engine; a
    :class:`CommandError` for Ray flags without ``--engine ray``, or when Ray is not installed."""
    from audiotok.errors import CommandError

    given = [f"--{name.replace('_', '-')}" for name in RAY_FLAGS if getattr(args, name) is not None]
    if args.engine != "ray":
        if given:
            raise CommandError(f"{', '.join(given)} only apply with --engine ray")
        return None
    if args.num_proc != 1:
        raise CommandError("--num-proc is for the local engine; with --engine ray use --workers")
    if args.device != "cpu":
        raise CommandError("--device is for the local engine; with --engine ray each worker uses its GPU "
                           "when --gpus-per-worker > 0")
    try:
        from audiotok.tokenizers.dataset_ray import RayOptions, require_ray, tokenize_dataset_ray

        require_ray()
        options = RayOptions(**{name: getattr(args, name) for name in RAY_FLAGS if getattr(args, name) is not None})
    except (ImportError, ValueError) as err:  # no Ray; a bad worker size
        raise CommandError(str(err)) from None

    def run_on_ray(*positional, **keywords):
        import ray

        try:
            return tokenize_dataset_ray(*positional, options=options, **keywords)
        except (RuntimeError, ray.exceptions.RayError) as err:  # a pipeline that failed or stopped short
            raise CommandError(f"the Ray run failed: {err}. Finished shards are kept; run the same command "
                               "again to finish the rest", code=1) from None

    return run_on_ray


def run(args: argparse.Namespace) -> int:
    from audiotok.errors import CommandError
    from audiotok.data.outputs import prepare_output
    from audiotok.tokenizers.dataset import ShardWriteError, tokenize_dataset
    from audiotok.tokenizers.flatten import FlattenSpec, llasa_offset

    prepare_output(args.output)  # a bad -o fails before the (slow) model load
    engine = ray_engine(args)
    tok = load_tokenizer(args)
    spec = None
    if args.flatten or args.llasa_text_vocab is not None:
        offset = llasa_offset(args.llasa_text_vocab) if args.llasa_text_vocab is not None else args.offset
        spec = FlattenSpec(tok.codebook_size, offset, args.order, args.bos, args.eos)
    source = open_source(args)
    extra = {"audio_column": args.audio_column} if not isinstance(source, str) else {}
    try:
        if engine is not None:
            summary = engine(source, args.output, tok, shard_size=args.shard_size, split=args.split,
                             flatten=spec, **extra)
        else:
            summary = tokenize_dataset(source, args.output, tok, shard_size=args.shard_size, split=args.split,
                                       flatten=spec, num_proc=args.num_proc, **extra)
    except ShardWriteError as err:
        raise CommandError(str(err), code=1) from None
    except (ValueError, OSError) as err:  # other settings in -o, an unusable SOURCE
        raise CommandError(str(err)) from None
    print(f"{summary['rows']} items in {summary['shards']} shards under {summary['output']} "
          f"({tok.num_codebooks} × {tok.codebook_size} codes at {tok.frame_rate:g} Hz)", file=sys.stderr)
    if spec is not None:
        print(f"tokens: ids {spec.offset}..{spec.vocab_end(tok.num_codebooks) - 1}, order {spec.order}",
              file=sys.stderr)
    for shard, problem in summary["redone"].items():
        print(f"  redone {shard}: {problem}", file=sys.stderr)
    for path, problem in summary["failed"].items():
        print(f"  skipped {path}: {problem}", file=sys.stderr)
    return 1 if summary["failed"] else 0
