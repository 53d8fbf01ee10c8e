"""Waveform transforms used on load: downmix, resample, loudness normalisation, fixed-length crops."""
from __future__ import annotations

import numpy as np
import torch


def to_mono(wav: torch.Tensor) -> torch.Tensor:
    """Average the channels of ``[C, T]`` to ``[1, T]`` (a ``[T]`` input becomes ``[1, T]``)."""
    if wav.dim() == 1:
        return wav.unsqueeze(0)
    return wav.mean(dim=-2, keepdim=True)


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Resample ``[..., T]`` from ``orig_sr`` to ``new_sr`` with soxr (high quality).

    The output has ``ceil(T * new_sr / orig_sr)`` samples (soxr's length) and the input's dtype.
    """
    import soxr

    orig_sr, new_sr = int(orig_sr), int(new_sr)
    if orig_sr == new_sr:
        return wav
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    lead, length = wav.shape[:-1], wav.shape[-1]
    frames = wav.detach().reshape(-1, length).to(torch.float32).cpu().numpy().T  # [T, channels]
    out = soxr.resample(np.ascontiguousarray(frames), orig_sr, new_sr, quality="HQ")
    out = torch.from_numpy(np.ascontiguousarray(out.T)).to(wav.dtype)
    return out.reshape(*lead, out.shape[-1])


def normalize_loudness(
    wav: torch.Tensor, target_dbfs: float = -23.0, max_peak: float = 0.99
) -> torch.Tensor:
    """Scale ``[..., T]`` so its RMS level is ``target_dbfs``, without letting the peak pass ``max_peak``.

    RMS (not K-weighted LUFS): enough to even out files recorded at very different levels.
    Silent input is returned unchanged.
    """
    rms = wav.pow(2).mean().sqrt()
    if rms <= 1e-8:
        return wav
    gain = 10.0 ** (target_dbfs / 20.0) / rms
    peak = wav.abs().max() * gain
    if peak > max_peak:
        gain = gain * max_peak / peak
    return wav * gain


def crop_or_pad(
    wav: torch.Tensor,
    segment_length: int,
    random: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, int]:
    """Cut ``[C, T]`` to exactly ``segment_length`` samples.

    Longer input: a crop at a random offset (or the start when ``random=False``). Shorter input:
    zero padding at the end. Returns ``(segment [C, segment_length], valid)`` where ``valid`` is the
    number of real (unpadded) samples at the start of the segment.
    """
    length = wav.shape[-1]
    if length >= segment_length:
        start = 0
        if random and length > segment_length:
            start = int(torch.randint(0, length - segment_length + 1, (1,), generator=generator))
        return wav[..., start : start + segment_length], segment_length
    pad = wav.new_zeros(*wav.shape[:-1], segment_length - length)
    return torch.cat([wav, pad], dim=-1), length


def length_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """``[B, max_length]`` bool mask, True on real samples (HF ``padding_mask`` convention)."""
    return torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]
