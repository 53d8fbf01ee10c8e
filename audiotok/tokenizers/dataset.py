"""Tokenize a corpus into Parquet shards for speech-LM training, resumably.

Item ``i`` of the dataset always lands in shard ``i // shard_size``, and a shard file appears only
complete (written to a temporary name, then renamed), so the shard files on disk *are* the progress:
a re-run skips every finished shard and redoes the one that was interrupted — no duplicates, no gaps.
``progress.json`` records the settings (a re-run with other settings is refused rather than mixed
in) and, for people, the finished shards and the files that failed.

Columns: ``id``, ``path``, ``text``, ``speaker``, ``duration`` (s), ``codes`` (``list<list<uint16>>``,
``[Q][F]``), ``n_frames`` and, with a :class:`~audiotok.tokenizers.flatten.FlattenSpec`, ``tokens``
(flat LLM ids). Bad audio is skipped and listed (``failed`` in each shard's metadata).

More cores: ``num_proc > 1`` hands the pending shards to ``datasets.Dataset.map(num_proc=...)``;
each worker process tokenizes whole shards. Read the result with :func:`read_shards` or
``datasets.load_dataset("parquet", data_dir=OUT)``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audiotok.data.audio_io import AudioError
from audiotok.tokenizers.flatten import FlattenSpec, flatten_codes
from audiotok.tokenizers.tokenizer import Tokenizer

PROGRESS = "progress.json"
SHARD_PATTERN = "shard-{:05d}.parquet"
FAILED_KEY = b"audiotok.failed"


@dataclass
class ShardJob:
    """Everything a (possibly separate) process needs to write one shard."""

    dataset: Any  # an audiotok AudioDataset
    tokenizer: Tokenizer
    output: Path
    shard_size: int
    flatten: FlattenSpec | None = None


def shard_path(output: Path, index: int) -> Path:
    return output / SHARD_PATTERN.format(index)


def _schema(codebook_size: int, with_tokens: bool):
    import pyarrow as pa

    code = pa.uint16() if codebook_size <= 65536 else pa.int32()
    fields = [("id", pa.string()), ("path", pa.string()), ("text", pa.string()), ("speaker", pa.string()),
              ("duration", pa.float64()), ("codes", pa.list_(pa.list_(code))), ("n_frames", pa.int32())]
    if with_tokens:
        fields.append(("tokens", pa.list_(pa.int64())))
    return pa.schema(fields)


def tokenize_shard(job: ShardJob, index: int) -> dict[str, Any]:
    """Tokenize shard ``index`` and write it atomically; returns ``{"rows", "failed"}``."""
    import pyarrow as pa

    tok, ds = job.tokenizer, job.dataset
    indices = range(index * job.shard_size, min((index + 1) * job.shard_size, len(ds)))
    rows: dict[str, list] = {name: [] for name in _schema(tok.codebook_size, job.flatten is not None).names}
    failed: dict[str, str] = {}
    for start in range(0, len(indices), tok.batch_size):
        items = []
        for i in indices[start : start + tok.batch_size]:
            try:
                items.append(ds.load(i))
            except AudioError as err:
                failed[str(ds.metadata(i).get("path") or i)] = err.problem
        if not items:
            continue
        tokens = tok.encode_waveforms([item["audio"] for item in items])
        for item, codes in zip(items, tokens.unbatch()):
            rows["id"].append(str(item["id"]))
            rows["path"].append(None if item.get("path") is None else str(item["path"]))
            rows["text"].append(item.get("text"))
            rows["speaker"].append(item.get("speaker"))
            rows["duration"].append(item["audio"].shape[-1] / item["sample_rate"])
            rows["codes"].append(codes.numpy().tolist())
            rows["n_frames"].append(codes.shape[-1])
            if job.flatten is not None:
                rows["tokens"].append(flatten_codes(codes.numpy(), **job.flatten.to_dict()).tolist())
    schema = _schema(tok.codebook_size, job.flatten is not None)
    table = pa.table(rows, schema=schema).replace_schema_metadata({FAILED_KEY: json.dumps(failed)})
    write_shard(table, shard_path(job.output, index))
    return {"rows": table.num_rows, "failed": failed}


def write_shard(table, target: Path) -> None:
    """Write to a temporary file, then rename: a shard file is either absent or complete."""
    import pyarrow.parquet as pq

    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, target)


def _shard_worker(batch: dict[str, list], job: ShardJob) -> dict[str, list]:
    """``datasets.map`` entry point: one shard per call (``batched=True, batch_size=1``)."""
    import torch

    torch.set_num_threads(1)  # one core per worker process
    results = [tokenize_shard(job, int(index)) for index in batch["shard"]]
    return {"shard": batch["shard"], "rows": [r["rows"] for r in results],
            "failed": [json.dumps(r["failed"]) for r in results]}


def _check_settings(output: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Load progress.json, refusing to mix shards made with different settings."""
    progress_file = output / PROGRESS
    if progress_file.is_file():
        progress = json.loads(progress_file.read_text())
        if progress.get("settings") != settings:
            old = progress.get("settings", {})
            diff = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
            raise ValueError(f"{output} holds shards made with other settings {diff} (old, new); "
                             "resume with the same settings or use a new output folder")
        return progress
    return {"settings": settings, "completed": {}}


def _save_progress(output: Path, progress: dict[str, Any]) -> None:
    tmp = output / f"{PROGRESS}.tmp"
    tmp.write_text(json.dumps(progress, indent=1))
    os.replace(tmp, output / PROGRESS)


def tokenize_dataset(source, output: str | Path, tokenizer: Tokenizer, shard_size: int = 1000,
                     split: str | None = None, flatten: FlattenSpec | None = None, num_proc: int = 1,
                     progress_bar: bool = True, **dataset_options) -> dict[str, Any]:
    """Tokenize ``source`` (manifest, folder, corpus, ``datasets.Dataset``) into shards under ``output``.

    Resumable: call again with the same arguments after an interruption. Returns
    ``{"shards", "rows", "failed": {path: problem}, "output"}``.
    """
    from audiotok.data.datasets import build_dataset

    if flatten is not None and flatten.codebook_size != tokenizer.codebook_size:
        raise ValueError(f"flatten codebook_size {flatten.codebook_size} != the tokenizer's "
                         f"{tokenizer.codebook_size}")
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    options = dict(dataset_options, split=split) if split is not None else dataset_options
    dataset = build_dataset(source, sample_rate=tokenizer.sample_rate, mono=True, on_error="raise", **options)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    for stale in output.glob("*.tmp*"):  # left by an interrupted run
        stale.unlink()
    num_shards = -(-len(dataset) // shard_size)
    name = str(source) if isinstance(source, (str, Path)) else str(getattr(source, "_fingerprint", source))
    settings = {"source": name,
                "model": tokenizer.source, "num_codebooks": tokenizer.num_codebooks,
                "codebook_size": tokenizer.codebook_size, "sample_rate": tokenizer.sample_rate,
                "frame_rate": tokenizer.frame_rate, "shard_size": shard_size, "num_items": len(dataset),
                "split": split, "flatten": None if flatten is None else flatten.to_dict()}
    progress = _check_settings(output, settings)
    pending = [k for k in range(num_shards) if not shard_path(output, k).is_file()]
    job = ShardJob(dataset, tokenizer, output, shard_size, flatten)

    def record(index: int, result: dict[str, Any]) -> None:
        progress["completed"][SHARD_PATTERN.format(index)] = result
        _save_progress(output, progress)

    _save_progress(output, progress)
    if num_proc > 1 and len(pending) > 1:
        for index, result in _map_with_datasets(job, pending, num_proc):
            record(index, result)
    else:
        from tqdm import tqdm

        for index in tqdm(pending, unit="shard", desc="tokenize-dataset",
                          disable=None if progress_bar else True):
            record(index, tokenize_shard(job, index))
    failed = {k: v for result in progress["completed"].values() for k, v in result["failed"].items()}
    return {"shards": num_shards, "rows": sum(r["rows"] for r in progress["completed"].values()),
            "failed": failed, "output": str(output)}


def _map_with_datasets(job: ShardJob, pending: list[int], num_proc: int):
    """Run pending shards through ``datasets.Dataset.map(num_proc=...)``; yields ``(shard, result)``."""
    try:
        import datasets
    except ImportError:
        raise ImportError("num_proc > 1 uses the `datasets` package: pip install datasets "
                          "(or run with num_proc=1)") from None
    table = datasets.Dataset.from_dict({"shard": pending})
    done = table.map(_shard_worker, fn_kwargs={"job": job}, batched=True, batch_size=1,
                     num_proc=min(num_proc, len(pending)), remove_columns=["shard"],
                     load_from_cache_file=False, new_fingerprint=f"audiotok-shards-{os.getpid()}")
    for row in done:
        yield int(row["shard"]), {"rows": int(row["rows"]), "failed": json.loads(row["failed"])}


def read_shards(output: str | Path):
    """All finished shards of ``output`` as one ``pyarrow.Table`` (in item order)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(Path(output).glob("shard-*.parquet"))
    if not files:
        raise FileNotFoundError(f"{output}: no shard-*.parquet files; run audiotok tokenize-dataset first")
    return pa.concat_tables([pq.read_table(f) for f in files])


def shard_failures(path: str | Path) -> dict[str, str]:
    """The files a shard skipped (path -> problem), from its Parquet metadata."""
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata.get(FAILED_KEY, b"{}"))


def codes_of(row_codes) -> np.ndarray:
    """A ``codes`` cell (``[Q][F]`` lists) as an int64 array ``[Q, F]``."""
    return np.asarray(row_codes, dtype=np.int64)
