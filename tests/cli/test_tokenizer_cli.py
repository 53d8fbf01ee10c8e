"""audiotok tokenize / detokenize / tokenize-dataset: round trips, bad files, resumable shards."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch

from audiotok.cli import main
from audiotok.codecs.families import build_codec
from audiotok.tokenizers import Tokenizer, unflatten_tokens
from audiotok.tokenizers import dataset as dataset_module
from audiotok.tokenizers.dataset import read_shards, shard_failures, tokenize_dataset


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A saved mimi-tiny folder with spread codebooks."""
    torch.manual_seed(0)
    codec = build_codec("mimi-tiny").train()
    codec(torch.randn(2, 1, codec.sample_rate) * 0.1)
    return codec.eval().save_pretrained(tmp_path_factory.mktemp("model") / "mimi")


@pytest.fixture()
def audio_dir(tmp_path):
    """Five short clips at 16 kHz (two in a sub-folder, one stereo), one corrupt file, a manifest."""
    root = tmp_path / "audio"
    (root / "spk").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i, rel in enumerate(["a.wav", "b.wav", "spk/c.wav", "spk/d.flac", "e.wav"]):
        samples = rng.normal(0, 0.1, (4000 + 1000 * i, 2 if i == 1 else 1)).astype(np.float32)
        sf.write(root / rel, samples, 16000)
        rows.append({"path": rel, "text": f"utterance {i}", "speaker": "s1"})
    (root / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all")
    rows.insert(2, {"path": "bad.wav", "text": "broken", "speaker": "s2"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_tokenize_detokenize_round_trip_with_a_corrupt_file(model_dir, audio_dir, tmp_path, capsys):
    codes_dir, wav_dir = tmp_path / "codes", tmp_path / "wavs"
    rc = main(["tokenize", str(audio_dir), "-o", str(codes_dir), "-m", str(model_dir), "--batch-size", "2"])
    err = capsys.readouterr().err
    assert rc == 1 and "bad.wav" in err and "cannot decode audio" in err
    rows = [json.loads(line) for line in (codes_dir / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == ["a", "b", "e", "spk/c", "spk/d"]
    tok = Tokenizer(build_codec("mimi-tiny"))  # only for metadata
    row = next(r for r in rows if r["id"] == "spk/c")
    codes = np.load(codes_dir / row["codes"])
    assert codes.shape == (tok.num_codebooks, row["n_frames"]) and row["num_samples"] == 6000 * 24000 // 16000

    rc = main(["detokenize", str(codes_dir), "-o", str(wav_dir)])
    assert rc == 0, capsys.readouterr().err
    audio, sr = sf.read(wav_dir / "spk" / "c.wav")
    assert sr == 24000 and len(audio) == row["num_samples"]
    assert len(list(wav_dir.rglob("*.wav"))) == 5


def test_npz_and_bad_codes_file(model_dir, audio_dir, tmp_path, capsys):
    codes_dir = tmp_path / "codes"
    main(["tokenize", str(audio_dir / "a.wav"), "-o", str(codes_dir), "-m", str(model_dir), "--format", "npz"])
    data = np.load(codes_dir / "a.npz")
    assert int(data["num_samples"]) == 6000 and data["codes"].dtype == np.uint16
    np.save(codes_dir / "junk.npy", np.full((2, 3), 10_000))
    rc = main(["detokenize", str(codes_dir / "a.npz"), str(codes_dir / "junk.npy"),
               "-o", str(tmp_path / "out"), "-m", str(model_dir)])
    err = capsys.readouterr().err
    assert rc == 1 and "junk.npy" in err and "do not fit this model" in err
    assert sf.info(str(tmp_path / "out" / "a.wav")).frames == 6000


def test_tokenize_dataset_resumes_without_duplicates_or_gaps(model_dir, audio_dir, tmp_path, monkeypatch):
    import audiotok

    tok = audiotok.load(model_dir, batch_size=2)
    out = tmp_path / "shards"
    real_write, calls = dataset_module.write_shard, []

    def interrupted(table, target):
        calls.append(target.name)
        if len(calls) == 2:  # die half-way through writing the second shard
            (target.parent / f"{target.name}.tmp-999").write_bytes(b"partial")
            raise KeyboardInterrupt
        real_write(table, target)

    monkeypatch.setattr(dataset_module, "write_shard", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tokenize_dataset(audio_dir, out, tok, shard_size=2)
    assert [p.name for p in out.glob("shard-*.parquet")] == ["shard-00000.parquet"]
    monkeypatch.setattr(dataset_module, "write_shard", real_write)

    summary = tokenize_dataset(audio_dir, out, tok, shard_size=2)
    assert summary["shards"] == 3 and summary["rows"] == 5
    assert list(summary["failed"]) and "bad.wav" in next(iter(summary["failed"]))
    assert not list(out.glob("*.tmp*"))
    table = read_shards(out).to_pylist()
    assert [r["id"] for r in table] == ["a", "b", "spk/c", "spk/d", "e"]  # no gap, no duplicate
    assert table[2]["text"] == "utterance 2" and table[2]["duration"] == pytest.approx(6000 / 16000)
    first = tok.tokenize(audio_dir / "a.wav").unbatch()[0]
    assert np.array_equal(np.asarray(table[0]["codes"]), first.numpy())
    assert "bad.wav" in next(iter(shard_failures(out / "shard-00001.parquet")))
    with pytest.raises(ValueError, match="other settings"):
        tokenize_dataset(audio_dir, out, tok, shard_size=3)


def test_tokenize_dataset_cli_with_llasa_tokens(model_dir, audio_dir, tmp_path):
    out = tmp_path / "shards"
    rc = main(["tokenize-dataset", str(audio_dir / "manifest.jsonl"), "-o", str(out), "-m", str(model_dir),
               "--shard-size", "4", "--llasa-text-vocab", "1000", "--bos", "1000", "--eos", "1001"])
    assert rc == 1  # the corrupt file is reported
    rows = read_shards(out).to_pylist()
    assert len(rows) == 5 and pq.read_schema(out / "shard-00000.parquet").field("codes").type.value_type
    for row in rows:
        codes = np.asarray(row["codes"])
        assert row["tokens"][0] == 1000 and row["tokens"][-1] == 1001
        assert np.array_equal(unflatten_tokens(row["tokens"], codes.shape[0], 64, offset=1008,
                                               bos=1000, eos=1001), codes)


def test_tokenize_dataset_in_worker_processes(model_dir, audio_dir, tmp_path):
    import audiotok

    tok = audiotok.load(model_dir)
    summary = tokenize_dataset(audio_dir, tmp_path / "shards", tok, shard_size=2, num_proc=2)
    rows = read_shards(tmp_path / "shards").to_pylist()
    assert summary["rows"] == 5 and [r["id"] for r in rows] == ["a", "b", "spk/c", "spk/d", "e"]
    expected = tok.tokenize(audio_dir / "e.wav").unbatch()[0].numpy()
    assert np.array_equal(np.asarray(rows[-1]["codes"]), expected)


@pytest.fixture()
def long_and_short_codes(tmp_path, one_thread):
    """Codes of 7.3 s (longer than a 2 s chunk) and 1.1 s of noise by mimi-tiny-trained, with their
    true lengths in .npz files; the whole-array decode of each (what detokenize wrote before)."""
    import audiotok

    tok = audiotok.load("mimi-tiny-trained", chunk_seconds=2.0)
    folder, whole = tmp_path / "codes", {}
    folder.mkdir()
    for name, seconds in [("long", 7.3), ("short", 1.1)]:
        wav = torch.randn(1, int(seconds * tok.sample_rate), generator=torch.Generator().manual_seed(1)) * 0.1
        tokens = tok.tokenize(wav)
        np.savez(folder / f"{name}.npz", codes=tokens.unbatch()[0].numpy(), num_samples=wav.shape[-1])
        whole[name] = tok.detokenize(tokens).unbatch()[0]
    return folder, whole, tok


def test_detokenize_writes_a_long_item_piece_by_piece(long_and_short_codes, tmp_path, monkeypatch):
    from audiotok.data import audio_io

    folder, whole, tok = long_and_short_codes
    written, real = [], audio_io.save_audio_pieces

    def spy(path, pieces, rate):
        written.append([])
        return real(path, (written[-1].append(p.shape[-1]) or p for p in pieces), rate)

    monkeypatch.setattr(audio_io, "save_audio_pieces", spy)
    out = tmp_path / "wav"
    assert main(["detokenize", str(folder), "-o", str(out), "-m", "mimi-tiny-trained", "--chunk-seconds", "2"]) == 0
    chunk = tok._chunk_frames() * tok.hop_length  # the long item chunk by chunk, the short one whole:
    assert written == [[chunk] * 3 + [whole["long"].shape[-1] - 3 * chunk], [whole["short"].shape[-1]]]
    for name, wav in whole.items():  # bytes as the whole-array write
        audio_io.save_audio(tmp_path / f"{name}.wav", wav, tok.sample_rate)
        assert (out / f"{name}.wav").read_bytes() == (tmp_path / f"{name}.wav").read_bytes()


def test_detokenize_failing_midway_leaves_no_partial_file(long_and_short_codes, tmp_path, capsys, monkeypatch):
    from audiotok.data.outputs import is_temporary
    from audiotok.tokenizers.streaming import Stream

    folder, whole, tok = long_and_short_codes
    calls, real = [], Stream.decode_step

    def fails_on_the_second_chunk(self, codes):
        calls.append(codes.shape[-1])
        if len(calls) == 2:  # the first piece is already in the temporary file
            raise RuntimeError("decoder fault")
        return real(self, codes)

    monkeypatch.setattr(Stream, "decode_step", fails_on_the_second_chunk)
    out = tmp_path / "wav"
    rc = main(["detokenize", str(folder), "-o", str(out), "-m", "mimi-tiny-trained", "--chunk-seconds", "2"])
    err = capsys.readouterr().err
    assert rc == 1 and len(calls) == 2 and "decoder fault" in err and str(out / "long.wav") in err
    assert "decoded 1 of 2 inputs" in err and str(folder / "long.npz") in err.split("failed:")[-1]
    assert [p.name for p in out.iterdir() if p.suffix == ".wav" or is_temporary(p)] == ["short.wav"]
    assert sf.info(str(out / "short.wav")).frames == whole["short"].shape[-1]
