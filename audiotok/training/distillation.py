"""The distillation slot of the training module: a frozen teacher (online or cached), a trainable head, one loss.

Config (the module's ``distill`` argument), one of::

    distill:                  # online: the teacher runs on every training batch
      teacher: "hubert:/models/hubert-base-ls960@avg"   # any audiotok.distill.build_teacher spec
      kind: d_axis            # d_axis (SpeechTokenizer) | t_axis | mimi_cosine (Mimi)
      weight: null            # null = the recipe's losses.distill weight

    distill:                  # offline: targets read from a cache built by `audiotok distill cache`
      cache: /data/cache/phones
      kind: pseudo_label      # default for label caches (phones: CE over 40 classes); or a continuous
                              # kind on one-hot labels; feature caches: d_axis (default) | t_axis | mimi_cosine
      weight: 1.0

Online, the teacher runs on the training batch (resampled to its rate, no gradient). Offline,
:class:`~audiotok.training.data.CodecDataModule` reads the cache and attaches, per training crop, the
teacher frames of exactly that crop (``batch["teacher"]``: labels ``[B, Tt]`` or features ``[B, Dt, Tt]``);
label teachers (the phone teacher needs whole-utterance transcripts, which a random crop no longer
matches) can only be used this way. Either way the head (:class:`audiotok.distill.DistillationHead`)
projects ``CodecOutput.semantic [B, D, F]`` to the teacher's width (logits over classes for
``pseudo_label``), aligns the teacher's frames to the codec's and returns the loss. Frames past a
crop's real samples (``batch["lengths"]``) are left out: label -100 for the cross-entropy, zeroed
student and teacher frames for the continuous losses.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from audiotok.distill.align import Rate, num_frames

IGNORE_LABEL = -100  # cross-entropy's ignore_index: padding frames


def valid_frame_mask(lengths: torch.Tensor, sample_rate: Rate, frame_rate: Rate, frames: int) -> torch.Tensor:
    """``[B, frames]`` bool, True on frames that hold real samples (``ceil(length * rate / sr)`` each)."""
    valid = torch.as_tensor([num_frames(int(n), sample_rate, frame_rate) for n in lengths], device=lengths.device)
    return torch.arange(frames, device=lengths.device)[None, :] < valid[:, None]


class DistillationSlot(nn.Module):
    """``forward(semantic[B, Ds, F], wav[B, 1, T], batch=None) -> scalar loss`` against a frozen teacher.

    Give ``teacher`` (online: a spec or a feature :class:`~audiotok.distill.Teacher`) or ``cache`` (a
    folder from ``audiotok distill cache``; the batch must then carry ``"teacher"`` targets).
    """

    def __init__(self, kind: str | None, student_dim: int, codec_rate: Rate, sample_rate: int,
                 teacher: Any = None, cache: str | Path | None = None):
        super().__init__()
        from audiotok.distill import DistillationHead, FeatureCache, Teacher, build_teacher

        if (teacher is None) == (cache is None):
            raise ValueError("distill needs exactly one of 'teacher' (online, e.g. 'hubert:/models/hubert-base-ls960@avg') "
                             "or 'cache' (a folder from `audiotok distill cache`)")
        self.sample_rate, self.codec_rate = sample_rate, codec_rate
        self.teacher, self.cache_folder = None, None
        if cache is not None:
            index = FeatureCache(cache)  # checks the folder is a cache; the data module reads it
            self.cache_folder = Path(cache)
            labels, teacher_dim, self.teacher_rate = index.output == "labels", index.dim, index.frame_rate
            kind = kind or ("pseudo_label" if labels else "d_axis")
            if kind == "pseudo_label" and not labels:
                raise ValueError(f"{cache} holds continuous teacher features; pseudo_label needs a label cache "
                                 "(`audiotok distill cache --teacher phones`), or use kind d_axis/t_axis/mimi_cosine")
        else:
            self.teacher = teacher if isinstance(teacher, Teacher) else build_teacher(teacher)
            if getattr(self.teacher, "output", "features") != "features":
                raise ValueError(
                    f"teacher {teacher!r} outputs labels, which need whole-utterance transcripts; online "
                    "distillation takes feature teachers (hubert/wavlm/hf): build a cache with `audiotok distill "
                    "cache --teacher phones` and set distill.cache instead")
            self.teacher.freeze()
            kind = kind or "d_axis"
            teacher_dim, self.teacher_rate = self.teacher.dim, self.teacher.frame_rate
        self.kind, self.teacher_dim = kind, teacher_dim
        self.head = DistillationHead(student_dim, teacher_dim, kind=kind,
                                     teacher_rate=self.teacher_rate, codec_rate=codec_rate)

    def trainable_modules(self) -> list[nn.Module]:
        return [self.head]

    def _online_target(self, wav: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            audio = wav
            if self.teacher.sample_rate != self.sample_rate:
                from audiotok.data import resample

                audio = resample(wav, self.sample_rate, self.teacher.sample_rate)
            return self.teacher(audio)

    def _target(self, wav: torch.Tensor, batch: dict[str, Any] | None) -> torch.Tensor:
        if self.teacher is not None:
            return self._online_target(wav)
        target = (batch or {}).get("teacher")
        if target is None:
            raise ValueError(f"distill.cache is set ({self.cache_folder}) but the batch has no 'teacher' targets; "
                             "train with audiotok.training.CodecDataModule, which attaches them per crop")
        return target.to(wav.device)

    def forward(self, semantic: torch.Tensor, wav: torch.Tensor, batch: dict[str, Any] | None = None) -> torch.Tensor:
        target = self._target(wav, batch)
        lengths = (batch or {}).get("lengths")
        if target.dim() == 2 and self.kind != "pseudo_label":  # label cache, continuous loss: one-hot targets
            target = F.one_hot(target.long().clamp(min=0), self.teacher_dim).transpose(1, 2).float()
        if lengths is not None:
            semantic, target = self._mask_padding(semantic, target, lengths.to(wav.device))
        return self.head(semantic, target)

    def _mask_padding(self, semantic: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor):
        """Labels past the real samples → -100; continuous student/teacher frames there → 0."""
        teacher_mask = valid_frame_mask(lengths, self.sample_rate, self.teacher_rate, target.shape[-1])
        if target.dim() == 2:
            return semantic, target.long().masked_fill(~teacher_mask, IGNORE_LABEL)
        student_mask = valid_frame_mask(lengths, self.sample_rate, self.codec_rate, semantic.shape[-1])
        return semantic * student_mask[:, None], target * teacher_mask[:, None]


def build_distillation(spec: dict[str, Any] | None, codec, default_weight: float) -> tuple[DistillationSlot | None, float]:
    """``(slot, weight)`` from the module's ``distill`` config, or ``(None, 0.0)`` when it is off."""
    if not spec:
        return None, 0.0
    spec = dict(spec)
    weight = spec.pop("weight", None)
    slot = DistillationSlot(spec.pop("kind", None),  # None: pseudo_label for label caches, else d_axis
                            student_dim=codec.config.semantic_dim or codec.quantizer.dim,
                            codec_rate=codec.frame_rate, sample_rate=codec.sample_rate,
                            teacher=spec.pop("teacher", None), cache=spec.pop("cache", None))
    if spec:
        raise ValueError(f"unknown distill option(s) {sorted(spec)}; known: teacher, cache, kind, weight")
    return slot, float(default_weight if weight is None else weight)
