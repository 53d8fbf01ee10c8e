"""`load`: one entry point for every kind of codec weights, detected in this order.

1. a shipped trained tokenizer (``mimi-tiny-trained``; :mod:`audiotok.tokenizers.pretrained`), loaded
   from its saved folder inside the package;
2. a registered name (``audiotok info`` lists them): the architecture with fresh random weights;
3. a folder written by ``save_pretrained`` (our ``config.json`` + ``model.safetensors``);
4. a checkpoint of our training CLI (Lightning ``.ckpt`` holding ``audiotok_codec_config`` and
   ``state_dict`` keys under ``codec.``);
5. an official checkpoint (SpeechTokenizer, Mimi in moshi's or Hugging Face's layout, WavTokenizer),
   converted by :mod:`audiotok.tokenizers.convert`;
6. a Hugging Face hub id (``owner/name``), fetched with ``huggingface_hub`` and then detected as above.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from audiotok.codecs.codec import Codec, CodecConfig, load_state_strict
from audiotok.codecs.families import REGISTRY, available, build_codec
from audiotok.tokenizers.pretrained import (
    available_pretrained_text,
    is_pretrained,
    pretrained_path,
)
from audiotok.tokenizers.tokenizer import Tokenizer

TRAINING_CONFIG_KEY = "audiotok_codec_config"
TRAINING_PREFIX = "codec."

# Official releases: which files to fetch from the hub (not the whole repo: moshi's holds a 7B LM).
KNOWN_HUB_FILES: dict[str, list[str]] = {
    "fnlp/SpeechTokenizer": ["speechtokenizer_hubert_avg/config.json",
                             "speechtokenizer_hubert_avg/SpeechTokenizer.pt"],
    "kyutai/mimi": ["config.json", "model.safetensors"],
    "kyutai/moshiko-pytorch-bf16": ["tokenizer-e351c8d8-checkpoint125.safetensors"],
}
DEFAULT_HUB_PATTERNS = ["*.json", "*.yaml", "*.yml", "*.safetensors", "*.ckpt", "*.pt"]


class CheckpointError(ValueError):
    """Weights that cannot be loaded; the message says what was found and what to do."""


def load(name_or_path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
         n_q: int | None = None, semantic_only: bool = False, fold_weight_norm: bool = True,
         **options) -> Tokenizer:
    """A ready :class:`Tokenizer` from a name, a folder, a checkpoint file or a hub id.

    ``options`` go to :class:`Tokenizer` (``batch_size``, ``chunk_seconds``, ``context_seconds``).
    """
    codec = load_codec(name_or_path)
    return Tokenizer(codec, device=device, dtype=dtype, n_q=n_q, semantic_only=semantic_only,
                     fold_weight_norm=fold_weight_norm, source=str(name_or_path), **options)


def load_codec(name_or_path: str | Path) -> Codec:
    """The :class:`Codec` behind ``name_or_path`` (on the CPU), detected as the module doc says."""
    text = str(name_or_path)
    path = Path(name_or_path).expanduser()
    if is_pretrained(text) and not path.exists():
        return Codec.from_pretrained(pretrained_path(text))
    if text in REGISTRY and not path.exists():
        warnings.warn(f"{text!r} is a registered architecture: its weights are random. Load a trained "
                      f"tokenizer ({available_pretrained_text()}) or checkpoint (a saved folder, a training .ckpt or official "
                      "weights) for real codes", stacklevel=3)
        return build_codec(text)
    if path.exists():
        codec = _load_local(path)
        if codec is None:
            raise CheckpointError(
                f"{path}: not a codec this library recognises. Expected {_known_names()}, a folder "
                "saved by save_pretrained (config.json + model.safetensors), a training checkpoint "
                "(.ckpt from `audiotok fit`), or official weights (SpeechTokenizer config.json + "
                "SpeechTokenizer.pt; Mimi tokenizer-…-checkpoint125.safetensors or kyutai/mimi's "
                "config.json + model.safetensors; WavTokenizer .yaml + .ckpt)")
        return codec
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        return _load_local_or_fail(download_from_hub(text), text)
    raise FileNotFoundError(f"{text}: no such file or folder, and not {_known_names()}, or a hub id "
                            "like 'kyutai/mimi'")


def _known_names() -> str:
    """The names ``load`` accepts, for error messages."""
    return (f"a registered codec ({', '.join(available())}), a shipped trained tokenizer "
            f"({available_pretrained_text()})")


def _load_local_or_fail(path: Path, label: str) -> Codec:
    codec = _load_local(path)
    if codec is None:
        for child in sorted(path.iterdir()) if path.is_dir() else []:
            codec = _load_local(child)
            if codec is not None:
                break
    if codec is None:
        raise CheckpointError(f"{label} (downloaded to {path}) holds no codec checkpoint this library "
                              "recognises; see audiotok.load's documentation for the supported formats")
    return codec


def _load_local(path: Path) -> Codec | None:
    """Try our formats, then the official converters; None when nothing matches."""
    if is_saved_folder(path):
        return Codec.from_pretrained(path)
    if path.is_file() and path.suffix in (".ckpt", ".pt", ".pth"):
        checkpoint = _torch_load(path)
        if isinstance(checkpoint, dict) and TRAINING_CONFIG_KEY in checkpoint:
            return codec_from_training_checkpoint(checkpoint, str(path))
    return _convert_official(path)


def is_saved_folder(path: Path) -> bool:
    """True for a folder holding our ``config.json`` (a CodecConfig) and ``model.safetensors``."""
    config = path / "config.json"
    if not (path.is_dir() and config.is_file() and (path / "model.safetensors").is_file()):
        return False
    try:
        data = json.loads(config.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and {"sample_rate", "encoder", "quantizer", "decoder"} <= set(data)


def _torch_load(path: Path):
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False, mmap=True)
    except RuntimeError:  # old (non-zip) serialisation cannot be memory-mapped
        return torch.load(str(path), map_location="cpu", weights_only=False)


def load_training_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Codec:
    """The codec in a checkpoint written by our training CLI (``audiotok fit``).

    The checkpoint holds the codec config as a dict under ``"audiotok_codec_config"`` and the codec
    weights under ``state_dict`` keys starting ``"codec."`` (discriminators etc. are ignored).
    """
    path = Path(path)
    checkpoint = _torch_load(path)
    if not isinstance(checkpoint, dict) or TRAINING_CONFIG_KEY not in checkpoint:
        raise CheckpointError(f"{path} is not an audiotok training checkpoint (no "
                              f"{TRAINING_CONFIG_KEY!r} entry); for other checkpoints use audiotok.load")
    return codec_from_training_checkpoint(checkpoint, str(path)).to(map_location)


def codec_from_training_checkpoint(checkpoint: dict, source: str) -> Codec:
    config = checkpoint[TRAINING_CONFIG_KEY]
    codec = Codec(config if isinstance(config, CodecConfig) else CodecConfig.from_dict(config))
    state = {k[len(TRAINING_PREFIX):]: v for k, v in checkpoint.get("state_dict", {}).items()
             if k.startswith(TRAINING_PREFIX)}
    if not state:
        raise CheckpointError(f"{source}: the state_dict has no {TRAINING_PREFIX!r} weights; was it "
                              "saved by `audiotok fit`?")
    load_state_strict(codec, state, source=source)
    return codec


def _convert_official(path: Path) -> Codec | None:
    try:
        from audiotok.tokenizers.convert import detect_and_convert
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith("audiotok.tokenizers.convert"):
            return None  # converters not installed in this build
        raise
    return detect_and_convert(path)


def download_from_hub(repo_id: str) -> Path:
    """Fetch the codec files of ``repo_id`` with ``huggingface_hub``; offline, say where to put them."""
    files = KNOWN_HUB_FILES.get(repo_id)
    manual = (f"download {', '.join(files)} from the hub repo {repo_id}" if files else
              f"download the config (.json/.yaml) and weights (.safetensors/.ckpt/.pt) of {repo_id}")
    how = (f"{manual} into a folder (e.g. ./{repo_id.split('/')[-1]}) and call "
           f"audiotok.load('./{repo_id.split('/')[-1]}'), or set HF_HOME to a cache that already has them")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise CheckpointError(f"{repo_id} looks like a hub id, but huggingface_hub is not installed "
                              f"(pip install huggingface_hub); or {how}") from None
    try:
        folder = snapshot_download(repo_id, allow_patterns=files or DEFAULT_HUB_PATTERNS)
    except Exception as err:  # offline, unknown repo, gated repo: all need the same advice
        raise CheckpointError(f"could not fetch {repo_id} from the hub ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''}). Offline? {how}") from err
    folder = Path(folder)
    if files and len({Path(f).parent for f in files}) == 1:
        folder = folder / Path(files[0]).parent  # e.g. SpeechTokenizer's subfolder
    return folder
