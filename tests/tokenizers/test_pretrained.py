"""Shipped trained tokenizers: each folder loads by name, matches its config, and its decoded audio depends
on its codes: on an unseen voice, decoding the real codes is much closer to the input than decoding the same
codes shuffled in time, and the energy envelope follows the input's (a collapsed tokenizer, like the first
release's, fails both)."""
import json

import pytest
import torch

import audiotok
from audiotok.data.audio_io import load_audio
from audiotok.tokenizers.pretrained import (
    PRETRAINED_ROOT,
    available_pretrained,
    pretrained_path,
)
from audiotok.training.losses import MultiScaleMelLoss

SHIPPED = available_pretrained()
OURS = ("mimi-tiny-trained", "rvq-vocos-small-trained", "speechtokenizer-tiny-trained", "wavtokenizer-tiny-trained")  # trained in this repository's configs/


@pytest.fixture(scope="module")
def utterance_path():
    """A flite utterance of the tiny built-in corpus' test split."""
    from audiotok.data.corpus import ensure_corpus

    try:
        corpus = ensure_corpus("tiny")
    except Exception as err:  # noqa: BLE001 - no speech engine: nothing to test on
        pytest.skip(f"built-in corpus unavailable: {err}")
    return corpus / json.loads((corpus / "test.jsonl").read_text().splitlines()[0])["path"]


def test_registry_lists_the_shipped_folders():
    assert set(OURS) <= set(SHIPPED)
    for name in SHIPPED:
        folder = pretrained_path(name)
        assert folder == PRETRAINED_ROOT / name
        assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in folder.iterdir()}
        # the package stays small: the demo default (5 M parameters) is the largest, ~21 MiB
        assert sum(p.stat().st_size for p in folder.iterdir()) < 24 * 2**20


@pytest.mark.parametrize("name", SHIPPED)
def test_readme_states_how_it_was_trained(name):
    readme = " ".join((pretrained_path(name) / "README.md").read_text().lower().split())
    for fact in ("corpus", "steps", "min", "mel distance"):  # data, steps, time, final validation score
        assert fact in readme, f"{name}/README.md does not state its {fact!r}"


@pytest.mark.parametrize("name", SHIPPED)
def test_loads_by_name_with_metadata_from_its_config(name):
    config = json.loads((pretrained_path(name) / "config.json").read_text())
    tok = audiotok.load(name)
    assert tok.sample_rate == config["sample_rate"]
    assert tok.num_codebooks == config["quantizer"]["n_q"]
    assert tok.codebook_size == config["quantizer"]["codebook_size"]
    assert tok.frame_rate == pytest.approx(tok.codec.frame_rate)


@pytest.mark.parametrize("name", SHIPPED)
def test_decoded_audio_follows_the_input_and_depends_on_the_codes(name, utterance_path):
    torch.set_num_threads(1)
    tok = audiotok.load(name)
    wav, _ = load_audio(utterance_path, sample_rate=tok.sample_rate)
    wav = wav[None, :, : 3 * tok.sample_rate]  # [1, 1, T]: up to three seconds
    length = wav.shape[-1]
    codes = tok.tokenize(wav)
    assert codes.codes.dtype == torch.int64 and codes.codes.shape[:2] == (1, tok.num_codebooks)
    out = tok.detokenize(codes.codes, codes.lengths)
    assert out.sample_rate == tok.sample_rate and out.audio.shape[:2] == (1, 1)
    real = out.audio[..., :length]
    order = torch.randperm(codes.codes.shape[-1], generator=torch.Generator().manual_seed(0))
    shuffled = tok.detokenize(codes.codes[..., order], codes.lengths).audio[..., :length]
    mel = MultiScaleMelLoss.wavtokenizer(tok.sample_rate)
    with torch.no_grad():
        real_distance, shuffled_distance = mel(real, wav)[0], mel(shuffled, wav)[0]
    assert real_distance < 0.75 * shuffled_distance, (float(real_distance), float(shuffled_distance))
    dependence = float((real - shuffled).abs().mean() / real.abs().mean())
    assert dependence > 0.5, dependence

    def envelope(audio):
        a = audio.reshape(-1)
        return a[: len(a) // 320 * 320].reshape(-1, 320).pow(2).mean(1).sqrt()

    r = torch.corrcoef(torch.stack([envelope(wav), envelope(real)]))[0, 1]
    assert r > 0.8, float(r)
    per_level = [codes.codes[0, q].unique().numel() for q in range(tok.num_codebooks)]
    assert min(per_level) > 3, f"{name}: distinct codes per level {per_level}"


def test_unknown_name_lists_the_trained_ones():
    with pytest.raises(FileNotFoundError, match="shipped trained tokenizer") as err:
        audiotok.load("no-such-tokenizer")
    for name in SHIPPED:
        assert name in str(err.value)
    with pytest.raises(ValueError, match="available: "):
        pretrained_path("no-such-tokenizer")
