"""Conv1d and ConvTranspose1d with causal or non-causal padding, weight norm, and streaming.

* Non-causal convs pad both sides (reflect by default) and transposed convs trim both sides, as in
  EnCodec/SpeechTokenizer/WavTokenizer.
* Causal convs pad only on the left (zeros, or the first sample for ``replicate``), and causal
  transposed convs trim only on the right, as in Mimi. Streaming a causal conv keeps the last
  ``kernel_eff - stride`` input samples; streaming a causal transposed conv keeps the
  ``kernel - stride`` overlap-add tail. With no state the same code runs offline on zero context, so
  offline and streaming agree exactly.
* Weight norm uses ``torch.nn.utils.parametrizations.weight_norm``; :func:`fold_weight_norm` bakes it
  into plain weights for inference (and for loading weights exported folded, like Mimi's).

Extra right padding makes the output ``ceil(T / stride)`` frames long for any input length ``T``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from .streaming import State, StreamingModule

NORMS = ("weight_norm", "none")
PAD_MODES = ("reflect", "constant", "replicate", "zeros")


def _apply_norm(module: nn.Module, norm: str) -> nn.Module:
    if norm not in NORMS:
        raise ValueError(f"unknown conv norm {norm!r}; choose one of {NORMS}")
    return weight_norm(module) if norm == "weight_norm" else module


def fold_weight_norm(model: nn.Module) -> nn.Module:
    """Replace every weight-norm parametrization in ``model`` by its plain weight (in place)."""
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model


def extra_padding_for_conv1d(length: int, kernel_size: int, stride: int, padding_total: int) -> int:
    """Right padding that lets the last (partial) window be computed: output = ceil(T / stride)."""
    n_frames = (length - kernel_size + padding_total) / stride + 1
    ideal_length = (math.ceil(n_frames) - 1) * stride + (kernel_size - padding_total)
    return max(ideal_length - length, 0)


def pad1d(x: torch.Tensor, left: int, right: int, mode: str) -> torch.Tensor:
    """``F.pad`` that also reflect-pads inputs shorter than the padding (zero-extends them first)."""
    if mode == "zeros":
        mode = "constant"
    if mode == "reflect":
        length = x.shape[-1]
        max_pad = max(left, right)
        if length <= max_pad:
            extra = max_pad - length + 1
            x = F.pad(x, (0, extra))
            return F.pad(x, (left, right), mode)[..., : length + left + right]
    return F.pad(x, (left, right), mode)


class Conv1d(StreamingModule):
    """``[B, C_in, T] -> [B, C_out, ceil(T / stride)]``; module ``.conv`` is the torch conv."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        causal: bool = False,
        pad_mode: str = "reflect",
        norm: str = "weight_norm",
    ):
        super().__init__()
        if pad_mode not in PAD_MODES:
            raise ValueError(f"unknown pad_mode {pad_mode!r}; choose one of {PAD_MODES}")
        self.conv = _apply_norm(
            nn.Conv1d(in_channels, out_channels, kernel_size, stride, dilation=dilation,
                      groups=groups, bias=bias),
            norm,
        )
        self.causal = causal
        self.pad_mode = pad_mode
        self.stride = stride
        self.kernel_eff = (kernel_size - 1) * dilation + 1
        self.padding_total = self.kernel_eff - stride

    def _init_streaming_state(self, batch_size: int, device: torch.device) -> State:
        if not self.causal:
            return {}
        return {
            "previous": torch.zeros(batch_size, self.conv.in_channels, max(self.padding_total, 0),
                                    device=device),
            "started": torch.zeros(batch_size, dtype=torch.bool, device=device),
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = self._streaming_state
        if state is None:
            extra = extra_padding_for_conv1d(x.shape[-1], self.kernel_eff, self.stride,
                                             self.padding_total)
            if self.causal:
                x = pad1d(x, self.padding_total, extra, self.pad_mode)
            else:
                right = self.padding_total // 2
                x = pad1d(x, self.padding_total - right, right + extra, self.pad_mode)
            return self.conv(x)
        return self._stream(x, state)

    def _stream(self, x: torch.Tensor, state: State) -> torch.Tensor:
        if not self.causal:
            raise RuntimeError("a non-causal conv cannot stream exactly: it needs future samples")
        if x.shape[-1] % self.stride:
            raise ValueError(
                f"streaming chunks must be a multiple of the conv stride {self.stride}, "
                f"got {x.shape[-1]} samples"
            )
        previous = state["previous"]
        if self.pad_mode == "replicate" and previous.shape[-1]:
            fresh = ~state["started"]
            if fresh.any():
                previous[fresh] = x[fresh, :, :1].expand_as(previous[fresh])
        state["started"].fill_(True)
        x = torch.cat([previous, x], dim=-1)
        if previous.shape[-1]:
            state["previous"] = x[..., x.shape[-1] - previous.shape[-1]:].clone()
        return self.conv(x)


class ConvTranspose1d(StreamingModule):
    """``[B, C_in, F] -> [B, C_out, F * stride]``; module ``.convtr`` is the torch conv."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        bias: bool = True,
        causal: bool = False,
        norm: str = "weight_norm",
        trim_right_ratio: float = 1.0,
    ):
        super().__init__()
        self.convtr = _apply_norm(
            nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride, groups=groups,
                               bias=bias),
            norm,
        )
        self.causal = causal
        self.stride = stride
        self.padding_total = kernel_size - stride
        if causal and trim_right_ratio != 1.0:
            raise ValueError("causal transposed convs trim everything on the right (ratio 1.0)")
        self.trim_right_ratio = trim_right_ratio

    def _init_streaming_state(self, batch_size: int, device: torch.device) -> State:
        if not self.causal:
            return {}
        return {"partial": torch.zeros(batch_size, self.convtr.out_channels, self.padding_total,
                                       device=device)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.convtr(x)
        total = self.padding_total
        state = self._streaming_state
        if state is None:
            if self.causal:
                right = math.ceil(total * self.trim_right_ratio)
            else:
                right = total // 2
            left = total - right
            return y[..., left: y.shape[-1] - right]
        if not self.causal:
            raise RuntimeError("a non-causal transposed conv cannot stream exactly")
        if total == 0:
            return y
        if y.shape[-1] < 2 * total:
            raise ValueError("streaming chunk too short for the transposed conv overlap")
        y = torch.cat([y[..., :total] + state["partial"], y[..., total:]], dim=-1)
        tail = y[..., -total:]
        if self.convtr.bias is not None:
            tail = tail - self.convtr.bias[:, None]
        state["partial"] = tail.detach().clone() if not torch.is_grad_enabled() else tail
        return y[..., :-total]
