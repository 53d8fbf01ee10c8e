"""Precomputed teacher features: written once per dataset, read for any random audio crop.

Layout of a cache folder::

    index.json               teacher config + hash, rates, and per file: shard, key, size, mtime, frames
    shard-00000.safetensors  one tensor per file, always [D, T] (no batch dimension), float32;
                             label teachers (phones) store ids as [1, T] int16

Entries are keyed by the file's resolved path and checked against its size and modification time;
the whole cache is tied to one teacher ``config_dict`` (weights fingerprint, layer, dtype...). A
changed file or a different teacher is refused with an error saying how to rebuild — never silently
served stale. (SpeechTokenizer's extraction saved ``(1, T, 768)`` with the batch dimension, which
broke its crop and batching; here the batch dimension is dropped before saving.)
"""
from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import torch

from audiotok.distill.align import Rate, exact_rate, num_frames, sample_to_frame
from audiotok.distill.teacher import Teacher, TeacherSpec, config_hash
from audiotok.distill.teachers import teacher_config

INDEX_NAME = "index.json"
INDEX_VERSION = 1


class StaleCacheError(RuntimeError):
    """The cache does not match the teacher or the audio file it is asked about."""


def file_identity(path: str | Path) -> dict:
    """What the cache remembers about an audio file: resolved path, size and mtime (ns)."""
    stat = os.stat(path)
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def cache_key(path: str | Path) -> str:
    return str(Path(path).resolve())


def _expected_config(teacher) -> dict:
    if isinstance(teacher, Teacher):
        return teacher.config_dict()
    return teacher_config(teacher)


class FeatureCache:
    """Reader: ``FeatureCache(folder, teacher=None).get(path, start, num_samples, sample_rate) -> [D, F]``.

    ``teacher`` (a spec or a ``Teacher``) is checked against the cache's teacher;
    pass it in training so a changed teacher is refused instead of read stale.
    """

    def __init__(self, folder: str | Path, teacher: str | dict | Teacher | TeacherSpec | None = None) -> None:
        self.folder = Path(folder)
        index_path = self.folder / INDEX_NAME
        if not index_path.is_file():
            raise FileNotFoundError(
                f"{self.folder} is not a teacher feature cache (no {INDEX_NAME}); build one with "
                "`audiotok distill cache --teacher SPEC --data DATA --out DIR`"
            )
        self.index = json.loads(index_path.read_text())
        self.teacher_hash = self.index["teacher_hash"]
        self.frame_rate = Fraction(self.index["frame_rate"])
        self.sample_rate = int(self.index["sample_rate"])
        self.output = self.index["output"]
        self.dim = int(self.index["dim"])
        self._shards: dict[str, object] = {}
        if teacher is not None:
            self.check_teacher(_expected_config(teacher))

    def check_teacher(self, config: dict) -> None:
        if config_hash(config) != self.teacher_hash:
            raise StaleCacheError(
                f"feature cache {self.folder} was built with teacher {self.index['teacher']}, not {config}; "
                f"rebuild it: `audiotok distill cache --teacher SPEC --data DATA --out {self.folder} --overwrite`"
            )

    def __len__(self) -> int:
        return len(self.index["files"])

    def __contains__(self, path: str | Path) -> bool:
        return cache_key(path) in self.index["files"]

    def paths(self) -> list[str]:
        return list(self.index["files"])

    def _entry(self, path: str | Path) -> dict:
        key = cache_key(path)
        entry = self.index["files"].get(key)
        if entry is None:
            raise KeyError(
                f"{key} is not in the feature cache {self.folder}; add it by re-running "
                f"`audiotok distill cache` on a dataset that contains it"
            )
        if file_identity(key) != {"size": entry["size"], "mtime_ns": entry["mtime_ns"]}:
            raise StaleCacheError(
                f"{key} changed after its teacher features were cached in {self.folder} (size or mtime "
                f"differ); re-run `audiotok distill cache` on it to refresh the cache"
            )
        return entry

    def _open(self, shard: str):
        if shard not in self._shards:
            from safetensors import safe_open

            self._shards[shard] = safe_open(str(self.folder / shard), framework="pt")
        return self._shards[shard]

    def full(self, path: str | Path) -> torch.Tensor:
        """All cached frames of a file: ``[D, T]`` (labels: ``[1, T]`` int64)."""
        entry = self._entry(path)
        return _as_output(self._open(entry["shard"]).get_tensor(entry["key"]))

    def get(self, path: str | Path, start_sample: int, num_samples: int, sample_rate: Rate) -> torch.Tensor:
        """Features ``[D, F]`` for the crop ``[start_sample, start_sample + num_samples)`` at ``sample_rate``.

        ``F = ceil(num_samples * frame_rate / sample_rate)`` frames starting at frame
        ``floor(start_sample * frame_rate / sample_rate)``, both exact. Frames the teacher does not
        have (its last frame or two: ``floor((N-400)/320)+1 < ceil(N/320)``, or a crop padded past
        the end of the file) repeat the last available frame so every crop of one length batches.
        """
        entry = self._entry(path)
        first = sample_to_frame(start_sample, sample_rate, self.frame_rate)
        count = num_frames(num_samples, sample_rate, self.frame_rate)
        total = entry["frames"]
        if total == 0:
            raise ValueError(f"{path} has no cached teacher frames (audio shorter than the teacher's window)")
        first = min(first, total - 1)
        stop = min(first + count, total)
        features = _as_output(self._open(entry["shard"]).get_slice(entry["key"])[:, first:stop])
        if features.shape[-1] < count:
            features = torch.cat([features, features[:, -1:].expand(-1, count - features.shape[-1])], dim=-1)
        return features


def _as_output(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.long() if not tensor.is_floating_point() else tensor


class _ShardWriter:
    """Collects ``[D, T]`` tensors and writes a safetensors shard every ``max_bytes``."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        existing = sorted(folder.glob("shard-*.safetensors"))
        self.number = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
        self.tensors: dict[str, torch.Tensor] = {}
        self.pending: dict[str, dict] = {}
        self.size = 0

    @property
    def shard_name(self) -> str:
        return f"shard-{self.number:05d}.safetensors"

    def add(self, path_key: str, tensor: torch.Tensor, entry: dict) -> bool:
        """Queue one file; returns True when the shard is full and should be flushed."""
        key = f"u{len(self.tensors):06d}"
        self.tensors[key] = tensor.contiguous()
        self.pending[path_key] = {**entry, "shard": self.shard_name, "key": key}
        self.size += tensor.numel() * tensor.element_size()
        return self.size >= self.max_bytes

    def flush(self) -> dict[str, dict]:
        """Write the shard; returns the index entries it holds."""
        if not self.tensors:
            return {}
        from safetensors.torch import save_file

        from audiotok.data.outputs import write_atomic

        write_atomic(self.folder / self.shard_name, lambda tmp: save_file(self.tensors, str(tmp)))
        written = self.pending
        self.tensors, self.pending, self.size = {}, {}, 0
        self.number += 1
        return written


def _write_index(folder: Path, index: dict) -> None:
    tmp = folder / (INDEX_NAME + ".tmp")
    tmp.write_text(json.dumps(index, indent=1))
    tmp.replace(folder / INDEX_NAME)


def teacher_output(teacher: Teacher, wav: torch.Tensor, text: str | None, name: str) -> torch.Tensor:
    """What the cache stores for one utterance ``wav [1, T]``: ``[D, T']`` float or ``[1, T']`` int16."""
    if teacher.output == "labels":
        if not text:
            raise ValueError(
                f"{name} has no transcript, and the phone teacher aligns transcripts: give a manifest "
                "with a 'text' column (or audio files with .txt sidecars)"
            )
        return teacher.labels(wav[None], [text])[0][None].to(torch.int16)
    return teacher(wav[None].to(teacher.device))[0].float().cpu()


def build_cache(
    teacher: Teacher,
    data: str | Path,
    out: str | Path,
    split: str | None = None,
    overwrite: bool = False,
    shard_bytes: int = 256 * 2**20,
    spec: str = "",
    progress: bool = True,
) -> FeatureCache:
    """Compute teacher features for every file of ``data`` (manifest, corpus folder or audio folder).

    Full utterances, one at a time (no padding effects). An existing cache for the same teacher is
    extended: unchanged files are skipped, changed ones recomputed. A cache of another teacher is
    refused unless ``overwrite`` (which deletes its shards).
    """
    from audiotok.data import build_dataset

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    config = teacher.config_dict()
    index = {
        "version": INDEX_VERSION,
        "teacher": config,
        "teacher_hash": config_hash(config),
        "teacher_spec": spec,
        "sample_rate": teacher.sample_rate,
        "frame_rate": str(exact_rate(teacher.frame_rate)),
        "output": teacher.output,
        "dim": teacher.dim,
        "files": {},
    }
    if (folder / INDEX_NAME).is_file():
        old = json.loads((folder / INDEX_NAME).read_text())
        if old.get("teacher_hash") == index["teacher_hash"]:
            index["files"] = old["files"]
        elif overwrite:
            for shard in folder.glob("shard-*.safetensors"):
                shard.unlink()
        else:
            raise StaleCacheError(
                f"{folder} holds features of another teacher ({old.get('teacher')}); pass --overwrite to "
                "replace them or choose another --out folder"
            )

    dataset = build_dataset(str(data), sample_rate=teacher.sample_rate, split=split, on_error="raise")
    writer = _ShardWriter(folder, shard_bytes)
    todo = []
    for i in range(len(dataset)):
        meta = dataset.metadata(i)
        key = cache_key(meta["path"])
        entry = index["files"].get(key)
        if entry is None or {"size": entry["size"], "mtime_ns": entry["mtime_ns"]} != file_identity(key):
            todo.append((i, key, meta.get("text")))

    from tqdm.auto import tqdm

    for i, key, text in tqdm(todo, desc=f"teacher {config['kind']}", unit="file", disable=not progress):
        wav, _ = dataset.read(i)  # [1, T] at the teacher's rate, whole utterance
        features = teacher_output(teacher, wav, text, key)
        entry = {**file_identity(key), "num_samples": wav.shape[-1], "frames": features.shape[-1]}
        if writer.add(key, features, entry):
            index["files"].update(writer.flush())
            _write_index(folder, index)
    index["files"].update(writer.flush())
    _write_index(folder, index)
    return FeatureCache(folder)
