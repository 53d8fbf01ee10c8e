"""The trainable part of distillation: a projection from the student's semantic features to the teacher.

SpeechTokenizer projects RVQ-1's straight-through output 1024 → 768 (identity when dims match) for
its D-axis loss; Mimi puts a linear 512 → 1024 head on the semantic quantizer's output for its cosine
loss; the pseudo-label variant classifies each frame into one of ``n_units`` k-means units.
"""
from __future__ import annotations

import torch
from torch import nn

from audiotok.distill.align import Rate, align_labels_to_codec, align_to_codec
from audiotok.distill.losses import LOSSES


class DistillationHead(nn.Module):
    """``forward(student[B, Ds, F], target) -> scalar loss``.

    ``target`` is teacher features ``[B, Dt, Tt]`` (continuous kinds) or unit ids ``[B, Tt]``
    (``kind="pseudo_label"``), at ``teacher_rate``; they are aligned to ``codec_rate`` (cut for equal
    rates, non-causal average pooling / label majority for integer ratios) before the loss.

    kinds: ``d_axis`` (SpeechTokenizer), ``t_axis``, ``mimi_cosine`` (Mimi), ``pseudo_label``
    (``teacher_dim`` is then the number of units).
    """

    def __init__(
        self,
        student_dim: int,
        teacher_dim: int,
        kind: str = "d_axis",
        teacher_rate: Rate = 50,
        codec_rate: Rate = 50,
    ) -> None:
        super().__init__()
        if kind not in LOSSES:
            raise ValueError(f"unknown distillation loss kind {kind!r}; choose one of {sorted(LOSSES)}")
        self.kind = kind
        self.teacher_rate = teacher_rate
        self.codec_rate = codec_rate
        identity_ok = kind in ("d_axis", "t_axis") and student_dim == teacher_dim  # as SpeechTokenizer
        self.projection = nn.Identity() if identity_ok else nn.Linear(student_dim, teacher_dim)

    def project(self, student: torch.Tensor) -> torch.Tensor:
        """``[B, Ds, F]`` → ``[B, Dt, F]`` (logits ``[B, K, F]`` for pseudo-labels)."""
        return self.projection(student.transpose(1, 2)).transpose(1, 2)

    def forward(self, student: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        projected = self.project(student)
        frames = projected.shape[-1]
        if self.kind == "pseudo_label":
            target = align_labels_to_codec(target, self.teacher_rate, self.codec_rate, frames)
            return LOSSES[self.kind](projected, target)
        target = align_to_codec(target.to(projected.dtype), self.teacher_rate, self.codec_rate, frames)
        return LOSSES[self.kind](projected, target)
