"""XCodec2 (Llasa's tokenizer; Ye et al. 2025, "Llasa: Scaling Train-Time and Inference-Time Compute
for Llama-based Speech Synthesis", https://arxiv.org/abs/2502.04128, https://github.com/zhenye234/X-Codec-2.0,
https://huggingface.co/HKUST-Audio/xcodec2): the family module.

16 kHz, 50 tokens/s, ONE FSQ codebook of 4^8 = 65,536 codes (0.8 kbps). Encoder: w2v-BERT 2.0
(layer 16, frozen) + adapter fused with BigCodec's acoustic encoder; decoder: transformer "Vocos"
with an iSTFT head (parts: :mod:`audiotok.codecs.modules.xcodec2`,
:class:`~audiotok.codecs.quantizers.xcodec2_fsq.XCodec2FSQ`). Configs ``xcodec2`` (the release:
242,243,866 trainable codec parameters, = the package's, plus 387,049,792 frozen in the 16 w2v-BERT 2.0
layers it reads; the release stores all 24, 580,493,120) and ``xcodec2-tiny`` (a tiny random w2v-BERT
as semantic model; 369,654 trainable parameters, same structure, hop and codebook).

Checkpoint formats (all loaded strictly, sizes read from the tensors):

* **Official** (``HKUST-Audio/xcodec2``, the ``xcodec2`` package's ``XCodec2Model``): ``config.json``
  (``model_type: "xcodec"``, ``semantic_hidden_size``, ``codec_encoder_hidden_size``,
  ``codec_decoder_hidden_size``, ``use_vocos``) + ``model.safetensors`` with ``semantic_model.*``
  (all 24 w2v-BERT 2.0 layers; we keep the 16 the codec reads), ``SemanticEncoder_module.*``,
  ``CodecEnc.*`` (weight norm, old-style ``weight_g/_v`` or parametrizations; anti-alias filter
  buffers, recomputed), ``fc_prior.*``, ``generator.quantizer.project_{in,out}.*``,
  ``generator.backbone.*``, ``generator.head.*`` and ``fc_post_a.*``. The config does not describe
  the architecture (the package hard-codes it): attention heads are ``hidden / 64`` (the release's
  RoPE dimension is its head size, 64), everything else comes from the shapes.
* **Training checkpoint** (``ckpt/epoch=4-step=1400000.ckpt`` in the same repository): a Lightning
  ``.ckpt`` whose ``state_dict`` holds the same keys plus training-only ones (discriminators,
  ``fc_post_s``, ``SemanticDecoder_module``, the validation speaker model), which are dropped.
* Llasa's data preparation pins ``xcodec2==0.1.3``: its model code is 0.1.5's (which only adds
  ``encode_batch_feats``) with the same ``vector-quantize-pytorch==1.17.8``, so its codes are the same.
* **transformers** (``Xcodec2Model.save_pretrained``, ``HKUSTAudio/xcodec2-hf``): ``config.json``
  (``model_type: "xcodec2"`` with the full ``semantic_model_config``) + ``model.safetensors`` with
  folded convolutions (weight norm is re-applied exactly: ``g = |w|``, ``v = w``) and q/k rows
  permuted for rotate-half RoPE (undone here).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from audiotok.checkpoints.convert import (
    WEIGHT_NORM_RULES,
    CheckpointError,
    Files,
    State,
    build,
    detect_transformers_folder,
    load_converted,
    read_json,
    read_state,
    rename,
    take,
    unreadable_safetensors,
)
from audiotok.checkpoints.formats import CheckpointFormat
from audiotok.checkpoints.io import torch_load_checkpoint
from audiotok.codecs.codec import Codec, CodecConfig
from audiotok.codecs.modules.xcodec2 import HOP_LENGTH
from audiotok.families.base import BenchDefaults, Family, register_family
from audiotok.families.mimi import interleave_rope_rows  # undoes transformers' rotate-half q/k row order

# ---- configs -------------------------------------------------------------------------------------------
# w2v-BERT 2.0 (facebook/w2v-bert-2.0) architecture fields; spec-augment and layer drop off (it is frozen)
W2V_BERT_2: dict[str, Any] = dict(
    hidden_size=1024, num_attention_heads=16, intermediate_size=4096, feature_projection_input_dim=160,
    hidden_act="swish", conv_depthwise_kernel_size=31, position_embeddings_type="relative_key",
    left_max_position_embeddings=64, right_max_position_embeddings=8, layer_norm_eps=1e-5,
    add_adapter=False, mask_time_prob=0.0, apply_spec_augment=False, layerdrop=0.0)
TINY_SEMANTIC: dict[str, Any] = {**W2V_BERT_2, "hidden_size": 32, "num_attention_heads": 2,
                                 "intermediate_size": 64, "conv_depthwise_kernel_size": 7}
LEVELS = [4] * 8  # 65,536 codes
RATIOS = [2, 2, 4, 4, 5]  # hop 320


def config(tiny: bool = False) -> CodecConfig:
    """16 kHz, hop 320 (50 Hz), FSQ 4^8 = 65,536 codes (0.8 kbps); w2v-BERT 2.0 layer 16 + BigCodec
    encoder (ngf 48) -> 2048, transformer decoder 1024 x 12 layers x 16 heads, iSTFT n_fft 1280.
    ``tiny``: w2v-BERT 32 wide x 2 layers, ngf 4, latent 64, decoder 32 x 2 layers x 2 heads."""
    if tiny:
        semantic, layer, ngf, adim, dim, hidden, depth, heads = TINY_SEMANTIC, 2, 4, 32, 64, 32, 2, 2
    else:
        semantic, layer, ngf, adim, dim, hidden, depth, heads = W2V_BERT_2, 16, 48, 1024, 2048, 1024, 12, 16
    encoder = dict(type="xcodec2", semantic=dict(semantic), semantic_layer=layer, ngf=ngf, ratios=list(RATIOS),
                   dilations=[1, 3, 9], acoustic_dim=adim, dimension=dim)
    quantizer = dict(type="xcodec2_fsq", dim=dim, levels=list(LEVELS))
    decoder = dict(type="xcodec2", input_dim=dim, hidden_dim=hidden, depth=depth, num_heads=heads,
                   hop_length=HOP_LENGTH)
    return CodecConfig(sample_rate=16000, encoder=encoder, quantizer=quantizer, decoder=decoder,
                       name="xcodec2-tiny" if tiny else "xcodec2", family="xcodec2")


# ---- training recipe -----------------------------------------------------------------------------------
# The release trains with X-Codec-2.0's Lightning module (BigCodec's code base): an MPD (HiFi-GAN periods
# 2, 3, 5, 7, 11, channels 32 x 4 up to 1024) and a "spec discriminator" on STFT magnitudes at FFT sizes
# 78 ... 2296 ("tailored for the transformer decoder", README), LSGAN (BigCodec's GANLoss: MSE to 1/0)
# with L1 feature matching summed over layers and discriminators, DAC's 7-scale mel loss (L1 on log10
# mel), a semantic reconstruction MSE (fc_post_s + a conv SemanticDecoder back to the w2v-BERT layer-16
# features), FSQ without commitment, AdamW betas (0.8, 0.9) at 1e-4 with a warm-up / decay schedule and
# gradient clipping at 1 for both networks (BigCodec's config). Expressed with our presets:
# * discriminators: our MPD (same periods and widths) + our MRD at the release's 8 FFT sizes (hop n/4:
#   the release's hops are not published) -- the MRD is UnivNet's 2-D conv stack on magnitudes, not
#   ParallelWaveGAN's SpecDiscriminator layer for layer;
# * adversarial "dac": LSGAN summed, FM summed over layers except logits and over discriminators;
# * weights: BigCodec's defaults (mel 15, adversarial 1, feature matching 1; X-Codec-2.0's own YAML is
#   not published with the code we could read); "commitment" 1 weighs our FSQ range penalty (zero while
#   the projected latent stays within +-2; the release has none); WarmupLR is approximated by cosine decay;
#   batch, crop length and steps are not published.
# * NOT expressible yet: the semantic reconstruction term. Its weight is not published either; the
#   distillation slot (distill 1.0) is where it belongs, but the library has no w2v-BERT teacher kind
#   (it needs XCodec2's filterbank input) nor an MSE distillation kind, so it is off unless a slot is set.
RECIPE: dict[str, Any] = {
    "codec_overrides": {},
    "discriminators": "xcodec2",  # preset: MPD + MRD at the release's 8 FFT sizes
    "discriminator_width": None,
    "adversarial": "dac",
    "losses": {"mel_preset": "dac", "mel": 15.0, "l1": 0.0, "commitment": 1.0,
               "adversarial": 1.0, "feature": 1.0, "distill": 1.0, "balancer": None},
    "optim": {
        "generator": {"name": "adamw", "lr": 1e-4, "betas": [0.8, 0.9], "weight_decay": 0.0,
                      "transformer_weight_decay": None},
        "discriminator": {"name": "adamw", "lr": 1e-4, "betas": [0.8, 0.9], "weight_decay": 0.0},
        "scheduler": {"name": "cosine", "total_steps": None},
        "d_grad_clip": 1.0, "g_grad_clip": 1.0, "d_update_prob": 1.0,
    },
    "warmup_steps": 0,
    "quantizer_warmup_steps": 0,
    "standardize_latent": False,  # the fused latent goes through fc_prior; the release has no such init
    "ema_decay": None,
}


# ---- official checkpoints --------------------------------------------------------------------------------
OFFICIAL_KEPT = ("semantic_model.", "SemanticEncoder_module.", "CodecEnc.", "fc_prior.",  # FSQ buffers: recomputed
                 "generator.quantizer.project_", "generator.backbone.", "generator.head.", "fc_post_a.")
ANTI_ALIAS_FILTER = re.compile(r"\.(upsample\.filter|downsample\.lowpass\.filter)$")
RELEASE_HEAD_DIM = 64


def is_official_config(data: dict | None) -> bool:
    """The ``config.json`` of ``HKUST-Audio/xcodec2`` (``BigCodecConfig``)."""
    return isinstance(data, dict) and data.get("model_type") == "xcodec" and "codec_decoder_hidden_size" in data


def is_official_state(keys) -> bool:
    keys = set(keys)
    return any(k.startswith("CodecEnc.") for k in keys) and any(k.startswith("generator.backbone.") for k in keys)


# ---- configs ---------------------------------------------------------------------------------------
def _semantic_config(state: State, prefix: str, where: str) -> tuple[dict, int]:
    """w2v-BERT fields and layer count read from the tensors under ``prefix``."""
    try:
        hidden, feat_dim = state[f"{prefix}feature_projection.projection.weight"].shape
        layer0 = f"{prefix}encoder.layers.0."
        intermediate = state[layer0 + "ffn1.intermediate_dense.weight"].shape[0]
        kernel = state[layer0 + "conv_module.depthwise_conv.weight"].shape[-1]
        positions, head_dim = state[layer0 + "self_attn.distance_embedding.weight"].shape
    except KeyError as err:
        raise CheckpointError(f"{where}: no w2v-BERT tensor {err.args[0]!r}; is this an XCodec2 checkpoint?") from None
    layers = len({k[len(prefix):].split(".")[2] for k in state if k.startswith(f"{prefix}encoder.layers.")})
    right = W2V_BERT_2["right_max_position_embeddings"]
    semantic = {**W2V_BERT_2, "hidden_size": int(hidden), "num_attention_heads": int(hidden // head_dim),
                "intermediate_size": int(intermediate), "feature_projection_input_dim": int(feat_dim),
                "conv_depthwise_kernel_size": int(kernel),
                "left_max_position_embeddings": int(positions) - right - 1}
    return semantic, layers


def official_config(state: State, config_json: dict | None = None, where: str = "checkpoint") -> CodecConfig:
    """Our config for an official-layout state dict (sizes from the tensors, module doc)."""
    semantic, layers = _semantic_config(state, "semantic_model.", where)
    if layers < 16:
        raise CheckpointError(f"{where}: the release reads w2v-BERT layer 16, but the checkpoint holds "
                              f"only {layers} semantic layers")
    try:
        ngf = state["CodecEnc.conv_blocks.0.bias"].shape[0]
        acoustic_dim = state["CodecEnc.conv_final_block.1.bias"].shape[0]
        dim = state["fc_prior.bias"].shape[0]
        hidden = state["generator.backbone.embed.bias"].shape[0]
    except KeyError as err:
        raise CheckpointError(f"{where} lacks {err.args[0]!r}; is it an XCodec2 checkpoint?") from None
    depth = len({k.split(".")[3] for k in state if k.startswith("generator.backbone.transformers.")})
    ratios = [2, 2, 4, 4, 5]
    blocks = len({k.split(".")[2] for k in state if k.startswith("CodecEnc.conv_blocks.")}) - 1
    if blocks != len(ratios):
        raise CheckpointError(f"{where}: {blocks} acoustic encoder blocks, the release has {len(ratios)}")
    said = (config_json or {}).get("semantic_hidden_size", semantic["hidden_size"])
    if said != semantic["hidden_size"]:
        raise CheckpointError(f"{where}: config.json says semantic_hidden_size {said}, the weights have "
                              f"{semantic['hidden_size']}: the config belongs to another checkpoint")
    if hidden % RELEASE_HEAD_DIM:
        raise CheckpointError(f"{where}: decoder width {hidden} is not a multiple of the release's "
                              f"head size {RELEASE_HEAD_DIM}")
    return config().replace(
        encoder=dict(semantic=semantic, semantic_layer=16, ngf=int(ngf), ratios=ratios, dilations=[1, 3, 9],
                     acoustic_dim=int(acoustic_dim), dimension=int(dim)),
        quantizer=dict(dim=int(dim), levels=list(LEVELS)),
        decoder=dict(input_dim=int(dim), hidden_dim=int(hidden), depth=depth,
                     num_heads=int(hidden // RELEASE_HEAD_DIM), hop_length=HOP_LENGTH))


def hf_config(config_json: dict, where: str = "config.json") -> CodecConfig:
    """Our config for a transformers ``Xcodec2Config`` dict."""
    try:
        sem = dict(config_json["semantic_model_config"])
        hidden, heads, depth = (config_json[k] for k in ("hidden_size", "num_attention_heads", "num_hidden_layers"))
        ngf, dim = config_json["encoder_hidden_size"], config_json["quantization_dim"]
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{where} is not a complete Xcodec2Config: lacks {err}") from None
    ratios = list(config_json.get("downsampling_ratios", [2, 2, 4, 4, 5]))
    if list(config_json.get("quantization_levels", [4] * 8)) != [4] * 8:
        raise CheckpointError(f"{where}: quantization_levels {config_json['quantization_levels']} are not "
                              "the release's [4] * 8")
    head_dim = config_json.get("head_dim") or hidden // heads
    if head_dim * heads != hidden or config_json.get("num_key_value_heads", heads) != heads:
        raise CheckpointError(f"{where}: attention with head_dim {head_dim}, {heads} heads and "
                              f"{config_json.get('num_key_value_heads')} kv heads is not the release's MHA")
    rope = config_json.get("rope_parameters") or {}
    release = {"hidden_act": (config_json.get("hidden_act", "silu"), "silu"),
               "rms_norm_eps": (config_json.get("rms_norm_eps", 1e-6), 1e-6),
               "attention_bias": (config_json.get("attention_bias", False), False),
               "rope_theta": (rope.get("rope_theta", 10_000.0), 10_000.0),
               "rope_type": (rope.get("rope_type", "default"), "default")}
    other = {k: got for k, (got, want) in release.items() if got != want}
    if other:
        raise CheckpointError(f"{where}: options {other} differ from the release's decoder (SiLU MLP, RMSNorm "
                              "1e-6, no attention biases, default RoPE 10000), which is all we implement")
    semantic = {**W2V_BERT_2, **{k: sem[k] for k in W2V_BERT_2 if k in sem},
                "mask_time_prob": 0.0, "apply_spec_augment": False, "layerdrop": 0.0}
    return config().replace(
        encoder=dict(semantic=semantic, semantic_layer=int(sem.get("num_hidden_layers", 16)), ngf=int(ngf),
                     ratios=ratios, dilations=[1, 3, 9], acoustic_dim=int(hidden), dimension=int(dim)),
        quantizer=dict(dim=int(dim), levels=list(LEVELS)),
        decoder=dict(input_dim=int(dim), hidden_dim=int(hidden), depth=int(depth), num_heads=int(heads),
                     hop_length=HOP_LENGTH))


# ---- state dicts -----------------------------------------------------------------------------------
def _semantic_state(state: State, prefix: str, layers: int) -> State:
    """w2v-BERT tensors under ``encoder.semantic_model.``, layers ``>= layers`` and the (unused in
    eval) spec-augment mask embedding dropped."""
    out = {}
    for key, value in take(state, prefix).items():
        match = re.match(r"encoder\.layers\.(\d+)\.", key)
        if key == "masked_spec_embed" or (match and int(match.group(1)) >= layers):
            continue
        out["encoder.semantic_model." + key] = value
    return out


def _weight_norm_from_plain(state: State, keys) -> State:
    """Plain conv weights -> weight-norm ``original0`` (norm per output channel) and ``original1``."""
    out = dict(state)
    for key in keys:
        weight = out.pop(key)
        base = key[: -len(".weight")]
        out[base + ".parametrizations.weight.original0"] = weight.norm(dim=(1, 2), keepdim=True)
        out[base + ".parametrizations.weight.original1"] = weight
    return out


def _istft_window(config: CodecConfig) -> torch.Tensor:
    return torch.hann_window(4 * config.decoder["hop_length"])


def convert_official_state(state: State, config: CodecConfig) -> State:
    """Official (package / training checkpoint) keys -> ours (module doc)."""
    state = {k: v for k, v in state.items() if k.startswith(OFFICIAL_KEPT) and not ANTI_ALIAS_FILTER.search(k)}
    out = _semantic_state(state, "semantic_model.", config.encoder["semantic_layer"])
    rest = {k: v for k, v in state.items() if not k.startswith("semantic_model.")}
    out.update(rename(rest, [
        (r"^SemanticEncoder_module\.", "encoder.semantic_adapter."),
        (r"^CodecEnc\.", "encoder.acoustic."), (r"\.act\.bias$", ".act.beta"), *WEIGHT_NORM_RULES,
        (r"^fc_prior\.", "encoder.fc_prior."),
        (r"^generator\.quantizer\.project_in\.", "quantizer.input_proj."),
        (r"^generator\.quantizer\.project_out\.", "quantizer.output_proj."),
        (r"^generator\.backbone\.", "decoder.backbone."), (r"^generator\.head\.", "decoder.head."),
        (r"^fc_post_a\.", "decoder.fc_post_a.")]))
    for name in ("input_proj", "output_proj"):  # Linear -> 1x1 conv
        key = f"quantizer.{name}.weight"
        if key in out and out[key].dim() == 2:
            out[key] = out[key][..., None]
    out.setdefault("decoder.head.istft.window", _istft_window(config))
    return out


def convert_hf_state(state: State, config: CodecConfig) -> State:
    """transformers ``Xcodec2Model`` keys -> ours."""
    enc, dec = config.encoder, config.decoder
    out = _semantic_state(state, "semantic_encoder.", enc["semantic_layer"])
    dilations = len(enc["dilations"])
    rules = [
        (r"^semantic_adapter\.conv1\.", "encoder.semantic_adapter.initial_conv."),
        (r"^semantic_adapter\.conv2\.", "encoder.semantic_adapter.residual_blocks.1."),
        (r"^semantic_adapter\.conv3\.", "encoder.semantic_adapter.residual_blocks.3."),
        (r"^semantic_adapter\.conv4\.", "encoder.semantic_adapter.final_conv."),
        (r"^acoustic_encoder\.conv1\.", "encoder.acoustic.conv_blocks.0."),
        (r"^acoustic_encoder\.snake1\.", "encoder.acoustic.conv_final_block.0."),
        (r"^acoustic_encoder\.conv2\.", "encoder.acoustic.conv_final_block.1."),
        (r"\.res_unit(\d)\.snake1\.", lambda m: f".{int(m.group(1)) - 1}.block.0."),
        (r"\.res_unit(\d)\.conv1\.", lambda m: f".{int(m.group(1)) - 1}.block.1."),
        (r"\.res_unit(\d)\.snake2\.", lambda m: f".{int(m.group(1)) - 1}.block.2."),
        (r"\.res_unit(\d)\.conv2\.", lambda m: f".{int(m.group(1)) - 1}.block.3."),
        (r"^(acoustic_encoder\.block\.\d+)\.snake1\.", rf"\1.{dilations}."),
        (r"^(acoustic_encoder\.block\.\d+)\.conv1\.", rf"\1.{dilations + 1}."),
        (r"^acoustic_encoder\.block\.(\d+)\.", lambda m: f"encoder.acoustic.conv_blocks.{int(m.group(1)) + 1}.block."),
        (r"^fc_encoder\.", "encoder.fc_prior."),
        (r"^quantizer\.project_in\.", "quantizer.input_proj."),
        (r"^quantizer\.project_out\.", "quantizer.output_proj."),
        (r"^acoustic_decoder\.fc\.", "decoder.fc_post_a."),
        (r"^acoustic_decoder\.(embed|prior_net|post_net)\.", r"decoder.backbone.\1."),
        (r"^acoustic_decoder\.norm\.", "decoder.backbone.final_layer_norm."),
        (r"^acoustic_decoder\.head\.linear\.", "decoder.head.out."),
        (r"^acoustic_decoder\.layers\.", "decoder.backbone.transformers."),
        (r"\.input_layernorm\.", ".att_norm."), (r"\.post_attention_layernorm\.", ".ffn_norm."),
        (r"\.self_attn\.o_proj\.", ".att.c_proj."),
    ]
    rest = {k: v for k, v in state.items() if not k.startswith("semantic_encoder.")}
    attn = {k: rest.pop(k) for k in [k for k in rest if re.search(r"\.self_attn\.[qkv]_proj\.weight$", k)]}
    renamed = rename(rest, rules)
    for layer in sorted({k.split(".")[2] for k in attn}, key=int):
        p = f"acoustic_decoder.layers.{layer}.self_attn."
        try:
            q, k, v = (attn[p + f"{n}_proj.weight"] for n in "qkv")
        except KeyError as err:
            raise CheckpointError(f"transformers Xcodec2 layer {layer} lacks {err.args[0]!r}") from None
        heads = dec["num_heads"]
        renamed[f"decoder.backbone.transformers.{layer}.att.c_attn.weight"] = torch.cat(
            [interleave_rope_rows(q, heads), interleave_rope_rows(k, heads), v])
    plain_convs = [k for k in renamed if k.startswith("encoder.acoustic.") and k.endswith(".weight")
                   and renamed[k].dim() == 3]
    out.update(_weight_norm_from_plain(renamed, plain_convs))
    for name in ("input_proj", "output_proj"):
        key = f"quantizer.{name}.weight"
        if key in out and out[key].dim() == 2:
            out[key] = out[key][..., None]
    out.setdefault("decoder.head.istft.window", _istft_window(config))
    return out


# ---- entry points ----------------------------------------------------------------------------------
def _config_json(path: Path) -> dict:
    data = read_json(path)
    if data is None:
        raise CheckpointError(f"{path}: not a readable JSON object")
    return data


def lightning_state(checkpoint: Any, where: str) -> State:
    """The weights of a Lightning checkpoint (``state_dict``) or of a plain state dict."""
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        return checkpoint["state_dict"]
    if isinstance(checkpoint, dict):
        return checkpoint
    raise CheckpointError(f"{where} holds a {type(checkpoint).__name__}, not a state dict")


def convert_official(weights: str | Path, config_path: str | Path | None = None,
                     trust_checkpoint: bool = False, state: State | None = None) -> Codec:
    """A :class:`Codec` (eval, weight norm kept) from the official ``model.safetensors`` (with its
    ``config.json``) or the training ``.ckpt`` (``state``: its tensors, if already read)."""
    weights = Path(weights)
    if state is None:
        state = (read_state(weights) if weights.suffix == ".safetensors"
                 else lightning_state(torch_load_checkpoint(weights, trust_checkpoint), str(weights)))
    if not is_official_state(state):
        raise CheckpointError(f"{weights} has no CodecEnc.* / generator.backbone.* tensors: not an "
                              "XCodec2 checkpoint of the official layout")
    config_json = _config_json(Path(config_path)) if config_path else None
    codec_config = official_config(state, config_json, str(weights))
    return load_converted(build(codec_config), convert_official_state(state, codec_config), str(weights))


def convert_hf(folder: str | Path) -> Codec:
    """A :class:`Codec` (eval, weight norm re-applied) from a transformers ``Xcodec2Model`` folder."""
    folder = Path(folder)
    codec_config = hf_config(_config_json(folder / "config.json"), str(folder / "config.json"))
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"{folder} has a transformers Xcodec2 config.json but no model.safetensors; "
                              "download both files")
    return load_converted(build(codec_config), convert_hf_state(read_state(weights), codec_config), str(weights))


def _safetensors_keys(path: Path) -> list[str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return list(handle.keys())
    except Exception as err:
        if type(err).__name__ == "SafetensorError":
            raise unreadable_safetensors(path, err) from None
        raise


def detect_official(files: Files, trust_checkpoint: bool = False):  # safetensors: nothing to trust
    """HKUST-Audio/xcodec2's ``model.safetensors`` (+ its ``config.json``) among ``files``, or None."""
    if not files.concern(lambda f: f.name == "config.json" or f.suffix == ".safetensors"):
        return None
    found = files.pick(lambda f: f.suffix == ".safetensors" and is_official_state(_safetensors_keys(f)))
    if not found:
        configs = files.pick(lambda f: is_official_config(read_json(f)))
        if configs:
            raise CheckpointError(f"{configs[0]} is HKUST-Audio/xcodec2's config, but no model.safetensors "
                                  "of the official layout is next to it; download both files")
        return None
    if len(found) > 1:
        raise CheckpointError(f"several XCodec2 checkpoints {[f.name for f in found]}: pass one file")
    config_path = found[0].parent / "config.json"
    config_path = config_path if is_official_config(read_json(config_path)) else None
    return lambda: convert_official(found[0], config_path)


def detect_training(files: Files, trust_checkpoint: bool = False):
    """XCodec2's training ``.ckpt`` (``ckpt/epoch=4-step=1400000.ckpt``) among ``files``, or None.
    Read weights-only unless ``trust_checkpoint``; its tensors are read once, for detection and
    conversion."""
    if not files.concern(lambda f: f.suffix == ".ckpt"):
        return None
    # Only a .ckpt named by the caller, or the one in the release's ckpt/ folder: reading every .ckpt
    # next to other files (runs of other codecs) would be slow and could refuse untrusted ones.
    candidates = [f for f in files.given if f.suffix == ".ckpt"] or [
        f for f in files.nearby if f.suffix == ".ckpt" and f.parent.name == "ckpt"]
    for path in candidates:
        state = lightning_state(torch_load_checkpoint(path, trust_checkpoint), str(path))
        if is_official_state(state):
            return lambda path=path, state=state: convert_official(path, state=state)
    return None


def detect_hf(files: Files, trust_checkpoint: bool = False):  # safetensors: nothing to trust
    """A transformers ``Xcodec2Model`` folder (``config.json`` + ``model.safetensors``), or None."""
    return detect_transformers_folder(files, "xcodec2", "transformers Xcodec2", "HKUSTAudio/xcodec2-hf",
                                      convert_hf)


FAMILY = register_family(Family(
    name="xcodec2",
    configs={"xcodec2": config, "xcodec2-tiny": lambda: config(tiny=True)},
    recipe=RECIPE,
    formats={
        "xcodec2-hf": CheckpointFormat("xcodec2", "transformers Xcodec2Model config.json + model.safetensors",
                                       detect_hf),
        "xcodec2": CheckpointFormat("xcodec2", "HKUST-Audio/xcodec2 config.json + model.safetensors",
                                    detect_official),
        "xcodec2-ckpt": CheckpointFormat("xcodec2", "HKUST-Audio/xcodec2 ckpt/epoch=4-step=1400000.ckpt",
                                         detect_training),
    },
    hub_files={"HKUST-Audio/xcodec2": ["config.json", "model.safetensors"],
               "HKUSTAudio/xcodec2-hf": ["config.json", "model.safetensors"]},
    bench=BenchDefaults(speed="xcodec2", reference=None, quality="xcodec2-tiny"),
    description="16 kHz, 50 Hz, one FSQ codebook of 65,536 (0.8 kbps); w2v-BERT 2.0 + BigCodec encoder, "
                "transformer iSTFT decoder (Llasa's tokenizer)",
))
