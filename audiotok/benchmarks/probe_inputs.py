"""What the probes read: token sequences from chosen codebooks, embedded by summing one embedding
table per codebook, and upsampled by repetition so that CTC has enough input frames."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ProbeExample:
    """One utterance for a probe: ``codes [Q, F]`` int64 at ``frame_rate``, transcript, speaker."""

    codes: torch.Tensor
    frame_rate: float
    text: str | None = None
    speaker: str | None = None
    id: str = ""


def parse_codebook_sets(spec: str | None, num_codebooks: int) -> list[list[int]]:
    """``"all;0;1-7"`` -> ``[[0..Q-1], [0], [1..7]]`` (0-based, ``;`` between sets, ``,`` and ``a-b``
    inside one). Sets that name a codebook the tokenizer lacks are cut to those it has (dropped if
    none are left)."""
    sets = []
    for part in (spec or "all").split(";"):
        part = part.strip()
        if not part:
            continue
        if part == "all":
            chosen = list(range(num_codebooks))
        else:
            chosen = []
            for piece in part.split(","):
                lo, _, hi = piece.strip().partition("-")
                try:
                    chosen.extend(range(int(lo), int(hi or lo) + 1))
                except ValueError:
                    raise ValueError(f"bad codebook set {part!r}: use indices like '0', '1-7', '0,2' "
                                     "or 'all', sets separated by ';'") from None
        chosen = sorted({c for c in chosen if 0 <= c < num_codebooks})
        if chosen and chosen not in sets:
            sets.append(chosen)
    return sets


def codebook_label(codebooks: Sequence[int], num_codebooks: int) -> str:
    """``[0..Q-1] -> "all"``, ``[0] -> "0"``, ``[1..7] -> "1-7"``."""
    codebooks = list(codebooks)
    if codebooks == list(range(num_codebooks)):
        return "all"
    if codebooks == list(range(codebooks[0], codebooks[-1] + 1)) and len(codebooks) > 1:
        return f"{codebooks[0]}-{codebooks[-1]}"
    return ",".join(map(str, codebooks))


def repeat_factor(frame_rate: float, min_rate: float) -> int:
    """How many times each frame is repeated to reach at least ``min_rate`` frames per second."""
    return max(1, math.ceil(min_rate / frame_rate))


class TokenEmbedding(nn.Module):
    """``codes [B, Q, F]`` -> ``[B, F, dim]``: the sum of one learned, randomly initialised
    embedding per codebook (SLMTokBench's "random embedding" variant)."""

    def __init__(self, num_codebooks: int, codebook_size: int, dim: int):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(codebook_size, dim) for _ in range(num_codebooks))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return sum(table(codes[:, q]) for q, table in enumerate(self.tables))


def pad_codes(items: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """List of ``[Q, F_i]`` -> (``[B, Q, F_max]`` zero-padded, ``lengths [B]``)."""
    longest = max(c.shape[-1] for c in items)
    out = torch.zeros(len(items), items[0].shape[0], longest, dtype=torch.long)
    for i, c in enumerate(items):
        out[i, :, : c.shape[-1]] = c
    return out, torch.tensor([c.shape[-1] for c in items])
