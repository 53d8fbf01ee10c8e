"""The teacher contract and teacher specs (``"hubert:/path@avg"``, ``"phones"``).

The teacher kinds and ``build_teacher`` live in :mod:`audiotok.distill.teachers` (the factory sits
above the teachers it builds, so this base module imports none of them).

A teacher is a frozen module that turns audio at its own ``sample_rate`` into features
``[B, D, T_teacher]`` at a known ``frame_rate``. ``config_dict()`` identifies it exactly (weights
fingerprint, layer, dtype, ...) so a feature cache built with one teacher is never read as another.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from fractions import Fraction

import torch
from torch import nn


class Teacher(nn.Module):
    """Frozen feature extractor: ``forward(wav[B, 1, T], lengths=None) -> [B, D, T_teacher]``.

    Subclasses set ``sample_rate`` (Hz, int), ``frame_rate`` (Hz, exact ``Fraction``), ``dim`` and
    ``output`` (``"features"``: float features; ``"labels"``: the cache stores class ids ``[1, T]``).
    """

    sample_rate: int
    frame_rate: Fraction
    dim: int
    output: str = "features"

    def freeze(self) -> None:
        """Eval mode and no gradients, for good: ``train()`` cannot switch a teacher back."""
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> Teacher:
        return super().train(False)

    @property
    def device(self) -> torch.device:
        parameter = next(self.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")

    def config_dict(self) -> dict:
        raise NotImplementedError

    def config_hash(self) -> str:
        return config_hash(self.config_dict())


def config_hash(config: dict) -> str:
    """Stable short hash of a teacher's ``config_dict`` (the cache key's teacher half)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class TeacherSpec:
    """A parsed teacher spec. String form: ``KIND`` (``phones``) or ``KIND:SOURCE[@LAYER]`` with KIND
    a registered teacher kind (:data:`audiotok.distill.teachers.TEACHERS`: hubert / wavlm / hf, the
    kind from the model's config), SOURCE a folder or hub id, LAYER ``avg``
    (mean of all hidden states, SpeechTokenizer's release) or an int (``9``: SpeechTokenizer paper's
    best text alignment; ``-1``: last). Dict form: the same fields plus ``dtype`` (float32/bfloat16).
    """

    kind: str
    source: str = ""
    layer: int | str = "avg"
    dtype: str = "float32"

    @classmethod
    def parse(cls, spec: str | dict | TeacherSpec) -> TeacherSpec:
        if isinstance(spec, TeacherSpec):
            return spec
        if isinstance(spec, dict):
            fields = dict(spec)
            if "layer" in fields:
                fields["layer"] = _parse_layer(str(fields["layer"]))
            return cls(**fields)._checked()
        text = spec.strip()
        if text and ":" not in text and "@" not in text and "/" not in text:
            return cls(kind=text)._checked()  # a kind that needs no source ("phones")
        kind, sep, rest = text.partition(":")
        if not sep or not rest or not kind:
            raise ValueError(
                f"bad teacher spec {spec!r}: use 'phones' or 'KIND:SOURCE[@LAYER]', e.g. "
                "'hubert:/models/hubert-base-ls960@avg' or 'wavlm:microsoft/wavlm-large@-1'"
            )
        source, layer = rest, "avg"
        head, at, tail = rest.rpartition("@")
        if at and _is_layer(tail):
            source, layer = head, _parse_layer(tail)
        return cls(kind=kind, source=source, layer=layer)._checked()

    def _checked(self) -> TeacherSpec:
        """Syntax only; whether the kind exists and needs a source is the factory's check."""
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"teacher dtype must be 'float32' or 'bfloat16', got {self.dtype!r}")
        return self


def _is_layer(text: str) -> bool:
    return text == "avg" or text.lstrip("-").isdigit()


def _parse_layer(text: str) -> int | str:
    if not _is_layer(text):
        raise ValueError(f"teacher layer must be 'avg' or an integer, got {text!r}")
    return text if text == "avg" else int(text)


def dtype_from_name(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]
