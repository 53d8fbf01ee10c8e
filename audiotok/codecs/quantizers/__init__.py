"""Quantizers: one family with pluggable codebooks, written in plain torch.

* `EuclideanCodebook` (codebook.py): EMA codebook, k-means init, dead-code replacement, DDP sync.
* `VectorQuantizer` (vq.py): one level (projections, straight-through, commitment).
* `ResidualVQ` (residual.py): SpeechTokenizer 8x1024x1024, WavTokenizer 1x4096x512 (`n_q=1`), EnCodec/DAC-like.
* `SplitResidualVQ` (split.py): Mimi's semantic + acoustic RVQs in parallel.
* `FSQ` (fsq.py): finite scalar quantization (XCodec2-style).

All follow the `Quantizer` interface in base.py: `forward(x[B,D,F], n_q=None) -> QuantizerOutput`,
`encode -> codes[B,Q,F]` int64, `decode(codes) -> [B,D,F]`.

Why not vector-quantize-pytorch: its defaults are traps for codecs (EMA decay 0.8 instead of 0.99,
the rotation trick on instead of a plain straight-through estimator, k-means init on the first
forward even in eval, so a validation sanity check initialises the codebooks, one dropout cutoff for
the whole batch) and importing it costs about 7 s. Our codebook also fixes the upstream
EnCodec/WavTokenizer dead-code replacement, which the EMA recompute undoes in the same call.
"""

from __future__ import annotations

from audiotok.registry import Registry

from .base import Quantizer, QuantizerOutput
from .codebook import EuclideanCodebook, code_usage, codebook_state_from_moshi, kmeans, perplexity
from .fsq import FSQ
from .residual import ResidualVQ
from .split import SplitResidualVQ
from .vq import VectorQuantizer

QUANTIZERS = Registry("quantizer")
QUANTIZERS.register("rvq", ResidualVQ, forwards=(EuclideanCodebook,))  # **kwargs: codebook options
QUANTIZERS.register("split_rvq", SplitResidualVQ, forwards=(ResidualVQ, EuclideanCodebook))
QUANTIZERS.register("fsq", FSQ)
QUANTIZERS.register("xcodec2_fsq", "audiotok.codecs.quantizers.xcodec2_fsq.XCodec2FSQ")  # FSQ bounded twice
QUANTIZER_KINDS = QUANTIZERS  # the former dict's name


def build_quantizer(kind: str, **kwargs) -> Quantizer:
    """Build a quantizer from a config: ``kind`` a registered name (rvq, split_rvq, fsq), ``kwargs``
    its fields (checked: unknown or wrongly typed ones raise naming the accepted fields)."""
    return QUANTIZERS.build({"type": kind, **kwargs})


__all__ = [
    "EuclideanCodebook",
    "FSQ",
    "QUANTIZERS",
    "QUANTIZER_KINDS",
    "Quantizer",
    "QuantizerOutput",
    "ResidualVQ",
    "SplitResidualVQ",
    "VectorQuantizer",
    "build_quantizer",
    "code_usage",
    "codebook_state_from_moshi",
    "kmeans",
    "perplexity",
]
