"""audiotok.load / Tokenizer: every input form, exact batching, chunking, save/load, errors, flattening."""
from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

import audiotok
from audiotok.codecs.families import build_codec
from audiotok.data import AudioError
from audiotok.testing import spread_codebooks
from audiotok.tokenizers import (
    CheckpointError,
    Tokenizer,
    flatten_codes,
    llasa_offset,
    load_training_checkpoint,
    unflatten_tokens,
)

NAMES = ["mimi-tiny", "speechtokenizer-tiny", "wavtokenizer-tiny"]


@pytest.fixture(scope="module", params=NAMES)
def tok(request) -> Tokenizer:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return Tokenizer(spread_codebooks(build_codec(request.param)), source=request.param)


def noise(n: int, seed: int = 0, channels: int | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (n,) if channels is None else (channels, n)
    return torch.randn(*shape, generator=g) * 0.1


def test_metadata(tok):
    assert tok.frame_rate == tok.sample_rate / tok.hop_length
    assert tok.bitrate == pytest.approx(tok.frame_rate * tok.num_codebooks * np.log2(tok.codebook_size))
    assert tok.num_codebooks >= 1 and tok.codebook_size > 1


def test_every_input_form_gives_the_same_codes(tok, tmp_path):
    sr = tok.sample_rate
    wav = noise(sr // 3)
    ref = tok.tokenize(wav)
    assert ref.codes.shape == (1, tok.num_codebooks, tok.codec.num_frames(sr // 3))
    assert ref.codes.dtype == torch.int64 and ref.lengths.tolist() == [ref.codes.shape[-1]]
    assert ref.codes.unique().numel() > 2  # codes are spread, so equality means something
    forms = [wav.numpy(), wav[None], wav[None, None], torch.stack([wav, wav]), [wav], [wav.numpy()]]
    for form in forms:
        out = tok.tokenize(form, sample_rate=sr)
        for item in out.unbatch():
            assert torch.equal(item, ref.codes[0]), type(form)
    path = tmp_path / "a.wav"
    sf.write(path, wav.numpy(), sr, subtype="FLOAT")
    assert torch.equal(tok.tokenize(path).codes, ref.codes)
    assert torch.equal(tok.tokenize(str(path)).codes, ref.codes)
    assert torch.equal(tok.tokenize([path, str(path)]).unbatch()[1], ref.codes[0])


def test_stereo_is_downmixed_and_other_rates_resampled(tok, tmp_path):
    stereo = noise(tok.sample_rate // 4, channels=2)
    mono = stereo.mean(0)
    assert torch.equal(tok.tokenize(stereo).codes, tok.tokenize(mono).codes)
    low = noise(8000 // 4)
    out = tok.tokenize(low, sample_rate=8000)
    assert out.num_samples.item() == tok.sample_rate // 4
    sf.write(tmp_path / "low.wav", low.numpy(), 8000, subtype="FLOAT")
    assert torch.equal(tok.tokenize(tmp_path / "low.wav").codes, out.codes)


def test_mixed_length_batch_equals_per_item(tok):
    lengths = [tok.hop_length * 7 + 13, tok.sample_rate // 3, tok.hop_length * 7 + 13, 4 * tok.hop_length]
    items = [noise(n, seed=i) for i, n in enumerate(lengths)]
    batch = tok.tokenize(items)
    assert batch.lengths.tolist() == [tok.codec.num_frames(n) for n in lengths]
    for item, codes in zip(items, batch.unbatch()):
        assert torch.equal(codes, tok.tokenize(item).codes[0])
    assert (batch.codes[2, :, batch.lengths[2]:] == 0).all()  # padding is zeros, not codes


def test_detokenize_trims_to_true_lengths(tok):
    lengths = [tok.sample_rate // 5 + 7, tok.sample_rate // 3]
    tokens = tok.tokenize([noise(n, seed=n) for n in lengths])
    out = tok.detokenize(tokens)
    assert out.lengths.tolist() == lengths and out.sample_rate == tok.sample_rate
    assert [a.shape for a in out.unbatch()] == [(1, n) for n in lengths]
    # plain codes: whole frames; lengths in frames
    plain = tok.detokenize(tokens.codes, lengths=tokens.lengths)
    assert plain.lengths.tolist() == [f * tok.hop_length for f in tokens.lengths.tolist()]
    single = tok.detokenize(tokens.unbatch()[0])
    assert torch.allclose(single.audio[0, :, : lengths[0]], out.audio[0, :, : lengths[0]], atol=1e-5)


def test_n_q_and_semantic_only(tok):
    wav = noise(tok.sample_rate // 4)
    full = tok.tokenize(wav).codes
    first = tok.tokenize(wav, semantic_only=True).codes
    assert first.shape[1] == 1 and torch.equal(first[:, 0], full[:, 0])
    if tok.codec.max_codebooks > 1:
        assert tok.tokenize(wav, n_q=2).codes.shape[1] == 2
    with pytest.raises(ValueError, match="n_q must be between"):
        tok.tokenize(wav, n_q=tok.codec.max_codebooks + 1)


def test_long_audio_chunked(tok):
    wav = noise(int(tok.sample_rate * 1.3), seed=3)
    chunked = Tokenizer(tok.codec, chunk_seconds=0.4, context_seconds=0.3)
    whole = Tokenizer(tok.codec, chunk_seconds=None)
    a, b = chunked.tokenize(wav).codes, whole.tokenize(wav).codes
    assert a.shape == b.shape
    if tok.is_causal:  # streaming through whole frames is exact
        assert torch.equal(a, b)
        decoded_a = chunked.detokenize(b).audio
        decoded_b = whole.detokenize(b).audio
        assert torch.allclose(decoded_a, decoded_b, atol=1e-5)
    else:  # overlapping windows: approximate, documented as such
        assert (a == b).float().mean() > 0.9


def test_save_load_round_trip(tok, tmp_path):
    folder = tok.save_pretrained(tmp_path / "codec")
    again = audiotok.load(folder)
    wav = noise(tok.sample_rate // 3, seed=5)
    assert again.sample_rate == tok.sample_rate and again.num_codebooks == tok.num_codebooks
    assert torch.equal(again.tokenize(wav).codes, tok.tokenize(wav).codes)


def test_registered_name_warns_random_weights():
    with pytest.warns(UserWarning, match="random"):
        t = audiotok.load("mimi-tiny")
    assert t.sample_rate == 24000 and t.frame_rate == 12.5


def test_mismatched_folder_is_a_clear_error(tmp_path):
    build_codec("mimi-tiny").save_pretrained(tmp_path / "m")
    build_codec("speechtokenizer-tiny").config.save(tmp_path / "m" / "config.json")  # wrong config
    with pytest.raises(ValueError, match="does not match the model's architecture"):
        audiotok.load(tmp_path / "m")


def test_training_checkpoint(tmp_path):
    codec = spread_codebooks(build_codec("mimi-tiny"))
    state = {f"codec.{k}": v for k, v in codec.state_dict().items()}
    state["discriminator.w"] = torch.zeros(1)
    torch.save({"state_dict": state, "audiotok_codec_config": codec.config.to_dict(),
                "hyper_parameters": {}}, tmp_path / "last.ckpt")
    wav = noise(24000 // 3)
    loaded = audiotok.load(tmp_path / "last.ckpt")
    assert torch.equal(loaded.tokenize(wav).codes, Tokenizer(codec).tokenize(wav).codes)
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not an audiotok training checkpoint"):
        load_training_checkpoint(tmp_path / "other.ckpt")


def test_unknown_inputs_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a registered codec"):
        audiotok.load("no-such-codec")
    (tmp_path / "junk.bin").write_bytes(b"abc")
    with pytest.raises(CheckpointError, match="not a codec this library recognises"):
        audiotok.load(tmp_path / "junk.bin")


def test_hub_id_offline_says_where_to_put_files(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match=r"config.json, model.safetensors.*audiotok.load\('./mimi'\)"):
        audiotok.load("kyutai/mimi")


@pytest.mark.parametrize("bad, problem", [
    (torch.zeros(0), "zero-length"),
    (torch.tensor([0.1, float("nan"), 0.2] * 100), "NaN"),
    (torch.zeros(2, 2, 2, 100), "expected audio shaped"),
    (torch.zeros(24000, 2), "looks like"),
    (np.zeros(100, dtype=np.int16), "integer PCM"),
])
def test_bad_audio_errors(bad, problem):
    tok = Tokenizer(build_codec("mimi-tiny"))
    with pytest.raises(AudioError, match=problem):
        tok.tokenize(bad)


def test_bad_file_error_names_the_file(tmp_path):
    (tmp_path / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(AudioError, match="broken.wav"):
        Tokenizer(build_codec("mimi-tiny")).tokenize(tmp_path / "broken.wav")


def test_flatten_round_trip_and_layout():
    codes = torch.tensor([[1, 2, 3], [4, 5, 6]])
    offset = llasa_offset(128256)
    assert offset == 128264
    frame = flatten_codes(codes, 8, offset=offset, bos=1, eos=2)
    assert frame.tolist() == [1, offset + 1, offset + 12, offset + 2, offset + 13, offset + 3, offset + 14, 2]
    by_level = flatten_codes(codes.numpy(), 8, order="codebook")
    assert isinstance(by_level, np.ndarray) and by_level.tolist() == [1, 2, 3, 12, 13, 14]
    for order in ("frame", "codebook"):
        tokens = flatten_codes(codes, 8, offset=offset, order=order, bos=1, eos=2)
        assert torch.equal(unflatten_tokens(tokens, 2, 8, offset=offset, order=order, bos=1, eos=2), codes)
    with pytest.raises(ValueError, match="not a level-1 speech token"):
        unflatten_tokens([offset + 1, offset + 2], 2, 8, offset=offset)
    with pytest.raises(ValueError, match="not a multiple of n_q"):
        unflatten_tokens([1, 2, 3], 2, 8)


def test_import_stays_light():
    code = ("import sys, torch, audiotok; t = audiotok.Tokenizer(__import__('audiotok.codecs.families', "
            "fromlist=['x']).build_codec('mimi-tiny')); t.tokenize(torch.zeros(4000) + 0.01); "
            "print('lightning' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
