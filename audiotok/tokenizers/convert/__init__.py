"""Official checkpoints -> our :class:`~audiotok.codecs.Codec`, detected from the files present.

=================  ==========================================================  ======================
format             files                                                       module
=================  ==========================================================  ======================
SpeechTokenizer    ``config.json`` (``n_filters``, ``strides``, ...) + ``.pt``   :mod:`.speechtokenizer`
Mimi (moshi)       ``tokenizer-*.safetensors``                                 :mod:`.mimi_moshi`
Mimi (HF)          ``config.json`` (``model_type: mimi``) + ``model.safetensors``  :mod:`.mimi_hf`
WavTokenizer       training ``.yaml`` + Lightning ``.ckpt``                    :mod:`.wavtokenizer`
=================  ==========================================================  ======================

``detect_and_convert`` takes a folder, one of the files, or the list of files; it returns the codec
in eval mode (SpeechTokenizer and WavTokenizer keep weight norm, Mimi ships folded weights), ``None``
when the files are none of these formats, and raises :class:`CheckpointError` naming what is
missing or does not match when they are one of them but incomplete or inconsistent. PyTorch weight
files (``.pt``, ``.ckpt``) are read weights-only; ``trust_checkpoint=True`` allows one that pickles
Python objects (which runs code from the file: only for files you trust).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Union

from audiotok.codecs.codec import Codec

from .common import CheckpointError

PathLike = Union[str, Path]
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin")


def detect_and_convert(path: PathLike | Sequence[PathLike], trust_checkpoint: bool = False) -> Codec | None:
    """The codec stored in ``path`` (folder, file, or list of files) if it is an official format."""
    convert = detect(path, trust_checkpoint=trust_checkpoint)
    return None if convert is None else convert()


def detect(path: PathLike | Sequence[PathLike], trust_checkpoint: bool = False) -> Callable[[], Codec] | None:
    """A function converting the checkpoint at ``path``, or None if it is not an official format."""
    files = Files.at(path)
    for detector in (_speechtokenizer, _mimi_hf, _mimi_moshi, _wavtokenizer):
        found = detector(files, trust_checkpoint)
        if found is not None:
            return found
    return None


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


def _json(path: Path) -> dict | None:
    if path.suffix != ".json":
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _speechtokenizer(files: Files, trust_checkpoint: bool = False):
    from .speechtokenizer import WEIGHTS_NAME, convert, is_speechtokenizer_config

    if not files.concern(lambda f: f.suffix in (".json", *WEIGHT_SUFFIXES)):
        return None
    configs = files.pick(lambda f: is_speechtokenizer_config(_json(f)))
    if not configs:
        return None
    weights = (files.pick(lambda f: f.name == WEIGHTS_NAME)
               or files.pick(lambda f: f.suffix in WEIGHT_SUFFIXES))
    if len(weights) != 1:
        raise CheckpointError(
            f"{configs[0]} is a SpeechTokenizer config, but "
            + (f"there is no weights file ({WEIGHTS_NAME}) next to it" if not weights else
               f"several weights files could go with it: {[w.name for w in weights]}")
            + "; pass the config and the weights file together")
    return lambda: convert(configs[0], weights[0], trust_checkpoint=trust_checkpoint)


def _mimi_hf(files: Files, trust_checkpoint: bool = False):  # safetensors: nothing to trust
    from .mimi_hf import convert, is_hf_mimi_config

    if not files.concern(lambda f: f.name in ("config.json", "model.safetensors")):
        return None
    configs = files.pick(lambda f: is_hf_mimi_config(_json(f)))
    if not configs:
        return None
    folder = configs[0].parent
    if not (folder / "model.safetensors").is_file():
        raise CheckpointError(f"{configs[0]} is a Hugging Face Mimi config, but {folder} has no "
                              "model.safetensors; download both files of kyutai/mimi")
    return lambda: convert(folder)


def _mimi_moshi(files: Files, trust_checkpoint: bool = False):  # safetensors: nothing to trust
    from safetensors import safe_open

    from audiotok.tokenizers.loading import unreadable_safetensors

    from .mimi_moshi import convert, is_moshi_mimi

    def is_moshi(f: Path) -> bool:
        if f.suffix != ".safetensors":
            return False
        try:
            with safe_open(str(f), framework="pt") as handle:
                return is_moshi_mimi(handle.keys())
        except Exception as err:
            if type(err).__name__ == "SafetensorError":
                raise unreadable_safetensors(f, err) from None
            raise

    if not files.concern(lambda f: f.suffix == ".safetensors"):
        return None
    found = files.pick(is_moshi)
    if len(found) > 1:
        raise CheckpointError(f"several moshi Mimi checkpoints {[f.name for f in found]}: pass one file")
    return (lambda: convert(found[0])) if found else None


def _wavtokenizer(files: Files, trust_checkpoint: bool = False):
    from .wavtokenizer import convert, is_wavtokenizer_yaml

    if not files.concern(lambda f: f.suffix in (".yaml", ".yml", ".ckpt")):
        return None
    configs = files.pick(lambda f: f.suffix in (".yaml", ".yml") and is_wavtokenizer_yaml(f))
    if not configs:
        return None
    checkpoints = files.pick(lambda f: f.suffix == ".ckpt")
    if not checkpoints:
        raise CheckpointError(f"{configs[0]} is a WavTokenizer training config but no .ckpt is next to "
                              "it; WavTokenizer needs both (the YAML decides 40 vs 75 tokens/s)")
    if len(configs) > 1 or len(checkpoints) > 1:
        raise CheckpointError(f"ambiguous WavTokenizer files {[f.name for f in configs + checkpoints]}: "
                              "pass exactly one YAML and one .ckpt, e.g. detect_and_convert([yaml, ckpt])")
    return lambda: convert(configs[0], checkpoints[0], trust_checkpoint=trust_checkpoint)


__all__ = ["CheckpointError", "detect", "detect_and_convert"]
