"""Exponential moving average of the generator's weights (audiocraft / Mimi: decay 0.99 every step).

The shadow copy is a submodule, so it lives in the checkpoint's ``state_dict`` (keys
``weight_ema.shadow.*``), follows the module across devices and resumes exactly. Buffers (codebook
statistics, themselves EMAs) are copied, not averaged.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class WeightEMA(nn.Module):
    """``shadow = decay * shadow + (1 - decay) * weights`` after every generator step."""

    def __init__(self, model: nn.Module, decay: float):
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1) (Mimi/EnCodec: 0.99), got {decay}")
        self.decay = decay
        self.shadow = copy.deepcopy(model).eval()
        self.shadow.requires_grad_(False)

    def train(self, mode: bool = True) -> WeightEMA:  # the shadow always stays in eval mode
        return super().train(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for shadow, live in zip(self.shadow.parameters(), model.parameters(), strict=True):
            shadow.lerp_(live.detach(), 1.0 - self.decay)
        for shadow, live in zip(self.shadow.buffers(), model.buffers(), strict=True):
            shadow.copy_(live)
