"""Signal metrics between a reference and its resynthesis, both mono ``[T]`` at one sample rate.

Mel and multi-resolution STFT distances reuse the training code (:mod:`audiotok.dsp`,
:func:`audiotok.training.losses.multi_resolution_stft_distance`); SI-SDR is computed here; PESQ
(ITU P.862 via ``pesq``) and STOI (``pystoi``) wrap their packages. Every metric that fails on an item
(silence, too short) comes back as :class:`~audiotok.benchmarks.scores.Missing` with the reason, including
the cases where a package answers with a placeholder instead of failing: pystoi returns ``1e-5`` (with
a warning) when under 30 frames (384 ms) of non-silent audio remain, which would otherwise be averaged
as "unintelligible".
"""
from __future__ import annotations

import functools
import warnings

import numpy as np
import torch

from audiotok.benchmarks.scores import MetricUndefined, Missing, measure

METRIC_RATE = 16_000  # every signal metric is computed at 16 kHz (Llasa / X-Codec-2.0 protocol)
CODEC_METRICS = ("mel_distance", "mrstft_distance", "si_sdr", "pesq_wb", "pesq_nb", "stoi")
STOI_PLACEHOLDER = 1e-5  # what pystoi returns when it cannot compute STOI
PESQ_RANGE = (-0.5, 4.65)  # P.862 raw scores and MOS-LQO (1.02..4.64) both lie inside
HIGHER_IS_BETTER = {"mel_distance": False, "mrstft_distance": False, "si_sdr": True, "pesq_wb": True,
                    "pesq_nb": True, "stoi": True}


def _as_tensor(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32)).reshape(-1)


def _cut(ref, est) -> tuple[torch.Tensor, torch.Tensor]:
    ref, est = _as_tensor(ref), _as_tensor(est)
    n = min(ref.numel(), est.numel())
    return ref[:n], est[:n]


@functools.lru_cache(maxsize=4)
def _mel(sample_rate: int):
    from audiotok.dsp import MelSpectrogram

    return MelSpectrogram(sample_rate, n_fft=1024, hop_length=256, n_mels=80, log=True, log10=True)


def mel_distance(ref, est, sample_rate: int = METRIC_RATE) -> float:
    """Mean absolute difference of log10 mel spectrograms (80 mels, 1024/256); 0 when identical."""
    ref, est = _cut(ref, est)
    mel = _mel(sample_rate)
    with torch.no_grad():
        return float((mel(ref[None, None]) - mel(est[None, None])).abs().mean())


def mrstft_distance(ref, est, sample_rate: int = METRIC_RATE) -> float:
    """Spectral convergence + log-magnitude L1 over three STFT resolutions; 0 when identical."""
    from audiotok.training.losses import multi_resolution_stft_distance

    ref, est = _cut(ref, est)
    with torch.no_grad():
        parts = multi_resolution_stft_distance(est[None, None], ref[None, None])
    return float(parts["spectral_convergence"] + parts["log_magnitude"])


def si_sdr(ref, est, eps: float = 1e-8) -> float:
    """Scale-invariant SDR in dB: ``10 log10(|a s|² / |a s - e|²)`` with ``a = <e, s> / |s|²``
    (both zero-meaned). Raises on a silent reference, where it is undefined."""
    ref, est = _cut(ref, est)
    ref, est = ref.double() - ref.double().mean(), est.double() - est.double().mean()
    energy = float(ref.square().sum())
    if energy < eps:
        raise MetricUndefined("silent reference: SI-SDR is undefined")
    if float(est.square().sum()) < eps * 1e-6:
        raise MetricUndefined("silent resynthesis: SI-SDR is undefined (0/0)")
    target = (est @ ref) / energy * ref
    noise = est - target
    return float(10 * torch.log10(target.square().sum() / noise.square().sum().clamp(min=eps * 1e-6)))


def pesq_score(ref, est, sample_rate: int = METRIC_RATE, mode: str = "wb") -> float:
    """PESQ MOS-LQO: ``mode="wb"`` at 16 kHz, ``"nb"`` at 8 kHz (resampled). Raises the package's
    ``NoUtterancesError`` on silence or too-short audio."""
    from pesq import pesq

    from audiotok.data import resample

    ref, est = _cut(ref, est)
    rate = 16_000 if mode == "wb" else 8_000
    ref, est = resample(ref, sample_rate, rate), resample(est, sample_rate, rate)
    with np.errstate(all="ignore"):  # pesq divides by the peak: silence warns before it raises
        value = float(pesq(rate, ref.numpy().astype(np.float64), est.numpy().astype(np.float64), mode))
    if not PESQ_RANGE[0] <= value <= PESQ_RANGE[1]:  # e.g. -1/-2 error codes of on_error=RETURN_VALUES
        raise MetricUndefined(f"PESQ returned {value:g}, outside its scale {PESQ_RANGE}: an error code, not a score")
    return value


def stoi_score(ref, est, sample_rate: int = METRIC_RATE) -> float:
    """Short-time objective intelligibility (``pystoi``, not extended), 0..1.

    Raises :class:`MetricUndefined` where pystoi would return its placeholder ``1e-5``: fewer than 30
    STFT frames (384 ms at 10 kHz) left once silent frames are removed (a short or mostly silent clip).
    """
    from pystoi import stoi

    ref, est = _cut(ref, est)
    if float(ref.abs().max()) == 0.0:
        raise MetricUndefined("silent reference: STOI is undefined")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(stoi(ref.numpy().astype(np.float64), est.numpy().astype(np.float64), sample_rate,
                           extended=False))
    if any("Not enough STFT frames" in str(w.message) for w in caught) or value == STOI_PLACEHOLDER:
        raise MetricUndefined(
            f"too short for STOI: under 30 frames (384 ms) of non-silent speech in {ref.numel() / sample_rate:.2f} s "
            f"(pystoi returns a placeholder {STOI_PLACEHOLDER:g} there, not a score)")
    return value


def codec_metrics(ref, est, sample_rate: int = METRIC_RATE) -> dict[str, float | Missing]:
    """All of :data:`CODEC_METRICS` for one item, each a number or :class:`Missing`."""
    return {
        "mel_distance": measure(lambda: mel_distance(ref, est, sample_rate)),
        "mrstft_distance": measure(lambda: mrstft_distance(ref, est, sample_rate)),
        "si_sdr": measure(lambda: si_sdr(ref, est)),
        "pesq_wb": measure(lambda: pesq_score(ref, est, sample_rate, "wb")),
        "pesq_nb": measure(lambda: pesq_score(ref, est, sample_rate, "nb")),
        "stoi": measure(lambda: stoi_score(ref, est, sample_rate)),
    }
