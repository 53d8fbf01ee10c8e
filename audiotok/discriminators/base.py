"""Shared pieces of the discriminators: the base class, norms, channel scaling, DAC input preprocessing.

Convention for every discriminator: ``forward(wav[B, 1, T]) -> (logits, feature_maps)`` with one
entry per sub-discriminator; ``logits[i]`` is the final conv output ``[B, ...]`` and
``feature_maps[i]`` lists the activations *before* the final conv (logits excluded; the adversarial
loss config decides whether to add them to feature matching). ``names`` names the sub-discriminators.
"""

from __future__ import annotations

import math

from torch import Tensor, nn
from torch.nn.utils import parametrizations

DiscriminatorOutput = tuple[list[Tensor], list[list[Tensor]]]


def normed(module: nn.Module, norm: str | None) -> nn.Module:
    """Wrap a conv in ``"weight_norm"``, ``"spectral_norm"`` or nothing (``None``)."""
    if norm == "weight_norm":
        return parametrizations.weight_norm(module)
    if norm == "spectral_norm":
        return parametrizations.spectral_norm(module)
    if norm is None:
        return module
    raise ValueError(f"unknown norm {norm!r}; use 'weight_norm', 'spectral_norm' or None")


def scaled(channels: int, width: float) -> int:
    """Channel count scaled by the width multiplier (``width < 1`` gives tiny test/recipe models)."""
    return max(1, round(channels * width))


def compatible_groups(groups: int, in_channels: int, out_channels: int) -> int:
    """Largest group count <= ``groups`` dividing both channel counts (keeps scaled MSD convs valid)."""
    return math.gcd(groups, math.gcd(in_channels, out_channels))


def remove_dc_and_peak_normalize(wav: Tensor, peak: float = 0.8) -> Tensor:
    """DAC's discriminator input preprocessing: zero mean, peak ``peak`` per item (gain invariance)."""
    wav = wav - wav.mean(dim=-1, keepdim=True)
    return peak * wav / (wav.abs().amax(dim=-1, keepdim=True) + 1e-9)


class Discriminator(nn.Module):
    """Base class: checks the input shape, optionally peak-normalises, then calls ``discriminate``."""

    def __init__(self, peak_normalize: bool = False):
        super().__init__()
        self.peak_normalize = peak_normalize

    @property
    def names(self) -> list[str]:
        raise NotImplementedError

    def discriminate(self, wav: Tensor) -> DiscriminatorOutput:
        raise NotImplementedError

    def forward(self, wav: Tensor) -> DiscriminatorOutput:
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"{type(self).__name__} expects mono audio [B, 1, T], got shape {tuple(wav.shape)}")
        if self.peak_normalize:
            wav = remove_dc_and_peak_normalize(wav)
        return self.discriminate(wav)


def run_each(discriminators: nn.ModuleList, wav: Tensor) -> DiscriminatorOutput:
    """Run sub-discriminators on the same input; split their ``(logits, feature_maps)`` pairs."""
    outputs = [disc(wav) for disc in discriminators]
    return [logits for logits, _ in outputs], [fmaps for _, fmaps in outputs]
