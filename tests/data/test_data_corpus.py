"""The built-in speech corpus: plan, splits, reproducibility, caching, CLI, intelligibility."""
import hashlib
import json
import re
import shutil
from collections import Counter

import pytest
import soundfile as sf

from audiotok.cli import main
from audiotok.data import build_dataset, normalize_text
from audiotok.data.corpus import (
    VOICES,
    build_corpus,
    check_engines,
    default_root,
    ensure_corpus,
    measure_intelligibility,
    plan_corpus,
    read_summary,
    voice_intelligibility,
)
from audiotok.data.corpus.sentences import generate_sentences, vocabulary

HAVE_ENGINES = all(shutil.which(tool) for tool in ("flite", "espeak-ng"))
needs_engines = pytest.mark.skipif(not HAVE_ENGINES, reason="apt-get install -y flite espeak-ng")


def digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.wav"))}


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    """One utterance per speaker (16 utterances): the smallest complete corpus."""
    if not HAVE_ENGINES:
        pytest.skip("apt-get install -y flite espeak-ng")
    return build_corpus(tmp_path_factory.mktemp("corpus") / "micro", size=1, seed=3, progress=False)


# ---- plan: speakers, sentences, splits (no synthesis) ---------------------------------------------

def test_speakers_are_distinct_and_enough():
    settings = [(v.engine, v.voice, v.pitch, v.rate) for v in VOICES]
    assert len(VOICES) >= 12 and len(set(settings)) == len(VOICES)
    assert len({v.speaker for v in VOICES}) == len(VOICES)
    assert {v.engine for v in VOICES} == {"flite", "espeak-ng"}
    assert {v.voice for v in VOICES if v.engine == "flite"} == {"awb", "rms", "slt", "kal16"}


@pytest.mark.parametrize("size", ["tiny", "small", "full"])
def test_plan_splits_are_disjoint_with_unseen_test_speakers(size):
    plan = plan_corpus(size, seed=0)
    assert len({u.id for u in plan}) == len(plan)  # each utterance once, hence in one split
    texts = [normalize_text(u.raw_text) for u in plan]
    assert len(set(texts)) == len(texts)  # no sentence shared between splits either
    by_split = {s: {u.voice.speaker for u in plan if u.split == s} for s in ("train", "dev", "test")}
    unseen = by_split["test"] - by_split["train"]
    assert unseen == {v.speaker for v in VOICES if v.held_out} and len(unseen) >= 2
    assert by_split["dev"] <= by_split["train"] and by_split["train"] <= by_split["test"]
    counts = Counter(u.split for u in plan)
    assert counts["train"] > counts["dev"] > 0 and counts["test"] > 0
    if size == "tiny":
        assert 60 <= len(plan) <= 100
    if size == "full":
        assert len(plan) >= 2000


def test_plan_is_reproducible_and_seed_dependent():
    assert plan_corpus("small", seed=0) == plan_corpus("small", seed=0)
    a, b = plan_corpus("small", seed=0), plan_corpus("small", seed=1)
    assert [u.raw_text for u in a] != [u.raw_text for u in b]


def test_sentences_varied_and_transcripts_normalised():
    sentences = generate_sentences(500, seed=0)
    assert len(set(sentences)) == 500
    assert any(re.search(r"\d", s) for s in sentences)  # numbers get spelled out in transcripts
    words = Counter(w for s in sentences for w in normalize_text(s).split())
    assert len(words) > 200
    for s in sentences:
        assert re.fullmatch(r"[a-z' ]+", normalize_text(s))
        assert set(normalize_text(s).split()) <= vocabulary()


def test_vocabulary_is_in_pocketsphinx_dictionary():
    pocketsphinx = pytest.importorskip("pocketsphinx")
    with open(pocketsphinx.Config()["dict"], encoding="utf-8") as f:
        dictionary = {line.split()[0] for line in f if line.strip()}
    assert sorted(vocabulary() - dictionary) == []


def test_missing_engine_gives_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda tool: None if tool == "flite" else "/usr/bin/x")
    with pytest.raises(RuntimeError, match=r"needs flite.*apt-get install -y flite espeak-ng"):
        check_engines()
    with pytest.raises(RuntimeError, match="flite"):
        build_corpus(tmp_path / "c", size=1, progress=False)
    assert not (tmp_path / "c").exists()


def test_default_root_uses_cache_env(monkeypatch, tmp_path):
    monkeypatch.setenv("AUDIOTOK_CACHE", str(tmp_path))
    assert default_root("small", 4) == tmp_path / "corpus" / "small-seed4"
    monkeypatch.delenv("AUDIOTOK_CACHE")
    assert default_root().parts[-4:] == (".cache", "audiotok", "corpus", "tiny-seed0")


# ---- a built corpus ------------------------------------------------------------------------------

def test_built_corpus_layout(micro):
    names = {p.name for p in micro.iterdir()}
    assert {"manifest.jsonl", "train.jsonl", "dev.jsonl", "test.jsonl", "speakers.json",
            "summary.json", "SUMMARY.md", "audio"} <= names
    rows = [json.loads(line) for line in (micro / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == len(VOICES)
    for row in rows:
        assert {"path", "text", "speaker", "duration", "split"} <= set(row)
        info = sf.info(str(micro / row["path"]))
        assert info.samplerate == 16000 and info.channels == 1
        assert row["duration"] == pytest.approx(info.duration, abs=1e-3) and row["duration"] > 0.5
        assert row["text"] == normalize_text(row["raw_text"])
    split_rows = sum(len((micro / f"{s}.jsonl").read_text().splitlines())
                     for s in ("train", "dev", "test"))
    assert split_rows == len(rows)
    summary = read_summary(micro)
    assert summary["utterances"] == len(rows) and len(summary["speakers"]) == len(VOICES)
    assert summary["hours"] == pytest.approx(sum(r["duration"] for r in rows) / 3600, rel=1e-3)
    assert json.loads((micro / "speakers.json").read_text())["flite-awb-high"]["pitch"] == 160


def test_same_seed_same_corpus(micro, tmp_path):
    again = build_corpus(tmp_path / "again", size=1, seed=3, progress=False)
    assert (again / "manifest.jsonl").read_text() == (micro / "manifest.jsonl").read_text()
    assert digest(again) == digest(micro)


def test_corpus_loads_as_dataset_resampled(micro):
    test = build_dataset(micro, split="test", sample_rate=24000, segment_length=24000)
    assert {i.speaker for i in test.items} == {v.speaker for v in VOICES if v.held_out}
    item = test[0]
    assert item["sample_rate"] == 24000 and item["audio"].shape == (1, 24000)
    assert item["text"] and item["speaker"]


def test_ensure_corpus_builds_once_then_uses_cache(monkeypatch, tmp_path, micro):
    monkeypatch.setenv("AUDIOTOK_CACHE", str(tmp_path))
    target = default_root("1", 3)
    target.parent.mkdir(parents=True)
    shutil.copytree(micro, target)
    monkeypatch.setattr("audiotok.data.corpus.build_corpus",
                        lambda *a, **k: pytest.fail("should not rebuild a cached corpus"))
    assert ensure_corpus(1, seed=3) == target


@needs_engines
def test_ensure_corpus_builds_missing(tmp_path):
    root = ensure_corpus(1, seed=0, root=tmp_path / "c")
    assert (root / "manifest.jsonl").is_file() and not list(tmp_path.glob(".c.partial-*"))


def test_cli_info_and_build_reuses(micro, capsys):
    assert main(["corpus", "info", str(micro)]) == 0
    assert "audiotok speech corpus" in capsys.readouterr().out
    assert main(["corpus", "build", str(micro), "--size", "tiny"]) == 1  # holds size 1, not tiny
    assert "pass --force" in capsys.readouterr().err


def test_intelligibility_table_in_summary(micro):
    pytest.importorskip("pocketsphinx")
    section = measure_intelligibility(micro, per_voice=1, progress=False, speakers=["flite-rms"])
    assert set(section["speakers"]) == {"flite-rms"} and section["engines"].keys() == {"flite"}
    assert voice_intelligibility(micro) == {"flite-rms": section["speakers"]["flite-rms"]["wer"]}
    assert section["speakers"]["flite-rms"]["wer"] < 0.5  # flite is intelligible to pocketsphinx
    assert "## Intelligibility" in (micro / "SUMMARY.md").read_text()


@needs_engines
def test_ensure_corpus_never_deletes_a_user_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        ensure_corpus(1, root=tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep me"
