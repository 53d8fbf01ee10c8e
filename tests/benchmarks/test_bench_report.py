"""End to end: the identity tokenizer reproduces the originals' ASR and speaker scores, and
``audiotok bench`` writes a JSON, Markdown and HTML report that parse."""
import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("pocketsphinx")
pytest.importorskip("resemblyzer")


@pytest.fixture(scope="module")
def small_manifest(tmp_path_factory) -> Path:
    """Six flite utterances of two voices (pocketsphinx can transcribe flite): 2 train + 1 test each."""
    from audiotok.data.corpus import ensure_corpus
    from audiotok.data.sources import read_manifest

    try:
        corpus = ensure_corpus("tiny")
    except Exception as err:  # noqa: BLE001 - no speech engine: nothing to test on
        pytest.skip(f"built-in corpus unavailable: {err}")
    items = [i for i in read_manifest(corpus / "manifest.jsonl") if i.speaker in ("flite-awb", "flite-slt")]
    rows = []
    for speaker in ("flite-awb", "flite-slt"):
        mine = sorted((i for i in items if i.speaker == speaker), key=lambda i: i.id)[:3]
        for k, item in enumerate(mine):
            rows.append({"path": str(item.path), "text": item.text, "speaker": speaker,
                         "split": "test" if k == 2 else "train", "id": item.id})
    folder = tmp_path_factory.mktemp("bench_data")
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder / "manifest.jsonl"


@pytest.fixture(scope="module")
def report_dir(small_manifest, tmp_path_factory) -> Path:
    from audiotok.cli import main

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("bench_out")
    argv = ["bench", "-t", "identity", "-t", "mimi-tiny", "--data", str(small_manifest), "--out", str(out),
            "--probe-codebooks", "all;0", "--probe-size", "tiny", "--probe-steps", "5", "--examples", "1"]
    assert main(argv) == 0
    return out


def test_identity_tokenizer_reproduces_the_originals(report_dir):
    report = json.loads((report_dir / "report.json").read_text())
    rows = {(r["tokenizer"], r["codebooks"]): r for r in report["rows"]}
    truth, identity = rows[("ground truth", "-")], rows[("identity", "all")]
    assert truth["wer"] < 0.5  # flite voices are intelligible to pocketsphinx
    assert identity["wer"] == truth["wer"]
    assert identity["speaker_sim"] > 0.99
    assert identity["mel_distance"] == 0.0 and identity["stoi"] == pytest.approx(1.0, abs=1e-3)
    hyps = {r["id"]: r["hyp"] for r in report["items"] if r["tokenizer"] in ("ground truth", "identity")}
    assert len(hyps) == 2


def test_report_files_parse_and_hold_every_item(report_dir):
    report = json.loads((report_dir / "report.json").read_text())
    assert report["backends"]["asr"].startswith("pocketsphinx")
    assert report["backends"]["speaker"].startswith("resemblyzer")
    mimi = [r for r in report["items"] if r["tokenizer"] == "mimi-tiny"]
    assert {r["codebooks"] for r in mimi} == {"first 1", "all"} and len(mimi) == 4
    for record in mimi:  # every metric is a number or a missing reason, never both, never absent
        for metric in ("mel_distance", "si_sdr", "pesq_wb", "stoi", "speaker_sim", "wer"):
            assert (metric in record["scores"]) != (metric in record["missing"]), metric
    probes = {p["codebooks"] for p in report["probes"] if p["tokenizer"] == "mimi-tiny"}
    assert probes == {"all", "0"}
    assert report["usage"]["mimi-tiny"] and len(report["usage"]["mimi-tiny"]) == 8
    summary = (report_dir / "summary.md").read_text()
    assert "| tokenizer | codebooks |" in summary and "pocketsphinx" in summary
    page = (report_dir / "report.html").read_text()
    assert "<table>" in page and page.count("<img") >= 3 and "data:audio/wav;base64," in page
    assert (report_dir / "cache").is_dir()


def test_second_run_reads_the_cache(report_dir, small_manifest):
    from audiotok.benchmarks.protocol import load_tokenizer
    from audiotok.benchmarks.resynthesis import Resynthesizer
    from audiotok.data.sources import read_manifest

    resynth = Resynthesizer("mimi-tiny", load_tokenizer("mimi-tiny"), report_dir / "cache")
    item = read_manifest(small_manifest, split="test")[0]
    cached = resynth.folder / "nq8" / f"{item.id}.wav"
    assert cached.is_file()
    assert resynth.audio(item, 8).shape[-1] > 0 and resynth.timing["encode"]["audio_seconds"] > 0


def test_missing_sub_benchmark_says_so(capsys):
    from audiotok.cli.bench import SUB_BENCHMARKS, run_sub_benchmark

    SUB_BENCHMARKS["nothing"] = ("audiotok.benchmarks.does_not_exist", "test")
    try:
        assert run_sub_benchmark("nothing", []) == 2
    finally:
        del SUB_BENCHMARKS["nothing"]
    assert "not available" in capsys.readouterr().err
