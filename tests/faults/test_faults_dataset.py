"""Bad input and faults (issue 15) in ``tokenize-dataset``: damaged or truncated shards found on resume,
the same source given by another path, a full disk (a real tmpfs when one can be mounted) and a second
run into the same folder."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

import audiotok
from audiotok.cli import main
from audiotok.codecs.families import build_codec
from audiotok.tokenizers import dataset as dataset_module
from audiotok.tokenizers.dataset import PROGRESS, ShardWriteError, read_shards, tokenize_dataset

IDS = [f"u{i}" for i in range(6)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    return build_codec("mimi-tiny").eval().save_pretrained(tmp_path_factory.mktemp("model") / "mimi")


@pytest.fixture(scope="module")
def tok(model_dir):
    return audiotok.load(model_dir, batch_size=2)


@pytest.fixture()
def audio_dir(tmp_path):
    """Six half-second clips: three shards of two with ``shard_size=2``."""
    root = tmp_path / "audio"
    root.mkdir()
    rng = np.random.default_rng(0)
    for ident in IDS:
        sf.write(root / f"{ident}.wav", rng.normal(0, 0.1, 8000).astype(np.float32), 16000)
    return root


def shards(out):
    return sorted(p.name for p in out.glob("shard-*.parquet"))


def leftovers(out):
    return sorted(p.name for p in out.iterdir() if ".tmp" in p.name)


def no_tokenizing(monkeypatch):
    def refuse(job, index):
        raise AssertionError(f"shard {index} was tokenized again")

    monkeypatch.setattr(dataset_module, "tokenize_shard", refuse)


# ---- damaged shards are found on resume and redone --------------------------------------------------
def test_manifest_records_each_shard_checksum(audio_dir, tmp_path, tok):
    out = tmp_path / "shards"
    tokenize_dataset(audio_dir, out, tok, shard_size=2, progress_bar=False)
    completed = json.loads((out / PROGRESS).read_text())["completed"]
    assert sorted(completed) == shards(out) == ["shard-00000.parquet", "shard-00001.parquet", "shard-00002.parquet"]
    for name, record in completed.items():
        assert record["rows"] == 2 and record["bytes"] == (out / name).stat().st_size
        assert record["sha256"] == dataset_module.file_digest(out / name)["sha256"]


@pytest.mark.parametrize("damage", ["truncated", "flipped", "emptied"])
def test_damaged_shard_is_redone_with_a_message(audio_dir, tmp_path, tok, capsys, damage):
    out = tmp_path / "shards"
    tokenize_dataset(audio_dir, out, tok, shard_size=2, progress_bar=False)
    clean = read_shards(out).to_pylist()
    victim = out / "shard-00001.parquet"
    data = bytearray(victim.read_bytes())
    if damage == "truncated":
        victim.write_bytes(data[: len(data) // 2])
    elif damage == "flipped":  # same size, one byte changed in the middle: still parses as Parquet
        data[len(data) // 2] ^= 0xFF
        victim.write_bytes(bytes(data))
    else:
        victim.write_bytes(b"")
    capsys.readouterr()
    summary = tokenize_dataset(audio_dir, out, tok, shard_size=2, progress_bar=False)
    err = capsys.readouterr().err
    assert list(summary["redone"]) == ["shard-00001.parquet"]
    assert f"{victim}: damaged" in err and "tokenizing it again" in err
    if damage != "flipped":
        assert "truncated" in err
    assert read_shards(out).to_pylist() == clean and summary["rows"] == 6 and not leftovers(out)


def test_unrecorded_shards_are_kept_when_whole_and_redone_when_not(audio_dir, tmp_path, tok, capsys,
                                                                 monkeypatch):
    """A run killed between the rename and the manifest update (or an older progress.json)."""
    out = tmp_path / "shards"
    tokenize_dataset(audio_dir, out, tok, shard_size=2, progress_bar=False)
    clean = read_shards(out).to_pylist()
    progress = json.loads((out / PROGRESS).read_text())
    progress["completed"] = {}
    (out / PROGRESS).write_text(json.dumps(progress))
    victim = out / "shard-00002.parquet"
    victim.write_bytes(victim.read_bytes()[:-100])  # footer gone
    calls = []
    real = dataset_module.tokenize_shard
    monkeypatch.setattr(dataset_module, "tokenize_shard", lambda job, index: calls.append(index) or real(job, index))
    capsys.readouterr()
    summary = tokenize_dataset(audio_dir, out, tok, shard_size=2, progress_bar=False)
    assert calls == [2] and list(summary["redone"]) == ["shard-00002.parquet"]
    assert "unreadable" in capsys.readouterr().err
    assert read_shards(out).to_pylist() == clean
    assert sorted(json.loads((out / PROGRESS).read_text())["completed"]) == shards(out)  # all recorded again


def test_recorded_shard_that_vanished_is_redone(audio_dir, tmp_path, tok, capsys):
    out = tmp_path / "shards"
    tokenize_dataset(audio_dir, out, tok, shard_size=2, progress_bar=False)
    (out / "shard-00000.parquet").unlink()
    capsys.readouterr()
    summary = tokenize_dataset(audio_dir, out, tok, shard_size=2, progress_bar=False)
    assert "recorded as finished but missing" in capsys.readouterr().err
    assert summary["rows"] == 6 and [r["id"] for r in read_shards(out).to_pylist()] == IDS


def test_damaged_progress_file_is_named(audio_dir, tmp_path, tok):
    out = tmp_path / "shards"
    tokenize_dataset(audio_dir, out, tok, shard_size=2, progress_bar=False)
    (out / PROGRESS).write_text('{"settings": {"source": ')
    with pytest.raises(ValueError, match=rf"{PROGRESS} is damaged.*delete it"):
        tokenize_dataset(audio_dir, out, tok, shard_size=2, progress_bar=False)


# ---- the same source by another path is the same setting ----------------------------------------------
def test_relative_and_absolute_source_are_the_same(audio_dir, tmp_path, tok, monkeypatch):
    out = tmp_path / "shards"
    monkeypatch.chdir(tmp_path)
    tokenize_dataset("audio", out, tok, shard_size=2, progress_bar=False)
    assert json.loads((out / PROGRESS).read_text())["settings"]["source"] == str(audio_dir.resolve())
    no_tokenizing(monkeypatch)
    for same in (str(audio_dir.resolve()), "./audio/", str(tmp_path / "shards" / ".." / "audio")):
        summary = tokenize_dataset(same, out, tok, shard_size=2, progress_bar=False)
        assert summary["rows"] == 6 and not summary["redone"]


def test_progress_written_by_an_older_version_with_a_relative_source(audio_dir, tmp_path, tok, monkeypatch):
    out = tmp_path / "shards"
    monkeypatch.chdir(tmp_path)
    tokenize_dataset("audio", out, tok, shard_size=2, progress_bar=False)
    progress = json.loads((out / PROGRESS).read_text())
    progress["settings"]["source"] = "audio"  # what the older code recorded
    (out / PROGRESS).write_text(json.dumps(progress))
    no_tokenizing(monkeypatch)
    assert tokenize_dataset(str(audio_dir), out, tok, shard_size=2, progress_bar=False)["rows"] == 6
    with pytest.raises(ValueError, match="other settings"):
        tokenize_dataset(audio_dir / "u0.wav", out, tok, shard_size=2, progress_bar=False)


# ---- a full disk ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def small_tmpfs(folder, size="96k"):
    """A real, small tmpfs mounted at ``folder`` (root only); skips the test when it cannot be mounted."""
    folder.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as err:
        pytest.skip(f"cannot mount a tmpfs to fill ({err}); the simulated disk-full test still runs")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill ({done.stderr.strip() or done.returncode}; needs root); "
                    "the simulated disk-full test still runs")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, timeout=30)


def test_disk_full_on_a_real_tmpfs(model_dir, audio_dir, tmp_path, capsys):
    clean_out = tmp_path / "clean"
    assert main(["tokenize-dataset", str(audio_dir), "-o", str(clean_out), "-m", str(model_dir),
                 "--shard-size", "2"]) == 0
    clean = read_shards(clean_out).to_pylist()
    with small_tmpfs(tmp_path / "disk") as disk:
        filler = disk / "filler"
        filler.write_bytes(b"\0" * (os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize - 12 * 1024))
        out = disk / "shards"
        capsys.readouterr()
        rc = main(["tokenize-dataset", str(audio_dir), "-o", str(out), "-m", str(model_dir), "--shard-size", "2"])
        err = capsys.readouterr().err
        assert rc == 1 and "Traceback" not in err
        assert err.startswith("error: cannot write ") and "No space left on device" in err
        assert "the partial file was removed" in err and "run the same command again" in err
        assert not leftovers(out)
        # Every shard on disk is whole (the manifest may lack the last one: progress.json can be what
        # did not fit); the re-run adopts it after reading it back.
        for name in shards(out):
            assert dataset_module.verify_shard(out / name, None, 2) is None
        filler.unlink()  # space freed: the same command finishes the job
        assert main(["tokenize-dataset", str(audio_dir), "-o", str(out), "-m", str(model_dir),
                     "--shard-size", "2"]) == 0
        assert read_shards(out).to_pylist() == clean and not leftovers(out)


def test_disk_full_simulated(model_dir, audio_dir, tmp_path, capsys, monkeypatch):
    import pyarrow.parquet as pq

    real, calls = pq.write_table, []

    def full_on_second_shard(table, where, **kwargs):
        calls.append(where)
        if len(calls) == 2:
            with open(where, "wb") as f:
                f.write(b"PAR1 partial")
            raise OSError(28, "No space left on device")
        return real(table, where, **kwargs)

    monkeypatch.setattr(pq, "write_table", full_on_second_shard)
    out = tmp_path / "shards"
    rc = main(["tokenize-dataset", str(audio_dir), "-o", str(out), "-m", str(model_dir), "--shard-size", "2"])
    err = capsys.readouterr().err
    assert rc == 1 and err.strip().splitlines()[-1] == (
        f"error: cannot write {out / 'shard-00001.parquet'}: No space left on device (errno 28); the partial "
        "file was removed. Free some space (or fix the folder), then run the same command again: finished "
        "shards are kept")
    assert shards(out) == ["shard-00000.parquet"] and not leftovers(out)
    with pytest.raises(ShardWriteError):  # the API raises the same error
        calls.clear()
        tokenize_dataset(audio_dir, tmp_path / "api", audiotok.load(model_dir), shard_size=2, progress_bar=False)
    assert not leftovers(tmp_path / "api")


# ---- a second run into the same folder ----------------------------------------------------------------
def test_second_concurrent_run_is_refused(model_dir, audio_dir, tmp_path, capsys):
    pytest.importorskip("fcntl")
    out = tmp_path / "shards"
    out.mkdir()
    (out / "shard-00000.parquet.tmp-4242").write_bytes(b"the other run's shard, half written")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, sys\n"
         f"f = open({str(out / '.audiotok.lock')!r}, 'a+')\n"
         "fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
         "f.write('process 4242, audiotok tokenize-dataset'); f.flush()\n"
         "print('locked', flush=True)\n"
         "sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        rc = main(["tokenize-dataset", str(audio_dir), "-o", str(out), "-m", str(model_dir), "--shard-size", "2"])
        err = capsys.readouterr().err
        assert rc == 2 and f"another audiotok run is writing into {out}" in err and "process 4242" in err
        assert (out / "shard-00000.parquet.tmp-4242").exists()  # the other run's file is left alone
        assert not shards(out)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert main(["tokenize-dataset", str(audio_dir), "-o", str(out), "-m", str(model_dir),
                 "--shard-size", "2"]) == 0
    assert shards(out) == ["shard-00000.parquet", "shard-00001.parquet", "shard-00002.parquet"]
    assert not leftovers(out)


def test_bad_output_fails_before_the_model_loads(audio_dir, tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("keep me")
    rc = main(["tokenize-dataset", str(audio_dir), "-o", str(target), "-m", "no-such-model"])
    assert rc == 2 and f"-o {target} is an existing file, not a folder" in capsys.readouterr().err
    assert target.read_text() == "keep me"


# ---- bad audio inside a shard is listed, the rest is tokenized -------------------------------------------------
def test_integer_pcm_stored_as_float_is_listed_not_tokenized(audio_dir, tmp_path, tok, capsys, model_dir):
    loud = audio_dir / "u3.wav"
    sf.write(loud, np.random.default_rng(1).normal(0, 1, 8000).astype(np.float32) * 20000, 16000,
             subtype="FLOAT")
    summary = tokenize_dataset(audio_dir, tmp_path / "shards", tok, shard_size=2, progress_bar=False)
    assert summary["rows"] == 5 and list(summary["failed"]) == [str(loud)]
    assert "far outside [-1, 1]" in summary["failed"][str(loud)]
    assert [r["id"] for r in read_shards(tmp_path / "shards").to_pylist()] == ["u0", "u1", "u2", "u4", "u5"]
    rc = main(["tokenize", str(audio_dir), "-o", str(tmp_path / "codes"), "-m", str(model_dir)])
    err = capsys.readouterr().err
    assert rc == 1 and f"{loud}: samples reach" in err and "integer PCM" in err
    assert sorted(p.stem for p in (tmp_path / "codes").glob("*.npy")) == ["u0", "u1", "u2", "u4", "u5"]


def test_a_batch_that_fails_to_encode_is_retried_item_by_item(audio_dir, tmp_path, tok, monkeypatch):
    real = tok.encode_waveforms

    def fails_with_u1(wavs, *args, **kwargs):
        if any(w.shape[-1] == 24000 for w in wavs):  # only u1 is 1 s long
            raise RuntimeError("out of memory")
        return real(wavs, *args, **kwargs)

    sf.write(audio_dir / "u1.wav", np.full(16000, 0.01, np.float32), 16000)
    monkeypatch.setattr(tok, "encode_waveforms", fails_with_u1)
    summary = tokenize_dataset(audio_dir, tmp_path / "shards", tok, shard_size=2, progress_bar=False)
    assert summary["rows"] == 5 and list(summary["failed"]) == [str(audio_dir / "u1.wav")]
    assert summary["failed"][str(audio_dir / "u1.wav")] == "encoding failed (RuntimeError: out of memory)"
