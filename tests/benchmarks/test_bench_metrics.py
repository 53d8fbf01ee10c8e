"""Known-signal checks of every codec metric, codebook usage and the missing-score mechanism."""
import math

import numpy as np
import pytest
import torch

from audiotok.benchmarks.codec_metrics import (
    codec_metrics,
    mel_distance,
    mrstft_distance,
    si_sdr,
)
from audiotok.benchmarks.efficiency import codebook_usage, token_rates
from audiotok.benchmarks.scores import Missing, measure, summarize

RATE = 16_000


@pytest.fixture(scope="module")
def speechlike():
    """2 s of a vowel-like harmonic tone with a syllable-rate envelope (PESQ/STOI see speech)."""
    t = np.arange(2 * RATE) / RATE
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 4 * t)) * (t > 0.1) * (t < 1.9)
    return (0.2 * voiced * envelope).astype(np.float32)


def test_identical_signals_have_zero_distance_and_top_scores(speechlike):
    scores = codec_metrics(speechlike, speechlike)
    assert scores["mel_distance"] == 0.0
    assert scores["mrstft_distance"] == 0.0
    assert scores["si_sdr"] > 100
    assert scores["pesq_wb"] > 4.4 and scores["pesq_nb"] > 4.4
    assert scores["stoi"] == pytest.approx(1.0, abs=1e-3)


def test_si_sdr_is_scale_invariant_and_matches_a_known_noise_level(speechlike):
    assert si_sdr(speechlike, 0.5 * speechlike) > 100
    rng = np.random.default_rng(0)
    ref = speechlike.astype(np.float64) - speechlike.mean()
    noise = rng.standard_normal(ref.size)
    noise -= noise.mean()
    noise -= (noise @ ref) / (ref @ ref) * ref  # orthogonal to the reference
    noise *= np.sqrt((ref @ ref) / (noise @ noise) / 10)  # 10 dB below it
    assert si_sdr(ref, ref + noise) == pytest.approx(10.0, abs=0.05)


def test_distances_grow_with_distortion(speechlike):
    rng = np.random.default_rng(0)
    slightly = speechlike + 0.001 * rng.standard_normal(speechlike.size).astype(np.float32)
    badly = speechlike + 0.05 * rng.standard_normal(speechlike.size).astype(np.float32)
    assert 0 < mel_distance(speechlike, slightly) < mel_distance(speechlike, badly)
    assert 0 < mrstft_distance(speechlike, slightly) < mrstft_distance(speechlike, badly)
    noisy = codec_metrics(speechlike, badly)
    assert noisy["pesq_wb"] < 3 and noisy["stoi"] < 0.99


def test_silence_is_recorded_missing_with_a_reason():
    silence = np.zeros(RATE, dtype=np.float32)
    scores = codec_metrics(silence, silence)
    for name in ("pesq_wb", "pesq_nb", "stoi", "si_sdr"):
        assert isinstance(scores[name], Missing), name
        assert scores[name].reason
    assert "NoUtterances" in scores["pesq_wb"].reason


def test_measure_and_summarize_never_average_a_missing_score():
    assert measure(lambda: 1 / 0).reason.startswith("ZeroDivisionError")
    assert isinstance(measure(lambda: math.nan), Missing)
    summary = summarize([1.0, Missing("x"), 3.0])
    assert (summary.mean, summary.count, summary.missing) == (2.0, 2, 1)


def test_codebook_usage_and_rates():
    uniform = [torch.arange(64).repeat(2, 3)]  # 2 codebooks, every code equally often
    usage = codebook_usage(uniform, 64)
    assert usage[0]["perplexity"] == pytest.approx(64) and usage[0]["used"] == 1.0
    collapsed = codebook_usage([torch.zeros(1, 100, dtype=torch.long)], 64)[0]
    assert collapsed["perplexity"] == pytest.approx(1.0) and collapsed["used"] == 1 / 64
    assert token_rates(12.5, 8, 2048) == {"frame_rate": 12.5, "tokens_per_second": 100.0, "bitrate": 1100.0}
