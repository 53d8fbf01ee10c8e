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
