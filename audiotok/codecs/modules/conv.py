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
* Kernels: without autograd on CPU (inference), :func:`conv1d` runs wide-window convs as one matmul
  over unfolded windows and :func:`conv_transpose1d` every transposed conv as a matmul plus
  overlap-add: PyTorch's transposed conv takes a slow path on short inputs (``slow_conv_transpose2d``,
  ~6 ms for Mimi's first decoder layer on a 1-frame chunk vs 1.4 ms as a matmul) and oneDNN's
  reorders dominate short convs. Same sums, another order (float rounding, ~1e-7 relative). Training,
  tracing (ONNX export) and other devices use ``torch.nn.functional`` as is.

Extra right padding makes the output ``ceil(T / stride)`` frames long for any input length ``T``.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

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
    """Replace every weight-norm parametrization in ``model`` by its plain weight (in place).

    Only ``model`` changes, even when it is a deep copy: torch's parametrized modules and their copies
    share one generated class, and ``remove_parametrizations`` deletes the ``weight`` property from
    that class, which left the original without a ``weight`` (an ONNX export of an unfolded codec
    broke the codec). Each module gets a class of its own first.
    """
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            shared = type(module)
            module.__class__ = type(shared.__name__, shared.__bases__, dict(vars(shared)))
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model


# Convs whose windows hold at least this many values (C_in · kernel) run as a matmul on CPU:
# measured faster for Mimi's strided convs at 80-ms chunks and at 5 s alike; smaller windows over
# long inputs (the 64-channel high-rate layers offline) are faster in oneDNN (no unfolded copy).
MATMUL_MIN_WINDOW = 1024


_TORCH_KERNELS_ONLY = False


@contextmanager
def torch_kernels() -> Iterator[None]:
    """Inside, inference runs the plain path: ``torch.nn.functional`` convs, no in-place shortcuts;
    what the speed benchmark and ``tests/codecs/test_speed_paths.py`` compare the fast paths with."""
    global _TORCH_KERNELS_ONLY
    before, _TORCH_KERNELS_ONLY = _TORCH_KERNELS_ONLY, True
    try:
        yield
    finally:
        _TORCH_KERNELS_ONLY = before


def inference_fast_paths() -> bool:
    """Whether inference-only shortcuts apply: no autograd, not tracing or exporting, not inside
    :func:`torch_kernels`. Training never takes them."""
    return (not torch.is_grad_enabled() and not _TORCH_KERNELS_ONLY and not torch.jit.is_tracing()
            and not torch.onnx.is_in_onnx_export())


def _matmul_kernels(x: torch.Tensor) -> bool:
    """Whether the matmul formulations apply: CPU inference (see :func:`inference_fast_paths`)."""
    return x.device.type == "cpu" and inference_fast_paths()


def conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int = 1,
           dilation: int = 1, groups: int = 1) -> torch.Tensor:
    """``F.conv1d`` (no padding) of ``x [B, C_in, T]`` with ``weight [C_out, C_in/g, K]``.

    Wide windows (``C_in·K >= MATMUL_MIN_WINDOW``, ``groups == 1``) on CPU inference run as
    ``windows [B·F, C_in·K] @ weight.T``: no weight reorder per call, one gemm.
    """
    c_out, c_in, k = weight.shape
    if groups != 1 or c_in * k < MATMUL_MIN_WINDOW or not _matmul_kernels(x):
        return F.conv1d(x, weight, bias, stride, dilation=dilation, groups=groups)
    b = x.shape[0]
    windows = x.transpose(1, 2).unfold(1, (k - 1) * dilation + 1, stride)  # [B, F, C_in, K_eff]
    if dilation > 1:
        windows = windows[..., ::dilation]
    frames = windows.shape[1]
    windows = windows.reshape(b * frames, c_in * k)
    flat = weight.reshape(c_out, c_in * k).t()
    y = torch.addmm(bias, windows, flat) if bias is not None else windows @ flat
    return y.view(b, frames, c_out).transpose(1, 2)


def conv_transpose1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                     stride: int = 1, groups: int = 1) -> torch.Tensor:
    """``F.conv_transpose1d`` of ``x [B, C_in, F]`` with ``weight [C_in, C_out/g, K]``:
    ``[B, C_out, (F - 1)·stride + K]``.

    On CPU inference (``groups`` 1 or depthwise) as ``x.T @ weight`` (each frame's ``K`` output
    samples per channel) then an overlap-add of the ``ceil(K / stride)`` shifted blocks.
    """
    c_in, c_out_g, k = weight.shape
    depthwise = groups == c_in and c_out_g == 1
    if not (groups == 1 or depthwise) or not _matmul_kernels(x):
        return F.conv_transpose1d(x, weight, bias, stride, groups=groups)
    b, _, frames = x.shape
    blocks = -(-k // stride)
    if blocks * stride != k:
        weight = F.pad(weight, (0, blocks * stride - k))
    c_out = c_out_g * groups
    if depthwise:  # y[b, f, c, j] = x[b, c, f] · w[c, j]
        y = x.transpose(1, 2)[..., None] * weight.reshape(c_in, blocks * stride)
    else:
        y = x.transpose(1, 2) @ weight.reshape(c_in, c_out * blocks * stride)
    y = y.view(b, frames, c_out, blocks, stride).permute(0, 2, 3, 1, 4)  # [B, C_out, blocks, F, s]
    # Overlap-add straight into the output layout: block j of frame f lands on frame f + j.
    out = y.new_empty(b, c_out, frames + blocks - 1, stride)
    if bias is None:
        out[:, :, :frames] = y[:, :, 0]
    else:
        torch.add(y[:, :, 0], bias[:, None, None], out=out[:, :, :frames])
    if blocks > 1:
        out[:, :, frames:] = 0 if bias is None else bias[:, None, None]
        for j in range(1, blocks):
            out[:, :, j:j + frames] += y[:, :, j]
    return out.view(b, c_out, -1)[..., :(frames - 1) * stride + k]


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

    def _init_streaming_state(self, batch_size: int, device: torch.device,
                              dtype: torch.dtype = torch.float32) -> State:
        if not self.causal:
            return {}
        return {
            "previous": torch.zeros(batch_size, self.conv.in_channels, max(self.padding_total, 0),
                                    device=device, dtype=dtype),
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
            return self._conv(x)
        return self._stream(x, state)

    def _conv(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        if not _matmul_kernels(x):  # training, tracing: call the module itself, so its hooks run
            return conv(x)          # (the data-dependent init, training/init.py, is made of them)
        return conv1d(x, conv.weight, conv.bias, self.stride, conv.dilation[0], conv.groups)

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
        if previous.shape[-1]:  # (no context: the chunk as it is)
            x = torch.cat([previous, x], dim=-1)
            state["previous"] = x[..., x.shape[-1] - previous.shape[-1]:].clone()
        return self._conv(x)


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

    def _init_streaming_state(self, batch_size: int, device: torch.device,
                              dtype: torch.dtype = torch.float32) -> State:
        if not self.causal:
            return {}
        return {"partial": torch.zeros(batch_size, self.convtr.out_channels, self.padding_total,
                                       device=device, dtype=dtype)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        convtr = self.convtr
        if _matmul_kernels(x):
            y = conv_transpose1d(x, convtr.weight, convtr.bias, self.stride, convtr.groups)
        else:  # the module itself, so its hooks run (as in Conv1d._conv)
            y = convtr(x)
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
        if inference_fast_paths():  # y is this call's own tensor: add the carried overlap in place
            y[..., :total] += state["partial"]
        else:
            y = torch.cat([y[..., :total] + state["partial"], y[..., total:]], dim=-1)
        tail = y[..., -total:]
        if self.convtr.bias is not None:
            tail = tail - self.convtr.bias[:, None]
        state["partial"] = tail.detach().clone() if not torch.is_grad_enabled() else tail
        return y[..., :-total]
