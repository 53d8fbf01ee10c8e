"""``CodecDataModule``: audio segments for codec training, in an order that survives a resume.

Training order and crops depend only on ``(seed, epoch, position)``: the sampler shuffles with a
generator seeded by ``(seed, epoch)``, shards the order across ranks (equal batch counts on every rank,
so DDP never waits on a rank that ran out), and hands each item its own crop seed. The train loader
is *stateful* (``state_dict`` / ``load_state_dict``), so Lightning resumes mid-epoch at the next
unseen batch instead of replaying the epoch: a resumed run sees exactly the batches an uninterrupted
run would. Because the sampler shards itself, the Trainer must run with ``use_distributed_sampler=False``
(the CLI sets it).

**Cached teacher targets.** When the model distils from a cache (``model.distill.cache``, a folder from
``audiotok distill cache``), every training crop carries the teacher frames of exactly that crop,
read with :meth:`audiotok.distill.FeatureCache.get` at the crop's offset: ``batch["teacher"]`` holds
labels ``[B, Tt]`` (label caches) or features ``[B, Dt, Tt]``. Frames past a short clip's real samples
repeat its last frame; the distillation slot masks them with ``batch["lengths"]``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from audiotok.data import build_dataset, collate_items
from audiotok.data.datasets import crop_with_offset

BUILTIN_PREFIX = "builtin:"


def resolve_source(source: str) -> Path:
    """``builtin:tiny|small|full`` (corpus built on demand), a corpus folder, manifest or audio folder."""
    if source.startswith(BUILTIN_PREFIX):
        from audiotok.data.corpus import SIZES, ensure_corpus

        size = source[len(BUILTIN_PREFIX):]
        if size not in SIZES:
            raise ValueError(f"unknown built-in corpus {source!r}; use builtin:{'|builtin:'.join(SIZES)}")
        return ensure_corpus(size)
    return Path(source)


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class SeededOrderSampler(Sampler):
    """Yields ``(index, crop_seed)`` for this rank; order from ``(seed, epoch)``, resumable at ``start``."""

    def __init__(self, size: int, seed: int, shuffle: bool = True):
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this at every epoch start
        self.epoch = epoch

    def _rank_order(self) -> list[int]:
        rank, world = _rank_and_world()
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        per_rank = math.ceil(self.size / world)
        order = (order * world)[: per_rank * world]  # pad by wrapping: equal counts on every rank
        return order[rank::world]

    def __len__(self) -> int:
        return math.ceil(self.size / _rank_and_world()[1])

    def __iter__(self):
        order = self._rank_order()
        for position in range(self.start, len(order)):
            yield order[position], (self.seed * 1_000_003 + self.epoch) * 100_003 + position


def crop_teacher_target(cache, path: str, offset: int, num_samples: int, sample_rate: int) -> torch.Tensor:
    """Cached teacher frames of the crop ``[offset, offset + num_samples)`` of ``path`` (at ``sample_rate``).

    Labels ``[Tt]`` (int64) for label caches, features ``[Dt, Tt]`` otherwise;
    ``Tt = ceil(num_samples * teacher_rate / sample_rate)``, the same for every crop of one length.
    """
    target = cache.get(path, offset, num_samples, sample_rate)
    return target[0] if cache.output == "labels" else target


class SeededCropDataset(Dataset):
    """Random crops of ``segment_length`` samples whose offset comes from the sampler's crop seed.

    With ``teacher_cache`` (a :class:`~audiotok.distill.FeatureCache`), each item also carries
    ``"teacher"``: the cached teacher frames of its crop (:func:`crop_teacher_target`).
    """

    def __init__(self, dataset, segment_length: int, teacher_cache=None):
        self.dataset, self.segment_length, self.teacher_cache = dataset, segment_length, teacher_cache

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, crop_seed = key
        item = self.dataset[index]
        generator = torch.Generator().manual_seed(crop_seed)
        audio, length, offset = crop_with_offset(item["audio"], self.segment_length, random=True, generator=generator)
        item = {**item, "audio": audio, "length": length, "offset": offset}
        if self.teacher_cache is not None:
            item["teacher"] = crop_teacher_target(self.teacher_cache, item["path"], offset, self.segment_length,
                                                  item["sample_rate"])
        return item


def collate_training_items(items: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`audiotok.data.collate_items` plus ``"teacher"`` stacked to ``[B, Tt]`` / ``[B, Dt, Tt]`` when present."""
    batch = collate_items(items)
    if "teacher" in items[0]:
        batch["teacher"] = torch.stack([item["teacher"] for item in items])
    return batch


class ResumableLoader(DataLoader):
    """A DataLoader over a :class:`SeededOrderSampler` that remembers how many batches it gave out."""

    def __init__(self, dataset: Dataset, sampler: SeededOrderSampler, batch_size: int, **kwargs):
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, **kwargs)
        self.order_sampler = sampler
        self.batches_seen = 0
        self._resume_at = 0

    def __iter__(self):
        self.batches_seen, self._resume_at = self._resume_at, 0
        self.order_sampler.start = self.batches_seen * self.batch_size
        for batch in super().__iter__():
            self.batches_seen += 1
            yield batch
        self.order_sampler.start = 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.order_sampler.epoch, "batches_seen": self.batches_seen}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.order_sampler.epoch = state["epoch"]
        self._resume_at = state["batches_seen"]


def _lightning_datamodule():
    import lightning.pytorch as pl

    return pl.LightningDataModule


class CodecDataModule(_lightning_datamodule()):
    """Training segments and validation clips for a codec.

    Args:
        train: ``builtin:tiny|small|full`` (the offline corpus, built on first use), a corpus folder
            (split ``train``), a ``.jsonl`` manifest or an audio folder.
        val: same forms; None = the corpus' ``dev`` split when ``train`` is a corpus, else no validation.
        sample_rate: None = the codec's (read from the model when training starts).
        segment_seconds: training crop length; val_segment_seconds: validation crop (from the start).
        batch_size, val_batch_size, num_workers, seed: loader settings (seed fixes order and crops).
        teacher_cache: feature-cache folder whose per-crop teacher targets go into each training batch;
            None = the attached model's ``distill.cache`` (if any).
    """

    def __init__(
        self,
        train: str = "builtin:tiny",
        val: str | None = None,
        sample_rate: int | None = None,
        segment_seconds: float = 1.0,
        val_segment_seconds: float = 2.0,
        batch_size: int = 8,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        teacher_cache: str | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.train_source, self.val_source = train, val
        self.sample_rate = sample_rate
        self.segment_seconds, self.val_segment_seconds = segment_seconds, val_segment_seconds
        self.batch_size, self.val_batch_size = batch_size, val_batch_size or batch_size
        self.num_workers, self.seed = num_workers, seed
        self.teacher_cache = teacher_cache
        self._train = self._val = self._test = None

    def _rate(self) -> int:
        if self.sample_rate is not None:
            return int(self.sample_rate)
        model = getattr(self.trainer, "lightning_module", None) if self.trainer is not None else None
        codec = getattr(model, "codec", None)
        if codec is None:
            raise ValueError("CodecDataModule needs sample_rate= when it is not attached to a codec model")
        return int(codec.sample_rate)

    def _dataset(self, source: str, split: str, segment_seconds: float, random_crop: bool):
        path = resolve_source(source)
        rate = self._rate()
        options: dict[str, Any] = {"sample_rate": rate}
        if (path / "manifest.jsonl").is_file():
            options["split"] = split
        if random_crop:  # crops are drawn by SeededCropDataset, from the sampler's seeds
            return SeededCropDataset(build_dataset(path, **options), round(segment_seconds * rate),
                                     self._teacher_cache())
        return build_dataset(path, segment_length=round(segment_seconds * rate), random_crop=False, **options)

    def _teacher_cache(self):
        """The :class:`~audiotok.distill.FeatureCache` to read targets from: ours, the model's, or None."""
        folder = self.teacher_cache
        if folder is None and self.trainer is not None:
            distill = getattr(getattr(self.trainer, "lightning_module", None), "distill", None)
            folder = getattr(distill, "cache_folder", None)
        if folder is None:
            return None
        from audiotok.distill import FeatureCache

        return FeatureCache(folder)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self._train is None:
            self._train = self._dataset(self.train_source, "train", self.segment_seconds, True)
            if len(self._train) < self.batch_size:
                raise ValueError(f"{self.train_source} has {len(self._train)} training clips, fewer than "
                                 f"batch_size={self.batch_size}; lower the batch size")
        if self._val is None and self._eval_source() is not None:
            self._val = self._dataset(self._eval_source(), "dev", self.val_segment_seconds, False)
        if stage == "test" and self._test is None and self._eval_source() is not None:
            self._test = self._dataset(self._eval_source(), "test", self.val_segment_seconds, False)

    def _eval_source(self) -> str | None:
        """``val`` if given, else the training corpus (its dev/test splits), else None."""
        if self.val_source is not None:
            return self.val_source
        if (resolve_source(self.train_source) / "manifest.jsonl").is_file():
            return self.train_source
        return None

    def train_dataloader(self) -> ResumableLoader:
        sampler = SeededOrderSampler(len(self._train), self.seed, shuffle=True)
        return ResumableLoader(self._train, sampler, self.batch_size, collate_fn=collate_training_items,
                               num_workers=self.num_workers, persistent_workers=False)

    def _eval_loader(self, dataset) -> DataLoader | list:
        if dataset is None:
            return []
        return DataLoader(dataset, batch_size=self.val_batch_size, shuffle=False,
                          collate_fn=collate_items, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader | list:
        return self._eval_loader(self._val)

    def test_dataloader(self) -> DataLoader | list:
        return self._eval_loader(self._test if self._test is not None else self._val)
