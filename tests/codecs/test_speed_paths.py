"""The inference fast paths equal the plain PyTorch path they replace.

At inference on CPU, wide or short convs run as one matmul over unfolded windows, transposed convs
as a matmul plus overlap-add, activations and residual sums overwrite fresh tensors, and codebooks
keep their squared norms. Each is checked against ``torch.nn.functional`` / the unoptimised path
(``torch_kernels()``, autograd on): identical codes, audio within 1e-4 (1e-5 for single layers).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from audiotok.benchmarks.streaming import randomize_for_streaming
from audiotok.codecs import build_codec
from audiotok.codecs.modules.conv import MATMUL_MIN_WINDOW, conv1d, conv_transpose1d, torch_kernels
from audiotok.codecs.quantizers.codebook import EuclideanCodebook, nearest_code


pytestmark = pytest.mark.usefixtures("one_thread")


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> None:
    assert a.shape == b.shape
    scale = b.abs().max().clamp_min(1.0)
    assert (a - b).abs().max() <= tol * scale, float((a - b).abs().max())


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("c_in, c_out, kernel, stride, dilation, length", [
    (256, 64, 12, 6, 1, 102),     # wide window: matmul at any length
    (512, 128, 7, 1, 1, 300),
    (64, 32, 3, 1, 3, 40),        # narrow window, dilated: oneDNN
    (128, 64, 8, 1, 1, 600),      # window of exactly MATMUL_MIN_WINDOW: matmul
    (1024, 16, 3, 1, 1, 4),
])
@pytest.mark.parametrize("bias", [True, False])
def test_conv1d_matches_torch(batch, c_in, c_out, kernel, stride, dilation, length, bias):
    x = torch.randn(batch, c_in, length)
    w = torch.randn(c_out, c_in, kernel) / (c_in * kernel) ** 0.5
    b = torch.randn(c_out) if bias else None
    expected = F.conv1d(x, w, b, stride, dilation=dilation)
    with torch.no_grad():
        _close(conv1d(x, w, b, stride, dilation), expected)
    if c_in * kernel >= MATMUL_MIN_WINDOW:  # autograd on: exactly torch's call
        assert torch.equal(conv1d(x, w, b, stride, dilation), expected)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("c_in, c_out, kernel, stride, groups, frames", [
    (128, 64, 16, 8, 1, 2),       # Mimi's first decoder layer on one frame
    (64, 32, 8, 4, 1, 50),
    (32, 32, 4, 2, 32, 7),        # depthwise (Mimi's frame-rate up-sampler)
    (16, 8, 5, 2, 1, 9),          # kernel not a multiple of the stride
    (16, 8, 3, 4, 1, 6),          # kernel shorter than the stride
    (16, 8, 4, 1, 1, 6),
])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_transpose1d_matches_torch(batch, c_in, c_out, kernel, stride, groups, frames, bias):
    x = torch.randn(batch, c_in, frames)
    w = torch.randn(c_in, c_out // groups, kernel) / (c_in * kernel) ** 0.5
    b = torch.randn(c_out) if bias else None
    expected = F.conv_transpose1d(x, w, b, stride, groups=groups)
    with torch.no_grad():
        _close(conv_transpose1d(x, w, b, stride, groups), expected)


def test_codebook_norm_cache_follows_the_codebook():
    book = EuclideanCodebook(16, 64, kmeans_init=False).eval()
    x = torch.randn(200, 16)
    assert torch.equal(book.quantize(x), nearest_code(x, book.embed))
    with torch.no_grad():
        book.embed.mul_(-1.5).add_(0.3)  # in place: the cached norms must not survive this
    assert torch.equal(book.quantize(x), nearest_code(x, book.embed))
    book.load_state_dict({**book.state_dict(), "embed": torch.randn(64, 16)})
    assert torch.equal(book.quantize(x), nearest_code(x, book.embed))


def _unoptimised(codec, fn, *args):
    """``fn(*args)`` through plain torch kernels, autograd on (no in-place shortcuts)."""
    with torch_kernels(), torch.enable_grad():
        return fn(*args).detach()


@pytest.mark.parametrize("name", ["mimi-tiny", "speechtokenizer-tiny", "wavtokenizer-tiny"])
def test_codec_fast_path_equals_unoptimised(name):
    torch.manual_seed(0)
    codec = build_codec(name).fold_weight_norm()
    codec = randomize_for_streaming(codec) if codec.is_causal else codec.eval()
    wav = 0.3 * torch.randn(2, 1, 2 * codec.sample_rate + 123, generator=torch.Generator().manual_seed(4))
    n_q = codec.max_codebooks
    codes = _unoptimised(codec, codec.encode, wav, n_q)
    audio = _unoptimised(codec, codec.decode, codes)
    with torch.inference_mode():
        fast_codes = codec.encode(wav, n_q)
        fast_audio = codec.decode(codes)
    assert torch.equal(fast_codes, codes)
    _close(fast_audio, audio, 1e-4)
    assert audio.abs().max() > 1e-3  # decoded audio is not trivially zero
