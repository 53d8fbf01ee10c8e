"""The quantizer contract: `QuantizerOutput` and the `Quantizer` base class.

Every quantizer maps latents `[B, D, F]` to codes `[B, Q, F]` (int64) and back:

* `forward(x, n_q=None) -> QuantizerOutput` (straight-through in training),
* `encode(x, n_q=None) -> codes [B, Q, F]` (never touches codebook state),
* `decode(codes [B, Q, F]) -> [B, D, F]` for any `1 <= Q <= num_codebooks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class QuantizerOutput:
    """Result of `Quantizer.forward`.

    quantized: `[B, D, F]`; in training its gradient w.r.t. the input is the identity (STE).
    codes: `[B, Q, F]` int64, Q = the number of levels run.
    commitment_loss: scalar tensor, already multiplied by the commitment weight.
    first_level: `[B, D, F]`, the first level's (or semantic quantizer's) STE output, for distillation.
    metrics: plain floats for logging.
    kept_levels: `[B]` int64, levels each item actually used (differs from Q only under per-item
        quantizer dropout in training); None when every item used all Q levels.
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    commitment_loss: torch.Tensor
    first_level: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)
    kept_levels: torch.Tensor | None = None


class Quantizer(nn.Module):
    """Common interface of all quantizers (see the module docstring)."""

    def forward(self, x: torch.Tensor, n_q: int | None = None) -> QuantizerOutput:
        raise NotImplementedError

    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def num_codebooks(self) -> int:
        raise NotImplementedError

    @property
    def codebook_size(self) -> int:
        raise NotImplementedError

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def codebooks(self) -> list[nn.Module]:
        """Every `EuclideanCodebook` inside, in code order (level 0 first)."""
        from .codebook import EuclideanCodebook

        return [m for m in self.modules() if isinstance(m, EuclideanCodebook)]

    def codebook_stats(self) -> dict[str, float]:
        """Per-codebook perplexity of the EMA usage and dead-code count: `perplexity/{i}`, `dead_codes/{i}`."""
        stats: dict[str, float] = {}
        for i, codebook in enumerate(self.codebooks()):
            stats[f"perplexity/{i}"] = codebook.perplexity
            stats[f"dead_codes/{i}"] = float(codebook.dead_codes)
        return stats

    def set_update_ema(self, update_ema: bool | None) -> None:
        """Set `update_ema` on every codebook: True/False forces codebook learning on/off in training
        mode; None (default) learns only when grad is enabled (see `EuclideanCodebook`)."""
        for codebook in self.codebooks():
            codebook.update_ema = update_ema

    def _check_n_q(self, n_q: int | None) -> int:
        """`n_q` or all codebooks, validated."""
        if n_q is None:
            return self.num_codebooks
        if not 1 <= n_q <= self.num_codebooks:
            raise ValueError(
                f"n_q={n_q} is out of range: this quantizer has {self.num_codebooks} codebooks; "
                f"pass 1 <= n_q <= {self.num_codebooks} (or None for all)."
            )
        return n_q

    def _check_codes(self, codes: torch.Tensor) -> None:
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= self.num_codebooks:
            raise ValueError(
                f"codes must be [B, Q, F] with 1 <= Q <= {self.num_codebooks}, got shape {tuple(codes.shape)}."
            )
        if codes.dtype.is_floating_point:
            raise ValueError(f"codes must be an integer tensor (int64), got {codes.dtype}.")
