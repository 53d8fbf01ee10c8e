"""Semantic units as a tokenizer: a self-supervised speech model's hidden layer + a k-means codebook.

HuBERT (or WavLM / wav2vec2: any transformers SSL model) features of one layer, each frame replaced by
its nearest k-means centroid: ``tokenize`` gives ``codes [B, 1, F]`` at the model's frame rate
(50 Hz for HuBERT: ``F = floor((T - 400) / 320) + 1`` at 16 kHz, as transformers and fairseq count
frames; no padding, so the units are those of the unpadded audio). This is the SLMTokBench / GSLM /
SpeechGPT "HuBERT KM500" tokenizer.

It is a :class:`~audiotok.codecs.Codec` like every other tokenizer (configs and family:
:mod:`audiotok.families.units`), made of three parts:

* encoder ``ssl_layer`` (:class:`~audiotok.codecs.modules.ssl.SSLLayerEncoder`): the SSL model (built
  from its transformers config, weights in the codec's ``model.safetensors``) and the layer to read;
* quantizer ``rvq`` with one level whose codebook holds the k-means centroids;
* decoder: ``no_vocoder`` (:class:`~audiotok.codecs.modules.ssl.NoVocoder`: ``detokenize`` raises a
  clear error) unless a unit vocoder is configured: any decoder spec taking the units' centroid vectors
  ``[B, D, F]`` to audio ``[B, 1, F * hop]`` (a registered decoder or ``{"class_path": ...}``).

So it saves (``save_pretrained``), loads (``audiotok.load(folder)``), tokenizes corpora and runs the
benchmarks like any codec. Build one from ``audiotok distill kmeans`` output with
:func:`units_codec_from_kmeans` or ``audiotok distill units``.

Deduplicated units (SpeechGPT style: runs of one unit merged) come from :func:`deduplicate`, which
returns each unit's duration in frames so that :func:`expand` restores the frame sequence exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from audiotok.codecs.codec import Codec
from audiotok.families.units import units_config


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
