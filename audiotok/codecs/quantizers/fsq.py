"""Finite scalar quantization (Mentzer et al. 2023), XCodec2-style: project `dim -> len(levels)`,
round each channel to one of `levels[c]` values, project back. One codebook of `prod(levels)` codes,
no codebook state.

FSQ has no commitment loss; in its place (the common interface's ``commitment_loss``) it returns a *range
penalty* that is zero while the projected latent stays where ``tanh`` still responds (``|z| <= 2``) and
grows quadratically beyond. Without it, training runs the latent into saturation: the gradient through a
saturated ``tanh`` is tiny but of constant sign, Adam normalises it to full-size steps, the pre-bound
latent grows to the hundreds within 50 steps, every channel sticks at an end of its range and the tiny codec
uses 4 of 1000 codes (docs/training-postmortem.md). Inside the range it changes nothing, so inference and
the reference parity are unaffected."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .base import Quantizer, QuantizerOutput
from .codebook import code_usage, perplexity


class FSQ(Quantizer):
    """`[B, dim, F]` -> codes `[B, 1, F]` (mixed-radix index of the per-channel digits, channel 0 least
    significant). The projections are 1x1 convs with bias (XCodec2 uses Linear layers with bias)."""

    def __init__(self, dim: int, levels: Sequence[int] = (8, 5, 5, 5), eps: float = 1e-3,
                 range_limit: float = 2.0):
        super().__init__()
        if len(levels) == 0 or min(levels) < 2:
            raise ValueError(f"FSQ levels must be a non-empty list of integers >= 2, got {list(levels)}.")
        self._dim = dim
        self.levels_list = [int(n) for n in levels]
        self.eps = eps
        self.range_limit = range_limit
        levels_t = torch.tensor(self.levels_list)
        self.register_buffer("levels", levels_t, persistent=False)
        self.register_buffer("basis", torch.cumprod(torch.tensor([1] + self.levels_list[:-1]), 0), persistent=False)
        self.input_proj = nn.Conv1d(dim, len(levels), kernel_size=1)
        self.output_proj = nn.Conv1d(len(levels), dim, kernel_size=1)

    @property
    def num_codebooks(self) -> int:
        return 1

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels_list)

    @property
    def dim(self) -> int:
        return self._dim

    def _half_width(self) -> torch.Tensor:
        return (self.levels // 2).float()[None, :, None]

    def _bound(self, z: torch.Tensor) -> torch.Tensor:
        """Squash channel c into an interval that rounds to exactly `levels[c]` integers, centred on 0."""
        levels = self.levels.float()[None, :, None]
        half = (levels - 1) * (1 + self.eps) / 2
        offset = torch.where(self.levels % 2 == 0, 0.5, 0.0).float()[None, :, None]
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift) * half - offset

    def range_penalty(self, z: torch.Tensor) -> torch.Tensor:
        """Mean squared excess of the projected latent ``z [B, C, F]`` beyond ``±range_limit``."""
        return torch.relu(z.abs() - self.range_limit).pow(2).mean()

    def _digits_centered(self, z: torch.Tensor) -> torch.Tensor:
        """Projected latent [B, C, F] -> rounded bounded latent [B, C, F] (integers centred on 0; STE in
        training)."""
        bounded = self._bound(z)
        rounded = bounded.round()
        return bounded + (rounded - bounded).detach() if self.training else rounded

    def _codes_from_digits(self, centered: torch.Tensor) -> torch.Tensor:
        digits = (centered.detach() + self._half_width()).long()
        return (digits * self.basis[None, :, None]).sum(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor, n_q: int | None = None) -> QuantizerOutput:
        self._check_n_q(n_q)
        z = self.input_proj(x).float()
        centered = self._digits_centered(z)
        codes = self._codes_from_digits(centered)
        quantized = self.output_proj((centered / self._half_width()).to(x.dtype))
        with torch.no_grad():
            ppl = float(perplexity(code_usage(codes, self.codebook_size)))
        return QuantizerOutput(
            quantized=quantized,
            codes=codes,
            commitment_loss=self.range_penalty(z),
            first_level=quantized,
            metrics={"perplexity": ppl},
        )

    @torch.no_grad()
    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        self._check_n_q(n_q)
        return self._codes_from_digits(self._bound(self.input_proj(x).float()).round())

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        self._check_codes(codes)
        digits = (codes // self.basis[None, :, None]) % self.levels[None, :, None]  # [B, C, F]
        centered = digits.float() - self._half_width()
        return self.output_proj((centered / self._half_width()).to(self.output_proj.weight.dtype))
