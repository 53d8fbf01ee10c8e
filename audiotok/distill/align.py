"""Time alignment between teacher features and codec frames, and exact crop-offset conversion.

Layout convention for the whole package: features ``[B, D, T]`` (time last), labels ``[B, T]``.

Rates are handled as exact fractions so that 12.5 Hz, 50 Hz, 75 Hz, 16 kHz and 24 kHz never meet
floating-point rounding when a crop offset in samples becomes a frame index.
"""
from __future__ import annotations

from fractions import Fraction

import torch
import torch.nn.functional as F

Rate = int | float | Fraction


def exact_rate(rate: Rate) -> Fraction:
    """A rate as an exact fraction (floats such as 12.5 or 24000/320 become their intended ratio)."""
    if isinstance(rate, Fraction):
        return rate
    if isinstance(rate, int):
        return Fraction(rate)
    return Fraction(rate).limit_denominator(1_000_000)


def sample_to_frame(offset: int, sample_rate: Rate, frame_rate: Rate) -> int:
    """Index of the frame that contains sample ``offset``: ``floor(offset * frame_rate / sample_rate)``.

    Integer arithmetic on exact fractions, so e.g. 24 kHz sample 48000 → 12.5 Hz frame 25 exactly.
    """
    if offset < 0:
        raise ValueError(f"sample offset must be >= 0, got {offset}")
    return int(offset * exact_rate(frame_rate) / exact_rate(sample_rate))  # int() floors for >= 0


def frame_to_sample(frame: int, sample_rate: Rate, frame_rate: Rate) -> int:
    """First sample of ``frame``: ``ceil(frame * sample_rate / frame_rate)`` (inverse of the above)."""
    value = frame * exact_rate(sample_rate) / exact_rate(frame_rate)
    return -((-value.numerator) // value.denominator)


def num_frames(num_samples: int, sample_rate: Rate, frame_rate: Rate) -> int:
    """Frames that cover ``num_samples`` samples: ``ceil(num_samples * frame_rate / sample_rate)``.

    The codec convention (``F = ceil(T / hop)``); used for crop lengths.
    """
    value = num_samples * exact_rate(frame_rate) / exact_rate(sample_rate)
    return -((-value.numerator) // value.denominator)


def pool_factor(teacher_rate: Rate, codec_rate: Rate) -> Fraction:
    """How many teacher frames make one codec frame (``teacher_rate / codec_rate``)."""
    return exact_rate(teacher_rate) / exact_rate(codec_rate)


def align_to_codec(teacher: torch.Tensor, teacher_rate: Rate, codec_rate: Rate, codec_frames: int) -> torch.Tensor:
    """Bring teacher features ``[B, D, Tt]`` to the codec frame rate: ``[B, D, min(F', codec_frames)]``.

    * equal rates: no resampling; just cut to the shorter length (HuBERT gives ``floor((N-400)/320)+1``
      frames where a 320-hop codec gives ``ceil(N/320)``: an off-by-one or two at the end).
    * teacher rate an integer ``k >= 2`` times the codec rate: non-causal average pooling with kernel
      ``2k`` and stride ``k`` (Mimi: kernel 8, stride 4 for 50 → 12.5 Hz). Codec frame ``f`` averages
      teacher frames ``[f*k - k//2, f*k - k//2 + 2k)``, a window centred on the frame's own span
      (exactly centred for even ``k``); frames beyond the edges are left out of the average.
    * any other ratio (teacher slower than the codec, or a non-integer ratio such as 50 → 75 Hz):
      linear interpolation in time to ``round(Tt * codec_rate / teacher_rate)`` frames.

    The result is then cut to ``codec_frames``; losses cut the student to the result's length.
    """
    if teacher.dim() != 3:
        raise ValueError(f"teacher features must be [B, D, T], got shape {tuple(teacher.shape)}")
    ratio = pool_factor(teacher_rate, codec_rate)
    if ratio == 1:
        aligned = teacher
    elif ratio.denominator == 1:
        k = ratio.numerator
        aligned = F.avg_pool1d(
            teacher.float(), kernel_size=2 * k, stride=k, padding=k // 2, count_include_pad=False, ceil_mode=True
        ).to(teacher.dtype)
        aligned = aligned[..., : num_frames(teacher.shape[-1], teacher_rate, codec_rate)]
    else:
        target = max(1, round(teacher.shape[-1] / ratio))
        aligned = F.interpolate(teacher.float(), size=target, mode="linear", align_corners=False).to(teacher.dtype)
    return aligned[..., :codec_frames]


def align_labels_to_codec(labels: torch.Tensor, teacher_rate: Rate, codec_rate: Rate, codec_frames: int) -> torch.Tensor:
    """Frame labels ``[B, Tt]`` (int) at the codec rate: ``[B, min(F', codec_frames)]``.

    Equal rates: cut. Integer ratio ``k``: the most frequent label in each group of ``k`` teacher
    frames (the last group completed by
    repeating the last label). Other ratios: nearest teacher frame to each codec frame's centre.
    """
    if labels.dim() != 2:
        raise ValueError(f"labels must be [B, T], got shape {tuple(labels.shape)}")
    ratio = pool_factor(teacher_rate, codec_rate)
    if ratio == 1:
        aligned = labels
    elif ratio.denominator == 1:
        k = ratio.numerator
        frames = num_frames(labels.shape[-1], teacher_rate, codec_rate)
        missing = frames * k - labels.shape[-1]
        padded = torch.cat([labels, labels[:, -1:].expand(-1, missing)], dim=-1)  # repeat the last label
        groups = padded.reshape(labels.shape[0], frames, k)
        aligned = torch.mode(groups, dim=-1).values
    else:
        target = max(1, round(labels.shape[-1] / ratio))
        centres = ((torch.arange(target) + 0.5) * float(ratio)).long().clamp(max=labels.shape[-1] - 1)
        aligned = labels[:, centres]
    return aligned[..., :codec_frames]
