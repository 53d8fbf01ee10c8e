"""Bad input and faults (issue 15): audio inputs that are not what they seem — symbolic link loops,
files and folders we may not read, a folder where a file belongs — in the data layer and in
``audiotok tokenize``. Each is reported by name with its own problem, never skipped silently and
never called "corrupt" or "does not exist" when it is something else."""
from __future__ import annotations

import builtins
import os
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from audiotok.cli import main
from audiotok.codecs.families import build_codec
from audiotok.data import AudioError, load_audio, sources
from audiotok.data.datasets import AudioSkipWarning, build_dataset
from audiotok.data.sources import FolderListingWarning, list_folder

ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    return build_codec("mimi-tiny").eval().save_pretrained(tmp_path_factory.mktemp("model") / "mimi")


def write_clip(path, n=4000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.random.default_rng(0).normal(0, 0.1, n).astype(np.float32), 16000)
    return path


@pytest.fixture()
def looped(tmp_path):
    """A folder with one good clip, a link to itself named like audio, and a folder link to its parent."""
    root = tmp_path / "looped"
    write_clip(root / "spk" / "good.wav")
    os.symlink("self.wav", root / "self.wav")
    os.symlink("..", root / "spk" / "up")
    return root


def deny_reading(monkeypatch, path):
    """Take read permission from ``path``; root reads anyway, so for root also make opening it fail the
    way the kernel does for other users (EACCES), at the points where audiotok opens files."""
    path.chmod(0)
    if not ROOT:
        return
    real_open = builtins.open

    def refusing_open(file, *args, **kwargs):
        if os.fspath(file) == os.fspath(path):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(sources, "open", refusing_open, raising=False)


def deny_listing(monkeypatch, folder):
    folder.chmod(0)
    if not ROOT:
        return
    real_scandir = os.scandir

    def refusing_scandir(path="."):
        if os.fspath(path) == os.fspath(folder):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(sources.os, "scandir", refusing_scandir)


# ---- the data layer ----------------------------------------------------------------------------------
def test_symlink_loops_in_a_folder_are_reported(looped):
    problems = {}
    items = list_folder(looped, problems)
    assert [i.id for i in items] == ["spk/good"]
    assert set(problems) == {str(looped / "self.wav"), str(looped / "spk" / "up")}
    assert all(p.startswith("symbolic link loop") for p in problems.values())
    assert str(looped) in problems[str(looped / "spk" / "up")]  # says where the loop leads
    with pytest.warns(FolderListingWarning) as caught:
        list_folder(looped)  # no problems dict: a warning, never silence
    assert sorted(str(w.message).split(": ")[0] for w in caught) == sorted(problems)
    with pytest.warns(AudioSkipWarning, match="symbolic link loop"):
        dataset = build_dataset(looped)
    assert len(dataset) == 1 and "symbolic link loop" in dataset.skip_summary()


def test_loading_a_symlink_loop_or_a_broken_link(tmp_path):
    os.symlink("loop.wav", tmp_path / "loop.wav")
    os.symlink("gone.wav", tmp_path / "dangling.wav")
    with pytest.raises(AudioError, match=r"loop\.wav: symbolic link loop"):
        load_audio(tmp_path / "loop.wav")
    with pytest.raises(AudioError, match=r"dangling\.wav: broken symbolic link: it points to gone\.wav"):
        load_audio(tmp_path / "dangling.wav")


def test_linked_folders_are_followed_once(tmp_path):
    write_clip(tmp_path / "data" / "a.wav")
    (tmp_path / "set").mkdir()
    os.symlink(tmp_path / "data", tmp_path / "set" / "linked")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [i.id for i in list_folder(tmp_path / "set")] == ["linked/a"]


def test_unreadable_file_is_permission_denied_not_corrupt(tmp_path, monkeypatch):
    clip = write_clip(tmp_path / "secret.wav")
    deny_reading(monkeypatch, clip)
    with pytest.raises(AudioError) as err:
        load_audio(clip)
    assert "permission denied" in str(err.value) and "corrupt" not in str(err.value)
    assert "chmod" in str(err.value)


def test_unlistable_subfolder_is_reported(tmp_path, monkeypatch):
    write_clip(tmp_path / "data" / "a.wav")
    locked = tmp_path / "data" / "locked"
    write_clip(locked / "b.wav")
    deny_listing(monkeypatch, locked)
    problems = {}
    try:
        items = list_folder(tmp_path / "data", problems)
    finally:
        locked.chmod(0o755)
    assert [i.id for i in items] == ["a"]
    assert problems == {str(locked): problems[str(locked)]}
    assert problems[str(locked)].startswith("permission denied: cannot list this folder")


def test_folder_where_a_file_belongs(tmp_path):
    folder = tmp_path / "clip.wav"
    folder.mkdir()
    with pytest.raises(AudioError) as err:
        load_audio(folder)
    assert "is a folder, not an audio file" in str(err.value) and "does not exist" not in str(err.value)
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text('{"path": "clip.wav"}\n')
    with pytest.warns(AudioSkipWarning, match="is a folder, not an audio file"), pytest.raises(AudioError):
        build_dataset(manifest)[0]


def test_missing_file_is_still_does_not_exist(tmp_path):
    with pytest.raises(AudioError, match="file does not exist"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        list_folder(tmp_path / "nope")
    os.symlink("loop", tmp_path / "loop")
    with pytest.raises(OSError, match="symbolic link loop"):
        list_folder(tmp_path / "loop")
    with pytest.raises(OSError, match="symbolic link loop"):
        build_dataset(tmp_path / "loop")


# ---- audiotok tokenize ----------------------------------------------------------------------------------
def test_tokenize_reports_symlink_loops(model_dir, looped, tmp_path, capsys):
    os.symlink("entry", tmp_path / "entry")
    out = tmp_path / "codes"
    rc = main(["tokenize", str(looped), str(tmp_path / "entry"), "-o", str(out), "-m", str(model_dir)])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert f"{looped / 'self.wav'}: symbolic link loop" in err
    assert f"{looped / 'spk' / 'up'}: symbolic link loop" in err
    assert f"{tmp_path / 'entry'}: symbolic link loop" in err and "no such file" not in err
    assert "tokenized 1 of 4 inputs" in err and (out / "spk" / "good.npy").is_file()


def test_tokenize_reports_permission_denied(model_dir, tmp_path, capsys, monkeypatch):
    write_clip(tmp_path / "in" / "a.wav")
    secret = write_clip(tmp_path / "in" / "secret.wav")
    deny_reading(monkeypatch, secret)
    rc = main(["tokenize", str(tmp_path / "in"), "-o", str(tmp_path / "codes"), "-m", str(model_dir)])
    err = capsys.readouterr().err
    assert rc == 1 and f"{secret}: permission denied: cannot read the file" in err
    assert "corrupt" not in err and (tmp_path / "codes" / "a.npy").is_file()


def test_tokenize_reports_an_empty_folder_and_a_missing_input(model_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    write_clip(tmp_path / "a.wav")
    rc = main(["tokenize", str(tmp_path / "empty"), str(tmp_path / "nope.wav"), str(tmp_path / "a.wav"),
               "-o", str(tmp_path / "codes"), "-m", str(model_dir)])
    err = capsys.readouterr().err
    assert rc == 1 and f"{tmp_path / 'empty'}: no audio files" in err
    assert f"{tmp_path / 'nope.wav'}: no such file or folder" in err and "tokenized 1 of 3 inputs" in err


def test_stream_input_that_is_a_folder(tmp_path, capsys):
    (tmp_path / "in.wav").mkdir()
    rc = main(["stream", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "--codec", "mimi-tiny-trained"])
    err = capsys.readouterr().err
    assert rc == 2 and f"error: {tmp_path / 'in.wav'}: is a folder, not an audio file" in err
