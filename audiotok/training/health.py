"""Training health: is each quantizer level used, does the encoder spread its latent, does the decoder
depend on its codes?

A codec can lower its reconstruction loss while ignoring its input: the decoder learns the average
spectrum, the encoder output shrinks onto one code, and the loss curve looks fine (see
``docs/training-postmortem.md``). These numbers make that failure visible in the training log:

* ``health/usage/{q}``: share of level ``q``'s codes used over the last ``window`` steps (0..1);
* ``health/perplexity/{q}``: exp(entropy) of level ``q``'s code histogram over that window
  (1 = one code, K = all K codes equally);
* ``health/latent_spread``: std of the encoder latent over time, relative to its RMS (0 = the encoder
  emits the same vector for every frame);
* on validation, ``val/code_dependence``: ``mean|decode(codes) - decode(shuffled codes)| /
  mean|decode(codes)|`` (0 = the decoder ignores its codes) and ``val/mel_shuffled``, the mel distance
  of the shuffled-codes decode, to set against ``val/mel_distance``.

:class:`HealthMonitor` warns once per problem, naming the level and what to try.
"""
from __future__ import annotations

import warnings

import torch

from audiotok.codecs.quantizers import code_usage, perplexity


class TrainingHealthWarning(UserWarning):
    """A codec training run looks collapsed (a level uses one code, or the decoder ignores its codes)."""


def latent_spread(latent: torch.Tensor) -> torch.Tensor:
    """``[B, D, F]`` -> std over frames relative to the latent RMS (scalar, 0..~1)."""
    spread = latent.float().std(dim=-1).mean()
    return spread / latent.float().pow(2).mean().sqrt().clamp_min(1e-12)


def shuffle_frames(codes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``[B, Q, F]`` codes with the frames of each item permuted (same multiset of codes, wrong order)."""
    order = torch.stack([torch.randperm(codes.shape[-1], generator=generator) for _ in range(codes.shape[0])])
    return torch.gather(codes, 2, order.to(codes.device)[:, None, :].expand_as(codes))


COLLAPSE_ADVICE = (
    "try a longer quantizer warm-up (model.quantizer_warmup_steps: the codebooks then initialise by k-means "
    "on a trained encoder's latent), a larger batch, or a lower threshold_ema_dead_code")
DEPENDENCE_ADVICE = (
    "the decoder outputs nearly the same audio for shuffled codes: it has learned the average spectrum. "
    "Try model.quantizer_warmup_steps (a few thousand steps without the quantizer first), a lower "
    "commitment weight, or check the per-level usage in the log")


class HealthMonitor:
    """Accumulates per-level code histograms over ``window`` steps; returns metrics and warns once.

    ``grace_steps``: quantized steps before a collapse is reported (every codec starts collapsed).
    ``min_perplexity``: a level whose window perplexity stays below it is reported collapsed.
    ``min_code_dependence``: a validation code dependence below it is reported.
    """

    def __init__(self, codebook_size: int, window: int = 50, grace_steps: int = 1000,
                 min_perplexity: float = 2.0, min_code_dependence: float = 0.05):
        self.codebook_size, self.window, self.grace_steps = codebook_size, window, grace_steps
        self.min_perplexity, self.min_code_dependence = min_perplexity, min_code_dependence
        self._counts: torch.Tensor | None = None
        self._steps = 0
        self._quantized_steps = 0
        self._warned: set[str] = set()

    def update(self, codes: torch.Tensor, latent: torch.Tensor) -> dict[str, float]:
        """One training step's ``codes [B, Q, F]`` (Q may be 0: quantizer bypassed) and ``latent [B, D, F]``.

        Returns ``latent_spread`` every step and, every ``window`` steps, per-level usage and perplexity.
        """
        metrics = {"health/latent_spread": float(latent_spread(latent.detach()))}
        if codes.shape[1] == 0:
            return metrics
        self._quantized_steps += 1
        counts = torch.stack([code_usage(codes[:, q].detach(), self.codebook_size) for q in range(codes.shape[1])])
        counts = counts.cpu()
        if self._counts is None or self._counts.shape != counts.shape:
            self._counts, self._steps = torch.zeros_like(counts), 0
        self._counts += counts
        self._steps += 1
        if self._steps < self.window:
            return metrics
        for q, level in enumerate(self._counts):
            ppl = float(perplexity(level))
            metrics[f"health/usage/{q}"] = float((level > 0).float().mean())
            metrics[f"health/perplexity/{q}"] = ppl
            if ppl < self.min_perplexity and self._quantized_steps > self.grace_steps:
                self._warn(f"level{q}", f"quantizer level {q} has collapsed: perplexity {ppl:.2f} of "
                           f"{self.codebook_size} codes over the last {self.window} steps "
                           f"({int((level > 0).sum())} codes used); {COLLAPSE_ADVICE}")
        self._counts.zero_()
        self._steps = 0
        return metrics

    def check_code_dependence(self, dependence: float, step: int) -> None:
        """Warn (once) when validation decodes shuffled codes about as well as real ones."""
        if self._quantized_steps > self.grace_steps and dependence < self.min_code_dependence:
            self._warn("dependence", f"step {step}: validation code dependence {dependence:.4f} "
                       f"< {self.min_code_dependence}: {DEPENDENCE_ADVICE}")

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, TrainingHealthWarning, stacklevel=3)
