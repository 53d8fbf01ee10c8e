"""``audiotok tokenize IN... -o OUT``: audio files and folders → one codes file each, plus a manifest.

OUT gets ``<id>.npy`` (codes ``[Q, F]``) or ``<id>.npz`` (``codes``, ``num_samples``, ``sample_rate``),
``manifest.jsonl`` (one row per file: ``id``, ``audio``, ``codes``, ``n_frames``, ``num_samples``,
``duration``) and ``tokenizer.json`` (the model's identity: source, config hash, codebook layout and
rates; ``audiotok detokenize`` loads that model and refuses another one).
A bad file is reported and skipped; the exit code is 1 when any file failed. Every file is written
under a temporary name and renamed into place when complete, and the run holds ``OUT/.audiotok.lock``
so that a second run into the same folder stops at once. A bad ``-o``, a model that does not load or
an ``--n-q`` it does not have stop the command before any work (one ``error:`` line, exit code 2).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from audiotok.errors import CommandError
from audiotok.data.outputs import output_lock, prepare_output, write_atomic

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
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="fully unpickle a .pt/.ckpt that holds Python objects; this runs code from "
                             "the file, so only use it for files you trust")


def load_tokenizer(args: argparse.Namespace, model: str | None = None):
    """The tokenizer the arguments ask for; :class:`CommandError` (one line, exit 2) if it cannot be
    loaded or has no ``--n-q`` codebooks."""
    from audiotok.tokenizers.loading import TRUST_ADVICE, load

    model = model or args.model
    try:
        tok = load(model, device=args.device, batch_size=args.batch_size,
                            chunk_seconds=getattr(args, "chunk_seconds", 30.0),
                            trust_checkpoint=getattr(args, "trust_checkpoint", False))
    except (ValueError, OSError) as err:  # CheckpointError and AudioError are ValueErrors
        hint = " (on the command line: --trust-checkpoint)" if TRUST_ADVICE in str(err) else ""
        raise CommandError(f"cannot load the model {model}: {err}{hint}") from None
    n_q = 1 if getattr(args, "semantic_only", False) else getattr(args, "n_q", None)
    if n_q is not None:
        try:
            tok.codec.set_num_codebooks(n_q)
        except ValueError as err:
            raise CommandError(f"--n-q {n_q} does not fit {model}: {err}") from None
    return tok


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="audio files or folders (searched recursively)")
    parser.add_argument("-o", "--output", required=True, help="folder for codes and manifest.jsonl")
    parser.add_argument("--format", choices=FORMATS, default="npy", help="codes file type (default npy)")
    add_model_arguments(parser)


def list_inputs(inputs: list[str]) -> tuple[list[tuple[str, Path]], dict[str, str]]:
    """``(id, path)`` for every audio file under ``inputs`` (ids unique), and the inputs or folder
    entries that cannot be used (``{path: problem}``: missing, symbolic link loop, permission denied,
    a folder without audio files)."""
    from audiotok.data.sources import AUDIO_SUFFIXES, list_folder, path_problem

    found, problems, seen = [], {}, set()
    for entry in inputs:
        path = Path(entry)
        problem = path_problem(path)
        if problem is not None:
            problems[entry] = "no such file or folder" if problem.startswith("does not exist") else problem
            continue
        try:
            items = list_folder(path, problems)
        except OSError as err:
            problems[entry] = str(err).removeprefix(f"{path}: ")
            continue
        if not items and path.is_dir():
            problems.setdefault(entry, f"no audio files ({' '.join(AUDIO_SUFFIXES)}) in this folder")
        for item in items:
            ident, n = item.id, 1
            while ident in seen:
                ident, n = f"{item.id}_{n}", n + 1
            seen.add(ident)
            found.append((ident, Path(item.path)))
    return found, problems


def codes_dtype(codebook_size: int):
    """The smallest integer type that holds every code (uint16 for all our codecs)."""
    return np.uint16 if codebook_size <= 65536 else np.int32


def save_codes(path: Path, codes: np.ndarray, num_samples: int, sample_rate: int) -> Path:
    """Write one codes file atomically (complete or not at all)."""
    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            if path.suffix == ".npz":
                np.savez(f, codes=codes, num_samples=num_samples, sample_rate=sample_rate)
            else:
                np.save(f, codes)

    return write_atomic(path, write)


def _encode_and_save(tok, batch: list[tuple[str, Path]], encode, out: Path, suffix: str,
                     failures: dict[str, str]) -> list[dict]:
    """Encode one batch (``encode()`` returns its ``TokenizedAudio``) and write each item's codes;
    the manifest rows of the files written.

    A failure (encoding, or writing one file: disk full, permissions) is recorded in ``failures``
    and reported; no partial file is left behind and the other files go on.
    """
    try:
        tokens = encode()
    except (RuntimeError, ValueError) as err:  # e.g. out of memory
        for _, path in batch:
            failures[str(path)] = f"encoding failed ({type(err).__name__}: {err})"
        print(f"error: encoding {', '.join(str(p) for _, p in batch)} failed: {err}", file=sys.stderr)
        return []
    dtype, rows = codes_dtype(tok.codebook_size), []
    for (ident, path), codes, n in zip(batch, tokens.unbatch(), tokens.num_samples.tolist()):
        target = out / f"{ident}.{suffix}"
        try:
            save_codes(target, codes.numpy().astype(dtype), n, tok.sample_rate)
        except (OSError, ValueError) as err:
            failures[str(path)] = f"cannot write {target} ({err}); no partial file was left"
            print(f"error: {path}: cannot write {target}: {err}", file=sys.stderr)
            continue
        rows.append({"id": ident, "audio": str(path.resolve()), "codes": target.relative_to(out).as_posix(),
                     "n_frames": codes.shape[-1], "num_samples": n, "duration": n / tok.sample_rate})
    return rows


def _is_long(tok, path: Path) -> bool:
    """Longer than the tokenizer's chunk (from the header): such a file is never loaded whole, so
    memory does not grow with its duration."""
    from audiotok.data.audio_io import audio_info, resampled_length

    if tok.chunk_seconds is None:
        return False
    frames, rate = audio_info(path)
    return resampled_length(frames, rate, tok.sample_rate) > tok.chunk_seconds * tok.sample_rate


def write_text_atomic(path: Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def run(args: argparse.Namespace) -> int:
    out = prepare_output(args.output)  # before the (slow) model load
    with output_lock(out, "tokenize"):
        return _run(args, out)


def _run(args: argparse.Namespace, out: Path) -> int:
    from tqdm import tqdm

    from audiotok.data.audio_io import AudioError, load_audio

    files, failures = list_inputs(args.inputs)
    for name, problem in failures.items():
        print(f"error: {name}: {problem}", file=sys.stderr)
    unusable = len(failures)
    tok = load_tokenizer(args)
    rows = []
    with tqdm(total=len(files), unit="file", desc="tokenize", disable=None) as bar:
        for start in range(0, len(files), args.batch_size):
            batch, wavs = [], []
            for ident, path in files[start : start + args.batch_size]:
                try:
                    if _is_long(tok, path):  # read, resampled and encoded chunk by chunk
                        rows += _encode_and_save(tok, [(ident, path)], lambda: tok.tokenize(path), out,
                                                 args.format, failures)
                        continue
                    wav = load_audio(path, tok.sample_rate)[0]
                    tok._check_peaks([wav], [path])  # integer PCM stored as float: refused, listed
                    wavs.append(wav)
                    batch.append((ident, path))
                except AudioError as err:
                    failures[str(path)] = err.problem
                    print(f"error: {err}", file=sys.stderr)
            if wavs:
                rows += _encode_and_save(tok, batch, lambda: tok.encode_waveforms(wavs), out, args.format,
                                         failures)
            bar.update(len(files[start : start + args.batch_size]))
    try:
        write_text_atomic(out / MANIFEST, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        write_tokenizer_info(out, tok)
    except OSError as err:
        failures[str(out / MANIFEST)] = f"cannot write the manifest or {TOKENIZER_INFO} ({err})"
    print(f"tokenized {len(rows)} of {len(files) + unusable} inputs into {out} "
          f"({tok.num_codebooks} × {tok.codebook_size} codes at {tok.frame_rate:g} Hz)"
          + (f"; {len(failures)} failed:" if failures else ""), file=sys.stderr)
    for name, problem in failures.items():
        print(f"  {name}: {problem}", file=sys.stderr)
    return 1 if failures else 0


def config_hash(config) -> str:
    """SHA-256 of a codec config's canonical JSON (same architecture and settings, same hash)."""
    text = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def tokenizer_identity(tok) -> dict:
    """What codes depend on: the model, its config hash and codebook layout, its rates."""
    model = Path(tok.source)
    return {"model": str(model.resolve()) if model.exists() else tok.source,
            "name": tok.codec.config.name, "family": tok.codec.config.family,
            "config_sha256": config_hash(tok.codec.config),
            "sample_rate": tok.sample_rate, "frame_rate": tok.frame_rate, "hop_length": tok.hop_length,
            "num_codebooks": tok.num_codebooks, "max_codebooks": tok.codec.max_codebooks,
            "codebook_size": tok.codebook_size, "bitrate": tok.bitrate}


def write_tokenizer_info(out: Path, tok) -> None:
    write_text_atomic(out / TOKENIZER_INFO, json.dumps(tokenizer_identity(tok), indent=2))


def identity_mismatch(recorded: dict, tok) -> list[str]:
    """How the tokenizer recorded with some codes differs from ``tok`` (empty: they match).

    Fields missing from an older ``tokenizer.json`` are not compared; using fewer codebooks than
    the model has is fine, more is not.
    """
    current = tokenizer_identity(tok)
    problems = [f"{key} {recorded[key]} vs {current[key]}"
                for key in ("config_sha256", "sample_rate", "codebook_size")
                if key in recorded and recorded[key] != current[key]]
    if isinstance(recorded.get("num_codebooks"), int) and recorded["num_codebooks"] > current["max_codebooks"]:
        problems.append(f"{recorded['num_codebooks']} codebooks vs at most {current['max_codebooks']}")
    return problems


def describe(info: dict) -> str:
    """``model (name, 8 × 2048 codes at 24000 Hz)`` for error messages."""
    layout = (f"{info.get('num_codebooks', '?')} × {info.get('codebook_size', '?')} codes at "
              f"{info.get('sample_rate', '?')} Hz")
    return f"{info.get('model', '?')} ({info['name'] + ', ' if info.get('name') else ''}{layout})"
