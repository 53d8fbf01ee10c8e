"""XCodec2's quantizer: :class:`FSQ` with the input bounded twice.

The release quantizes with ``vector_quantize_pytorch.ResidualFSQ(levels=[4] * 8, num_quantizers=1)``
(1.17.8), which bounds the projected latent once itself and then hands it to its single ``FSQ``
layer, which bounds it again before rounding: codes = ``round(bound(bound(W x + b)))``. transformers'
``Xcodec2Model`` keeps that ("for consistency with original checkpoint"), and so do we; decoding is
plain FSQ (digits -> ``[-1, 1)`` -> output projection). One codebook of ``4^8 = 65,536`` codes.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .fsq import FSQ


class XCodec2FSQ(FSQ):
    """``[B, dim, F]`` -> codes ``[B, 1, F]``; :class:`FSQ` whose bound is applied twice (module doc)."""

    def __init__(self, dim: int = 2048, levels: Sequence[int] = (4, 4, 4, 4, 4, 4, 4, 4), eps: float = 1e-3):
        super().__init__(dim, levels, eps)

    def _bound(self, z: torch.Tensor) -> torch.Tensor:
        return super()._bound(super()._bound(z))
