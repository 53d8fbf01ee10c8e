"""Efficiency figures: rates from the tokenizer's metadata and codebook usage from its codes."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def token_rates(frame_rate: float, num_codebooks: int, codebook_size: int) -> dict[str, float]:
    """``tokens_per_second = frame_rate * Q``; ``bitrate = tokens_per_second * log2(codebook_size)``."""
    tps = frame_rate * num_codebooks
    return {"frame_rate": frame_rate, "tokens_per_second": tps, "bitrate": tps * math.log2(codebook_size)}


def codebook_usage(codes: Sequence[torch.Tensor], codebook_size: int) -> list[dict[str, float]]:
    """Per codebook over all items (each ``[Q, F_i]``): ``perplexity`` (exp of the entropy of the
    code histogram, at most ``codebook_size``), ``used`` (share of codes seen at least once),
    ``normalized_entropy`` (entropy / log2 size, 0..1)."""
    stacked = torch.cat([c.long() for c in codes], dim=-1)  # [Q, sum F]
    usage = []
    for row in stacked:
        counts = torch.unique(row, return_counts=True)[1].double()  # codes seen, any codebook size
        p = counts / counts.sum()
        entropy = float(-(p * p.log()).sum())
        usage.append({"perplexity": math.exp(entropy), "used": len(counts) / codebook_size,
                      "normalized_entropy": entropy / math.log(codebook_size)})
    return usage
