"""Mixes: parts of several families in one codec (family ``"mix"``); configs only, no recipe of
their own (their YAML files start from a family's recipe) and no official checkpoints.
"""
from __future__ import annotations

import dataclasses

from audiotok.codecs.codec import CodecConfig
from audiotok.families import mimi
from audiotok.families.base import Family, ema_codebook, register_family, seanet


def mimi_single_codebook(tiny: bool = True) -> CodecConfig:
    """A mix: Mimi's causal streaming architecture with WavTokenizer's single large codebook."""
    base = mimi.config(tiny=tiny)
    dim = base.encoder["dimension"]
    quantizer = dict(type="rvq", dim=dim, n_q=1, codebook_size=256 if tiny else 4096,
                     **ema_codebook(20 if tiny else 200))
    return dataclasses.replace(base, quantizer=quantizer, default_n_q=None,
                               name="mimi-single-codebook" + ("-tiny" if tiny else ""), family="mix")


def rvq_vocos(small: bool = True) -> CodecConfig:
    """A mix: SpeechTokenizer's 16 kHz BiLSTM SEANet encoder and 8-level RVQ (50 Hz, 8 x 256 codes,
    3.2 kbps) with WavTokenizer's Vocos decoder (iSTFT head, n_fft 1280, hop 320).

    The Vocos decoder runs at the frame rate, so it costs little next to a SEANet decoder at the sample
    rate; that is what lets a CPU train a model of this size (5.0 M parameters) in about two hours.
    """
    dim, nf, cb, vdim, vlayers = (128, 16, 256, 192, 6)
    encoder = dict(type="seanet", **seanet(dim, nf, (8, 5, 4, 2), lstm_layers=1), bidirectional=True)
    quantizer = dict(type="rvq", dim=dim, n_q=8, codebook_size=cb, commitment_reduction="mean",
                     **ema_codebook(20))
    decoder = dict(type="vocos", input_channels=dim, dim=vdim, intermediate_dim=3 * vdim,
                   num_layers=vlayers, n_fft=1280, hop_length=320, adanorm_num_embeddings=4,
                   padding="same", num_groups=8)
    return CodecConfig(sample_rate=16000, encoder=encoder, quantizer=quantizer, decoder=decoder,
                       name="rvq-vocos-small", family="mix")


FAMILY = register_family(Family(
    name="mix",
    configs={"mimi-single-codebook-tiny": lambda: mimi_single_codebook(tiny=True), "rvq-vocos-small": rvq_vocos},
    description="mixes of parts across families",
))
