"""The weight-read floor of `audiotok bench streaming`: which weights one streamed frame reads."""
import torch

from audiotok.benchmarks.streaming import floor_row, randomize_for_streaming, weights_read_per_frame
from audiotok.codecs import build_codec


def _names(codec, tensors):
    ids = {t.untyped_storage().data_ptr() for t in tensors}
    return {n for n, t in [*codec.named_parameters(), *codec.named_buffers()]
            if t.untyped_storage().data_ptr() in ids}


def test_floor_counts_the_weights_a_frame_reads_and_only_those():
    codec = randomize_for_streaming(build_codec("mimi-tiny"), seconds=1.0)
    read_2 = _names(codec, weights_read_per_frame(codec, 2))
    read_8 = _names(codec, weights_read_per_frame(codec, 8))
    every_conv_and_transformer = {n for n, p in codec.named_parameters() if not n.startswith("quantizer")}
    assert every_conv_and_transformer <= read_2
    searched = {n for n in read_8 if n.endswith("codebook.embed")}
    assert len(searched) == 8 and len({n for n in read_2 if n.endswith("codebook.embed")}) == 2
    assert not any("embed_avg" in n or "cluster_size" in n for n in read_8)  # training statistics


def test_floor_row_times_the_reads():
    weights = [torch.randn(256, 256) for _ in range(4)]
    row = floor_row(weights, threads=1, n_q=8, ours_median_ms=10.0, repeats=3)
    assert row["impl"] == "floor: read 1 MB of weights"
    assert row["median ms"] > 0 and row["audiotok speed-up"] == row["median ms"] / 10.0
