"""`load`: one entry point for every kind of codec weights, detected in this order.

1. a shipped trained tokenizer (``mimi-tiny-trained``; :mod:`audiotok.tokenizers.pretrained`), loaded
   from its saved folder inside the package;
2. a registered name (``audiotok info`` lists them): the architecture with fresh random weights;
3. a folder written by ``save_pretrained`` (our ``config.json`` + ``model.safetensors``);
4. a checkpoint of our training CLI (Lightning ``.ckpt`` holding ``audiotok_codec_config`` and
   ``state_dict`` keys under ``codec.``);
5. an official checkpoint (SpeechTokenizer, Mimi in moshi's or Hugging Face's layout, WavTokenizer),
   converted by its family module (:mod:`audiotok.families`; :func:`audiotok.checkpoints.formats.detect`);
6. a Hugging Face hub id (``owner/name``), fetched with ``huggingface_hub`` and then detected as above.

PyTorch files (``.pt``, ``.pth``, ``.ckpt``) are read with ``torch.load(weights_only=True)``: tensors,
plain containers and numbers only, plus the harmless value types in :data:`SAFE_GLOBALS`. Unpickling
anything else can run code hidden in the file, so it needs an explicit ``trust_checkpoint=True``
(only for files from a source you trust). Checkpoints written by ``audiotok fit`` load without it.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from audiotok.checkpoints.formats import detect_and_convert
from audiotok.checkpoints.io import (  # noqa: F401  (SAFE_GLOBALS, TRUST_ADVICE: re-exported)
    SAFE_GLOBALS,
    TRUST_ADVICE,
    torch_load_checkpoint,
    unreadable_safetensors,
)
from audiotok.codecs.codec import Codec, CodecConfig, load_state_strict
from audiotok.codecs.families import REGISTRY, available, build_codec
from audiotok.errors import CheckpointError
from audiotok.families import hub_files
from audiotok.tokenizers.pretrained import (
    available_pretrained_text,
    is_pretrained,
    pretrained_path,
)
from audiotok.tokenizers.tokenizer import Tokenizer

TRAINING_CONFIG_KEY = "audiotok_codec_config"
TRAINING_PREFIX = "codec."

DEFAULT_HUB_PATTERNS = ["*.json", "*.yaml", "*.yml", "*.safetensors", "*.ckpt", "*.pt"]


def load(name_or_path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
         n_q: int | None = None, semantic_only: bool = False, fold_weight_norm: bool = True,
         trust_checkpoint: bool = False, backend: str | None = None, **options) -> Tokenizer:
    """A ready :class:`Tokenizer` from a name, a folder, a checkpoint file or a hub id.

    ``trust_checkpoint``: allow PyTorch files (``.pt``/``.pth``/``.ckpt``) that pickle Python objects
    to be fully unpickled, which runs whatever code the file names; leave it False (weights only)
    unless you trust the file. ``options`` go to :class:`Tokenizer` (``batch_size``,
    ``chunk_seconds``, ``context_seconds``).

    ``backend``: ``"torch"`` or ``"onnxruntime"``: the codec runs as ONNX graphs (CPU, float32), from
    a folder written by ``audiotok export onnx`` or exported on the fly (see
    :mod:`audiotok.export.onnx_runtime`). Unset: ONNX Runtime for a folder written by
    ``audiotok export onnx`` (it holds graphs, not torch weights), torch for everything else.
    """
    # ---- ONNX backend hook (all of it lives in audiotok/export/onnx_runtime.py) ----
    from audiotok.export.onnx import is_onnx_folder

    exported = is_onnx_folder(Path(str(name_or_path)).expanduser())
    if backend is None:
        backend = "onnxruntime" if exported else "torch"
    elif backend == "torch" and exported:
        raise ValueError(f"{name_or_path} is an ONNX export (graphs, no torch weights): load it with "
                         "backend='onnxruntime' or leave backend unset; load the model it was exported "
                         "from to run it in torch")
    if backend == "onnxruntime":
        from audiotok.export.onnx_runtime import load_onnx_tokenizer

        return load_onnx_tokenizer(name_or_path, device=device, dtype=dtype, n_q=n_q,
                                   semantic_only=semantic_only, trust_checkpoint=trust_checkpoint, **options)
    if backend != "torch":
        raise ValueError(f"unknown backend {backend!r}; choose 'torch' or 'onnxruntime'")
    # ---- end of ONNX backend hook ----
    codec = load_codec(name_or_path, trust_checkpoint=trust_checkpoint)
    return Tokenizer(codec, device=device, dtype=dtype, n_q=n_q, semantic_only=semantic_only,
                     fold_weight_norm=fold_weight_norm, source=str(name_or_path), **options)


def load_codec(name_or_path: str | Path, trust_checkpoint: bool = False) -> Codec:
    """The :class:`Codec` behind ``name_or_path`` (on the CPU), detected as the module doc says.

    ``trust_checkpoint``: see :func:`load` (PyTorch files are read weights-only unless True).
    """
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
        codec = _load_local(path, trust_checkpoint)
        if codec is None:
            if path.is_dir() and (path / "config.json").is_file() and not (path / "model.safetensors").exists():
                raise CheckpointError(
                    f"{path / 'model.safetensors'} is missing: {path} has a config.json but no weights "
                    "this library recognises next to it. A folder saved by save_pretrained holds "
                    "config.json and model.safetensors; copy the weights file in beside the config")
            raise CheckpointError(
                f"{path}: not a codec this library recognises. Expected {_known_names()}, a folder "
                "saved by save_pretrained (config.json + model.safetensors), a training checkpoint "
                "(.ckpt from `audiotok fit`), or official weights: " + _official_formats())
        return codec
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        return _load_local_or_fail(download_from_hub(text), text, trust_checkpoint)
    raise FileNotFoundError(f"{text}: no such file or folder, and not {_known_names()}, or a hub id "
                            "like 'kyutai/mimi'")


def _official_formats() -> str:
    """Every registered official checkpoint layout, for error messages: ``family: files; ...``."""
    from audiotok.checkpoints.formats import FORMATS

    return "; ".join(f"{fmt.family}: {fmt.files}" for _, fmt in FORMATS.items())


def _known_names() -> str:
    """The names ``load`` accepts, for error messages."""
    return (f"a registered codec ({', '.join(available())}), a shipped trained tokenizer "
            f"({available_pretrained_text()})")


def _load_local_or_fail(path: Path, label: str, trust_checkpoint: bool = False) -> Codec:
    codec = _load_local(path, trust_checkpoint)
    if codec is None:
        for child in sorted(path.iterdir()) if path.is_dir() else []:
            codec = _load_local(child, trust_checkpoint)
            if codec is not None:
                break
    if codec is None:
        raise CheckpointError(f"{label} (downloaded to {path}) holds no codec checkpoint this library "
                              "recognises; see audiotok.load's documentation for the supported formats")
    return codec


def _load_local(path: Path, trust_checkpoint: bool = False) -> Codec | None:
    """Try our formats, then the official converters; None when nothing matches."""
    if path.is_dir() and _is_our_config(path / "config.json"):
        return load_saved_folder(path)
    if path.is_file() and path.suffix in (".ckpt", ".pt", ".pth"):
        checkpoint = torch_load_checkpoint(path, trust_checkpoint)
        if isinstance(checkpoint, dict) and TRAINING_CONFIG_KEY in checkpoint:
            return codec_from_training_checkpoint(checkpoint, str(path))
    return _convert_official(path, trust_checkpoint)


def _is_our_config(config: Path) -> bool:
    """True for a ``config.json`` that is a CodecConfig (has the part keys) or unreadable JSON next
    to a ``model.safetensors`` (then :func:`load_saved_folder` says what is wrong with it)."""
    if not config.is_file():
        return False
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError):
        return (config.parent / "model.safetensors").is_file()
    return isinstance(data, dict) and {"sample_rate", "encoder", "quantizer", "decoder"} <= set(data)


def load_saved_folder(path: Path) -> Codec:
    """A folder of ``save_pretrained``, with errors naming the bad or missing file."""
    config_path, weights_path = path / "config.json", path / "model.safetensors"
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path} is missing: {config_path} is an audiotok codec config, "
                              "and a saved codec folder holds config.json and model.safetensors (both "
                              "written by save_pretrained); copy the weights file in beside the config")
    try:
        CodecConfig.load(config_path)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{config_path} is not valid JSON (line {err.lineno}, column {err.colno}: "
                              f"{err.msg}); restore the config.json saved with the weights") from None
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{config_path}: {err}; fix the field or restore the config.json saved "
                              "with the weights") from None
    try:
        return Codec.from_pretrained(path)
    except Exception as err:
        if type(err).__name__ == "SafetensorError":
            raise unreadable_safetensors(weights_path, err) from None
        raise


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


def load_training_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                             trust_checkpoint: bool = False) -> Codec:
    """The codec in a checkpoint written by our training CLI (``audiotok fit``).

    The checkpoint holds the codec config as a dict under ``"audiotok_codec_config"`` and the codec
    weights under ``state_dict`` keys starting ``"codec."`` (discriminators etc. are ignored).
    """
    path = Path(path)
    checkpoint = torch_load_checkpoint(path, trust_checkpoint)
    if not isinstance(checkpoint, dict) or TRAINING_CONFIG_KEY not in checkpoint:
        raise CheckpointError(f"{path} is not an audiotok training checkpoint (no "
                              f"{TRAINING_CONFIG_KEY!r} entry); for other checkpoints use audiotok.load")
    return codec_from_training_checkpoint(checkpoint, str(path)).to(map_location)


def codec_from_training_checkpoint(checkpoint: dict, source: str) -> Codec:
    config = checkpoint[TRAINING_CONFIG_KEY]
    if not isinstance(config, CodecConfig):
        try:
            config = CodecConfig.from_dict(config)
        except (ValueError, TypeError) as err:
            raise CheckpointError(f"{source}: its {TRAINING_CONFIG_KEY!r} entry is not a valid codec "
                                  f"config ({err})") from None
    codec = Codec(config)
    state = {k[len(TRAINING_PREFIX):]: v for k, v in checkpoint.get("state_dict", {}).items()
             if k.startswith(TRAINING_PREFIX)}
    if not state:
        raise CheckpointError(f"{source}: the state_dict has no {TRAINING_PREFIX!r} weights; was it "
                              "saved by `audiotok fit`?")
    load_state_strict(codec, state, source=source)
    return codec


def _convert_official(path: Path, trust_checkpoint: bool = False) -> Codec | None:
    return detect_and_convert(path, trust_checkpoint=trust_checkpoint)


def download_from_hub(repo_id: str) -> Path:
    """Fetch the codec files of ``repo_id`` with ``huggingface_hub``; offline, say where to put them."""
    files = hub_files().get(repo_id)  # official releases: the files their family module names
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
