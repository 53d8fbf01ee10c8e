"""Mimi's split RVQ: a semantic RVQ and an acoustic RVQ quantize the same latent in parallel."""

from __future__ import annotations

import torch

from .base import Quantizer, QuantizerOutput
from .residual import ResidualVQ


class SplitResidualVQ(Quantizer):
    """`semantic` (n_q_semantic levels, no dropout) + `acoustic` (n_q - n_q_semantic levels, dropout
    allowed), each with its own forced 1x1 projections dim <-> codebook_dim. Both see the same input
    (the acoustic RVQ does not see the semantic residual); outputs are summed; codes are
    `[semantic; acoustic]`. `first_level` is the semantic quantizer's output (what distillation reads).
    Any `1 <= n_q <= num_codebooks` works: the first levels come from `semantic`, the rest from `acoustic`.
    Mimi: `SplitResidualVQ(dim=512, n_q=32, codebook_size=2048, codebook_dim=256)`, k-means staggered.
    """

    def __init__(
        self,
        dim: int,
        n_q: int,
        codebook_size: int,
        codebook_dim: int | None = None,
        n_q_semantic: int = 1,
        quantizer_dropout: bool = False,
        quantizer_dropout_rate: float = 1.0,
        commitment_reduction: str = "mean",
        stagger_kmeans_init: bool = True,
        **rvq_kw,
    ):
        super().__init__()
        if not 1 <= n_q_semantic < n_q:
            raise ValueError(
                f"SplitResidualVQ needs 1 <= n_q_semantic < n_q, got n_q_semantic={n_q_semantic}, n_q={n_q}; "
                "use ResidualVQ for a quantizer without acoustic levels."
            )
        shared = dict(
            dim=dim,
            codebook_size=codebook_size,
            codebook_dim=codebook_dim,
            commitment_reduction=commitment_reduction,
            force_projection=True,
            stagger_kmeans_init=stagger_kmeans_init,
            **rvq_kw,
        )
        self.commitment_reduction = commitment_reduction
        self.semantic = ResidualVQ(n_q=n_q_semantic, quantizer_dropout=False, **shared)
        self.acoustic = ResidualVQ(
            n_q=n_q - n_q_semantic,
            quantizer_dropout=quantizer_dropout,
            quantizer_dropout_rate=quantizer_dropout_rate,
            **shared,
        )

    @property
    def num_codebooks(self) -> int:
        return self.semantic.num_codebooks + self.acoustic.num_codebooks

    @property
    def codebook_size(self) -> int:
        return self.semantic.codebook_size

    @property
    def dim(self) -> int:
        return self.semantic.dim

    def _split(self, n_q: int) -> tuple[int, int]:
        n_semantic = min(n_q, self.semantic.num_codebooks)
        return n_semantic, n_q - n_semantic

    def forward(self, x: torch.Tensor, n_q: int | None = None) -> QuantizerOutput:
        n_semantic, n_acoustic = self._split(self._check_n_q(n_q))
        semantic = self.semantic(x, n_q=n_semantic)
        metrics = {f"semantic/{k}": v for k, v in semantic.metrics.items()}
        if n_acoustic == 0:
            return QuantizerOutput(
                semantic.quantized, semantic.codes, semantic.commitment_loss, semantic.quantized, metrics
            )
        acoustic = self.acoustic(x, n_q=n_acoustic)
        metrics.update({f"acoustic/{k}": v for k, v in acoustic.metrics.items()})
        if self.commitment_reduction == "mean":  # mean over all levels, as moshi renormalises
            commitment = (semantic.commitment_loss * n_semantic + acoustic.commitment_loss * n_acoustic) / (
                n_semantic + n_acoustic
            )
        else:
            commitment = semantic.commitment_loss + acoustic.commitment_loss
        kept = None if acoustic.kept_levels is None else acoustic.kept_levels + n_semantic
        return QuantizerOutput(
            quantized=semantic.quantized + acoustic.quantized,
            codes=torch.cat([semantic.codes, acoustic.codes], dim=1),
            commitment_loss=commitment,
            first_level=semantic.quantized,
            metrics=metrics,
            kept_levels=kept,
        )

    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        n_semantic, n_acoustic = self._split(self._check_n_q(n_q))
        codes = self.semantic.encode(x, n_q=n_semantic)
        if n_acoustic == 0:
            return codes
        return torch.cat([codes, self.acoustic.encode(x, n_q=n_acoustic)], dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        self._check_codes(codes)
        n_semantic = self.semantic.num_codebooks
        quantized = self.semantic.decode(codes[:, :n_semantic])
        if codes.shape[1] > n_semantic:
            quantized = quantized + self.acoustic.decode(codes[:, n_semantic:])
        return quantized
