"""``audiotok bench speed``: offline tokenize / detokenize real-time factor, audiotok vs each installed
reference at identical weights, side by side.

Each reference package builds its full-size model with random weights (speed does not depend on the
values); the model is saved in that package's own format and loaded through ``audiotok.load``, so
both sides compute with the same numbers (the parity tests check that they agree). References:
moshi's and transformers' Mimi, the ``speechtokenizer`` package, the ``encodec`` package and
transformers' ``EncodecModel`` (24 kHz at 6 kbps, 8 codebooks). WavTokenizer has no installable
package: audiotok is compared with its own unoptimised path (``torch_kernels()``: plain
``torch.nn.functional`` convs, no in-place shortcuts). Calls alternate between implementations
(encode of every implementation, then decode of every one, ``repeats`` times) and the median is
kept, so a machine whose load changes cannot favour one side. Every call runs under
``torch.inference_mode``. RTF = compute seconds / audio seconds (lower is faster); ``speed-up`` =
reference RTF / audiotok RTF (> 1: audiotok is faster).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

FAMILIES = ("mimi", "speechtokenizer", "wavtokenizer", "encodec")
ENCODEC_N_Q = 8  # 6 kbps, EnCodec's default bandwidth
# wall: elapsed seconds. cpu: this process's CPU seconds, which other processes time-slicing the
# cores do not inflate (a shared machine); at N threads it is the sum over the threads.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
MIMI_N_Q = 8


@dataclass
class Side:
    """One implementation: ``encode(wav [1, 1, T]) -> codes`` and ``decode(codes) -> audio``."""

    name: str
    encode: Callable[[torch.Tensor], torch.Tensor]
    decode: Callable[[torch.Tensor], torch.Tensor]


def _ours(path_or_name: str, n_q: int | None = None, plain: bool = False) -> tuple[Side, int]:
    """audiotok's codec loaded from ``path_or_name`` (``plain``: through the unoptimised path)."""
    import audiotok
    from audiotok.codecs.modules.conv import torch_kernels

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "random weights": on purpose here
        codec = audiotok.load(path_or_name, n_q=n_q).codec
    if not plain:
        return Side("audiotok", lambda w: codec.encode(w), codec.decode), codec.sample_rate

    def unoptimised(fn):
        def run(x):
            with torch_kernels():
                return fn(x)
        return run

    return Side("audiotok, plain torch path", unoptimised(codec.encode), unoptimised(codec.decode)), codec.sample_rate


@torch.no_grad()
def _spread_encodec(encoder: torch.nn.Module, codebooks: list) -> None:
    """Fill a fresh EnCodec's codebooks around its latents of noise (a fresh one holds zeros until its
    k-means init, so every code would be 0); speed does not depend on it, code checks do."""
    from audiotok.testing import spread_encodec_codebooks

    noise = 0.1 * torch.randn(1, 1, 24000, generator=torch.Generator().manual_seed(0))
    spread_encodec_codebooks(encoder(noise), codebooks)


def pairs(family: str, tmp: Path) -> list[tuple[Side, Side, int] | str]:
    """``(audiotok, reference, sample_rate)`` per reference of ``family`` at identical weights, or a
    reason string for a reference that is not installed."""
    from audiotok.benchmarks import references

    found: list = []
    if family == "mimi":
        try:
            moshi = references.moshi_mimi(num_codebooks=MIMI_N_Q)
            from safetensors.torch import save_file

            path = tmp / "tokenizer-e351c8d8-checkpoint125.safetensors"  # moshi's file name
            save_file({k: v.contiguous() for k, v in moshi.state_dict().items()}, str(path))
            ours, sr = _ours(str(path), MIMI_N_Q)
            found.append((ours, Side("moshi", moshi.encode, moshi.decode), sr))
        except ImportError as err:
            found.append(f"moshi not installed ({err})")
        try:
            import transformers

            model = transformers.MimiModel(transformers.MimiConfig()).eval()
            model.save_pretrained(tmp / "mimi-hf")
            ours, sr = _ours(str(tmp / "mimi-hf"), MIMI_N_Q)
            found.append((ours, Side("transformers MimiModel",
                                     lambda w: model.encode(w, num_quantizers=MIMI_N_Q).audio_codes,
                                     lambda c: model.decode(c).audio_values), sr))
        except ImportError as err:
            found.append(f"transformers not installed ({err})")
    elif family == "speechtokenizer":
        try:
            model = references.speechtokenizer_class()(references.SPEECHTOKENIZER_CONFIG).eval()
            folder = tmp / "speechtokenizer"
            folder.mkdir()
            (folder / "config.json").write_text(json.dumps(references.SPEECHTOKENIZER_CONFIG))
            torch.save(model.state_dict(), folder / "SpeechTokenizer.pt")
            ours, sr = _ours(str(folder))
            found.append((ours, Side("speechtokenizer", model.encode, model.decode), sr))  # codes [Q, B, F]
        except ImportError as err:
            found.append(f"speechtokenizer not installed ({err})")
    elif family == "encodec":
        try:
            model = references.encodec_package().encodec_model_24khz(pretrained=False).eval()
            model.set_target_bandwidth(6.0)
            _spread_encodec(model.encoder, [layer._codebook for layer in model.quantizer.vq.layers])
            path = tmp / "encodec_24khz-d7cc33bc.th"  # the release file's name
            torch.save(model.state_dict(), path)
            ours, sr = _ours(str(path), ENCODEC_N_Q)
            found.append((ours, Side("encodec 0.1.1", lambda w: model.encode(w)[0][0],  # one frame, no scale
                                     lambda c: model.decode([(c, None)])), sr))
        except ImportError as err:
            found.append(f"encodec not installed ({err})")
        try:
            import transformers

            hf = transformers.EncodecModel(transformers.EncodecConfig()).eval()
            _spread_encodec(hf.encoder, [layer.codebook for layer in hf.quantizer.layers])
            hf.save_pretrained(tmp / "encodec-hf")
            ours, sr = _ours(str(tmp / "encodec-hf"), ENCODEC_N_Q)
            found.append((ours, Side("transformers EncodecModel",
                                     lambda w: hf.encode(w, bandwidth=6.0).audio_codes[0],
                                     lambda c: hf.decode(c[None], [None]).audio_values), sr))
        except ImportError as err:
            found.append(f"transformers not installed ({err})")
    elif family == "wavtokenizer":
        ours, sr = _ours("wavtokenizer-75")
        plain, _ = _ours("wavtokenizer-75", plain=True)
        found.append((ours, plain, sr))
    return found


def compare(ours: Side, reference: Side, sr: int, seconds: float, repeats: int,
            clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Median encode / decode seconds (per audio second) of both sides, calls alternating."""
    wav = 0.1 * torch.randn(1, 1, int(seconds * sr), generator=torch.Generator().manual_seed(0))
    sides = (ours, reference)
    times: dict[tuple[str, str], list[float]] = {}
    with torch.inference_mode():
        codes = [side.encode(wav) for side in sides]  # warm-up, and the codes each side decodes
        for side, c in zip(sides, codes):
            side.decode(c)
        for _ in range(repeats):
            for op in ("encode", "decode"):
                for side, c in zip(sides, codes):
                    fn, arg = (side.encode, wav) if op == "encode" else (side.decode, c)
                    start = clock()
                    fn(arg)
                    times.setdefault((side.name, op), []).append(clock() - start)
    return {f"{who}_{op}": statistics.median(times[(side.name, op)]) / seconds
            for who, side in (("ours", ours), ("ref", reference)) for op in ("encode", "decode")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--seconds", type=float, default=5.0, help="audio length per call")
    parser.add_argument("--repeats", type=int, default=5, help="alternated timed calls (median kept)")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="wall: elapsed time; cpu: process CPU time, steadier on a shared machine")
    parser.add_argument("--out", default="bench_out/speed.json", help="JSON output path")


def run(args: argparse.Namespace) -> int:
    from audiotok.benchmarks.results import emit

    rows = []
    previous_threads = torch.get_num_threads()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for family in args.families:
                folder = Path(tmp) / family
                folder.mkdir()
                for pair in pairs(family, folder):
                    if isinstance(pair, str):
                        rows.append({"family": family, "threads": None, "reference": pair})
                        continue
                    ours, reference, sr = pair
                    for threads in args.threads:
                        torch.set_num_threads(threads)
                        found = compare(ours, reference, sr, args.seconds, args.repeats, CLOCKS[args.clock])
                        rows.append({
                            "family": family, "threads": threads, "reference": reference.name,
                            "audiotok encode": found["ours_encode"],
                            "reference encode": found["ref_encode"],
                            "encode speed-up": found["ref_encode"] / found["ours_encode"],
                            "audiotok decode": found["ours_decode"],
                            "reference decode": found["ref_decode"],
                            "decode speed-up": found["ref_decode"] / found["ours_decode"]})
                        print({k: round(v, 4) if isinstance(v, float) else v for k, v in rows[-1].items()},
                              flush=True)
    finally:
        torch.set_num_threads(previous_threads)
    emit(f"Offline speed ({args.clock} clock): encode (tokenize) / decode (detokenize) real-time factor on {args.seconds:g} s of audio, median of {args.repeats} "
         "alternated calls (lower is faster; speed-up = reference / audiotok)", rows, args.out,
         extra={"seconds": args.seconds, "repeats": args.repeats, "mimi_n_q": MIMI_N_Q,
                "encodec_n_q": ENCODEC_N_Q, "clock": args.clock,
                "weights": "random, identical on both sides (saved by the reference, loaded by audiotok)"})
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
