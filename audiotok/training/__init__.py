"""Training: one GAN LightningModule for every codec, recipes, data module, checkpoints.

Importing this package is cheap; Lightning loads with the first name that needs it::

    from audiotok.training import CodecLightningModule, CodecDataModule
    module = CodecLightningModule(codec="mimi-tiny", recipe="mimi")

Command line: ``audiotok fit --config configs/<recipe>.yaml`` (LightningCLI; see :mod:`audiotok.cli.train`).
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "CodecLightningModule": "module", "resolve_codec_config": "module",
    "CodecDataModule": "data",
    "RECIPES": "recipes", "get_recipe": "recipes",
    "AtomicCheckpointIO": "checkpointing", "ExportTokenizer": "checkpointing",
    "Balancer": "losses", "MultiScaleMelLoss": "losses", "MultiResolutionSTFTLoss": "losses",
    "waveform_l1_loss": "losses",
}  # fmt: skip
__all__ = sorted(_EXPORTS)  # noqa: PLE0605 - names resolve lazily


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'audiotok.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"audiotok.training.{_EXPORTS[name]}"), name)
