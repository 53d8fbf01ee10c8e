"""Encode every utterance once, decode chosen codebook prefixes, and cache both on disk.

Cache layout (under ``<out>/cache``): ``<name>-<identity>/codes.pt`` (``{id: [Q, F]}``),
``timing.json`` (encode/decode seconds and audio seconds, so cached runs still report real-time
factors) and ``nq<k>/<id>.wav`` (resynthesis at the tokenizer's rate). ``identity`` hashes the
weights, so a retrained checkpoint never reads a stale cache. Every cache file is written under a
temporary name and renamed when complete, so an interrupted run or a full disk never leaves a truncated
file to be read as a result; a cache file that does not read back (damaged by other means) is
recomputed, with a warning.
"""
from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from audiotok.benchmarks.protocol import tokenizer_identity
from audiotok.data import load_audio
from audiotok.data.sources import AudioItem
from audiotok.data.outputs import write_atomic


class Resynthesizer:
    """Codes and resynthesised audio of one tokenizer, computed once and cached."""

    def __init__(self, name: str, tok, cache_root: Path):
        self.name, self.tok = name, tok
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).name or name)[:60]
        self.folder = Path(cache_root) / f"{safe}-{tokenizer_identity(name, tok)}"
        self.folder.mkdir(parents=True, exist_ok=True)
        self._codes: dict[str, torch.Tensor] = self._read_codes()
        timing_file = self.folder / "timing.json"
        self.timing = json.loads(timing_file.read_text()) if timing_file.is_file() else {}

    def _read_codes(self) -> dict[str, torch.Tensor]:
        path = self.folder / "codes.pt"
        if not path.is_file():
            return {}
        try:
            codes = torch.load(path, weights_only=True)
            if not isinstance(codes, dict):
                raise ValueError(f"holds a {type(codes).__name__}, not a dict of codes")
            return codes
        except Exception as err:  # noqa: BLE001 - any unreadable cache is recomputed
            warnings.warn(f"{path} does not read back ({type(err).__name__}: {err}); encoding again",
                          RuntimeWarning, stacklevel=2)
            return {}

    def _save(self) -> None:
        write_atomic(self.folder / "codes.pt", lambda tmp: torch.save(self._codes, tmp))
        write_atomic(self.folder / "timing.json",
                     lambda tmp: tmp.write_text(json.dumps(self.timing, indent=2)))

    def codes(self, items: Sequence[AudioItem], progress: Callable[[], None] | None = None) -> dict[str, torch.Tensor]:
        """``{id: codes [Q, F]}`` with all codebooks, encoding the items not cached yet."""
        todo = [i for i in items if i.id not in self._codes]
        for item in todo:
            wav, sr = load_audio(item.path, self.tok.sample_rate)
            start = time.perf_counter()
            tokens = self.tok.tokenize(wav, sample_rate=sr)
            self._add_time("encode", time.perf_counter() - start, wav.shape[-1] / sr)
            self._codes[item.id] = tokens.codes[0, :, : int(tokens.lengths[0])].clone()
            if progress:
                progress()
        if todo:
            self._save()
        return {i.id: self._codes[i.id] for i in items}

    def audio(self, item: AudioItem, n_q: int) -> np.ndarray:
        """Resynthesis ``[T]`` at ``tok.sample_rate`` from the first ``n_q`` codebooks (cached)."""
        import soundfile as sf

        path = self.folder / f"nq{n_q}" / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', item.id)}.wav"
        codes = self.codes([item])[item.id][:n_q]
        expected = round(codes.shape[-1] * self.tok.sample_rate / self.tok.frame_rate)
        if path.is_file():
            try:
                audio = sf.read(path, dtype="float32")[0]
                if audio.shape[0] != expected:  # e.g. cut short by a run of an older version
                    raise ValueError(f"{audio.shape[0]} samples, {expected} expected: truncated")
                return audio
            except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as err:
                warnings.warn(f"{path} does not read back ({err}); decoding again", RuntimeWarning,
                              stacklevel=2)
        start = time.perf_counter()
        audio = self.tok.detokenize(codes[None]).unbatch()[0][0].float().numpy()
        if n_q == self.tok.num_codebooks:
            self._add_time("decode", time.perf_counter() - start, audio.shape[-1] / self.tok.sample_rate)
            self._save()
        write_atomic(path, lambda tmp: sf.write(tmp, audio, self.tok.sample_rate, subtype="FLOAT"))
        return audio

    def _add_time(self, kind: str, seconds: float, audio_seconds: float) -> None:
        entry = self.timing.setdefault(kind, {"seconds": 0.0, "audio_seconds": 0.0})
        entry["seconds"] += seconds
        entry["audio_seconds"] += audio_seconds

    def real_time_factors(self) -> dict[str, float | None]:
        """Compute seconds per audio second (below 1: faster than real time), as first measured."""
        return {f"{kind}_rtf": (e["seconds"] / e["audio_seconds"] if (e := self.timing.get(kind)) else None)
                for kind in ("encode", "decode")}
