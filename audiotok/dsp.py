"""Signal-processing helpers on plain ``torch.stft``: mel filterbanks, STFT, mel spectrograms.

No torchaudio or librosa at runtime. The filterbank follows librosa's definition (HTK or Slaney mel
scale, optional Slaney area normalisation), which is also what torchaudio computes for
``mel_scale="htk", norm=None``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

PADDINGS = ("center", "same", "none")

# Slaney (Auditory Toolbox) mel scale: linear below 1 kHz, logarithmic above.
_SLANEY_F_SP = 200.0 / 3.0
_SLANEY_MIN_LOG_HZ = 1000.0
_SLANEY_MIN_LOG_MEL = _SLANEY_MIN_LOG_HZ / _SLANEY_F_SP
_SLANEY_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(freqs: Tensor, scale: str = "htk") -> Tensor:
    """Frequencies in Hz -> mels on the ``"htk"`` or ``"slaney"`` scale."""
    if scale == "htk":
        return 2595.0 * torch.log10(1.0 + freqs / 700.0)
    if scale == "slaney":
        linear = freqs / _SLANEY_F_SP
        log = _SLANEY_MIN_LOG_MEL + torch.log(freqs.clamp(min=_SLANEY_MIN_LOG_HZ) / _SLANEY_MIN_LOG_HZ) / _SLANEY_LOGSTEP
        return torch.where(freqs >= _SLANEY_MIN_LOG_HZ, log, linear)
    raise ValueError(f"unknown mel scale {scale!r}; use 'htk' or 'slaney'")


def mel_to_hz(mels: Tensor, scale: str = "htk") -> Tensor:
    """Inverse of :func:`hz_to_mel`."""
    if scale == "htk":
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    if scale == "slaney":
        linear = _SLANEY_F_SP * mels
        log = _SLANEY_MIN_LOG_HZ * torch.exp(_SLANEY_LOGSTEP * (mels - _SLANEY_MIN_LOG_MEL))
        return torch.where(mels >= _SLANEY_MIN_LOG_MEL, log, linear)
    raise ValueError(f"unknown mel scale {scale!r}; use 'htk' or 'slaney'")


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    fmin: float = 0.0,
    fmax: float | None = None,
    scale: str = "slaney",
    norm: str | None = "slaney",
) -> Tensor:
    """Triangular mel filters ``[n_mels, n_fft // 2 + 1]`` (float32), as librosa's ``filters.mel``.

    ``scale="htk"`` / ``"slaney"`` picks the mel scale (librosa ``htk=True/False``); ``norm="slaney"``
    divides each triangle by its width in Hz (constant area), ``None`` leaves peaks at 1.
    With many mels and a small ``n_fft`` some filters are empty (all zero), as in the references.
    """
    if norm not in ("slaney", None):
        raise ValueError(f"unknown mel norm {norm!r}; use 'slaney' or None")
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    if not 0.0 <= fmin < fmax <= sample_rate / 2.0:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate/2, got fmin={fmin}, fmax={fmax}, sr={sample_rate}")
    fft_freqs = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)
    mel_edges = torch.linspace(
        float(hz_to_mel(torch.tensor(float(fmin), dtype=torch.float64), scale)),
        float(hz_to_mel(torch.tensor(fmax, dtype=torch.float64), scale)),
        n_mels + 2,
        dtype=torch.float64,
    )
    hz_edges = mel_to_hz(mel_edges, scale)  # [n_mels + 2]
    widths = hz_edges[1:] - hz_edges[:-1]  # [n_mels + 1]
    ramps = hz_edges[:, None] - fft_freqs[None, :]  # [n_mels + 2, F]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    if norm == "slaney":
        weights = weights * (2.0 / (hz_edges[2:] - hz_edges[:-2]))[:, None]
    return weights.float()


def make_window(kind: str, length: int, device=None, dtype=torch.float32) -> Tensor:
    """Analysis window: ``"hann"`` (periodic, as torch/torchaudio default) or ``"rect"``."""
    if kind == "hann":
        return torch.hann_window(length, device=device, dtype=dtype)
    if kind == "rect":
        return torch.ones(length, device=device, dtype=dtype)
    raise ValueError(f"unknown window {kind!r}; use 'hann' or 'rect'")


def stft(
    wav: Tensor,
    n_fft: int,
    hop_length: int,
    win_length: int | None = None,
    window: Tensor | str = "hann",
    padding: str = "center",
    normalized: bool = False,
) -> Tensor:
    """Complex STFT ``[B, n_fft // 2 + 1, frames]`` of ``wav`` ``[B, 1, T]`` or ``[B, T]``.

    ``padding``: ``"center"`` reflect-pads ``n_fft // 2`` each side (torch ``center=True``);
    ``"same"`` reflect-pads ``(n_fft - hop) // 2`` each side (HiFi-GAN / Vocos "same", about T/hop
    frames); ``"none"`` takes frames only where the window fits (EnCodec's MS-STFT discriminator).
    ``normalized`` divides by the window's L2 norm (torchaudio's ``normalized=True``, which differs
    from ``torch.stft(normalized=True)``'s 1/sqrt(n_fft) for non-rectangular windows).
    """
    if padding not in PADDINGS:
        raise ValueError(f"unknown padding {padding!r}; use one of {PADDINGS}")
    if wav.dim() == 3:
        if wav.shape[1] != 1:
            raise ValueError(f"expected mono audio [B, 1, T], got shape {tuple(wav.shape)}; mix down first")
        wav = wav[:, 0]
    elif wav.dim() != 2:
        raise ValueError(f"expected audio [B, 1, T] or [B, T], got shape {tuple(wav.shape)}")
    win_length = n_fft if win_length is None else win_length
    if isinstance(window, str):
        window = make_window(window, win_length, device=wav.device, dtype=wav.dtype)
    if padding == "same":
        pad = (n_fft - hop_length) // 2
        wav = torch.nn.functional.pad(wav[:, None], (pad, pad), mode="reflect")[:, 0]
    spec = torch.stft(
        wav,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=window,
        center=padding == "center",
        pad_mode="reflect",
        normalized=False,
        return_complex=True,
    )
    if normalized:
        spec = spec / window.pow(2).sum().sqrt()
    return spec


class MelSpectrogram(nn.Module):
    """Mel spectrogram ``[B, n_mels, frames]`` of audio ``[B, 1, T]`` (window and filters as buffers).

    ``power`` 1 gives magnitude mels, 2 power mels. With ``log=True`` returns
    ``log(clamp(mel, clamp_min))`` (natural log, or base 10 with ``log10=True``).
    """

    def __init__(
        self,
        sample_rate: int,
        n_fft: int,
        hop_length: int,
        win_length: int | None = None,
        n_mels: int = 80,
        fmin: float = 0.0,
        fmax: float | None = None,
        power: float = 1.0,
        mel_scale: str = "slaney",
        norm: str | None = "slaney",
        padding: str = "center",
        window: str = "hann",
        log: bool = True,
        log10: bool = False,
        clamp_min: float = 1e-5,
    ):
        super().__init__()
        if power not in (1.0, 2.0):
            raise ValueError(f"power must be 1 (magnitude) or 2 (power), got {power}")
        self.sample_rate, self.n_fft, self.hop_length = sample_rate, n_fft, hop_length
        self.win_length = n_fft if win_length is None else win_length
        self.power, self.padding = power, padding
        self.log, self.log10, self.clamp_min = log, log10, clamp_min
        self.register_buffer("window", make_window(window, self.win_length), persistent=False)
        self.register_buffer(
            "filters", mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, mel_scale, norm), persistent=False
        )

    def forward(self, wav: Tensor) -> Tensor:
        spec = stft(wav, self.n_fft, self.hop_length, self.win_length, self.window.to(wav.dtype), self.padding)
        spec = spec.abs() if self.power == 1.0 else spec.real.square() + spec.imag.square()
        mel = torch.matmul(self.filters.to(spec.dtype), spec)
        if not self.log:
            return mel
        mel = mel.clamp(min=self.clamp_min)
        return torch.log10(mel) if self.log10 else torch.log(mel)
