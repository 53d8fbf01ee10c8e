"""EnCodec (Défossez et al. 2022, https://arxiv.org/abs/2210.13438, https://github.com/facebookresearch/encodec):
the family module.

24 kHz, causal SEANet with a 2-layer LSTM (reflect padding), RVQ up to 32 × 1024 × 128 at 75 Hz. Configs
``encodec-24khz`` (14,851,810 parameters, = the ``encodec`` package's model) and ``encodec-tiny``; the
recipe of the paper; both official checkpoint layouts. Bandwidths are numbers of codebooks:
1.5 / 3 / 6 / 12 / 24 kbps = 2 / 4 / 8 / 16 / 32 (:func:`n_q_for_bandwidth`); 8 (6 kbps) by default.

=====================  ==============================================================================
layout                 files and keys
=====================  ==============================================================================
``encodec`` package    ``encodec_24khz-d7cc33bc.th``: a torch-saved state dict, old-style weight norm
                       (``encoder.model.0.conv.conv.weight_g``), codebooks under
                       ``quantizer.vq.layers.i._codebook`` (the SpeechTokenizer layout: same SEANet)
transformers           ``config.json`` (``model_type: encodec``) + ``model.safetensors``:
                       ``encoder.layers.i.conv.{weight_g,weight_v}`` (as on the hub) or
                       ``...conv.parametrizations.weight.original{0,1}`` (as transformers 5 writes),
                       transposed convs also under ``.conv``, codebooks ``quantizer.layers.i.codebook``
=====================  ==============================================================================

The 48 kHz model (stereo, time-group-norm convs, 1 s segments with overlap-add and a per-segment
volume scale) is refused with a clear error: those pieces are not in the library.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from audiotok.checkpoints.convert import (
    WEIGHT_NORM_RULES,
    CheckpointError,
    Files,
    State,
    build,
    codebook_from_encodec,
    detect_transformers_folder,
    load_converted,
    read_state,
    rename,
    require,
    take,
)
from audiotok.checkpoints.formats import CheckpointFormat
from audiotok.codecs.codec import Codec, CodecConfig
from audiotok.families.base import BenchDefaults, Family, ema_codebook, register_family
from audiotok.families.speechtokenizer import convert_state as convert_encodec_layout

PACKAGE_SUFFIXES = (".th", ".pt", ".pth")
HF_CONFIG_FIELDS = ("sampling_rate", "hidden_size", "num_filters", "upsampling_ratios", "codebook_size",
                    "target_bandwidths")
UNSUPPORTED_48K = ("EnCodec 48 kHz (stereo, time-group-norm convolutions, 1 s segments with overlap-add "
                   "and a per-segment volume scale) is not supported; use the 24 kHz model "
                   "(encodec_24khz-d7cc33bc.th or facebook/encodec_24khz)")


def config(tiny: bool = False, n_q: int = 32, n_filters: int = 32, dimension: int = 128,
           codebook_size: int = 1024, lstm_layers: int = 2, ratios=(8, 5, 4, 2), causal: bool = True,
           true_skip: bool = False, sample_rate: int = 24000, pad_mode: str = "reflect",
           **seanet) -> CodecConfig:
    """EnCodec 24 kHz: causal SEANet with LSTM (reflect padding), RVQ ``n_q`` × 1024 × 128 at 75 Hz.

    ``tiny``: a < 1 M parameter twin (8 filters, dimension 32, one LSTM layer, 8 × 256 codes). By
    default 8 codebooks are used (6 kbps, the setting of VALL-E and SLMTokBench), all with ``n_q``.
    The codec-level ``causal`` flag stays False: the convs look only at the past, but the official
    model reflect-pads the end of the input, so the last frame depends on the length and audiotok
    encodes EnCodec offline (no streaming), exactly as the reference does.
    """
    if tiny:
        n_q, n_filters, dimension, codebook_size, lstm_layers = 8, 8, 32, 256, 1
    part = dict(channels=1, dimension=dimension, n_filters=n_filters, n_residual_layers=1,
                ratios=list(ratios), activation="ELU", kernel_size=7, last_kernel_size=7,
                residual_kernel_size=3, dilation_base=2, causal=causal, pad_mode=pad_mode, compress=2,
                true_skip=true_skip, lstm_layers=lstm_layers, norm="weight_norm")
    part.update(seanet)
    quantizer = dict(type="rvq", dim=dimension, n_q=n_q, codebook_size=codebook_size,
                     commitment_reduction="mean", **ema_codebook(50))
    six_kbps = int(6000 // (sample_rate / math.prod(ratios) * math.log2(codebook_size)))  # 8 at full size
    return CodecConfig(sample_rate=sample_rate, encoder=dict(type="seanet", **part),
                       quantizer=quantizer, decoder=dict(type="seanet", **part), causal=False,
                       default_n_q=n_q if tiny else max(1, min(six_kbps, n_q)), name="encodec-tiny" if tiny else "encodec-24khz",
                       family="encodec")


# ---- bandwidths -------------------------------------------------------------------------------
TARGET_BANDWIDTHS = (1.5, 3.0, 6.0, 12.0, 24.0)  # kbps of the 24 kHz release: 2, 4, 8, 16, 32 codebooks


def n_q_for_bandwidth(kbps: float, frame_rate: float = 75.0, codebook_size: int = 1024,
                      max_codebooks: int = 32) -> int:
    """Codebooks for a target bandwidth in kbps, as EnCodec computes it:
    ``floor(kbps · 1000 / (frame_rate · log2(codebook_size)))`` (1.5/3/6/12/24 → 2/4/8/16/32).

    Raises ``ValueError`` when that is below 1 or above ``max_codebooks``, listing the valid ones.
    """
    per_codebook = frame_rate * math.log2(codebook_size) / 1000.0
    n_q = int(math.floor(float(kbps) / per_codebook + 1e-9)) if kbps > 0 else 0
    if not 1 <= n_q <= max_codebooks:
        table = ", ".join(f"{n * per_codebook:g} kbps = {n}" for n in (1, 2, 4, 8, 16, 32) if n <= max_codebooks)
        raise ValueError(f"bandwidth {kbps} kbps gives {n_q} codebooks; this codec takes 1 to "
                         f"{max_codebooks} ({per_codebook:g} kbps each: {table})")
    return n_q


def bandwidth_for_n_q(n_q: int, frame_rate: float = 75.0, codebook_size: int = 1024) -> float:
    """kbps of ``n_q`` codebooks (8 → 6.0 at 75 Hz × 10 bits)."""
    return n_q * frame_rate * math.log2(codebook_size) / 1000.0


# ---- training recipe -----------------------------------------------------------------------------------
RECIPE: dict[str, Any] = {
    # EnCodec paper §3.4 / §4.2: MS-STFT discriminator, hinge adversarial loss and relative feature matching;
    # weights lambda_t 0.1 (waveform L1), lambda_f 1 (mel L1 + L2 over 5 scales), lambda_g 3, lambda_feat 3,
    # lambda_w 1 (commitment, outside the balancer); loss balancer with reference norm 1 and EMA 0.999;
    # Adam 3e-4 (0.5, 0.9); discriminator updated with probability 2/3 at 24 kHz. The mel preset is
    # audiocraft's (windows 2^6..2^10; the paper says 2^5..2^11). Unfaithful: the paper samples one of
    # the 5 bandwidths per batch; our quantizer dropout draws a number of levels per item.
    "codec_overrides": {"quantizer": {"quantizer_dropout": True}},
    "discriminators": "encodec",  # preset: MS-STFT (audiocraft)
    "discriminator_width": None,
    "adversarial": "encodec_paper",  # hinge, relative feature matching
    "losses": {"mel_preset": "encodec", "mel": 1.0, "l1": 0.1, "commitment": 1.0,
               "adversarial": 3.0, "feature": 3.0, "distill": 0.0,
               "balancer": {"total_norm": 1.0, "ema_decay": 0.999, "per_batch_item": True}},
    "optim": {
        "generator": {"name": "adam", "lr": 3e-4, "betas": [0.5, 0.9], "weight_decay": 0.0,
                      "transformer_weight_decay": None},
        "discriminator": {"name": "adam", "lr": 3e-4, "betas": [0.5, 0.9], "weight_decay": 0.0},
        "scheduler": {"name": "constant"},
        "d_grad_clip": None, "g_grad_clip": None, "d_update_prob": 2 / 3,
    },
    "warmup_steps": 0,
    "quantizer_warmup_steps": 0,
    "standardize_latent": True,
    "ema_decay": None,
}


# ---- the encodec package's state dict ------------------------------------------------------------
def is_encodec_state(keys) -> bool:
    """True for the ``encodec`` package's layout (SEANet ``encoder.model`` + ``quantizer.vq``, no
    SpeechTokenizer semantic projection, no BiLSTM)."""
    keys = list(keys)
    return (any(k.startswith("encoder.model.") for k in keys)
            and any(k.startswith("quantizer.vq.layers.") for k in keys)
            and not any(k.startswith("transform.") or k.endswith("_reverse") for k in keys))


def is_package_file(path: Path) -> bool:
    """Names the release uses (``encodec_24khz-*.th``) or any ``.th`` (the package's suffix)."""
    return path.suffix == ".th" or (path.suffix in PACKAGE_SUFFIXES and path.name.startswith("encodec"))


def config_from_state(state: State, where: str) -> CodecConfig:
    """Our config read off the tensor shapes of an ``encodec`` package state dict."""
    if any(re.search(r"\.norm\.(weight|bias)$", k) for k in state):
        raise CheckpointError(f"{where}: {UNSUPPORTED_48K}")
    first = state.get("encoder.model.0.conv.conv.weight_v", state.get("encoder.model.0.conv.conv.weight"))
    embed = state.get("quantizer.vq.layers.0._codebook.embed")
    if first is None or embed is None:
        raise CheckpointError(f"{where}: not an EnCodec state dict (no encoder.model.0.conv.conv weight "
                              "or quantizer.vq.layers.0._codebook.embed)")
    if first.shape[1] != 1:
        raise CheckpointError(f"{where}: {first.shape[1]} audio channels; {UNSUPPORTED_48K}")
    levels = {int(k.split(".")[3]) for k in state if k.startswith("quantizer.vq.layers.")}
    lstm = {int(m.group(1)) for k in state if (m := re.search(r"^encoder\.model\.\d+\.lstm\.weight_ih_l(\d+)$", k))}
    return config(n_q=len(levels), n_filters=first.shape[0], dimension=embed.shape[1],
                          codebook_size=embed.shape[0], lstm_layers=len(lstm))


def convert_package(path: str | Path, trust_checkpoint: bool = False) -> Codec:
    """A :class:`Codec` (eval mode, weight norm kept) from ``encodec_24khz-d7cc33bc.th``."""
    state = read_state(path, trust_checkpoint)
    if not is_encodec_state(state):
        raise CheckpointError(f"{path}: not an EnCodec state dict (expected encoder.model.* and "
                              "quantizer.vq.layers.* keys)")
    config = config_from_state(state, str(path))
    return load_converted(build(config), convert_encodec_layout(state), str(path))


# ---- transformers ----------------------------------------------------------------------------------
def is_hf_encodec_config(data) -> bool:
    return isinstance(data, dict) and data.get("model_type") == "encodec"


def config_from_hf(cfg: dict, where: str = "config.json") -> CodecConfig:
    """Our config for a transformers ``EncodecConfig`` dict; refuses the 48 kHz options."""
    require(cfg, HF_CONFIG_FIELDS, where)
    if (cfg.get("audio_channels", 1) != 1 or cfg.get("norm_type", "weight_norm") != "weight_norm"
            or cfg.get("chunk_length_s") is not None or cfg.get("normalize", False)):
        raise CheckpointError(f"{where}: {UNSUPPORTED_48K}")
    if cfg.get("trim_right_ratio", 1.0) != 1.0:
        raise CheckpointError(f"{where}: trim_right_ratio {cfg['trim_right_ratio']} is not supported (1.0 only)")
    dim = cfg["hidden_size"]
    if cfg.get("codebook_dim") not in (None, dim):
        raise CheckpointError(f"{where}: codebook_dim {cfg['codebook_dim']} != hidden_size {dim} is not "
                              "supported (EnCodec quantizes the latent without projection)")
    ratios = list(cfg["upsampling_ratios"])
    frame_rate = math.ceil(cfg["sampling_rate"] / math.prod(ratios))
    bits = math.ceil(math.log2(cfg["codebook_size"]))
    n_q = int(1000 * max(cfg["target_bandwidths"]) // (frame_rate * bits))  # EncodecConfig.num_quantizers
    return config(
        n_q=n_q, n_filters=cfg["num_filters"], dimension=dim, codebook_size=cfg["codebook_size"],
        lstm_layers=cfg.get("num_lstm_layers", 2), ratios=ratios, causal=cfg.get("use_causal_conv", True),
        true_skip=not cfg.get("use_conv_shortcut", True), sample_rate=cfg["sampling_rate"],
        pad_mode=cfg.get("pad_mode", "reflect"), kernel_size=cfg.get("kernel_size", 7),
        last_kernel_size=cfg.get("last_kernel_size", 7), residual_kernel_size=cfg.get("residual_kernel_size", 3),
        dilation_base=cfg.get("dilation_growth_rate", 2), compress=cfg.get("compress", 2),
        n_residual_layers=cfg.get("num_residual_layers", 1))


HF_KEY_RULES = [(r"^(encoder|decoder)\.layers\.", r"\1.model."), *WEIGHT_NORM_RULES]


def convert_hf_state(state: State, codec: Codec) -> State:
    """transformers keys -> ours: ``layers`` -> ``model``, ``weight_g/v`` -> parametrizations,
    transposed convs ``.conv`` -> ``.convtr``, codebook buffers ``inited`` -> ``initialized``."""
    own = set(codec.state_dict())
    codebooks = take(state, "quantizer.layers.")
    out: State = {}
    for key, value in rename({k: v for k, v in state.items() if not k.startswith("quantizer.")},
                             HF_KEY_RULES).items():
        transposed = re.sub(r"^(decoder\.model\.\d+)\.conv\.", r"\1.convtr.", key)
        out[transposed if transposed in own and key not in own else key] = value
    for level in sorted({k.split(".")[0] for k in codebooks}, key=int):
        buffers = take(codebooks, f"{level}.codebook.")
        for name, value in codebook_from_encodec(buffers, f"quantizer level {level}").items():
            out[f"quantizer.layers.{level}.codebook.{name}"] = value
    out.update({k: v for k, v in state.items() if k.startswith("quantizer.") and not k.startswith("quantizer.layers.")})
    return out


def convert_hf(folder: str | Path) -> Codec:
    """A :class:`Codec` (eval mode, weight norm kept) from a ``facebook/encodec_24khz`` folder."""
    folder = Path(folder)
    config = config_from_hf(json.loads((folder / "config.json").read_text()), str(folder / "config.json"))
    codec = build(config)
    state = read_state(folder / "model.safetensors")
    return load_converted(codec, convert_hf_state(state, codec), str(folder / "model.safetensors"))


# ---- detection -------------------------------------------------------------------------------------------
def detect_package(files: Files, trust_checkpoint: bool = False):
    """The converter for an ``encodec`` package state dict (``encodec_24khz-*.th``) among ``files``."""
    if not files.concern(is_package_file):
        return None
    found = files.pick(is_package_file)
    if len(found) > 1:
        raise CheckpointError(f"several EnCodec checkpoints {[f.name for f in found]}: pass one file")
    return (lambda: convert_package(found[0], trust_checkpoint)) if found else None


def detect_hf(files: Files, trust_checkpoint: bool = False):  # safetensors: nothing to trust
    """The converter for a ``facebook/encodec_24khz`` folder (``config.json`` + ``model.safetensors``)."""
    return detect_transformers_folder(files, "encodec", "transformers EnCodec", "facebook/encodec_24khz",
                                      convert_hf)


FAMILY = register_family(Family(
    name="encodec",
    configs={"encodec-24khz": config, "encodec-tiny": lambda: config(tiny=True)},
    recipe=RECIPE,
    formats={
        "encodec-hf": CheckpointFormat("encodec", "facebook/encodec_24khz config.json + model.safetensors",
                                       detect_hf),
        "encodec-package": CheckpointFormat("encodec", "encodec package encodec_24khz-d7cc33bc.th", detect_package),
    },
    hub_files={"facebook/encodec_24khz": ["config.json", "model.safetensors"]},
    bench=BenchDefaults(speed="encodec-24khz", reference="encodec", quality="encodec-tiny"),
    description="24 kHz, 75 Hz, RVQ up to 32 x 1024 (1.5-24 kbps; 8 = 6 kbps by default)",
))
