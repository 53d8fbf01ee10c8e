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
    from audiotok.data import load_audio, save_audio
    from audiotok.dsp import MelSpectrogram

    console = Console()
    if args.audio is None:
        from audiotok.data.corpus import ensure_corpus
        from audiotok.data.sources import read_manifest

        corpus = ensure_corpus("tiny")
        item = next(i for i in read_manifest(corpus / "test.jsonl"))
        path, text = item.path, item.text
    else:
        path, text = Path(args.audio), None
    tok = audiotok.load(args.codec)
    wav, sr = load_audio(path, sample_rate=tok.sample_rate)
    start = time.perf_counter()
    tokens = tok.tokenize(wav, sample_rate=sr, n_q=args.n_q)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded = tok.detokenize(tokens.codes, tokens.lengths)
    decode_s = time.perf_counter() - start
    audio = decoded.audio[0, :, : int(decoded.lengths[0])]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_audio(out / "original.wav", wav, tok.sample_rate)
    save_audio(out / "resynthesis.wav", audio, tok.sample_rate)
    mel = MelSpectrogram(tok.sample_rate, n_fft=1024, hop_length=256, n_mels=80)
    n = min(wav.shape[-1], audio.shape[-1])
    mel_distance = (mel(wav[None, :, :n]) - mel(audio[None, :, :n])).abs().mean().item()
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
        ("log-mel distance (original vs resynthesis)", f"{mel_distance:.3f}"),
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
