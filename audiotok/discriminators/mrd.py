"""Spectrogram discriminators over several STFT resolutions.

* :class:`MultiResolutionDiscriminator`: UnivNet-style MRD as in Vocos before Oct 2023 and
  WavTokenizer: magnitude STFT (rectangular window, centred), 64 channels, 5 strided 2-D convs.
* :class:`MultiBandSTFTDiscriminator`: DAC's multi-band complex-STFT discriminator (also Vocos
  after Oct 2023 and WavTokenizer's DAC part): real/imag channels, frequency split into 5 bands with
  their own conv stacks, a shared output conv.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiotok.discriminators.base import Discriminator, DiscriminatorOutput, normed, run_each, scaled
from audiotok.discriminators.msstft import spectral_conv_stack
from audiotok.dsp import make_window, stft

VOCOS_RESOLUTIONS = ((1024, 256, 1024), (2048, 512, 2048), (512, 128, 512))
DAC_BANDS = ((0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))


class ResolutionDiscriminator(nn.Module):
    """One MRD resolution on the magnitude spectrogram ``[B, 1, freq, frames]``."""

    def __init__(self, resolution: tuple[int, int, int], channels: int = 64, negative_slope: float = 0.1):
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = resolution
        self.register_buffer("window", make_window("rect", self.win_length), persistent=False)
        # (in, kernel, stride, padding) per conv; kernels are (freq, time).
        specs = [
            (1, (7, 5), (2, 2), (3, 2)),
            (channels, (5, 3), (2, 1), (2, 1)),
            (channels, (5, 3), (2, 2), (2, 1)),
            (channels, (3, 3), (2, 1), (1, 1)),
            (channels, (3, 3), (2, 2), (1, 1)),
        ]
        self.convs = nn.ModuleList(
            normed(nn.Conv2d(c_in, channels, k, stride=s, padding=p), "weight_norm") for c_in, k, s, p in specs
        )
        self.conv_post = normed(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)), "weight_norm")
        self.negative_slope = negative_slope

    def forward(self, wav: Tensor) -> tuple[Tensor, list[Tensor]]:
        x = stft(wav, self.n_fft, self.hop_length, self.win_length, self.window, padding="center").abs()
        x, feature_maps = x[:, None], []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), self.negative_slope)
            feature_maps.append(x)
        return self.conv_post(x), feature_maps


class MultiResolutionDiscriminator(Discriminator):
    """Vocos/UnivNet MRD at (n_fft, hop, win) resolutions; 0.60 M parameters at 64 channels."""

    def __init__(
        self,
        resolutions: tuple[tuple[int, int, int], ...] = VOCOS_RESOLUTIONS,
        channels: int = 64,
        negative_slope: float = 0.1,
        width: float = 1.0,
        peak_normalize: bool = False,
    ):
        super().__init__(peak_normalize)
        self.resolutions = tuple(tuple(r) for r in resolutions)
        self.discriminators = nn.ModuleList(
            ResolutionDiscriminator(r, scaled(channels, width), negative_slope) for r in self.resolutions
        )

    @property
    def names(self) -> list[str]:
        return [f"mrd_{r[0]}" for r in self.resolutions]

    def discriminate(self, wav: Tensor) -> DiscriminatorOutput:
        return run_each(self.discriminators, wav)


class BandSTFTDiscriminator(nn.Module):
    """One DAC resolution: complex STFT ``[B, 2, frames, freq]`` split into frequency bands."""

    def __init__(self, window_length: int, bands=DAC_BANDS, channels: int = 32, negative_slope: float = 0.1):
        super().__init__()
        self.window_length, self.hop_length = window_length, window_length // 4
        self.register_buffer("window", make_window("hann", window_length), persistent=False)
        n_bins = window_length // 2 + 1
        self.bands = [(int(lo * n_bins), int(hi * n_bins)) for lo, hi in bands]
        self.band_convs = nn.ModuleList(
            spectral_conv_stack(2, channels, dilations=(1, 1, 1)) for _ in self.bands
        )
        self.conv_post = normed(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)), "weight_norm")
        self.negative_slope = negative_slope

    def forward(self, wav: Tensor) -> tuple[Tensor, list[Tensor]]:
        spec = stft(wav, self.window_length, self.hop_length, self.window_length, self.window, padding="center")
        spec = torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)  # [B, 2, frames, F]
        feature_maps, band_outputs = [], []
        for (lo, hi), convs in zip(self.bands, self.band_convs):
            x = spec[..., lo:hi]
            for conv in convs:
                x = F.leaky_relu(conv(x), self.negative_slope)
                feature_maps.append(x)
            band_outputs.append(x)
        return self.conv_post(torch.cat(band_outputs, dim=-1)), feature_maps


class MultiBandSTFTDiscriminator(Discriminator):
    """DAC's multi-band multi-scale STFT discriminator: windows 2048/1024/512, hop 1/4, 5 bands.

    1.41 M parameters at 32 channels. ``peak_normalize`` (DAC: on) removes DC and peak-normalises
    the input to 0.8.
    """

    def __init__(
        self,
        window_lengths: tuple[int, ...] = (2048, 1024, 512),
        bands: tuple[tuple[float, float], ...] = DAC_BANDS,
        channels: int = 32,
        negative_slope: float = 0.1,
        width: float = 1.0,
        peak_normalize: bool = True,
    ):
        super().__init__(peak_normalize)
        self.window_lengths = tuple(window_lengths)
        self.discriminators = nn.ModuleList(
            BandSTFTDiscriminator(w, bands, scaled(channels, width), negative_slope) for w in self.window_lengths
        )

    @property
    def names(self) -> list[str]:
        return [f"mbstft_{w}" for w in self.window_lengths]

    def discriminate(self, wav: Tensor) -> DiscriminatorOutput:
        return run_each(self.discriminators, wav)
