"""Semantic units as a tokenizer: a self-supervised speech model's hidden layer + a k-means codebook.

HuBERT (or WavLM / wav2vec2: any transformers SSL model) features of one layer, each frame replaced by
its nearest k-means centroid: ``tokenize`` gives ``codes [B, 1, F]`` at the model's frame rate
(50 Hz for HuBERT: ``F = floor((T - 400) / 320) + 1`` at 16 kHz, as transformers and fairseq count
frames; no padding, so the units are those of the unpadded audio). This is the SLMTokBench / GSLM /
SpeechGPT "HuBERT KM500" tokenizer.

It is a :class:`~audiotok.codecs.Codec` like every other tokenizer, made of three parts:

* encoder ``ssl_layer`` (:class:`SSLLayerEncoder`): the SSL model (built from its transformers config,
  weights in the codec's ``model.safetensors``) and the layer to read;
* quantizer ``rvq`` with one level whose codebook holds the k-means centroids;
* decoder: ``no_vocoder`` (:class:`NoVocoder`, ``detokenize`` raises a clear error) unless a unit
  vocoder is configured: any decoder spec taking the units' centroid vectors ``[B, D, F]`` to audio
  ``[B, 1, F * hop]`` (a registered decoder or ``{"class_path": ..., "init_args": ...}``).

So it saves (``save_pretrained``), loads (``audiotok.load(folder)``), tokenizes corpora and runs the
benchmarks like any codec. Build one from ``audiotok distill kmeans`` output with
:func:`units_codec_from_kmeans` or ``audiotok distill units``.

Deduplicated units (SpeechGPT style: runs of one unit merged) come from :func:`deduplicate`, which
returns each unit's duration in frames so that :func:`expand` restores the frame sequence exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audiotok.codecs.codec import Codec, CodecConfig

SUPPORTED_MODEL_TYPES = ("hubert", "wavlm", "wav2vec2")
NO_VOCODER = ("this units tokenizer has no unit vocoder, so units cannot be turned back into audio: "
              "units keep what is said, not the voice. Configure a vocoder when building it "
              "(units_codec_from_kmeans(..., vocoder={'class_path': 'my_pkg.UnitVocoder', 'init_args': "
              "{...}}) or `audiotok distill units --vocoder-config vocoder.json`): a decoder taking the "
              "units' centroid vectors [B, D, F] to audio [B, 1, F * hop]")


class SSLLayerEncoder(nn.Module):
    """A transformers SSL model's hidden state as a codec encoder: ``[B, 1, T] -> [B, D, F]``.

    ``model_config``: the model's transformers config as a dict (``model_type`` and the fields that
    differ from its defaults); the weights come with the codec. ``layer``: hidden state index (0 = the
    projected conv features, ``L`` = after transformer layer ``L``, ``-1`` = last) or ``"avg"`` (mean
    of all). ``normalize``: zero-mean unit-variance input per item (models trained so, e.g. HuBERT
    large; the base models are not). Items of one batch must have equal lengths (the tokenizer batches
    a non-causal codec that way), so no attention mask is needed.
    """

    def __init__(self, model_config: dict, layer: int | str = 9, normalize: bool = False,
                 sample_rate: int = 16000):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        fields = dict(model_config)
        model_type = fields.pop("model_type", None)
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(f"ssl_layer encoder: model_type {model_type!r} is not one of {SUPPORTED_MODEL_TYPES}")
        config = AutoConfig.for_model(model_type, **fields)
        self.model = AutoModel.from_config(config)
        self.model.eval()
        layers = config.num_hidden_layers
        if layer != "avg" and not (isinstance(layer, int) and -(layers + 1) <= layer <= layers):
            raise ValueError(f"ssl_layer encoder: layer {layer!r} is not 'avg' or a hidden state index "
                             f"in [-{layers + 1}, {layers}] of this {layers}-layer model")
        self.layer = layer
        self.normalize = normalize
        self.sample_rate = sample_rate
        self.dimension = config.hidden_size
        self.hop_length = math.prod(config.conv_stride)

    def num_frames(self, num_samples: int) -> int:
        """Frames of ``num_samples`` samples: the conv stack's ``floor((T - 400) / 320) + 1`` for HuBERT."""
        return int(self.model._get_feat_extract_output_lengths(torch.tensor(num_samples)))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        audio = wav[:, 0].float()
        if self.normalize:
            audio = (audio - audio.mean(-1, keepdim=True)) / torch.sqrt(audio.var(-1, keepdim=True, unbiased=False) + 1e-7)
        states = self.model(audio, output_hidden_states=True).hidden_states  # (L + 1) x [B, F, D]
        chosen = torch.stack(states).mean(0) if self.layer == "avg" else states[self.layer]
        return chosen.transpose(1, 2)


class NoVocoder(nn.Module):
    """The decoder of a units tokenizer without a vocoder: decoding raises ``RuntimeError`` saying so."""

    unavailable_reason = "no unit vocoder configured: units cannot be resynthesised"

    def __init__(self, hop_length: int = 320):
        super().__init__()
        self.hop_length = hop_length

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(NO_VOCODER)


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


def install_centroids(codec: Codec, centroids: torch.Tensor) -> Codec:
    """Put k-means ``centroids [K, D]`` into the codec's one-level codebook (marked initialised)."""
    codebook = codec.quantizer.layers[0].codebook
    if tuple(centroids.shape) != tuple(codebook.embed.shape):
        raise ValueError(f"centroids {tuple(centroids.shape)} do not fit the codebook {tuple(codebook.embed.shape)}")
    with torch.no_grad():
        codebook.embed.copy_(centroids)
        codebook.embed_avg.copy_(centroids)
        codebook.cluster_size.fill_(1.0)
        codebook.initialized.fill_(1.0)
    return codec


def _teacher_config(units_metadata: dict, teacher) -> dict:
    """Check that ``teacher`` (an :class:`~audiotok.distill.hf_teacher.HFTeacher`) is the model the
    units were fitted on (kind, layer, dimension, weights); return its identity."""
    fitted = units_metadata.get("teacher") or {}
    given = teacher.config_dict()
    for key in ("kind", "layer", "dim", "normalize", "sample_rate", "hop_length", "weights"):
        if key in fitted and fitted[key] != given.get(key):
            raise ValueError(f"the k-means units were fitted on teacher {key} {fitted[key]!r}, but the teacher "
                             f"given has {given.get(key)!r}; pass the teacher they were fitted on "
                             f"(its spec was {units_metadata.get('teacher_spec') or 'not recorded'})")
    return given


def units_codec_from_kmeans(kmeans: str | Path, teacher: str | dict | None = None,
                            vocoder: dict | None = None, name: str | None = None) -> Codec:
    """A units :class:`Codec` from ``audiotok distill kmeans`` output and its teacher.

    ``kmeans``: the centroids ``.safetensors``; ``teacher``: a teacher spec (``"hubert:DIR@9"``;
    default: the spec recorded with the units, from their feature cache); ``vocoder``: a decoder spec
    (default none: ``detokenize`` then raises). Refuses a teacher other than the one the units were
    fitted on.
    """
    from audiotok.distill.hf_teacher import HFTeacher
    from audiotok.distill.kmeans import KMeansUnits
    from audiotok.distill.teacher import TeacherSpec

    units = KMeansUnits.load(kmeans)
    spec = teacher or units.metadata.get("teacher_spec")
    if not spec:
        raise ValueError(f"{kmeans} does not record its teacher spec; pass the teacher the units were fitted "
                         "on, e.g. 'hubert:/models/hubert-base-ls960@9'")
    parsed = TeacherSpec.parse(spec)
    if parsed.kind == "phones":
        raise ValueError("units of the 'phones' teacher are phone labels already; a units tokenizer needs an "
                         "SSL teacher (hubert, wavlm or hf)")
    model = HFTeacher(parsed.source, layer=parsed.layer, dtype="float32", kind=parsed.kind)
    identity = _teacher_config(units.metadata, model)
    model_config = {"model_type": model.model.config.model_type, **model.model.config.to_diff_dict()}
    for key in ("architectures", "transformers_version", "_name_or_path", "torch_dtype", "dtype"):
        model_config.pop(key, None)
    config = units_config(model_config, tuple(units.centroids.shape), layer=parsed.layer,
                          normalize=identity["normalize"], sample_rate=identity["sample_rate"],
                          vocoder=vocoder,
                          name=name or f"{identity['kind']}-L{parsed.layer}-km{units.num_units}")
    codec = Codec(config)
    codec.encoder.model.load_state_dict(model.model.state_dict())
    return install_centroids(codec, units.centroids).eval()


# ---- deduplication (SpeechGPT) ----------------------------------------------------------------------
@dataclass
class DeduplicatedUnits:
    """Runs of one unit merged: ``codes [B, 1, U]`` (zero after each item's end), ``lengths [B]``
    units per item, ``durations [B, U]`` frames each unit lasted (zero after the end), ``frames [B]``
    frames before merging (``durations.sum(-1) == frames``), ``frame_rate`` of those frames."""

    codes: torch.Tensor
    lengths: torch.Tensor
    durations: torch.Tensor
    frames: torch.Tensor
    frame_rate: float

    def unbatch(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each item's ``(units [1, U_i], durations [U_i])``."""
        return [(c[:, :n], d[:n]) for c, d, n in zip(self.codes, self.durations, self.lengths.tolist())]


def deduplicate(tokens) -> DeduplicatedUnits:
    """Merge consecutive repeats of a unit (SpeechGPT's ``<sosp>`` units): from a
    :class:`~audiotok.tokenizers.TokenizedAudio` with one codebook (``codes [B, 1, F]``, ``lengths``)."""
    from audiotok.tokenizers.tokenizer import pad_stack

    if tokens.codes.shape[1] != 1:
        raise ValueError(f"deduplicate merges repeats of one unit stream; got {tokens.codes.shape[1]} codebooks "
                         "(pass the codes of a units tokenizer, or one codebook of a codec)")
    units, durations = [], []
    for row, n in zip(tokens.codes[:, 0], tokens.lengths.tolist()):
        values, counts = torch.unique_consecutive(row[:n], return_counts=True)
        units.append(values[None])
        durations.append(counts)
    return DeduplicatedUnits(codes=pad_stack(units), lengths=torch.tensor([u.shape[-1] for u in units]),
                             durations=pad_stack(durations), frames=tokens.lengths.clone(),
                             frame_rate=tokens.frame_rate)


def expand(units: DeduplicatedUnits) -> torch.Tensor:
    """The frame-rate codes ``[B, 1, F]`` back from deduplicated units (each repeated its duration)."""
    from audiotok.tokenizers.tokenizer import pad_stack

    rows = [u.repeat_interleave(d, dim=-1) for u, d in units.unbatch()]
    return pad_stack(rows)


def describe(config: CodecConfig) -> dict[str, Any]:
    """Teacher, layer and vocoder of a units config (for ``audiotok info`` and reports)."""
    encoder = config.encoder
    return {"model_type": encoder.get("model_config", {}).get("model_type"), "layer": encoder.get("layer"),
            "units": config.quantizer.get("codebook_size"),
            "vocoder": None if config.decoder.get("type") == "no_vocoder" else config.decoder}


def save_atomic(codec: Codec, out: str | Path, overwrite: bool = False) -> Path:
    """``codec.save_pretrained`` into a temporary sibling folder, renamed to ``out`` when complete (an
    interrupted run leaves no half-written tokenizer). An existing ``out`` is replaced only with
    ``overwrite``."""
    import os
    import shutil

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite (--overwrite) to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        codec.save_pretrained(tmp)
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            tmp.rename(out)
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink()
        else:
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _register_parts() -> None:
    """File the encoder and the no-vocoder decoder in the codec part registries (once)."""
    from audiotok.codecs.codec import DECODERS, ENCODERS

    if "ssl_layer" not in ENCODERS.names():
        ENCODERS.register("ssl_layer", SSLLayerEncoder)
    if "no_vocoder" not in DECODERS.names():
        DECODERS.register("no_vocoder", NoVocoder)


_register_parts()
