"""Bad input and faults (issue 15) in the benchmarks: a metric that fails is missing, with its reason,
never a number — pystoi's 1e-5 placeholder, PESQ error codes, NaN, exceptions, speaker similarity on
audio without speech — it is left out of the means, and the report shows it as missing with the reason."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf

from audiotok.benchmarks import codec_metrics as cm
from audiotok.benchmarks.quality import BenchConfig, _record, _summary_row, run_quality_benchmark
from audiotok.benchmarks.report import markdown, write_report
from audiotok.benchmarks.scores import Missing, NoSpeech, measure, summarize
from audiotok.data.sources import AudioItem

RATE = cm.METRIC_RATE


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Harmonic bursts with pauses at 16 kHz: passes pystoi's silence removal like speech does."""
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(seed)
    voice = sum(np.sin(2 * np.pi * f0 * k * t) / k for f0 in (140.0,) for k in range(1, 8))
    envelope = (np.sin(2 * np.pi * 3 * t) > -0.3).astype(float)
    return (0.1 * voice * envelope + 0.002 * rng.standard_normal(t.size)).astype(np.float32)


def tone(seconds: float) -> np.ndarray:
    """A steady 200 Hz hum, which resemblyzer's detector (webrtcvad, mode 3) does not take for speech."""
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)


# ---- signal metrics --------------------------------------------------------------------------------------
def test_stoi_on_a_short_clip_is_missing_not_1e5():
    short = speechlike(0.2)
    with pytest.raises(cm.MetricUndefined, match="too short for STOI"):
        cm.stoi_score(short, short)
    scores = cm.codec_metrics(short, short)
    assert isinstance(scores["stoi"], Missing)
    assert scores["stoi"].reason.startswith("too short for STOI: under 30 frames (384 ms)")
    assert "1e-05" in scores["stoi"].reason  # names the placeholder it refused
    long = speechlike(2.0)
    assert cm.codec_metrics(long, long)["stoi"] == pytest.approx(1.0, abs=1e-3)


def test_pesq_error_code_is_missing(monkeypatch):
    import pesq

    monkeypatch.setattr(pesq, "pesq", lambda *args, **kwargs: -1.0)  # PesqError.RETURN_VALUES style
    clip = speechlike(1.0)
    score = cm.codec_metrics(clip, clip)["pesq_wb"]
    assert isinstance(score, Missing) and "outside its scale" in score.reason and "error code" in score.reason


@pytest.mark.parametrize("result, reason", [
    (lambda: math.nan, "non-finite value nan"),
    (lambda: math.inf, "non-finite value inf"),
    (lambda: 1 / 0, "ZeroDivisionError: division by zero"),
    (lambda: None, "TypeError"),
    (lambda: np.float32("nan"), "non-finite value nan"),
], ids=["nan", "inf", "exception", "none", "numpy-nan"])
def test_any_backend_failure_is_missing_with_a_reason(result, reason):
    score = measure(result)
    assert isinstance(score, Missing) and score.reason.startswith(reason)


def test_silent_resynthesis_has_no_si_sdr():
    score = cm.codec_metrics(speechlike(1.0), np.zeros(RATE, np.float32))["si_sdr"]
    assert isinstance(score, Missing) and score.reason == "silent resynthesis: SI-SDR is undefined (0/0)"


def test_means_leave_missing_and_nan_out():
    summary = summarize([0.5, Missing("too short"), math.nan, None, 0.7])
    assert summary.mean == pytest.approx(0.6) and (summary.count, summary.missing) == (2, 3)
    items = [AudioItem(f"{k}.wav", str(k), split="test") for k in range(3)]
    records = [_record("t", "all", items[0], {"stoi": 0.9}, None),
               _record("t", "all", items[1], {"stoi": Missing("too short for STOI: ...")}, None),
               _record("t", "all", items[2], {"stoi": 0.7}, None)]
    row = _summary_row("t", "all", {}, records)
    assert row["stoi"] == pytest.approx(0.8) and row["stoi_missing"] == 1


# ---- speaker similarity on non-speech --------------------------------------------------------------------
@pytest.fixture(scope="module")
def encoder():
    pytest.importorskip("resemblyzer")
    from audiotok.benchmarks.speaker import ResemblyzerEncoder

    return ResemblyzerEncoder()


@pytest.mark.parametrize("audio", [np.zeros(RATE, np.float32), tone(1.0), speechlike(0.05)],
                         ids=["silence", "tone", "too-short"])
def test_reference_without_speech_is_no_speech(encoder, audio):
    with pytest.raises(NoSpeech, match=r"^no speech: the voice activity detector found 0\.\d\d s"):
        encoder.embed(audio)


def test_resynthesis_without_speech_still_scores(encoder):
    """A codec that destroys the voice gets a (low) score; it does not drop out of the mean."""
    from audiotok.benchmarks.speaker import cosine

    reference = encoder.embed(speechlike(2.0))
    for destroyed in (np.zeros(2 * RATE, np.float32), tone(2.0)):
        similarity = cosine(reference, encoder.embed(destroyed, require_speech=False))
        assert math.isfinite(similarity) and similarity < 0.99


# ---- end to end: the report shows what is missing and why ---------------------------------------------------
@pytest.fixture(scope="module")
def short_clips(tmp_path_factory):
    pytest.importorskip("resemblyzer")
    folder = tmp_path_factory.mktemp("clips")
    clips = {"long": speechlike(2.0, 1), "short": speechlike(0.25, 2), "tone": tone(1.0)}
    items = []
    for name, audio in clips.items():
        sf.write(folder / f"{name}.wav", audio, RATE)
        items.append(AudioItem(folder / f"{name}.wav", name, split="test"))
    return items


@pytest.fixture(scope="module")
def bench_report(short_clips, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    config = BenchConfig(asr=None, speaker="resemblyzer", probe_codebooks=None, resynth_codebooks="all")
    report = run_quality_benchmark(["identity"], short_clips, out, config, source="three clips")
    return report, write_report(report, out, examples=0)


def test_failed_metrics_are_missing_in_the_report_items(bench_report):
    report, _ = bench_report
    items = {(r["tokenizer"], r["id"]): r for r in report["items"]}
    short, tone_item = items[("identity", "short")], items[("identity", "tone")]
    assert "stoi" not in short["scores"] and short["missing"]["stoi"].startswith("too short for STOI")
    assert "speaker_sim" not in tone_item["scores"]
    assert tone_item["missing"]["speaker_sim"].startswith("no speech")
    assert items[("ground truth", "tone")]["missing"]["speaker_sim"].startswith("no speech")
    row = next(r for r in report["rows"] if r["tokenizer"] == "identity")
    present = [items[("identity", i)]["scores"]["stoi"] for i in ("long", "short", "tone")
               if "stoi" in items[("identity", i)]["scores"]]
    assert row["stoi"] == pytest.approx(np.mean(present)) and row["stoi_missing"] == 3 - len(present)
    assert row["speaker_sim"] == pytest.approx(np.mean(
        [items[("identity", i)]["scores"]["speaker_sim"] for i in ("long", "short")]))
    assert row["speaker_sim_missing"] == 1


def test_report_files_show_missing_with_the_reason(bench_report):
    _, paths = bench_report
    summary = paths["markdown"].read_text()
    assert "## Missing scores" in summary
    assert "too short for STOI" in summary and "no speech" in summary
    page = paths["html"].read_text()
    assert "too short for STOI" in page and "no speech" in page
    text = paths["json"].read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in report.json"))


def test_a_metric_missing_everywhere_says_missing_not_a_dash():
    report = {
        "source": "x", "test_items": 2, "train_items": 0, "metric_rate": RATE,
        "backends": {"asr": None, "speaker": None}, "machine": {"cpu": "cpu", "torch_threads": 1},
        "config": {"probe": {"size": "tiny", "steps": 1}}, "usage": {},
        "rows": [{"tokenizer": "t", "codebooks": "all", "stoi": None, "stoi_missing": 2, "pesq_wb": math.nan}],
        "probes": [{"tokenizer": "t", "codebooks": "all", "probe_cer": None,
                    "text_probe_missing": "no transcripts in the training split"}],
        "items": [{"tokenizer": "t", "codebooks": "all", "missing": {"stoi": "too short for STOI: a"}},
                  {"tokenizer": "t", "codebooks": "all", "missing": {"stoi": "too short for STOI: b"}}],
    }
    text = markdown(report)
    table_row = next(line for line in text.splitlines() if line.startswith("| t | all |"))
    cells = [c.strip() for c in table_row.strip("|").split("|")]
    assert "missing (2)" in cells and "nan" not in table_row.lower()
    assert "| t | all | stoi | 1 | too short for STOI: a |" in text  # each distinct reason, counted
    assert "| t | all | stoi | 1 | too short for STOI: b |" in text
    assert "| t | all | text probe | all | no transcripts in the training split |" in text


# ---- the benchmark's cache: never a truncated file read as a result ------------------------------------------
def test_damaged_cache_files_are_recomputed(short_clips, tmp_path):
    from audiotok.benchmarks.protocol import load_tokenizer
    from audiotok.benchmarks.resynthesis import Resynthesizer

    tok = load_tokenizer("mimi-tiny-trained")
    item, n_q = short_clips[0], tok.num_codebooks
    first = Resynthesizer("mimi-tiny-trained", tok, tmp_path / "cache")
    fresh = first.audio(item, n_q)
    wav = first.folder / f"nq{n_q}" / f"{item.id}.wav"
    wav.write_bytes(wav.read_bytes()[: wav.stat().st_size // 2])  # what a killed older run left
    (first.folder / "codes.pt").write_bytes(b"PK\x03\x04 cut")
    with pytest.warns(RuntimeWarning, match=r"codes\.pt does not read back"):
        second = Resynthesizer("mimi-tiny-trained", tok, tmp_path / "cache")
    with pytest.warns(RuntimeWarning, match=r"does not read back .*truncated"):
        again = second.audio(item, n_q)
    np.testing.assert_array_equal(again, fresh)
    assert sf.info(str(wav)).frames == fresh.shape[0]
    assert not [p.name for p in (tmp_path / "cache").rglob("*") if ".tmp-" in p.name]


def test_full_disk_while_writing_the_report_leaves_the_old_one(bench_report, tmp_path, monkeypatch):
    import pathlib

    report, paths = bench_report
    out = paths["json"].parent
    before = {name: p.read_bytes() for name, p in paths.items()}
    real = pathlib.Path.write_text

    def full(self, text, *args, **kwargs):
        if self.suffix == ".md":
            real(self, text[:10], *args, **kwargs)
            raise OSError(28, "No space left on device")
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", full)
    with pytest.raises(OSError, match="No space left"):
        write_report(report, out, examples=0)
    assert paths["markdown"].read_bytes() == before["markdown"]  # the previous summary, whole
    assert not [p.name for p in out.iterdir() if ".tmp-" in p.name]


def test_bench_bad_data_or_tokenizer_is_one_error_line(short_clips, tmp_path, capsys):
    from audiotok.cli import main

    rc = main(["bench", "-t", "identity", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and "--data" in err and "no such folder or manifest" in err
    data = short_clips[0].path.parent
    rc = main(["bench", "-t", "identity", "-t", str(tmp_path / "no-model"), "--data", str(data),
               "--out", str(tmp_path / "out"), "--asr", "none", "--speaker", "none", "--probe-codebooks", "none"])
    err = capsys.readouterr().err
    assert rc == 2 and f"error: cannot load the tokenizer {tmp_path / 'no-model'}" in err
