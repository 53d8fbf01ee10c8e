"""``audiotok bench memory``: peak memory of tokenizing and detokenizing a long file against its duration.

For each duration (default 6 and 60 min) a synthetic 16-kHz mono file is written block by block
(never held whole), then each mode runs in a fresh process; the row reports that process's peak
resident memory (``ru_maxrss``) and the wall time (for ``detokenize`` including the model load).

* ``chunked`` is ``Tokenizer.tokenize(path)``, which reads, resamples and encodes the file chunk by
  chunk; ``whole`` first loads the whole waveform (``load_audio``) and tokenizes the array, as before
  chunked reading.
* ``detokenize`` is ``audiotok detokenize`` of the file's codes (an ``.npz`` written by ``chunked``),
  which decodes and writes an item longer than the chunk piece by piece; ``detokenize-whole`` decodes
  the whole waveform (``Tokenizer.detokenize``) and writes it at once, as before.

With the chunked paths the peak should not grow with duration; the whole-file paths grow with it.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FILE_RATE = 16000

# Runs in a fresh interpreter so ru_maxrss is this measurement's peak only.
_CHILD = r"""
import json, resource, sys, time
import numpy as np
import torch
torch.set_num_threads(int(sys.argv[4]))
import audiotok
from audiotok.data.audio_io import load_audio, save_audio
path, model, mode, _, codes_path, out = sys.argv[1:7]
start = time.perf_counter()
if mode == "detokenize":
    from audiotok.cli import main
    if main(["detokenize", codes_path, "-o", out, "-m", model]):
        sys.exit("audiotok detokenize failed")
    frames = int(np.load(codes_path)["codes"].shape[-1])
else:
    tok = audiotok.load(model)
    start = time.perf_counter()
    if mode == "detokenize-whole":
        data = np.load(codes_path)
        wav = tok.detokenize(torch.from_numpy(data["codes"].astype(np.int64))).audio[0]
        save_audio(f"{out}/whole.wav", wav[:, : int(data["num_samples"])], tok.sample_rate)
        frames = int(data["codes"].shape[-1])
    else:
        tokens = tok.tokenize(path) if mode == "chunked" else tok.tokenize(load_audio(path, tok.sample_rate)[0],
                                                                           tok.sample_rate)
        frames = tokens.codes.shape[-1]
        if mode == "chunked":
            np.savez(codes_path, codes=tokens.unbatch()[0].numpy(), num_samples=int(tokens.num_samples[0]))
print(json.dumps({"seconds": time.perf_counter() - start, "frames": frames,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
MODES = ["chunked", "whole", "detokenize", "detokenize-whole"]


def write_synthetic(path: Path, minutes: float, block_seconds: float = 60.0) -> Path:
    """A ``minutes``-long 16-kHz mono 16-bit WAV of gliding buzz plus noise, written block by block."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    total, block, phase = int(minutes * 60 * FILE_RATE), int(block_seconds * FILE_RATE), 0.0
    with sf.SoundFile(str(path), "w", FILE_RATE, 1, subtype="PCM_16") as f:
        for start in range(0, total, block):
            t = (start + np.arange(min(block, total - start))) / FILE_RATE
            freq = 140 + 60 * np.sin(2 * np.pi * 0.7 * t)
            phases = phase + 2 * np.pi * np.cumsum(freq) / FILE_RATE
            phase = float(phases[-1])
            buzz = sum(np.sin(k * phases) / k for k in range(1, 8)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
            f.write((0.2 * buzz + 0.02 * rng.standard_normal(t.size)).astype(np.float32))
    return path


def measure(path: Path, model: str, mode: str, threads: int) -> dict:
    """Peak RSS (MB) and seconds of one ``mode`` on ``path`` in a fresh process (``chunked`` writes the
    codes that the detokenize modes read, beside ``path``)."""
    codes, out = path.with_suffix(".npz"), path.with_name(f"{path.stem}-decoded")
    out.mkdir(exist_ok=True)
    command = [sys.executable, "-c", _CHILD, str(path), model, mode, str(threads), str(codes), str(out)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{mode} of {path} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, nargs="+", default=[6.0, 60.0],
                        help="durations of the synthetic files (default: 6 60)")
    parser.add_argument("--model", default="mimi-tiny-trained", help="tokenizer (default mimi-tiny-trained)")
    parser.add_argument("--modes", nargs="+", default=MODES, choices=MODES,
                        help="chunked: tokenize(path); whole: load the waveform first (the old way); "
                             "detokenize: audiotok detokenize of the codes; detokenize-whole: decode the "
                             "whole waveform, then write it (the old way). Default: all")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="bench_out/memory.json", help="JSON results file")


def run(args: argparse.Namespace) -> int:
    from .results import emit

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            path = write_synthetic(Path(tmp) / f"synthetic-{minutes:g}min.wav", minutes)
            for mode in args.modes:
                if mode.startswith("detokenize") and not path.with_suffix(".npz").exists():
                    measure(path, args.model, "chunked", args.threads)  # its codes, not a row
                found = measure(path, args.model, mode, args.threads)
                rows.append({"minutes": minutes, "mode": mode, "peak RSS MB": round(found["peak_mb"], 1),
                             "seconds": round(found["seconds"], 1), "frames": found["frames"]})
                print(rows[-1], flush=True)
                shutil.rmtree(path.with_name(f"{path.stem}-decoded"), ignore_errors=True)
            path.unlink()
            path.with_suffix(".npz").unlink(missing_ok=True)
    emit(f"Peak memory of (de)tokenizing one long file ({args.model}, {args.threads} thread(s))", rows,
         args.out, extra={"model": args.model, "file": f"{FILE_RATE} Hz mono PCM_16, synthetic"})
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
