"""HiFi-GAN multi-period discriminator (MPD), as in SpeechTokenizer, DAC, Vocos and WavTokenizer."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from audiotok.discriminators.base import Discriminator, DiscriminatorOutput, normed, run_each, scaled


class PeriodDiscriminator(nn.Module):
    """Folds ``[B,1,T]`` into ``[B,1,T/p,p]`` (reflect-padding T to a multiple of p) and runs 2-D convs.

    Convs (5,1): 1->32->128->512->1024 with stride (3,1), then 1024->1024 stride 1; output conv
    (3,1) -> 1. Weight norm, LeakyReLU 0.1.
    """

    def __init__(self, period: int, channels: tuple[int, ...] = (32, 128, 512, 1024, 1024), negative_slope: float = 0.1):
        super().__init__()
        self.period = period
        in_channels = (1,) + tuple(channels[:-1])
        strides = [3] * (len(channels) - 1) + [1]
        self.convs = nn.ModuleList(
            normed(nn.Conv2d(c_in, c_out, (5, 1), stride=(s, 1), padding=(2, 0)), "weight_norm")
            for c_in, c_out, s in zip(in_channels, channels, strides)
        )
        self.conv_post = normed(nn.Conv2d(channels[-1], 1, (3, 1), padding=(1, 0)), "weight_norm")
        self.negative_slope = negative_slope

    def forward(self, wav: Tensor) -> tuple[Tensor, list[Tensor]]:
        batch, _, length = wav.shape
        if length % self.period:
            wav = F.pad(wav, (0, self.period - length % self.period), mode="reflect")
        x = wav.view(batch, 1, -1, self.period)
        feature_maps = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), self.negative_slope)
            feature_maps.append(x)
        return self.conv_post(x), feature_maps


class MultiPeriodDiscriminator(Discriminator):
    """MPD over periods 2, 3, 5, 7, 11 (41.11 M parameters at full width; ``width`` scales channels)."""

    def __init__(
        self,
        periods: tuple[int, ...] = (2, 3, 5, 7, 11),
        channels: tuple[int, ...] = (32, 128, 512, 1024, 1024),
        negative_slope: float = 0.1,
        width: float = 1.0,
        peak_normalize: bool = False,
    ):
        super().__init__(peak_normalize)
        self.periods = tuple(periods)
        widths = tuple(scaled(c, width) for c in channels)
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, widths, negative_slope) for p in self.periods)

    @property
    def names(self) -> list[str]:
        return [f"mpd_{p}" for p in self.periods]

    def discriminate(self, wav: Tensor) -> DiscriminatorOutput:
        return run_each(self.discriminators, wav)
