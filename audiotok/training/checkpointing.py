"""Atomic checkpoint files and the end-of-fit tokenizer export.

Lightning 2.6's ``_atomic_save`` writes through an fsspec transaction whose temporary file is made
by ``tempfile.mkstemp()`` in the system temp folder, then ``shutil.move``-d over the target. When the
temp folder is on another file system (a tmpfs /tmp, a network checkpoint folder), that move is a copy:
a crash mid-copy leaves a truncated checkpoint under the real name. :class:`AtomicCheckpointIO`
writes next to the target, fsyncs, then ``os.replace``-s (atomic on POSIX within one folder), so a
checkpoint path always holds either the previous complete file or the new complete file.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from audiotok.data.outputs import give_new_file_mode


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temp file in ``path``'s folder, fsync, then atomically rename onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        give_new_file_mode(Path(tmp))  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O whose saves are atomic on local file systems (see the module doc)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        if "://" in str(path):  # remote storage: keep Lightning's own transactional writer
            super().save_checkpoint(checkpoint, path)
            return
        atomic_torch_save(checkpoint, path)


class ExportTokenizer(Callback):
    """At the end of ``fit``, write the trained codec (EMA weights when enabled) as a loadable tokenizer
    folder (``config.json`` + ``model.safetensors``) into ``<log_dir>/tokenizer`` or ``dirpath``."""

    def __init__(self, dirpath: str | None = None, enabled: bool = True):
        self.dirpath, self.enabled = dirpath, enabled

    def target(self, trainer) -> Path:
        if self.dirpath is not None:
            return Path(self.dirpath)
        return Path(trainer.log_dir or trainer.default_root_dir) / "tokenizer"

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.enabled and trainer.is_global_zero:
            target = self.target(trainer)
            pl_module.export_tokenizer(target)
            print(f"exported the trained tokenizer to {target}  (load it with audiotok.load({str(target)!r}))",
                  flush=True)
