"""A deterministic generator of varied, plain English sentences.

Sentences come from templates filled with a common-word vocabulary. Every word that can appear in a
normalised transcript is in the CMU pronouncing dictionary that pocketsphinx ships (checked by the
tests), so the recogniser and a phone aligner cover the whole corpus. Spoken text keeps digits,
capitals and punctuation (the synthesiser reads them); transcripts are :func:`normalize_text` of it.
"""
from __future__ import annotations

import random
import re

from audiotok.data.text import normalize_text, number_to_words

ADJECTIVES = (
    "old new small large big red blue green black white yellow brown dark bright heavy light long "
    "short warm cold clean quiet empty little young round soft wooden simple famous"
).split()
PREDICATES = (
    "good hard easy late early strange useful important difficult cheap expensive pleasant "
    "dangerous beautiful ready broken closed open full"
).split()
NOUNS = (
    "book box chair table car boat house letter window door garden bottle basket picture lamp coat "
    "bag ball cup plate key map ticket radio clock bicycle horse dog cat bird apple cake shirt hat "
    "phone computer bridge road train glass"
).split()
PAST_VERBS = (
    "found bought saw took carried painted cleaned moved opened fixed sold brought left washed "
    "dropped lost kept held made wanted liked needed checked closed counted watched pushed pulled "
    "covered showed"
).split()
BASE_VERBS = (
    "find buy see take carry paint clean move open fix sell bring wash keep hold check close count "
    "watch push pull cover"
).split()
PREPOSITIONS = ("near", "behind", "under", "beside", "inside", "by", "next to", "in front of")
PLACES = (
    "kitchen station market garden office school library village river park hotel church hospital "
    "bank shop farm harbor museum city street"
).split()
NAMES = (
    "John Mary Peter Susan David Linda James Karen Robert Helen Thomas Anna Michael Laura George "
    "Emily Paul Sarah Frank Alice"
).split()
RELATIVES = "brother sister mother father uncle aunt friend neighbor teacher cousin".split()
TIMES = (
    "yesterday", "last night", "this morning", "on Monday", "on Friday evening", "after lunch",
    "before dinner", "last week", "every day", "in the summer", "at noon", "on Sunday afternoon",
)
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MEALS = ("breakfast", "lunch", "dinner")

TEMPLATES = (
    "The {adj} {noun} {past} the {noun} {prep} the {place}.",
    "{name} {past} {num} {adj} {nouns} {time}.",
    "We {past} a {adj} {noun} {prep} the {place} {time}.",
    "My {relative} {past} the {noun} and {past} it {prep} the {place}.",
    "It was {pred} to {base} the {noun} {time}.",
    "Please {base} the {adj} {noun} before {day}.",
    "There were {num} {nouns} {prep} the {place} {time}.",
    "{name} said that the {noun} was {pred}.",
    "After {meal}, {name} {past} the {adj} {noun} {prep} the {place}.",
    "The {nouns} in the {place} were {pred} and {adj}.",
    "How many {nouns} did {name} {base} {time}?",
    "I think the {adj} {noun} is {prep} the {place}.",
    "{name} and {name} {past} {num} {nouns} at the {place} on {day}.",
    "Our {relative} wanted to {base} the {adj} {noun}, but it was {pred}.",
)


def plural(noun: str) -> str:
    return noun + ("es" if re.search(r"(s|x|ch|sh)$", noun) else "s")


_SLOTS = {
    "adj": ADJECTIVES, "pred": PREDICATES, "noun": NOUNS, "past": PAST_VERBS, "base": BASE_VERBS,
    "prep": PREPOSITIONS, "place": PLACES, "name": NAMES, "relative": RELATIVES, "time": TIMES,
    "day": DAYS, "meal": MEALS,
}


def _fill(template: str, rng: random.Random) -> str:
    def pick(match: re.Match) -> str:
        slot = match.group(1)
        if slot == "nouns":
            return plural(rng.choice(NOUNS))
        if slot == "num":
            return str(rng.randint(2, 99))  # digits: the transcript spells them out
        return rng.choice(_SLOTS[slot])

    return re.sub(r"\{(\w+)\}", pick, template)


def generate_sentences(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct sentences (spoken form), the same list for the same ``seed``."""
    rng = random.Random(f"audiotok-corpus-sentences-{seed}")
    sentences: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(sentences) < count:
        attempts += 1
        if attempts > 50 * count + 1000:
            raise RuntimeError(f"could not generate {count} distinct sentences")
        sentence = _fill(rng.choice(TEMPLATES), rng)
        key = normalize_text(sentence)
        if key not in seen:
            seen.add(key)
            sentences.append(sentence)
    return sentences


def vocabulary() -> set[str]:
    """Every word a normalised transcript from this generator can contain."""
    words: set[str] = set()
    fixed_text = " ".join(re.sub(r"\{\w+\}", " ", t) for t in TEMPLATES)
    for text in [fixed_text, *(" ".join(v) for v in _SLOTS.values())]:
        words.update(normalize_text(text).split())
    words.update(plural(n) for n in NOUNS)
    for n in range(2, 100):
        words.update(number_to_words(n).split())
    return words
