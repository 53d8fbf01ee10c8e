"""``audiotok detokenize IN... -o OUT``: saved codes → WAV files.

IN is a folder written by ``audiotok tokenize`` (its ``manifest.jsonl`` gives ids and true lengths),
such a manifest, or ``.npy`` / ``.npz`` codes files. The model comes from ``--model`` or from the
``tokenizer.json`` beside the codes. A bad codes file is reported and skipped; exit code 1 if any failed.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from audiotok.tokenizers.cli_tokenize import MANIFEST, TOKENIZER_INFO, add_model_arguments, load_tokenizer


@dataclass
class CodesEntry:
    id: str
    path: Path
    num_samples: int | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="tokenize output folders, manifest.jsonl or .npy/.npz files")
    parser.add_argument("-o", "--output", required=True, help="folder for the decoded .wav files")
    add_model_arguments(parser, required=False)


def list_entries(inputs: list[str]) -> tuple[list[CodesEntry], list[Path], list[str]]:
    """Codes files to decode, the folders they came from (to find tokenizer.json), missing inputs."""
    entries, folders, missing = [], [], []
    for entry in inputs:
        path = Path(entry)
        manifest = path / MANIFEST if path.is_dir() else path
        if manifest.suffix == ".jsonl" and manifest.is_file():
            folders.append(manifest.parent)
            for line in manifest.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    entries.append(CodesEntry(row["id"], manifest.parent / row["codes"], row.get("num_samples")))
        elif path.is_dir():
            folders.append(path)
            entries += [CodesEntry(p.relative_to(path).with_suffix("").as_posix(), p)
                        for p in sorted(path.rglob("*.np[yz]"))]
        elif path.is_file() and path.suffix in (".npy", ".npz"):
            folders.append(path.parent)
            entries.append(CodesEntry(path.stem, path))
        else:
            missing.append(entry)
    return entries, folders, missing


def read_codes(entry: CodesEntry, codebook_size: int, max_codebooks: int) -> tuple[torch.Tensor, int | None]:
    """``(codes [Q, F] int64, num_samples or None)``; ``ValueError`` saying what is wrong with the file."""
    try:
        data = np.load(entry.path)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"cannot read codes ({err}); re-run audiotok tokenize for it") from None
    num_samples = entry.num_samples
    if isinstance(data, np.lib.npyio.NpzFile):
        if "codes" not in data:
            raise ValueError(f"no 'codes' array in the .npz (found {list(data.keys())})")
        num_samples = int(data["num_samples"]) if "num_samples" in data else num_samples
        data = data["codes"]
    if data.ndim != 2 or not np.issubdtype(data.dtype, np.integer):
        raise ValueError(f"codes must be an integer array [Q, F], got {data.dtype} {data.shape}")
    if data.shape[0] > max_codebooks or (data.size and (data.min() < 0 or data.max() >= codebook_size)):
        raise ValueError(f"codes {data.shape} with values in [{data.min()}, {data.max()}] do not fit this "
                         f"model ({max_codebooks} × {codebook_size}); pass the --model they were made with")
    return torch.from_numpy(data.astype(np.int64)), num_samples


def find_model(args: argparse.Namespace, folders: list[Path]) -> str:
    if args.model:
        return args.model
    for folder in folders:
        info = folder / TOKENIZER_INFO
        if info.is_file():
            return json.loads(info.read_text())["model"]
    raise SystemExit(f"error: no --model given and no {TOKENIZER_INFO} next to the codes; "
                     "pass the model the codes were made with, e.g. --model path/to/codec")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from audiotok.data.audio_io import save_audio

    entries, folders, missing = list_entries(args.inputs)
    failures = {entry: "no such folder, manifest or .npy/.npz file" for entry in missing}
    args.semantic_only, args.chunk_seconds = False, getattr(args, "chunk_seconds", 30.0)
    tok = load_tokenizer(args, find_model(args, folders))
    out = Path(args.output)
    written = 0
    with tqdm(total=len(entries), unit="file", desc="detokenize", disable=None) as bar:
        for start in range(0, len(entries), args.batch_size):
            batch, codes, lengths = [], [], []
            for entry in entries[start : start + args.batch_size]:
                try:
                    item, num_samples = read_codes(entry, tok.codebook_size, tok.codec.max_codebooks)
                except ValueError as err:
                    failures[str(entry.path)] = str(err)
                    print(f"error: {entry.path}: {err}", file=sys.stderr)
                    continue
                batch.append(entry)
                codes.append(item)
                lengths.append(num_samples or item.shape[-1] * tok.hop_length)
            if batch:
                audio = tok.detokenize(codes).unbatch()
                for entry, wav, n in zip(batch, audio, lengths):
                    save_audio(out / f"{entry.id}.wav", wav[:, :n], tok.sample_rate)
                    written += 1
            bar.update(len(entries[start : start + args.batch_size]))
    print(f"decoded {written} of {len(entries) + len(missing)} inputs into {out}"
          + (f"; {len(failures)} failed:" if failures else ""), file=sys.stderr)
    for name, problem in failures.items():
        print(f"  {name}: {problem}", file=sys.stderr)
    return 1 if failures else 0
