"""Shared pieces of the official-checkpoint converters: the files given, renaming keys, loading strictly.

Every converter (in its family module, :mod:`audiotok.families`) builds our config from the
checkpoint's own config, renames the official keys onto our module names, and loads with
:func:`load_converted`, which refuses any missing, unexpected or mis-shaped tensor and names them.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Union

import torch

from audiotok.checkpoints.io import State, read_state, torch_load_checkpoint, unreadable_safetensors
from audiotok.codecs.codec import Codec, CodecConfig, load_state_strict
from audiotok.errors import CheckpointError

PathLike = Union[str, Path]
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin")

# Old-style (torch.nn.utils.weight_norm) and parametrization-style weight-norm names -> ours.
WEIGHT_NORM_RULES = [
    (r"\.weight_g$", ".parametrizations.weight.original0"),
    (r"\.weight_v$", ".parametrizations.weight.original1"),
]


def rename(state: Mapping[str, torch.Tensor], rules: Iterable[tuple[str, str]]) -> State:
    """Apply regex substitutions ``rules`` in order to every key; tensors are kept as they are."""
    rules = [(re.compile(pattern), repl) for pattern, repl in rules]
    out: State = {}
    for key, value in state.items():
        for pattern, repl in rules:
            key = pattern.sub(repl, key)
        if key in out:
            raise CheckpointError(f"two checkpoint tensors map onto {key!r}: the key map is ambiguous")
        out[key] = value
    return out


def take(state: Mapping[str, torch.Tensor], prefix: str) -> State:
    """The entries under ``prefix`` with the prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def codebook_from_encodec(codebook: Mapping[str, torch.Tensor], where: str) -> State:
    """EnCodec-layout buffers (SpeechTokenizer, WavTokenizer) ``inited/cluster_size/embed/embed_avg``
    -> ours; ``embed`` is used as stored (it is what the reference decodes with)."""
    needed = {"inited", "cluster_size", "embed", "embed_avg"}
    if not needed <= set(codebook):
        raise CheckpointError(f"{where}: codebook buffers {sorted(needed - set(codebook))} are "
                              f"missing (found {sorted(codebook)})")
    return {"initialized": codebook["inited"].float().reshape(1),
            "cluster_size": codebook["cluster_size"].float(),
            "embed": codebook["embed"].float(),
            "embed_avg": codebook["embed_avg"].float()}


def build(config: CodecConfig, folded: bool = False) -> Codec:
    """An empty :class:`Codec`; ``folded``: without weight norm, for weights shipped folded (Mimi)."""
    codec = Codec(config)
    return codec.fold_weight_norm() if folded else codec


def load_converted(codec: Codec, state: State, source: str) -> Codec:
    """Load converted ``state`` into ``codec`` strictly (naming any mismatch); return it in eval mode."""
    own = codec.state_dict()
    state = {k: v.to(own[k].dtype) if k in own and v.is_floating_point() else v for k, v in state.items()}
    try:
        load_state_strict(codec, state, source=source)
    except ValueError as err:
        raise CheckpointError(str(err)) from None
    return codec.eval()


def require(data: Mapping, keys: Iterable[str], where: str) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise CheckpointError(f"{where} lacks the fields {missing}; is it the config of this checkpoint?")


class Files:
    """The files the caller named, and the other files of their folder(s) (used when none of the
    named files has the kind asked for)."""

    def __init__(self, given: list[Path], nearby: list[Path]):
        self.given, self.nearby = given, nearby

    @classmethod
    def at(cls, path: PathLike | Sequence[PathLike]) -> Files:
        paths = [Path(p).expanduser() for p in ([path] if isinstance(path, (str, Path)) else path)]
        for p in paths:
            if not p.exists():
                raise FileNotFoundError(f"{p}: no such file or folder")
        given = [p for p in paths if p.is_file()]
        folders = {p for p in paths if p.is_dir()} | {p.parent for p in given}
        nearby = sorted(f for d in folders for f in d.iterdir() if f.is_file() and f not in given)
        return cls(given, nearby)

    def concern(self, accept: Callable[[Path], bool]) -> bool:
        """False when files were named and none of them is of a kind ``accept`` recognises."""
        return not self.given or any(accept(f) for f in self.given)

    def pick(self, accept: Callable[[Path], bool]) -> list[Path]:
        return [f for f in self.given if accept(f)] or [f for f in self.nearby if accept(f)]


def read_json(path: Path) -> dict | None:
    """A ``.json`` file's object, or None (another suffix, unreadable, not an object)."""
    if path.suffix != ".json":
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def detect_transformers_folder(files: Files, model_type: str, what: str, repo: str,
                               convert: Callable[[Path], Codec]):
    """Detector body for a transformers folder (``config.json`` with ``model_type`` +
    ``model.safetensors``): ``convert(folder)`` deferred, None when ``files`` hold no such config, and
    :class:`CheckpointError` naming ``repo`` when the weights file is missing next to it."""
    if not files.concern(lambda f: f.name in ("config.json", "model.safetensors")):
        return None
    configs = files.pick(lambda f: (read_json(f) or {}).get("model_type") == model_type)
    if not configs:
        return None
    folder = configs[0].parent
    if not (folder / "model.safetensors").is_file():
        raise CheckpointError(f"{configs[0]} is a {what} config, but {folder} has no model.safetensors; "
                              f"download both files of {repo}")
    return lambda: convert(folder)


__all__ = ["WEIGHT_NORM_RULES", "CheckpointError", "Files", "State", "build", "codebook_from_encodec",
           "detect_transformers_folder", "load_converted", "read_json", "read_state", "rename", "require", "take", "torch_load_checkpoint",
           "unreadable_safetensors", "WEIGHT_SUFFIXES", "PathLike"]
