"""`OnnxCodec`: a folder written by :func:`~audiotok.export.onnx.export_onnx`, run by onnxruntime.

It offers the part of :class:`~audiotok.codecs.Codec` that :class:`~audiotok.Tokenizer` uses
(``encode``, ``decode``, the rates and sizes, ``resolve_n_q``/``set_num_codebooks``, ``num_frames``),
so ``Tokenizer(OnnxCodec(folder))`` tokenizes and detokenizes without running torch modules
(``audiotok.load(..., backend="onnxruntime")`` builds exactly that). Inputs and outputs stay torch
tensors, so callers need not change.

Differences from a torch codec: it runs on the CPU in float32 only; ``decode`` takes the ``n_q``
codebooks the graphs were exported with (``encode`` may return fewer: residual codes are prefixes);
``streaming(B)`` runs the step graphs of a causal codec (``encoder_step.onnx``/``decoder_step.onnx``,
state as explicit inputs and outputs), so long audio is chunked exactly as with torch; a folder
without step graphs cannot stream, and the Tokenizer built by ``load`` then encodes items whole.
"""
from __future__ import annotations

import json
import math
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from audiotok.codecs.codec import check_code_values
from audiotok.export.onnx import DECODER_FILE, ENCODER_FILE, META_FILE, is_onnx_folder


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("the onnxruntime backend needs onnxruntime: pip install 'audiotok[onnx]'") from None
    return onnxruntime


class OnnxCodec:
    """Encode/decode with the ONNX graphs in ``directory`` (see the module doc)."""

    def __init__(self, directory: str | Path, num_threads: int | None = None,
                 providers: list[str] | None = None):
        directory = Path(directory)
        if not is_onnx_folder(directory):
            raise FileNotFoundError(f"{directory} is not an exported ONNX codec folder ({META_FILE}, "
                                    f"{ENCODER_FILE}, {DECODER_FILE}); write one with "
                                    "`audiotok export onnx NAME -o DIR`")
        ort = _import_onnxruntime()
        self.directory = directory
        self.meta = json.loads((directory / META_FILE).read_text())
        options = ort.SessionOptions()
        # Errors only: ONNX Runtime's own shape inference assigns the step graphs' outputs the traced
        # example's batch, and then warns on every call with another batch ("VerifyOutputSizes"), though
        # the values are right (the parity tests run batches of 1 and 2).
        options.log_severity_level = 3
        if num_threads:
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1
        providers = providers or ["CPUExecutionProvider"]
        self._encoder = ort.InferenceSession(str(directory / self.meta["encoder"]["file"]), options,
                                             providers=providers)
        decoder = self.meta.get("decoder")  # None: an encoder-only export (units without a vocoder)
        self._decoder = None if decoder is None else ort.InferenceSession(
            str(directory / decoder["file"]), options, providers=providers)
        stream = self.meta.get("streaming") or None
        self._steps = None
        if stream:  # causal codecs: step graphs with the state as inputs/outputs
            self._steps = {side: (ort.InferenceSession(str(directory / stream[side]["file"]), options,
                                                       providers=providers), stream[side])
                           for side in ("encoder", "decoder")}
        self._states: dict[str, dict[str, np.ndarray]] | None = None
        self._exported_n_q = int(self.meta["n_q"])
        self._n_q = self._exported_n_q
        self.config = self._config()

    @property
    def decoder_unavailable(self) -> str | None:
        """Why this export cannot decode (it has no decoder graph), or None when it can."""
        if self.meta.get("decoder") is None:
            return self.meta.get("decoder_unavailable") or "the export has no decoder graph"
        return None

    def _config(self):
        """The codec's :class:`CodecConfig` (for ``.name`` etc.), or a stand-in with name/family."""
        data = self.meta.get("codec_config")
        if isinstance(data, dict):
            try:
                from audiotok.codecs.codec import CodecConfig

                return CodecConfig.from_dict(data)
            except (ValueError, TypeError):
                pass
        return SimpleNamespace(name=self.meta.get("name", "onnx"), family=self.meta.get("family", "custom"),
                               causal=self.is_causal, sample_rate=self.sample_rate)

    # ---- metadata (as Codec) ----------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return int(self.meta["sample_rate"])

    @property
    def hop_length(self) -> int:
        return int(self.meta["hop_length"])

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def files(self) -> list[Path]:
        """The export's files (graphs, weight data, ``onnx.json`` last), to copy or ship elsewhere."""
        if not is_onnx_folder(self.directory):
            raise FileNotFoundError(f"the ONNX export behind this codec ({self.directory}) is gone (a "
                                    "registered name's random weights are exported to a temporary folder); "
                                    "write one with `audiotok export onnx NAME -o DIR` and load DIR")
        found = sorted(p for p in self.directory.iterdir() if p.is_file() and p.name != META_FILE)
        return found + [self.directory / META_FILE]

    def save_pretrained(self, directory: str | Path) -> Path:
        """Copy the export to ``directory``, each file atomically and ``onnx.json`` last;
        ``audiotok.load(directory)`` runs it again with ONNX Runtime."""
        import shutil

        from audiotok.data.outputs import write_atomic

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        if out.resolve() == self.directory.resolve():
            return out
        (out / META_FILE).unlink(missing_ok=True)  # no stale metadata over a half-copied folder
        for path in self.files():
            write_atomic(out / path.name, lambda tmp, path=path: shutil.copyfile(path, tmp))
        return out

    def check_decodes(self, n_q: int) -> None:
        """Raise ``ValueError`` unless the decoder graphs take ``n_q`` codebooks (exactly the exported
        number: unlike torch, a graph cannot drop levels)."""
        if n_q != self._exported_n_q:
            raise ValueError(f"these ONNX graphs decode exactly {self._exported_n_q} codebooks, got {n_q}; "
                             f"export with n_q={n_q} to decode those")

    @property
    def max_codebooks(self) -> int:
        """Codebooks in the exported graphs (``encode`` may ask for fewer)."""
        return self._exported_n_q

    @property
    def num_codebooks(self) -> int:
        return self._n_q

    @property
    def codebook_size(self) -> int:
        return int(self.meta["codebook_size"])

    @property
    def bitrate(self) -> float:
        return self.frame_rate * self.num_codebooks * math.log2(self.codebook_size)

    @property
    def is_causal(self) -> bool:
        return bool(self.meta["causal"])

    @property
    def is_streaming(self) -> bool:
        return self._states is not None

    @property
    def can_stream(self) -> bool:
        """True when the folder holds streaming step graphs (causal codecs)."""
        return self._steps is not None

    def num_frames(self, num_samples: int) -> int:
        return math.ceil(num_samples / self.hop_length)

    def resolve_n_q(self, n_q: int | None) -> int:
        n_q = self._n_q if n_q is None else int(n_q)
        if not 1 <= n_q <= self._exported_n_q:
            raise ValueError(f"n_q must be between 1 and {self._exported_n_q} for these ONNX graphs "
                             f"(exported with n_q={self._exported_n_q}), got {n_q}; export again with "
                             "a larger n_q for more codebooks")
        return n_q

    def set_num_codebooks(self, n_q: int) -> None:
        self._n_q = self.resolve_n_q(n_q)

    # ---- what Tokenizer calls on a Codec --------------------------------------------------------
    def fold_weight_norm(self) -> "OnnxCodec":
        return self  # folded at export

    def eval(self) -> "OnnxCodec":
        return self

    def to(self, device=None, dtype=None, **_) -> "OnnxCodec":
        if device is not None and torch.device(device).type != "cpu":
            raise ValueError(f"the onnxruntime backend runs on the CPU; got device={device!r}")
        if dtype is not None and dtype != torch.float32:
            raise ValueError(f"the onnxruntime backend runs in float32; got dtype={dtype}")
        return self

    def encode(self, wav: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """``[B, 1, T] -> codes [B, Q, ceil(T / hop)]`` int64."""
        n_q = self.resolve_n_q(n_q)
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"codecs take mono audio shaped [B, 1, T], got {tuple(wav.shape)}")
        audio = np.ascontiguousarray(wav.detach().cpu().float().numpy())
        if self.is_streaming:
            if audio.shape[-1] % self.hop_length:
                raise ValueError(f"streaming chunks must be whole frames of {self.hop_length} samples, "
                                 f"got {audio.shape[-1]}")
            codes = self._step("encoder", audio)
        else:
            codes = self._encoder.run(None, {self.meta["encoder"]["input"]: audio})[0]
        return torch.from_numpy(codes[:, :n_q].astype(np.int64, copy=False))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``codes [B, Q, F]`` (``Q`` = the exported ``n_q``) ``-> [B, 1, F * hop]`` float32."""
        if codes.dim() != 3:
            raise ValueError(f"codes must be [B, Q, F], got {tuple(codes.shape)}")
        if self._decoder is None:
            raise RuntimeError(f"{self.directory} holds no decoder graph: {self.decoder_unavailable}. "
                               "Tokenizing works; to detokenize, export a tokenizer that can decode (for "
                               "units: one built with a vocoder)")
        self.check_decodes(codes.shape[1])
        check_code_values(codes, self.codebook_size)
        array = np.ascontiguousarray(codes.detach().cpu().long().numpy())
        if self.is_streaming:
            audio = self._step("decoder", array)
        else:
            audio = self._decoder.run(None, {self.meta["decoder"]["input"]: array})[0]
        return torch.from_numpy(audio)

    # ---- streaming (step graphs of causal codecs) -----------------------------------------------
    def _step(self, side: str, x: np.ndarray) -> np.ndarray:
        session, spec = self._steps[side]
        states = self._states[side]
        outputs = session.run(None, {spec["input"]: x, **states})
        self._states[side] = {s["input"]: value for s, value in zip(spec["states"], outputs[1:])}
        return outputs[0]

    def check_can_stream(self) -> None:
        """Raise ``RuntimeError`` saying what to do if this folder holds no streaming graphs."""
        if self._steps is None:
            raise RuntimeError(f"{self.directory} has no streaming graphs (the codec is not causal, or it "
                               "was exported with streaming=False); encode whole items instead")

    def start_streaming(self, batch_size: int) -> None:
        self.check_can_stream()
        self._states = {side: {s["input"]: np.zeros([batch_size, *s["shape"]], dtype=s["dtype"])
                               for s in spec["states"]}
                        for side, (_, spec) in self._steps.items()}

    def stop_streaming(self) -> None:
        self._states = None

    def reset_streaming(self, mask: torch.Tensor | None = None) -> None:
        """Restart the streams selected by ``mask [B]`` (all when ``None``); others keep their state.
        As in torch, a zero state means "just started"."""
        if self._states is None:
            raise RuntimeError("reset_streaming() needs an active stream: call it inside "
                               "`with codec.streaming(B):`")
        rows = slice(None) if mask is None else np.asarray(torch.as_tensor(mask, dtype=torch.bool).cpu())
        for states in self._states.values():
            for value in states.values():
                value[rows] = 0

    @contextmanager
    def streaming(self, batch_size: int = 1):
        """``with codec.streaming(B):`` — ``encode``/``decode`` of whole-frame chunks carry state, as
        with a torch codec (fresh encoder and decoder states on entry)."""
        self.start_streaming(batch_size)
        try:
            yield self
        finally:
            self.stop_streaming()

    def encode_step(self, chunk: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        if not self.is_streaming:
            raise RuntimeError("encode_step needs `with codec.streaming(batch_size):`")
        return self.encode(chunk, n_q)

    def decode_step(self, codes: torch.Tensor) -> torch.Tensor:
        if not self.is_streaming:
            raise RuntimeError("decode_step needs `with codec.streaming(batch_size):`")
        return self.decode(codes)

    def __repr__(self) -> str:
        return (f"OnnxCodec({str(self.directory)!r}: {self.meta.get('name')}, {self.sample_rate} Hz, "
                f"hop {self.hop_length}, {self._n_q}/{self._exported_n_q} × {self.codebook_size})")


def onnx_cache_dir() -> Path:
    """Where ``load(..., backend="onnxruntime")`` keeps exported graphs (``$AUDIOTOK_ONNX_CACHE``,
    else ``~/.cache/audiotok/onnx``)."""
    import os

    root = os.environ.get("AUDIOTOK_ONNX_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "audiotok" / "onnx"


def _weights_key(codec, n_q: int, opset: int) -> str:
    """A content hash of the codec's config and weights (so a cached export is never stale)."""
    import hashlib

    digest = hashlib.sha1()
    digest.update(json.dumps(codec.config.to_dict(), sort_keys=True).encode())
    digest.update(f"n_q={n_q};opset={opset}".encode())
    for key, value in sorted(codec.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def onnx_codec_for(name_or_path, n_q: int | None = None, semantic_only: bool = False,
                   trust_checkpoint: bool = False, opset: int = 17) -> OnnxCodec:
    """An :class:`OnnxCodec` for an exported folder, or for anything ``audiotok.load`` accepts
    (exported once into :func:`onnx_cache_dir`, keyed by a hash of the weights; a registered name's
    random weights are exported to a temporary folder instead, as they never repeat)."""
    import os
    import shutil
    import tempfile

    from audiotok.export.onnx import export_onnx
    from audiotok.tokenizers.loading import load_codec

    path = Path(str(name_or_path)).expanduser()
    if is_onnx_folder(path):
        codec = OnnxCodec(path)
        if semantic_only or n_q is not None:
            codec.set_num_codebooks(1 if semantic_only else n_q)
        return codec
    torch_codec = load_codec(name_or_path, trust_checkpoint=trust_checkpoint)
    n_q = 1 if semantic_only else torch_codec.resolve_n_q(n_q)
    from audiotok.codecs.families import REGISTRY
    from audiotok.tokenizers.pretrained import is_pretrained

    text = str(name_or_path)
    if text in REGISTRY and not is_pretrained(text) and not path.exists():  # random weights
        with tempfile.TemporaryDirectory(prefix="audiotok-onnx-") as tmp:
            return OnnxCodec(export_onnx(torch_codec, tmp, opset=opset, n_q=n_q))  # sessions hold the graphs
    target = onnx_cache_dir() / f"{torch_codec.config.name}-{_weights_key(torch_codec, n_q, opset)}"
    if not is_onnx_folder(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            export_onnx(torch_codec, tmp, opset=opset, n_q=n_q)
            try:
                os.replace(tmp, target)
            except OSError:  # another process finished the same export first
                if not is_onnx_folder(target):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return OnnxCodec(target)


def load_onnx_tokenizer(name_or_path, device="cpu", dtype=torch.float32, n_q: int | None = None,
                        semantic_only: bool = False, trust_checkpoint: bool = False, **options):
    """``audiotok.load(..., backend="onnxruntime")``: a :class:`Tokenizer` around an :class:`OnnxCodec`.

    Long items of a causal codec are chunked through the streaming step graphs (exact, as with torch);
    a folder without them encodes each item whole (``chunk_seconds=None``).
    """
    from audiotok.tokenizers.tokenizer import Tokenizer

    options.pop("fold_weight_norm", None)
    codec = onnx_codec_for(name_or_path, n_q=n_q, semantic_only=semantic_only,
                           trust_checkpoint=trust_checkpoint)
    if codec.is_causal and not codec.can_stream:
        if options.get("chunk_seconds") is not None:
            raise ValueError("these ONNX graphs cannot chunk a causal codec exactly (no streaming "
                             "graphs); leave chunk_seconds unset, export with streaming, or use torch")
        options["chunk_seconds"] = None
    return Tokenizer(codec, device=device, dtype=dtype, n_q=codec.num_codebooks, source=str(name_or_path),
                     **options)
