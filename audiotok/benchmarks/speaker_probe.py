"""Speaker probe: how much speaker identity the tokens carry.

Per utterance, the tokens of the chosen codebooks are embedded (one table per codebook, summed),
mean-pooled over time, and classified by a small MLP into the training speakers. Trained on the
train split; reports accuracy on held-out utterances of the same speakers (chance = 1 / speakers).
A distilled first codebook should score lower here and better on the text probe than the rest.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from audiotok.benchmarks.probe_inputs import ProbeExample, TokenEmbedding, pad_codes


@dataclass
class SpeakerProbeConfig:
    dim: int = 64
    steps: int = 300
    batch_size: int = 16
    lr: float = 3e-3
    seed: int = 0


class SpeakerProbe(nn.Module):
    """A list of ``[Q, F_i]`` codes -> speaker logits ``[B, S]`` from the time-averaged token embedding."""

    def __init__(self, num_codebooks: int, codebook_size: int, num_speakers: int, dim: int):
        super().__init__()
        self.embed = TokenEmbedding(num_codebooks, codebook_size, dim)
        self.classify = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, num_speakers))

    def pooled(self, items: Sequence[torch.Tensor]) -> torch.Tensor:
        """Mean embedding over each item's valid frames: ``[B, dim]``."""
        codes, lengths = pad_codes(items)
        mask = (torch.arange(codes.shape[-1])[None] < lengths[:, None]).unsqueeze(-1)  # [B, F, 1]
        return (self.embed(codes) * mask).sum(1) / lengths[:, None]

    def forward(self, items: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.classify(self.pooled(items))


def run_speaker_probe(train: Sequence[ProbeExample], test: Sequence[ProbeExample], codebook_size: int,
                      config: SpeakerProbeConfig | None = None) -> dict:
    """``{"accuracy", "chance", "speakers", "utterances", "skipped_unknown_speaker"}``; test items
    whose speaker is not in ``train`` are skipped (counted)."""
    config = config or SpeakerProbeConfig()
    train = [e for e in train if e.speaker is not None]
    speakers = sorted({e.speaker for e in train})
    if len(speakers) < 2:
        raise ValueError("the speaker probe needs training utterances from at least two speakers")
    known = [e for e in test if e.speaker in speakers]
    if not known:
        raise ValueError("no test utterance comes from a training speaker; the speaker probe needs "
                         "held-out utterances of the training speakers")
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    model = SpeakerProbe(train[0].codes.shape[0], codebook_size, len(speakers), config.dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    labels = torch.tensor([speakers.index(e.speaker) for e in train])
    for _ in range(config.steps):
        batch = rng.sample(range(len(train)), min(config.batch_size, len(train)))
        loss = nn.functional.cross_entropy(model([train[i].codes for i in batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        predicted = model([e.codes for e in known]).argmax(-1).tolist()
    correct = sum(speakers[p] == e.speaker for p, e in zip(predicted, known))
    return {"accuracy": correct / len(known), "chance": 1 / len(speakers), "speakers": len(speakers),
            "utterances": len(known), "skipped_unknown_speaker": len(test) - len(known)}
