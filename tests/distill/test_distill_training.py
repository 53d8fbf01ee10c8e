"""Distillation in training from a cached (offline) teacher: crop → target lookup, masking, a tiny fit."""
from __future__ import annotations

import json
import math
from fractions import Fraction

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from audiotok.data import build_dataset, load_audio
from audiotok.distill import FeatureCache, Teacher, build_cache
from audiotok.training.data import CodecDataModule, SeededCropDataset, collate_training_items, resolve_source
from audiotok.training.distillation import IGNORE_LABEL, DistillationSlot
from audiotok.training.module import CodecLightningModule

RATE = 16000


class FrameIndexTeacher(Teacher):
    """A label teacher whose label for 50 Hz frame ``f`` is ``f`` itself: a crop's labels reveal its offset."""

    output, sample_rate, frame_rate, dim = "labels", RATE, Fraction(50), 40

    def labels(self, wav, texts, lengths=None):
        return torch.arange(math.ceil(wav.shape[-1] / 320))[None].expand(wav.shape[0], -1)

    def config_dict(self):
        return {"kind": "frame-index"}


def tiny_train_manifest(tmp_path, count: int):
    """A manifest of the first ``count`` train rows of the built-in tiny corpus (absolute paths)."""
    corpus = resolve_source("builtin:tiny")
    rows = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines()]
    rows = [{**r, "path": str((corpus / r["path"]).resolve())} for r in rows if r["split"] == "train"][:count]
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def test_each_crop_gets_the_teacher_frames_of_exactly_that_crop(tmp_path):
    manifest = tiny_train_manifest(tmp_path, 3)
    cache = build_cache(FrameIndexTeacher(), manifest, tmp_path / "cache", progress=False)
    segment = 8000  # 0.5 s → 25 frames
    crops = SeededCropDataset(build_dataset(manifest, sample_rate=RATE), segment, teacher_cache=cache)
    items = [crops[(index, seed)] for index in range(3) for seed in (1, 2, 3)]
    assert len({item["offset"] for item in items}) > 3  # random offsets were drawn
    for item in items:
        full, _ = load_audio(item["path"], RATE)
        offset = item["offset"]
        torch.testing.assert_close(item["audio"], full[:, offset:offset + segment])  # offset is the crop's
        first = offset // 320  # frame that holds the crop's first sample
        assert torch.equal(item["teacher"], torch.arange(first, first + 25))
    batch = collate_training_items(items[:2])
    assert batch["teacher"].shape == (2, 25) and batch["offsets"].tolist() == [i["offset"] for i in items[:2]]


def test_padding_frames_are_ignored_by_the_loss(tmp_path):
    manifest = tiny_train_manifest(tmp_path, 1)
    build_cache(FrameIndexTeacher(), manifest, tmp_path / "cache", progress=False)
    slot = DistillationSlot(None, student_dim=8, codec_rate=50, sample_rate=RATE, cache=tmp_path / "cache")
    assert slot.kind == "pseudo_label"  # the default for a label cache
    labels = torch.randint(0, 40, (2, 10))
    masked = slot._mask_padding(torch.zeros(2, 8, 10), labels, torch.tensor([3200, 1000]))[1]
    assert torch.equal(masked[0], labels[0])  # 3200 samples = 10 real frames
    assert torch.equal(masked[1, :4], labels[1, :4]) and (masked[1, 4:] == IGNORE_LABEL).all()  # ceil(1000/320)=4
    semantic = torch.randn(2, 8, 10, requires_grad=True)
    loss = slot(semantic, torch.zeros(2, 1, 3200), {"teacher": labels, "lengths": torch.tensor([3200, 1000])})
    loss.backward()
    assert torch.isfinite(loss) and semantic.grad[1, :, 4:].abs().sum() == 0  # no gradient from padding


def test_cache_options_are_checked(tmp_path):
    manifest = tiny_train_manifest(tmp_path, 1)
    build_cache(FrameIndexTeacher(), manifest, tmp_path / "cache", progress=False)
    with pytest.raises(ValueError, match="exactly one"):
        DistillationSlot(None, 8, 50, RATE)
    slot = DistillationSlot(None, 8, 50, RATE, cache=tmp_path / "cache")
    with pytest.raises(ValueError, match="no 'teacher' targets"):
        slot(torch.zeros(1, 8, 5), torch.zeros(1, 1, 1600), {"lengths": torch.tensor([1600])})
    onehot = DistillationSlot("d_axis", 40, 50, RATE, cache=tmp_path / "cache")  # labels → one-hot targets
    assert torch.isfinite(onehot(torch.randn(1, 40, 5), torch.zeros(1, 1, 1600), {"teacher": torch.ones(1, 5).long()}))


@pytest.mark.slow
def test_tiny_fit_distils_from_a_phone_cache(tmp_path):
    """A few steps of speechtokenizer-tiny with pseudo-label CE to cached forced-aligned phones."""
    pytest.importorskip("pocketsphinx")
    torch.set_num_threads(1)
    manifest = tiny_train_manifest(tmp_path, 4)
    from audiotok.distill import build_teacher

    build_cache(build_teacher("phones"), manifest, tmp_path / "phones", progress=False)
    assert FeatureCache(tmp_path / "phones").output == "labels"
    pl.seed_everything(0, verbose=False)
    module = CodecLightningModule(codec="speechtokenizer-tiny", recipe="speechtokenizer", discriminator_width=0.0625,
                                  warmup_steps=1, distill={"cache": str(tmp_path / "phones"), "weight": 10.0})
    head_before = module.distill.head.projection.weight.detach().clone()
    data = CodecDataModule(train=str(manifest), segment_seconds=0.5, batch_size=2)
    seen = []

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            assert batch["teacher"].shape == (2, 25) and int(batch["teacher"].max()) < 40
            seen.append(float(trainer.callback_metrics["train/distill"]))

    pl.Trainer(max_steps=3, accelerator="cpu", logger=False, enable_progress_bar=False, enable_checkpointing=False,
               enable_model_summary=False, num_sanity_val_steps=0, use_distributed_sampler=False,
               limit_val_batches=0, callbacks=[Record()]).fit(module, data)
    assert len(seen) == 3 and all(math.isfinite(v) and 0 < v < 10 for v in seen)
    assert not torch.equal(module.distill.head.projection.weight.detach(), head_before)  # the head trained
