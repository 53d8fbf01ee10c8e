"""Streaming benchmark: full-size Mimi, ours vs moshi's own streaming, in the same run.

For each number of codebooks and thread count, both implementations stream the same audio frame by
frame (80 ms, encode then decode, as a full-duplex model does), alternating frame by frame, and we
report per-frame latency (median / mean / p95 / max ms), the real-time factor RTF = median compute
time / 80 ms (< 1 keeps up with real time) and audiotok's speed-up (moshi's median over ours).

Exactness column: on ``--drift-seconds`` of audio (past Mimi's 10-s transformer context), each
implementation's frame-by-frame encode and decode is compared with its own offline pass; we report
code mismatches and the max absolute audio difference before and after 10 s. moshi's ring KV cache
holds ``context`` keys while two transformer steps go in per frame, so it drops a key the first step
still needs once the context is full; ours keeps ``context - 1`` past keys plus the fed steps.

Floor rows: the time to read once every weight a frame touches (recorded op by op during one frame;
table lookups count only as the rows they fetch, i.e. not at all), summed tensor by tensor at the same
thread count. At one or two rows per matmul a frame cannot beat this in float32 on this machine:
each weight comes from memory once per frame. Its "speed-up" is the floor over audiotok's median.

Weights are random (no hub downloads). So that codes and transformers matter, codebooks get random
centroids with real spread and LayerScale is raised to 0.5 in both.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass

import torch

MOSHI_INSTALL = ("pip install --no-deps -c .ci/constraints.txt moshi==0.2.13 && "
                 "pip install -c .ci/constraints.txt sentencepiece sphn")


# ---- random weights with real spread ---------------------------------------------------------------

def randomize_for_streaming(codec, seconds: float = 4.0, layer_scale: float = 0.5, jitter: float = 0.5,
                            seed: int = 0):
    """Make a randomly initialised codec's codes non-trivial (in place; returns it in eval mode): every
    LayerScale raised to ``layer_scale`` so the transformers change the latent, then the codebooks filled
    level by level around the frames each receives on noise, ``jitter`` times their spread apart
    (:mod:`audiotok.testing`). Used by the streaming tests and this benchmark."""
    from audiotok.testing import raise_layer_scale, spread_codebooks

    return spread_codebooks(raise_layer_scale(codec, layer_scale), seconds=seconds, noise=jitter, seed=seed)


def build_ours(n_q: int, codec_name: str = "mimi", dtype: torch.dtype = torch.float32):
    from audiotok.codecs import build_codec

    codec = randomize_for_streaming(build_codec(codec_name).fold_weight_norm())
    codec.set_num_codebooks(n_q)
    return codec.to(dtype)


def build_moshi(n_q: int, seconds: float = 4.0, layer_scale: float = 0.5, jitter: float = 0.5,
                seed: int = 0):
    """moshi's Mimi with random weights, LayerScale ``layer_scale`` and codebooks filled level by level
    as in :func:`randomize_for_streaming` (moshi's codebook state: ``embedding_sum``, usage 1)."""
    try:
        from moshi.models import loaders
    except ImportError as err:
        raise RuntimeError(f"moshi is not installed ({err}); install it with: {MOSHI_INSTALL}") from err
    from audiotok.testing import raise_layer_scale, spread_centers

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    mimi = loaders.get_mimi(None, device="cpu", num_codebooks=32).eval()  # every level is filled
    with torch.no_grad():
        raise_layer_scale(mimi, layer_scale)
        noise = 0.3 * torch.randn(1, 1, int(seconds * mimi.sample_rate), generator=generator)
        latent = mimi._encode_to_unquantized_latent(noise)
        codebooks = [m for m in mimi.quantizer.modules() if hasattr(m, "embedding_sum")]
        for codebook in codebooks:  # module order is level order
            seen, encode = [], codebook.encode
            codebook.encode = lambda x, encode=encode, seen=seen: (seen.append(x.reshape(-1, x.shape[-1])),
                                                                   encode(x))[1]
            try:
                mimi.quantizer.encode(latent)
            finally:
                del codebook.encode
            embed = spread_centers(seen[0].float(), codebook.embedding_sum.shape[0], jitter, generator)
            codebook.embedding_sum.copy_(embed)
            codebook.cluster_usage.fill_(1.0)
            codebook._initialized.fill_(1.0)
            codebook._embedding = None  # moshi caches embedding_sum / usage
    mimi.set_num_codebooks(n_q)
    return mimi


# ---- one interface over both implementations --------------------------------------------------------

@dataclass
class Implementation:
    """Offline and streaming entry points of one Mimi implementation (``[B, 1, T]`` / ``[B, Q, F]``)."""

    name: str
    encode: Callable[[torch.Tensor], torch.Tensor]
    decode: Callable[[torch.Tensor], torch.Tensor]
    streaming: Callable[[int], AbstractContextManager]  # opens a batch of streams
    encode_step: Callable[[torch.Tensor], torch.Tensor]
    decode_step: Callable[[torch.Tensor], torch.Tensor]
    frame_size: int = 1920
    sample_rate: int = 24000
    model: torch.nn.Module | None = None  # the module holding the weights (for the floor rows)


def ours(n_q: int, codec_name: str = "mimi", dtype: torch.dtype = torch.float32) -> Implementation:
    """audiotok's codec in ``dtype`` (float32 audio in and out; a half-precision codec casts it)."""
    from audiotok.tokenizers.streaming import Stream

    codec = build_ours(n_q, codec_name, dtype)
    holder: dict = {}

    @contextmanager
    def streaming(batch_size: int = 1):
        with Stream(codec, batch_size, n_q) as stream:
            holder["stream"] = stream
            yield

    name = "audiotok" if dtype == torch.float32 else f"audiotok {str(dtype).removeprefix('torch.')}"
    return Implementation(name, lambda w: codec.encode(w.to(dtype), n_q), lambda c: codec.decode(c).float(),
                          streaming,
                          lambda c: holder["stream"].encode_step(c),
                          lambda c: holder["stream"].decode_step(c), codec.hop_length, codec.sample_rate,
                          codec)


def moshi(n_q: int) -> Implementation:
    mimi = build_moshi(n_q)
    return Implementation("moshi 0.2.13", mimi.encode, mimi.decode, lambda batch_size=1: mimi.streaming(batch_size),
                          mimi.encode, mimi.decode, mimi.frame_size, int(mimi.sample_rate))


# ---- measurements ----------------------------------------------------------------------------------

@torch.no_grad()
def frame_latencies(impls: list[Implementation], wav: torch.Tensor, warmup: int = 3,
                    clock: Callable[[], float] = time.perf_counter) -> list[list[float]]:
    """Seconds per 80-ms frame (encode + decode) of each implementation streaming ``wav [B, 1, T]``
    (``B`` streams stepped together, as a server batches its users).

    All streams are open at once and the implementations alternate frame by frame, so a change of
    machine load hits both alike. The first ``warmup`` frames are dropped. ``clock``: see
    ``speed.CLOCKS``.
    """
    hop = impls[0].frame_size
    times: list[list[float]] = [[] for _ in impls]
    with ExitStack() as stack:
        for impl in impls:
            stack.enter_context(impl.streaming(wav.shape[0]))
        for i in range(wav.shape[-1] // hop):
            chunk = wav[..., i * hop:(i + 1) * hop]
            for impl, spent in zip(impls, times):
                start = clock()
                impl.decode_step(impl.encode_step(chunk))
                spent.append(clock() - start)
    return [spent[warmup:] for spent in times]


def _row(impl: Implementation, seconds: list[float], threads: int, n_q: int, streams: int = 1) -> dict:
    times_ms = sorted(1000 * t for t in seconds)
    frame_ms = 1000 * impl.frame_size / impl.sample_rate
    median = statistics.median(times_ms)
    return {"impl": impl.name, "codebooks": n_q, "threads": threads, "streams": streams, "frames": len(times_ms),
            "median ms": median, "mean ms": statistics.fmean(times_ms),
            "p95 ms": times_ms[min(len(times_ms) - 1, int(0.95 * len(times_ms)))],
            "max ms": times_ms[-1], "RTF": median / frame_ms}


def latency_rows(impls: list[Implementation], wav: torch.Tensor, threads: int, n_q: int,
                 clock: Callable[[], float] = time.perf_counter) -> list[dict]:
    """One row per implementation (median-based RTF); the others get ``speed-up`` = their median over
    the first one's (> 1: the first, audiotok, is faster)."""
    rows = [_row(impl, spent, threads, n_q, wav.shape[0])
            for impl, spent in zip(impls, frame_latencies(impls, wav, clock=clock))]
    for row in rows:
        row["audiotok speed-up"] = row["median ms"] / rows[0]["median ms"]
    return rows


class _WeightReads:
    """Inside ``with _WeightReads(weights):``, records which of ``weights`` the ops read (by storage, so
    views such as ``weight.t()`` count); gathers fetch a few rows of a table, not the table, and are
    not counted."""

    def __init__(self, weights: list[torch.Tensor]):
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_leaves

        by_storage = {t.untyped_storage().data_ptr(): t for t in weights}
        touched: dict[int, torch.Tensor] = {}
        self.touched = touched
        gathers = {torch.ops.aten.embedding.default, torch.ops.aten.index_select.default,
                   torch.ops.aten.index.Tensor, torch.ops.aten.gather.default}

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                if func not in gathers:
                    for leaf in tree_leaves((args, kwargs or {})):
                        if isinstance(leaf, torch.Tensor):
                            key = leaf.untyped_storage().data_ptr()
                            if key in by_storage:
                                touched[key] = by_storage[key]
                return func(*args, **(kwargs or {}))

        self._mode = Mode()

    def __enter__(self):
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self._mode.__exit__(*exc)


@torch.no_grad()
def weights_read_per_frame(codec, n_q: int) -> list[torch.Tensor]:
    """The floating-point parameters and buffers of ``codec`` that one streamed frame (encode + decode,
    ``n_q`` codebooks) reads, recorded on the second frame (the first may build caches)."""
    from audiotok.tokenizers.streaming import Stream

    weights = [t for t in [*codec.parameters(), *codec.buffers()] if t.is_floating_point()]
    frame = 0.1 * torch.randn(1, 1, codec.hop_length, generator=torch.Generator().manual_seed(0))
    with Stream(codec, 1, n_q) as stream:
        stream.decode_step(stream.encode_step(frame))
        with _WeightReads(weights) as reads:
            stream.decode_step(stream.encode_step(frame))
    return list(reads.touched.values())


@torch.no_grad()
def floor_row(weights: list[torch.Tensor], threads: int, n_q: int, ours_median_ms: float,
              clock: Callable[[], float] = time.perf_counter, repeats: int = 15,
              frame_ms: float = 80.0) -> dict:
    """The weight-read floor as a table row: median over ``repeats`` passes of summing every tensor in
    ``weights`` once (first pass dropped)."""
    spent = []
    for _ in range(repeats + 1):
        start = clock()
        for tensor in weights:
            tensor.sum()
        spent.append(1000 * (clock() - start))
    median = statistics.median(spent[1:])
    megabytes = sum(t.numel() * t.element_size() for t in weights) / 1e6
    return {"impl": f"floor: read {megabytes:.0f} MB of weights", "codebooks": n_q, "threads": threads,
            "streams": None,
            "median ms": median, "RTF": median / frame_ms, "audiotok speed-up": median / ours_median_ms}


def latency_row(impl: Implementation, wav: torch.Tensor, threads: int) -> dict:
    """The latency row of one implementation alone."""
    return latency_rows([impl], wav, threads, n_q=0)[0]


@torch.no_grad()
def drift(impl: Implementation, wav: torch.Tensor, context_seconds: float = 10.0) -> dict:
    """Frame-by-frame vs offline for one implementation: codes and audio, before/after the context."""
    hop = impl.frame_size
    frames = wav.shape[-1] // hop
    wav = wav[..., :frames * hop]  # whole frames, so offline has no padded tail
    codes = impl.encode(wav)
    decoded = impl.decode(codes)
    with impl.streaming():
        streamed_codes = torch.cat([impl.encode_step(wav[..., i * hop:(i + 1) * hop])
                                    for i in range(frames)], dim=-1)
    with impl.streaming():
        streamed_audio = torch.cat([impl.decode_step(codes[..., i:i + 1]) for i in range(frames)], dim=-1)
    cut_frame = int(context_seconds * impl.sample_rate / hop)
    cut_sample = cut_frame * hop
    audio_diff = (streamed_audio - decoded).abs()[0, 0]
    mismatch = streamed_codes != codes
    at = f"{context_seconds:g} s"
    return {f"codes ≠ before {at}": int(mismatch[..., :cut_frame].sum()),
            f"codes ≠ after {at}": int(mismatch[..., cut_frame:].sum()),
            f"max |Δaudio| before {at}": float(audio_diff[:cut_sample].max()),
            f"max |Δaudio| after {at}": float(audio_diff[cut_sample:].max())}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="torch CPU thread counts to measure (default: 1 2)")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio streamed per latency run")
    parser.add_argument("--drift-seconds", type=float, default=15.0,
                        help="audio for the offline-vs-streaming column; > 10 s to pass the context "
                             "(0 skips it)")
    parser.add_argument("--n-q", type=int, nargs="+", default=[8, 32],
                        help="codebooks encoded per frame (default: 8 32)")
    parser.add_argument("--streams", type=int, default=1,
                        help="independent streams stepped together per call (a server's batch; default 1)")
    parser.add_argument("--skip-moshi", action="store_true", help="measure only audiotok")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                        help="audiotok's precision (moshi stays float32); not exact against float32")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall: elapsed time; cpu: process CPU time, steadier on a shared machine")
    parser.add_argument("--out", default="bench_out/streaming.json", help="JSON results file")


def run(args: argparse.Namespace) -> int:
    from .results import emit
    from .speed import CLOCKS

    torch.manual_seed(0)
    rows = []
    original_threads = torch.get_num_threads()
    try:
        for n_q in args.n_q:
            impls = [ours(n_q, dtype=getattr(torch, args.dtype))] + ([] if args.skip_moshi else [moshi(n_q)])
            wav = 0.3 * torch.randn(args.streams, 1, int(args.seconds * impls[0].sample_rate))
            drift_wav = 0.3 * torch.randn(1, 1, int(args.drift_seconds * impls[0].sample_rate))
            weights = weights_read_per_frame(impls[0].model, n_q)
            found_rows = []
            for threads in args.threads:
                torch.set_num_threads(threads)
                latency = latency_rows(impls, wav, threads, n_q, CLOCKS[args.clock])
                floor = floor_row(weights, threads, n_q, latency[0]["median ms"], CLOCKS[args.clock])
                found_rows += latency + [floor]
                for row in latency + [floor]:
                    print(row, flush=True)  # progress; the table comes at the end
            torch.set_num_threads(max(args.threads))
            if args.drift_seconds > 0:
                for impl in impls:
                    found = drift(impl, drift_wav)
                    for row in found_rows:
                        if row["impl"] == impl.name:
                            row.update(found)
            rows += found_rows
    finally:
        torch.set_num_threads(original_threads)
    emit(f"Streaming full-size Mimi on CPU ({args.clock} clock): per 80-ms frame encode + decode of {args.streams} "
         "stream(s) stepped together, implementations alternating "
         "frame by frame (RTF = median / 80 ms, < 1 is faster than real time; audiotok speed-up = "
         f"median / audiotok's median; drift over {args.drift_seconds:g} s)",
         rows, args.out, extra={"seconds": args.seconds, "drift_seconds": args.drift_seconds,
                                "n_q": args.n_q, "clock": args.clock, "dtype": args.dtype, "streams": args.streams, "weights": "random, codebooks spread, LayerScale 0.5"})
    return 0


if __name__ == "__main__":  # python -m audiotok.benchmarks.streaming (same as `audiotok bench streaming`)
    import sys

    _parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
