"""Semantic distillation losses. All take features as ``[B, D, T]`` (time last) and labels as ``[B, T]``.

Student and teacher must already be at the same frame rate (see ``align.align_to_codec``); every loss
cuts both to the shorter length, which absorbs the off-by-one frame counts between a codec
(``ceil(N/hop)``) and a convolutional teacher (``floor((N-400)/320)+1``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def cut_to_shorter(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut two time-last tensors to their common length along the last axis."""
    length = min(a.shape[-1], b.shape[-1])
    return a[..., :length], b[..., :length]


def _check_features(student: torch.Tensor, teacher: torch.Tensor) -> None:
    if student.dim() != 3 or teacher.dim() != 3 or student.shape[:2] != teacher.shape[:2]:
        raise ValueError(
            f"student and teacher features must both be [B, D, T] with equal B and D (project the "
            f"student first); got {tuple(student.shape)} and {tuple(teacher.shape)}"
        )


def d_axis_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """SpeechTokenizer's continuous loss: ``-(1/D) Σ_d log σ(cos(student[:, d, :], teacher[:, d, :]))``.

    For each feature dimension ``d`` the cosine compares two length-T time series; the loss is the
    mean over batch and dimensions of ``-log σ(cos)``. ``[B, D, T]`` inputs, scalar output.
    """
    _check_features(student, teacher)
    student, teacher = cut_to_shorter(student.float(), teacher.float())
    cosine = F.cosine_similarity(student, teacher, dim=-1)  # over time → [B, D]
    return -F.logsigmoid(cosine).mean()


def t_axis_loss(student: torch.Tensor, teacher: torch.Tensor, similarity_weight: float = 1.0) -> torch.Tensor:
    """Per-timestep (DistilHuBERT-style) baseline: ``L1 + λ · mean_t(-log σ(cos over features))``.

    The cosine compares the D-dim vectors at each timestep. (SpeechTokenizer's release crashes on
    this option: it calls ``torch.functional.l1_loss``, which does not exist.)
    """
    _check_features(student, teacher)
    student, teacher = cut_to_shorter(student.float(), teacher.float())
    cosine = F.cosine_similarity(student, teacher, dim=1)  # over features → [B, T]
    return F.l1_loss(student, teacher) + similarity_weight * -F.logsigmoid(cosine).mean()


def pseudo_label_loss(logits: torch.Tensor, units: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Cross-entropy from per-frame logits ``[B, K, T]`` to unit ids ``[B, T]`` (k-means or phones)."""
    if logits.dim() != 3 or units.dim() != 2 or logits.shape[0] != units.shape[0]:
        raise ValueError(f"need logits [B, K, T] and units [B, T]; got {tuple(logits.shape)} and {tuple(units.shape)}")
    logits, units = cut_to_shorter(logits.float(), units.long())
    return F.cross_entropy(logits, units, ignore_index=ignore_index)


def mimi_cosine_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mimi's loss: cosine distance ``1 - cos`` between per-frame feature vectors, averaged over B and T.

    The teacher is expected already average-pooled to the codec rate (``align_to_codec``).
    """
    _check_features(student, teacher)
    student, teacher = cut_to_shorter(student.float(), teacher.float())
    return (1.0 - F.cosine_similarity(student, teacher, dim=1)).mean()


LOSSES = {
    "d_axis": d_axis_loss,
    "t_axis": t_axis_loss,
    "mimi_cosine": mimi_cosine_loss,
    "pseudo_label": pseudo_label_loss,
}
