"""Streaming equals offline on tiny causal codecs (random weights with spread codebooks).

``mimi-tiny`` has a 16-step (8-frame, 0.64 s) transformer context, so 30 s of audio (375 frames,
750 transformer steps) runs far past it: the regime where moshi's ring cache drifts. Codes are
compared on all codebook levels; decoded audio within 1e-5 max abs. The full-size check lives in
``test_streaming_full.py``.
"""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from audiotok.benchmarks.streaming import randomize_for_streaming
from audiotok.codecs import build_codec
from audiotok.tokenizers.streaming import Stream, stream_decode, stream_encode

SR = 24000
HOP = 1920


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    codec = randomize_for_streaming(build_codec("mimi-tiny").fold_weight_norm())
    assert all(m.is_initialized for m in codec.modules() if hasattr(m, "is_initialized"))
    return codec


@pytest.fixture(scope="module")
def long_audio():
    return 0.3 * torch.randn(1, 1, 30 * SR, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def offline(tiny, long_audio):
    torch.set_num_threads(1)
    with torch.no_grad():
        codes = tiny.encode(long_audio, n_q=tiny.max_codebooks)
        return codes, tiny.decode(codes)


def test_codes_have_spread(offline):
    codes, _ = offline
    for level in codes[0]:
        assert level.unique().numel() > 8  # not one code per level: mismatches would show


@pytest.mark.parametrize("chunk_frames", [1, 2, 3])
def test_stream_equals_offline_past_context(tiny, long_audio, offline, chunk_frames):
    """30 s in chunks of 1, 2, 3 frames (2, 4, 6 transformer steps per call), context 16 steps."""
    codes, audio = offline
    streamed = stream_encode(tiny, long_audio, chunk_frames, n_q=tiny.max_codebooks)
    assert torch.equal(streamed, codes)
    decoded = stream_decode(tiny, codes, chunk_frames)
    assert decoded.shape == audio.shape
    assert (decoded - audio).abs().max() < 1e-5


def test_partial_last_frame_padded_like_offline(tiny):
    wav = 0.3 * torch.randn(1, 1, 5 * HOP + 100)
    with torch.no_grad():
        codes = tiny.encode(wav)
    assert codes.shape[-1] == 6
    assert torch.equal(stream_encode(tiny, wav, 2), codes)


def test_mixed_batch_streams_start_at_different_times(tiny):
    """Two streams; the second starts 5 frames later (slot reset then) and each equals its own offline
    run. One frame per call, 60 frames: past the 8-frame context for both."""
    gen = torch.Generator().manual_seed(2)
    frames, late = 60, 5
    a = 0.3 * torch.randn(1, 1, frames * HOP, generator=gen)
    b = 0.3 * torch.randn(1, 1, (frames - late) * HOP, generator=gen)
    n_q = tiny.max_codebooks
    with torch.no_grad():
        codes_a, codes_b = tiny.encode(a, n_q), tiny.encode(b, n_q)
        audio_a, audio_b = tiny.decode(codes_a), tiny.decode(codes_b)

    # Slot 1 carries unrelated audio (another caller) until it is reset at frame `late`.
    other = 0.3 * torch.randn(1, 1, late * HOP, generator=gen)
    b_in = torch.cat([other, b], dim=-1)
    b_codes_in = torch.cat([codes_b[..., :late].flip(-1), codes_b], dim=-1)
    got_codes, got_audio = [], []
    with Stream(tiny, batch_size=2, n_q=n_q) as stream:
        for f in range(frames):
            if f == late:
                stream.reset(torch.tensor([False, True]))
            got_codes.append(stream.encode_step(torch.cat([a, b_in])[..., f * HOP:(f + 1) * HOP]))
            got_audio.append(stream.decode_step(torch.cat([codes_a, b_codes_in])[..., f:f + 1]))
    got_codes, got_audio = torch.cat(got_codes, -1), torch.cat(got_audio, -1)
    assert torch.equal(got_codes[:1], codes_a)
    assert torch.equal(got_codes[1:, :, late:], codes_b)
    assert (got_audio[:1] - audio_a).abs().max() < 1e-5
    assert (got_audio[1:, :, late * HOP:] - audio_b).abs().max() < 1e-5


def test_reset_all_restarts_from_scratch(tiny):
    wav = 0.3 * torch.randn(1, 1, 12 * HOP)
    with torch.no_grad():
        expected = tiny.encode(wav[..., 4 * HOP:])
    with Stream(tiny) as stream:
        stream.encode_step(wav[..., :4 * HOP])
        stream.reset()
        got = torch.cat([stream.encode_step(wav[..., i * HOP:(i + 1) * HOP]) for i in range(4, 12)], -1)
    assert torch.equal(got, expected)


def test_single_codebook_mix_streams_exactly():
    torch.manual_seed(0)
    codec = randomize_for_streaming(build_codec("mimi-single-codebook-tiny").fold_weight_norm())
    wav = 0.3 * torch.randn(1, 1, 40 * HOP)
    with torch.no_grad():
        codes = codec.encode(wav)
        audio = codec.decode(codes)
    assert torch.equal(stream_encode(codec, wav, 1), codes)
    assert (stream_decode(codec, codes, 3) - audio).abs().max() < 1e-5


@pytest.mark.parametrize("name", ["speechtokenizer-tiny", "wavtokenizer-tiny"])
def test_non_causal_codecs_refuse_to_stream(name):
    codec = build_codec(name)
    with pytest.raises(RuntimeError, match="not causal"):
        Stream(codec)
    with pytest.raises(RuntimeError, match="not causal"):
        stream_encode(codec, torch.zeros(1, 1, 16000), 1)


def test_stream_errors_are_clear(tiny):
    with pytest.raises(ValueError, match="chunk_frames"):
        stream_encode(tiny, torch.zeros(1, 1, HOP), 0)
    stream = Stream(tiny, batch_size=2)
    try:
        with pytest.raises(ValueError, match="whole frames"):
            stream.encode_step(torch.zeros(2, 1, HOP + 1))
        with pytest.raises(ValueError, match=r"\[2, 1"):
            stream.encode_step(torch.zeros(1, 1, HOP))
        with pytest.raises(RuntimeError, match="already has an open stream"):
            Stream(tiny)
    finally:
        stream.close()
    with pytest.raises(RuntimeError, match="closed"):
        stream.encode_step(torch.zeros(2, 1, HOP))
    assert not tiny.is_streaming


def test_cli_stream_writes_audio(tmp_path, capsys):
    from audiotok.cli import main

    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, (0.3 * np.random.default_rng(0).standard_normal(16000)).astype("float32"), 16000)
    assert main(["stream", str(src), str(dst), "--codec", "mimi-tiny", "--chunk-frames", "2",
                 "--threads", "1"]) == 0
    out, rate = sf.read(dst)
    assert rate == SR and out.shape == (SR,)
    printed = capsys.readouterr().out
    assert "encode+decode" in printed and "RTF" in printed


def test_bench_helpers_on_tiny():
    """The benchmark's latency and drift measurements run and find no drift in ours (tiny, 3 s)."""
    from audiotok.benchmarks.streaming import drift, latency_row, ours

    impl = ours(n_q=8, codec_name="mimi-tiny")
    wav = 0.3 * torch.randn(1, 1, 40 * HOP)
    row = latency_row(impl, wav[..., :8 * HOP], threads=1)
    assert row["frames"] == 5 and row["RTF"] > 0
    batched = latency_row(impl, torch.cat([wav, -wav])[..., :8 * HOP], threads=1)  # two streams together
    assert batched["streams"] == 2 and batched["frames"] == 5
    found = drift(impl, wav, context_seconds=1.0)
    assert found["codes ≠ before 1 s"] == found["codes ≠ after 1 s"] == 0
    assert found["max |Δaudio| after 1 s"] < 1e-5


def test_bench_runs_our_codec_in_bfloat16():
    """``bench streaming --dtype bfloat16``: float32 audio goes in and comes out of a bfloat16 codec,
    offline and streaming, and the row is named by its precision."""
    from audiotok.benchmarks.streaming import drift, latency_row, ours

    impl = ours(n_q=8, codec_name="mimi-tiny", dtype=torch.bfloat16)
    assert impl.name == "audiotok bfloat16"
    assert next(impl.model.parameters()).dtype == torch.bfloat16
    wav = 0.3 * torch.randn(1, 1, 20 * HOP)
    assert impl.decode(impl.encode(wav)).dtype == torch.float32
    assert latency_row(impl, wav[..., :8 * HOP], threads=1)["frames"] == 5
    found = drift(impl, wav, context_seconds=1.0)
    assert found["max |Δaudio| after 1 s"] < 0.1  # bfloat16 rounding, not exactness


def test_streaming_avoids_slow_kernels_and_equals_the_plain_path(tiny):
    """Frame by frame, no conv takes PyTorch's slow paths (``slow_conv_transpose2d`` was 42 % of a
    full-size frame), and the fast path gives the codes and audio of plain torch kernels."""
    from torch.profiler import profile

    from audiotok.codecs.modules.conv import torch_kernels

    wav = 0.3 * torch.randn(1, 1, 6 * HOP, generator=torch.Generator().manual_seed(5))
    n_q = tiny.max_codebooks
    with torch_kernels():
        plain_codes = stream_encode(tiny, wav, 1, n_q=n_q)
        plain_audio = stream_decode(tiny, plain_codes, 1)
    with profile() as prof:
        codes = stream_encode(tiny, wav, 1, n_q=n_q)
        audio = stream_decode(tiny, codes, 1)
    ops = {event.key for event in prof.key_averages()}
    assert not ops & {"aten::slow_conv_transpose2d", "aten::slow_conv_transpose3d"}, ops
    assert torch.equal(codes, plain_codes)
    assert (audio - plain_audio).abs().max() < 1e-5


def test_a_step_checks_codes_once_and_the_codec_reads_none(tiny, monkeypatch):
    """Validation at the boundary: the Stream checks each step's codes (their values too, on the CPU);
    the codec's streaming decode reads no code values, so a step on an accelerator never waits for it."""
    from audiotok.codecs import Codec

    calls, check = [], Codec.check_codes
    monkeypatch.setattr(Codec, "check_codes", lambda self, codes, values=True: calls.append(values) or check(
        self, codes, values))
    with Stream(tiny, 1) as stream:
        codes = stream.encode_step(torch.zeros(1, 1, HOP))
        assert stream.decode_step(codes).shape == (1, 1, HOP)
        assert calls == [True, False]  # the Stream read the values, the codec's step did not
        with pytest.raises(ValueError, match=r"codes must lie in \[0, "):
            stream.decode_step(torch.full_like(codes, tiny.codebook_size))
    with pytest.raises(ValueError, match=r"codes must lie in \[0, "):  # offline decode checks itself
        tiny.decode(torch.full_like(codes, -1))


def test_append_window_equals_cat_through_refills_resets_and_replaced_state():
    """The KV cache's preallocated window: every call returns ``cat([state, new])`` and leaves the last
    ``keep`` steps, bit for bit, across buffer refills (slack 2), an in-place masked reset, a state
    another caller replaced (the ONNX step graph does), and calls of varying length; its buffer stays
    near the size of the ``cat`` for long chunks."""
    from audiotok.codecs.modules.streaming import AppendWindow

    generator = torch.Generator().manual_seed(0)
    append, scratch = AppendWindow(slack=2), {}
    keep = 5
    state = {"k": torch.zeros(2, 3, keep, 4)}
    reference = state["k"].clone()
    for step, t in enumerate([1, 2, 2, 3, 1, 2, 4, 2, 2, 1, 3]):
        new = torch.randn(2, 3, t, 4, generator=generator)
        window = append(scratch, state, "k", new, dim=2, keep=keep)
        expected = torch.cat([reference, new], dim=2)
        assert torch.equal(window, expected), step
        reference = expected[:, :, -keep:]
        assert torch.equal(state["k"], reference), step
        if step == 4:  # reset stream 1 in place, as reset_streaming(mask) does
            state["k"][torch.tensor([False, True])] = 0
            reference = reference.clone()
            reference[1] = 0
        if step == 7:  # someone else put its own tensor there
            state["k"] = reference = torch.randn(2, 3, keep, 4, generator=generator)
    # a long chunk (the tokenizer streams long files in big chunks) gets no 'slack' times its size
    window = append(scratch, state, "k", torch.randn(2, 3, 500, 4, generator=generator), dim=2, keep=keep)
    assert window.shape[2] == keep + 500 and scratch["k"][0].shape[2] <= keep + 500
