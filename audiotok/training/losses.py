"""Reconstruction losses (multi-scale mel, waveform L1, multi-resolution STFT) and EnCodec's Balancer.

Audio is ``[B, 1, T]``; prediction and target are cut to the shorter length where they differ.
Mel presets reproduce the reference *relative* per-scale weights; the overall mel weight of the
recipe (e.g. WavTokenizer 45, DAC 15, EnCodec 2) belongs to the trainer's loss weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiotok.dsp import MelSpectrogram, stft
from audiotok.registry import Registry


def cut_to_shorter(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Trim both signals ``[..., T]`` to the shorter length."""
    length = min(pred.shape[-1], target.shape[-1])
    return pred[..., :length], target[..., :length]


def waveform_l1_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute sample difference (SpeechTokenizer x500, EnCodec x0.1)."""
    pred, target = cut_to_shorter(pred, target)
    return F.l1_loss(pred, target)


@dataclass(frozen=True)
class MelScale:
    """One mel resolution: STFT geometry, mel count and this scale's weight in the sum."""

    n_fft: int
    hop_length: int
    win_length: int
    n_mels: int
    weight: float = 1.0


class MultiScaleMelLoss(nn.Module):
    """Weighted sum over mel resolutions of ``log_l1 * L1(log mel) + log_l2 * MSE(log mel) + linear_l1 * L1(mel)``.

    Log mel = ``log(clamp(mel, clamp_min))`` (base 10 with ``log10``). Returns ``(loss, {"mel_<n_fft>": term})``.
    """

    def __init__(
        self,
        sample_rate: int,
        scales: Sequence[MelScale],
        fmin: float = 0.0,
        fmax: float | None = None,
        power: float = 1.0,
        mel_scale: str = "slaney",
        norm: str | None = "slaney",
        padding: str = "center",
        clamp_min: float = 1e-5,
        log10: bool = False,
        log_l1: float = 1.0,
        log_l2: float = 0.0,
        linear_l1: float = 0.0,
    ):
        super().__init__()
        if not scales:
            raise ValueError("MultiScaleMelLoss needs at least one MelScale")
        self.scales = tuple(scales)
        self.clamp_min, self.log10 = clamp_min, log10
        self.log_l1, self.log_l2, self.linear_l1 = log_l1, log_l2, linear_l1
        self.mels = nn.ModuleList(
            MelSpectrogram(
                sample_rate, s.n_fft, s.hop_length, s.win_length, s.n_mels, fmin, fmax, power,
                mel_scale, norm, padding, log=False,
            )
            for s in self.scales
        )

    def _log(self, mel: Tensor) -> Tensor:
        mel = mel.clamp(min=self.clamp_min)
        return torch.log10(mel) if self.log10 else torch.log(mel)

    def forward(self, pred: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        pred, target = cut_to_shorter(pred, target)
        total, terms = pred.new_zeros(()), {}
        for scale, mel in zip(self.scales, self.mels):
            mel_pred, mel_target = mel(pred), mel(target)
            term = pred.new_zeros(())
            if self.log_l1 or self.log_l2:
                log_pred, log_target = self._log(mel_pred), self._log(mel_target)
                if self.log_l1:
                    term = term + self.log_l1 * F.l1_loss(log_pred, log_target)
                if self.log_l2:
                    term = term + self.log_l2 * F.mse_loss(log_pred, log_target)
            if self.linear_l1:
                term = term + self.linear_l1 * F.l1_loss(mel_pred, mel_target)
            terms[f"mel_{scale.n_fft}"] = term.detach()
            total = total + scale.weight * term
        return total, terms

    @classmethod
    def speechtokenizer(cls, sample_rate: int = 16000, l2: bool = False) -> MultiScaleMelLoss:
        """SpeechTokenizer trainer: n_fft 1024/512/256/128, hop 240/120/60/30, 80 mels, weights 45,1,1,1.

        HTK scale with Slaney norm, magnitude, ln(clamp 1e-5), "same" reflect padding (center False).
        ``l2=True`` adds the paper's L2 term on the log mel.
        """
        scales = [MelScale(n, h, n, 80, w) for n, h, w in ((1024, 240, 45), (512, 120, 1), (256, 60, 1), (128, 30, 1))]
        return cls(sample_rate, scales, mel_scale="htk", norm="slaney", padding="same", log_l2=1.0 if l2 else 0.0)

    @classmethod
    def wavtokenizer(cls, sample_rate: int = 24000) -> MultiScaleMelLoss:
        """WavTokenizer/Vocos: one scale n_fft 1024, hop 256, 100 mels (HTK, no norm), magnitude,
        centred, ln(clamp 1e-7). Trainer weight 45."""
        return cls(sample_rate, [MelScale(1024, 256, 1024, 100)], mel_scale="htk", norm=None, clamp_min=1e-7)

    @classmethod
    def encodec(cls, sample_rate: int = 24000, windows: Sequence[int] = (64, 128, 256, 512, 1024)) -> MultiScaleMelLoss:
        """audiocraft ``msspec``: windows 2^6..2^10 (paper: 2^5..2^11), hop w/4, 64 mels, fmin 64,
        power mel; per scale L1(mel) + MSE(log10 mel), normalised by the sum of (alpha + 1). Trainer weight 2."""
        scales = [MelScale(w, w // 4, w, 64, 1.0 / (2 * len(windows))) for w in windows]
        return cls(
            sample_rate, scales, fmin=64.0, power=2.0, mel_scale="htk", norm=None, padding="same",
            log10=True, log_l1=0.0, log_l2=1.0, linear_l1=1.0,
        )

    @classmethod
    def three_scale(cls, sample_rate: int = 24000) -> MultiScaleMelLoss:
        """n_fft 512/1024/2048, hop n/4, 40/64/80 Slaney mels, L1 on ln(clamp 1e-5) of the magnitude mel,
        scales summed: the loss of the training calibration loop (shared/tools/plain_loop.py), used by
        the tiny CPU configs. Fine and coarse scales together track both the envelope and the harmonics."""
        scales = [MelScale(n, n // 4, n, m) for n, m in ((512, 40), (1024, 64), (2048, 80))]
        return cls(sample_rate, scales)

    @classmethod
    def dac(cls, sample_rate: int = 24000) -> MultiScaleMelLoss:
        """DAC: 7 scales, windows 32..2048, mels 5..320, hop w/4, Slaney mels, L1 on log10(clamp 1e-5)
        of the magnitude mel. Trainer weight 15."""
        windows, n_mels = (32, 64, 128, 256, 512, 1024, 2048), (5, 10, 20, 40, 80, 160, 320)
        scales = [MelScale(w, w // 4, w, m) for w, m in zip(windows, n_mels)]
        return cls(sample_rate, scales, log10=True)


# Mel loss presets by name (a recipe's ``losses.mel_preset``): factories ``(sample_rate) -> MultiScaleMelLoss``.
MEL_PRESETS = Registry("mel loss preset")
for _name in ("speechtokenizer", "wavtokenizer", "encodec", "three_scale", "dac"):
    MEL_PRESETS.register(_name, getattr(MultiScaleMelLoss, _name))
del _name


def multi_resolution_stft_distance(
    pred: Tensor,
    target: Tensor,
    resolutions: Sequence[tuple[int, int, int]] = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240)),
    eps: float = 1e-7,
) -> dict[str, Tensor]:
    """Spectral convergence and log-magnitude L1, averaged over (n_fft, hop, win) resolutions.

    ``sc = ||S_t - S_p||_F / ||S_t||_F``, ``log_mag = mean |log S_t - log S_p|`` with
    ``S = sqrt(clamp(|STFT|^2, eps))`` (Hann, centred). Both are 0 for identical signals.
    """
    pred, target = cut_to_shorter(pred, target)
    sc, log_mag = pred.new_zeros(()), pred.new_zeros(())
    for n_fft, hop, win in resolutions:
        mag_pred = stft(pred, n_fft, hop, win).abs().clamp(min=eps**0.5)
        mag_target = stft(target, n_fft, hop, win).abs().clamp(min=eps**0.5)
        sc = sc + torch.linalg.vector_norm(mag_target - mag_pred) / torch.linalg.vector_norm(mag_target).clamp(min=eps)
        log_mag = log_mag + F.l1_loss(mag_pred.log(), mag_target.log())
    return {"spectral_convergence": sc / len(resolutions), "log_magnitude": log_mag / len(resolutions)}


class MultiResolutionSTFTLoss(nn.Module):
    """``sc_weight * spectral convergence + mag_weight * log magnitude`` (audiocraft factors 0.5/0.5)."""

    def __init__(
        self,
        resolutions: Sequence[tuple[int, int, int]] = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240)),
        sc_weight: float = 0.5,
        mag_weight: float = 0.5,
    ):
        super().__init__()
        self.resolutions = tuple(tuple(r) for r in resolutions)
        self.sc_weight, self.mag_weight = sc_weight, mag_weight

    def forward(self, pred: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        terms = multi_resolution_stft_distance(pred, target, self.resolutions)
        total = self.sc_weight * terms["spectral_convergence"] + self.mag_weight * terms["log_magnitude"]
        return total, {k: v.detach() for k, v in terms.items()}


class Balancer:
    """EnCodec's gradient balancer: each loss gets a fixed *fraction* of the gradient on the model output.

    For each loss ``l_i`` with weight ``w_i``, ``g_i = d l_i / d output``; an EMA (bias-corrected,
    ``ema_decay``) tracks ``||g_i||`` (mean of per-item norms with ``per_batch_item``). The output
    receives ``sum_i (w_i / sum w) * total_norm * g_i / ema||g_i||`` in one ``output.backward``.
    Every balanced loss must depend on the model only through ``output``. Losses with no weight
    entry are rejected. Norm EMAs are all-reduced (averaged) when torch.distributed is initialised.
    """

    def __init__(
        self,
        weights: Mapping[str, float],
        total_norm: float = 1.0,
        ema_decay: float = 0.999,
        per_batch_item: bool = True,
        balance_grads: bool = True,
        epsilon: float = 1e-12,
    ):
        self.weights = dict(weights)
        self.total_norm, self.ema_decay = total_norm, ema_decay
        self.per_batch_item, self.balance_grads, self.epsilon = per_batch_item, balance_grads, epsilon
        self._ema_sum: dict[str, float] = {}
        self._ema_count: dict[str, float] = {}
        self.metrics: dict[str, float] = {}

    def _grad_norm(self, grad: Tensor) -> Tensor:
        if self.per_batch_item:
            return torch.linalg.vector_norm(grad.flatten(1), dim=1).mean()
        return torch.linalg.vector_norm(grad)

    def _update_ema(self, norms: dict[str, Tensor]) -> dict[str, float]:
        values = torch.stack(list(norms.values())).detach()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(values)
            values = values / torch.distributed.get_world_size()
        averaged = {}
        for name, value in zip(norms, values.tolist()):
            self._ema_sum[name] = self._ema_sum.get(name, 0.0) * self.ema_decay + value
            self._ema_count[name] = self._ema_count.get(name, 0.0) * self.ema_decay + 1.0
            averaged[name] = self._ema_sum[name] / self._ema_count[name]
        return averaged

    def backward(self, losses: Mapping[str, Tensor], output: Tensor) -> Tensor:
        """Back-propagate the balanced gradient of ``losses`` through ``output``; return the effective loss (detached)."""
        missing = sorted(set(losses) - set(self.weights))
        if missing:
            raise KeyError(f"Balancer has no weight for loss(es) {missing}; give weights for {sorted(losses)}")
        grads, norms = {}, {}
        for name, loss in losses.items():
            (grads[name],) = torch.autograd.grad(loss, [output], retain_graph=True)
            norms[name] = self._grad_norm(grads[name])
        ema_norms = self._update_ema(norms)
        total_weight = sum(self.weights[name] for name in losses)
        output_grad, effective = torch.zeros_like(output), output.new_zeros(())
        for name, loss in losses.items():
            if self.balance_grads:
                scale = self.weights[name] / total_weight * self.total_norm / (self.epsilon + ema_norms[name])
            else:
                scale = self.weights[name]
            output_grad = output_grad + scale * grads[name]
            effective = effective + scale * loss.detach()
        total_norm = sum(ema_norms.values()) + self.epsilon
        self.metrics = {f"ratio_{name}": ema_norms[name] / total_norm for name in losses}
        output.backward(output_grad)
        return effective

    def state_dict(self) -> dict:
        return {"ema_sum": dict(self._ema_sum), "ema_count": dict(self._ema_count)}

    def load_state_dict(self, state: Mapping) -> None:
        self._ema_sum, self._ema_count = dict(state["ema_sum"]), dict(state["ema_count"])
