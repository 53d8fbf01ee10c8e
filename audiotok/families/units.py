"""Semantic units (HuBERT k-means, SLMTokBench's / GSLM's / SpeechGPT's tokens): the family module.

A self-supervised model's hidden layer + a k-means codebook, one unit stream at the model's frame rate
(50 Hz for HuBERT); the parts and the builder from ``audiotok distill kmeans`` output live in
:mod:`audiotok.tokenizers.units`. Configs ``hubert-units`` (HuBERT base, layer 9, 500 units: 448 bit/s)
and ``hubert-units-tiny``, both with random weights and centroids; real units are built with
``audiotok distill units`` and saved as an ordinary tokenizer folder (no official checkpoint format:
SSL weights come from transformers, centroids from our k-means). No decoder and no training recipe:
``detokenize`` needs a unit vocoder (a decoder configured at build time).
"""
from __future__ import annotations

from audiotok.families.base import BenchDefaults, Family, register_family
from audiotok.tokenizers.units import hubert_units_config

FAMILY = register_family(Family(
    name="units",
    configs={"hubert-units": hubert_units_config, "hubert-units-tiny": lambda: hubert_units_config(tiny=True)},
    bench=BenchDefaults(quality="hubert-units-tiny"),
    description="SSL layer + k-means: 1 unit stream at 50 Hz (HuBERT base L9 x 500: 448 bit/s), no decoder",
))
