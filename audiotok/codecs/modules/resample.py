"""Learned frame-rate conversion (Mimi: 25 Hz ↔ 12.5 Hz), kernel = 2 × stride, no bias.

The down-sampler is a causal strided conv with replicate left padding; the up-sampler a causal
transposed conv, depthwise (``groups = dim``) by default, reproducing Mimi's released weights
(moshi's ``upsample_channel_wise_bug=True``).
"""
from __future__ import annotations

from torch import nn

from .conv import Conv1d, ConvTranspose1d


class ConvDownsample1d(nn.Module):
    """``[B, D, F] -> [B, D, ceil(F / stride)]``."""

    def __init__(self, dim: int, stride: int = 2, causal: bool = True, norm: str = "none"):
        super().__init__()
        self.conv = Conv1d(dim, dim, 2 * stride, stride=stride, bias=False, causal=causal,
                           pad_mode="replicate", norm=norm)

    def forward(self, x):
        return self.conv(x)


class ConvTrUpsample1d(nn.Module):
    """``[B, D, F] -> [B, D, F * stride]``."""

    def __init__(self, dim: int, stride: int = 2, causal: bool = True, depthwise: bool = True,
                 norm: str = "none"):
        super().__init__()
        self.convtr = ConvTranspose1d(dim, dim, 2 * stride, stride=stride,
                                      groups=dim if depthwise else 1, bias=False, causal=causal,
                                      norm=norm)

    def forward(self, x):
        return self.convtr(x)
