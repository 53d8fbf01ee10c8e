"""Pre-norm transformer with RoPE, LayerScale and causal windowed attention that streams exactly.

Each layer: ``x + ls1(attn(norm1(x)))`` then ``x + ls2(linear2(gelu(linear1(norm2(x)))))``; no biases
in linear layers. RoPE uses the interleaved-pair convention (moshi's), so Mimi weights load as they are.

Causal attention lets query ``q`` see key ``k`` when ``0 <= q - k < context``. Streaming keeps a KV
cache of the last ``context - 1`` keys plus whatever a call feeds, so any number of steps per call
sees exactly the keys it would see offline (moshi's ring cache of ``context`` entries drops a needed
key when two steps arrive per call, which makes it drift after 10 s). Positions are counted per
stream, so streams in a batch may start at different times (``reset_streaming(mask)``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .streaming import State, StreamingModule


def apply_rope(x: torch.Tensor, positions: torch.Tensor, max_period: float = 10_000.0) -> torch.Tensor:
    """Rotate interleaved pairs ``(x[2i], x[2i+1])`` of ``x [B, H, T, D]`` by ``positions [B, T]``."""
    d = x.shape[-1]
    freqs = torch.exp(torch.arange(d // 2, device=x.device, dtype=torch.float32)
                      * (-math.log(max_period) * 2 / d))
    angles = positions.float()[:, None, :, None] * freqs  # [B, 1, T, D/2]
    cos, sin = torch.cos(angles), torch.sin(angles)
    pairs = x.float().reshape(*x.shape[:-1], d // 2, 2)
    real, imag = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack([real * cos - imag * sin, real * sin + imag * cos], dim=-1)
    return rotated.reshape(x.shape).to(x.dtype)


class LayerScale(nn.Module):
    """Per-channel learned scale of a residual branch (init small to stabilise training)."""

    def __init__(self, dim: int, init: float):
        super().__init__()
        self.scale = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class SelfAttention(StreamingModule):
    """Multi-head self-attention ``[B, T, D] -> [B, T, D]`` with RoPE and a windowed causal mask."""

    def __init__(self, dim: int, num_heads: int, causal: bool = True, context: int | None = None,
                 max_period: float = 10_000.0, rope: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"d_model {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.causal = causal
        self.context = context
        self.max_period = max_period
        self.rope = rope
        self.in_proj = nn.Linear(dim, 3 * dim, bias=False)
        self.out_proj = nn.Linear(dim, dim, bias=False)

    def _cache_size(self) -> int:
        return 0 if self.context is None else self.context - 1

    def _init_streaming_state(self, batch_size: int, device: torch.device) -> State:
        if not self.causal:
            return {}
        heads, head_dim = self.num_heads, self.in_proj.in_features // self.num_heads
        size = self._cache_size()
        return {
            "k": torch.zeros(batch_size, heads, size, head_dim, device=device),
            "v": torch.zeros(batch_size, heads, size, head_dim, device=device),
            "pos": torch.zeros(batch_size, size, dtype=torch.long, device=device),
            "valid": torch.zeros(batch_size, size, dtype=torch.bool, device=device),
            "offset": torch.zeros(batch_size, dtype=torch.long, device=device),
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.in_proj(x).reshape(b, t, 3, self.num_heads, d // self.num_heads).permute(
            2, 0, 3, 1, 4)  # each [B, H, T, Dh]
        state = self._streaming_state
        offset = torch.zeros(b, dtype=torch.long, device=x.device) if state is None else state["offset"]
        pos_q = offset[:, None] + torch.arange(t, device=x.device)  # [B, T]
        if self.rope:
            q, k = apply_rope(q, pos_q, self.max_period), apply_rope(k, pos_q, self.max_period)
        pos_k, valid_k = pos_q, torch.ones_like(pos_q, dtype=torch.bool)
        if state is not None:
            if not self.causal:
                raise RuntimeError("non-causal attention cannot stream: it reads future steps")
            k, v = torch.cat([state["k"], k], dim=2), torch.cat([state["v"], v], dim=2)
            pos_k = torch.cat([state["pos"], pos_q], dim=1)
            valid_k = torch.cat([state["valid"], valid_k], dim=1)
            keep = self._cache_size() if self.context is not None else k.shape[2]
            state["k"], state["v"] = k[:, :, k.shape[2] - keep:], v[:, :, v.shape[2] - keep:]
            state["pos"], state["valid"] = pos_k[:, pos_k.shape[1] - keep:], valid_k[:, valid_k.shape[1] - keep:]
            state["offset"] = offset + t
        mask = None
        if self.causal:
            delta = pos_q[:, :, None] - pos_k[:, None, :]  # [B, Tq, Tk]
            mask = valid_k[:, None, :] & (delta >= 0)
            if self.context is not None:
                mask = mask & (delta < self.context)
            mask = mask[:, None]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(y.transpose(1, 2).reshape(b, t, d))


class TransformerLayer(nn.Module):
    def __init__(self, dim: int, num_heads: int, dim_feedforward: int, causal: bool,
                 context: int | None, layer_scale: float | None, max_period: float, norm_eps: float):
        super().__init__()
        self.self_attn = SelfAttention(dim, num_heads, causal, context, max_period)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.linear1 = nn.Linear(dim, dim_feedforward, bias=False)
        self.linear2 = nn.Linear(dim_feedforward, dim, bias=False)
        self.layer_scale_1 = LayerScale(dim, layer_scale) if layer_scale else nn.Identity()
        self.layer_scale_2 = LayerScale(dim, layer_scale) if layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.layer_scale_1(self.self_attn(self.norm1(x)))
        return x + self.layer_scale_2(self.linear2(F.gelu(self.linear1(self.norm2(x)))))


class Transformer(StreamingModule):
    """Stack of :class:`TransformerLayer` on ``[B, C, T]`` (conv layout) or ``[B, T, C]``.

    Optional input/output projections (no bias) when ``input_dim``/``output_dim`` differ from
    ``d_model``.
    """

    def __init__(self, d_model: int = 512, num_heads: int = 8, num_layers: int = 8,
                 dim_feedforward: int = 2048, causal: bool = True, context: int | None = 250,
                 layer_scale: float | None = 0.01, max_period: float = 10_000.0,
                 norm_eps: float = 1e-5, input_dim: int | None = None, output_dim: int | None = None,
                 conv_layout: bool = True):
        super().__init__()
        self.conv_layout = conv_layout
        self.input_proj = (nn.Linear(input_dim, d_model, bias=False)
                           if input_dim and input_dim != d_model else None)
        self.output_proj = (nn.Linear(d_model, output_dim, bias=False)
                            if output_dim and output_dim != d_model else None)
        self.layers = nn.ModuleList(
            TransformerLayer(d_model, num_heads, dim_feedforward, causal, context, layer_scale,
                             max_period, norm_eps)
            for _ in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv_layout:
            x = x.transpose(1, 2)
        if self.input_proj is not None:
            x = self.input_proj(x)
        for layer in self.layers:
            x = layer(x)
        if self.output_proj is not None:
            x = self.output_proj(x)
        return x.transpose(1, 2) if self.conv_layout else x
