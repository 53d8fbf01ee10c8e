"""``audiotok corpus``: build the offline speech corpus, measure its intelligibility, show its summary.

    audiotok corpus build [DIR] --size tiny|small|full [--seed 0] [--intelligibility 10]
    audiotok corpus intelligibility DIR [--per-voice 10]
    audiotok corpus info [DIR | --size tiny --seed 0]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)

    build = actions.add_parser("build", help="synthesise the corpus with flite and espeak-ng")
    build.add_argument("dir", nargs="?", help="output folder (default: the cache folder)")
    build.add_argument("--size", default="tiny", choices=["tiny", "small", "full"],
                       help="tiny: ~80 utterances (CI); small: ~400; full: >2,000 and >2 h")
    build.add_argument("--seed", type=int, default=0, help="same seed, same corpus")
    build.add_argument("--workers", type=int, default=2, help="parallel synthesiser processes")
    build.add_argument("--force", action="store_true", help="delete and rebuild an existing folder")
    build.add_argument("--intelligibility", type=int, default=0, metavar="N",
                       help="then transcribe N utterances per voice with pocketsphinx (0: skip)")

    intel = actions.add_parser("intelligibility",
                               help="per-voice pocketsphinx WER, written into the corpus summary")
    intel.add_argument("dir", help="a built corpus folder")
    intel.add_argument("--per-voice", type=int, default=10, help="utterances per voice")

    info = actions.add_parser("info", help="print a built corpus' SUMMARY.md")
    info.add_argument("dir", nargs="?", help="corpus folder (default: the cache folder)")
    info.add_argument("--size", default="tiny", choices=["tiny", "small", "full"])
    info.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from audiotok.data.corpus import build_corpus, default_root, is_built, measure_intelligibility
    from audiotok.data.corpus.summary import SUMMARY_MD, read_summary

    try:
        if args.corpus_command == "build":
            root = Path(args.dir) if args.dir else default_root(args.size, args.seed)
            if is_built(root) and not args.force:
                built = read_summary(root)
                if (built["size"], built["seed"]) != (args.size, args.seed):
                    raise FileExistsError(
                        f"{root} holds a {built['size']} corpus with seed {built['seed']}; "
                        "pass --force to replace it or choose another folder"
                    )
                print(f"already built: {root} (pass --force to rebuild)")
            else:
                root = build_corpus(root, args.size, args.seed, workers=args.workers,
                                    progress=sys.stderr.isatty(), force=args.force)
            if args.intelligibility > 0:
                measure_intelligibility(root, args.intelligibility, progress=sys.stderr.isatty())
            print((root / SUMMARY_MD).read_text(encoding="utf-8"))
            print(f"corpus folder: {root}")
        elif args.corpus_command == "intelligibility":
            section = measure_intelligibility(args.dir, args.per_voice, progress=sys.stderr.isatty())
            for speaker, row in section["speakers"].items():
                print(f"{speaker:24s} {row['engine']:10s} WER {row['wer']:6.1%}")
            for engine, wer in section["engines"].items():
                print(f"{engine:24s} {'':10s} WER {wer:6.1%}")
        else:
            root = args.dir or default_root(args.size, args.seed)
            read_summary(root)  # clear error when the corpus is not built
            print((Path(root) / SUMMARY_MD).read_text(encoding="utf-8"))
    except (RuntimeError, FileExistsError, FileNotFoundError, ValueError) as err:
        print(f"audiotok corpus: {err}", file=sys.stderr)
        return 1
    return 0
