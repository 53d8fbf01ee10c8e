"""Word error rate: word-level edit distance over reference length, on normalised text."""
from __future__ import annotations

from typing import Iterable

from audiotok.data.text import normalize_text


def word_edits(reference: list[str], hypothesis: list[str]) -> int:
    """Minimum substitutions + deletions + insertions turning ``reference`` into ``hypothesis``."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, 1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, 1):
            current.append(min(
                previous[j] + 1,  # deletion
                current[j - 1] + 1,  # insertion
                previous[j - 1] + (ref_word != hyp_word),  # substitution or match
            ))
        previous = current
    return previous[-1]


def word_error_rate(references: Iterable[str], hypotheses: Iterable[str]) -> float:
    """Corpus WER: total edits / total reference words, after :func:`normalize_text` on both sides."""
    edits = words = 0
    for ref, hyp in zip(references, hypotheses, strict=True):
        ref_words, hyp_words = normalize_text(ref).split(), normalize_text(hyp).split()
        edits += word_edits(ref_words, hyp_words)
        words += len(ref_words)
    if words == 0:
        raise ValueError("word_error_rate needs at least one reference word")
    return edits / words
