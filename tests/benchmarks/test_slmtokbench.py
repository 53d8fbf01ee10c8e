"""The SLMTokBench triple in one command: HuBERT units, EnCodec and SpeechTokenizer (tiny, random
weights) through ``audiotok bench``: text-alignment probes on all three, resynthesis where a decoder
exists, and the units' resynthesis reported missing with the reason (never a number)."""
import json

import pytest
import torch

from audiotok.cli import main


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from audiotok.data.corpus import ensure_corpus
    from audiotok.data.sources import read_manifest

    try:
        corpus = ensure_corpus("tiny")
    except Exception as err:  # noqa: BLE001 - no speech engine: nothing to test on
        pytest.skip(f"built-in corpus unavailable: {err}")
    items = sorted(read_manifest(corpus / "manifest.jsonl"), key=lambda i: i.id)
    chosen = [i for i in items if i.split == "train"][:4] + [i for i in items if i.split == "test"][:2]
    folder = tmp_path_factory.mktemp("slmtokbench")
    (folder / "manifest.jsonl").write_text("".join(
        json.dumps({"path": str(i.path), "text": i.text, "speaker": i.speaker, "split": i.split, "id": i.id}) + "\n"
        for i in chosen))
    torch.set_num_threads(1)
    argv = ["bench", "-t", "hubert-units-tiny", "-t", "encodec-tiny", "-t", "speechtokenizer-tiny",
            "--data", str(folder / "manifest.jsonl"), "--out", str(folder / "out"), "--asr", "none",
            "--speaker", "none", "--probe-codebooks", "0;0-7", "--resynth-codebooks", "1;8",
            "--probe-size", "tiny", "--probe-steps", "3", "--examples", "0"]
    assert main(argv) == 0
    return json.loads((folder / "out" / "report.json").read_text()), (folder / "out" / "summary.md").read_text()


def test_probes_run_on_all_three(report):
    data, _ = report
    probes = {(p["tokenizer"], p["codebooks"]): p for p in data["probes"]}
    assert set(probes) == {("hubert-units-tiny", "all"), ("encodec-tiny", "0"), ("encodec-tiny", "all"),
                           ("speechtokenizer-tiny", "0"), ("speechtokenizer-tiny", "all")}
    for row in probes.values():
        assert 0.0 <= row["probe_cer"] and row["mi"] is not None


def test_units_resynthesis_is_missing_with_the_reason_codecs_are_scored(report):
    data, summary = report
    rows = {(r["tokenizer"], r["codebooks"]): r for r in data["rows"]}
    units = rows[("hubert-units-tiny", "all")]
    assert units["mel_distance"] is None and units["mel_distance_missing"] == 2
    assert units["bitrate"] == pytest.approx(300)  # 50 Hz x log2(64) bits
    reasons = {item["missing"].get("stoi") for item in data["items"] if item["tokenizer"] == "hubert-units-tiny"}
    assert reasons == {"no unit vocoder configured: units cannot be resynthesised"}
    assert "no unit vocoder configured" in summary
    for name in ("encodec-tiny", "speechtokenizer-tiny"):
        for label in ("first 1", "all"):
            assert isinstance(rows[(name, label)]["mel_distance"], float)
    assert rows[("encodec-tiny", "all")]["bitrate"] == pytest.approx(4800)  # tiny: 8 x 256 codes at 75 Hz
