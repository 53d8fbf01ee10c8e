"""One vector-quantization level: optional 1x1 projections around an `EuclideanCodebook`, the
straight-through estimator and the commitment loss. The building block of `ResidualVQ`."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .codebook import EuclideanCodebook


def projection(in_dim: int, out_dim: int, needed: bool) -> nn.Module:
    """1x1 Conv1d without bias (moshi's `input_proj`/`output_proj`), or Identity when not needed."""
    return nn.Conv1d(in_dim, out_dim, kernel_size=1, bias=False) if needed else nn.Identity()


class LevelOutput(NamedTuple):
    quantized: torch.Tensor  # [B, D, F], straight-through in training mode
    codes: torch.Tensor  # [B, F] int64
    commitment: torch.Tensor  # [B], weighted per-item MSE(x, sg(q)) in codebook space


class VectorQuantizer(nn.Module):
    """`[B, D, F]` -> nearest codes `[B, F]` and their vectors `[B, D, F]`.

    Projections `input_proj` D -> codebook_dim and `output_proj` back exist when `codebook_dim != dim`
    or `force_projection=True`. The straight-through estimator applies in training mode only, so in
    eval `forward` returns exactly `decode(encode(x))`. The commitment loss is computed in eval too
    (useful for validation).
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        codebook_dim: int | None = None,
        commitment_weight: float = 1.0,
        force_projection: bool = False,
        **codebook_kw,
    ):
        super().__init__()
        codebook_dim = codebook_dim or dim
        project = force_projection or codebook_dim != dim
        self.input_proj = projection(dim, codebook_dim, project)
        self.output_proj = projection(codebook_dim, dim, project)
        self.codebook = EuclideanCodebook(codebook_dim, codebook_size, **codebook_kw)
        self.commitment_weight = commitment_weight

    def forward(self, x: torch.Tensor, allow_init: bool = True) -> LevelOutput:
        latent = self.input_proj(x)
        b, d, f = latent.shape
        frames = latent.transpose(1, 2).reshape(b * f, d)
        quantized, codes = self.codebook(frames, allow_init=allow_init)
        quantized = quantized.view(b, f, d).transpose(1, 2)
        commitment = (latent - quantized.detach()).pow(2).mean(dim=(1, 2)) * self.commitment_weight
        if self.training:
            quantized = latent + (quantized - latent).detach()
        return LevelOutput(self.output_proj(quantized), codes.view(b, f), commitment)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[B, D, F] -> codes [B, F]; never changes the codebook."""
        latent = self.input_proj(x)
        b, d, f = latent.shape
        return self.codebook.quantize(latent.transpose(1, 2).reshape(b * f, d)).view(b, f)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, F] -> [B, D, F]."""
        return self.output_proj(self.codebook.dequantize(codes).transpose(1, 2))
