"""``audiotok bench memory``: peak memory of tokenizing a long file against its duration.

For each duration (default 6 and 60 min) a synthetic 16-kHz mono file is written block by block
(never held whole), then tokenized in a fresh process; the row reports that process's peak resident
memory (``ru_maxrss``) and the wall time. ``chunked`` is ``Tokenizer.tokenize(path)``, which reads,
resamples and encodes the file chunk by chunk; ``whole`` first loads the whole waveform
(``load_audio``) and tokenizes the array, as before chunked reading. With chunked reading the peak
should not grow with duration; the whole-file path grows with it.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FILE_RATE = 16000

# Runs in a fresh interpreter so ru_maxrss is this measurement's peak only.
_CHILD = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(int(sys.argv[4]))
import audiotok
from audiotok.data.audio_io import load_audio
path, model, mode = sys.argv[1:4]
tok = audiotok.load(model)
start = time.perf_counter()
if mode == "chunked":
    codes = tok.tokenize(path).codes
else:
    codes = tok.tokenize(load_audio(path, tok.sample_rate)[0], tok.sample_rate).codes
print(json.dumps({"seconds": time.perf_counter() - start, "frames": codes.shape[-1],
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


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
    """Peak RSS (MB) and seconds of tokenizing ``path`` in a fresh process."""
    done = subprocess.run([sys.executable, "-c", _CHILD, str(path), model, mode, str(threads)],
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"tokenizing {path} ({mode}) failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, nargs="+", default=[6.0, 60.0],
                        help="durations of the synthetic files (default: 6 60)")
    parser.add_argument("--model", default="mimi-tiny-trained", help="tokenizer (default mimi-tiny-trained)")
    parser.add_argument("--modes", nargs="+", default=["chunked", "whole"], choices=["chunked", "whole"],
                        help="chunked: tokenize(path); whole: load the waveform first (the old way)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="bench_out/memory.json", help="JSON results file")


def run(args: argparse.Namespace) -> int:
    from .results import emit

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            path = write_synthetic(Path(tmp) / f"synthetic-{minutes:g}min.wav", minutes)
            for mode in args.modes:
                found = measure(path, args.model, mode, args.threads)
                rows.append({"minutes": minutes, "mode": mode, "peak RSS MB": round(found["peak_mb"], 1),
                             "seconds": round(found["seconds"], 1), "frames": found["frames"]})
                print(rows[-1], flush=True)
            path.unlink()
    emit(f"Peak memory of tokenizing one long file ({args.model}, {args.threads} thread(s))", rows,
         args.out, extra={"model": args.model, "file": f"{FILE_RATE} Hz mono PCM_16, synthetic"})
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
