"""``audiotok tokenize IN... -o OUT``: audio files and folders → one codes file each, plus a manifest.

OUT gets ``<id>.npy`` (codes ``[Q, F]``) or ``<id>.npz`` (``codes``, ``num_samples``, ``sample_rate``),
``manifest.jsonl`` (one row per file: ``id``, ``audio``, ``codes``, ``n_frames``, ``num_samples``,
``duration``) and ``tokenizer.json`` (the model and its rates, read by ``audiotok detokenize``).
A bad file is reported and skipped; the exit code is 1 when any file failed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

MANIFEST = "manifest.jsonl"
TOKENIZER_INFO = "tokenizer.json"
FORMATS = ("npy", "npz")


def add_model_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """Options shared by the tokenize commands: which model, where, how many codebooks."""
    parser.add_argument("-m", "--model", required=required,
                        help="registered name, saved folder, training .ckpt, official weights or hub id")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--n-q", type=int, default=None, help="codebooks to keep (default: the model's)")
    parser.add_argument("--semantic-only", action="store_true", help="first codebook only")
    parser.add_argument("--batch-size", type=int, default=8, help="items encoded together (default 8)")
    parser.add_argument("--chunk-seconds", type=float, default=30.0,
                        help="longer audio is processed in chunks of this length (default 30)")


def load_tokenizer(args: argparse.Namespace, model: str | None = None):
    import audiotok

    return audiotok.load(model or args.model, device=args.device, n_q=getattr(args, "n_q", None),
                         semantic_only=getattr(args, "semantic_only", False),
                         batch_size=args.batch_size, chunk_seconds=getattr(args, "chunk_seconds", 30.0))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="audio files or folders (searched recursively)")
    parser.add_argument("-o", "--output", required=True, help="folder for codes and manifest.jsonl")
    parser.add_argument("--format", choices=FORMATS, default="npy", help="codes file type (default npy)")
    add_model_arguments(parser)


def list_inputs(inputs: list[str]) -> tuple[list[tuple[str, Path]], list[str]]:
    """``(id, path)`` for every audio file under ``inputs`` (ids unique), and the missing inputs."""
    from audiotok.data.sources import list_folder

    found, missing, seen = [], [], set()
    for entry in inputs:
        path = Path(entry)
        if not path.exists():
            missing.append(entry)
            continue
        for item in list_folder(path):
            ident, n = item.id, 1
            while ident in seen:
                ident, n = f"{item.id}_{n}", n + 1
            seen.add(ident)
            found.append((ident, Path(item.path)))
    return found, missing


def codes_dtype(codebook_size: int):
    """The smallest integer type that holds every code (uint16 for all our codecs)."""
    return np.uint16 if codebook_size <= 65536 else np.int32


def save_codes(path: Path, codes: np.ndarray, num_samples: int, sample_rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        np.savez(path, codes=codes, num_samples=num_samples, sample_rate=sample_rate)
    else:
        np.save(path, codes)
    return path


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from audiotok.data.audio_io import AudioError, load_audio

    files, missing = list_inputs(args.inputs)
    failures = {entry: "no such file or folder" for entry in missing}
    tok = load_tokenizer(args)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    dtype = codes_dtype(tok.codebook_size)
    rows = []
    with tqdm(total=len(files), unit="file", desc="tokenize", disable=None) as bar:
        for start in range(0, len(files), args.batch_size):
            batch, wavs = [], []
            for ident, path in files[start : start + args.batch_size]:
                try:
                    wavs.append(load_audio(path, tok.sample_rate)[0])
                    batch.append((ident, path))
                except AudioError as err:
                    failures[str(path)] = err.problem
                    print(f"error: {err}", file=sys.stderr)
            if wavs:
                tokens = tok.encode_waveforms(wavs)
                for (ident, path), codes, n in zip(batch, tokens.unbatch(), tokens.num_samples.tolist()):
                    target = save_codes(out / f"{ident}.{args.format}", codes.numpy().astype(dtype),
                                        n, tok.sample_rate)
                    rows.append({"id": ident, "audio": str(path.resolve()),
                                 "codes": target.relative_to(out).as_posix(), "n_frames": codes.shape[-1],
                                 "num_samples": n, "duration": n / tok.sample_rate})
            bar.update(len(files[start : start + args.batch_size]))
    with (out / MANIFEST).open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    write_tokenizer_info(out, tok)
    print(f"tokenized {len(rows)} of {len(files) + len(missing)} inputs into {out} "
          f"({tok.num_codebooks} × {tok.codebook_size} codes at {tok.frame_rate:g} Hz)"
          + (f"; {len(failures)} failed:" if failures else ""), file=sys.stderr)
    for name, problem in failures.items():
        print(f"  {name}: {problem}", file=sys.stderr)
    return 1 if failures else 0


def write_tokenizer_info(out: Path, tok) -> None:
    model = Path(tok.source)
    info = {"model": str(model.resolve()) if model.exists() else tok.source,
            "sample_rate": tok.sample_rate, "frame_rate": tok.frame_rate,
            "num_codebooks": tok.num_codebooks, "codebook_size": tok.codebook_size,
            "bitrate": tok.bitrate}
    (out / TOKENIZER_INFO).write_text(json.dumps(info, indent=2))
