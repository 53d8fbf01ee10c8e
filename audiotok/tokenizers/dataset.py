"""Tokenize a corpus into Parquet shards for speech-LM training, resumably.

Item ``i`` of the dataset always lands in shard ``i // shard_size``, and a shard file appears only
complete (written to a temporary name, then renamed), so a re-run skips every finished shard and
redoes the one that was interrupted — no duplicates, no gaps. ``progress.json`` records the settings
(a re-run with other settings is refused rather than mixed in; source and model paths are compared
resolved, so ``data`` and ``/abs/path/data`` are the same source) and the manifest of finished shards:
rows, skipped files, size and SHA-256 of each shard as written. A re-run checks every shard on disk
against it and redoes, with a message, any shard that is damaged or truncated (size or checksum
differs, unreadable, wrong row count) or that the manifest does not know and that does not read back
whole. A failed write (disk full) removes its partial file and raises :class:`ShardWriteError`; the
output folder is locked (``.audiotok.lock``) so two runs never write into it at once.

Columns: ``id``, ``path``, ``text``, ``speaker``, ``duration`` (s), ``codes`` (``list<list<uint16>>``,
``[Q][F]``), ``n_frames`` and, with a :class:`~audiotok.tokenizers.flatten.FlattenSpec`, ``tokens``
(flat LLM ids). Bad audio is skipped and listed (``failed`` in each shard's metadata).

More cores: ``num_proc > 1`` hands the pending shards to ``datasets.Dataset.map(num_proc=...)``;
each worker process tokenizes whole shards. Read the result with :func:`read_shards` or
``datasets.load_dataset("parquet", data_dir=OUT)``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Callable
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
    """Tokenize shard ``index`` and write it atomically; returns ``{"rows", "failed", "bytes", "sha256"}``."""
    tok, ds = job.tokenizer, job.dataset
    indices = shard_indices(index, job.shard_size, len(ds))
    rows: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    for start in range(0, len(indices), tok.batch_size):
        items = [item for i in indices[start : start + tok.batch_size]
                 if (item := load_item(ds, i, failed)) is not None]
        rows += [item_row(item, codes, job.flatten) for item, codes in _encode(tok, items, failed)]
    return save_shard(job.output, index, rows, failed, tok.codebook_size, job.flatten)


def load_item(dataset, index: int, failed: dict[str, str]) -> dict[str, Any] | None:
    """Item ``index`` with its audio ``[1, T]`` at the tokenizer's rate, or None after recording in
    ``failed`` (path or index -> problem) why it cannot be tokenized (unreadable, integer PCM as float)."""
    label = str(dataset.metadata(index).get("path") or index)
    try:
        item = dataset.load(index)
        Tokenizer._check_peaks([item["audio"]], [label])  # integer PCM as float: refused, listed
        return item
    except AudioError as err:
        failed[label] = err.problem
        return None


def item_row(item: dict[str, Any], codes, flatten: FlattenSpec | None) -> dict[str, Any]:
    """The shard row of one item (``audio [1, T]``, ``sample_rate``, metadata) and its ``codes [Q, F]``."""
    codes = np.asarray(codes)
    row = {"id": str(item["id"]), "path": None if item.get("path") is None else str(item["path"]),
           "text": item.get("text"), "speaker": item.get("speaker"),
           "duration": item["audio"].shape[-1] / item["sample_rate"], "codes": codes.tolist(),
           "n_frames": codes.shape[-1]}
    if flatten is not None:
        row["tokens"] = flatten_codes(codes, **flatten.to_dict()).tolist()
    return row


def save_shard(output: Path, index: int, rows, failed: dict[str, str], codebook_size: int,
               flatten: FlattenSpec | None) -> dict[str, Any]:
    """Write shard ``index`` from its ``rows`` in item order (dicts from :func:`item_row`, or a
    ``pyarrow.Table`` with those columns) and the files it skipped, atomically (:func:`write_shard`).

    Returns the manifest record ``{"rows", "failed", "bytes", "sha256"}``. Both engines write through it.
    """
    import pyarrow as pa

    schema = _schema(codebook_size, flatten is not None)
    table = (rows.select(schema.names).cast(schema) if isinstance(rows, pa.Table)
             else pa.Table.from_pylist(rows, schema=schema))
    table = table.replace_schema_metadata({FAILED_KEY: json.dumps(failed)})
    target = shard_path(output, index)
    written = write_shard(table, target)
    if not written:  # a writer that does not report what it wrote: hash the file
        written = file_digest(target)
    return {"rows": table.num_rows, "failed": failed, **written}


def _encode(tok: Tokenizer, items: list[dict], failed: dict[str, str]) -> list[tuple[dict, Any]]:
    """``(item, codes [Q, F])`` for a batch; if the batch fails, item by item, listing the ones that fail."""
    if not items:
        return []
    try:
        return list(zip(items, tok.encode_waveforms([item["audio"] for item in items]).unbatch()))
    except (RuntimeError, ValueError):
        pass
    done = []
    for item in items:
        try:
            done.append((item, tok.encode_waveforms([item["audio"]]).unbatch()[0]))
        except (RuntimeError, ValueError) as err:  # e.g. out of memory on one long file
            failed[str(item.get("path") or item["id"])] = f"encoding failed ({type(err).__name__}: {err})"
    return done


def shard_indices(index: int, shard_size: int, num_items: int) -> range:
    """The dataset items of shard ``index``."""
    return range(index * shard_size, min((index + 1) * shard_size, num_items))


def file_digest(path: Path) -> dict[str, Any]:
    """``{"bytes", "sha256"}`` of a file."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return {"bytes": size, "sha256": digest.hexdigest()}


class ShardWriteError(OSError):
    """Writing a shard failed (disk full, folder gone, permissions); no partial file was left."""

    def __init__(self, target: Path, err: OSError):
        super().__init__(err.errno, err.strerror)
        self.target, self.cause = Path(target), err
        self.message = (f"cannot write {target}: {_os_problem(err)}; the partial file was removed. Free "
                        "some space (or fix the folder), then run the same command again: finished shards "
                        "are kept")

    def __str__(self) -> str:
        return self.message


def _os_problem(err: BaseException) -> str:
    """``No space left on device (errno 28)`` for an OSError with an errno, its message otherwise."""
    if isinstance(err, OSError) and err.errno:
        text = err.strerror or os.strerror(err.errno)
        return text if "errno" in text else f"{text} (errno {err.errno})"
    return str(err) or type(err).__name__


def write_shard(table, target: Path) -> dict[str, Any]:
    """Write to a temporary file, then rename: a shard file is either absent or complete.

    Returns ``{"bytes", "sha256"}`` of the file as written (hashed before the rename). On failure
    the temporary file is removed; an ``OSError`` (disk full...) becomes :class:`ShardWriteError`.
    """
    import pyarrow.parquet as pq

    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb") as f:  # what reached the disk, before anyone can see it as finished
            os.fsync(f.fileno())
        written = file_digest(tmp)
        os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError) and not isinstance(err, ShardWriteError):
            raise ShardWriteError(target, err) from err
        raise
    return written


def _shard_worker(batch: dict[str, list], job: ShardJob) -> dict[str, list]:
    """``datasets.map`` entry point: one shard per call (``batched=True, batch_size=1``)."""
    import torch

    torch.set_num_threads(1)  # one core per worker process
    results = [tokenize_shard(job, int(index)) for index in batch["shard"]]
    return {"shard": batch["shard"], "rows": [r["rows"] for r in results],
            "failed": [json.dumps(r["failed"]) for r in results],
            "written": [json.dumps({"bytes": r["bytes"], "sha256": r["sha256"]}) for r in results]}


def _same_path(old: Any, new: Any) -> bool:
    """Two recorded source/model names that are the same path (relative vs absolute, ``./x``)."""
    if not isinstance(old, str) or not isinstance(new, str):
        return False
    return Path(old).expanduser().resolve() == Path(new).expanduser().resolve()


def _check_settings(output: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Load progress.json, refusing to mix shards made with different settings."""
    progress_file = output / PROGRESS
    if progress_file.is_file():
        try:
            progress = json.loads(progress_file.read_text())
            if not isinstance(progress, dict) or not isinstance(progress.get("completed", {}), dict):
                raise ValueError("not a progress record")
        except (ValueError, UnicodeDecodeError) as err:
            raise ValueError(f"{progress_file} is damaged ({err}); delete it to re-check the shards "
                             "against their own contents, or use a new output folder") from None
        old = progress.get("settings", {})
        diff = {k: (old.get(k), v) for k, v in settings.items()
                if old.get(k) != v and not (k in ("source", "model") and _same_path(old.get(k), v))}
        if diff:
            raise ValueError(f"{output} holds shards made with other settings {diff} (old, new); "
                             "resume with the same settings or use a new output folder")
        progress["settings"] = settings
        progress.setdefault("completed", {})
        return progress
    return {"settings": settings, "completed": {}}


def _save_progress(output: Path, progress: dict[str, Any]) -> None:
    tmp = output / f"{PROGRESS}.tmp"
    try:
        tmp.write_text(json.dumps(progress, indent=1))
        os.replace(tmp, output / PROGRESS)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ShardWriteError(output / PROGRESS, err) from err


def verify_shard(path: Path, record: dict[str, Any] | None, expected_items: int) -> str | None:
    """Why the shard file ``path`` cannot be kept, or None when it is whole.

    With a manifest ``record``: size and SHA-256 must match what was written, and the row count.
    Without one (the run stopped between the rename and the record, or an older progress.json): the
    file must read back completely and hold one row per item that was not skipped.
    """
    import pyarrow.parquet as pq

    if record and record.get("sha256"):
        size = path.stat().st_size
        if size != record.get("bytes"):
            return (f"damaged or truncated: {size} bytes on disk, {record.get('bytes')} when it was written")
        if file_digest(path)["sha256"] != record["sha256"]:
            return "damaged: its SHA-256 differs from the one recorded when it was written"
        try:
            rows = pq.read_metadata(path).num_rows
        except Exception as err:  # noqa: BLE001 - pyarrow raises several kinds for a bad footer
            return f"unreadable ({err})"
        return None if rows == record.get("rows") else f"holds {rows} rows, {record.get('rows')} recorded"
    try:
        table = pq.read_table(path)
        failed = json.loads((table.schema.metadata or {}).get(FAILED_KEY, b"{}"))
    except Exception as err:  # noqa: BLE001
        return f"unreadable ({type(err).__name__}: {err}); truncated or damaged"
    if table.num_rows + len(failed) != expected_items:
        return (f"holds {table.num_rows} rows and {len(failed)} skipped files for {expected_items} items")
    return None


def _report(message: str) -> None:
    print(f"tokenize-dataset: {message}", file=sys.stderr)


def check_finished_shards(output: Path, progress: dict[str, Any], num_items: int, shard_size: int,
                          report: Callable[[str], None] = _report) -> tuple[list[int], dict[str, str]]:
    """Check every shard on disk against the manifest: ``(pending shard indices, {shard: why redone})``.

    A whole shard is kept (and recorded, if the manifest did not know it); a damaged one is deleted
    and its record dropped, so it is tokenized again.
    """
    num_shards = -(-num_items // shard_size)
    completed, pending, redone = progress["completed"], [], {}
    for name in [n for n in completed if n not in {SHARD_PATTERN.format(k) for k in range(num_shards)}]:
        del completed[name]
    for k in range(num_shards):
        name, path = SHARD_PATTERN.format(k), shard_path(output, k)
        record = completed.get(name)
        if not path.is_file():
            if record is not None:
                redone[name] = "recorded as finished but missing"
                report(f"{path}: recorded as finished but missing; tokenizing it again")
                del completed[name]
            pending.append(k)
            continue
        problem = verify_shard(path, record, len(shard_indices(k, shard_size, num_items)))
        if problem is None:
            if not (record and record.get("sha256")):
                completed[name] = {"rows": int(_num_rows(path)), "failed": shard_failures(path), **file_digest(path)}
            continue
        redone[name] = problem
        report(f"{path}: {problem}; removed it, tokenizing it again")
        path.unlink()
        completed.pop(name, None)
        pending.append(k)
    return pending, redone


def _num_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.read_metadata(path).num_rows


def tokenize_dataset(source, output: str | Path, tokenizer: Tokenizer, shard_size: int = 1000,
                     split: str | None = None, flatten: FlattenSpec | None = None, num_proc: int = 1,
                     progress_bar: bool = True, report: Callable[[str], None] = _report,
                     runner: Callable[..., None] | None = None, **dataset_options) -> dict[str, Any]:
    """Tokenize ``source`` (manifest, folder, corpus, ``datasets.Dataset``) into shards under ``output``.

    Resumable: call again with the same arguments after an interruption; finished shards are checked
    against the manifest in ``progress.json`` and damaged ones redone (``report`` gets a message for
    each; by default it goes to stderr). Returns ``{"shards", "rows", "failed": {path: problem},
    "redone": {shard: why}, "output"}``. Raises :class:`ShardWriteError` when a shard cannot be
    written (disk full), after removing the partial file, and a ``CommandError`` when another run
    holds the folder's lock.

    ``runner(job, pending, record)``, when given, tokenizes the pending shards instead of this process
    and calls ``record(shard, result)`` for each shard it wrote with :func:`save_shard` (the Ray
    engine, :mod:`audiotok.tokenizers.dataset_ray`); settings, checks and manifest stay the same, so
    either engine can resume the other's output.
    """
    from audiotok.data.datasets import build_dataset
    from audiotok.data.outputs import output_lock

    if flatten is not None and flatten.codebook_size != tokenizer.codebook_size:
        raise ValueError(f"flatten codebook_size {flatten.codebook_size} != the tokenizer's "
                         f"{tokenizer.codebook_size}")
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    options = dict(dataset_options, split=split) if split is not None else dataset_options
    dataset = build_dataset(source, sample_rate=tokenizer.sample_rate, mono=True, on_error="raise", **options)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    with output_lock(output, "tokenize-dataset"):
        return _tokenize_locked(dataset, source, output, tokenizer, shard_size, split, flatten, num_proc,
                                progress_bar, report, runner)


def _settings_name(value) -> str:
    """A source or model as recorded in the settings: paths resolved, anything else as text."""
    if isinstance(value, (str, Path)) and Path(value).expanduser().exists():
        return str(Path(value).expanduser().resolve())
    return str(value) if isinstance(value, (str, Path)) else str(getattr(value, "_fingerprint", value))


def _tokenize_locked(dataset, source, output: Path, tokenizer: Tokenizer, shard_size: int, split, flatten,
                     num_proc: int, progress_bar: bool, report: Callable[[str], None],
                     runner: Callable[..., None] | None = None) -> dict[str, Any]:
    for stale in output.glob("*.tmp*"):  # left by an interrupted run (the lock says none is running)
        stale.unlink()
    num_shards = -(-len(dataset) // shard_size)
    settings = {"source": _settings_name(source),
                "model": _settings_name(tokenizer.source), "num_codebooks": tokenizer.num_codebooks,
                "codebook_size": tokenizer.codebook_size, "sample_rate": tokenizer.sample_rate,
                "frame_rate": tokenizer.frame_rate, "shard_size": shard_size, "num_items": len(dataset),
                "split": split, "flatten": None if flatten is None else flatten.to_dict()}
    progress = _check_settings(output, settings)
    pending, redone = check_finished_shards(output, progress, len(dataset), shard_size, report)
    job = ShardJob(dataset, tokenizer, output, shard_size, flatten)

    def record(index: int, result: dict[str, Any]) -> None:
        progress["completed"][SHARD_PATTERN.format(index)] = result
        _save_progress(output, progress)

    _save_progress(output, progress)
    if runner is not None:
        if pending:
            runner(job, pending, record)
        unwritten = [SHARD_PATTERN.format(k) for k in pending if SHARD_PATTERN.format(k) not in progress["completed"]]
        if unwritten:  # never report success over a gap
            raise RuntimeError(f"the engine stopped without writing {len(unwritten)} shards ({unwritten[:3]}"
                               f"{' …' if len(unwritten) > 3 else ''}); run the same command again")
    elif num_proc > 1 and len(pending) > 1:
        for index, result in _map_with_datasets(job, pending, num_proc):
            record(index, result)
    else:
        from tqdm import tqdm

        for index in tqdm(pending, unit="shard", desc="tokenize-dataset",
                          disable=None if progress_bar else True):
            record(index, tokenize_shard(job, index))
    failed = {k: v for result in progress["completed"].values() for k, v in result["failed"].items()}
    failed.update(getattr(dataset, "listing_problems", {}))
    return {"shards": num_shards, "rows": sum(r["rows"] for r in progress["completed"].values()),
            "failed": failed, "redone": redone, "output": str(output)}


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
        yield int(row["shard"]), {"rows": int(row["rows"]), "failed": json.loads(row["failed"]),
                                  **json.loads(row["written"])}


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
