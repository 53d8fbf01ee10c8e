"""HuBERT / WavLM teachers loaded with transformers' ``AutoModel.from_pretrained(folder_or_hub_id)``."""
from __future__ import annotations

import hashlib
import json
import math
import os
from fractions import Fraction
from pathlib import Path

import torch

from audiotok.distill.teacher import Teacher, TeacherSpec, dtype_from_name

SUPPORTED_MODEL_TYPES = ("hubert", "wavlm", "wav2vec2")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def resolve_model_folder(source: str) -> Path:
    """A local folder holding ``config.json`` and weights for ``source`` (folder or hub id).

    Hub ids are looked up in the local Hugging Face cache first and downloaded only when the hub is
    reachable; otherwise the error says where to put the files.
    """
    if os.path.isdir(source):
        folder = Path(source).resolve()
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"teacher folder {folder} has no config.json; point to a save_pretrained folder")
        return folder
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors"]
    try:
        return Path(snapshot_download(source, local_files_only=True, allow_patterns=patterns))
    except Exception:  # noqa: BLE001, S110 - not in the local cache: try the hub below
        pass
    try:
        return Path(snapshot_download(source, allow_patterns=patterns))
    except Exception as error:
        raise OSError(
            f"cannot load teacher {source!r}: it is not a local folder, not in the Hugging Face cache, and "
            f"the hub could not be reached ({type(error).__name__}). On a machine with internet run "
            f"`huggingface-cli download {source} --local-dir DIR`, copy DIR here and give the folder instead "
            f"of the id (e.g. 'wavlm:DIR@-1'), or use the offline teacher 'phones'."
        ) from error


def _fingerprint(folder: Path) -> str:
    """Hash of config.json's content and the weight files' names, sizes and modification times."""
    digest = hashlib.sha256((folder / "config.json").read_bytes())
    for path in sorted(folder.iterdir()):
        if path.suffix in WEIGHT_SUFFIXES:
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def hf_teacher_config(spec: TeacherSpec, folder: Path | None = None) -> dict:
    """Identity of a HF teacher, read from its files (weights are not loaded)."""
    folder = folder or resolve_model_folder(spec.source)
    config = _read_json(folder / "config.json")
    model_type = config.get("model_type", "")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(f"teacher {spec.source!r} is a {model_type!r} model; supported: {SUPPORTED_MODEL_TYPES}")
    if spec.kind not in ("hf", model_type):
        raise ValueError(f"teacher spec says {spec.kind!r} but {spec.source!r} holds a {model_type!r} model")
    preprocessor = _read_json(folder / "preprocessor_config.json")
    # Wav2Vec2FeatureExtractor normalises input for "layer"-norm models (large); follow its config if shipped.
    normalize = bool(preprocessor.get("do_normalize", config.get("feat_extract_norm") == "layer"))
    return {
        "kind": model_type,
        "layer": spec.layer,
        "dtype": spec.dtype,
        "normalize": normalize,
        "sample_rate": int(preprocessor.get("sampling_rate", 16000)),
        "hop_length": math.prod(config.get("conv_stride", [5, 2, 2, 2, 2, 2, 2])),
        "dim": int(config["hidden_size"]),
        "weights": _fingerprint(folder),
    }


class HFTeacher(Teacher):
    """HuBERT / WavLM features: one hidden state (``layer`` int, ``-1`` = last) or the mean of all
    hidden states (``"avg"``: embedding output + every transformer layer, 13 for a base model).

    Frozen, eval mode, run under ``torch.inference_mode``; ``dtype`` float32 or bfloat16 (features
    are returned as float32). Input ``wav [B, 1, T]`` at ``sample_rate`` (16 kHz); output
    ``[B, D, T']`` at 50 Hz, frames past each item's length zeroed.
    """

    def __init__(self, source: str, layer: int | str = "avg", dtype: str = "float32", kind: str = "hf") -> None:
        super().__init__()
        from transformers import AutoModel

        spec = TeacherSpec.parse({"kind": kind, "source": str(source), "layer": layer, "dtype": dtype})
        folder = resolve_model_folder(spec.source)
        self._config = hf_teacher_config(spec, folder)
        self.source = spec.source
        self.layer = spec.layer
        self.normalize = self._config["normalize"]
        self.sample_rate = self._config["sample_rate"]
        self.frame_rate = Fraction(self.sample_rate, self._config["hop_length"])
        self.dim = self._config["dim"]
        self.model = AutoModel.from_pretrained(folder, dtype=dtype_from_name(spec.dtype))
        self._check_layer(self.model.config.num_hidden_layers)
        self.freeze()

    def _check_layer(self, num_layers: int) -> None:
        if self.layer != "avg" and not -(num_layers + 1) <= self.layer <= num_layers:
            raise ValueError(
                f"teacher layer {self.layer} out of range: {self.source!r} has hidden states 0..{num_layers}"
            )

    def config_dict(self) -> dict:
        return dict(self._config)

    def output_frames(self, lengths: torch.Tensor) -> torch.Tensor:
        """Teacher frames for inputs of ``lengths`` samples (the conv stack's ``floor((N-400)/320)+1``)."""
        return self.model._get_feat_extract_output_lengths(lengths).long()

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"teacher input must be mono [B, 1, T] at {self.sample_rate} Hz, got {tuple(wav.shape)}")
        audio = wav[:, 0].float()
        batch, samples = audio.shape
        lengths = torch.full((batch,), samples) if lengths is None else lengths.to("cpu").long()
        valid = torch.arange(samples)[None, :] < lengths[:, None]  # [B, T]
        valid = valid.to(audio.device)
        with torch.inference_mode():
            if self.normalize:
                audio = _zero_mean_unit_var(audio, valid)
            use_mask = self.model.config.feat_extract_norm == "layer"  # as the HF feature extractor does
            outputs = self.model(
                audio.to(self.model.dtype),
                attention_mask=valid.long() if use_mask else None,
                output_hidden_states=True,
            )
            states = outputs.hidden_states  # (L+1) x [B, T', D]
            chosen = torch.stack(states).float().mean(0) if self.layer == "avg" else states[self.layer].float()
            features = chosen.transpose(1, 2)  # [B, D, T']
            frames = self.output_frames(lengths).to(features.device)
            keep = torch.arange(features.shape[-1], device=features.device)[None, :] < frames[:, None]
            return (features * keep[:, None, :]).clone()


def _zero_mean_unit_var(audio: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-utterance normalisation over valid samples, padding set to 0 (Wav2Vec2FeatureExtractor)."""
    count = valid.sum(-1, keepdim=True).clamp(min=1)
    mean = (audio * valid).sum(-1, keepdim=True) / count
    var = (((audio - mean) * valid) ** 2).sum(-1, keepdim=True) / count
    return (audio - mean) / torch.sqrt(var + 1e-7) * valid
