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
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .conv import inference_fast_paths
from .streaming import State, StreamingModule


def rope_angles(positions: torch.Tensor, dim: int, max_period: float = 10_000.0
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE factors at ``positions [B, T]``, each ``[B, 1, T, dim]`` float32, laid out for
    :func:`rotate_pairs`: ``cos`` repeated over each pair, ``sin`` as ``(-sin, sin)`` per pair."""
    freqs = torch.exp(torch.arange(dim // 2, device=positions.device, dtype=torch.float32)
                      * (-math.log(max_period) * 2 / dim))
    angles = positions.float()[:, None, :, None] * freqs  # [B, 1, T, D/2]
    cos, sin = torch.cos(angles), torch.sin(angles)
    shape = (*cos.shape[:-1], dim)  # (stack + reshape: repeat_interleave and flatten mis-rank in ONNX)
    return torch.stack([cos, cos], dim=-1).reshape(shape), torch.stack([-sin, sin], dim=-1).reshape(shape)


def rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs ``(x[2i], x[2i+1])`` of ``x [..., B, H, T, D]`` by the factors of
    :func:`rope_angles`: ``(x0·cos - x1·sin, x1·cos + x0·sin)``, in float32, returned in ``x``'s dtype."""
    x32 = x.float()
    d = x.shape[-1]
    # (x1, x0) per pair (reshape, not unflatten(-1, (-1, 2)), which the ONNX exporter mis-ranks)
    swapped = x32.reshape(*x.shape[:-1], d // 2, 2).flip(-1).reshape(x.shape)
    return (x32 * cos + swapped * sin).to(x.dtype)


def apply_rope(x: torch.Tensor, positions: torch.Tensor, max_period: float = 10_000.0) -> torch.Tensor:
    """Rotate interleaved pairs ``(x[2i], x[2i+1])`` of ``x [B, H, T, D]`` by ``positions [B, T]``."""
    return rotate_pairs(x, *rope_angles(positions, x.shape[-1], max_period))


def cached_steps(context: int | None) -> int:
    """Past steps a causal stream keeps per call: ``context - 1`` (the fed steps come on top), or 0
    without a window (the whole past is kept, grown call by call)."""
    return 0 if context is None else context - 1


class LayerScale(nn.Module):
    """Per-channel learned scale of a residual branch (init small to stabilise training)."""

    def __init__(self, dim: int, init: float):
        super().__init__()
        self.scale = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class Positions(NamedTuple):
    """What every layer of one :class:`Transformer` call shares: the RoPE angles of the fed steps
    (``cos, sin [B, 1, T, Dh/2]``, or None without RoPE) and the attention mask (``[B, 1, T, Tk]``
    bool over the keys the layers see, or None: full attention)."""

    cos: torch.Tensor | None
    sin: torch.Tensor | None
    mask: torch.Tensor | None


class SelfAttention(StreamingModule):
    """Multi-head self-attention ``[B, T, D] -> [B, T, D]`` with RoPE and a windowed causal mask.

    Positions and the mask come from the :class:`Transformer` (once per call for all its layers);
    streaming, this module keeps the keys and values of the last ``context - 1`` steps.
    """

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

    def _init_streaming_state(self, batch_size: int, device: torch.device,
                              dtype: torch.dtype = torch.float32) -> State:
        if not self.causal:
            return {}
        heads, head_dim = self.num_heads, self.in_proj.in_features // self.num_heads
        size = cached_steps(self.context)
        return {
            "k": torch.zeros(batch_size, heads, size, head_dim, device=device, dtype=dtype),
            "v": torch.zeros(batch_size, heads, size, head_dim, device=device, dtype=dtype),
        }

    def forward(self, x: torch.Tensor, positions: Positions) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.in_proj(x).reshape(b, t, 3, self.num_heads, d // self.num_heads).permute(
            2, 0, 3, 1, 4)  # [3, B, H, T, Dh]
        if self.rope:  # q and k rotated together
            q, k = rotate_pairs(qkv[:2], positions.cos, positions.sin).unbind(0)
        else:
            q, k = qkv[0], qkv[1]
        v = qkv[2]
        state = self._streaming_state
        if state is not None:
            if not self.causal:
                raise RuntimeError("non-causal attention cannot stream: it reads future steps")
            fast = self.context is not None and inference_fast_paths()
            keep = cached_steps(self.context) if self.context is not None else state["k"].shape[2] + t
            k, v = self._append_steps("k", k, 2, keep, fast), self._append_steps("v", v, 2, keep, fast)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=positions.mask)
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

    def forward(self, x: torch.Tensor, positions: Positions) -> torch.Tensor:
        x = x + self.layer_scale_1(self.self_attn(self.norm1(x), positions))
        return x + self.layer_scale_2(self.linear2(F.gelu(self.linear1(self.norm2(x)))))


class Transformer(StreamingModule):
    """Stack of :class:`TransformerLayer` on ``[B, C, T]`` (conv layout) or ``[B, T, C]``.

    Optional input/output projections (no bias) when ``input_dim``/``output_dim`` differ from
    ``d_model``. Positions, RoPE angles and the mask are computed once per call for all layers;
    streaming, this module keeps the positions of the cached steps (each layer keeps its keys).
    """

    def __init__(self, d_model: int = 512, num_heads: int = 8, num_layers: int = 8,
                 dim_feedforward: int = 2048, causal: bool = True, context: int | None = 250,
                 layer_scale: float | None = 0.01, max_period: float = 10_000.0,
                 norm_eps: float = 1e-5, input_dim: int | None = None, output_dim: int | None = None,
                 conv_layout: bool = True):
        super().__init__()
        self.conv_layout = conv_layout
        self.causal = causal
        self.context = context
        self.max_period = max_period
        self.head_dim = d_model // num_heads
        self.input_proj = (nn.Linear(input_dim, d_model, bias=False)
                           if input_dim and input_dim != d_model else None)
        self.output_proj = (nn.Linear(d_model, output_dim, bias=False)
                            if output_dim and output_dim != d_model else None)
        self.layers = nn.ModuleList(
            TransformerLayer(d_model, num_heads, dim_feedforward, causal, context, layer_scale,
                             max_period, norm_eps)
            for _ in range(num_layers)
        )

    def _init_streaming_state(self, batch_size: int, device: torch.device,
                              dtype: torch.dtype = torch.float32) -> State:
        if not self.causal:
            return {}
        size = cached_steps(self.context)
        return {
            "pos": torch.zeros(batch_size, size, dtype=torch.long, device=device),
            "valid": torch.zeros(batch_size, size, dtype=torch.bool, device=device),
            "offset": torch.zeros(batch_size, dtype=torch.long, device=device),
        }

    def _positions(self, b: int, t: int, device: torch.device) -> Positions:
        """RoPE angles of the ``t`` fed steps and the mask over the keys every layer sees (the
        cached steps, then the fed ones); advances the streaming positions."""
        state = self._streaming_state
        offset = torch.zeros(b, dtype=torch.long, device=device) if state is None else state["offset"]
        pos_q = offset[:, None] + torch.arange(t, device=device)  # [B, T]
        pos_k, valid_k = pos_q, torch.ones_like(pos_q, dtype=torch.bool)
        if state is not None:
            if not self.causal:
                raise RuntimeError("non-causal attention cannot stream: it reads future steps")
            fast = self.context is not None and inference_fast_paths()
            keep = cached_steps(self.context) if self.context is not None else state["pos"].shape[1] + t
            pos_k = self._append_steps("pos", pos_q, 1, keep, fast)
            valid_k = self._append_steps("valid", valid_k, 1, keep, fast)
            state["offset"] = offset + t
        mask = None
        if self.causal:
            delta = pos_q[:, :, None] - pos_k[:, None, :]  # [B, Tq, Tk]
            mask = valid_k[:, None, :] & (delta >= 0)
            if self.context is not None:
                mask = mask & (delta < self.context)
            mask = mask[:, None]
        cos = sin = None
        if any(layer.self_attn.rope for layer in self.layers):
            cos, sin = rope_angles(pos_q, self.head_dim, self.max_period)
        return Positions(cos, sin, mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv_layout:
            x = x.transpose(1, 2)
        if self.input_proj is not None:
            x = self.input_proj(x)
        positions = self._positions(x.shape[0], x.shape[1], x.device)
        for layer in self.layers:
            x = layer(x, positions)
        if self.output_proj is not None:
            x = self.output_proj(x)
        return x.transpose(1, 2) if self.conv_layout else x
