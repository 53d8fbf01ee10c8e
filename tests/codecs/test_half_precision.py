"""`audiotok.load(..., dtype=torch.float16 | torch.bfloat16)` runs every shipped tokenizer end to end.

Codebook distances and the iSTFT run in float32 inside a half-precision model (CPU FFTs take no half
types; a bfloat16 codebook against float32 frames used to raise). float16 keeps almost every code of the
float32 model; bfloat16 (8 bits of mantissa) is far coarser and only has to run and stay in range.
"""
import pytest
import torch

import audiotok
from audiotok.tokenizers.pretrained import available_pretrained


@pytest.mark.parametrize("name", available_pretrained())
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_tokenizer_runs_and_float16_matches_float32(name, dtype):
    reference = audiotok.load(name)
    x = torch.randn(1, reference.sample_rate, generator=torch.Generator().manual_seed(0)) * 0.1
    expected = reference.tokenize(x, sample_rate=reference.sample_rate)
    half = audiotok.load(name, dtype=dtype)
    tokens = half.tokenize(x, sample_rate=half.sample_rate)
    assert tokens.codes.shape == expected.codes.shape
    audio = half.detokenize(tokens).audio
    assert torch.isfinite(audio).all() and audio.abs().max() < 10 * x.abs().max()
    if dtype == torch.float16:
        assert (tokens.codes == expected.codes).float().mean() > 0.9


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_streams_with_float32_chunks(dtype):
    """A half-precision causal codec streams: its states take the model's precision (they used to be
    float32 and the first conv raised), float32 chunks are cast on the way in, audio comes back float32,
    and the streamed codes are the half-precision model's offline codes."""
    from audiotok.tokenizers.streaming import Stream

    half = audiotok.load("mimi-tiny-trained", dtype=dtype)
    hop = half.hop_length
    x = torch.randn(1, 1, 12 * hop, generator=torch.Generator().manual_seed(0)) * 0.1
    offline = half.codec.encode(x.to(dtype))
    with Stream(half, 1) as stream:
        streamed = torch.cat([stream.encode_step(x[..., i * hop:(i + 1) * hop]) for i in range(12)], dim=-1)
        audio = stream.decode_step(streamed)
    assert (streamed == offline).float().mean() > 0.9
    assert audio.dtype == torch.float32 and audio.shape == x.shape and torch.isfinite(audio).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_fsq_codec_decodes(dtype):
    """FSQ decodes its integer digits in the model's precision (float32 digits into a half projection
    used to raise)."""
    half = audiotok.load("xcodec2-tiny", dtype=dtype)
    x = torch.randn(1, half.sample_rate, generator=torch.Generator().manual_seed(0)) * 0.1
    audio = half.detokenize(half.tokenize(x, sample_rate=half.sample_rate)).audio
    assert audio.dtype == torch.float32 and torch.isfinite(audio).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_long_items_are_chunked_through_the_stream(dtype):
    """A long item of a causal codec is encoded chunk by chunk through the streaming states (which
    used to be float32 and raised in half precision) and gives the whole-item codes."""
    x = torch.randn(1, 24000 * 3, generator=torch.Generator().manual_seed(1)) * 0.1
    chunked = audiotok.load("mimi-tiny-trained", dtype=dtype, chunk_seconds=1.0).tokenize(x, sample_rate=24000)
    whole = audiotok.load("mimi-tiny-trained", dtype=dtype, chunk_seconds=None).tokenize(x, sample_rate=24000)
    assert (chunked.codes == whole.codes).float().mean() > 0.9
