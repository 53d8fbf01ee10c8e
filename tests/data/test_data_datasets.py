"""Datasets: folder, manifest, LibriSpeech tree, Hugging Face; crops, collate, bad-file skipping."""
import json
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from audiotok.data import (
    AudioError,
    AudioFolderDataset,
    AudioSkipWarning,
    HFAudioDataset,
    LibriSpeechDataset,
    ManifestDataset,
    build_dataset,
    collate_items,
    read_manifest,
    write_manifest,
)


def write_tone(path, seconds=0.25, sr=16000, channels=1, freq=300.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sr * seconds)) / sr
    data = np.stack([0.3 * np.sin(2 * np.pi * freq * t)] * channels, axis=1)
    sf.write(path, data, sr)
    return path


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "folder"
    write_tone(root / "alice" / "a1.wav", 0.25, 16000)
    (root / "alice" / "a1.txt").write_text("Hello world.\n")
    write_tone(root / "alice" / "a2.flac", 0.5, 44100, channels=2)
    write_tone(root / "bob" / "deep" / "b1.ogg", 0.3, 22050)
    write_tone(root / "top.wav", 0.1, 8000)
    (root / "notes.md").write_text("not audio")
    return root


@pytest.fixture
def librispeech(tmp_path):
    root = tmp_path / "LibriSpeech" / "dev-clean"
    chapter = root / "84" / "121123"
    for utt in range(3):
        write_tone(chapter / f"84-121123-{utt:04d}.flac", 0.2 + 0.1 * utt)
    (chapter / "84-121123.trans.txt").write_text(
        "84-121123-0000 GO DO YOU HEAR\n84-121123-0001 BUT IN LESS THAN FIVE MINUTES\n"
        "84-121123-0002 AT THIS MOMENT\n"
    )
    return root


def test_folder_dataset(folder):
    ds = AudioFolderDataset(folder, sample_rate=16000)
    assert len(ds) == 4
    by_id = {ds[i]["id"]: ds[i] for i in range(len(ds))}
    assert set(by_id) == {"alice/a1", "alice/a2", "bob/deep/b1", "top"}
    assert by_id["alice/a1"]["text"] == "Hello world." and by_id["alice/a2"]["text"] is None
    assert by_id["bob/deep/b1"]["speaker"] == "bob/deep" and by_id["top"]["speaker"] is None
    stereo = by_id["alice/a2"]
    assert stereo["audio"].shape == (1, 8000) and stereo["sample_rate"] == 16000
    assert stereo["length"] == 8000 and stereo["path"].endswith("a2.flac")
    assert ds.speakers() == ["alice", "bob/deep"]


def test_folder_keeps_channels_when_not_mono(folder):
    ds = AudioFolderDataset(folder / "alice", mono=False)
    item = next(ds[i] for i in range(len(ds)) if ds[i]["id"] == "a2")
    assert item["audio"].shape == (2, 22050) and item["sample_rate"] == 44100


def test_manifest_dataset_and_split(tmp_path, folder):
    manifest = tmp_path / "sub" / "m.jsonl"
    rows = [
        {"path": str((folder / "alice" / "a1.wav").resolve()), "text": "hi", "speaker": "alice",
         "duration": 0.25, "split": "train"},
        {"path": "../folder/top.wav", "text": "top", "speaker": "x", "duration": 0.1, "split": "test"},
    ]
    manifest.parent.mkdir()
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    ds = ManifestDataset(manifest, sample_rate=24000)
    assert len(ds) == 2
    item = ds[1]
    assert item["text"] == "top" and item["speaker"] == "x" and item["sample_rate"] == 24000
    assert item["audio"].shape == (1, 2400)  # 0.1 s at 8 kHz resampled to 24 kHz
    train = ManifestDataset(manifest, split="train")
    assert len(train) == 1 and train[0]["speaker"] == "alice"
    with pytest.raises(ValueError, match="no rows with split='dev'"):
        ManifestDataset(manifest, split="dev")


def test_manifest_round_trip_and_bad_row(tmp_path, folder):
    items = AudioFolderDataset(folder).items
    path = write_manifest(tmp_path / "m.jsonl", items)
    first = json.loads(path.read_text().splitlines()[0])
    assert set(first) >= {"path", "text", "speaker", "duration", "split"}
    assert first["path"].startswith("folder/")  # relative to the manifest's folder
    again = read_manifest(path)
    assert [i.path.resolve() for i in again] == [i.path.resolve() for i in items]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"path": "a.wav"}\n{"text": "no path"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: bad manifest row"):
        read_manifest(bad)


def test_librispeech_dataset(librispeech):
    ds = LibriSpeechDataset(librispeech.parent)
    assert len(ds) == 3
    item = ds[1]
    assert item["id"] == "84-121123-0001" and item["speaker"] == "84"
    assert item["text"] == "BUT IN LESS THAN FIVE MINUTES"
    assert item["audio"].shape == (1, 4800)


def test_hf_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    paths = [str(write_tone(tmp_path / f"h{i}.wav", 0.1 * (i + 1), 8000)) for i in range(2)]
    with_audio = datasets.Dataset.from_dict(
        {"audio": paths, "sentence": ["one", "two"], "speaker_id": [7, 8]}
    ).cast_column("audio", datasets.Audio())
    ds = build_dataset(with_audio, sample_rate=16000)
    assert isinstance(ds, HFAudioDataset) and len(ds) == 2
    item = ds[1]
    assert item["text"] == "two" and item["speaker"] == "8" and item["audio"].shape == (1, 3200)
    arrays = datasets.Dataset.from_list([
        {"audio": {"array": np.zeros(160, np.float32), "sampling_rate": 16000}, "text": "z"}
    ])
    assert HFAudioDataset(arrays)[0]["audio"].shape == (1, 160)
    with pytest.raises(ValueError, match="no audio column 'wav'"):
        HFAudioDataset(with_audio, audio_column="wav")


def test_build_dataset_picks_the_type(tmp_path, folder, librispeech):
    assert isinstance(build_dataset(folder), AudioFolderDataset)
    assert isinstance(build_dataset(folder / "top.wav"), AudioFolderDataset)
    assert isinstance(build_dataset(librispeech), LibriSpeechDataset)
    manifest = write_manifest(tmp_path / "corpus" / "manifest.jsonl",
                              [i for i in AudioFolderDataset(folder).items])
    assert isinstance(build_dataset(manifest), ManifestDataset)
    assert isinstance(build_dataset(manifest.parent), ManifestDataset)
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        build_dataset(tmp_path / "missing")
    with pytest.raises(ValueError, match="no audio files"):
        build_dataset((tmp_path / "emptydir").mkdir() or tmp_path / "emptydir")


def test_segments_crop_and_pad_with_mask(folder):
    ds = AudioFolderDataset(folder, sample_rate=16000, segment_length=3200)
    batch = collate_items([ds[i] for i in range(len(ds))])
    assert batch["audio"].shape == (4, 1, 3200) and batch["sample_rate"] == 16000
    lengths = dict(zip(batch["id"], batch["lengths"].tolist(), strict=True))
    assert lengths == {"alice/a1": 3200, "alice/a2": 3200, "bob/deep/b1": 3200, "top": 1600}
    short = batch["id"].index("top")
    assert batch["padding_mask"][short].sum() == 1600
    assert torch.all(batch["audio"][short, 0, 1600:] == 0)
    assert batch["padding_mask"][[i for i in range(4) if i != short]].all()


def test_random_crop_varies_and_eval_crop_is_fixed(folder):
    path = write_tone(folder / "long" / "l.wav", 1.0, freq=3.0)  # slow ramp: offsets are visible
    rand = AudioFolderDataset(path, segment_length=800)
    firsts = {round(rand[0]["audio"][0, 0].item(), 4) for _ in range(20)}
    assert len(firsts) > 5
    fixed = AudioFolderDataset(path, segment_length=800, random_crop=False)
    assert {fixed[0]["audio"][0, 0].item() for _ in range(5)} == {0.0}


def test_collate_refuses_mixed_rates(folder):
    ds = AudioFolderDataset(folder)  # native rates differ
    with pytest.raises(ValueError, match="mixes sample rates"):
        collate_items([ds[i] for i in range(len(ds))])


# ---- bad files in dataset mode --------------------------------------------------------------------

@pytest.fixture
def dirty(folder):
    (folder / "bad").mkdir()
    (folder / "bad" / "corrupt.wav").write_bytes(b"garbage" * 50)
    sf.write(folder / "bad" / "empty.wav", np.zeros((0, 1)), 16000)
    nan = np.full((800, 1), 0.1, dtype=np.float32)
    nan[5] = np.nan
    sf.write(folder / "bad" / "nan.wav", nan, 16000, subtype="FLOAT")
    return folder


def test_skip_bad_files_with_one_warning_each(dirty):
    ds = AudioFolderDataset(dirty, sample_rate=16000, segment_length=1600)
    assert len(ds) == 7
    with pytest.warns(AudioSkipWarning) as record:
        first = [ds[i] for i in range(len(ds))]
    assert len(record) == 3 and {str(w.message).split(": ")[0].split("/")[-1] for w in record} == {
        "corrupt.wav", "empty.wav", "nan.wav"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # second epoch: no repeated warnings
        second = [ds[i] for i in range(len(ds))]
    for items in (first, second):
        assert all(torch.isfinite(i["audio"]).all() and i["length"] > 0 for i in items)
        assert not any("/bad/" in i["path"] for i in items)
    summary = ds.skip_summary()
    assert summary.startswith("3 of 7 audio files skipped")
    assert "zero-length" in summary and "NaN/Inf" in summary and "cannot decode" in summary


def test_dataloader_epoch_over_bad_files_never_crashes(dirty):
    ds = AudioFolderDataset(dirty, sample_rate=16000, segment_length=1600)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AudioSkipWarning)
        batches = list(DataLoader(ds, batch_size=3, collate_fn=collate_items))
    assert sum(b["audio"].shape[0] for b in batches) == len(ds)
    assert all(torch.isfinite(b["audio"]).all() for b in batches)


def test_raise_mode_and_scan(dirty):
    strict = AudioFolderDataset(dirty, on_error="raise")
    index = next(i for i, item in enumerate(strict.items) if item.path.name == "nan.wav")
    with pytest.raises(AudioError, match="nan.wav: 1 NaN/Inf"):
        strict[index]
    lenient = AudioFolderDataset(dirty)
    assert sorted(p.split("/")[-1] for p in lenient.scan()) == ["corrupt.wav", "empty.wav", "nan.wav"]
    with pytest.raises(ValueError, match="on_error"):
        AudioFolderDataset(dirty, on_error="ignore")


def test_all_bad_raises_clear_error(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"junk" * 10)
    ds = AudioFolderDataset(tmp_path)
    with pytest.warns(AudioSkipWarning), pytest.raises(AudioError, match="none of the 1 items"):
        ds[0]


def test_missing_manifest_audio_is_skipped(tmp_path, folder):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"path": "gone.wav"}) + "\n" +
                        json.dumps({"path": str(folder / "top.wav")}) + "\n")
    ds = ManifestDataset(manifest)
    with pytest.warns(AudioSkipWarning, match="gone.wav: file does not exist"):
        assert ds[0]["path"].endswith("top.wav")
