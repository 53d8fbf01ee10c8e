"""HiFi-GAN / MelGAN multi-scale discriminator (MSD), as in SpeechTokenizer and HiFi-Codec."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from audiotok.discriminators.base import Discriminator, DiscriminatorOutput, compatible_groups, normed, scaled

# (out_channels, kernel, stride, groups) per conv of one scale discriminator, after the 1-channel input.
HIFIGAN_SCALE_LAYERS = (
    (128, 15, 1, 1),
    (128, 41, 2, 4),
    (256, 41, 2, 16),
    (512, 41, 4, 16),
    (1024, 41, 4, 16),
    (1024, 41, 1, 16),
    (1024, 5, 1, 1),
)


class ScaleDiscriminator(nn.Module):
    """Grouped strided 1-D convs on the waveform ``[B,1,T]``; output conv k3 -> 1; LeakyReLU 0.1."""

    def __init__(self, norm: str = "weight_norm", width: float = 1.0, negative_slope: float = 0.1):
        super().__init__()
        layers, in_channels = [], 1
        for out_channels, kernel, stride, groups in HIFIGAN_SCALE_LAYERS:
            out_channels = scaled(out_channels, width)
            groups = compatible_groups(groups, in_channels, out_channels)
            conv = nn.Conv1d(in_channels, out_channels, kernel, stride=stride, groups=groups, padding=kernel // 2)
            layers.append(normed(conv, norm))
            in_channels = out_channels
        self.convs = nn.ModuleList(layers)
        self.conv_post = normed(nn.Conv1d(in_channels, 1, 3, padding=1), norm)
        self.negative_slope = negative_slope

    def forward(self, wav: Tensor) -> tuple[Tensor, list[Tensor]]:
        x, feature_maps = wav, []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), self.negative_slope)
            feature_maps.append(x)
        return self.conv_post(x), feature_maps


class MultiScaleDiscriminator(Discriminator):
    """MSD: ``num_scales`` scale discriminators; scale i sees audio average-pooled (k4, s2, pad 2) i times.

    The first scale uses spectral norm, the others weight norm (HiFi-GAN official; 29.62 M parameters).
    """

    def __init__(self, num_scales: int = 3, width: float = 1.0, negative_slope: float = 0.1, peak_normalize: bool = False):
        super().__init__(peak_normalize)
        self.discriminators = nn.ModuleList(
            ScaleDiscriminator("spectral_norm" if i == 0 else "weight_norm", width, negative_slope)
            for i in range(num_scales)
        )
        self.pool = nn.AvgPool1d(4, stride=2, padding=2)

    @property
    def names(self) -> list[str]:
        return [f"msd_{i}" for i in range(len(self.discriminators))]

    def discriminate(self, wav: Tensor) -> DiscriminatorOutput:
        logits, feature_maps = [], []
        for i, disc in enumerate(self.discriminators):
            if i > 0:
                wav = self.pool(wav)
            out, fmaps = disc(wav)
            logits.append(out)
            feature_maps.append(fmaps)
        return logits, feature_maps
