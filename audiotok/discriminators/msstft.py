"""EnCodec's multi-scale STFT discriminator (MS-STFT), as used by EnCodec, Mimi and SpeechTokenizer.

Each sub-discriminator sees a complex STFT (Hann, ``center=False``, normalised by the window norm)
with real and imaginary parts as 2 channels, layout ``[B, 2, frames, freq]``, and runs 2-D convs with
kernels (time x freq) = (3, 9), frequency stride 2 and time dilations 1, 2, 4.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from audiotok.discriminators.base import Discriminator, DiscriminatorOutput, normed, run_each, scaled
from audiotok.dsp import make_window, stft


def spectral_conv_stack(
    in_channels: int,
    channels: int,
    dilations: tuple[int, ...] = (1, 2, 4),
    norm: str | None = "weight_norm",
    first_norm: str | None = "weight_norm",
) -> nn.ModuleList:
    """EnCodec/DAC spectrogram conv stack on ``[B, C, time, freq]``.

    conv (3,9) in->ch; one (3,9) conv with stride (1,2) and time dilation d per entry of
    ``dilations``; conv (3,3). Shared by MS-STFT (dilations 1,2,4; no norm on the first conv, an
    audiocraft quirk) and DAC's band stacks (dilations 1,1,1; weight norm everywhere).
    """
    layers = [normed(nn.Conv2d(in_channels, channels, (3, 9), padding=(1, 4)), first_norm)]
    for dilation in dilations:
        conv = nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), dilation=(dilation, 1), padding=(dilation, 4))
        layers.append(normed(conv, norm))
    layers.append(normed(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1)), norm))
    return nn.ModuleList(layers)


class STFTDiscriminator(nn.Module):
    """One MS-STFT resolution: ``wav[B,1,T] -> (logits[B,1,frames,F'], feature maps)``."""

    def __init__(self, n_fft: int, hop_length: int, win_length: int, filters: int = 32, negative_slope: float = 0.2):
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        self.register_buffer("window", make_window("hann", win_length), persistent=False)
        self.convs = spectral_conv_stack(2, filters, first_norm=None)
        self.conv_post = normed(nn.Conv2d(filters, 1, (3, 3), padding=(1, 1)), "weight_norm")
        self.activation = nn.LeakyReLU(negative_slope)

    def forward(self, wav: Tensor) -> tuple[Tensor, list[Tensor]]:
        spec = stft(wav, self.n_fft, self.hop_length, self.win_length, self.window, padding="none", normalized=True)
        x = torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)  # [B, 2, frames, F]
        feature_maps = []
        for conv in self.convs:
            x = self.activation(conv(x))
            feature_maps.append(x)
        return self.conv_post(x), feature_maps


class MultiScaleSTFTDiscriminator(Discriminator):
    """MS-STFT: one :class:`STFTDiscriminator` per n_fft (hop n_fft/4, window n_fft).

    Defaults: audiocraft's shipped 5 resolutions (1024, 2048, 512, 256, 128), 32 filters (0.47 M
    parameters), LeakyReLU 0.2 (class default, as SpeechTokenizer trains it; the ``"encodec"`` preset in
    :data:`~audiotok.discriminators.DISCRIMINATOR_PRESETS` sets audiocraft's 0.3, which Mimi follows).
    ``width`` scales the filters for tiny models.
    """

    def __init__(
        self,
        n_ffts: tuple[int, ...] = (1024, 2048, 512, 256, 128),
        filters: int = 32,
        negative_slope: float = 0.2,
        width: float = 1.0,
        peak_normalize: bool = False,
    ):
        super().__init__(peak_normalize)
        self.n_ffts = tuple(n_ffts)
        self.discriminators = nn.ModuleList(
            STFTDiscriminator(n, n // 4, n, scaled(filters, width), negative_slope) for n in self.n_ffts
        )

    @property
    def names(self) -> list[str]:
        return [f"msstft_{n}" for n in self.n_ffts]

    def discriminate(self, wav: Tensor) -> DiscriminatorOutput:
        return run_each(self.discriminators, wav)
