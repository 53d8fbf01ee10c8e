"""Bad input and faults (issue 15) in what the small commands print and write: ``audiotok demo`` writes a
resynthesis exactly as long as its input and says what its distance means, ``audiotok stream`` names the
model it was given, ``audiotok info`` never cuts a name, says which weights are trained, and lists from
a cache without importing torch."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from audiotok import info
from audiotok.cli import main
from audiotok.codecs.families import available, build_codec


@pytest.fixture()
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # rich wraps at the console width; keep phrases on one line


@pytest.fixture()
def clip(tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, np.random.default_rng(0).normal(0, 0.1, 7777).astype(np.float32), 16000)  # no whole frame
    return path


# ---- demo -------------------------------------------------------------------------------------------------
def test_demo_resynthesis_has_the_input_length_and_the_distance_is_explained(clip, tmp_path, capsys, wide):
    out = tmp_path / "demo"
    assert main(["demo", "--codec", "mimi-tiny-trained", "--audio", str(clip), "--out", str(out)]) == 0
    original, resynthesis = sf.info(str(out / "original.wav")), sf.info(str(out / "resynthesis.wav"))
    assert original.frames == resynthesis.frames == round(7777 * 24000 / 16000)
    printed = capsys.readouterr().out
    assert "mel distance, original vs resynthesis" in printed
    assert "mean |ln mel(original) - ln mel(resynthesis)|" in printed and "0 = identical" in printed
    assert "120 Hz hum as loud as the input scores" in printed


def test_demo_input_that_is_a_folder(tmp_path, capsys):
    (tmp_path / "in.wav").mkdir()
    rc = main(["demo", "--codec", "mimi-tiny-trained", "--audio", str(tmp_path / "in.wav"),
               "--out", str(tmp_path / "demo")])
    assert rc == 2 and "is a folder, not an audio file" in capsys.readouterr().err


# ---- stream --------------------------------------------------------------------------------------------------
def test_stream_table_names_the_model_given(clip, tmp_path, capsys, wide):
    torch.manual_seed(0)
    folder = build_codec("mimi-tiny").save_pretrained(tmp_path / "my-model")
    assert main(["stream", str(clip), str(tmp_path / "out.wav"), "--codec", str(folder), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    title = printed.strip().splitlines()[0].strip()  # rich wraps the title at the table's width
    assert title.startswith(f"{folder}:") and "mimi-tiny:" not in printed


@pytest.mark.parametrize("extra, said", [
    (["--n-q", "99"], "error: --n-q 99 does not fit mimi-tiny: n_q must be between 1 and"),
    (["--codec", "wavtokenizer-tiny"], "error: codec 'wavtokenizer-tiny' is not causal"),
    (["--chunk-frames", "0"], "error: --chunk-frames must be >= 1, got 0"),
])
def test_stream_refuses_bad_arguments_in_one_line_before_any_audio(clip, tmp_path, capsys, extra, said):
    rc = main(["stream", str(clip), str(tmp_path / "out.wav"), "--codec", "mimi-tiny", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and said in err and "Traceback" not in err and not (tmp_path / "out.wav").exists()


# ---- info ------------------------------------------------------------------------------------------------------
@pytest.fixture()
def info_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIOTOK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_info_piped_prints_every_name_whole_and_the_weights(info_cache, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    assert main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[1:] if line.strip() and not line.startswith("weights:")}
    shipped = info.shipped_names()
    assert set(rows) == set(available()) | set(shipped)
    assert len(max(rows, key=len)) >= 25  # e.g. mimi-single-codebook-tiny
    for name in shipped:
        assert rows[name].split()[1] == "trained"
    for name in available():
        assert rows[name].split()[1] == "random"
    assert any(line.startswith("weights: trained = a small model trained") and "random weights" in line
               for line in lines)


@pytest.mark.parametrize("columns", [80, 200], ids=["narrow", "wide"])
def test_info_on_a_terminal_keeps_names_whole(info_cache, capsys, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "…" not in out
    names = {line.split()[0] for line in out.splitlines() if line.strip() and line.split()[0] in
             set(available()) | set(info.shipped_names())}
    assert names == set(available()) | set(info.shipped_names())
    assert ("audiotok codecs" in out) == (columns == 200)  # the table where it fits, plain text elsewhere


def test_info_unknown_name(info_cache, capsys):
    assert main(["info", "no-such-codec"]) == 2
    err = capsys.readouterr().err
    assert "'no-such-codec' is not a registered codec" in err and "mimi-tiny-trained" in err


def test_info_lists_from_the_cache_without_torch(info_cache):
    env = {**os.environ, "AUDIOTOK_CACHE": str(info_cache), "COLUMNS": "200"}
    code = ("import sys\nfrom audiotok.cli import main\nrc = main(['info'])\n"
            "print('TORCH', 'torch' in sys.modules)\nsys.exit(rc)\n")
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "TORCH True" in first.stdout  # the first listing computes the table
    cached = list(info_cache.glob("info-*.json"))
    assert len(cached) == 1 and len(json.loads(cached[0].read_text())["rows"]) == len(info.shipped_names()) + len(
        available())
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0 and "TORCH False" in second.stdout
    assert second.stdout.replace("TORCH False", "") == first.stdout.replace("TORCH True", "")


def test_info_cache_follows_the_codec_sources(info_cache, monkeypatch, tmp_path):
    key = info.cache_key()
    fake = tmp_path / "pkg"
    (fake / "codecs").mkdir(parents=True)
    (fake / "codecs" / "families.py").write_text("# another architecture\n")
    monkeypatch.setattr(info, "PACKAGE", fake)
    assert info.cache_key() != key
