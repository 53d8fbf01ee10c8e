"""``tokenize-dataset --engine ray`` (issue 16) on real Ray clusters on this machine, no mocks.

* a two-node cluster (``ray start --head`` plus ``ray start --address`` with its own resources): the
  command runs against it, a tokenizer actor is killed with SIGKILL once some shards are written, and
  the rows must still be those of the single-machine engine, none twice, none missing;
* ``ray.init(num_cpus=2)`` in this process: same rows, same ``progress.json`` (so byte-identical
  shards) as the single-machine engine; resuming skips verified shards and redoes damaged or missing
  ones, across engines; the CLI flags and their errors;
* without Ray, ``--engine ray`` names the extra to install (this one runs everywhere).

Every cluster gets its own ports and temporary folder and is torn down in a finalizer by killing its
own processes (found through that folder), never with ``ray stop``, which would end every Ray on
the machine.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch

import audiotok
from audiotok.cli import main
from audiotok.tokenizers.dataset import PROGRESS, read_shards, tokenize_dataset
from audiotok.tokenizers.flatten import FlattenSpec

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed: pip install 'audiotok[ray]' "
                                                    "(scripts/setup.sh installs it, so CI runs these)")
IDS = [f"u{i:02d}" for i in range(10)]
ACTOR_TITLE = "ray::MapWorker(MapBatches(TokenizeWorker))"


MODEL = "mimi-tiny-trained"  # shipped with the package: small, causal, real codes


@pytest.fixture(scope="module")
def tok():
    return audiotok.load(MODEL, batch_size=2)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    """Ten clips of 0.25-0.7 s at 16 kHz (one stereo, two of equal length), one corrupt file, a manifest."""
    root = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    rows = []
    for i, ident in enumerate(IDS):
        n = 4000 + 700 * (i % 7)
        sf.write(root / f"{ident}.wav", rng.normal(0, 0.1, (n, 2) if i == 3 else n).astype(np.float32), 16000)
        rows.append({"path": f"{ident}.wav", "text": f"utterance {i}", "speaker": f"s{i % 3}"})
    (root / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all")
    rows.insert(4, {"path": "bad.wav", "text": "broken", "speaker": "s9"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


FLAT = dict(offset=1008, order="frame", bos=1000, eos=1001)


@pytest.fixture(scope="module")
def local_out(tmp_path_factory, audio_dir, tok):
    """The single-machine engine's shards: the reference every Ray run is compared with. One torch thread,
    as in a worker of one CPU: another thread count sums in another order, and an argmin between two
    nearly equal codebook distances can then pick the other code (float near-ties)."""
    out = tmp_path_factory.mktemp("local") / "shards"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tokenize_dataset(audio_dir / "manifest.jsonl", out, tok, shard_size=3, progress_bar=False,
                         flatten=FlattenSpec(tok.codebook_size, **FLAT))
    finally:
        torch.set_num_threads(threads)
    return out


def progress_of(out: Path) -> dict:
    return json.loads((out / PROGRESS).read_text())


# ---- clusters ------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_pids(temp_dir: str) -> list[int]:
    """Processes of the Ray cluster whose folder is ``temp_dir`` (its command lines name it), and
    all their descendants (workers rename themselves ``ray::...``)."""
    parents, own = {}, set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if temp_dir in cmdline:
            own.add(int(entry.name))
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in own} - own
        own |= more
        grew = bool(more)
    return sorted(own - {os.getpid()})


def kill_cluster(temp_dir: str) -> None:
    """End the cluster's own processes by id, then remove its folder. The list is taken before the first
    signal: a worker whose raylet died is no longer its child and no longer names the folder."""
    pids = cluster_pids(temp_dir)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + 5
        while any(map(alive, pids)) and time.time() < deadline:
            time.sleep(0.2)
        pids = [pid for pid in pids if alive(pid)] + cluster_pids(temp_dir)
    shutil.rmtree(temp_dir, ignore_errors=True)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is gone
    except (OSError, IndexError):
        return False


def title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


@pytest.fixture()
def two_nodes(request):
    """A head node (1 CPU) and a second node (2 CPUs, resource ``tokenizer_node``) started with ``ray start``."""
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths have a length limit
    request.addfinalizer(lambda: kill_cluster(temp_dir))
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    common = ["--temp-dir", temp_dir, "--disable-usage-stats"]
    for node in (["--head", "--port", str(port), "--num-cpus", "1", "--include-dashboard", "false"],
                 ["--address", f"127.0.0.1:{port}", "--num-cpus", "2", "--resources", '{"tokenizer_node": 1}']):
        done = subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "start", *node, "--node-ip-address", "127.0.0.1",
                               "--dashboard-agent-listen-port", str(free_port()), *common],
                              capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, f"ray start {' '.join(node)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    return {"address": f"127.0.0.1:{port}", "temp_dir": temp_dir, "env": env}


@pytest.fixture(scope="module")
def local_ray():
    """``ray.init(num_cpus=2)`` in this process for the in-process tests."""
    ray = pytest.importorskip("ray")
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp_dir, logging_level="WARNING")
    try:
        yield ray
    finally:
        ray.shutdown()
        kill_cluster(temp_dir)


# ---- a worker killed mid-run (two nodes) -----------------------------------------------------------------
@pytest.fixture()
def long_audio(tmp_path):
    """24 8-second clips: long enough that the single tokenizer actor is still busy after the first
    shards are written (mimi-tiny-trained encodes about 100x faster than real time on one core)."""
    root = tmp_path / "long"
    root.mkdir()
    rng = np.random.default_rng(1)
    for i in range(24):
        sf.write(root / f"l{i:02d}.wav", rng.normal(0, 0.1, 16000 * 8 - 160 * i).astype(np.float32), 16000)
    return root


@needs_ray
@pytest.mark.timeout(240)
def test_killed_actor_is_retried_without_duplicate_or_missing_rows(two_nodes, long_audio, tmp_path):
    """The command runs against the cluster with one tokenizer actor (on the second node). Once a shard is
    written the actor is frozen (SIGSTOP), the shards written so far are counted, and it is killed with
    SIGKILL while shards remain: Ray restarts it and retries its batch, and the shards hold exactly the
    single-machine engine's rows, none twice, none missing."""
    reference = tmp_path / "reference"
    tok = audiotok.load(MODEL, batch_size=1)
    torch.set_num_threads(1)  # as the worker (see local_out); the autouse fixture sets it back
    tokenize_dataset(long_audio, reference, tok, shard_size=2, progress_bar=False)
    out = tmp_path / "shards"
    driver = subprocess.Popen(
        [sys.executable, "-m", "audiotok.cli", "tokenize-dataset", str(long_audio), "-o", str(out), "-m", MODEL,
         "--batch-size", "1", "--shard-size", "2", "--engine", "ray", "--address", two_nodes["address"],
         "--workers", "1", "--items-per-call", "1", "--resources-per-worker", '{"tokenizer_node": 1}'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=two_nodes["env"])
    killed, done_at_kill = None, None
    try:
        deadline = time.time() + 180
        while time.time() < deadline and driver.poll() is None:
            done = len(progress_of(out)["completed"]) if (out / PROGRESS).exists() else 0
            actors = [pid for pid in cluster_pids(two_nodes["temp_dir"]) if title(pid).startswith(ACTOR_TITLE)]
            if done >= 1 and actors:
                killed = actors[0]
                os.kill(killed, signal.SIGSTOP)  # frozen: nothing more gets tokenized
                time.sleep(1.0)  # let the driver write what had already come back
                done_at_kill = len(progress_of(out)["completed"])
                os.kill(killed, signal.SIGKILL)
                break
            time.sleep(0.02)
        log, _ = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert killed is not None, f"no shard was written with a live tokenizer actor:\n{log[-3000:]}"
    assert done_at_kill < 12, "every shard was written before the kill; the test proves nothing"
    assert driver.returncode == 0, log[-3000:]
    assert "ray: 24/24 items (24 rows, 0 skipped), 12/12 shards" in log and "audio-seconds per second" in log
    rows = read_shards(out).to_pylist()
    assert [r["id"] for r in rows] == [f"l{i:02d}" for i in range(24)]  # no duplicate, no gap, in item order
    assert rows == read_shards(reference).to_pylist()
    assert progress_of(out)["completed"] == progress_of(reference)["completed"]  # same bytes, same checksums
    assert not [p for p in out.iterdir() if ".tmp" in p.name]


# ---- in-process Ray: the same output as the single-machine engine ---------------------------------------------
@needs_ray
def test_ray_engine_writes_the_rows_of_the_single_machine_engine(local_ray, audio_dir, tok, local_out, tmp_path):
    from audiotok.tokenizers.dataset_ray import RayOptions, tokenize_dataset_ray

    out, lines = tmp_path / "shards", []
    summary = tokenize_dataset_ray(audio_dir / "manifest.jsonl", out, tok,
                                   RayOptions(workers=2, cpus_per_worker=0.5, batch_seconds=0.6, items_per_call=4,
                                              progress_every=0),
                                   report=lines.append, shard_size=3, flatten=FlattenSpec(tok.codebook_size, **FLAT))
    assert summary["rows"] == 10 and summary["shards"] == 4 and list(summary["failed"]) == [str(audio_dir / "bad.wav")]
    rows, reference = read_shards(out).to_pylist(), read_shards(local_out).to_pylist()
    assert len(rows) == len(reference)
    for mine, theirs in zip(rows, reference):  # row by row, every column (codes, tokens, duration...)
        assert mine == theirs, mine["id"]
    assert progress_of(out) == progress_of(local_out)  # settings and manifest: sizes and SHA-256 too
    assert pq.read_schema(out / "shard-00000.parquet") == pq.read_schema(local_out / "shard-00000.parquet")
    final = lines[-1]
    assert final.startswith("ray: 11/11 items (10 rows, 1 skipped), 4/4 shards") and "audio-seconds per second" in final


@needs_ray
def test_rerun_skips_verified_shards_and_redoes_damaged_ones_across_engines(local_ray, audio_dir, tok, local_out,
                                                                          tmp_path):
    """Output of the single-machine engine, one shard truncated and one deleted: the Ray engine redoes
    just those two; a further run has nothing to do and leaves every file alone."""
    from audiotok.tokenizers.dataset_ray import RayOptions, tokenize_dataset_ray

    out = tmp_path / "shards"
    shutil.copytree(local_out, out)
    victim, gone = out / "shard-00001.parquet", out / "shard-00003.parquet"
    victim.write_bytes(victim.read_bytes()[:-200])
    gone.unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.parquet") if p not in (victim,)}
    messages = []
    run = lambda: tokenize_dataset_ray(audio_dir / "manifest.jsonl", out, tok, RayOptions(items_per_call=2),
                                       report=messages.append, shard_size=3,
                                       flatten=FlattenSpec(tok.codebook_size, **FLAT))
    summary = run()
    assert sorted(summary["redone"]) == ["shard-00001.parquet", "shard-00003.parquet"]
    assert any("damaged or truncated" in m for m in messages) and any("missing" in m for m in messages)
    assert read_shards(out).to_pylist() == read_shards(local_out).to_pylist()
    assert progress_of(out) == progress_of(local_out)
    assert {n: (out / n).stat().st_mtime_ns for n in kept} == kept  # verified shards were not rewritten
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.parquet")}
    messages.clear()
    assert run()["redone"] == {} and not messages  # nothing pending: the pipeline does not even start
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.parquet")} == stamps
    assert not [p for p in out.iterdir() if ".tmp" in p.name]


@needs_ray
def test_saved_hugging_face_dataset(local_ray, audio_dir, tok, tmp_path):
    """A ``datasets.Dataset`` source travels to the read tasks through the object store."""
    datasets = pytest.importorskip("datasets")
    from audiotok.tokenizers.dataset_ray import RayOptions, tokenize_dataset_ray

    rows = [json.loads(line) for line in (audio_dir / "manifest.jsonl").read_text().splitlines()]
    datasets.Dataset.from_dict({"audio": [str(audio_dir / r["path"]) for r in rows],
                                "text": [r["text"] for r in rows]}).save_to_disk(str(tmp_path / "hf"))
    source = datasets.load_from_disk(str(tmp_path / "hf"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tokenize_dataset(source, tmp_path / "local", tok, shard_size=4, progress_bar=False)
    torch.set_num_threads(threads)
    summary = tokenize_dataset_ray(source, tmp_path / "ray", tok, RayOptions(), report=lambda m: None, shard_size=4)
    assert summary["rows"] == 10 and list(summary["failed"]) == [str(audio_dir / "bad.wav")]
    assert read_shards(tmp_path / "ray").to_pylist() == read_shards(tmp_path / "local").to_pylist()


# ---- the command line ----------------------------------------------------------------------------------------
@needs_ray
def test_cli_engine_ray(local_ray, audio_dir, tmp_path, capsys, monkeypatch):
    """A relative SOURCE too: the workers do not share the driver's working folder."""
    out = tmp_path / "shards"
    monkeypatch.chdir(audio_dir.parent)
    rc = main(["tokenize-dataset", audio_dir.name, "-o", str(out), "-m", MODEL, "--shard-size", "4",
               "--flatten", "--engine", "ray", "--workers", "1", "--batch-seconds", "1"])
    err = capsys.readouterr().err
    assert rc == 1 and "bad.wav" in err and "10 items in 3 shards" in err  # the corrupt file is listed
    assert "tokenize-dataset: ray: 11/11 items" in err and "h of audio" in err
    assert [r["id"] for r in read_shards(out).to_pylist()] == sorted(IDS)
    assert "tokens" in pq.read_schema(out / "shard-00000.parquet").names


@needs_ray
@pytest.mark.parametrize("flags, message", [
    (["--gpus-per-worker", "1"], "--gpus-per-worker 1 but the Ray cluster has 0 GPUs"),
    (["--resources-per-worker", '{"tpu_pod": 1}'], "no node of the Ray cluster has the resources {'tpu_pod': 1}"),
    (["--workers", "2"], "would hold all 2 CPUs of the Ray cluster and leave none for reading audio"),
    (["--workers", "5", "--cpus-per-worker", "0.5"], "holds only 4 of the 5 workers of 0.5 CPUs, 0 GPUs asked for"),
    (["--num-proc", "2"], "--num-proc is for the local engine; with --engine ray use --workers"),
])
def test_cli_engine_ray_refuses_what_cannot_run(local_ray, audio_dir, tmp_path, capsys, flags, message):
    rc = main(["tokenize-dataset", str(audio_dir), "-o", str(tmp_path / "out"), "-m", MODEL,
               "--engine", "ray", *flags])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
    assert not list((tmp_path / "out").glob("shard-*"))


def test_ray_flags_need_the_ray_engine(audio_dir, tmp_path, capsys):
    rc = main(["tokenize-dataset", str(audio_dir), "-o", str(tmp_path / "out"), "-m", "mimi-tiny", "--workers", "4"])
    assert rc == 2 and "--workers only apply with --engine ray" in capsys.readouterr().err


def test_engine_ray_without_ray_names_the_extra(audio_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what a core install without the extra looks like
    rc = main(["tokenize-dataset", str(audio_dir), "-o", str(tmp_path / "out"), "-m", "mimi-tiny", "--engine", "ray"])
    err = capsys.readouterr().err
    assert rc == 2 and "--engine ray needs Ray Data" in err and "pip install 'audiotok[ray]'" in err
