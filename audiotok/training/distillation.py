"""The distillation slot of the training module: a frozen teacher, a trainable head, one loss.

Config (the module's ``distill`` argument)::

    distill:
      teacher: "hubert:/models/hubert-base-ls960@avg"   # any audiotok.distill.build_teacher spec
      kind: d_axis            # d_axis (SpeechTokenizer) | t_axis | mimi_cosine (Mimi)
      weight: null            # null = the recipe's losses.distill weight

The teacher runs online on the training batch (resampled to its rate, no gradient); the head
(:class:`audiotok.distill.DistillationHead`) projects ``CodecOutput.semantic [B, D, F]`` to the teacher's
width, aligns the teacher's frames to the codec's and returns the loss. Label teachers (the offline
phone teacher) need whole-utterance transcripts that a random crop no longer matches; train those from a
feature cache (``audiotok distill cache``) instead.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


class DistillationSlot(nn.Module):
    """``forward(semantic[B, Ds, F], wav[B, 1, T]) -> scalar loss`` against a frozen teacher."""

    def __init__(self, teacher: Any, kind: str, student_dim: int, codec_rate: float, sample_rate: int):
        super().__init__()
        from audiotok.distill import DistillationHead, Teacher, build_teacher

        self.teacher = teacher if isinstance(teacher, Teacher) else build_teacher(teacher)
        if getattr(self.teacher, "output", "features") != "features":
            raise ValueError(
                f"teacher {teacher!r} outputs labels, which need whole-utterance transcripts; online "
                "distillation takes feature teachers (hubert/wavlm/hf): build a feature cache for label teachers")
        self.teacher.freeze()
        self.sample_rate = sample_rate
        self.head = DistillationHead(student_dim, self.teacher.dim, kind=kind,
                                     teacher_rate=self.teacher.frame_rate, codec_rate=codec_rate)

    def trainable_modules(self) -> list[nn.Module]:
        return [self.head]

    def forward(self, semantic: torch.Tensor, wav: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            audio = wav
            if self.teacher.sample_rate != self.sample_rate:
                from audiotok.data import resample

                audio = resample(wav, self.sample_rate, self.teacher.sample_rate)
            target = self.teacher(audio)
        return self.head(semantic, target)


def build_distillation(spec: dict[str, Any] | None, codec, default_weight: float) -> tuple[DistillationSlot | None, float]:
    """``(slot, weight)`` from the module's ``distill`` config, or ``(None, 0.0)`` when it is off."""
    if not spec:
        return None, 0.0
    spec = dict(spec)
    if "teacher" not in spec:
        raise ValueError("distill needs a 'teacher' (e.g. 'hubert:/models/hubert-base-ls960@avg')")
    weight = spec.pop("weight", None)
    slot = DistillationSlot(spec.pop("teacher"), spec.pop("kind", "d_axis"),
                            student_dim=codec.config.semantic_dim or codec.quantizer.dim,
                            codec_rate=codec.frame_rate, sample_rate=codec.sample_rate)
    if spec:
        raise ValueError(f"unknown distill option(s) {sorted(spec)}; known: teacher, kind, weight")
    return slot, float(default_weight if weight is None else weight)
