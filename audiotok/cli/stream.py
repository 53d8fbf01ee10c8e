"""``audiotok stream IN.wav OUT.wav``: encode and decode a file frame by frame, as a live call would.

Reads and resamples the input, feeds it through a causal codec ``--chunk-frames`` frames at a time
(encode, then decode each chunk), writes the decoded audio, and prints per-chunk latency (mean, p50,
p95, max in ms) and the real-time factor (compute time / audio time; < 1 keeps up with real time).
"""
from __future__ import annotations

import argparse
import statistics
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="audio file to stream (any rate or channel count; mixed to mono)")
    parser.add_argument("output", help="where to write the decoded audio (WAV/FLAC)")
    parser.add_argument("--codec", default="mimi-tiny",
                        help="a causal codec: registered name (random weights), saved folder, training "
                             "checkpoint, official Mimi weights, or a folder from `audiotok export onnx` "
                             "(runs in ONNX Runtime)")
    parser.add_argument("--chunk-frames", type=int, default=1, help="frames per streaming call")
    parser.add_argument("--n-q", type=int, default=None, help="codebooks per frame (codec default)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def load_codec(spec: str):
    """Any codec ``audiotok.load`` accepts, weight norm folded, in eval mode; a folder written by
    ``audiotok export onnx`` runs its streaming graphs in ONNX Runtime."""
    from audiotok.export.onnx import is_onnx_folder

    if is_onnx_folder(spec):
        from audiotok.export.onnx_runtime import OnnxCodec

        return OnnxCodec(spec)
    from audiotok.tokenizers.loading import load_codec as load

    return load(spec).fold_weight_norm().eval()


def latency_stats(seconds: list[float], audio_seconds_per_call: float) -> dict[str, float]:
    """Mean / p50 / p95 / max in ms and the real-time factor of per-call times."""
    ms = sorted(1000 * s for s in seconds)
    mean = statistics.fmean(ms)
    return {"calls": len(ms), "mean ms": mean, "p50 ms": ms[len(ms) // 2],
            "p95 ms": ms[min(len(ms) - 1, int(0.95 * len(ms)))], "max ms": ms[-1],
            "RTF": mean / (1000 * audio_seconds_per_call)}


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.table import Table

    from audiotok.errors import CommandError
    from audiotok.data.audio_io import AudioError, load_audio, save_audio
    from audiotok.tokenizers.streaming import Stream

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.chunk_frames < 1:
        raise CommandError(f"--chunk-frames must be >= 1, got {args.chunk_frames}")
    from audiotok.data.sources import path_problem

    problem = path_problem(args.input, expect="file")
    if problem is not None:  # before the codec loads
        raise CommandError(f"{args.input}: {problem}")
    try:
        codec = load_codec(args.codec)
    except (ValueError, OSError) as err:  # CheckpointError is a ValueError
        raise CommandError(f"cannot load the model {args.codec}: {err}") from None
    try:  # before the audio is read
        codec.check_can_stream()
        n_q = codec.resolve_n_q(args.n_q)
        if hasattr(codec, "check_decodes"):  # ONNX graphs decode exactly the exported number
            codec.check_decodes(n_q)
    except (RuntimeError, ValueError) as err:
        raise CommandError(str(err) if isinstance(err, RuntimeError) else f"--n-q {args.n_q} does not fit "
                           f"{args.codec}: {err}") from None
    try:
        wav, _ = load_audio(args.input, sample_rate=codec.sample_rate)  # [1, T]
    except AudioError as err:  # missing, a folder, unreadable, not audio: one line, no traceback
        raise CommandError(str(err)) from None
    length = wav.shape[-1]
    step = args.chunk_frames * codec.hop_length
    wav = torch.nn.functional.pad(wav, (0, -length % step))[None]  # [1, 1, T'] whole chunks

    encode_times, decode_times, total_times, pieces = [], [], [], []
    with Stream(codec, 1, args.n_q) as stream:
        for start in range(0, wav.shape[-1], step):
            t0 = time.perf_counter()
            codes = stream.encode_step(wav[..., start:start + step])
            t1 = time.perf_counter()
            pieces.append(stream.decode_step(codes))
            t2 = time.perf_counter()
            encode_times.append(t1 - t0)
            decode_times.append(t2 - t1)
            total_times.append(t2 - t0)
    out = torch.cat(pieces, dim=-1)[0, :, :length]
    save_audio(args.output, out, codec.sample_rate)

    chunk_seconds = step / codec.sample_rate
    table = Table(title=f"{args.codec}: streaming {args.chunk_frames} frame(s) = "
                        f"{1000 * chunk_seconds:.0f} ms per call, {torch.get_num_threads()} thread(s)")
    columns = ["stage", "calls", "mean ms", "p50 ms", "p95 ms", "max ms", "RTF"]
    for c in columns:
        table.add_column(c)
    for stage, times in (("encode", encode_times), ("decode", decode_times), ("encode+decode", total_times)):
        stats = latency_stats(times, chunk_seconds)
        table.add_row(stage, *[f"{stats[c]:.3g}" if isinstance(stats[c], float) else str(stats[c])
                               for c in columns[1:]])
    console = Console()
    console.print(table)
    console.print(f"wrote {args.output} ({length / codec.sample_rate:.2f} s at {codec.sample_rate} Hz); "
                  "algorithmic latency: one frame "
                  f"({1000 * codec.hop_length / codec.sample_rate:.0f} ms) plus compute")
    return 0
