"""``audiotok bench speed``: tokenize / detokenize real-time factor per family, ours vs the reference.

Full-size models with random weights (speed does not depend on the values). Ours runs with weight
norm folded under ``torch.inference_mode``; the references run as their packages ship them under
``torch.no_grad`` (SpeechTokenizer 1.0.1, moshi's Mimi). WavTokenizer has no installable package, so
only ours is timed. RTF = compute seconds / audio seconds (lower is faster; < 1 is faster than real time).
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

FAMILIES = {"speechtokenizer": "speechtokenizer", "mimi": "mimi", "wavtokenizer": "wavtokenizer-75"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--seconds", type=float, default=5.0, help="audio length per call")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs (best is kept) after a warm-up")
    parser.add_argument("--out", default="results/speed.json", help="JSON output path")


def elapsed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ours(name: str):
    from audiotok.codecs.families import build_codec

    codec = build_codec(name).fold_weight_norm().eval()

    def encode(wav):
        with torch.inference_mode():
            return codec.encode(wav)

    def decode(codes):
        with torch.inference_mode():
            return codec.decode(codes)

    return codec.sample_rate, encode, decode


def reference(family: str):
    """(sample_rate, encode, decode) of the reference implementation, or a reason string."""
    from audiotok.tokenizers.convert import references

    try:
        if family == "speechtokenizer":
            model = references.speechtokenizer_class()(references.SPEECHTOKENIZER_CONFIG).eval()
            sr = 16000
            encode, decode = model.encode, model.decode  # codes [Q, B, F]
        elif family == "mimi":
            model = references.moshi_mimi(num_codebooks=8)
            sr = 24000
            encode, decode = model.encode, model.decode
        else:
            return "no installable reference package (WavTokenizer is not on PyPI)"
    except ImportError as err:
        return f"reference unavailable: {err}"

    def no_grad(fn):
        def run(x):
            with torch.no_grad():
                return fn(x)
        return run

    return sr, no_grad(encode), no_grad(decode)


def measure(sr: int, encode, decode, seconds: float) -> tuple[torch.Tensor, object, object]:
    """The test signal and the two timed calls for one implementation."""
    torch.manual_seed(0)
    wav = 0.1 * torch.randn(1, 1, int(seconds * sr))
    codes = encode(wav)  # warm-up, and the codes decode times
    return wav, (lambda: encode(wav)), (lambda: decode(codes))


def run(args: argparse.Namespace) -> int:
    """Ours and the reference alternate run by run (same threads, same moment), best of ``repeats``,
    so a machine whose load changes during the benchmark cannot favour either side."""
    from audiotok.benchmarks.results import emit

    rows = []
    previous_threads = torch.get_num_threads()
    try:
        for family in args.families:
            implementations = {"audiotok": ours(FAMILIES[family]), "reference": reference(family)}
            ready = {k: v for k, v in implementations.items() if not isinstance(v, str)}
            for threads in args.threads:
                torch.set_num_threads(threads)
                calls = {k: measure(*built, args.seconds) for k, built in ready.items()}
                best = {k: [float("inf"), float("inf")] for k in calls}
                for _ in range(args.repeats):
                    for impl, (_, encode, decode) in calls.items():
                        best[impl][0] = min(best[impl][0], elapsed(encode))
                        best[impl][1] = min(best[impl][1], elapsed(decode))
                for impl, built in implementations.items():
                    row = {"family": family, "implementation": impl, "threads": threads}
                    if isinstance(built, str):
                        rows.append({**row, "tokenize_rtf": None, "detokenize_rtf": None, "note": built})
                    else:
                        enc, dec = best[impl]
                        rows.append({**row, "tokenize_rtf": enc / args.seconds,
                                     "detokenize_rtf": dec / args.seconds, "note": ""})
    finally:
        torch.set_num_threads(previous_threads)
    emit(f"Speed: real-time factor on {args.seconds:g} s of audio (lower is faster)", rows, args.out,
         extra={"seconds": args.seconds, "repeats": args.repeats})
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
