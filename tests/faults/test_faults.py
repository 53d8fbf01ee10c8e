"""Bad input and faults (issue 15): hostile or damaged checkpoints, unscaled audio, empty codes, codes of
another tokenizer, failed writes, bad output folders and concurrent runs into one folder."""
from __future__ import annotations

import collections
import fractions
import json
import os
import pathlib
import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

import audiotok
from audiotok.cli import main
from audiotok.cli import tokenize as cli_tokenize
from audiotok.codecs.codec import Codec
from audiotok.codecs.families import build_codec, get_config
from audiotok.data import outputs
from audiotok.tokenizers import CheckpointError, Tokenizer, load_training_checkpoint
from audiotok.tokenizers.convert import detect_and_convert


class WritesAFile:
    """Unpickling this opens (creates) ``marker`` for writing: code run by merely loading the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def training_checkpoint(codec: Codec, **extra) -> dict:
    """A dict shaped like the ``.ckpt`` of ``audiotok fit`` (Lightning 2.x + our keys), plain types only."""
    state = collections.OrderedDict((f"codec.{k}", v) for k, v in codec.state_dict().items())
    state["discriminator.mpd.weight"] = torch.zeros(3)
    return {
        "epoch": 0, "global_step": 2, "pytorch-lightning_version": "2.6.6", "state_dict": state,
        "loops": {"fit_loop": {"state_dict": {"combined_loader": []},
                               "epoch_loop.batch_progress": {"total": {"ready": 2}, "is_last_batch": False}}},
        "callbacks": {"ModelCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 2}": {
            "monitor": None, "best_model_score": None, "dirpath": "/runs/x/checkpoints",
            "kth_value": torch.tensor(float("inf"))}},
        "optimizer_states": [{"state": {0: {"step": torch.tensor(2.0), "exp_avg": torch.zeros(2)}},
                              "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.99), "params": [0]}]}],
        "lr_schedulers": [{"base_lrs": [1e-4], "last_epoch": 2, "_step_count": 3, "lr_lambdas": [None]}],
        "hparams_name": "kwargs",
        "hyper_parameters": {"codec": codec.config.name, "recipe": "mimi", "seed": 0, "losses": None},
        "datamodule_hparams_name": "kwargs",
        "datamodule_hyper_parameters": {"train": "builtin:tiny", "segment_seconds": 0.25,
                                        "cache": pathlib.PurePosixPath("/data/cache")},
        "audiotok_codec_config": codec.config.to_dict(),
        "audiotok_recipe": {"base": "mimi", "losses": {"mel": 0.0, "balancer": {"total_norm": 1.0}}},
        "audiotok_d_steps": 2,
        **extra,
    }


def wavtokenizer_yaml() -> dict:
    """A WavTokenizer training YAML (75 tokens/s) as the converter reads it."""
    return {"model": {"init_args": {
        "sample_rate": 24000,
        "feature_extractor": {"init_args": {"dowmsamples": [8, 5, 4, 2], "vq_bins": 4096, "num_quantizers": 1}},
        "backbone": {"init_args": {"input_channels": 512, "dim": 768, "intermediate_dim": 2304, "num_layers": 12}},
        "head": {"init_args": {"n_fft": 1280, "hop_length": 320}}}}}


@pytest.fixture(scope="module")
def codec() -> Codec:
    torch.manual_seed(0)
    return build_codec("mimi-tiny").eval()


@pytest.fixture(scope="module")
def model_dir(codec, tmp_path_factory):
    return codec.save_pretrained(tmp_path_factory.mktemp("model") / "mimi")


@pytest.fixture()
def audio_dir(tmp_path):
    root = tmp_path / "audio"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        sf.write(root / f"{name}.wav", rng.normal(0, 0.1, 4000).astype(np.float32), 16000)
    return root


def leftovers(folder: pathlib.Path) -> list[str]:
    """Temporary or lock-test files an interrupted write could leave behind."""
    return sorted(p.name for p in folder.rglob("*") if outputs.TEMP_MARK in p.name or "write-test" in p.name)


# ---- 1. pickled code in checkpoints is never run unless the caller trusts the file -------------------
@pytest.mark.parametrize("suffix", [".pt", ".ckpt", ".pth"])
@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_pickle_payload_is_refused_and_runs_nothing(tmp_path, suffix, zipped):
    marker = tmp_path / "PWNED"
    path = tmp_path / f"model{suffix}"
    torch.save({"state_dict": {}, "payload": WritesAFile(marker)}, path, _use_new_zipfile_serialization=zipped)
    with pytest.raises(CheckpointError) as err:
        audiotok.load(path)
    message = str(err.value)
    assert str(path) in message and "pass trust_checkpoint=True only if you trust this file" in message
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="trust_checkpoint=True only if you trust"):
        load_training_checkpoint(path)
    assert not marker.exists()


def test_official_converters_refuse_pickled_code_too(tmp_path):
    marker = tmp_path / "PWNED"
    (tmp_path / "wavtokenizer.yaml").write_text(yaml.safe_dump(wavtokenizer_yaml()))
    torch.save({"state_dict": {}, "payload": WritesAFile(marker)}, tmp_path / "wavtokenizer.ckpt")
    with pytest.raises(CheckpointError, match=r"wavtokenizer\.ckpt.*trust_checkpoint=True only if you trust"):
        audiotok.load(tmp_path)
    with pytest.raises(CheckpointError, match="trust_checkpoint=True only if you trust"):
        detect_and_convert([tmp_path / "wavtokenizer.yaml", tmp_path / "wavtokenizer.ckpt"])
    assert not marker.exists()


def test_our_training_checkpoints_load_weights_only(codec, tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save(training_checkpoint(codec), path)
    wav = torch.randn(1, 4800) * 0.1
    loaded = audiotok.load(path)
    assert torch.equal(loaded.tokenize(wav).codes, Tokenizer(codec).tokenize(wav).codes)
    assert load_training_checkpoint(path).config == codec.config


def test_other_objects_need_an_explicit_opt_in(codec, tmp_path):
    path = tmp_path / "custom.ckpt"
    torch.save(training_checkpoint(codec, hyper_parameters={"lr": fractions.Fraction(1, 3)}), path)
    with pytest.raises(CheckpointError, match=r"custom\.ckpt pickles Python objects \(fractions\.Fraction\)"):
        audiotok.load(path)
    assert audiotok.load(path, trust_checkpoint=True).codec.config == codec.config
    assert audiotok.tokenizers.load_codec(path, trust_checkpoint=True).config == codec.config


# ---- 2. damaged files: errors name the file and the problem ------------------------------------------
def test_truncated_safetensors_in_a_saved_folder(codec, tmp_path):
    folder = codec.save_pretrained(tmp_path / "m")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable safetensors file.*truncated"):
        audiotok.load(folder)


def test_truncated_safetensors_file(tmp_path):
    path = tmp_path / "tokenizer-e351c8d8-checkpoint125.safetensors"
    path.write_bytes(b"\x40\x00\x00\x00\x00\x00\x00\x00{\"a\": ")
    with pytest.raises(CheckpointError, match=rf"{path.name}: not a readable safetensors file.*truncated"):
        audiotok.load(path)


def test_truncated_ckpt(codec, tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save(training_checkpoint(codec), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=rf"{path}.* is truncated or corrupt.*download or copy it again"):
        audiotok.load(path)


@pytest.mark.parametrize("content, problem", [
    (b"GARBAGE!" + np.random.default_rng(0).bytes(4096), "is not a PyTorch checkpoint"),
    (b"\x80\x02" + np.random.default_rng(1).bytes(4096), "could not be read as weights only"),
    (b"", "is empty"),
], ids=["random", "pickle-like", "empty"])
def test_random_bytes_pt(tmp_path, content, problem):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=rf"{path}.*{problem}"):
        audiotok.load(path)


def test_folder_without_weights_names_the_missing_file(codec, tmp_path):
    codec.config.save(tmp_path / "config.json")
    with pytest.raises(CheckpointError, match=r"model\.safetensors is missing"):
        audiotok.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"something": "else"}))
    with pytest.raises(CheckpointError, match=r"model\.safetensors is missing"):
        audiotok.load(tmp_path)


def test_config_field_of_the_wrong_type(codec, tmp_path):
    folder = codec.save_pretrained(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "sample_rate": "fast"}))
    with pytest.raises(CheckpointError, match=r"config\.json: CodecConfig field 'sample_rate' must be a positive "
                                              r"integer.*got 'fast'"):
        audiotok.load(folder)
    for field, value in [("causal", "yes"), ("quantizer", 3), ("default_n_q", 0)]:
        with pytest.raises(ValueError, match=f"field '{field}'"):
            type(codec.config).from_dict({**config, field: value})
    with pytest.raises(ValueError, match=r"lacks the required fields \['decoder'\]"):
        type(codec.config).from_dict({k: v for k, v in config.items() if k != "decoder"})


# ---- 3. audio far outside [-1, 1] --------------------------------------------------------------------
def test_loud_audio_warns_once_and_pcm_sized_audio_is_refused(codec):
    tok = Tokenizer(codec)
    wav = torch.randn(2400) * 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tok.tokenize(wav)  # normal audio: silent
    with pytest.warns(UserWarning) as caught:
        tok.tokenize([wav * 30, wav * 40, wav])
    messages = [str(w.message) for w in caught if "outside [-1, 1]" in str(w.message)]
    assert len(messages) == 1 and "integer PCM passed as float" in messages[0] and "32768" in messages[0]
    assert "item 0" in messages[0] and "item 1" in messages[0] and "item 2" not in messages[0]
    with pytest.raises(ValueError, match=r"far outside \[-1, 1\].*integer PCM passed as float.*32768"):
        tok.tokenize(wav.sign() * 1e6)
    with pytest.raises(ValueError, match="integer PCM"):
        tok.tokenize(np.round(wav.numpy() * 32767).astype(np.float32))


# ---- 4. empty codes, --n-q out of range ---------------------------------------------------------------
def test_codes_without_frames_are_a_clear_error(codec):
    tok = Tokenizer(codec)
    with pytest.raises(ValueError, match=r"no frames \(F = 0\)"):
        tok.detokenize(torch.zeros(1, tok.num_codebooks, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="no frames"):
        tok.detokenize(torch.zeros(1, tok.num_codebooks, 5, dtype=torch.long), lengths=[0])


def test_cli_n_q_out_of_range(model_dir, audio_dir, tmp_path, capsys):
    rc = main(["tokenize", str(audio_dir), "-o", str(tmp_path / "codes"), "-m", str(model_dir), "--n-q", "99"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --n-q 99") and "between 1 and 8" in lines[0]


def test_cli_model_that_does_not_load(audio_dir, tmp_path, capsys):
    bad = tmp_path / "model.pt"
    torch.save({"x": WritesAFile(tmp_path / "PWNED")}, bad)
    rc = main(["tokenize", str(audio_dir), "-o", str(tmp_path / "codes"), "-m", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: cannot load the model") and "--trust-checkpoint" in err
    assert not (tmp_path / "PWNED").exists()


# ---- 5. codes carry their tokenizer's identity; detokenize refuses another model ---------------------
def test_detokenize_refuses_codes_of_another_tokenizer(codec, model_dir, audio_dir, tmp_path, capsys):
    codes_dir = tmp_path / "codes"
    assert main(["tokenize", str(audio_dir), "-o", str(codes_dir), "-m", str(model_dir)]) == 0
    info = json.loads((codes_dir / "tokenizer.json").read_text())
    assert info["model"] == str(model_dir.resolve()) and info["name"] == codec.config.name
    assert info["config_sha256"] == cli_tokenize.config_hash(codec.config) and len(info["config_sha256"]) == 64
    assert (info["num_codebooks"], info["codebook_size"], info["sample_rate"]) == (8, 64, 24000)

    other = Codec(get_config("mimi-tiny").replace(name="mimi-tiny-other")).save_pretrained(tmp_path / "other")
    capsys.readouterr()
    rc = main(["detokenize", str(codes_dir), "-o", str(tmp_path / "wav"), "-m", str(other)])
    err = capsys.readouterr().err
    assert rc == 2 and str(model_dir.resolve()) in err and str(other.resolve()) in err
    assert "config_sha256" in err and "--force" in err and not list((tmp_path / "wav").glob("*.wav"))

    rc = main(["detokenize", str(codes_dir), "-o", str(tmp_path / "wav"), "-m", str(other), "--force"])
    assert rc == 0 and "warning:" in capsys.readouterr().err
    assert len(list((tmp_path / "wav").glob("*.wav"))) == 3

    # The recorded model changed on disk since the codes were made: refused without --model too.
    Codec(get_config("mimi-tiny").replace(name="retrained")).save_pretrained(tmp_path / "moved")
    info["model"] = str(tmp_path / "moved")
    (codes_dir / "tokenizer.json").write_text(json.dumps(info))
    assert main(["detokenize", str(codes_dir), "-o", str(tmp_path / "wav2")]) == 2
    assert "config_sha256" in capsys.readouterr().err


def test_bad_manifest_lines_are_named(model_dir, audio_dir, tmp_path, capsys):
    codes_dir = tmp_path / "codes"
    assert main(["tokenize", str(audio_dir), "-o", str(codes_dir), "-m", str(model_dir)]) == 0
    manifest = codes_dir / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    row = json.loads(lines[2])
    del row["codes"]
    manifest.write_text("\n".join([lines[0], '{"id": "b", "codes": ', json.dumps(row)]) + "\n")
    capsys.readouterr()
    rc = main(["detokenize", str(codes_dir), "-o", str(tmp_path / "wav")])
    err = capsys.readouterr().err
    assert rc == 1
    assert f"{manifest}:2" in err and "line 2 is not valid JSON" in err
    assert f"{manifest}:3" in err and f"row {row['id']!r} has no 'codes' entry" in err
    assert [p.name for p in (tmp_path / "wav").glob("*.wav")] == ["a.wav"]


# ---- 6. atomic outputs, bad -o ------------------------------------------------------------------------
def test_failed_codes_write_leaves_no_partial_file(model_dir, audio_dir, tmp_path, capsys, monkeypatch):
    real_save, calls = np.save, []

    def disk_full_on_second_file(file, array, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            file.write(b"\x93NUMPY partial")
            raise OSError(28, "No space left on device")
        return real_save(file, array, *args, **kwargs)

    monkeypatch.setattr(np, "save", disk_full_on_second_file)
    out = tmp_path / "codes"
    rc = main(["tokenize", str(audio_dir), "-o", str(out), "-m", str(model_dir)])
    err = capsys.readouterr().err
    assert rc == 1 and "No space left on device" in err and str(out / "b.npy") in err
    assert "tokenized 2 of 3 inputs" in err and "1 failed" in err
    assert sorted(p.name for p in out.glob("*.npy")) == ["a.npy", "c.npy"]
    assert not leftovers(out)
    assert [json.loads(line)["id"] for line in (out / "manifest.jsonl").read_text().splitlines()] == ["a", "c"]
    assert np.load(out / "c.npy").shape[0] == 8


def test_failed_wav_write_leaves_no_partial_file(model_dir, audio_dir, tmp_path, capsys, monkeypatch):
    from audiotok.data import audio_io

    codes_dir, wav_dir = tmp_path / "codes", tmp_path / "wav"
    assert main(["tokenize", str(audio_dir), "-o", str(codes_dir), "-m", str(model_dir)]) == 0
    real_save = audio_io.save_audio

    def fails_for_b(path, wav, sample_rate):
        if path.name.startswith(".b"):
            path.write_bytes(b"RIFF partial")
            raise OSError(28, "No space left on device")
        return real_save(path, wav, sample_rate)

    monkeypatch.setattr(audio_io, "save_audio", fails_for_b)
    capsys.readouterr()
    rc = main(["detokenize", str(codes_dir), "-o", str(wav_dir)])
    err = capsys.readouterr().err
    assert rc == 1 and str(wav_dir / "b.wav") in err and "decoded 2 of 3 inputs" in err
    assert sorted(p.name for p in wav_dir.glob("*.wav")) == ["a.wav", "c.wav"] and not leftovers(wav_dir)
    assert sf.info(str(wav_dir / "c.wav")).frames == 6000


@pytest.mark.parametrize("command", ["tokenize", "detokenize"])
def test_output_that_is_a_file(model_dir, audio_dir, tmp_path, capsys, command):
    target = tmp_path / "out.npy"
    target.write_bytes(b"keep me")
    rc = main([command, str(audio_dir), "-o", str(target), "-m", str(model_dir)])
    err = capsys.readouterr().err
    assert rc == 2 and f"-o {target} is an existing file, not a folder" in err
    assert target.read_bytes() == b"keep me"


def test_read_only_output_folder_fails_before_the_model_loads(model_dir, audio_dir, tmp_path, capsys,
                                                              monkeypatch):
    out = tmp_path / "readonly"
    out.mkdir()
    out.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: make the folder refuse like a read-only one
        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")
        monkeypatch.setattr(outputs.tempfile, "mkstemp", refuse)

    def must_not_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(cli_tokenize, "load_tokenizer", must_not_load)
    try:
        rc = main(["tokenize", str(audio_dir), "-o", str(out), "-m", str(model_dir)])
    finally:
        out.chmod(0o755)
    err = capsys.readouterr().err
    assert rc == 2 and f"the output folder {out} is not writable (Permission denied)" in err


# ---- 7. two runs into one folder ------------------------------------------------------------------------
def test_second_concurrent_run_into_the_same_folder_fails(model_dir, audio_dir, tmp_path, capsys):
    pytest.importorskip("fcntl")
    out = tmp_path / "codes"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, sys\n"
         f"f = open({str(out / '.audiotok.lock')!r}, 'a+')\n"
         "fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
         "f.write('process 4242, audiotok tokenize'); f.flush()\n"
         "print('locked', flush=True)\n"
         "sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        rc = main(["tokenize", str(audio_dir), "-o", str(out), "-m", str(model_dir)])
        err = capsys.readouterr().err
        assert rc == 2 and f"another audiotok run is writing into {out}" in err
        assert "process 4242" in err and ".audiotok.lock" in err and not list(out.glob("*.npy"))
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert main(["tokenize", str(audio_dir), "-o", str(out), "-m", str(model_dir)]) == 0  # lock released


def test_temporary_files_of_a_killed_run_are_removed_by_the_next(model_dir, audio_dir, tmp_path, capsys):
    out = tmp_path / "codes"
    (out / "spk").mkdir(parents=True)
    stale = [out / f".a{outputs.TEMP_MARK}4242.npy", out / "spk" / f".b{outputs.TEMP_MARK}4242.npz"]
    for path in stale:
        path.write_bytes(b"\x93NUMPY half")
    (out / ".keep-me").write_text("not ours")
    assert main(["tokenize", str(audio_dir), "-o", str(out), "-m", str(model_dir)]) == 0
    assert not any(path.exists() for path in stale) and not leftovers(out)
    assert (out / ".keep-me").exists() and len(list(out.glob("*.npy"))) == 3
