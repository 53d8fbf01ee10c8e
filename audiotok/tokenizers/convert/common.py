"""Shared pieces of the official-checkpoint converters: reading weights, renaming keys, loading strictly.

Every converter builds our config from the checkpoint's own config, renames the official keys onto
our module names, and loads with :func:`load_converted`, which refuses any missing, unexpected or
mis-shaped tensor and names them.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from audiotok.codecs.codec import Codec, CodecConfig, load_state_strict
from audiotok.tokenizers.loading import CheckpointError, torch_load_checkpoint, unreadable_safetensors

State = dict[str, torch.Tensor]

# Old-style (torch.nn.utils.weight_norm) and parametrization-style weight-norm names -> ours.
WEIGHT_NORM_RULES = [
    (r"\.weight_g$", ".parametrizations.weight.original0"),
    (r"\.weight_v$", ".parametrizations.weight.original1"),
]


def read_state(path: str | Path, trust_checkpoint: bool = False) -> State:
    """Tensors of a ``.safetensors`` file or a torch-saved state dict (weights only: no code is
    unpickled unless ``trust_checkpoint``); :class:`CheckpointError` naming a bad file."""
    path = Path(path)
    if path.suffix in (".safetensors", ".sft", ".sfts"):
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as err:
            if type(err).__name__ == "SafetensorError":
                raise unreadable_safetensors(path, err) from None
            raise
    state = torch_load_checkpoint(path, trust_checkpoint)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict of tensors")
    return state


def rename(state: Mapping[str, torch.Tensor], rules: Iterable[tuple[str, str]]) -> State:
    """Apply regex substitutions ``rules`` in order to every key; tensors are kept as they are."""
    rules = [(re.compile(pattern), repl) for pattern, repl in rules]
    out: State = {}
    for key, value in state.items():
        for pattern, repl in rules:
            key = pattern.sub(repl, key)
        if key in out:
            raise CheckpointError(f"two checkpoint tensors map onto {key!r}: the key map is ambiguous")
        out[key] = value
    return out


def take(state: Mapping[str, torch.Tensor], prefix: str) -> State:
    """The entries under ``prefix`` with the prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def codebook_from_encodec(codebook: Mapping[str, torch.Tensor], where: str) -> State:
    """EnCodec-layout buffers (SpeechTokenizer, WavTokenizer) ``inited/cluster_size/embed/embed_avg``
    -> ours; ``embed`` is used as stored (it is what the reference decodes with)."""
    needed = {"inited", "cluster_size", "embed", "embed_avg"}
    if not needed <= set(codebook):
        raise CheckpointError(f"{where}: codebook buffers {sorted(needed - set(codebook))} are "
                              f"missing (found {sorted(codebook)})")
    return {"initialized": codebook["inited"].float().reshape(1),
            "cluster_size": codebook["cluster_size"].float(),
            "embed": codebook["embed"].float(),
            "embed_avg": codebook["embed_avg"].float()}


def build(config: CodecConfig, folded: bool = False) -> Codec:
    """An empty :class:`Codec`; ``folded``: without weight norm, for weights shipped folded (Mimi)."""
    codec = Codec(config)
    return codec.fold_weight_norm() if folded else codec


def load_converted(codec: Codec, state: State, source: str) -> Codec:
    """Load converted ``state`` into ``codec`` strictly (naming any mismatch); return it in eval mode."""
    own = codec.state_dict()
    state = {k: v.to(own[k].dtype) if k in own and v.is_floating_point() else v for k, v in state.items()}
    try:
        load_state_strict(codec, state, source=source)
    except ValueError as err:
        raise CheckpointError(str(err)) from None
    return codec.eval()


def require(data: Mapping, keys: Iterable[str], where: str) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise CheckpointError(f"{where} lacks the fields {missing}; is it the config of this checkpoint?")
