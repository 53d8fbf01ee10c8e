"""Mimi (Kyutai, Moshi paper https://arxiv.org/abs/2410.00037, https://github.com/kyutai-labs/moshi): the
family module.

24 kHz, causal SEANet (25 Hz) + transformers, stride-2 conv to 12.5 Hz, split RVQ 1 semantic + 31
acoustic x 2048 (8 used by default). Configs ``mimi`` (79,308,609 parameters with folded weights as
released; training with weight norm adds 8,321 ``g`` vectors) and ``mimi-tiny``; the recipe of the
Moshi paper; two official checkpoint layouts.

moshi's format: one ``tokenizer-*.safetensors`` (e.g. ``kyutai/moshiko-pytorch-bf16``).
Weights are shipped folded (no weight norm) under moshi's module names: ``conv.conv`` wrappers,
``encoder_transformer.transformer.layers.*.self_attn.in_projs.0`` (fused qkv, interleaved RoPE as
ours), ``downsample.conv.conv.conv``, ``upsample.convtr.convtr.convtr``, and codebooks
``quantizer.rvq_first`` / ``rvq_rest`` ``.vq.layers.i._codebook.{_initialized, cluster_usage,
embedding_sum}``. The file holds no config: the architecture is moshi's default Mimi, with the
number of codebooks read from the file.

Hugging Face's format (``kyutai/mimi``): ``config.json`` (``model_type: mimi``) +
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
from typing import Any

import torch

from audiotok.checkpoints.convert import (
    CheckpointError,
    Files,
    State,
    build,
    load_converted,
    read_json,
    read_state,
    rename,
    require,
    take,
    unreadable_safetensors,
)
from audiotok.checkpoints.formats import CheckpointFormat
from audiotok.codecs.codec import Codec, CodecConfig
from audiotok.codecs.quantizers import codebook_state_from_moshi
from audiotok.families.base import BenchDefaults, Family, ema_codebook, register_family, seanet


# ---- configs -------------------------------------------------------------------------------------------
def config(tiny: bool = False) -> CodecConfig:
    """24 kHz, causal SEANet (25 Hz) + transformers, stride-2 conv to 12.5 Hz, split RVQ 1 + 31 × 2048."""
    if tiny:
        dim, nf, heads, layers, ff, ctx, cb, cdim, n_q = 64, 8, 2, 1, 128, 16, 64, 16, 8
    else:
        dim, nf, heads, layers, ff, ctx, cb, cdim, n_q = 512, 64, 8, 8, 2048, 250, 2048, 256, 32
    sean = seanet(dim, nf, (8, 6, 5, 4), causal=True, lstm_layers=0, last_kernel_size=3, true_skip=True)
    transformer = dict(d_model=dim, num_heads=heads, num_layers=layers, dim_feedforward=ff,
                       causal=True, context=ctx, layer_scale=0.01, max_period=10_000.0)
    quantizer = dict(type="split_rvq", dim=dim, n_q=n_q, n_q_semantic=1, codebook_size=cb,
                     codebook_dim=cdim, quantizer_dropout=True, **ema_codebook(50))
    return CodecConfig(sample_rate=24000, encoder=dict(type="seanet", **sean),
                       quantizer=quantizer, decoder=dict(type="seanet", **sean),
                       encoder_transformer=transformer, decoder_transformer=dict(transformer),
                       resample_stride=2, causal=True, default_n_q=8,
                       name="mimi-tiny" if tiny else "mimi", family="mimi")


# ---- training recipe -----------------------------------------------------------------------------------
RECIPE: dict[str, Any] = {
    # Moshi paper §3.3: adversarial-only (feature matching + adversarial, no reconstruction), with
    # "the exact parameters in the AudioCraft repo" otherwise: its MS-STFT discriminator and hinge; AdamW 8e-4 (0.5, 0.9), weight decay 5e-2 on transformer
    # parameters only; weight EMA 0.99; quantisation applied to 50 % of sequences. Loss weights and the
    # balancer are not published: audiocraft's adv 4 / feat 4 through the balancer (unverified).
    "codec_overrides": {"quantizer": {"no_quantization_rate": 0.5}},
    "discriminators": "encodec",  # preset: audiocraft's MS-STFT (LeakyReLU 0.3)
    "discriminator_width": None,
    "adversarial": "encodec",
    "losses": {"mel_preset": "encodec", "mel": 0.0, "l1": 0.0, "commitment": 1.0,
               "adversarial": 4.0, "feature": 4.0, "distill": 1.0,
               "balancer": {"total_norm": 1.0, "ema_decay": 0.999, "per_batch_item": True}},
    "optim": {
        "generator": {"name": "adamw", "lr": 8e-4, "betas": [0.5, 0.9], "weight_decay": 0.0,
                      "transformer_weight_decay": 5e-2},
        "discriminator": {"name": "adamw", "lr": 8e-4, "betas": [0.5, 0.9], "weight_decay": 0.0},
        "scheduler": {"name": "constant"},
        "d_grad_clip": None, "g_grad_clip": None, "d_update_prob": 1.0,
    },
    "warmup_steps": 0,
    "quantizer_warmup_steps": 0,
    "standardize_latent": True,
    "ema_decay": 0.99,
}


# ---- official checkpoint: moshi's tokenizer-*.safetensors ------------------------------------------------
MOSHI_KEY_RULES = [
    (r"\.conv\.conv\.", ".conv."),
    (r"\.convtr\.convtr\.", ".convtr."),
    (r"_transformer\.transformer\.", "_transformer."),
    (r"\.self_attn\.in_projs\.0\.", ".self_attn.in_proj."),
    (r"\.self_attn\.out_projs\.0\.", ".self_attn.out_proj."),
    (r"\.self_attn\.in_proj_weight$", ".self_attn.in_proj.weight"),  # moshi's older name
    (r"^quantizer\.rvq_first\.", "quantizer.semantic."),
    (r"^quantizer\.rvq_rest\.", "quantizer.acoustic."),
]
CODEBOOK_BUFFERS = ("_initialized", "cluster_usage", "embedding_sum")
DROPPED_PREFIXES = ("wavlm",)  # distillation head of training checkpoints, unused by the codec


def is_moshi_mimi(keys) -> bool:
    return any(k.startswith("encoder_transformer.transformer.") for k in keys) and any(
        k.startswith("quantizer.rvq_first.") for k in keys)


def convert_codebooks(state: State, vq_prefix: str, out_prefix: str, names=CODEBOOK_BUFFERS) -> State:
    """``{vq_prefix}{i}.{codebook}.{buffer}`` (moshi-style buffers named by ``names``) -> ours."""
    out: State = {}
    levels = take(state, vq_prefix)
    for level in sorted({k.split(".")[0] for k in levels}, key=int):
        buffers = {k.split(".")[-1]: v for k, v in take(levels, f"{level}.").items()}
        if set(buffers) != set(names):
            raise CheckpointError(f"{vq_prefix}{level}: expected codebook buffers {sorted(names)}, "
                                  f"found {sorted(buffers)}")
        moshi_style = dict(zip(CODEBOOK_BUFFERS, (buffers[n] for n in names)))
        for name, value in codebook_state_from_moshi(moshi_style).items():
            out[f"{out_prefix}{level}.codebook.{name}"] = value
    return out


def convert_moshi_state(state: State) -> State:
    state = {k: v for k, v in state.items() if not k.startswith(DROPPED_PREFIXES)}
    renamed = rename(state, MOSHI_KEY_RULES)
    out = {k: v for k, v in renamed.items() if ".vq.layers." not in k}
    for part in ("semantic", "acoustic"):
        out.update(convert_codebooks(renamed, f"quantizer.{part}.vq.layers.", f"quantizer.{part}.layers."))
    return out


def moshi_config_for(state: State) -> CodecConfig:
    """moshi's default Mimi, with as many codebooks as the file holds."""
    n_acoustic = len({k.split(".")[4] for k in state if k.startswith("quantizer.rvq_rest.vq.layers.")})
    return config().replace(quantizer=dict(n_q=1 + n_acoustic))


def convert_moshi(weights_path: str | Path) -> Codec:
    """A :class:`Codec` (eval mode, folded weights) from a moshi Mimi ``.safetensors``."""
    state = read_state(weights_path)
    if not is_moshi_mimi(state):
        raise CheckpointError(f"{weights_path} is not a moshi Mimi checkpoint (no "
                              "encoder_transformer.transformer.* / quantizer.rvq_first.* tensors)")
    return load_converted(build(moshi_config_for(state), folded=True), convert_moshi_state(state), str(weights_path))


# ---- official checkpoint: Hugging Face's kyutai/mimi ----------------------------------------------------
LAYOUT_5X_RULES = [  # transformers 5.x module names -> the flat on-disk layout
    (r"^encoder\.encoder_seanet\.", "encoder."),
    (r"^encoder\.encoder_transformer\.", "encoder_transformer."),
    (r"^encoder\.downsample\.", "downsample."),
    (r"^decoder\.decoder_seanet\.", "decoder."),
    (r"^decoder\.decoder_transformer\.", "decoder_transformer."),
    (r"^decoder\.upsample\.", "upsample."),
]
HF_KEY_RULES = [
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
    base = config()
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


def convert_hf_state(state: State, num_heads: int, own_keys) -> State:
    renamed = rename(rename(state, LAYOUT_5X_RULES), HF_KEY_RULES)
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


def convert_hf(folder: str | Path) -> Codec:
    """A :class:`Codec` (eval mode, folded weights) from a Hugging Face Mimi folder."""
    folder = Path(folder)
    config_path, weights_path = folder / "config.json", folder / "model.safetensors"
    cfg = json.loads(config_path.read_text())
    if not is_hf_mimi_config(cfg):
        raise CheckpointError(f"{config_path} is not a Hugging Face Mimi config (model_type "
                              f"{cfg.get('model_type')!r}, expected 'mimi')")
    config = config_from_hf(cfg, str(config_path))
    codec = build(config, folded=True)
    state = convert_hf_state(read_state(weights_path), cfg["num_attention_heads"], set(codec.state_dict()))
    return load_converted(codec, state, str(weights_path))


def detect_hf(files: Files, trust_checkpoint: bool = False):  # safetensors: nothing to trust
    """The converter for kyutai/mimi's ``config.json`` + ``model.safetensors`` among ``files``, or None."""
    if not files.concern(lambda f: f.name in ("config.json", "model.safetensors")):
        return None
    configs = files.pick(lambda f: is_hf_mimi_config(read_json(f)))
    if not configs:
        return None
    folder = configs[0].parent
    if not (folder / "model.safetensors").is_file():
        raise CheckpointError(f"{configs[0]} is a Hugging Face Mimi config, but {folder} has no "
                              "model.safetensors; download both files of kyutai/mimi")
    return lambda: convert_hf(folder)


def detect_moshi(files: Files, trust_checkpoint: bool = False):  # safetensors: nothing to trust
    """The converter for one moshi ``tokenizer-*.safetensors`` among ``files``, or None."""
    from safetensors import safe_open

    def is_moshi(f: Path) -> bool:
        if f.suffix != ".safetensors":
            return False
        try:
            with safe_open(str(f), framework="pt") as handle:
                return is_moshi_mimi(handle.keys())
        except Exception as err:
            if type(err).__name__ == "SafetensorError":
                raise unreadable_safetensors(f, err) from None
            raise

    if not files.concern(lambda f: f.suffix == ".safetensors"):
        return None
    found = files.pick(is_moshi)
    if len(found) > 1:
        raise CheckpointError(f"several moshi Mimi checkpoints {[f.name for f in found]}: pass one file")
    return (lambda: convert_moshi(found[0])) if found else None


FAMILY = register_family(Family(
    name="mimi",
    configs={"mimi": config, "mimi-tiny": lambda: config(tiny=True)},
    recipe=RECIPE,
    formats={  # Hugging Face's first: its folder may also hold other safetensors
        "mimi-hf": CheckpointFormat("mimi", "kyutai/mimi config.json + model.safetensors", detect_hf),
        "mimi-moshi": CheckpointFormat("mimi", "moshi tokenizer-…-checkpoint125.safetensors", detect_moshi),
    },
    hub_files={"kyutai/mimi": ["config.json", "model.safetensors"],
               "kyutai/moshiko-pytorch-bf16": ["tokenizer-e351c8d8-checkpoint125.safetensors"]},
    bench=BenchDefaults(speed="mimi", reference="moshi", quality="mimi-tiny", streaming="mimi"),
    description="24 kHz, 12.5 Hz, causal (streams), split RVQ 1 + 31 x 2048",
))
