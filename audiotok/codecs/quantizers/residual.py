"""Residual vector quantization (SoundStream/EnCodec): level i quantizes what levels < i left over.

A single-codebook VQ (WavTokenizer, 1 x 4096 x 512) is `ResidualVQ(dim=512, n_q=1, codebook_size=4096)`.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Quantizer, QuantizerOutput
from .codebook import code_usage, perplexity
from .vq import VectorQuantizer, projection

COMMITMENT_REDUCTIONS = ("mean", "sum")


class ResidualVQ(Quantizer):
    """`n_q` residual levels of `codebook_size` codes, input/output `[B, dim, F]`, codes `[B, Q, F]`.

    * Projections: when `codebook_dim != dim` (or `force_projection`), one 1x1 conv (no bias) `input_proj`
      dim -> codebook_dim before all levels and one `output_proj` back after their sum (moshi layout).
    * Straight-through over the whole output in training, `x + sg(sum_q - x)` (EnCodec issue #25), so
      the encoder gradient is exact; `first_level` is level 0's own STE output.
    * Quantizer dropout (training only, `quantizer_dropout=True`): **per item**; with probability
      `quantizer_dropout_rate` an item keeps a uniform number of levels in [1, n_q], otherwise all n_q.
      Every level still runs on every item, so codebooks learn from all frames and the codes of dropped
      levels are the real nearest codes of the residual (what that level would output at inference);
      only the output sum and the commitment loss leave them out. `QuantizerOutput.kept_levels` says how
      many levels each item kept.
    * Commitment loss: per level MSE(x, sg(q)) times `commitment_weight`; `commitment_reduction="mean"`
      averages over levels (SpeechTokenizer/EnCodec/moshi), `"sum"` adds them (DAC-style).
    * `no_quantization_rate` (moshi): in training, that fraction of items gets the unquantized projected
      latent as output (codebooks still learn from it).
    * `stagger_kmeans_init` (moshi): level i runs k-means only once level i-1 was initialised on an earlier
      step; avoids k-means on near-zero residuals when a batch has fewer frames than codes.
    """

    def __init__(
        self,
        dim: int,
        n_q: int,
        codebook_size: int,
        codebook_dim: int | None = None,
        quantizer_dropout: bool = False,
        quantizer_dropout_rate: float = 1.0,
        commitment_weight: float = 1.0,
        commitment_reduction: str = "mean",
        force_projection: bool = False,
        no_quantization_rate: float = 0.0,
        stagger_kmeans_init: bool = False,
        **codebook_kw,
    ):
        super().__init__()
        if n_q < 1:
            raise ValueError(f"ResidualVQ needs n_q >= 1 levels, got {n_q}.")
        if commitment_reduction not in COMMITMENT_REDUCTIONS:
            raise ValueError(
                f"commitment_reduction must be one of {COMMITMENT_REDUCTIONS}, got {commitment_reduction!r}."
            )
        codebook_dim = codebook_dim or dim
        project = force_projection or codebook_dim != dim
        self._dim = dim
        self._codebook_size = codebook_size
        self.quantizer_dropout = quantizer_dropout
        self.quantizer_dropout_rate = quantizer_dropout_rate
        self.commitment_reduction = commitment_reduction
        self.no_quantization_rate = no_quantization_rate
        self.stagger_kmeans_init = stagger_kmeans_init
        self.input_proj = projection(dim, codebook_dim, project)
        self.output_proj = projection(codebook_dim, dim, project)
        self.layers = nn.ModuleList(
            VectorQuantizer(codebook_dim, codebook_size, commitment_weight=commitment_weight, **codebook_kw)
            for _ in range(n_q)
        )

    @property
    def num_codebooks(self) -> int:
        return len(self.layers)

    @property
    def codebook_size(self) -> int:
        return self._codebook_size

    @property
    def dim(self) -> int:
        return self._dim

    def _draw_kept_levels(self, batch: int, n_q: int, device: torch.device) -> torch.Tensor | None:
        """Per-item number of kept levels `[B]` under quantizer dropout, or None (all kept)."""
        if not (self.training and self.quantizer_dropout) or n_q == 1:
            return None
        drawn = torch.randint(1, n_q + 1, (batch,), device=device)
        dropped = torch.rand(batch, device=device) < self.quantizer_dropout_rate
        return torch.where(dropped, drawn, torch.full_like(drawn, n_q))

    def forward(self, x: torch.Tensor, n_q: int | None = None) -> QuantizerOutput:
        n_q = self._check_n_q(n_q)
        latent = self.input_proj(x)
        kept = self._draw_kept_levels(x.shape[0], n_q, x.device)
        residual, total = latent, torch.zeros_like(latent)
        codes, commitments, masks = [], [], []
        first_level = latent
        previous_initialized = True
        for i, layer in enumerate(self.layers[:n_q]):
            was_initialized = layer.codebook.is_initialized if self.stagger_kmeans_init else True
            level = layer(residual, allow_init=previous_initialized)
            previous_initialized = was_initialized
            if i == 0:
                first_level = level.quantized
            quantized = level.quantized.detach()
            residual = residual - quantized
            mask = torch.ones_like(level.commitment) if kept is None else (kept > i).to(level.commitment.dtype)
            total = total + quantized * mask[:, None, None]
            codes.append(level.codes)
            commitments.append(level.commitment * mask)
            masks.append(mask)

        quantized = latent + (total - latent).detach() if self.training else total
        if self.training and self.no_quantization_rate > 0:
            unquantized = torch.rand(x.shape[0], 1, 1, device=x.device) < self.no_quantization_rate
            quantized = torch.where(unquantized, latent, quantized)
        codes_out = torch.stack(codes, dim=1)
        commitment_sum = torch.stack(commitments).sum()
        if self.commitment_reduction == "mean":
            commitment = commitment_sum / torch.stack(masks).sum()
        else:
            commitment = commitment_sum / x.shape[0]
        return QuantizerOutput(
            quantized=self.output_proj(quantized),
            codes=codes_out,
            commitment_loss=commitment,
            first_level=self.output_proj(first_level),
            metrics=self._metrics(codes_out, kept, n_q),
            kept_levels=kept,
        )

    @torch.no_grad()
    def _metrics(self, codes: torch.Tensor, kept: torch.Tensor | None, n_q: int) -> dict[str, float]:
        """Mean batch perplexity over levels, codes replaced this step, mean kept levels (one sync)."""
        ppl = torch.stack([perplexity(code_usage(codes[:, i], self.codebook_size)) for i in range(n_q)]).mean()
        levels = kept.float().mean() if kept is not None else torch.tensor(float(n_q))
        ppl, levels = torch.stack([ppl.cpu(), levels.cpu()]).tolist()
        replaced = sum(layer.codebook.last_replaced for layer in self.layers[:n_q])
        return {"perplexity": ppl, "replaced_codes": float(replaced), "levels": levels}

    @torch.no_grad()
    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """[B, dim, F] -> codes [B, Q, F] int64 with Q = n_q (default all). Never changes codebooks."""
        n_q = self._check_n_q(n_q)
        residual = self.input_proj(x)
        codes = []
        for layer in self.layers[:n_q]:
            level_codes = layer.encode(residual)
            residual = residual - layer.decode(level_codes)
            codes.append(level_codes)
        return torch.stack(codes, dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, Q, F], Q <= num_codebooks -> [B, dim, F] (sum of the first Q levels)."""
        self._check_codes(codes)
        total = self.layers[0].decode(codes[:, 0])
        for i in range(1, codes.shape[1]):
            total = total + self.layers[i].decode(codes[:, i])
        return self.output_proj(total)
