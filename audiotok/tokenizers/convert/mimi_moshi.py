"""Mimi in moshi's release format: one ``tokenizer-*.safetensors`` (e.g. ``kyutai/moshiko-pytorch-bf16``).

Weights are shipped folded (no weight norm) under moshi's module names: ``conv.conv`` wrappers,
``encoder_transformer.transformer.layers.*.self_attn.in_projs.0`` (fused qkv, interleaved RoPE as
ours), ``downsample.conv.conv.conv``, ``upsample.convtr.convtr.convtr``, and codebooks
``quantizer.rvq_first`` / ``rvq_rest`` ``.vq.layers.i._codebook.{_initialized, cluster_usage,
embedding_sum}``. The file holds no config: the architecture is moshi's default Mimi, with the
number of codebooks read from the file.
"""
from __future__ import annotations

from pathlib import Path

from audiotok.codecs.codec import Codec, CodecConfig
from audiotok.codecs.families import mimi
from audiotok.codecs.quantizers import codebook_state_from_moshi

from .common import (
    CheckpointError,
    State,
    build,
    load_converted,
    read_state,
    rename,
    take,
)

KEY_RULES = [
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


def convert_state(state: State) -> State:
    state = {k: v for k, v in state.items() if not k.startswith(DROPPED_PREFIXES)}
    renamed = rename(state, KEY_RULES)
    out = {k: v for k, v in renamed.items() if ".vq.layers." not in k}
    for part in ("semantic", "acoustic"):
        out.update(convert_codebooks(renamed, f"quantizer.{part}.vq.layers.", f"quantizer.{part}.layers."))
    return out


def config_for(state: State) -> CodecConfig:
    """moshi's default Mimi, with as many codebooks as the file holds."""
    n_acoustic = len({k.split(".")[4] for k in state if k.startswith("quantizer.rvq_rest.vq.layers.")})
    return mimi().replace(quantizer=dict(n_q=1 + n_acoustic))


def convert(weights_path: str | Path) -> Codec:
    """A :class:`Codec` (eval mode, folded weights) from a moshi Mimi ``.safetensors``."""
    state = read_state(weights_path)
    if not is_moshi_mimi(state):
        raise CheckpointError(f"{weights_path} is not a moshi Mimi checkpoint (no "
                              "encoder_transformer.transformer.* / quantizer.rvq_first.* tensors)")
    return load_converted(build(config_for(state), folded=True), convert_state(state), str(weights_path))
