"""The offline phone teacher: pocketsphinx forced alignment of a synthesised utterance, and its cache."""
import json
import shutil
import subprocess

import pytest
import torch

from audiotok.distill.cache import FeatureCache, build_cache
from audiotok.distill.phone_teacher import PHONES, PhoneTeacher, one_hot_phones

pytest.importorskip("pocketsphinx")
pytestmark = pytest.mark.skipif(shutil.which("flite") is None, reason="needs flite to synthesise speech")


def _synthesise(path, text):
    subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def teacher():
    return PhoneTeacher()


@pytest.fixture(scope="module")
def utterances(tmp_path_factory):
    """Two flite utterances with a manifest giving their transcripts (raw text, with punctuation)."""
    root = tmp_path_factory.mktemp("phones")
    rows = [("hello.wav", "Hello, world!"), ("fox.wav", "The quick brown fox jumps over 2 lazy dogs.")]
    with open(root / "manifest.jsonl", "w") as manifest:
        for name, text in rows:
            _synthesise(root / name, text)
            manifest.write(json.dumps({"path": name, "text": text, "speaker": "slt", "split": "train"}) + "\n")
    return root


def _phone_sequence(labels: torch.Tensor) -> list[str]:
    names = [PHONES[i] for i in labels.tolist()]
    return [p for i, p in enumerate(names) if i == 0 or p != names[i - 1]]


def test_hello_world_phones_at_50_hz(teacher, utterances):
    from audiotok.data import load_audio

    wav, _ = load_audio(utterances / "hello.wav", 16000)
    labels = teacher.labels(wav[None], ["Hello, world!"])
    assert labels.shape == (1, -(-wav.shape[-1] // 320))  # ceil(N / 320): 50 Hz, the codec convention
    sequence = _phone_sequence(labels[0])
    speech = [p for p in sequence if p != "SIL"]
    assert speech[0] == "HH" and speech[-4:] == ["W", "ER", "L", "D"]
    assert speech[1] in ("AH", "EH") and speech[2:4] == ["L", "OW"]  # "hello" has two pronunciations
    assert sequence[0] == "SIL" and sequence[-1] == "SIL"
    one_hot = teacher(wav[None], texts=["Hello, world!"])
    assert one_hot.shape == (1, len(PHONES), labels.shape[-1]) and torch.equal(one_hot.argmax(1), labels)
    assert torch.equal(one_hot_phones(labels).sum(1), torch.ones_like(labels, dtype=torch.float))


def test_teacher_needs_transcripts(teacher):
    with pytest.raises(ValueError, match="transcripts"):
        teacher(torch.zeros(1, 1, 16000))
    with pytest.raises(ValueError, match="no words"):
        teacher.labels(torch.zeros(1, 1, 16000), ["?!"])


def test_phone_cache_from_manifest(teacher, utterances, tmp_path):
    cache = build_cache(teacher, utterances / "manifest.jsonl", tmp_path / "cache", progress=False)
    assert cache.output == "labels" and cache.dim == len(PHONES) and cache.frame_rate == 50
    full = cache.full(utterances / "fox.wav")
    assert full.shape[0] == 1 and full.dtype == torch.int64
    speech = [p for p in _phone_sequence(full[0]) if p != "SIL"]
    # "two" was spelled out from the digit; "dogs" ends the sentence
    assert speech[:3] == ["DH", "AH", "K"] and "UW" in speech
    assert speech[-4] == "D" and speech[-3] in ("AO", "AA") and speech[-2:] == ["G", "Z"]  # dogs, dogs(2)
    crop = cache.get(utterances / "fox.wav", 24000, 24000, 24000)  # 1 s from 1 s at 24 kHz
    assert torch.equal(crop, full[:, 50:100])
    assert FeatureCache(tmp_path / "cache", teacher="phones").get(utterances / "hello.wav", 0, 3200, 16000).shape == (1, 10)


def test_folder_without_transcripts_is_refused(teacher, utterances, tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    shutil.copy(utterances / "hello.wav", audio / "hello.wav")
    with pytest.raises(ValueError, match="no transcript"):
        build_cache(teacher, audio, tmp_path / "cache", progress=False)


def test_alignment_does_not_depend_on_previous_utterances(utterances):
    from audiotok.data import load_audio

    hello, _ = load_audio(utterances / "hello.wav", 16000)
    fox, _ = load_audio(utterances / "fox.wav", 16000)
    fresh = PhoneTeacher().labels(hello[None], ["hello world"])
    other = PhoneTeacher()
    other.labels(fox[None], ["the quick brown fox jumps over two lazy dogs"])
    assert torch.equal(other.labels(hello[None], ["hello world"]), fresh)
