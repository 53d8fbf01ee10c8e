"""`audiotok bench speed`: both sides of each pair run at identical weights and the rows are written."""
import argparse
import json

import pytest
import torch

from audiotok.benchmarks import speed

pytestmark = pytest.mark.usefixtures("one_thread")


def test_encodec_pairs_load_the_references_weights(tmp_path):
    """Each EnCodec reference and audiotok (loaded from the reference's own file) give the same codes
    and audio: the timing compares the same computation, not two models."""
    pairs = speed.pairs("encodec", tmp_path)
    found = [pair for pair in pairs if not isinstance(pair, str)]
    if not found:
        pytest.skip(f"no EnCodec reference installed: {pairs}")
    wav = 0.1 * torch.randn(1, 1, 24000 // 4, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        for ours, reference, sr in found:
            assert sr == 24000
            codes, reference_codes = ours.encode(wav), reference.encode(wav)
            assert codes.shape == reference_codes.shape == (1, speed.ENCODEC_N_Q, 19), reference.name
            assert torch.equal(codes, reference_codes), reference.name
            assert torch.unique(codes[0, 0]).numel() > 3  # codes vary: equality is not vacuous
            audio, reference_audio = ours.decode(codes), reference.decode(codes)
            assert (audio - reference_audio).abs().max() < 1e-4, reference.name


def test_run_writes_one_row_per_reference_and_thread_count(tmp_path):
    out = tmp_path / "speed.json"
    args = argparse.Namespace(families=["encodec"], threads=[1], seconds=0.25, repeats=1, clock="cpu",
                              out=str(out))
    assert speed.run(args) == 0
    rows = json.loads(out.read_text())["rows"]
    timed = [row for row in rows if row["threads"] is not None]
    assert len(rows) == 2  # one per reference: timed, or the reason it is missing
    for row in timed:
        assert row["reference"] in {"encodec 0.1.1", "transformers EncodecModel"}
        assert row["audiotok encode"] > 0 and row["reference decode"] > 0
        assert row["encode speed-up"] == pytest.approx(row["reference encode"] / row["audiotok encode"])
