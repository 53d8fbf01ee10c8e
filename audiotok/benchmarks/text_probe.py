"""SLMTokBench text-alignment probe: tokens -> embeddings -> 2-layer BiLSTM -> characters, CTC.

Trained on the train split, it reports greedy-decoding CER/WER on the test split and a vCLUB-style
mutual-information estimate (nats per utterance)::

    MI = mean_i [ log q(y_i | x_i) - mean_{j in K negatives} log q(y_j | x_i) ],  log q = -CTC loss

with K transcripts of other utterances drawn at random (seeded) per test utterance.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from audiotok.benchmarks.probe_inputs import (
    ProbeExample,
    TokenEmbedding,
    pad_codes,
    repeat_factor,
)
from audiotok.data.text import normalize_text
from audiotok.data.wer import word_edits

ALPHABET = " 'abcdefghijklmnopqrstuvwxyz"  # index + 1 is the CTC class; 0 is blank
PROBE_SIZES = {"tiny": (32, 32), "small": (128, 128), "paper": (1024, 1024)}  # (embedding dim, LSTM units per direction)


@dataclass
class ProbeConfig:
    size: str = "small"
    steps: int = 400
    batch_size: int = 8
    lr: float = 1e-3
    min_rate: float = 50.0  # tokens repeated up to at least this many frames per second (CTC length)
    negatives: int = 8  # K, transcripts of other utterances per test utterance in the MI estimate
    seed: int = 0

    def dims(self) -> tuple[int, int]:
        if self.size not in PROBE_SIZES:
            raise ValueError(f"unknown probe size {self.size!r}; choose {', '.join(PROBE_SIZES)}")
        return PROBE_SIZES[self.size]


def encode_text(text: str) -> torch.Tensor:
    """Normalised text -> CTC targets ``[L]`` (1-based indices into :data:`ALPHABET`)."""
    return torch.tensor([ALPHABET.index(c) + 1 for c in normalize_text(text)], dtype=torch.long)


def decode_greedy(log_probs: torch.Tensor, length: int) -> str:
    """Best path of ``[F, C]`` log-probabilities: argmax, merge repeats, drop blanks."""
    best = log_probs[:length].argmax(-1).tolist()
    chars, previous = [], 0
    for c in best:
        if c != previous and c != 0:
            chars.append(ALPHABET[c - 1])
        previous = c
    return " ".join("".join(chars).split())


class TextProbe(nn.Module):
    """``codes [B, Q, F]`` -> character log-probabilities ``[B, F * repeat, 28]``."""

    def __init__(self, num_codebooks: int, codebook_size: int, repeat: int, dim: int, hidden: int):
        super().__init__()
        self.repeat = repeat
        self.embed = TokenEmbedding(num_codebooks, codebook_size, dim)
        self.lstm = nn.LSTM(dim, hidden, num_layers=2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, len(ALPHABET) + 1)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        x = self.embed(codes).repeat_interleave(self.repeat, dim=1)
        return self.head(self.lstm(x)[0]).log_softmax(-1)


def _ctc(model: TextProbe, codes, lengths, targets: list[torch.Tensor]) -> torch.Tensor:
    """Per-utterance CTC loss ``[B]`` (nats, summed over the utterance) = -log q(y | x)."""
    log_probs = model(codes).transpose(0, 1)  # [F, B, C]
    return nn.functional.ctc_loss(
        log_probs, torch.cat(targets), lengths * model.repeat, torch.tensor([len(t) for t in targets]),
        reduction="none", zero_infinity=True)


def train_text_probe(train: Sequence[ProbeExample], codebook_size: int, config: ProbeConfig,
                     progress=None) -> TextProbe:
    """Fit a probe on examples with transcripts; ``progress(step)`` is called after each step."""
    train = [e for e in train if e.text and normalize_text(e.text)]
    if not train:
        raise ValueError("the text probe needs training utterances with transcripts")
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    dim, hidden = config.dims()
    model = TextProbe(train[0].codes.shape[0], codebook_size, repeat_factor(train[0].frame_rate, config.min_rate),
                      dim, hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    targets = [encode_text(e.text) for e in train]
    model.train()
    for step in range(config.steps):
        batch = rng.sample(range(len(train)), min(config.batch_size, len(train)))
        codes, lengths = pad_codes([train[i].codes for i in batch])
        loss = (_ctc(model, codes, lengths, [targets[i] for i in batch])
                / torch.tensor([len(targets[i]) for i in batch])).mean()
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        if progress is not None:
            progress(step)
    return model.eval()


@torch.no_grad()
def evaluate_text_probe(model: TextProbe, test: Sequence[ProbeExample], config: ProbeConfig) -> dict:
    """``{"cer", "wer", "mi", "negatives", "utterances", "items": [{id, ref, hyp, log_q}]}``."""
    test = [e for e in test if e.text and normalize_text(e.text)]
    if not test:
        raise ValueError("the text probe needs test utterances with transcripts")
    rng = random.Random(config.seed + 1)
    targets = [encode_text(e.text) for e in test]
    char_edits = chars = word_errs = words = 0
    items, mi_terms = [], []
    k = min(config.negatives, len(test) - 1)
    for i, example in enumerate(test):
        codes = example.codes[None]
        lengths = torch.tensor([codes.shape[-1]])
        log_probs = model(codes)[0]
        hyp, ref = decode_greedy(log_probs, int(lengths) * model.repeat), normalize_text(example.text)
        char_edits += word_edits(list(ref), list(hyp))
        chars += len(ref)
        word_errs += word_edits(ref.split(), hyp.split())
        words += len(ref.split())
        negatives = rng.sample([j for j in range(len(test)) if j != i], k)
        losses = _ctc(model, codes.expand(k + 1, -1, -1), lengths.expand(k + 1),
                      [targets[i]] + [targets[j] for j in negatives])
        log_q = -losses
        if k:
            mi_terms.append(float(log_q[0] - log_q[1:].mean()))
        items.append({"id": example.id, "ref": ref, "hyp": hyp, "log_q": float(log_q[0])})
    return {"cer": char_edits / max(chars, 1), "wer": word_errs / max(words, 1),
            "mi": sum(mi_terms) / len(mi_terms) if mi_terms else None, "negatives": k,
            "utterances": len(test), "config": asdict(config), "items": items}


def run_text_probe(train: Sequence[ProbeExample], test: Sequence[ProbeExample], codebook_size: int,
                   config: ProbeConfig | None = None, progress=None) -> dict:
    """Train on ``train`` and evaluate on ``test`` (see :func:`evaluate_text_probe`)."""
    config = config or ProbeConfig()
    model = train_text_probe(train, codebook_size, config, progress)
    return evaluate_text_probe(model, test, config)
