"""Scores that may be missing: a metric that cannot be computed on an item is recorded with the
reason, counted in the report, and never averaged as a number (no silent PESQ = 1.0, no pystoi
placeholder 1e-5, no NaN). Every backend failure ends up here: an exception, a non-finite value, or a
sentinel the wrapper recognises and turns into :class:`MetricUndefined`."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Missing:
    """A metric that failed on one item; ``reason`` says why (exception type and message)."""

    reason: str

    def to_json(self) -> dict[str, str]:
        return {"missing": self.reason}


Score = "float | Missing"


class MetricUndefined(ValueError):
    """The metric has no value on this input (too short, silent, no speech); the message is the
    reason shown in the report, as is (no exception type in front)."""


class NoSpeech(MetricUndefined):
    """A speaker metric on audio in which the voice activity detector finds no speech."""


def measure(fn: Callable[[], float]) -> float | Missing:
    """Call ``fn``; a raised exception or a non-finite result becomes :class:`Missing`."""
    try:
        value = float(fn())
    except MetricUndefined as err:
        return Missing(str(err)[:300])
    except Exception as err:  # noqa: BLE001 - any metric failure is data, not a crash
        return Missing(f"{type(err).__name__}: {err}".strip()[:300])
    if not math.isfinite(value):
        return Missing(f"non-finite value {value}")
    return value


def split_scores(scores: dict[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """``{name: float | Missing}`` -> (``{name: value}``, ``{name: reason}``) for JSON."""
    values = {k: v for k, v in scores.items() if not isinstance(v, Missing)}
    missing = {k: v.reason for k, v in scores.items() if isinstance(v, Missing)}
    return values, missing


@dataclass
class Summary:
    """Mean over the items where the metric exists, and how many items lack it."""

    mean: float | None
    count: int
    missing: int

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "count": self.count, "missing": self.missing}


def summarize(values: Iterable[float | Missing]) -> Summary:
    """Mean of the numbers; Missing, None and NaN/Inf are counted as missing, never averaged."""
    present, missing = [], 0
    for v in values:
        if isinstance(v, Missing) or v is None or not math.isfinite(float(v)):
            missing += 1
        else:
            present.append(float(v))
    mean = sum(present) / len(present) if present else None
    return Summary(mean, len(present), missing)
