"""``audiotok distill cache|kmeans|units``: precompute teacher features once; fit k-means pseudo-label units;
make a units tokenizer of them.

Examples::

    audiotok distill cache --teacher phones --data corpus/manifest.jsonl --out cache/phones
    audiotok distill cache --teacher hubert:/models/hubert-base-ls960@9 --data corpus --out cache/hubert9
    audiotok distill kmeans --cache cache/hubert9 --k 500 --out units/hubert9-k500.safetensors
    audiotok distill units --kmeans units/hubert9-k500.safetensors --out tokenizers/hubert9-km500
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="distill_command", metavar="ACTION", required=True)

    cache = actions.add_parser("cache", help="compute teacher features for a dataset into shards")
    cache.add_argument("--teacher", required=True,
                       help="'phones' (offline) or KIND:SOURCE[@LAYER], KIND hubert|wavlm|hf, LAYER avg|int")
    cache.add_argument("--data", required=True, help="manifest .jsonl, corpus folder (manifest.jsonl) or audio folder")
    cache.add_argument("--out", required=True, help="cache folder (index.json + shard-*.safetensors)")
    cache.add_argument("--split", default=None, help="only this manifest split (default: all rows)")
    cache.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="teacher precision")
    cache.add_argument("--device", default="cpu", help="torch device for the teacher (e.g. cuda)")
    cache.add_argument("--shard-mb", type=int, default=256, help="shard size in MiB")
    cache.add_argument("--overwrite", action="store_true", help="replace a cache built with another teacher")

    kmeans = actions.add_parser("kmeans", help="fit k-means units on cached teacher features")
    kmeans.add_argument("--cache", required=True, help="feature cache folder")
    kmeans.add_argument("--k", type=int, default=500, help="number of units")
    kmeans.add_argument("--out", required=True, help="centroids .safetensors (metadata in its header)")
    kmeans.add_argument("--max-frames", type=int, default=1_000_000, help="random subset of frames to fit on")
    kmeans.add_argument("--iterations", type=int, default=50)
    kmeans.add_argument("--seed", type=int, default=0)

    units = actions.add_parser("units", help="a units tokenizer (teacher layer + k-means) from k-means units")
    units.add_argument("--kmeans", required=True, help="centroids .safetensors written by `distill kmeans`")
    units.add_argument("--teacher", default=None,
                       help="KIND:SOURCE@LAYER the units were fitted on (default: the spec recorded with them)")
    units.add_argument("--out", required=True, help="tokenizer folder (load it with audiotok.load)")
    units.add_argument("--vocoder-config", default=None,
                       help="JSON file with the decoder spec of a unit vocoder (default: none, no detokenize)")
    units.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")


def run(args: argparse.Namespace) -> int:
    try:
        if args.distill_command == "cache":
            return _run_cache(args)
        if args.distill_command == "units":
            return _run_units(args)
        return _run_kmeans(args)
    except (ValueError, OSError, RuntimeError, KeyError) as error:
        print(f"audiotok distill {args.distill_command}: {error}", file=sys.stderr)
        return 2


def _run_cache(args: argparse.Namespace) -> int:
    from audiotok.distill.cache import build_cache
    from audiotok.distill.teacher import TeacherSpec
    from audiotok.distill.teachers import build_teacher

    spec = TeacherSpec.parse(args.teacher)
    teacher = build_teacher(spec) if spec.kind == "phones" else build_teacher(spec, dtype=args.dtype)
    teacher.to(args.device)
    cache = build_cache(
        teacher, args.data, args.out, split=args.split, overwrite=args.overwrite,
        shard_bytes=args.shard_mb * 2**20, spec=args.teacher,
    )  # fmt: skip
    print(f"{len(cache)} files cached in {args.out} ({cache.output}, dim {cache.dim}, {cache.frame_rate} Hz)")
    return 0


def _run_kmeans(args: argparse.Namespace) -> int:
    from audiotok.distill.kmeans import fit_kmeans_on_cache

    units = fit_kmeans_on_cache(args.cache, args.k, args.max_frames, args.iterations, args.seed)
    path = units.save(args.out)
    print(f"{units.num_units} units fitted on {units.metadata['frames']} frames "
          f"(mean squared distance {units.metadata['inertia']:.4g}) -> {path}")
    return 0


def _run_units(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from audiotok.tokenizers.units import save_atomic, units_codec_from_kmeans

    vocoder = json.loads(Path(args.vocoder_config).read_text()) if args.vocoder_config else None
    codec = units_codec_from_kmeans(args.kmeans, teacher=args.teacher, vocoder=vocoder)
    path = save_atomic(codec, args.out, overwrite=args.overwrite)
    print(f"{codec.config.name}: {codec.codebook_size} units at {codec.frame_rate:g} Hz "
          f"({codec.bitrate:.0f} bit/s), {'with' if vocoder else 'no'} vocoder -> {path}")
    return 0
