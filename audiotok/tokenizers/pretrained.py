"""Trained tokenizers shipped inside the package: ``audiotok.load("mimi-tiny-trained")``.

Each one is a folder under ``audiotok/assets/pretrained/<name>/`` written by ``save_pretrained``
(``config.json`` + ``model.safetensors``) with a ``README.md`` saying how it was trained (data, steps,
time, final validation mel distance). They are small demo models trained for minutes on a CPU with
``configs/*-tiny-train.yaml``: real, spread-out codebooks for examples and tests, not production codecs.
The registry is whatever folders are present, so adding one needs no code change.
"""
from __future__ import annotations

from pathlib import Path

PRETRAINED_ROOT = Path(__file__).resolve().parent.parent / "assets" / "pretrained"
WEIGHT_FILES = ("config.json", "model.safetensors")


def available_pretrained() -> list[str]:
    """Names of the shipped trained tokenizers (sorted); empty when none are installed."""
    if not PRETRAINED_ROOT.is_dir():
        return []
    return sorted(folder.name for folder in PRETRAINED_ROOT.iterdir()
                  if folder.is_dir() and all((folder / f).is_file() for f in WEIGHT_FILES))


def available_pretrained_text() -> str:
    """The shipped names as one phrase for error messages: ``"a, b"`` or ``"none installed"``."""
    return ", ".join(available_pretrained()) or "none installed"


def is_pretrained(name: str) -> bool:
    """True when ``name`` is a shipped trained tokenizer (a bare name, not a path)."""
    return "/" not in name and "\\" not in name and name in available_pretrained()


def pretrained_path(name: str) -> Path:
    """The folder of the shipped tokenizer ``name``, for ``audiotok.load`` or ``Codec.from_pretrained``."""
    if not is_pretrained(name):
        raise ValueError(f"{name!r} is not a shipped trained tokenizer; available: "
                         f"{available_pretrained_text()}")
    return PRETRAINED_ROOT / name
