"""Long files are read, resampled and tokenized chunk by chunk: codes equal those of the whole
waveform, and no more than a chunk (plus context and one block) is ever held.

Peak memory against duration at full scale (6 vs 60 min): ``audiotok bench memory``.
"""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

import audiotok
from audiotok.data import audio_io
from audiotok.data.audio_io import AudioError, iter_audio_blocks, load_audio
from audiotok.tokenizers import tokenizer as tokenizer_module

FILE_RATE = 16000


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def stereo_file(tmp_path_factory):
    """12.3 s of stereo speech-like sound at 16 kHz: a gliding buzz with a syllable envelope, plus
    noise (the codecs resample it)."""
    path = tmp_path_factory.mktemp("long") / "long.wav"
    t = np.arange(int(12.3 * FILE_RATE)) / FILE_RATE
    pitch = 2 * np.pi * np.cumsum(140 + 60 * np.sin(2 * np.pi * 0.7 * t)) / FILE_RATE
    buzz = sum(np.sin(k * pitch) / k for k in range(1, 12)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    noise = np.random.default_rng(0).standard_normal((t.size, 2))
    audio = (0.2 * buzz[:, None] + 0.02 * noise).astype(np.float32)
    sf.write(path, audio, FILE_RATE, subtype="FLOAT")
    return path


@pytest.mark.parametrize("rate", [None, 24000])
def test_blocks_equal_the_whole_file(stereo_file, rate):
    whole = load_audio(stereo_file, rate)[0]
    blocks = list(iter_audio_blocks(stereo_file, 3001, rate))
    assert max(b.shape[-1] for b in blocks) < whole.shape[-1] / 10
    assert torch.equal(torch.cat(blocks, dim=-1), whole)


def test_bad_block_is_an_audio_error(tmp_path):
    path = tmp_path / "nan.wav"
    audio = np.zeros(8000, np.float32)
    audio[6000] = np.nan
    sf.write(path, audio, 8000, subtype="FLOAT")
    blocks = iter_audio_blocks(path, 4000)
    next(blocks)
    with pytest.raises(AudioError, match="NaN"):
        next(blocks)


@pytest.mark.parametrize("name", ["mimi-tiny-trained", "speechtokenizer-tiny-trained"])
def test_long_file_is_read_in_chunks_with_the_same_codes(stereo_file, monkeypatch, name):
    tok = audiotok.load(name, chunk_seconds=2.0, n_q=2)
    expected = tok.tokenize(load_audio(stereo_file, tok.sample_rate)[0], tok.sample_rate)

    held = []
    samples = tokenizer_module._ForwardReader.samples

    def spy(self, a, b):
        out = samples(self, a, b)
        held.append(self.buffer.shape[-1])
        return out

    def refuse(*args, **kwargs):
        raise AssertionError("a long file must not be loaded whole")

    monkeypatch.setattr(tokenizer_module._ForwardReader, "samples", spy)
    monkeypatch.setattr(tokenizer_module, "load_audio", refuse)
    monkeypatch.setattr(audio_io, "_read", refuse)
    got = tok.tokenize(stereo_file)
    assert expected.codes.unique().numel() > 12  # real codes, not one repeated index
    assert torch.equal(got.codes, expected.codes)
    assert torch.equal(got.num_samples, expected.num_samples)
    window = (tok.chunk_seconds + 2 * tok.context_seconds) * tok.sample_rate
    assert len(held) > 3 and max(held) <= 2 * window < expected.num_samples.item()


def test_cli_tokenizes_a_long_file_without_loading_it(stereo_file, tmp_path, monkeypatch):
    from audiotok.cli import main

    tok = audiotok.load("mimi-tiny-trained", chunk_seconds=2.0)
    expected = tok.tokenize(load_audio(stereo_file, tok.sample_rate)[0], tok.sample_rate).unbatch()[0]

    def refuse(*args, **kwargs):
        raise AssertionError("a long file must not be loaded whole")

    monkeypatch.setattr(audio_io, "_read", refuse)
    out = tmp_path / "codes"
    assert main(["tokenize", str(stereo_file), "-o", str(out), "-m", "mimi-tiny-trained",
                 "--chunk-seconds", "2"]) == 0
    (written,) = out.glob("*.npy")
    assert np.array_equal(np.load(written), expected.numpy())


@pytest.mark.parametrize("name", ["mimi-tiny-trained", "speechtokenizer-tiny-trained"])  # causal, not
def test_iter_detokenize_pieces_join_to_detokenize(name):
    tok = audiotok.load(name, chunk_seconds=0.5, context_seconds=0.3)
    wav = torch.randn(1, int(2.3 * tok.sample_rate), generator=torch.Generator().manual_seed(0)) * 0.1
    tokens = tok.tokenize(wav)
    expected = tok.detokenize(tokens).unbatch()[0]
    pieces = list(tok.iter_detokenize(tokens))
    chunk = tok._chunk_frames() * tok.hop_length
    assert len(pieces) > 3 and max(p.shape[-1] for p in pieces) <= chunk  # one chunk at a time
    assert expected.shape == (1, wav.shape[-1]) and torch.equal(torch.cat(pieces, dim=-1), expected)
    codes = tokens.unbatch()[0]  # plain codes: whole frames, or trimmed to num_samples
    assert torch.equal(torch.cat(list(tok.iter_detokenize(codes)), dim=-1), tok.detokenize(codes).audio[0])
    trimmed = list(tok.iter_detokenize(codes, num_samples=chunk + 10))
    assert len(trimmed) == 2 and torch.equal(torch.cat(trimmed, dim=-1), expected[:, : chunk + 10])
    short = list(audiotok.load(name).iter_detokenize(codes))  # shorter than a chunk: one piece
    assert len(short) == 1 and short[0].shape == (1, codes.shape[-1] * tok.hop_length)
    with pytest.raises(ValueError, match="one item"):
        next(tok.iter_detokenize(torch.zeros(2, *codes.shape, dtype=torch.long)))
