"""SEANet encoder and decoder (EnCodec's convolutional autoencoder), with optional (Bi)LSTM.

The ``model`` Sequential keeps EnCodec's layer order, so official SpeechTokenizer, WavTokenizer and
Mimi checkpoints map onto it by renaming the weight-norm suffixes only:

* encoder: conv(k) · [residual units · act · strided conv(2·r, r)] per ratio · [LSTM] · act · conv
* decoder: conv(k) · [LSTM] · [act · transposed conv(2·r, r) · residual units] per ratio · act · conv
"""
from __future__ import annotations

import torch
from torch import nn

from .conv import Conv1d, ConvTranspose1d, inference_fast_paths
from .streaming import State, StreamingModule


def _overwrite(module: nn.Module) -> bool:
    """Whether an activation may overwrite its input: marked so (its input is a fresh tensor no
    other layer reads) and no autograd (inference). Saves one full-size tensor per layer offline."""
    return module.overwrites_input and inference_fast_paths()


class Snake(nn.Module):
    """Snake activation ``x + sin²(αx)/α`` with a learned per-channel ``α`` (BigVGAN/DAC)."""

    overwrites_input = False

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inverse = (self.alpha + 1e-9).reciprocal()
        if inference_fast_paths():  # the same operations, in one temporary
            y = torch.mul(self.alpha, x).sin_().pow_(2).mul_(inverse)
            return x.add_(y) if _overwrite(self) else y.add_(x)
        return x + inverse * torch.sin(self.alpha * x).pow(2)


class ELU(nn.ELU):
    """``nn.ELU`` that, at inference, runs in place where marked ``overwrites_input``."""

    overwrites_input = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.elu(x, self.alpha, inplace=_overwrite(self))


class GELU(nn.GELU):
    overwrites_input = False  # GELU has no in-place kernel


def activation(name: str, channels: int, overwrites_input: bool = False) -> nn.Module:
    """An activation; ``overwrites_input``: its input is a fresh tensor that nothing else reads."""
    if name == "ELU":
        act = ELU(alpha=1.0)
    elif name == "Snake":
        act = Snake(channels)
    elif name == "GELU":
        act = GELU()
    else:
        raise ValueError(f"unknown activation {name!r}; choose ELU, Snake or GELU")
    act.overwrites_input = overwrites_input
    return act


class LSTMBlock(StreamingModule):
    """(Bi)LSTM over time with a skip connection: ``[B, C, T] -> [B, C·(2 if bi else 1), T]``.

    A bidirectional LSTM's skip repeats the input twice along channels (SpeechTokenizer). A
    unidirectional one streams by carrying its hidden state.
    """

    def __init__(self, dim: int, num_layers: int = 2, bidirectional: bool = False, skip: bool = True):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers, bidirectional=bidirectional)
        self.bidirectional = bidirectional
        self.skip = skip

    def _init_streaming_state(self, batch_size: int, device: torch.device,
                              dtype: torch.dtype = torch.float32) -> State:
        shape = (batch_size, self.lstm.num_layers, self.lstm.hidden_size)
        return {"h": torch.zeros(shape, device=device, dtype=dtype),
                "c": torch.zeros(shape, device=device, dtype=dtype)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(2, 0, 1)  # [T, B, C]
        state = self._streaming_state
        if state is None:
            y, _ = self.lstm(x)
        else:
            if self.bidirectional:
                raise RuntimeError("a bidirectional LSTM cannot stream: it reads the future")
            hidden = (state["h"].transpose(0, 1).contiguous(), state["c"].transpose(0, 1).contiguous())
            y, (h, c) = self.lstm(x, hidden)
            state["h"], state["c"] = h.transpose(0, 1), c.transpose(0, 1)
        if self.skip:
            y = y + (x.repeat(1, 1, 2) if self.bidirectional else x)
        return y.permute(1, 2, 0)


class ResidualUnit(nn.Module):
    """act · conv(k, dilation) to dim/compress · act · conv(1) back; skip = identity or 1×1 conv."""

    def __init__(self, dim: int, kernel_size: int, dilation: int, act: str, compress: int,
                 true_skip: bool, conv_kw: dict):
        super().__init__()
        hidden = dim // compress
        self.block = nn.Sequential(
            activation(act, dim),  # not in place: the shortcut reads x
            Conv1d(dim, hidden, kernel_size, dilation=dilation, **conv_kw),
            activation(act, hidden, overwrites_input=True),
            Conv1d(hidden, dim, 1, **conv_kw),
        )
        self.shortcut = nn.Identity() if true_skip else Conv1d(dim, dim, 1, **conv_kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not inference_fast_paths():
            return self.shortcut(x) + self.block(x)
        return self.block(x).add_(self.shortcut(x))  # inference: no third full-size tensor


class _SEANetBase(nn.Module):
    def __init__(self, channels, dimension, n_filters, n_residual_layers, ratios, activation,
                 kernel_size, last_kernel_size, residual_kernel_size, dilation_base, causal, pad_mode,
                 compress, true_skip, lstm_layers, norm):
        super().__init__()
        self.channels = channels
        self.dimension = dimension
        self.ratios = list(ratios)
        self.hop_length = 1
        for r in self.ratios:
            self.hop_length *= r
        self._conv_kw = dict(causal=causal, pad_mode=pad_mode, norm=norm)
        self._res_kw = dict(kernel_size=residual_kernel_size, act=activation, compress=compress,
                            true_skip=true_skip, conv_kw=self._conv_kw)
        self._dilations = [dilation_base ** j for j in range(n_residual_layers)]


class SEANetEncoder(_SEANetBase):
    """``[B, channels, T] -> [B, dimension, ceil(T / hop)]``; ``ratios`` in decoder order."""

    def __init__(self, channels: int = 1, dimension: int = 128, n_filters: int = 32,
                 n_residual_layers: int = 1, ratios=(8, 5, 4, 2), activation: str = "ELU",
                 kernel_size: int = 7, last_kernel_size: int = 7, residual_kernel_size: int = 3,
                 dilation_base: int = 2, causal: bool = False, pad_mode: str = "reflect",
                 compress: int = 2, true_skip: bool = False, lstm_layers: int = 2,
                 bidirectional: bool = False, norm: str = "weight_norm"):
        super().__init__(channels, dimension, n_filters, n_residual_layers, ratios, activation,
                         kernel_size, last_kernel_size, residual_kernel_size, dilation_base, causal,
                         pad_mode, compress, true_skip, lstm_layers, norm)
        mult = 1
        layers: list[nn.Module] = [Conv1d(channels, n_filters, kernel_size, **self._conv_kw)]
        for ratio in reversed(self.ratios):
            dim = mult * n_filters
            layers += [ResidualUnit(dim, dilation=d, **self._res_kw) for d in self._dilations]
            layers += [
                globals()["activation"](activation, dim, overwrites_input=True),
                Conv1d(dim, dim * 2, 2 * ratio, stride=ratio, **self._conv_kw),
            ]
            mult *= 2
        dim = mult * n_filters
        if lstm_layers:
            layers.append(LSTMBlock(dim, lstm_layers, bidirectional=bidirectional))
            dim = dim * 2 if bidirectional else dim
        layers += [globals()["activation"](activation, dim, overwrites_input=True),
                   Conv1d(dim, dimension, last_kernel_size, **self._conv_kw)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class SEANetDecoder(_SEANetBase):
    """``[B, dimension, F] -> [B, channels, F * hop]``; ``ratios`` in decoder order."""

    def __init__(self, channels: int = 1, dimension: int = 128, n_filters: int = 32,
                 n_residual_layers: int = 1, ratios=(8, 5, 4, 2), activation: str = "ELU",
                 kernel_size: int = 7, last_kernel_size: int = 7, residual_kernel_size: int = 3,
                 dilation_base: int = 2, causal: bool = False, pad_mode: str = "reflect",
                 compress: int = 2, true_skip: bool = False, lstm_layers: int = 2,
                 norm: str = "weight_norm", final_activation: str | None = None):
        super().__init__(channels, dimension, n_filters, n_residual_layers, ratios, activation,
                         kernel_size, last_kernel_size, residual_kernel_size, dilation_base, causal,
                         pad_mode, compress, true_skip, lstm_layers, norm)
        mult = 2 ** len(self.ratios)
        layers: list[nn.Module] = [Conv1d(dimension, mult * n_filters, kernel_size, **self._conv_kw)]
        if lstm_layers:
            layers.append(LSTMBlock(mult * n_filters, lstm_layers))
        for ratio in self.ratios:
            dim = mult * n_filters
            layers += [
                globals()["activation"](activation, dim, overwrites_input=True),
                ConvTranspose1d(dim, dim // 2, 2 * ratio, stride=ratio, causal=causal, norm=norm),
            ]
            layers += [ResidualUnit(dim // 2, dilation=d, **self._res_kw) for d in self._dilations]
            mult //= 2
        layers += [globals()["activation"](activation, n_filters, overwrites_input=True),
                   Conv1d(n_filters, channels, last_kernel_size, **self._conv_kw)]
        if final_activation == "tanh":
            layers.append(nn.Tanh())
        elif final_activation is not None:
            raise ValueError(f"unknown final_activation {final_activation!r}; use None or 'tanh'")
        self.model = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z)
