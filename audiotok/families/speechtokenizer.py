"""SpeechTokenizer (Zhang et al. 2023, https://github.com/ZhangXInFD/SpeechTokenizer): the family module.

16 kHz, 50 Hz, BiLSTM SEANet encoder, RVQ 8 x 1024, first level distilled from HuBERT. Configs
``speechtokenizer`` (103,675,586 trainable parameters, = reference) and ``speechtokenizer-tiny``; the
recipe of the repository's trainer; the official checkpoint ``config.json`` + ``SpeechTokenizer.pt``.

Checkpoint format: The state dict (166 tensors for the released model) uses old-style weight norm (``weight_g`` /
``weight_v``) on EnCodec's ``conv.conv`` / ``convtr.convtr`` modules and EnCodec codebook buffers
under ``quantizer.vq.layers.i._codebook``; the SEANet ``model`` indices are the same as ours.
The config is built from ``config.json``, so non-default sizes (and the Snake variant) convert too.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from audiotok.checkpoints.convert import (
    WEIGHT_NORM_RULES,
    WEIGHT_SUFFIXES,
    CheckpointError,
    Files,
    State,
    build,
    codebook_from_encodec,
    load_converted,
    read_json,
    read_state,
    rename,
    require,
    take,
)
from audiotok.checkpoints.formats import CheckpointFormat
from audiotok.codecs.codec import Codec, CodecConfig
from audiotok.families.base import BenchDefaults, Family, ema_codebook, register_family, seanet


# ---- configs -------------------------------------------------------------------------------------------
def config(tiny: bool = False) -> CodecConfig:
    """16 kHz, hop 320 (50 Hz), BiLSTM SEANet, RVQ 8 × 1024 × 1024, 1024→768 semantic projection."""
    dim, nf, cb, sem, lstm = (64, 8, 64, 32, 1) if tiny else (1024, 64, 1024, 768, 2)
    encoder = dict(type="seanet", **seanet(dim, nf, (8, 5, 4, 2), lstm_layers=lstm), bidirectional=True)
    decoder = dict(type="seanet", **seanet(dim, nf, (8, 5, 4, 2), lstm_layers=lstm))
    quantizer = dict(type="rvq", dim=dim, n_q=8, codebook_size=cb, commitment_reduction="mean",
                     **ema_codebook(50))
    return CodecConfig(sample_rate=16000, encoder=encoder, quantizer=quantizer, decoder=decoder,
                       semantic_dim=sem, name="speechtokenizer-tiny" if tiny else "speechtokenizer",
                       family="speechtokenizer")


# ---- training recipe -----------------------------------------------------------------------------------
# The repository's trainer (speechtokenizer/trainer/, config/spt_base_cfg.json), not the paper's hinge:
RECIPE: dict[str, Any] = {
    # SpeechTokenizer trainer: MPD + MSD + MS-STFT, least squares, FM x2 summed; mel 4 scales 45/1/1/1,
    # waveform L1 x500, commitment x10, distillation x120; Adam 1e-4 (0.9, 0.99) for G and D, cosine;
    # no clipping, no warm-up, no weight EMA.
    "codec_overrides": {},
    "discriminators": "speechtokenizer",  # preset: MPD + MSD + MS-STFT (LeakyReLU 0.2)
    "discriminator_width": None,
    "adversarial": "speechtokenizer",
    "losses": {"mel_preset": "speechtokenizer", "mel": 1.0, "l1": 500.0, "commitment": 10.0,
               "adversarial": 1.0, "feature": 1.0, "distill": 120.0, "balancer": None},
    "optim": {
        "generator": {"name": "adam", "lr": 1e-4, "betas": [0.9, 0.99], "weight_decay": 0.0,
                      "transformer_weight_decay": None},
        "discriminator": {"name": "adam", "lr": 1e-4, "betas": [0.9, 0.99], "weight_decay": 0.0},
        "scheduler": {"name": "cosine", "total_steps": None},
        "d_grad_clip": None, "g_grad_clip": None, "d_update_prob": 1.0,
    },
    "warmup_steps": 0,
    "quantizer_warmup_steps": 0,
    "standardize_latent": True,
    "ema_decay": None,
}


# ---- official checkpoint -------------------------------------------------------------------------------
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
    base = config()
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


def detect(files: Files, trust_checkpoint: bool = False):
    """The converter for a SpeechTokenizer ``config.json`` + weights file among ``files``, or None."""
    if not files.concern(lambda f: f.suffix in (".json", *WEIGHT_SUFFIXES)):
        return None
    configs = files.pick(lambda f: is_speechtokenizer_config(read_json(f)))
    if not configs:
        return None
    weights = (files.pick(lambda f: f.name == WEIGHTS_NAME)
               or files.pick(lambda f: f.suffix in WEIGHT_SUFFIXES))
    if len(weights) != 1:
        raise CheckpointError(
            f"{configs[0]} is a SpeechTokenizer config, but "
            + (f"there is no weights file ({WEIGHTS_NAME}) next to it" if not weights else
               f"several weights files could go with it: {[w.name for w in weights]}")
            + "; pass the config and the weights file together")
    return lambda: convert(configs[0], weights[0], trust_checkpoint=trust_checkpoint)


FAMILY = register_family(Family(
    name="speechtokenizer",
    configs={"speechtokenizer": config, "speechtokenizer-tiny": lambda: config(tiny=True)},
    recipe=RECIPE,
    formats={"speechtokenizer": CheckpointFormat("speechtokenizer", "config.json + SpeechTokenizer.pt", detect)},
    hub_files={"fnlp/SpeechTokenizer": ["speechtokenizer_hubert_avg/config.json",
                                        "speechtokenizer_hubert_avg/SpeechTokenizer.pt"]},
    bench=BenchDefaults(speed="speechtokenizer", reference="speechtokenizer", quality="speechtokenizer-tiny"),
    description="16 kHz, 50 Hz, RVQ 8 x 1024, HuBERT-distilled first level",
))
