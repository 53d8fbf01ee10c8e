"""SpeechTokenizer (``fnlp/SpeechTokenizer``): ``config.json`` + ``SpeechTokenizer.pt``.

The state dict (166 tensors for the released model) uses old-style weight norm (``weight_g`` /
``weight_v``) on EnCodec's ``conv.conv`` / ``convtr.convtr`` modules and EnCodec codebook buffers
under ``quantizer.vq.layers.i._codebook``; the SEANet ``model`` indices are the same as ours.
The config is built from ``config.json``, so non-default sizes (and the Snake variant) convert too.
"""
from __future__ import annotations

import json
from pathlib import Path

from audiotok.codecs.codec import Codec, CodecConfig
from audiotok.codecs.families import speechtokenizer

from .common import (
    WEIGHT_NORM_RULES,
    State,
    build,
    codebook_from_encodec,
    load_converted,
    read_state,
    rename,
    require,
    take,
)

CONFIG_FIELDS = ("n_filters", "strides", "dimension", "semantic_dimension", "bidirectional", "lstm_layers",
                 "codebook_size", "n_q", "sample_rate")
WEIGHTS_NAME = "SpeechTokenizer.pt"

KEY_RULES = [(r"\.conv\.conv\.", ".conv."), (r"\.convtr\.convtr\.", ".convtr."), *WEIGHT_NORM_RULES]


def is_speechtokenizer_config(data: dict) -> bool:
    return isinstance(data, dict) and {"n_filters", "strides", "semantic_dimension"} <= set(data)


def config_from_json(cfg: dict, where: str = "config.json") -> CodecConfig:
    """Our :class:`CodecConfig` for a SpeechTokenizer ``config.json``."""
    require(cfg, CONFIG_FIELDS, where)
    seanet = dict(dimension=cfg["dimension"], n_filters=cfg["n_filters"], ratios=list(cfg["strides"]),
                  lstm_layers=cfg["lstm_layers"], activation=cfg.get("activation", "ELU"),
                  dilation_base=cfg.get("dilation_base", 2),
                  residual_kernel_size=cfg.get("residual_kernel_size", 3),
                  n_residual_layers=cfg.get("n_residual_layers", 1))
    base = speechtokenizer()
    semantic_dim = cfg["semantic_dimension"] if cfg["semantic_dimension"] != cfg["dimension"] else None
    return base.replace(
        sample_rate=cfg["sample_rate"],
        encoder={**seanet, "bidirectional": bool(cfg["bidirectional"])},
        decoder=seanet,  # the reference decoder is always unidirectional
        quantizer=dict(dim=cfg["dimension"], n_q=cfg["n_q"], codebook_size=cfg["codebook_size"]),
        semantic_dim=semantic_dim, name="speechtokenizer", family="speechtokenizer")


def convert_state(state: State) -> State:
    """Official keys -> ours (codebooks converted, everything else renamed)."""
    codebooks = take(state, "quantizer.vq.layers.")
    out = rename({k: v for k, v in state.items() if not k.startswith("quantizer.vq.layers.")}, KEY_RULES)
    for level in sorted({k.split(".")[0] for k in codebooks}, key=int):
        buffers = take(codebooks, f"{level}._codebook.")
        for name, value in codebook_from_encodec(buffers, f"quantizer level {level}").items():
            out[f"quantizer.layers.{level}.codebook.{name}"] = value
        extra = set(buffers) - {"inited", "cluster_size", "embed", "embed_avg"}
        out.update({f"quantizer.vq.layers.{level}._codebook.{k}": buffers[k] for k in extra})
    return out


def convert(config_path: str | Path, weights_path: str | Path, trust_checkpoint: bool = False) -> Codec:
    """A :class:`Codec` (eval mode, weight norm kept) from the two official files.

    ``trust_checkpoint``: allow a weights file that pickles Python objects (runs code from the file).
    """
    config = config_from_json(json.loads(Path(config_path).read_text()), str(config_path))
    state = read_state(weights_path, trust_checkpoint)
    return load_converted(build(config), convert_state(state), str(weights_path))
