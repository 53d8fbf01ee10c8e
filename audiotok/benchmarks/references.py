"""The reference implementations our converters are checked against (parity tests, speed benchmark); not
used at run time by loading or conversion.

Optional packages: ``speechtokenizer`` (PyPI 1.0.1), ``moshi`` (installed ``--no-deps``), ``encodec``
(0.1.1) and ``transformers`` (``MimiModel``, ``EncodecModel``). Each builder raises ImportError when its package is missing.
Also: a short synthetic speech signal and ``propagate_signal`` (a random decoder whose output depends on
its input). Codebook spreading for reference models is :mod:`audiotok.testing`.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import types
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


def encodec_package():
    """``encodec.model.EncodecModel``; encodec 0.1.1 imports torchaudio at the top of ``utils``, for
    helpers the model does not use: a placeholder module stands in during the import only."""
    if "encodec.model" not in sys.modules and "torchaudio" not in sys.modules:
        sys.modules["torchaudio"] = types.ModuleType("torchaudio")
        try:
            from encodec.model import EncodecModel
        finally:
            del sys.modules["torchaudio"]
    from encodec.model import EncodecModel

    return EncodecModel


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
