"""Shipped trained tokenizers: each folder loads by name, matches its config, round-trips speech from the
built-in corpus better than its untrained twin, and uses a spread of codes."""
import json

import pytest
import torch

import audiotok
from audiotok.codecs.codec import Codec
from audiotok.data.audio_io import load_audio
from audiotok.tokenizers.pretrained import (
    PRETRAINED_ROOT,
    available_pretrained,
    pretrained_path,
)
from audiotok.training.losses import MultiScaleMelLoss

SHIPPED = available_pretrained()
OURS = ("mimi-tiny-trained", "wavtokenizer-tiny-trained")  # trained in this repository's configs/


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
        assert sum(p.stat().st_size for p in folder.iterdir()) < 5 * 2**20


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
def test_round_trip_beats_untrained_twin_and_codes_spread(name, utterance_path):
    torch.set_num_threads(1)
    tok = audiotok.load(name)
    wav, _ = load_audio(utterance_path, sample_rate=tok.sample_rate)
    wav = wav[None, :, : 3 * tok.sample_rate]  # [1, 1, T]: three seconds
    codes = tok.tokenize(wav)
    assert codes.codes.dtype == torch.int64 and codes.codes.shape[:2] == (1, tok.num_codebooks)
    out = tok.detokenize(codes.codes, codes.lengths)
    assert out.sample_rate == tok.sample_rate and out.audio.shape[:2] == (1, 1)
    assert out.audio.shape[-1] >= wav.shape[-1]
    # Codebooks have spread: three seconds of speech use more than a handful of distinct codes (summed
    # over levels; a fully collapsed codec uses one entry per level, at most 8 here).
    per_level = [codes.codes[0, q].unique().numel() for q in range(tok.num_codebooks)]
    assert sum(per_level) > 12, f"{name}: distinct codes per level {per_level}"
    # Training did something: the mel distance is well below that of the same architecture untrained.
    untrained = Codec(tok.codec.config).eval()
    mel = MultiScaleMelLoss.wavtokenizer(tok.sample_rate)
    with torch.no_grad():
        random_audio = untrained.decode(untrained.encode(wav))
        trained_distance = mel(out.audio[..., : wav.shape[-1]], wav)[0]
        random_distance = mel(random_audio[..., : wav.shape[-1]], wav)[0]
    assert trained_distance < 0.8 * random_distance


def test_unknown_name_lists_the_trained_ones():
    with pytest.raises(FileNotFoundError, match="shipped trained tokenizer") as err:
        audiotok.load("no-such-tokenizer")
    for name in SHIPPED:
        assert name in str(err.value)
    with pytest.raises(ValueError, match="available: "):
        pretrained_path("no-such-tokenizer")
