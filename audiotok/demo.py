"""``audiotok demo``: the main job on a built-in default.

Builds (or reuses) the offline speech corpus, takes a test utterance, tokenizes it with a codec,
decodes it back, and prints what a speech-LM builder wants to know: sample rate, frame rate,
codebooks, bitrate, tokens per second, and how close the resynthesis is. The default codec is a tiny
WavTokenizer trained on that corpus and shipped with the package; a registered architecture name has random
weights.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


MEL_DISTANCE_MEANING = "mean |ln mel(original) - ln mel(resynthesis)| over 80 mel bands and all frames"
HUM_HZ = 120.0


def log_mel_distance(reference, estimate, sample_rate: int) -> float:
    """Mean absolute difference of natural-log magnitude mel spectrograms (80 mels, 1024/256):
    0 for identical audio; see :data:`MEL_DISTANCE_MEANING`."""
    import torch

    from audiotok.dsp import MelSpectrogram

    mel = MelSpectrogram(sample_rate, n_fft=1024, hop_length=256, n_mels=80)
    n = min(reference.shape[-1], estimate.shape[-1])
    with torch.no_grad():
        return (mel(reference[None, :, :n]) - mel(estimate[None, :, :n])).abs().mean().item()


def steady_hum(wav, sample_rate: int):
    """A steady ``HUM_HZ`` sine with the loudness (RMS) and length of ``wav`` ``[1, T]``: the demo's
    yardstick for "sounds nothing like the input"."""
    import math

    import torch

    t = torch.arange(wav.shape[-1], dtype=torch.float32) / sample_rate
    rms = wav.pow(2).mean().sqrt()
    return (math.sqrt(2) * rms * torch.sin(2 * math.pi * HUM_HZ * t))[None]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--codec", default="wavtokenizer-tiny-trained",
                        help="shipped trained name (e.g. mimi-tiny-trained), registered architecture "
                        "(random weights), saved folder, checkpoint or official weights "
                        "(default: wavtokenizer-tiny-trained, a tiny WavTokenizer trained on the built-in corpus)")
    parser.add_argument("--audio", default=None, help="an audio file (default: a built-in corpus utterance)")
    parser.add_argument("--out", default="demo_out", help="folder for the resynthesised audio")
    parser.add_argument("--n-q", type=int, default=None, help="number of codebooks to use")


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.table import Table

    import audiotok
    from audiotok.cli import CommandError
    from audiotok.data import AudioError, load_audio, save_audio

    console = Console()
    if args.audio is None:
        from audiotok.data.corpus import ensure_corpus
        from audiotok.data.sources import read_manifest

        corpus = ensure_corpus("tiny")
        item = next(i for i in read_manifest(corpus / "test.jsonl"))
        path, text = item.path, item.text
    else:
        path, text = Path(args.audio), None
    from audiotok.data.sources import path_problem

    problem = path_problem(path, expect="file")
    if problem is not None:
        raise CommandError(f"{path}: {problem}")
    tok = audiotok.load(args.codec)
    try:
        wav, sr = load_audio(path, sample_rate=tok.sample_rate)
    except AudioError as err:
        raise CommandError(str(err)) from None
    start = time.perf_counter()
    tokens = tok.tokenize(wav, sample_rate=sr, n_q=args.n_q)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded = tok.detokenize(tokens)  # TokenizedAudio: trimmed to the input's exact length
    decode_s = time.perf_counter() - start
    audio = decoded.audio[0, :, : int(decoded.lengths[0])]
    assert audio.shape[-1] == wav.shape[-1], (audio.shape, wav.shape)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_audio(out / "original.wav", wav, tok.sample_rate)
    save_audio(out / "resynthesis.wav", audio, tok.sample_rate)
    mel_distance = log_mel_distance(wav, audio, tok.sample_rate)
    hum_distance = log_mel_distance(wav, steady_hum(wav, tok.sample_rate), tok.sample_rate)
    seconds = wav.shape[-1] / tok.sample_rate
    codes = tokens.codes[0, :, : int(tokens.lengths[0])]

    table = Table(title=f"audiotok demo: {args.codec}")
    table.add_column("quantity")
    table.add_column("value")
    rows = [
        ("input", f"{path} ({seconds:.2f} s)" + (f' "{text}"' if text else "")),
        ("sample rate", f"{tok.sample_rate} Hz"),
        ("frame rate", f"{tok.frame_rate:g} Hz"),
        ("codebooks used × size", f"{codes.shape[0]} × {tok.codebook_size}"),
        ("bitrate", f"{tok.frame_rate * codes.shape[0] * torch.log2(torch.tensor(float(tok.codebook_size))).item() / 1000:.3f} kbps"),
        ("tokens", f"{codes.numel()} ({codes.numel() / seconds:.1f} tokens/s)"),
        ("first frame codes", " ".join(str(int(c)) for c in codes[:, 0])),
        ("encode / decode real-time factor", f"{encode_s / seconds:.3f} / {decode_s / seconds:.3f}"),
        ("mel distance, original vs resynthesis", f"{mel_distance:.3f}"),
        ("  what it means", f"{MEL_DISTANCE_MEANING}; 0 = identical; a steady {HUM_HZ:g} Hz hum as "
                            f"loud as the input scores {hum_distance:.2f} here"),
        ("written", f"{out / 'original.wav'}, {out / 'resynthesis.wav'}"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    from audiotok.codecs import available

    if args.codec in available():
        console.print("[yellow]note:[/] a registered name has random weights: train one with "
                      "`audiotok fit --config configs/mimi-tiny.yaml` or load official weights.")
    return 0
