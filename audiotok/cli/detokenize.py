"""``audiotok detokenize IN... -o OUT``: saved codes → WAV files.

IN is a folder written by ``audiotok tokenize`` (its ``manifest.jsonl`` gives ids and true lengths),
such a manifest, or ``.npy`` / ``.npz`` codes files. The model comes from ``--model`` or from the
``tokenizer.json`` beside the codes; either way it must be the tokenizer recorded there (same config
hash, sample rate and codebook layout), or the command stops naming both (``--force`` decodes anyway).
A bad codes file or manifest line is reported and skipped; exit code 1 if any failed. WAV files are
written under a temporary name and renamed into place when complete; an item longer than
``--chunk-seconds`` is decoded and written chunk by chunk, so memory does not grow with its duration.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from audiotok.errors import CommandError
from audiotok.data.outputs import is_temporary, output_lock, prepare_output, write_atomic
from audiotok.cli.tokenize import (
    MANIFEST,
    TOKENIZER_INFO,
    add_model_arguments,
    describe,
    identity_mismatch,
    load_tokenizer,
    tokenizer_identity,
)


@dataclass
class CodesEntry:
    id: str
    path: Path
    num_samples: int | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="tokenize output folders, manifest.jsonl or .npy/.npz files")
    parser.add_argument("-o", "--output", required=True, help="folder for the decoded .wav files")
    parser.add_argument("--force", action="store_true",
                        help="decode even if the model differs from the tokenizer.json of the codes")
    add_model_arguments(parser, required=False)


def read_manifest(manifest: Path, problems: dict[str, str]) -> list[CodesEntry]:
    """The entries of a ``manifest.jsonl``; a bad line is recorded in ``problems`` (by file:line)."""
    entries = []
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{manifest}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            problems[where] = (f"line {number} is not valid JSON ({err.msg} at column {err.colno}); "
                               "fix or delete the line")
            continue
        if not isinstance(row, dict) or not isinstance(row.get("codes"), str):
            name = f"row {row.get('id')!r}" if isinstance(row, dict) and "id" in row else f"the row on line {number}"
            problems[where] = (f"{name} has no 'codes' entry (the codes file, relative to the manifest); "
                               "re-run audiotok tokenize or fix the row")
            continue
        num_samples = row.get("num_samples")
        entries.append(CodesEntry(str(row.get("id") or Path(row["codes"]).with_suffix("").as_posix()),
                                  manifest.parent / row["codes"],
                                  num_samples if isinstance(num_samples, int) and num_samples > 0 else None))
    return entries


def list_entries(inputs: list[str], problems: dict[str, str] | None = None,
                 ) -> tuple[list[CodesEntry], list[Path], list[str]]:
    """Codes files to decode, the folders they came from (to find tokenizer.json), missing inputs.

    Bad manifest lines go to ``problems`` (``{"file:line": what is wrong}``).
    """
    entries, folders, missing = [], [], []
    problems = {} if problems is None else problems
    for entry in inputs:
        path = Path(entry)
        manifest = path / MANIFEST if path.is_dir() else path
        if manifest.suffix == ".jsonl" and manifest.is_file():
            folders.append(manifest.parent)
            entries += read_manifest(manifest, problems)
        elif path.is_dir():
            folders.append(path)
            entries += [CodesEntry(p.relative_to(path).with_suffix("").as_posix(), p)
                        for p in sorted(path.rglob("*.np[yz]")) if not is_temporary(p)]
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
    if 0 in data.shape:
        raise ValueError(f"codes {data.shape} are empty (no codebooks or no frames): nothing to decode; "
                         "re-run audiotok tokenize for it")
    if data.shape[0] > max_codebooks or (data.size and (data.min() < 0 or data.max() >= codebook_size)):
        raise ValueError(f"codes {data.shape} with values in [{data.min()}, {data.max()}] do not fit this "
                         f"model ({max_codebooks} × {codebook_size}); pass the --model they were made with")
    return torch.from_numpy(data.astype(np.int64)), num_samples


def read_tokenizer_infos(folders: list[Path]) -> dict[Path, dict]:
    """The ``tokenizer.json`` of each folder that has one; :class:`CommandError` for an unreadable one."""
    infos = {}
    for folder in dict.fromkeys(folders):
        path = folder / TOKENIZER_INFO
        if not path.is_file():
            continue
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise CommandError(f"{path} is unreadable ({err}); restore it, or pass --model and --force") from None
        if not isinstance(info, dict) or not isinstance(info.get("model"), str):
            raise CommandError(f"{path} does not name a model (no 'model' entry); restore it, or pass "
                               "--model and --force")
        infos[folder] = info
    return infos


def find_model(args: argparse.Namespace, infos: dict[Path, dict]) -> str:
    if args.model:
        return args.model
    if infos:
        return next(iter(infos.values()))["model"]
    raise CommandError(f"no --model given and no {TOKENIZER_INFO} next to the codes; "
                       "pass the model the codes were made with, e.g. --model path/to/codec")


def check_tokenizer(infos: dict[Path, dict], tok, force: bool) -> None:
    """Refuse a model other than the one recorded with the codes (``--force``: warn and go on)."""
    for folder, info in infos.items():
        problems = identity_mismatch(info, tok)
        if not problems:
            continue
        message = (f"the codes in {folder} were made with {describe(info)}, but the model here is "
                   f"{describe(tokenizer_identity(tok))}: {'; '.join(problems)}")
        if not force:
            raise CommandError(f"{message}. Decode with the model the codes were made with (pass --force "
                               "to decode with this one anyway)")
        print(f"warning: {message}; decoding anyway (--force)", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    out = prepare_output(args.output)  # before the (slow) model load
    with output_lock(out, "detokenize"):
        return _run(args, out)


def _run(args: argparse.Namespace, out: Path) -> int:
    from tqdm import tqdm

    from audiotok.data.audio_io import save_audio, save_audio_pieces

    failures: dict[str, str] = {}
    entries, folders, missing = list_entries(args.inputs, failures)
    for problem_at, problem in failures.items():
        print(f"error: {problem_at}: {problem}", file=sys.stderr)
    total = len(entries) + len(failures) + len(missing)
    failures.update({entry: "no such folder, manifest or .npy/.npz file" for entry in missing})
    infos = read_tokenizer_infos(folders)
    args.semantic_only, args.chunk_seconds = False, getattr(args, "chunk_seconds", 30.0)
    tok = load_tokenizer(args, find_model(args, infos))
    check_tokenizer(infos, tok, getattr(args, "force", False))
    if tok.codec.decoder_unavailable:
        raise CommandError(f"{tok.source} cannot detokenize: {tok.codec.decoder_unavailable}")
    written = 0
    with tqdm(total=len(entries), unit="file", desc="detokenize", disable=None) as bar:
        for start in range(0, len(entries), args.batch_size):
            batch, codes, lengths = [], [], []
            for entry in entries[start : start + args.batch_size]:
                try:
                    item, num_samples = read_codes(entry, tok.codebook_size, tok.codec.max_codebooks)
                    if hasattr(tok.codec, "check_decodes"):  # ONNX graphs: exactly the exported levels
                        tok.codec.check_decodes(item.shape[0])
                except ValueError as err:
                    failures[str(entry.path)] = str(err)
                    print(f"error: {entry.path}: {err}", file=sys.stderr)
                    continue
                batch.append(entry)
                codes.append(item)
                lengths.append(num_samples or item.shape[-1] * tok.hop_length)
            # Short items are decoded together; a long one is decoded and written chunk by chunk, so
            # memory does not grow with its duration.
            short = [k for k, item in enumerate(codes) if not tok.decodes_in_chunks(item.shape[-1])]
            audio = dict(zip(short, tok.detokenize([codes[k] for k in short]).unbatch())) if short else {}
            for k, (entry, n) in enumerate(zip(batch, lengths)):
                def write(tmp: Path) -> None:  # called at once, by write_atomic
                    if k in audio:
                        save_audio(tmp, audio[k][:, :n], tok.sample_rate)
                        return
                    # closing: a failed write ends the decoding (and its stream) at once
                    with contextlib.closing(tok.iter_detokenize(codes[k], n)) as pieces:
                        save_audio_pieces(tmp, pieces, tok.sample_rate)

                target = out / f"{entry.id}.wav"
                try:
                    write_atomic(target, write)
                except (OSError, RuntimeError, ValueError) as err:  # soundfile errors are RuntimeErrors
                    failures[str(entry.path)] = f"cannot write {target} ({err}); no partial file was left"
                    print(f"error: {entry.path}: cannot write {target}: {err}", file=sys.stderr)
                    continue
                written += 1
            bar.update(len(entries[start : start + args.batch_size]))
    print(f"decoded {written} of {total} inputs into {out}"
          + (f"; {len(failures)} failed:" if failures else ""), file=sys.stderr)
    for name, problem in failures.items():
        print(f"  {name}: {problem}", file=sys.stderr)
    return 1 if failures else 0
