"""Semantic units (HuBERT k-means, SLMTokBench's / GSLM's / SpeechGPT's tokens): the family module.

A self-supervised model's hidden layer (encoder ``ssl_layer``) + a one-level codebook holding k-means
centroids, one unit stream at the model's frame rate (50 Hz for HuBERT), decoder ``no_vocoder`` unless a
unit vocoder is configured (parts: :mod:`audiotok.codecs.modules.ssl`). Configs ``hubert-units``
(HuBERT base, layer 9, 500 units: 448 bit/s) and ``hubert-units-tiny``, with random weights and random
centroids; real units are built from ``audiotok distill kmeans`` output by ``audiotok distill units``
(:func:`audiotok.tokenizers.units.units_codec_from_kmeans`) and saved as an ordinary tokenizer folder.
No official checkpoint format (SSL weights come from transformers, centroids from our k-means) and no
training recipe.
"""
from __future__ import annotations

import math

from audiotok.codecs.codec import CodecConfig
from audiotok.families.base import BenchDefaults, Family, register_family


def units_config(model_config: dict, centroids_shape: tuple[int, int], layer: int | str = 9,
                 normalize: bool = False, sample_rate: int = 16000, vocoder: dict | None = None,
                 name: str = "units") -> CodecConfig:
    """The :class:`CodecConfig` of SSL ``model_config`` layer ``layer`` + ``K`` centroids of dim ``D``."""
    num_units, dim = centroids_shape
    hop = math.prod(model_config.get("conv_stride", (5, 2, 2, 2, 2, 2, 2)))
    encoder = {"type": "ssl_layer", "model_config": dict(model_config), "layer": layer,
               "normalize": normalize, "sample_rate": sample_rate}
    quantizer = {"type": "rvq", "dim": dim, "n_q": 1, "codebook_size": num_units, "kmeans_init": False,
                 "threshold_ema_dead_code": 0.0}
    decoder = dict(vocoder) if vocoder else {"type": "no_vocoder", "hop_length": hop}
    return CodecConfig(sample_rate=sample_rate, encoder=encoder, quantizer=quantizer, decoder=decoder,
                       name=name, family="units")


TINY_HUBERT = {"model_type": "hubert", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
               "intermediate_size": 64, "conv_dim": [16] * 7, "num_conv_pos_embeddings": 16,
               "num_conv_pos_embedding_groups": 2}


def hubert_units_config(tiny: bool = False) -> CodecConfig:
    """SLMTokBench's semantic baseline: HuBERT base (hubert-base-ls960 architecture) layer 9 and 500
    units (50 Hz, 1 × 500, 448 bit/s); ``tiny``: a 2-layer, 32-wide HuBERT, layer 2, 64 units.
    Registered names build random weights (random centroids too); real units come from
    :func:`units_codec_from_kmeans`."""
    if tiny:
        return units_config(TINY_HUBERT, (64, 32), layer=2, name="hubert-units-tiny")
    return units_config({"model_type": "hubert"}, (500, 768), layer=9, name="hubert-units")


FAMILY = register_family(Family(
    name="units",
    configs={"hubert-units": hubert_units_config, "hubert-units-tiny": lambda: hubert_units_config(tiny=True)},
    bench=BenchDefaults(quality="hubert-units-tiny"),
    description="SSL layer + k-means: 1 unit stream at 50 Hz (HuBERT base L9 x 500: 448 bit/s), no decoder",
))
