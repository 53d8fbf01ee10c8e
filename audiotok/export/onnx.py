"""Export a :class:`~audiotok.codecs.Codec` to ONNX: ``encoder.onnx``, ``decoder.onnx`` and ``onnx.json``.

* ``encoder.onnx``: ``audio [B, 1, T]`` float32 -> ``codes [B, Q, F]`` int64, ``F = ceil(T / hop)``,
  dynamic batch and length;
* ``decoder.onnx``: ``codes [B, Q, F]`` int64 -> ``audio [B, 1, F * hop]`` float32, dynamic batch and
  frames;
* ``onnx.json``: sample rate, hop, frame rate, ``n_q`` (the ``Q`` of both graphs), codebook size,
  causality, the codec's own config, and the input/output names.

``Q`` is fixed per export (the codec's active number of codebooks, or ``n_q=``): export again with
another ``n_q`` to get graphs for another bitrate.

The graphs are traced with the TorchScript exporter (``torch.onnx.export(dynamo=False)``) from a copy
of the codec (weight norm folded, eval mode) in which a few modules get export-friendly forwards;
the codec itself is never changed:

* padded convs compute their extra right padding as ``(k_eff - pad - T) mod stride``, which traces
  to graph arithmetic on the input length (the codec's ``math.ceil`` would freeze the traced length);
* a causal codec pads the audio to whole frames inside the graph, as ``Codec.encode`` does;
* Vocos' inverse STFT (complex ``irfft`` + ``F.fold``, which ONNX lacks or which the exporter does
  not handle) becomes an equivalent real computation: the windowed inverse real DFT is one
  ``ConvTranspose1d`` whose kernel holds the cosine/sine bases, which also overlap-adds the frames
  (stride ``hop``); the window envelope is the same transposed conv of the squared window.

* reflect padding longer than a (very short) input zero-extends it first, as ``conv.pad1d`` does, with
  the condition computed in the graph, so one-frame inputs work too.
* XCodec2's w2v-BERT filterbank (``unfold`` and a complex FFT in float64) gathers its frames with
  indices computed from the traced length and takes the power spectrum as two float64 matmuls with
  the windowed cosine and sine bases (equal to the torch features);
* ``nn.RMSNorm`` is written out (opset 17 has no RMSNormalization).

A codec that cannot decode (units without a vocoder) is exported as its encoder graph only.
"""
from __future__ import annotations

import copy
import json
import math
import os
import tempfile
import types
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from audiotok.codecs.codec import Codec
from audiotok.codecs.modules.conv import Conv1d, pad1d

ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
META_FILE = "onnx.json"
FORMAT = "audiotok-onnx"
FORMAT_VERSION = 1


# ---- export-friendly replacements (used only on the export copy) -------------------------------
def _pad1d(x: torch.Tensor, left: int, right, mode: str) -> torch.Tensor:
    """``conv.pad1d`` with its short-input branch (reflect padding longer than the input) as graph
    arithmetic instead of a Python ``if`` on the traced length: zero-extend by
    ``max(max(left, right) + 1 - T, 0)`` (0 for any input long enough), reflect, trim."""
    if mode != "reflect":
        return pad1d(x, left, right, mode)
    length = x.shape[-1]
    max_pad = torch.maximum(torch.as_tensor(left), torch.as_tensor(right))
    short = torch.clamp(max_pad + 1 - torch.as_tensor(length), min=0)
    x = F.pad(x, (0, short))
    return F.pad(x, (left, right), "reflect")[..., : length + left + right]


def _conv1d_stream(self: Conv1d, x: torch.Tensor, state) -> torch.Tensor:
    """``Conv1d._stream`` without in-place updates of its state (``fill_`` on a bool state and masked
    assignment do not trace): the same values, as new tensors."""
    if not self.causal:
        raise RuntimeError("a non-causal conv cannot stream exactly: it needs future samples")
    previous = state["previous"]
    if self.pad_mode == "replicate" and previous.shape[-1]:
        fresh = ~state["started"]
        previous = torch.where(fresh[:, None, None], x[:, :, :1].expand_as(previous), previous)
    state["started"] = torch.ones_like(state["started"])
    x = torch.cat([previous, x], dim=-1)
    if previous.shape[-1]:
        state["previous"] = x[..., x.shape[-1] - previous.shape[-1]:]
    return self.conv(x)


def _conv1d_forward(self: Conv1d, x: torch.Tensor) -> torch.Tensor:
    """``Conv1d.forward`` offline, with the extra right padding as traceable arithmetic."""
    if self._streaming_state is not None:
        return _conv1d_stream(self, x, self._streaming_state)
    # extra_padding_for_conv1d == (kernel_eff - padding_total - T) mod stride (always >= 0)
    extra = (self.kernel_eff - self.padding_total - x.shape[-1]) % self.stride
    if self.causal:
        x = _pad1d(x, self.padding_total, extra, self.pad_mode)
    else:
        right = self.padding_total // 2
        x = _pad1d(x, self.padding_total - right, right + extra, self.pad_mode)
    return self.conv(x)


def _irfft_basis(n_fft: int, window: torch.Tensor) -> torch.Tensor:
    """``[2 * (n_fft // 2 + 1), 1, n_fft]``: real then imaginary rows of the windowed inverse rDFT."""
    bins = n_fft // 2 + 1
    k = torch.arange(bins, dtype=torch.float64)[:, None]
    n = torch.arange(n_fft, dtype=torch.float64)[None, :]
    angle = 2 * math.pi * k * n / n_fft
    weight = torch.full((bins, 1), 2.0, dtype=torch.float64)
    weight[0] = 1.0
    if n_fft % 2 == 0:
        weight[-1] = 1.0
    real = weight * torch.cos(angle) / n_fft
    imag = -weight * torch.sin(angle) / n_fft
    imag[0] = 0.0  # irfft ignores the imaginary parts of DC and Nyquist
    if n_fft % 2 == 0:
        imag[-1] = 0.0
    basis = torch.cat([real, imag], dim=0) * window.double()[None, :]
    return basis[:, None, :].float()


class ExportISTFTHead(nn.Module):
    """:class:`~audiotok.codecs.modules.vocos.ISTFTHead` ("same" padding) without complex ops or fold."""

    def __init__(self, head: nn.Module):
        super().__init__()
        istft = head.istft
        if istft.padding != "same":
            raise NotImplementedError("ONNX export supports Vocos heads with 'same' padding only")
        self.out = head.out
        self.n_fft, self.hop = istft.n_fft, istft.hop_length
        self.max_magnitude = float(head.MAX_MAGNITUDE)
        self.pad = (self.n_fft - self.hop) // 2
        window = istft.window.detach().float().cpu()
        self.register_buffer("basis", _irfft_basis(self.n_fft, window))
        self.register_buffer("window_sq", window.square()[None, None, :])

    @property
    def hop_length(self) -> int:
        return self.hop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_magnitude, phase = self.out(x.transpose(1, 2)).transpose(1, 2).chunk(2, dim=1)
        magnitude = torch.exp(log_magnitude).clamp(max=self.max_magnitude)
        spec = torch.cat([magnitude * torch.cos(phase), magnitude * torch.sin(phase)], dim=1)
        signal = F.conv_transpose1d(spec, self.basis, stride=self.hop)  # [B, 1, (F-1)*hop + n_fft]
        ones = torch.ones_like(spec[:1, :1])  # [1, 1, F]
        envelope = F.conv_transpose1d(ones, self.window_sq, stride=self.hop)
        stop = signal.shape[-1] - self.pad
        return (signal[..., self.pad: stop] / envelope[..., self.pad: stop])[:, 0]


class ExportW2vBertFeatures(nn.Module):
    """:class:`~audiotok.codecs.modules.xcodec2.W2vBertFeatures` without ``unfold`` and complex FFTs:
    frames are gathered with indices computed from the traced length, and the 512-point power
    spectrum of each 400-sample frame is two float64 matmuls with its cosine and sine bases."""

    def __init__(self, features: nn.Module):
        super().__init__()
        self.stride = features.stride
        self.frame_length, self.frame_shift = features.frame_length, features.frame_shift
        n = torch.arange(self.frame_length, dtype=torch.float64)[:, None]
        k = torch.arange(features.n_fft // 2 + 1, dtype=torch.float64)[None, :]
        angle = 2 * math.pi * n * k / features.n_fft  # the frame is zero-padded to n_fft
        window = features._window.double()[:, None]
        self.register_buffer("cos_basis", torch.cos(angle) * window)  # window folded into the bases
        self.register_buffer("sin_basis", torch.sin(angle) * window)
        self.register_buffer("mel", features._mel.double())

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = wav.double() * 32768.0
        count = (x.shape[-1] - self.frame_length) // self.frame_shift + 1
        index = (torch.arange(count)[:, None] * self.frame_shift
                 + torch.arange(self.frame_length)[None, :])  # [N, 400]
        frames = x[:, index]  # [B, N, 400]
        frames = frames - frames.mean(-1, keepdim=True)
        frames = torch.cat([frames[..., :1] * (1 - 0.97), frames[..., 1:] - 0.97 * frames[..., :-1]], -1)
        power = (frames @ self.cos_basis).square() + (frames @ self.sin_basis).square()
        feats = torch.log((power @ self.mel).clamp_min(1.192092955078125e-07))
        mean = feats.mean(1, keepdim=True)
        centered = feats - mean
        variance = centered.square().sum(1, keepdim=True) / (feats.shape[1] - 1)  # unbiased, as .var
        feats = centered / torch.sqrt(variance + 1e-7)
        usable = feats.shape[1] - feats.shape[1] % self.stride
        feats = feats[:, :usable].reshape(feats.shape[0], usable // self.stride, -1)
        return feats.float()


def _rms_norm_forward(self: nn.RMSNorm, x: torch.Tensor) -> torch.Tensor:
    """``nn.RMSNorm`` written out (opset 17 has no RMSNormalization; the exporter refuses
    ``aten::rms_norm``)."""
    eps = self.eps if self.eps is not None else torch.finfo(x.dtype).eps
    dims = tuple(range(-len(self.normalized_shape), 0))
    y = x * torch.rsqrt(x.square().mean(dims, keepdim=True) + eps)
    return y * self.weight if self.weight is not None else y


def export_copy(codec: Codec) -> Codec:
    """A CPU float32 eval copy of ``codec`` with weight norm folded and export-friendly modules."""
    from audiotok.codecs.modules.vocos import ISTFTHead
    from audiotok.codecs.modules.xcodec2 import W2vBertFeatures

    codec = copy.deepcopy(codec).float().cpu().eval()
    codec.fold_weight_norm()
    if codec.is_streaming:
        codec.stop_streaming()
    for module in list(codec.modules()):
        if isinstance(module, Conv1d):
            module.forward = types.MethodType(_conv1d_forward, module)
        if isinstance(module, nn.RMSNorm):
            module.forward = types.MethodType(_rms_norm_forward, module)
        head = getattr(module, "head", None)
        if isinstance(head, ISTFTHead):
            module.head = ExportISTFTHead(head)
        features = getattr(module, "features", None)
        if isinstance(features, W2vBertFeatures):
            module.features = ExportW2vBertFeatures(features)
    for p in codec.parameters():
        p.requires_grad_(False)
    return codec


class EncoderGraph(nn.Module):
    """``audio [B, 1, T] -> codes [B, n_q, ceil(T / hop)]`` (what ``Codec.encode`` computes)."""

    def __init__(self, codec: Codec, n_q: int):
        super().__init__()
        self.codec, self.n_q = codec, n_q

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        codec = self.codec
        if codec.config.causal:  # whole frames, as Codec._check_audio pads offline
            audio = F.pad(audio, (0, (-audio.shape[-1]) % codec.hop_length))
        z = codec.encoder(audio)
        if codec.encoder_transformer is not None:
            z = codec.encoder_transformer(z)
        if codec.downsample is not None:
            z = codec.downsample(z)
        return codec.quantizer.encode(z, self.n_q)


class DecoderGraph(nn.Module):
    """``codes [B, n_q, F] -> audio [B, 1, F * hop]`` (what ``Codec.decode`` computes)."""

    def __init__(self, codec: Codec):
        super().__init__()
        self.codec = codec

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.codec.decode_latent(self.codec.quantizer.decode(codes))


def _resolve_codec(codec_or_name_or_path: Any, trust_checkpoint: bool = False) -> Codec:
    if isinstance(codec_or_name_or_path, Codec):
        return codec_or_name_or_path
    codec = getattr(codec_or_name_or_path, "codec", None)  # a Tokenizer
    if isinstance(codec, Codec):
        return codec
    from audiotok.tokenizers.loading import load_codec

    return load_codec(codec_or_name_or_path, trust_checkpoint=trust_checkpoint)


def _write_graph(module: nn.Module, args: tuple, path: Path, **export_options) -> None:
    """Trace ``module`` to ``path`` (TorchScript exporter) in a scratch folder beside it, then move it in.

    A graph whose weights pass protobuf's 2 GB limit comes out of torch as one file per tensor, named
    after graph nodes (a second large graph in the same folder could overwrite them); those are
    gathered into one ``<graph>.onnx.data`` file beside the graph, which ONNX Runtime reads.
    """
    data_path = path.with_name(path.name + ".data")
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".onnx-export-") as scratch:
        traced = Path(scratch) / path.name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings about shape checks that are constant here
            torch.onnx.export(module, args, str(traced), dynamo=False, do_constant_folding=True,
                              **export_options)
        data_path.unlink(missing_ok=True)  # (onnx appends to an existing data file)
        if any(other != traced for other in Path(scratch).iterdir()):
            import onnx

            graph = onnx.load(str(traced))  # with its external tensors
            onnx.save_model(graph, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                            location=data_path.name)
            from audiotok.data.outputs import give_new_file_mode

            give_new_file_mode(data_path)  # (onnx writes it 0600: others could not read the export)
        else:
            os.replace(traced, path)


def _export(module: nn.Module, args: tuple, path: Path, input_name: str, output_name: str,
            axes_in: dict[int, str], axes_out: dict[int, str], opset: int) -> None:
    _write_graph(module, args, path, opset_version=opset, input_names=[input_name],
                 output_names=[output_name], dynamic_axes={input_name: axes_in, output_name: axes_out})


def export_onnx(codec_or_name_or_path: Any, out_dir: str | Path, opset: int = 17,
                n_q: int | None = None, trust_checkpoint: bool = False,
                check: bool = True, streaming: bool = True) -> Path:
    """Write ``encoder.onnx``, ``decoder.onnx`` and ``onnx.json`` for a codec into ``out_dir``.

    ``codec_or_name_or_path``: a :class:`Codec`, a :class:`~audiotok.Tokenizer`, or anything
    ``audiotok.load`` accepts. ``n_q``: codebooks of both graphs (default: the codec's active number).
    ``check``: run ``onnx.checker`` on the written graphs. ``streaming``: for a causal codec, also
    write ``encoder_step.onnx`` / ``decoder_step.onnx`` with the streaming state as explicit inputs and
    outputs (described under ``"streaming"`` in ``onnx.json``). A codec that cannot decode (a units
    tokenizer without a vocoder) gets the encoder graph only: ``"decoder"`` is null in ``onnx.json`` and
    ``"decoder_unavailable"`` says why. Returns ``out_dir``.
    """
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install 'audiotok[onnx]' "
                          "(onnx and onnxruntime)") from None
    source = _resolve_codec(codec_or_name_or_path, trust_checkpoint)
    n_q = source.resolve_n_q(n_q)
    codec = export_copy(source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # A previous export's onnx.json goes first: an export that fails midway must not leave old metadata
    # describing a mix of old and new graphs (onnx.json is written last, when every graph is in place).
    (out / META_FILE).unlink(missing_ok=True)
    hop = codec.hop_length
    frames = 8  # example length: enough for every reflect pad at every stage
    with torch.no_grad():
        audio = torch.randn(2, 1, frames * hop - hop // 3, generator=torch.Generator().manual_seed(0)) * 0.1
        _export(EncoderGraph(codec, n_q), (audio,), out / ENCODER_FILE, "audio", "codes",
                {0: "batch", 2: "samples"}, {0: "batch", 2: "frames"}, opset)
        decoder_unavailable = source.decoder_unavailable
        if decoder_unavailable is None:
            codes = torch.randint(0, codec.codebook_size, (2, n_q, frames),
                                  generator=torch.Generator().manual_seed(0))
            _export(DecoderGraph(codec), (codes,), out / DECODER_FILE, "codes", "audio",
                    {0: "batch", 2: "frames"}, {0: "batch", 2: "samples"}, opset)
    stream_meta = export_streaming_onnx(codec, out, n_q, opset) if streaming and codec.is_causal else None
    if check:
        import onnx

        written = (ENCODER_FILE,) + ((DECODER_FILE,) if decoder_unavailable is None else ())
        for name in written + ((ENCODER_STEP_FILE, DECODER_STEP_FILE) if stream_meta else ()):
            onnx.checker.check_model(str(out / name))
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": codec.config.name,
        "family": codec.config.family,
        "sample_rate": codec.sample_rate,
        "hop_length": hop,
        "frame_rate": codec.frame_rate,
        "n_q": n_q,
        "max_codebooks": codec.max_codebooks,
        "codebook_size": codec.codebook_size,
        "causal": bool(codec.is_causal),
        "opset": opset,
        "torch_version": torch.__version__,
        "encoder": {"file": ENCODER_FILE, "input": "audio", "output": "codes",
                    "input_shape": ["batch", 1, "samples"], "output_shape": ["batch", n_q, "frames"],
                    "frames": "ceil(samples / hop_length)"},
        "decoder": None if decoder_unavailable else {
            "file": DECODER_FILE, "input": "codes", "output": "audio",
            "input_shape": ["batch", n_q, "frames"], "output_shape": ["batch", 1, "samples"],
            "samples": "frames * hop_length"},
        "decoder_unavailable": decoder_unavailable,
        "streaming": stream_meta,
        "codec_config": codec.config.to_dict(),
    }
    from audiotok.data.outputs import write_atomic

    text = json.dumps(meta, indent=2)
    write_atomic(out / META_FILE, lambda tmp: tmp.write_text(text))  # written last: marks a whole export
    return out


def is_onnx_folder(path: str | Path) -> bool:
    """True for a folder written by :func:`export_onnx`."""
    path = Path(path)
    meta = path / META_FILE
    if not meta.is_file():
        return False
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


# ---- streaming step graphs (causal codecs) ------------------------------------------------------
ENCODER_STEP_FILE = "encoder_step.onnx"
DECODER_STEP_FILE = "decoder_step.onnx"


def _state_slots(parts: list[nn.Module | None]) -> list[tuple[nn.Module, str]]:
    """(module, key) of every non-empty streaming state under ``parts`` (streaming must be on)."""
    slots, seen = [], set()
    for part in parts:
        if part is None:
            continue
        for module in part.modules():
            state = getattr(module, "_streaming_state", None)
            if not state or id(module) in seen:
                continue
            seen.add(id(module))
            slots.extend((module, key) for key, value in state.items() if value.numel())
    return slots


class StepGraph(nn.Module):
    """One streaming call with every state as an explicit input and output (batch first)."""

    def __init__(self, step, slots: list[tuple[nn.Module, str]]):
        super().__init__()
        self.step, self.slots = step, slots

    def forward(self, x: torch.Tensor, *states: torch.Tensor):
        for (module, key), value in zip(self.slots, states):
            module._streaming_state[key] = value.clone()  # the step may update states in place
        y = self.step(x)
        return (y, *[module._streaming_state[key] for module, key in self.slots])


def _export_step(codec: Codec, step, parts, example: torch.Tensor, path: Path, input_name: str,
                 output_name: str, opset: int) -> list[dict[str, Any]]:
    slots = _state_slots(parts)
    names = [f"state_{i}" for i in range(len(slots))]
    states = tuple(module._streaming_state[key].clone() for module, key in slots)
    axes = {input_name: {0: "batch", 2: "steps"}, output_name: {0: "batch", 2: "out_steps"}}
    for name in names:
        axes[f"in_{name}"] = {0: "batch"}
        axes[f"out_{name}"] = {0: "batch"}
    _write_graph(StepGraph(step, slots), (example, *states), path, opset_version=opset,
                 input_names=[input_name] + [f"in_{n}" for n in names],
                 output_names=[output_name] + [f"out_{n}" for n in names], dynamic_axes=axes)
    dtypes = {torch.float32: "float32", torch.int64: "int64", torch.bool: "bool"}
    return [{"input": f"in_{n}", "output": f"out_{n}", "shape": list(s.shape[1:]),
             "dtype": dtypes[s.dtype], "module": _module_name(codec, module) + "." + key}
            for n, s, (module, key) in zip(names, states, slots)]


def _module_name(codec: Codec, target: nn.Module) -> str:
    for name, module in codec.named_modules():
        if module is target:
            return name or "codec"
    return "?"


def export_streaming_onnx(codec: Codec, out: Path, n_q: int, opset: int = 17) -> dict[str, Any]:
    """``encoder_step.onnx`` / ``decoder_step.onnx`` of a causal export copy; their description.

    Each step takes ``[B, 1, k * hop]`` audio (or ``[B, n_q, k]`` codes) plus the states and returns
    the codes (audio) plus the new states; zeros are fresh states (see ``StreamingModule``).
    """
    hop, steps = codec.hop_length, 2
    encoder = EncoderGraph(codec, n_q)
    decoder = DecoderGraph(codec)
    codec.start_streaming(2)
    try:
        with torch.no_grad():
            audio = 0.1 * torch.randn(2, 1, steps * hop, generator=torch.Generator().manual_seed(0))
            enc_states = _export_step(codec, encoder.forward,
                                      [codec.encoder, codec.encoder_transformer, codec.downsample],
                                      audio, out / ENCODER_STEP_FILE, "audio", "codes", opset)
            codes = torch.randint(0, codec.codebook_size, (2, n_q, steps),
                                  generator=torch.Generator().manual_seed(0))
            dec_states = _export_step(codec, decoder.forward,
                                      [codec.upsample, codec.decoder_transformer, codec.decoder],
                                      codes, out / DECODER_STEP_FILE, "codes", "audio", opset)
    finally:
        codec.stop_streaming()
    return {"encoder": {"file": ENCODER_STEP_FILE, "input": "audio", "output": "codes",
                        "states": enc_states, "steps": "audio length: a whole number of hops"},
            "decoder": {"file": DECODER_STEP_FILE, "input": "codes", "output": "audio",
                        "states": dec_states},
            "frames_per_call": "any (each call takes whole frames)"}
