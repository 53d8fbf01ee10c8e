"""Codes ``[Q, F]`` ↔ one flat sequence of LLM token ids, and back.

A speech LM sees a single vocabulary. Following Llasa's layout, the text vocabulary and its special
tokens come first, then one block of ``codebook_size`` ids per codebook::

    token = offset + q * codebook_size + code        (q = codebook level, 0-based)

so a token also says which level it belongs to. ``order="frame"`` interleaves levels frame by frame
(``f0q0 f0q1 … f1q0 …``, what delay-free multi-codebook LMs read); ``order="codebook"`` writes all frames
of level 0, then level 1, … Optional ``bos`` / ``eos`` ids (e.g. ``SPEECH_GENERATION_START/END``)
frame the sequence.

Llasa: ``offset = llasa_offset(len(text_tokenizer))`` (text vocab + 8 specials = 128256 + 8 for Llama 3).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

ORDERS = ("frame", "codebook")
LLASA_NUM_SPECIALS = 8  # TEXT_/SPEECH_ × GENERATION_/UNDERSTANDING_ × START/END


def llasa_offset(text_vocab_size: int, num_specials: int = LLASA_NUM_SPECIALS) -> int:
    """First speech token id in a Llasa-style vocabulary: after the text vocab and its specials."""
    return int(text_vocab_size) + int(num_specials)


@dataclass(frozen=True)
class FlattenSpec:
    """How codes become LLM tokens (see the module docstring); stored with tokenized datasets."""

    codebook_size: int
    offset: int = 0
    order: str = "frame"
    bos: int | None = None
    eos: int | None = None

    def __post_init__(self):
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}")
        if self.codebook_size <= 0 or self.offset < 0:
            raise ValueError(f"need codebook_size > 0 and offset >= 0, got {self.codebook_size}, {self.offset}")

    def vocab_end(self, n_q: int) -> int:
        """One past the largest speech token id for ``n_q`` codebooks (the LM's vocab size at least)."""
        return self.offset + n_q * self.codebook_size

    def to_dict(self) -> dict:
        return asdict(self)


def _as_numpy(x) -> tuple[np.ndarray, bool]:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy(), True
    return np.asarray(x), False


def _like(array: np.ndarray, as_torch: bool):
    return torch.from_numpy(array) if as_torch else array


def flatten_codes(codes, codebook_size: int, offset: int = 0, order: str = "frame",
                  bos: int | None = None, eos: int | None = None):
    """``codes [Q, F]`` → tokens ``[N]`` (int64; a tensor for a tensor input, else numpy).

    ``N = Q * F`` plus one for each of ``bos`` / ``eos`` given.
    """
    spec = FlattenSpec(codebook_size, offset, order, bos, eos)
    array, as_torch = _as_numpy(codes)
    if array.ndim != 2:
        raise ValueError(f"flatten_codes takes one item's codes [Q, F], got shape {array.shape}; "
                         "loop over a batch with TokenizedAudio.unbatch()")
    array = array.astype(np.int64)
    if array.size and (array.min() < 0 or array.max() >= codebook_size):
        raise ValueError(f"codes must lie in [0, {codebook_size}), got [{array.min()}, {array.max()}]")
    levels = np.arange(array.shape[0], dtype=np.int64)[:, None]
    tokens = spec.offset + levels * codebook_size + array  # [Q, F]
    flat = tokens.T.reshape(-1) if order == "frame" else tokens.reshape(-1)
    parts = ([[bos]] if bos is not None else []) + [flat] + ([[eos]] if eos is not None else [])
    return _like(np.concatenate([np.asarray(p, dtype=np.int64) for p in parts]), as_torch)


def unflatten_tokens(tokens, n_q: int, codebook_size: int, offset: int = 0, order: str = "frame",
                     bos: int | None = None, eos: int | None = None):
    """The inverse of :func:`flatten_codes`: tokens ``[N]`` → codes ``[n_q, F]`` (int64).

    ``bos`` / ``eos`` are stripped when present. Raises ``ValueError`` when a token is outside the
    speech range or sits at a position of another codebook level (a malformed LM output).
    """
    spec = FlattenSpec(codebook_size, offset, order, bos, eos)
    array, as_torch = _as_numpy(tokens)
    array = array.astype(np.int64).reshape(-1)
    if bos is not None and array.size and array[0] == bos:
        array = array[1:]
    if eos is not None and array.size and array[-1] == eos:
        array = array[:-1]
    if array.size % n_q:
        raise ValueError(f"{array.size} speech tokens is not a multiple of n_q={n_q}: the sequence was "
                         "cut mid-frame; drop the incomplete frame before unflattening")
    frames = array.size // n_q
    grid = array.reshape(frames, n_q).T if order == "frame" else array.reshape(n_q, frames)
    codes = grid - spec.offset - np.arange(n_q, dtype=np.int64)[:, None] * codebook_size
    bad = (codes < 0) | (codes >= codebook_size)
    if bad.any():
        q, f = np.argwhere(bad)[0]
        raise ValueError(f"token {grid[q, f]} at frame {f} is not a level-{q} speech token (expected "
                         f"[{spec.offset + q * codebook_size}, {spec.offset + (q + 1) * codebook_size})); "
                         "check offset, order and n_q")
    return _like(np.ascontiguousarray(codes), as_torch)
