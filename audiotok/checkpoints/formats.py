"""Official checkpoint formats: :data:`FORMATS` and ``detect`` / ``detect_and_convert``.

A format is registered by its family module (:mod:`audiotok.families`) as a :class:`CheckpointFormat`
whose ``detect(files, trust_checkpoint)`` returns ``None`` when the files are not of that format, a
zero-argument converter when they are, and raises :class:`~audiotok.errors.CheckpointError` naming
what is missing or does not match when they are of that format but incomplete or inconsistent.
Formats are tried in registration order.

``detect_and_convert`` takes a folder, one of the files, or the list of files and returns the codec in
eval mode, or ``None``. PyTorch weight files (``.pt``, ``.ckpt``) are read weights-only;
``trust_checkpoint=True`` allows one that pickles Python objects (which runs code from the file).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from audiotok.checkpoints.convert import Files, PathLike
from audiotok.codecs.codec import Codec
from audiotok.registry import Registry

Converter = Callable[[], Codec]


@dataclass(frozen=True)
class CheckpointFormat:
    """One official layout: ``detect(files, trust_checkpoint) -> converter | None``; ``files`` says
    which files it is made of (for error messages and docs)."""

    family: str
    files: str
    detect: Callable[[Files, bool], Converter | None]


# Registered by the family modules, found on the first lookup (the plugin list imports them).
FORMATS = Registry("checkpoint format", plugins=("audiotok.families",), class_path=False)


def detect(path: PathLike | Sequence[PathLike], trust_checkpoint: bool = False) -> Converter | None:
    """A function converting the checkpoint at ``path``, or None if it is not an official format."""
    files = Files.at(path)
    for _, fmt in FORMATS.items():
        found = fmt.detect(files, trust_checkpoint)
        if found is not None:
            return found
    return None


def detect_and_convert(path: PathLike | Sequence[PathLike], trust_checkpoint: bool = False) -> Codec | None:
    """The codec stored in ``path`` (folder, file, or list of files) if it is an official format."""
    convert = detect(path, trust_checkpoint=trust_checkpoint)
    return None if convert is None else convert()


def describe_formats() -> str:
    """``family: files`` of every registered format, for error messages."""
    return "; ".join(f"{fmt.family} {fmt.files}" for _, fmt in FORMATS.items())
