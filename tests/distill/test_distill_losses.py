"""Distillation losses, alignment between teacher and codec rates, and exact offset conversion."""
import math

import numpy as np
import pytest
import torch

from audiotok.distill.align import (
    align_labels_to_codec,
    align_to_codec,
    frame_to_sample,
    num_frames,
    sample_to_frame,
)
from audiotok.distill.head import DistillationHead
from audiotok.distill.losses import (
    d_axis_loss,
    mimi_cosine_loss,
    pseudo_label_loss,
    t_axis_loss,
)


def _d_axis_by_hand(student: np.ndarray, teacher: np.ndarray) -> float:
    """SpeechTokenizer's formula with explicit loops: -(1/D) Σ_d log σ(cos over time), batch-averaged."""
    batch, dims, _ = student.shape
    total = 0.0
    for b in range(batch):
        for d in range(dims):
            s, t = student[b, d], teacher[b, d]
            cosine = float(s @ t) / max(np.linalg.norm(s) * np.linalg.norm(t), 1e-8)
            total += -math.log(1.0 / (1.0 + math.exp(-cosine)))
    return total / (batch * dims)


def test_d_axis_loss_equals_hand_computation():
    rng = np.random.default_rng(0)
    student = rng.normal(size=(2, 3, 6))
    teacher = rng.normal(size=(2, 3, 7))  # one frame longer: cut to the shorter length
    loss = d_axis_loss(torch.tensor(student), torch.tensor(teacher))
    assert loss.item() == pytest.approx(_d_axis_by_hand(student, teacher[..., :6]), rel=1e-5)


def test_d_axis_loss_is_per_dimension_cosine_over_time():
    teacher = torch.randn(1, 4, 20)
    # scaling each dimension's time series by a positive factor keeps every per-dimension cosine = 1
    scaled = teacher * torch.tensor([0.1, 2.0, 5.0, 1.0])[None, :, None]
    assert d_axis_loss(scaled, teacher).item() == pytest.approx(-math.log(1 / (1 + math.exp(-1))), rel=1e-5)
    # while a per-timestep (t-axis) view sees different vectors
    assert t_axis_loss(scaled, teacher).item() > t_axis_loss(teacher, teacher).item()


def test_d_axis_loss_gradient_reaches_student():
    student = torch.randn(2, 8, 10, requires_grad=True)
    d_axis_loss(student, torch.randn(2, 8, 10)).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_t_axis_loss_sane():
    teacher = torch.randn(2, 5, 12)
    perfect = t_axis_loss(teacher.clone(), teacher)
    assert perfect.item() == pytest.approx(-math.log(1 / (1 + math.exp(-1))), rel=1e-5)  # L1 = 0, cos = 1
    assert t_axis_loss(-teacher, teacher).item() > perfect.item() + 1.0
    assert t_axis_loss(teacher, teacher, similarity_weight=0.0).item() == pytest.approx(0.0, abs=1e-6)


def test_pseudo_label_loss_sane():
    units = torch.randint(0, 10, (2, 15))
    confident = torch.nn.functional.one_hot(units, 10).transpose(1, 2).float() * 20
    assert pseudo_label_loss(confident, units).item() < 1e-3
    uniform = torch.zeros(2, 10, 16)  # one extra frame: cut
    assert pseudo_label_loss(uniform, units).item() == pytest.approx(math.log(10), rel=1e-5)


def test_mimi_cosine_loss_range():
    teacher = torch.randn(2, 6, 9)
    assert mimi_cosine_loss(3 * teacher, teacher).item() == pytest.approx(0.0, abs=1e-6)
    assert mimi_cosine_loss(-teacher, teacher).item() == pytest.approx(2.0, abs=1e-5)


def test_losses_refuse_mismatched_dims():
    with pytest.raises(ValueError, match=r"\[B, D, T\]"):
        d_axis_loss(torch.randn(1, 4, 10), torch.randn(1, 5, 10))


def test_align_equal_rates_cuts_to_shorter():
    # HuBERT on 48000 samples: floor((48000-400)/320)+1 = 149 frames; codec: ceil(48000/320) = 150
    teacher = torch.randn(1, 3, 149)
    assert align_to_codec(teacher, 50, 50, 150).shape[-1] == 149
    aligned = align_to_codec(torch.randn(1, 3, 151), 50, 50, 150)
    assert aligned.shape[-1] == 150
    labels = torch.arange(151)[None]
    assert torch.equal(align_labels_to_codec(labels, 50, 50, 150), labels[:, :150])


def test_align_50_to_12_5_hz_is_centred_average_pooling_kernel_8_stride_4():
    teacher = torch.randn(2, 3, 200)  # 4 s at 50 Hz
    pooled = align_to_codec(teacher, 50, 12.5, 50)
    assert pooled.shape == (2, 3, 50)
    for f in (0, 1, 10, 49):  # codec frame f averages teacher frames [4f-2, 4f+6) ∩ [0, 200)
        lo, hi = max(4 * f - 2, 0), min(4 * f + 6, 200)
        torch.testing.assert_close(pooled[..., f], teacher[..., lo:hi].mean(-1))
    assert align_to_codec(teacher, 50, 12.5, 40).shape[-1] == 40  # cut to the codec's frames


def test_align_labels_majority_at_lower_rate():
    labels = torch.tensor([[1, 1, 1, 2, 3, 3, 3, 4, 5]])
    assert align_labels_to_codec(labels, 50, 12.5, 10).tolist() == [[1, 3, 5]]


def test_align_non_integer_ratio_interpolates():
    teacher = torch.linspace(0, 1, 100).repeat(1, 2, 1)  # 2 s at 50 Hz
    aligned = align_to_codec(teacher, 50, 75, 150)
    assert aligned.shape == (1, 2, 150)
    assert torch.all(aligned[..., 1:] >= aligned[..., :-1])


def test_offset_conversion_is_exact():
    assert sample_to_frame(48000, 24000, 12.5) == 25
    assert sample_to_frame(47999, 24000, 12.5) == 24
    assert sample_to_frame(24000 * 3 + 480, 24000, 50) == 151
    assert sample_to_frame(16000, 16000, 50) == 50
    assert frame_to_sample(25, 24000, 12.5) == 48000
    assert num_frames(48000, 16000, 50) == 150 and num_frames(48001, 16000, 50) == 151
    for offset in range(0, 200_000, 997):  # 24 kHz crops, 50 Hz teacher: same as 480-sample hops
        assert sample_to_frame(offset, 24000, 50) == offset // 480
        assert sample_to_frame(offset, 44100, 44100 / 512) == offset // 512


@pytest.mark.parametrize(
    "kind,student_dim,teacher_dim,teacher_rate,codec_rate",
    [("d_axis", 16, 12, 50, 50), ("t_axis", 12, 12, 50, 50), ("mimi_cosine", 8, 16, 50, 12.5)],
)
def test_distillation_head_continuous(kind, student_dim, teacher_dim, teacher_rate, codec_rate):
    torch.manual_seed(0)
    head = DistillationHead(student_dim, teacher_dim, kind, teacher_rate, codec_rate)
    frames = 25 if codec_rate == 12.5 else 100
    student = torch.randn(2, student_dim, frames, requires_grad=True)
    teacher = torch.randn(2, teacher_dim, 99)  # teacher off by one at 50 Hz
    loss = head(student, teacher)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert student.grad.abs().sum() > 0
    if student_dim == teacher_dim and kind != "mimi_cosine":
        assert isinstance(head.projection, torch.nn.Identity)  # as SpeechTokenizer when dims match


def test_distillation_head_pseudo_labels_learns():
    torch.manual_seed(0)
    head = DistillationHead(64, 5, "pseudo_label")
    student = torch.randn(1, 64, 40)  # 40 frames in 64 dims: linearly separable
    units = torch.randint(0, 5, (1, 41))
    optimizer = torch.optim.Adam(head.parameters(), lr=0.1)
    first = head(student, units).item()
    for _ in range(50):
        optimizer.zero_grad()
        loss = head(student, units)
        loss.backward()
        optimizer.step()
    assert loss.item() < first / 2


def test_distillation_head_rejects_unknown_kind():
    with pytest.raises(ValueError, match="d_axis"):
        DistillationHead(4, 4, "nope")
