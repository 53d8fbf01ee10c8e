"""Does torch.compile (inductor, weights frozen) make audiotok's offline Mimi faster on this CPU?

Full-size Mimi (random weights, spread codebooks, 8 codebooks), 5 s of audio, one thread by default:
prints eager and compiled encode / decode seconds (best of 3 after a warm-up), the compile time, and
whether the compiled codes equal the eager ones. Written to check one candidate of issue 12's offline
speed-up. On the project's 2-core Xeon (2026-12-03, three runs at 1 thread, one at 2): encode 1.05-1.29x,
decode 1.02-1.20x at 1 thread, 1.07x / 0.90x at 2 threads, after 25-45 s of compiling per input length.

    python scripts/probe_torch_compile.py [--threads 1] [--seconds 5]
"""
import argparse
import time
import warnings

import torch


def best_of(fn, arg, repeats: int = 3) -> float:
    fn(arg)
    spent = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(arg)
        spent.append(time.perf_counter() - start)
    return min(spent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import torch._inductor.config as inductor_config

    from audiotok.benchmarks.streaming import build_ours

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    codec = build_ours(8)
    wav = 0.3 * torch.randn(1, 1, int(24000 * args.seconds))
    with torch.no_grad():
        encode = lambda w: codec.encode(w, 8)  # noqa: E731
        codes = encode(wav)
        eager = best_of(encode, wav), best_of(codec.decode, codes)
        inductor_config.freezing = True
        compiled_encode = torch.compile(encode, dynamic=False)
        compiled_decode = torch.compile(codec.decode, dynamic=False)
        start = time.perf_counter()
        compiled_codes = compiled_encode(wav)
        compiled_audio = compiled_decode(codes)
        compile_seconds = time.perf_counter() - start
        compiled = best_of(compiled_encode, wav), best_of(compiled_decode, codes)
        audio_diff = (compiled_audio - codec.decode(codes)).abs().max().item()
    print(f"threads {args.threads}, {args.seconds:g} s of audio, compile time {compile_seconds:.0f} s")
    for op, e, c in zip(("encode", "decode"), eager, compiled):
        print(f"{op}: eager {e:.3f} s, compiled {c:.3f} s, speed-up {e / c:.2f}x")
    print(f"codes equal: {torch.equal(compiled_codes, codes)}, max audio difference {audio_diff:.1e}")


if __name__ == "__main__":
    main()
