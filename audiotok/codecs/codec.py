"""`Codec`: encoder → [transformer] → [down-sample] → quantizer → [up-sample] → [transformer] → decoder.

Every part is named by a ``type`` and its keyword arguments in a :class:`CodecConfig`, so a codec
family is a config and parts mix across families (a Mimi-style causal codec with a single 4096-entry
codebook is a one-line change). Configs round-trip through dicts, JSON and YAML.

Shapes: audio ``[B, 1, T]``, latents ``[B, D, F]``, codes ``[B, Q, F]`` with ``F = ceil(T / hop)``.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audiotok.registry import Registry

from .modules.conv import fold_weight_norm
from .modules.resample import ConvDownsample1d, ConvTrUpsample1d
from .modules.seanet import SEANetDecoder, SEANetEncoder
from .modules.streaming import StreamingModule
from .modules.transformer import Transformer
from .quantizers import QUANTIZERS, QuantizerOutput

# Encoders take audio [B, C, T] to a latent [B, dimension, F] and expose `dimension` and `hop_length`;
# decoders take [B, D, F] back to [B, C, F * hop] (and may expose `hop_length`). A config names one by
# {"type": name, **fields} or {"class_path": "my_pkg.MyEncoder", "init_args": {...}}.
ENCODERS = Registry("encoder")
ENCODERS.register("seanet", SEANetEncoder)
ENCODERS.register("xcodec2", "audiotok.codecs.modules.xcodec2.XCodec2Encoder")  # imported on first use
ENCODERS.register("ssl_layer", "audiotok.codecs.modules.ssl.SSLLayerEncoder")  # HuBERT/WavLM layer (units)
DECODERS = Registry("decoder")
DECODERS.register("seanet", SEANetDecoder)
DECODERS.register("vocos", "audiotok.codecs.modules.vocos.VocosDecoder")  # imported on first use
DECODERS.register("xcodec2", "audiotok.codecs.modules.xcodec2.XCodec2Decoder")
DECODERS.register("no_vocoder", "audiotok.codecs.modules.ssl.NoVocoder")  # units without a vocoder


def _is_int(value: Any) -> bool:
    import numbers

    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# CodecConfig field -> (check, what it must be), used by CodecConfig.from_dict.
_FIELD_RULES: dict[str, tuple[Any, str]] = {
    "sample_rate": (lambda v: _is_int(v) and v > 0, "a positive integer (Hz, e.g. 24000)"),
    "encoder": (lambda v: isinstance(v, dict), "a dict (the part's type and arguments)"),
    "quantizer": (lambda v: isinstance(v, dict), "a dict (the part's type and arguments)"),
    "decoder": (lambda v: isinstance(v, dict), "a dict (the part's type and arguments)"),
    "encoder_transformer": (lambda v: v is None or isinstance(v, dict), "a dict or null"),
    "decoder_transformer": (lambda v: v is None or isinstance(v, dict), "a dict or null"),
    "resample_stride": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "resample_depthwise_up": (lambda v: isinstance(v, bool), "true or false"),
    "causal": (lambda v: isinstance(v, bool), "true or false"),
    "semantic_dim": (lambda v: v is None or _is_int(v) and v > 0, "a positive integer or null"),
    "default_n_q": (lambda v: v is None or _is_int(v) and v > 0, "a positive integer or null"),
    "name": (lambda v: isinstance(v, str), "a string"),
    "family": (lambda v: isinstance(v, str), "a string"),
}


def _field_problem(name: str, value: Any) -> str | None:
    """What ``value`` of CodecConfig field ``name`` must be, if it is not; None when it is fine."""
    rule = _FIELD_RULES.get(name)
    return None if rule is None or rule[0](value) else rule[1]


@dataclass
class CodecConfig:
    """Everything needed to build a :class:`Codec`; ``type`` keys pick the part implementations."""

    sample_rate: int
    encoder: dict[str, Any]
    quantizer: dict[str, Any]
    decoder: dict[str, Any]
    encoder_transformer: dict[str, Any] | None = None
    decoder_transformer: dict[str, Any] | None = None
    resample_stride: int = 1  # learned latent down/up-sampling (Mimi: 2)
    resample_depthwise_up: bool = True
    causal: bool = False
    semantic_dim: int | None = None  # projection of the first level for distillation (ST: 768)
    default_n_q: int | None = None  # codebooks used when none is asked for (Mimi: 8 of 32)
    name: str = "custom"
    family: str = "custom"

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CodecConfig":
        """A config from a dict (JSON / YAML); ``ValueError`` naming any unknown, missing or
        wrongly typed field (e.g. ``"sample_rate": "fast"``) before anything is built."""
        if not isinstance(data, dict):
            raise ValueError(f"a CodecConfig is a dict of fields, got a {type(data).__name__}")
        fields = dataclasses.fields(cls)
        known = {f.name for f in fields}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown CodecConfig fields {sorted(unknown)}; known: {sorted(known)}")
        missing = [f.name for f in fields if f.name not in data
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise ValueError(f"CodecConfig lacks the required fields {missing}")
        for name, value in data.items():
            problem = _field_problem(name, value)
            if problem:
                raise ValueError(f"CodecConfig field {name!r} must be {problem}, got {value!r} "
                                 f"({type(value).__name__})")
        return cls(**copy.deepcopy(data))

    def save(self, path: str | Path) -> None:
        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        else:
            path.write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> "CodecConfig":
        path = Path(path)
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            return cls.from_dict(yaml.safe_load(text))
        return cls.from_dict(json.loads(text))

    def replace(self, **changes) -> "CodecConfig":
        """A copy with some fields changed.

        A nested part dict is merged into the current one (``quantizer={"codebook_size": 128}``),
        unless it names another ``type``, which swaps the part whole.
        """
        data = self.to_dict()
        for key, value in changes.items():
            old = data.get(key)
            if isinstance(value, dict) and isinstance(old, dict) and value.get("type", old.get("type")) == old.get("type"):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return CodecConfig.from_dict(data)


@dataclass
class CodecOutput:
    """Training output of :meth:`Codec.forward`.

    audio: reconstruction ``[B, 1, T]`` trimmed to the input length; codes ``[B, Q, F]``;
    commitment_loss: scalar; semantic: first-level features for distillation ``[B, D_sem, F]``
    (after ``semantic_dim`` projection when configured); latent: encoder output ``[B, D, F]``.
    """

    audio: torch.Tensor
    codes: torch.Tensor
    commitment_loss: torch.Tensor
    semantic: torch.Tensor
    latent: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)


def check_code_values(codes: torch.Tensor, codebook_size: int) -> None:
    """``ValueError`` naming the range found unless every code lies in ``[0, codebook_size)`` (reads the
    values: a device sync on an accelerator, so only boundaries call it)."""
    if codes.numel() and (codes.min() < 0 or codes.max() >= codebook_size):
        raise ValueError(f"codes must lie in [0, {codebook_size}), got [{int(codes.min())}, {int(codes.max())}]")


class Codec(StreamingModule):
    """A neural audio codec assembled from a :class:`CodecConfig`."""

    def __init__(self, config: CodecConfig):
        super().__init__()
        self.config = config
        self.encoder = ENCODERS.build(config.encoder)
        self.encoder_transformer = (Transformer(**config.encoder_transformer)
                                    if config.encoder_transformer else None)
        dim = self.encoder.dimension
        stride = config.resample_stride
        self.downsample = ConvDownsample1d(dim, stride, causal=config.causal) if stride > 1 else None
        self.quantizer = QUANTIZERS.build(config.quantizer)
        self.upsample = (ConvTrUpsample1d(dim, stride, causal=config.causal,
                                          depthwise=config.resample_depthwise_up)
                         if stride > 1 else None)
        self.decoder_transformer = (Transformer(**config.decoder_transformer)
                                    if config.decoder_transformer else None)
        self.decoder = DECODERS.build(config.decoder)
        self.transform = (nn.Linear(self.quantizer.dim, config.semantic_dim)
                          if config.semantic_dim else None)
        self.hop_length = self.encoder.hop_length * stride
        decoder_hop = getattr(self.decoder, "hop_length", self.encoder.hop_length) * stride
        if decoder_hop != self.hop_length:
            raise ValueError(f"decoder hop {decoder_hop} != encoder hop {self.hop_length}: the "
                             "decoder must upsample each frame to exactly the samples it encodes")
        self._n_q = config.default_n_q or self.quantizer.num_codebooks

    # ---- metadata -------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def max_codebooks(self) -> int:
        return self.quantizer.num_codebooks

    @property
    def num_codebooks(self) -> int:
        """Codebooks used by ``encode`` when no ``n_q`` is given."""
        return self._n_q

    def set_num_codebooks(self, n_q: int) -> None:
        self._n_q = self.resolve_n_q(n_q)

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    @property
    def bitrate(self) -> float:
        """Bits per second at the active number of codebooks."""
        return self.frame_rate * self.num_codebooks * math.log2(self.codebook_size)

    @property
    def is_causal(self) -> bool:
        return self.config.causal

    @property
    def decoder_unavailable(self) -> str | None:
        """Why ``decode`` cannot run (its decoder's ``unavailable_reason``: a units tokenizer without
        a vocoder), or None when it can."""
        return getattr(self.decoder, "unavailable_reason", None)

    def num_frames(self, num_samples: int) -> int:
        return math.ceil(num_samples / self.hop_length)

    def resolve_n_q(self, n_q: int | None) -> int:
        """``n_q`` checked against this codec (``None``: the active number of codebooks)."""
        n_q = self._n_q if n_q is None else int(n_q)
        if not 1 <= n_q <= self.max_codebooks:
            raise ValueError(f"n_q must be between 1 and {self.max_codebooks} for this codec, got {n_q}")
        return n_q

    # ---- the pipeline -----------------------------------------------------------------------------
    def _check_audio(self, wav: torch.Tensor) -> torch.Tensor:
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"codecs take mono audio shaped [B, 1, T], got {tuple(wav.shape)}; "
                             "use audiotok.load(...).tokenize for other layouts")
        if self.config.causal and not self.is_streaming:
            # Pad to whole frames so every causal conv sees stride-aligned input (= streaming).
            pad = -wav.shape[-1] % self.hop_length
            if pad:
                wav = nn.functional.pad(wav, (0, pad))
        return wav

    def encode_latent(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, 1, T] -> [B, D, F]``: the continuous latent the quantizer sees."""
        z = self.encoder(self._check_audio(wav))
        if self.encoder_transformer is not None:
            z = self.encoder_transformer(z)
        if self.downsample is not None:
            z = self.downsample(z)
        return z

    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        """``[B, D, F] -> [B, 1, F * hop]``."""
        if self.upsample is not None:
            z = self.upsample(z)
        if self.decoder_transformer is not None:
            z = self.decoder_transformer(z)
        return self.decoder(z)

    def encode(self, wav: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """``[B, 1, T] -> codes [B, Q, ceil(T / hop)]`` (int64)."""
        return self.quantizer.encode(self.encode_latent(wav), self.resolve_n_q(n_q))

    def check_codes(self, codes: torch.Tensor, values: bool = True) -> torch.Tensor:
        """The one check of codes given to this codec: ``[B, Q, F]``, ``Q <= max_codebooks`` and, with
        ``values``, every code in ``[0, codebook_size)`` (that part reads the values: a device sync on an
        accelerator). Returns ``codes``; raises ``ValueError`` saying what is wrong."""
        if codes.dim() != 3:
            raise ValueError(f"codes must be [B, Q, F], got {tuple(codes.shape)}")
        if codes.shape[1] > self.max_codebooks:
            raise ValueError(f"got {codes.shape[1]} codebooks, this codec has {self.max_codebooks}")
        if values:
            check_code_values(codes, self.codebook_size)
        return codes

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``codes [B, Q, F] -> [B, 1, F * hop]`` for any ``Q <= max_codebooks``; the codes are checked
        (:meth:`check_codes`) unless streaming, where the caller checks them (:class:`~audiotok.tokenizers.Stream`),
        so that a streaming step never waits for the device."""
        return self.decode_latent(self.quantizer.decode(self.check_codes(codes, values=not self.is_streaming)))

    def forward(self, wav: torch.Tensor, n_q: int | None = None, quantize: bool = True) -> CodecOutput:
        """Training pass: reconstruction trimmed to the input length, codes, losses, metrics.

        ``quantize=False`` bypasses the quantizer (the decoder gets the continuous latent, codebooks
        neither initialise nor learn, commitment is 0, codes are ``[B, 0, F]``): the quantizer warm-up
        of :class:`~audiotok.training.CodecLightningModule`, which lets encoder and decoder learn a
        latent worth quantizing before k-means initialises the codebooks on it.
        """
        length = wav.shape[-1]
        latent = self.encode_latent(wav)
        if not quantize:
            audio = self.decode_latent(latent)[..., :length]
            semantic = latent if self.transform is None else self.transform(latent.transpose(1, 2)).transpose(1, 2)
            return CodecOutput(audio=audio, codes=latent.new_zeros((latent.shape[0], 0, latent.shape[-1]),
                                                                   dtype=torch.long),
                               commitment_loss=latent.new_zeros(()), semantic=semantic, latent=latent,
                               metrics={})
        q: QuantizerOutput = self.quantizer(latent, None if n_q is None else self.resolve_n_q(n_q))
        audio = self.decode_latent(q.quantized)[..., :length]
        semantic = q.first_level
        if self.transform is not None:
            semantic = self.transform(semantic.transpose(1, 2)).transpose(1, 2)
        return CodecOutput(audio=audio, codes=q.codes, commitment_loss=q.commitment_loss,
                           semantic=semantic, latent=latent, metrics=q.metrics)

    # ---- streaming --------------------------------------------------------------------------------
    def check_can_stream(self) -> None:
        """Raise ``RuntimeError`` saying what to do if this codec cannot stream exactly (not causal)."""
        if not self.config.causal:
            raise RuntimeError(
                f"codec {self.config.name!r} is not causal: its encoder and decoder look at future "
                "samples, so it cannot stream exactly (with the same result as offline). Use a causal "
                "codec ('mimi', 'mimi-tiny', 'mimi-single-codebook-tiny', or a checkpoint trained with "
                "causal=True), or tokenize offline (long audio is processed in overlapping chunks)")

    def start_streaming(self, batch_size: int) -> None:
        self.check_can_stream()
        super().start_streaming(batch_size)

    def encode_step(self, chunk: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """Inside ``with codec.streaming(B):`` — ``[B, 1, k·hop] -> codes [B, Q, k]``."""
        if not self.is_streaming:
            raise RuntimeError("encode_step needs `with codec.streaming(batch_size):`")
        if chunk.shape[-1] % self.hop_length:
            raise ValueError(f"streaming chunks must be whole frames of {self.hop_length} samples, "
                             f"got {chunk.shape[-1]}")
        return self.encode(chunk, n_q)

    def decode_step(self, codes: torch.Tensor) -> torch.Tensor:
        """Inside ``with codec.streaming(B):`` — ``codes [B, Q, k] -> [B, 1, k·hop]``."""
        if not self.is_streaming:
            raise RuntimeError("decode_step needs `with codec.streaming(batch_size):`")
        return self.decode(codes)

    # ---- utilities --------------------------------------------------------------------------------
    def fold_weight_norm(self) -> "Codec":
        """Bake weight norm into plain weights (faster inference; cannot be undone)."""
        fold_weight_norm(self)
        return self

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (weights and codebook buffers), each atomically
        and readable like any new file (not safetensors' private ``0600``)."""
        from safetensors.torch import save_file

        from audiotok.data.outputs import write_atomic

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        write_atomic(directory / "model.safetensors",
                     lambda tmp: save_file(state, str(tmp), metadata={"format": "audiotok"}))
        write_atomic(directory / "config.json", self.config.save)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> "Codec":
        from safetensors.torch import load_file

        directory = Path(directory)
        config_path, weights_path = directory / "config.json", directory / "model.safetensors"
        for p in (config_path, weights_path):
            if not p.exists():
                raise FileNotFoundError(f"{p} is missing: a saved codec folder holds config.json and "
                                        "model.safetensors (written by Codec.save_pretrained)")
        codec = cls(CodecConfig.load(config_path))
        state = load_file(str(weights_path), device=str(map_location))
        if any(".parametrizations." in k for k in codec.state_dict()) and not any(
                ".parametrizations." in k for k in state):
            codec.fold_weight_norm()  # saved after folding
        load_state_strict(codec, state, source=str(weights_path))
        return codec.to(map_location)


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with an error that lists what does not match and says why."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        lines = [f"checkpoint {source} does not match the model's architecture:"]
        if missing:
            lines.append(f"  missing {len(missing)} keys, e.g. {missing[:3]}")
        if unexpected:
            lines.append(f"  unexpected {len(unexpected)} keys, e.g. {unexpected[:3]}")
        for k in wrong[:3]:
            lines.append(f"  {k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}")
        lines.append("  check that the config belongs to this checkpoint (family, size, token rate)")
        raise ValueError("\n".join(lines))
    model.load_state_dict(state, strict=True)
