"""Named codec configs: the three families at full size, their tiny twins, and mixes.

Full-size configs follow the official architectures closely enough that official checkpoints load
through a key map alone (see ``audiotok.tokenizers.convert``); tiny twins (< 1 M parameters) keep
each family's structure for tests, demos and CI recipes.

Measured trainable parameters (weight norm counts its ``g`` vectors):
speechtokenizer 103,675,586 (= reference); mimi 79,308,609 with folded weights as released
(training with weight norm adds 8,321 ``g`` parameters: 79,316,930); wavtokenizer-40 72,111,714 and
wavtokenizer-75 71,750,146 generator parameters actually used by the forward pass (the reference also
stores an unused 8.8 M SEANet decoder, which we do not build).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from .codec import Codec, CodecConfig


def _seanet(dimension, n_filters, ratios, *, causal=False, lstm_layers=2, bidirectional=False,
            last_kernel_size=7, true_skip=False, norm="weight_norm"):
    return dict(channels=1, dimension=dimension, n_filters=n_filters, n_residual_layers=1,
                ratios=list(ratios), activation="ELU", kernel_size=7,
                last_kernel_size=last_kernel_size, residual_kernel_size=3, dilation_base=2,
                causal=causal, pad_mode="constant" if causal else "reflect", compress=2,
                true_skip=true_skip, lstm_layers=lstm_layers, norm=norm)


def _ema_codebook(kmeans_iters=50):
    return dict(decay=0.99, epsilon=1e-5, kmeans_init=True, kmeans_iters=kmeans_iters,
                threshold_ema_dead_code=2.0)


def speechtokenizer(tiny: bool = False) -> CodecConfig:
    """16 kHz, hop 320 (50 Hz), BiLSTM SEANet, RVQ 8 × 1024 × 1024, 1024→768 semantic projection."""
    dim, nf, cb, sem, lstm = (64, 8, 64, 32, 1) if tiny else (1024, 64, 1024, 768, 2)
    encoder = dict(type="seanet", **_seanet(dim, nf, (8, 5, 4, 2), lstm_layers=lstm), bidirectional=True)
    decoder = dict(type="seanet", **_seanet(dim, nf, (8, 5, 4, 2), lstm_layers=lstm))
    quantizer = dict(type="rvq", dim=dim, n_q=8, codebook_size=cb, commitment_reduction="mean",
                     **_ema_codebook(50))
    return CodecConfig(sample_rate=16000, encoder=encoder, quantizer=quantizer, decoder=decoder,
                       semantic_dim=sem, name="speechtokenizer-tiny" if tiny else "speechtokenizer",
                       family="speechtokenizer")


def mimi(tiny: bool = False) -> CodecConfig:
    """24 kHz, causal SEANet (25 Hz) + transformers, stride-2 conv to 12.5 Hz, split RVQ 1 + 31 × 2048."""
    if tiny:
        dim, nf, heads, layers, ff, ctx, cb, cdim, n_q = 64, 8, 2, 1, 128, 16, 64, 16, 8
    else:
        dim, nf, heads, layers, ff, ctx, cb, cdim, n_q = 512, 64, 8, 8, 2048, 250, 2048, 256, 32
    seanet = _seanet(dim, nf, (8, 6, 5, 4), causal=True, lstm_layers=0, last_kernel_size=3,
                     true_skip=True)
    transformer = dict(d_model=dim, num_heads=heads, num_layers=layers, dim_feedforward=ff,
                       causal=True, context=ctx, layer_scale=0.01, max_period=10_000.0)
    quantizer = dict(type="split_rvq", dim=dim, n_q=n_q, n_q_semantic=1, codebook_size=cb,
                     codebook_dim=cdim, quantizer_dropout=True, **_ema_codebook(50))
    return CodecConfig(sample_rate=24000, encoder=dict(type="seanet", **seanet),
                       quantizer=quantizer, decoder=dict(type="seanet", **seanet),
                       encoder_transformer=transformer, decoder_transformer=dict(transformer),
                       resample_stride=2, causal=True, default_n_q=8,
                       name="mimi-tiny" if tiny else "mimi", family="mimi")


def wavtokenizer(frame_rate: int = 75, tiny: bool = False) -> CodecConfig:
    """24 kHz, SEANet + LSTM encoder, one 4096 × 512 codebook, Vocos decoder with iSTFT head."""
    ratios, n_fft = {40: ((6, 5, 5, 4), 2400), 75: ((8, 5, 4, 2), 1280)}[frame_rate]
    hop = 24000 // frame_rate
    if tiny:
        dim, nf, lstm, cb, vdim, vff, vlayers, groups = 64, 8, 1, 256, 64, 128, 2, 8
    else:
        dim, nf, lstm, cb, vdim, vff, vlayers, groups = 512, 32, 2, 4096, 768, 2304, 12, 32
    encoder = dict(type="seanet", **_seanet(dim, nf, ratios, lstm_layers=lstm))
    quantizer = dict(type="rvq", dim=dim, n_q=1, codebook_size=cb, **_ema_codebook(200 if not tiny else 20))
    decoder = dict(type="vocos", input_channels=dim, dim=vdim, intermediate_dim=vff,
                   num_layers=vlayers, n_fft=n_fft, hop_length=hop, adanorm_num_embeddings=4,
                   padding="same", num_groups=groups)
    name = f"wavtokenizer-{frame_rate}" + ("-tiny" if tiny else "")
    if tiny and frame_rate == 75:
        name = "wavtokenizer-tiny"  # the registry's name for the 75 Hz tiny twin
    return CodecConfig(sample_rate=24000, encoder=encoder, quantizer=quantizer, decoder=decoder,
                       name=name, family="wavtokenizer")


def mimi_single_codebook(tiny: bool = True) -> CodecConfig:
    """A mix: Mimi's causal streaming architecture with WavTokenizer's single large codebook."""
    base = mimi(tiny=tiny)
    dim = base.encoder["dimension"]
    quantizer = dict(type="rvq", dim=dim, n_q=1, codebook_size=256 if tiny else 4096,
                     **_ema_codebook(20 if tiny else 200))
    return dataclasses.replace(base, quantizer=quantizer, default_n_q=None,
                               name="mimi-single-codebook" + ("-tiny" if tiny else ""), family="mix")


def rvq_vocos(small: bool = True) -> CodecConfig:
    """A mix: SpeechTokenizer's 16 kHz BiLSTM SEANet encoder and 8-level RVQ (50 Hz, 8 x 256 codes,
    3.2 kbps) with WavTokenizer's Vocos decoder (iSTFT head, n_fft 1280, hop 320).

    The Vocos decoder runs at the frame rate, so it costs little next to a SEANet decoder at the sample
    rate; that is what lets a CPU train a model of this size (5.0 M parameters) in about two hours.
    """
    dim, nf, cb, vdim, vlayers = (128, 16, 256, 192, 6)
    encoder = dict(type="seanet", **_seanet(dim, nf, (8, 5, 4, 2), lstm_layers=1), bidirectional=True)
    quantizer = dict(type="rvq", dim=dim, n_q=8, codebook_size=cb, commitment_reduction="mean",
                     **_ema_codebook(20))
    decoder = dict(type="vocos", input_channels=dim, dim=vdim, intermediate_dim=3 * vdim,
                   num_layers=vlayers, n_fft=1280, hop_length=320, adanorm_num_embeddings=4,
                   padding="same", num_groups=8)
    return CodecConfig(sample_rate=16000, encoder=encoder, quantizer=quantizer, decoder=decoder,
                       name="rvq-vocos-small", family="mix")


REGISTRY: dict[str, Callable[[], CodecConfig]] = {
    "speechtokenizer": lambda: speechtokenizer(),
    "mimi": lambda: mimi(),
    "wavtokenizer-40": lambda: wavtokenizer(40),
    "wavtokenizer-75": lambda: wavtokenizer(75),
    "speechtokenizer-tiny": lambda: speechtokenizer(tiny=True),
    "mimi-tiny": lambda: mimi(tiny=True),
    "wavtokenizer-tiny": lambda: wavtokenizer(75, tiny=True),
    "wavtokenizer-40-tiny": lambda: wavtokenizer(40, tiny=True),
    "mimi-single-codebook-tiny": lambda: mimi_single_codebook(tiny=True),
    "rvq-vocos-small": lambda: rvq_vocos(),
}


def available() -> list[str]:
    return sorted(REGISTRY)


def get_config(name: str) -> CodecConfig:
    """The registered config called ``name`` (a fresh copy)."""
    if name not in REGISTRY:
        raise KeyError(f"unknown codec {name!r}; registered: {', '.join(available())}")
    return REGISTRY[name]()


def build_codec(name_or_config: str | CodecConfig) -> Codec:
    config = get_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
    return Codec(config)
