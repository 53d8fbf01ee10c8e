"""``audiotok bench tokenize-dataset``: audio-seconds tokenized per second, single-machine engine vs Ray.

Every engine tokenizes the same input (``--items`` generated 16 kHz clips of 2-8 s, or ``--data``) into
its own fresh folder: the single-machine engine (``tokenize_dataset``, one process), then the Ray engine
with each ``--workers`` count. The time is the whole ``tokenize-dataset`` run (listing, reading and
resampling, tokenizing, writing and checking shards); starting the local Ray instance (``ray.init``) is
timed apart, while starting the actors (each loads torch and the model) is part of every Ray run, as
it is for a user (``startup_s``: until the first items came back to the driver). Each Ray output is checked row by row against the single-machine one. Torch uses
``--threads`` threads in the local engine and in each worker.

On a real cluster pass ``--address auto`` (run it on the head node) and ``--gpus-per-worker 1``.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", default="mimi-tiny-trained", help="tokenizer (default mimi-tiny-trained)")
    parser.add_argument("--data", default=None, help="manifest or audio folder (default: generated clips)")
    parser.add_argument("--items", type=int, default=96, help="generated clips (default 96)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard-size", type=int, default=16, help="items per shard (default 16)")
    parser.add_argument("--batch-size", type=int, default=8, help="items per encode pass (default 8)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray worker counts (default 1 2)")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0)
    parser.add_argument("--batch-seconds", type=float, default=60.0)
    parser.add_argument("--address", default=None,
                        help="Ray cluster (default: a Ray started here with one logical CPU per worker plus one)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, local engine and each worker")
    parser.add_argument("--work", default=None, help="folder for the input and the shards (default: temporary)")
    parser.add_argument("--out", default="bench_out/tokenize_dataset.json", help="JSON results file")


def make_clips(folder: Path, items: int, seed: int) -> Path:
    """``items`` noise-burst clips of 2-8 s at 16 kHz (resampled on read, as real corpora are)."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(items):
        n = int(16000 * rng.uniform(2.0, 8.0))
        envelope = np.repeat(rng.uniform(0.02, 0.3, n // 1600 + 1), 1600)[:n]
        sf.write(folder / f"clip{i:04d}.wav", (rng.normal(0, 1, n) * envelope).astype(np.float32), 16000)
    return folder


def run(args: argparse.Namespace) -> int:
    import torch

    import audiotok
    from audiotok.benchmarks.results import emit
    from audiotok.errors import CommandError
    from audiotok.tokenizers.dataset import read_shards, tokenize_dataset

    try:
        from audiotok.tokenizers.dataset_ray import RayOptions, require_ray, tokenize_dataset_ray

        ray = require_ray()
    except ImportError as err:
        raise CommandError(str(err)) from None
    torch.set_num_threads(args.threads)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="audiotok-bench-tokenize-"))
    try:
        source = Path(args.data) if args.data else make_clips(work / "input", args.items, args.seed)
        tok = audiotok.load(args.model, batch_size=args.batch_size)
        quiet = lambda message: None  # noqa: E731 - the table says it all

        def timed(name: str, call) -> tuple[float, list, dict]:
            out = work / name
            shutil.rmtree(out, ignore_errors=True)
            start = time.perf_counter()
            summary = call(out)
            seconds = time.perf_counter() - start
            return seconds, read_shards(out).to_pylist(), summary

        local_s, reference, _ = timed("local", lambda out: tokenize_dataset(
            source, out, tok, shard_size=args.shard_size, progress_bar=False, report=quiet))
        audio_s = sum(r["duration"] for r in reference)
        rows = [{"engine": "local", "workers": 1, "items": len(reference), "audio_s": audio_s,
                 "wall_s": local_s, "audio_s_per_s": audio_s / local_s, "vs_local": 1.0, "startup_s": None,
                 "rows_equal": True}]
        started = time.perf_counter()
        owned = not ray.is_initialized()
        if owned:
            local = args.address is None
            ray.init(address=args.address, num_cpus=max(args.workers) * args.threads + 1 if local else None,
                     logging_level="WARNING")
        init_s = time.perf_counter() - started
        try:
            for workers in args.workers:
                options = RayOptions(workers=workers, cpus_per_worker=args.threads, batch_seconds=args.batch_seconds,
                                     gpus_per_worker=args.gpus_per_worker, progress_every=1e9)
                seconds, got, summary = timed(f"ray-{workers}", lambda out: tokenize_dataset_ray(
                    source, out, tok, options, report=quiet, shard_size=args.shard_size))
                rows.append({"engine": "ray", "workers": workers, "items": len(got), "audio_s": audio_s,
                             "wall_s": seconds, "audio_s_per_s": audio_s / seconds, "vs_local": local_s / seconds,
                             "startup_s": summary["ray"]["first_items_s"],
                             "rows_equal": got == reference})
        finally:
            if owned:
                ray.shutdown()
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    emit(f"audiotok bench tokenize-dataset: {args.model}, {len(reference)} items, {audio_s:.0f} s of audio",
         rows, args.out, extra={"model": args.model, "ray_init_s": init_s, "threads_per_worker": args.threads,
                                "shard_size": args.shard_size, "batch_size": args.batch_size,
                                "ray": ray.__version__, "address": args.address or "a local Ray started here"})
    return 0 if all(r["rows_equal"] for r in rows) else 1
