"""One code path for offline and streaming inference.

A :class:`StreamingModule` keeps its streaming state in ``self._streaming_state`` (``None`` when
offline). Entering ``module.streaming(batch_size)`` gives every streaming descendant a fresh state;
each ``forward`` then consumes the state left by the previous call and leaves its own. Offline calls
run the very same code with no state, so streaming equals offline by construction, not by a second
implementation (the idea is moshi's; the code is ours).

States are plain dicts of tensors whose first dimension is the batch, so one generic rule resets any
subset of streams (``reset_streaming(mask)``): the state rows of the masked items are zeroed. Each
module stores its state so that zeros mean "just started".
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

    def _init_streaming_state(self, batch_size: int, device: torch.device) -> State:
        """A fresh state for ``batch_size`` streams (override; zeros must mean 'just started')."""
        return {}

    @property
    def is_streaming(self) -> bool:
        return self._streaming_state is not None

    def _streaming_modules(self) -> Iterator["StreamingModule"]:
        for module in self.modules():
            if isinstance(module, StreamingModule):
                yield module

    def _device(self) -> torch.device:
        for tensor in list(self.parameters()) + list(self.buffers()):
            return tensor.device
        return torch.device("cpu")

    def start_streaming(self, batch_size: int) -> None:
        """Give this module and every streaming descendant a fresh state."""
        device = self._device()
        for module in self._streaming_modules():
            module._streaming_state = module._init_streaming_state(batch_size, device)

    def stop_streaming(self) -> None:
        for module in self._streaming_modules():
            module._streaming_state = None

    @contextmanager
    def streaming(self, batch_size: int = 1):
        """``with codec.streaming(batch_size):`` — stateful calls inside, offline again outside."""
        self.start_streaming(batch_size)
        try:
            yield self
        finally:
            self.stop_streaming()

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
