"""The reference implementations our converters are checked against (parity tests, speed benchmark).

Optional packages: ``speechtokenizer`` (PyPI 1.0.1), ``moshi`` (installed ``--no-deps``) and
``transformers`` (``MimiModel``). Each builder raises ImportError when its package is missing.
Also: a short synthetic speech signal, and ``spread_codebooks``, which gives random codebooks real
spread around actual latents (fresh codebooks send every frame to one code, which proves nothing).
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import types
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

SPEECHTOKENIZER_CONFIG = dict(  # the released fnlp/SpeechTokenizer config (model fields)
    n_filters=64, strides=[8, 5, 4, 2], dimension=1024, semantic_dimension=768, bidirectional=True,
    dilation_base=2, residual_kernel_size=3, n_residual_layers=1, lstm_layers=2, activation="ELU",
    sample_rate=16000, codebook_size=1024, n_q=8)
SENTENCE = ("The quick brown fox jumps over the lazy dog, while seven bright birds sing in the old "
            "garden near the river.")


def speechtokenizer_class():
    """``speechtokenizer.model.SpeechTokenizer`` without running the package ``__init__``.

    ``import speechtokenizer`` (1.0.x) also imports its trainer, which needs torchaudio, tensorboard,
    matplotlib, accelerate, ...; the model itself needs none of them. So the package is registered
    as a bare namespace (its real folder, no ``__init__`` code) before importing ``.model``.
    """
    if "speechtokenizer.model" not in sys.modules:
        spec = importlib.util.find_spec("speechtokenizer")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("the reference package speechtokenizer is not installed: "
                              "pip install --no-deps speechtokenizer==1.0.1")
        if "speechtokenizer" not in sys.modules:
            package = types.ModuleType("speechtokenizer")
            package.__path__ = list(spec.submodule_search_locations)
            sys.modules["speechtokenizer"] = package
    from speechtokenizer.model import SpeechTokenizer

    return SpeechTokenizer


def moshi_mimi(num_codebooks: int = 32):
    """A randomly initialised moshi ``MimiModel`` (eval mode) with ``num_codebooks`` active."""
    from moshi.models import loaders

    model = loaders.get_mimi(None, device="cpu")
    model.set_num_codebooks(num_codebooks)
    return model.eval()


def synthetic_speech(seconds: float, sample_rate: int) -> torch.Tensor:
    """``[1, 1, seconds·sr]`` of espeak-ng speech (looped if short), peak 0.5, resampled with soxr."""
    import soundfile as sf
    import soxr

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-w", str(path), SENTENCE], check=True, capture_output=True)
        audio, sr = sf.read(str(path), dtype="float32")
    audio = soxr.resample(audio, sr, sample_rate)
    wav = torch.from_numpy(audio).float()
    need = int(seconds * sample_rate)
    wav = wav.repeat(need // wav.numel() + 1)[:need]
    return (0.5 * wav / wav.abs().max().clamp_min(1e-6))[None, None]


def spread_codebooks(frames: torch.Tensor, codebooks: Sequence[tuple[int, Callable[[torch.Tensor], None]]],
                     noise: float = 1.0, seed: int = 0) -> None:
    """Fill residual codebooks with frames of the actual latents plus noise.

    ``frames``: ``[N, D]`` latents the first level sees. ``codebooks``: per level, its size ``K`` and a
    function that installs centroids ``[K, D]``. Level ``i`` draws from the residual left by levels
    ``< i`` (computed here with squared-Euclidean nearest neighbours). With ``noise`` 1 (in units of
    the residual's per-dimension std) the residual shrinks by about 10 % per level, as in a trained
    RVQ; much less noise makes deep levels quantize float rounding, which no two implementations agree on.
    """
    generator = torch.Generator().manual_seed(seed)
    residual = frames.float()
    for size, install in codebooks:
        index = torch.randint(0, residual.shape[0], (size,), generator=generator)
        scale = residual.std(dim=0, keepdim=True)
        centers = residual[index] + noise * scale * torch.randn(size, residual.shape[1], generator=generator)
        install(centers)
        nearest = torch.cdist(residual, centers).argmin(dim=-1)
        residual = residual - centers[nearest]


@torch.no_grad()
def spread_encodec_codebooks(latents: torch.Tensor, codebooks: Sequence[torch.nn.Module], **options) -> None:
    """:func:`spread_codebooks` for EnCodec-layout codebooks (buffers ``embed``, ``embed_avg``,
    ``cluster_size``, ``inited``: EnCodec, SpeechTokenizer, transformers' ``EncodecModel``), spread
    around ``latents [B, D, F]`` (what the first level quantizes), marked initialised."""
    def installer(codebook):
        def install(centers):
            codebook.embed.copy_(centers)
            codebook.embed_avg.copy_(centers)
            codebook.cluster_size.fill_(1.0)
            codebook.inited.fill_(1.0)
        return install

    frames = latents.transpose(1, 2).reshape(-1, latents.shape[1])
    spread_codebooks(frames, [(cb.embed.shape[0], installer(cb)) for cb in codebooks], **options)


@torch.no_grad()
def propagate_signal(module: torch.nn.Module, gain: float = 1.2, bias_scale: float = 0.1) -> None:
    """Rescale a randomly initialised conv stack so its output depends on its input.

    With PyTorch's default init each conv shrinks the signal and adds a bias, so after a dozen
    layers a random SEANet decoder outputs nearly the same waveform for any codes, and comparing
    decoded audio would prove nothing. Every conv's weight rows (weight-norm ``g``, or the plain weight
    per output channel) get norm ``gain``; biases are scaled by ``bias_scale``.
    """
    for conv in module.modules():
        if not isinstance(conv, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
            continue
        if hasattr(conv, "weight_g"):  # old-style weight norm: weight = g · v / ‖v‖
            conv.weight_g.fill_(gain)
        else:
            dims = tuple(range(1, conv.weight.dim()))
            conv.weight.mul_(gain / conv.weight.norm(dim=dims, keepdim=True).clamp_min(1e-12))
        if conv.bias is not None:
            conv.bias.mul_(bias_scale)
