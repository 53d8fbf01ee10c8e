"""Mimi in Hugging Face's format (``kyutai/mimi``): ``config.json`` (``model_type: mimi``) +
``model.safetensors``.

Both key layouts are accepted: the flat one written to disk (``encoder.layers``,
``encoder_transformer``, ``downsample``, ...) and transformers 5.x module names
(``encoder.encoder_seanet``, ``encoder.encoder_transformer``, ``decoder.upsample``, ...).
Attention is stored as separate ``q_proj``/``k_proj``/``v_proj`` whose q and k rows were permuted
per head for rotate-half RoPE; we undo the permutation (back to interleaved pairs) and fuse them into
our ``in_proj``. The architecture is built from the config's fields.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from audiotok.codecs.codec import Codec, CodecConfig
from audiotok.codecs.families import mimi

from .common import (
    CheckpointError,
    State,
    build,
    load_converted,
    read_state,
    rename,
    require,
)
from .mimi_moshi import convert_codebooks

LAYOUT_5X_RULES = [  # transformers 5.x module names -> the flat on-disk layout
    (r"^encoder\.encoder_seanet\.", "encoder."),
    (r"^encoder\.encoder_transformer\.", "encoder_transformer."),
    (r"^encoder\.downsample\.", "downsample."),
    (r"^decoder\.decoder_seanet\.", "decoder."),
    (r"^decoder\.decoder_transformer\.", "decoder_transformer."),
    (r"^decoder\.upsample\.", "upsample."),
]
KEY_RULES = [
    (r"^(encoder|decoder)\.layers\.", r"\1.model."),
    (r"\.input_layernorm\.", ".norm1."),
    (r"\.post_attention_layernorm\.", ".norm2."),
    (r"\.mlp\.fc1\.", ".linear1."),
    (r"\.mlp\.fc2\.", ".linear2."),
    (r"\.self_attn_layer_scale\.", ".layer_scale_1."),
    (r"\.mlp_layer_scale\.", ".layer_scale_2."),
    (r"\.self_attn\.o_proj\.", ".self_attn.out_proj."),
    (r"^downsample\.conv\.", "downsample.conv.conv."),
    (r"^upsample\.conv\.", "upsample.convtr.convtr."),
    (r"^quantizer\.semantic_residual_vector_quantizer\.", "quantizer.semantic."),
    (r"^quantizer\.acoustic_residual_vector_quantizer\.", "quantizer.acoustic."),
]
HF_CODEBOOK_BUFFERS = ("initialized", "cluster_usage", "embed_sum")
CONFIG_FIELDS = ("sampling_rate", "hidden_size", "num_filters", "upsampling_ratios", "num_hidden_layers",
                 "num_attention_heads", "intermediate_size", "codebook_size", "num_quantizers")


def is_hf_mimi_config(data) -> bool:
    return isinstance(data, dict) and data.get("model_type") == "mimi"


def config_from_hf(cfg: dict, where: str = "config.json") -> CodecConfig:
    """Our :class:`CodecConfig` for a Hugging Face ``MimiConfig`` dict; refuses options we lack."""
    require(cfg, CONFIG_FIELDS, where)
    dim, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    unsupported = {
        "audio_channels": (cfg.get("audio_channels", 1), 1),
        "num_key_value_heads": (cfg.get("num_key_value_heads", heads), heads),
        "head_dim": (cfg.get("head_dim", dim // heads), dim // heads),
        "hidden_act": (cfg.get("hidden_act", "gelu"), "gelu"),
        "attention_bias": (cfg.get("attention_bias", False), False),
        "trim_right_ratio": (cfg.get("trim_right_ratio", 1.0), 1.0),
        "codebook_dim": (cfg.get("codebook_dim", 256), cfg.get("vector_quantization_hidden_dimension", 256)),
    }
    wrong = {k: got for k, (got, want) in unsupported.items() if got != want}
    if wrong:
        raise CheckpointError(f"{where}: Mimi options {wrong} are not supported (we implement "
                              "mono audio, full multi-head GELU attention without biases, and "
                              "codebook_dim == vector_quantization_hidden_dimension)")
    ratios = list(cfg["upsampling_ratios"])
    sr = cfg["sampling_rate"]
    encodec_rate = math.ceil(sr / math.prod(ratios))
    frame_rate = cfg.get("frame_rate") or cfg.get("_frame_rate") or sr / (math.prod(ratios) * 2)
    stride = int(encodec_rate / frame_rate)
    rope = cfg.get("rope_parameters") or {}
    base = mimi()
    seanet = dict(dimension=dim, n_filters=cfg["num_filters"], ratios=ratios,
                  kernel_size=cfg.get("kernel_size", 7), last_kernel_size=cfg.get("last_kernel_size", 3),
                  residual_kernel_size=cfg.get("residual_kernel_size", 3),
                  dilation_base=cfg.get("dilation_growth_rate", 2),
                  n_residual_layers=cfg.get("num_residual_layers", 1), compress=cfg.get("compress", 2),
                  causal=cfg.get("use_causal_conv", True), pad_mode=cfg.get("pad_mode", "constant"),
                  true_skip=not cfg.get("use_conv_shortcut", False))
    transformer = dict(d_model=dim, num_heads=heads, num_layers=cfg["num_hidden_layers"],
                       dim_feedforward=cfg["intermediate_size"], context=cfg.get("sliding_window", 250),
                       layer_scale=cfg.get("layer_scale_initial_scale", 0.01),
                       max_period=float(rope.get("rope_theta", cfg.get("rope_theta", 10_000.0))),
                       norm_eps=cfg.get("norm_eps", 1e-5))
    quantizer = dict(dim=dim, n_q=cfg["num_quantizers"], n_q_semantic=cfg.get("num_semantic_quantizers", 1),
                     codebook_size=cfg["codebook_size"],
                     codebook_dim=cfg.get("vector_quantization_hidden_dimension", 256))
    return base.replace(sample_rate=sr, encoder=seanet, decoder=seanet, encoder_transformer=transformer,
                        decoder_transformer=transformer, quantizer=quantizer, resample_stride=stride,
                        resample_depthwise_up=cfg.get("upsample_groups", dim) == dim,
                        causal=bool(seanet["causal"]))


def interleave_rope_rows(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Undo HF's per-head q/k row permutation (rotate-half halves -> interleaved pairs): ``[H·D, C]``."""
    rows, cols = weight.shape
    half = rows // num_heads // 2
    return weight.reshape(num_heads, 2, half, cols).transpose(1, 2).reshape(rows, cols)


def fuse_attention(state: State, num_heads: int) -> State:
    """``…self_attn.{q,k,v}_proj.weight`` -> ``…self_attn.in_proj.weight`` (q, k un-permuted)."""
    out = dict(state)
    for key in [k for k in state if k.endswith(".self_attn.q_proj.weight")]:
        prefix = key[: -len("q_proj.weight")]
        parts = [out.pop(f"{prefix}{p}_proj.weight", None) for p in "qkv"]
        if any(p is None for p in parts):
            raise CheckpointError(f"{prefix}: q_proj, k_proj and v_proj must all be present")
        q, k, v = parts
        out[f"{prefix}in_proj.weight"] = torch.cat(
            [interleave_rope_rows(q, num_heads), interleave_rope_rows(k, num_heads), v])
    return out


def convert_state(state: State, num_heads: int, own_keys) -> State:
    renamed = rename(rename(state, LAYOUT_5X_RULES), KEY_RULES)
    renamed = fuse_attention(renamed, num_heads)
    out: State = {}
    for key, value in renamed.items():
        if ".layers." in key and key.startswith("quantizer."):
            continue
        # HF names every SEANet conv `conv`; ours names the transposed ones `convtr`.
        alt = key.replace(".conv.", ".convtr.")
        out[alt if key not in own_keys and alt in own_keys else key] = value
    for part in ("semantic", "acoustic"):
        out.update(convert_codebooks(renamed, f"quantizer.{part}.layers.", f"quantizer.{part}.layers.",
                                     names=HF_CODEBOOK_BUFFERS))
    return out


def convert(folder: str | Path) -> Codec:
    """A :class:`Codec` (eval mode, folded weights) from a Hugging Face Mimi folder."""
    folder = Path(folder)
    config_path, weights_path = folder / "config.json", folder / "model.safetensors"
    cfg = json.loads(config_path.read_text())
    if not is_hf_mimi_config(cfg):
        raise CheckpointError(f"{config_path} is not a Hugging Face Mimi config (model_type "
                              f"{cfg.get('model_type')!r}, expected 'mimi')")
    config = config_from_hf(cfg, str(config_path))
    codec = build(config, folded=True)
    state = convert_state(read_state(weights_path), cfg["num_attention_heads"], set(codec.state_dict()))
    return load_converted(codec, state, str(weights_path))
