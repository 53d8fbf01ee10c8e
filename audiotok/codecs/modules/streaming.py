"""One code path for offline and streaming inference.

A :class:`StreamingModule` keeps its streaming state in ``self._streaming_state`` (``None`` when
offline). Entering ``module.streaming(batch_size)`` gives every streaming descendant a fresh state;
each ``forward`` then consumes the state left by the previous call and leaves its own. Offline calls
run the very same code with no state, so streaming equals offline by construction, not by a second
implementation (the idea is moshi's; the code is ours).

States are plain dicts of tensors whose first dimension is the batch, so one generic rule resets any
subset of streams (``reset_streaming(mask)``): the state rows of the masked items are zeroed. Each
module stores its state so that zeros mean "just started".

Inference may keep scratch buffers next to the state (``self._streaming_scratch``, a dict that lives
and dies with the state; never exported nor reset): :class:`AppendWindow` uses it so that a state
holding "the last ``keep`` steps" grows without copying itself on every call.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

State = dict[str, torch.Tensor]


class StreamingModule(nn.Module):
    """Base class of modules that carry state between streaming calls."""

    _streaming_state: State | None = None
    _streaming_scratch: dict | None = None

    def _init_streaming_state(self, batch_size: int, device: torch.device,
                              dtype: torch.dtype = torch.float32) -> State:
        """A fresh state for ``batch_size`` streams (override; zeros must mean 'just started')."""
        return {}

    @property
    def is_streaming(self) -> bool:
        return self._streaming_state is not None

    def _streaming_modules(self) -> Iterator["StreamingModule"]:
        for module in self.modules():
            if isinstance(module, StreamingModule):
                yield module

    def _device_and_dtype(self) -> tuple[torch.device, torch.dtype]:
        """Where the state lives and, for float states, its precision: the first floating parameter's
        (a codec cast to bfloat16 streams in bfloat16)."""
        for tensor in self.parameters():
            if tensor.is_floating_point():
                return tensor.device, tensor.dtype
        for tensor in self.buffers():
            return tensor.device, torch.float32
        return torch.device("cpu"), torch.float32

    def start_streaming(self, batch_size: int) -> None:
        """Give this module and every streaming descendant a fresh state."""
        device, dtype = self._device_and_dtype()
        for module in self._streaming_modules():
            module._streaming_state = module._init_streaming_state(batch_size, device, dtype)
            module._streaming_scratch = {}

    def stop_streaming(self) -> None:
        for module in self._streaming_modules():
            module._streaming_state = None
            module._streaming_scratch = None

    @contextmanager
    def streaming(self, batch_size: int = 1):
        """``with codec.streaming(batch_size):`` — stateful calls inside, offline again outside."""
        self.start_streaming(batch_size)
        try:
            yield self
        finally:
            self.stop_streaming()

    def _append_steps(self, key: str, new: torch.Tensor, dim: int, keep: int, fast: bool) -> torch.Tensor:
        """``torch.cat([state[key], new], dim)``; ``state[key]`` keeps its last ``keep`` steps.
        ``fast`` (inference): through an :class:`AppendWindow`, no copy of the state per call."""
        state = self._streaming_state
        if fast:
            return _APPEND_WINDOW(self._streaming_scratch, state, key, new, dim, keep)
        joined = torch.cat([state[key], new], dim=dim)
        state[key] = joined.narrow(dim, joined.shape[dim] - keep, keep)
        return joined

    def reset_streaming(self, mask: torch.Tensor | None = None) -> None:
        """Restart the streams selected by ``mask [B]`` (all when ``None``); others keep their state."""
        for module in self._streaming_modules():
            state = module._streaming_state
            if state is None:
                raise RuntimeError(
                    "reset_streaming() needs an active stream: call it inside `with module.streaming(B):`"
                )
            for key, value in state.items():
                if mask is None:
                    value.zero_()
                else:
                    value[mask.to(value.device)] = 0


class AppendWindow:
    """``torch.cat([state[key], new], dim)`` that then keeps the last ``keep`` steps in ``state[key]``,
    without copying the state on every call (an inference shortcut; same values as the ``cat``).

    The state entry becomes a view into a preallocated buffer with room for ``slack`` more calls (at
    most twice the state's length, and at least the call: long chunks cost what the ``cat`` did, and
    the buffer stays within 3x its size); each call writes ``new`` after the view and returns the
    window ``[old, new]`` as a view of the buffer.
    When the room runs out, or the entry is not the view this left (a new stream, a caller that put its
    own tensor there), a fresh buffer starts with a copy of the entry. Resets zero the view in place,
    which zeroes the buffer's window too. The buffers live in ``scratch`` (the module's
    ``_streaming_scratch``), so they go with the stream.
    """

    def __init__(self, slack: int = 32):
        self.slack = slack

    def __call__(self, scratch: dict, state: State, key: str, new: torch.Tensor, dim: int,
                 keep: int) -> torch.Tensor:
        old, t = state[key], new.shape[dim]
        length = old.shape[dim]
        held = scratch.get(key)  # (buffer, start of the state's view, that view)
        if held is None or held[2] is not old or held[1] + length + t > held[0].shape[dim]:
            shape = list(old.shape)
            shape[dim] = length + max(t, min(self.slack * t, 2 * length))
            buffer = old.new_empty(shape, dtype=torch.promote_types(old.dtype, new.dtype))
            buffer.narrow(dim, 0, length).copy_(old)
            held = (buffer, 0, old)
        buffer, start = held[0], held[1]
        buffer.narrow(dim, start + length, t).copy_(new)
        window = buffer.narrow(dim, start, length + t)
        view = buffer.narrow(dim, start + length + t - keep, keep)
        state[key] = view
        scratch[key] = (buffer, start + length + t - keep, view)
        return window


_APPEND_WINDOW = AppendWindow()
