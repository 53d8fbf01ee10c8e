"""``tokenize-dataset --engine ray``: the same shards as the single-machine engine, tokenized on a Ray cluster.

The driver (where the command runs) lists the corpus, locks the output folder, checks the finished
shards against ``progress.json`` exactly as :func:`audiotok.tokenizers.dataset.tokenize_dataset` does,
and hands the pending shards to a streaming Ray Data pipeline::

    pending shards -> items (shard, index)
      -> read + resample + peak check       Ray tasks (CPU), ``load_item`` of the local engine
      -> tokenize                           actor pool: one Tokenizer per actor (its GPU when it has one);
                                            a call's items sorted by length and packed into encode passes of
                                            at most ``batch_seconds`` of audio (and ``--batch-size`` items)
      -> shard rows                         back on the driver: collected per shard, written in item order
                                            with the local engine's ``save_shard`` (temporary name, fsync,
                                            SHA-256, rename), then recorded in the manifest

Exactly once: a shard is written only when every one of its items came back (as a row or as a
skipped file), rows are keyed by item index so a batch Ray runs again after a worker died adds
nothing twice, and the manifest is the record of finished shards, so a re-run (with either engine)
skips verified shards and redoes damaged or missing ones. Ray restarts a killed tokenizer actor and
retries its batch (Ray Data's actor pools: ``max_restarts=-1``, ``max_task_retries=-1``).

Where things live: the audio (paths in the manifest, or the saved Hugging Face dataset) must be
readable by every worker node at the same path (shared storage); shards and ``progress.json`` are
written by the driver under ``-o``. The model travels through the object store (its config and
safetensors weights), so workers need only ``audiotok`` installed, not the model files.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audiotok.tokenizers.dataset import (
    ShardJob,
    _encode,
    _report,
    _schema,
    item_row,
    load_item,
    save_shard,
    shard_indices,
    tokenize_dataset,
)

RAY_EXTRA = "pip install 'audiotok[ray]'"
ITEMS_PER_CALL = 32  # items per actor call: the window in which items are grouped by length
READ_ITEMS_PER_TASK = 8
READ_CPUS = 0.5  # what a read task reserves: decoding and resampling are light next to encoding
# ... and memory (its process and decoded items). Also keeps Ray Data from fusing the reading into the tokenizer
# actors (it fuses stages that ask for the same resources), so reads stay parallel to tokenizing.
READ_MEMORY = 512 * 2**20  # a worker process with torch imported holds ~260 MiB before any audio


def require_ray():
    """The ``ray`` module with Ray Data, or an ``ImportError`` that names the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401 - ray without the [data] extra lacks pandas/pyarrow pieces
    except ImportError as err:
        raise ImportError(f"--engine ray needs Ray Data, which is not installed ({err}); install it with "
                          f"{RAY_EXTRA}") from None
    return ray


@dataclass
class RayOptions:
    """How the Ray engine runs.

    ``address``: None starts a Ray instance on this machine (or joins ``RAY_ADDRESS``), ``"auto"`` joins
    the cluster this machine belongs to, ``"ray://head:10001"`` a remote one through Ray Client; ignored
    when Ray is already initialised in this process. ``workers``: tokenizer actors; ``gpus_per_worker``
    (fractions share a GPU) and ``cpus_per_worker`` (also its torch threads) what each one reserves.
    ``resources_per_worker``: custom Ray resources each actor needs (``{"tokenizer_node": 1}`` puts the
    actors on nodes started with ``--resources '{"tokenizer_node": N}'``). ``batch_seconds``: the most
    audio in one encode pass. ``progress_every``: seconds between progress lines (0: one per shard).
    """

    address: str | None = None
    workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    resources_per_worker: dict[str, float] | None = None
    batch_seconds: float = 60.0
    items_per_call: int = ITEMS_PER_CALL
    read_items_per_task: int = READ_ITEMS_PER_TASK
    progress_every: float = 10.0

    def __post_init__(self):
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.gpus_per_worker < 0 or self.cpus_per_worker <= 0:
            raise ValueError(f"need gpus_per_worker >= 0 and cpus_per_worker > 0, got {self.gpus_per_worker}, "
                             f"{self.cpus_per_worker}")
        if self.batch_seconds <= 0 or self.items_per_call < 1 or self.read_items_per_task < 1:
            raise ValueError("batch_seconds, items_per_call and read_items_per_task must be positive")


def tokenize_dataset_ray(source, output: str | Path, tokenizer, options: RayOptions | None = None,
                         report: Callable[[str], None] = _report, **kwargs) -> dict[str, Any]:
    """:func:`~audiotok.tokenizers.dataset.tokenize_dataset` with the pending shards run on Ray.

    Same arguments (``shard_size``, ``split``, ``flatten``, dataset options) and the same result
    ``{"shards", "rows", "failed", "redone", "output"}``; shards, rows and ``progress.json`` are those the
    single-machine engine writes. Raises ``ImportError`` naming the extra when Ray is missing.
    """
    require_ray()
    options = options or RayOptions()
    if kwargs.get("num_proc", 1) != 1:
        raise ValueError("num_proc is for the single-machine engine; the Ray engine uses workers")
    if isinstance(source, (str, Path)) and Path(source).expanduser().exists():
        source = Path(source).expanduser().resolve()  # the workers' working folder is not ours: absolute paths
    runner = RayShardRunner(options, report)
    summary = tokenize_dataset(source, output, tokenizer, report=report, runner=runner, **kwargs)
    return {**summary, "ray": runner.stats}


class RayShardRunner:
    """``runner(job, pending, record)`` for :func:`tokenize_dataset`: the pending shards on Ray."""

    def __init__(self, options: RayOptions, report: Callable[[str], None] = _report):
        self.options, self.report = options, report
        self.stats: dict[str, float] = {}  # of the last run: see Progress.stats

    def __call__(self, job: ShardJob, pending: list[int], record: Callable[[int, dict], None]) -> None:
        ray = require_ray()
        with _connected(ray, self.options):
            _check_resources(ray, self.options)
            dataset, refs = _pipeline(ray, job, pending, self.options)  # refs: alive while it runs
            assembler = ShardAssembler(job, pending, record)
            progress = Progress(sum(assembler.expected.values()), len(pending), self.report,
                                self.options.progress_every)
            for block in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
                progress.update(*assembler.add(block))
            progress.finish()
            self.stats = progress.stats()
            assembler.check_complete()


@contextlib.contextmanager
def _connected(ray, options: RayOptions) -> Iterator[None]:
    """Ray initialised for the run: an existing connection is used as is; one we open is closed after.
    A Ray started here counts at least one CPU per asked worker plus one for reading (logical CPUs:
    ``--workers 4`` on a 2-core laptop runs, four times slower per worker)."""
    if ray.is_initialized():
        yield
        return
    local = options.address is None and not os.environ.get("RAY_ADDRESS")
    cpus = max(os.cpu_count() or 1, math.ceil(options.workers * options.cpus_per_worker + 1)) if local else None
    ray.init(address=options.address, num_cpus=cpus, logging_level=logging.WARNING, log_to_driver=True)
    try:
        yield
    finally:
        ray.shutdown()


def _check_resources(ray, options: RayOptions) -> None:
    """Refuse workers the cluster cannot hold now (Ray Data would wait for them forever)."""
    total = ray.cluster_resources()
    cpus, gpus = total.get("CPU", 0.0), total.get("GPU", 0.0)
    if options.gpus_per_worker > gpus:
        raise ValueError(f"--gpus-per-worker {options.gpus_per_worker:g} but the Ray cluster has {gpus:g} GPUs; "
                         "add GPU nodes or run with --gpus-per-worker 0 (CPU)")
    if options.cpus_per_worker > cpus:
        raise ValueError(f"--cpus-per-worker {options.cpus_per_worker:g} but the Ray cluster has {cpus:g} CPUs")
    custom = options.resources_per_worker or {}
    lacking = {k: v for k, v in custom.items() if total.get(k, 0.0) < v}
    if lacking:
        raise ValueError(f"no node of the Ray cluster has the resources {lacking} that --resources-per-worker asks "
                         f"for (start nodes with ray start --resources '{{...}}'); it has {sorted(total)}")
    fit = min([cpus // options.cpus_per_worker] + [total[k] // v for k, v in custom.items() if v > 0]
              + ([gpus // options.gpus_per_worker] if options.gpus_per_worker else []))
    if not custom and fit >= options.workers and cpus - options.workers * options.cpus_per_worker < READ_CPUS:
        raise ValueError(f"{options.workers} workers of {options.cpus_per_worker:g} CPUs would hold all {cpus:g} CPUs "
                         "of the Ray cluster and leave none for reading audio; use fewer --workers or a smaller "
                         "--cpus-per-worker")
    if fit < options.workers:  # Ray Data would wait for the missing actors forever
        each = f"{options.cpus_per_worker:g} CPUs, {options.gpus_per_worker:g} GPUs" + (f", {custom}" if custom else "")
        raise ValueError(f"the Ray cluster ({cpus:g} CPUs, {gpus:g} GPUs) holds only {int(fit)} of the {options.workers} "
                         f"workers of {each} asked for; use --workers {int(fit)} or add nodes first")


def _pipeline(ray, job: ShardJob, pending: list[int], options: RayOptions):
    """The lazy Ray Dataset of tokenized items (shard rows plus ``shard``, ``index``, ``failed_*``) and the
    object-store references it needs (the dataset, the packed model)."""
    from ray.data import ActorPoolStrategy, DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False  # our own progress lines say rows, hours and audio-s/s
    dataset_ref = ray.put(job.dataset)
    model_ref = ray.put(pack_tokenizer(job.tokenizer))
    num_items = len(job.dataset)
    shards = ray.data.from_items([{"shard": k} for k in pending], override_num_blocks=max(1, min(len(pending), 1000)))
    items = shards.flat_map(functools.partial(_shard_items, shard_size=job.shard_size, num_items=num_items))
    # A read task's block is what an actor task takes at least: no larger than an actor call.
    audio = items.map_batches(read_items, batch_size=min(options.read_items_per_task, options.items_per_call),
                              batch_format="pyarrow",
                              fn_kwargs={"dataset_ref": [dataset_ref]}, num_cpus=READ_CPUS, memory=READ_MEMORY)
    threads = max(1, int(options.cpus_per_worker))
    return audio.map_batches(
        TokenizeWorker, batch_size=options.items_per_call, batch_format="pyarrow",
        compute=ActorPoolStrategy(size=options.workers),
        fn_constructor_kwargs={"model_ref": [model_ref], "flatten": job.flatten,
                               "batch_seconds": options.batch_seconds, "threads": threads},
        num_cpus=options.cpus_per_worker, num_gpus=options.gpus_per_worker or None,
        resources=options.resources_per_worker or None), [dataset_ref, model_ref]


def _shard_items(row: dict[str, Any], shard_size: int, num_items: int) -> list[dict[str, int]]:
    return [{"shard": row["shard"], "index": i} for i in shard_indices(row["shard"], shard_size, num_items)]


# ---- the model through the object store -------------------------------------------------------
def pack_tokenizer(tokenizer) -> dict[str, Any]:
    """A tokenizer as plain bytes (its saved folder) and settings, to rebuild on a worker."""
    from audiotok.export.onnx_runtime import OnnxCodec

    if tokenizer.device.type != "cpu":
        raise ValueError("load the tokenizer on the CPU for the Ray engine; each worker moves it to its GPU")
    onnx = isinstance(tokenizer.codec, OnnxCodec)
    if onnx:  # the exported graphs (and their weight files) as they are
        files = {p.name: p.read_bytes() for p in tokenizer.codec.files()}
    else:
        with tempfile.TemporaryDirectory(prefix="audiotok-ray-model-") as folder:
            tokenizer.codec.save_pretrained(folder)
            files = {p.name: p.read_bytes() for p in Path(folder).iterdir()}
    return {"files": files, "onnx": onnx, "n_q": tokenizer.num_codebooks, "dtype": tokenizer.dtype,
            "batch_size": tokenizer.batch_size, "chunk_seconds": tokenizer.chunk_seconds,
            "context_seconds": tokenizer.context_seconds, "source": tokenizer.source}


def unpack_tokenizer(packed: dict[str, Any], device: str = "cpu"):
    """The :class:`Tokenizer` of :func:`pack_tokenizer`, on ``device``."""
    from audiotok.codecs.codec import Codec
    from audiotok.tokenizers.tokenizer import Tokenizer

    folder = tempfile.mkdtemp(prefix="audiotok-ray-model-")
    try:
        for name, data in packed["files"].items():
            Path(folder, name).write_bytes(data)
        if packed.get("onnx"):
            from audiotok.export.onnx_runtime import OnnxCodec

            codec = OnnxCodec(folder)  # its sessions hold the graphs: the folder can go
        else:
            codec = Codec.from_pretrained(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    codec.set_num_codebooks(packed["n_q"])
    return Tokenizer(codec, device=device, dtype=packed["dtype"], batch_size=packed["batch_size"],
                     chunk_seconds=packed["chunk_seconds"], context_seconds=packed["context_seconds"],
                     source=packed["source"])


# ---- stage 1: read and resample (Ray tasks) ------------------------------------------------------
_SHARED: dict[str, Any] = {}  # object-store values already fetched by this worker process


def _shared(ref):
    key = ref.hex()
    if key not in _SHARED:
        import ray

        _SHARED.clear()  # one run at a time per worker process
        _SHARED[key] = ray.get(ref)
    return _SHARED[key]


def _read_schema():
    import pyarrow as pa

    return pa.schema([("shard", pa.int64()), ("index", pa.int64()), ("id", pa.string()), ("path", pa.string()),
                      ("text", pa.string()), ("speaker", pa.string()), ("sample_rate", pa.int64()),
                      ("audio", pa.large_binary()), ("failed_label", pa.string()), ("failed_problem", pa.string())])


def read_items(batch, dataset_ref: list):
    """Items ``(shard, index)`` → their mono audio at the tokenizer's rate (float32 bytes) and metadata,
    or the reason they are skipped (``failed_label``/``failed_problem``), with the local engine's checks."""
    import pyarrow as pa

    dataset = _shared(dataset_ref[0])
    rows = []
    for shard, index in zip(batch["shard"].to_pylist(), batch["index"].to_pylist()):
        failed: dict[str, str] = {}
        item = load_item(dataset, index, failed)
        if item is None:
            (label, problem), = failed.items()
            rows.append({"shard": shard, "index": index, "failed_label": label, "failed_problem": problem})
            continue
        audio = item["audio"].float().reshape(-1).numpy()  # [1, T] -> [T]
        rows.append({"shard": shard, "index": index, "id": str(item["id"]),
                     "path": None if item.get("path") is None else str(item["path"]), "text": item.get("text"),
                     "speaker": item.get("speaker"), "sample_rate": item["sample_rate"], "audio": audio.tobytes()})
    return pa.Table.from_pylist(rows, schema=_read_schema())


# ---- stage 2: tokenize (actor pool) -----------------------------------------------------------------
def length_groups(lengths: Sequence[int], max_total: int) -> list[list[int]]:
    """Indices sorted by length, cut into groups of at most ``max_total`` summed length (an item
    longer than that forms a group alone)."""
    groups: list[list[int]] = []
    total = 0
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if groups and total + lengths[i] <= max_total:
            groups[-1].append(i)
            total += lengths[i]
        else:
            groups.append([i])
            total = lengths[i]
    return groups


def _out_schema(codebook_size: int, with_tokens: bool):
    import pyarrow as pa

    schema = _schema(codebook_size, with_tokens)
    for name, kind in (("shard", pa.int64()), ("index", pa.int64()), ("failed_label", pa.string()),
                       ("failed_problem", pa.string())):
        schema = schema.append(pa.field(name, kind))
    return schema


class TokenizeWorker:
    """One Ray actor: a tokenizer (on the actor's GPU when Ray gave it one) that turns read items into
    shard rows. Items of a call are grouped by length into passes of at most ``batch_seconds`` of audio."""

    def __init__(self, model_ref: list, flatten, batch_seconds: float, threads: int = 1):
        import ray
        import torch

        torch.set_num_threads(threads)
        device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
        self.tokenizer = unpack_tokenizer(ray.get(model_ref[0]), device)
        self.flatten, self.batch_seconds = flatten, batch_seconds
        self.schema = _out_schema(self.tokenizer.codebook_size, flatten is not None)

    def __call__(self, batch):
        import pyarrow as pa
        import torch

        tok, out, items = self.tokenizer, [], []
        for row in batch.to_pylist():
            if row["failed_label"] is not None:
                out.append({k: row[k] for k in ("shard", "index", "failed_label", "failed_problem")})
            else:
                row["audio"] = torch.from_numpy(np.frombuffer(row["audio"], dtype=np.float32).copy())[None]
                items.append(row)
        max_samples = max(1, int(self.batch_seconds * tok.sample_rate))
        for group in length_groups([item["audio"].shape[-1] for item in items], max_samples):
            chunk, failed = [items[i] for i in group], {}
            done = _encode(tok, chunk, failed)
            for item, codes in done:
                out.append({"shard": item["shard"], "index": item["index"], **item_row(item, codes, self.flatten)})
            encoded = {id(item) for item, _ in done}
            for item in chunk:
                if id(item) not in encoded:  # _encode listed it under its path (or id)
                    label = str(item.get("path") or item["id"])
                    out.append({"shard": item["shard"], "index": item["index"], "failed_label": label,
                                "failed_problem": failed.get(label, "encoding failed")})
        return pa.Table.from_pylist(out, schema=self.schema)


# ---- stage 3: shards on the driver --------------------------------------------------------------------
class ShardAssembler:
    """Collects tokenized items per shard and writes a shard once all its items are back.

    Items are keyed by index, so an item delivered twice (a batch retried after a worker died) is
    counted once; :meth:`check_complete` raises if the stream ended with a shard incomplete.
    """

    def __init__(self, job: ShardJob, pending: list[int], record: Callable[[int, dict], None]):
        num_items = len(job.dataset)
        self.job, self.record = job, record
        self.expected = {k: len(shard_indices(k, job.shard_size, num_items)) for k in pending}
        self.parts: dict[int, dict[int, Any]] = {k: {} for k in pending}
        self.written = 0

    def add(self, block) -> tuple[int, int, float, int]:
        """Take one block of tokenized items; returns ``(new rows, new skipped, new audio seconds, shards
        written)``."""
        rows = failed = 0
        seconds = 0.0
        columns = block.to_pydict()
        finished = []
        for position, (shard, index) in enumerate(zip(columns["shard"], columns["index"])):
            parts = self.parts.get(shard)
            if parts is None or index in parts:  # a shard already written, or an item seen before
                continue
            parts[index] = block.slice(position, 1)
            if columns["failed_label"][position] is None:
                rows += 1
                seconds += columns["duration"][position]
            else:
                failed += 1
            if len(parts) == self.expected[shard]:
                finished.append(shard)
        for shard in finished:
            self._write(shard)
        return rows, failed, seconds, len(finished)

    def _write(self, shard: int) -> None:
        import pyarrow as pa

        items = self.parts.pop(shard)
        table = pa.concat_tables([items[i] for i in sorted(items)]).combine_chunks()
        skipped = table.column("failed_label").is_null()
        failed = {label: problem for label, problem in
                  zip(table.column("failed_label").to_pylist(), table.column("failed_problem").to_pylist())
                  if label is not None}
        rows = table.filter(skipped)
        self.record(shard, save_shard(self.job.output, shard, rows, failed, self.job.tokenizer.codebook_size,
                                      self.job.flatten))
        self.written += 1

    def check_complete(self) -> None:
        if self.parts:
            missing = {k: self.expected[k] - len(v) for k, v in sorted(self.parts.items())}
            raise RuntimeError(f"the Ray pipeline ended with {len(missing)} shards incomplete (items missing: "
                               f"{dict(list(missing.items())[:5])}); nothing partial was written, run the "
                               "same command again")


class Progress:
    """Rows, hours of audio and audio-seconds per second, as a line at most every ``every`` seconds."""

    def __init__(self, total_items: int, total_shards: int, report: Callable[[str], None], every: float = 10.0):
        self.total_items, self.total_shards, self.report, self.every = total_items, total_shards, report, every
        self.rows = self.failed = self.shards = 0
        self.seconds = 0.0
        self.start = self.last = time.perf_counter()
        self.first: tuple[float, float] | None = None  # (time, audio seconds) when the first items came back

    def update(self, rows: int, failed: int, seconds: float, shards: int) -> None:
        self.rows, self.failed, self.seconds, self.shards = (self.rows + rows, self.failed + failed,
                                                             self.seconds + seconds, self.shards + shards)
        now = time.perf_counter()
        if self.first is None and rows + failed:
            self.first = (now, self.seconds)
        if shards and now - self.last >= self.every and self.shards < self.total_shards:  # finish() says the last
            self.last = now
            self.report(self.line())

    def line(self) -> str:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        done = self.rows + self.failed
        return (f"{done}/{self.total_items} items ({self.rows} rows, {self.failed} skipped), "
                f"{self.shards}/{self.total_shards} shards, {self.seconds / 3600:.3g} h of audio, "
                f"{self.seconds / elapsed:.1f} audio-seconds per second ({elapsed:.0f} s)")

    def stats(self) -> dict[str, float]:
        """``{"seconds", "audio_seconds", "first_items_s"}``: wall time of the pipeline, audio tokenized,
        and the time until the first items came back (starting the actors, loading the model, first reads)."""
        now = time.perf_counter()
        first = self.first[0] if self.first else now
        return {"seconds": now - self.start, "audio_seconds": self.seconds, "first_items_s": first - self.start}

    def finish(self) -> None:
        self.report("ray: " + self.line())
