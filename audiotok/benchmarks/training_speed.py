"""Training throughput per recipe config: generator steps per second and peak memory (``audiotok bench training``).

Each config runs in its own process (peak RSS is per process) through the real training path: the
config's model section builds :class:`~audiotok.training.module.CodecLightningModule`, a Lightning
Trainer runs ``warmup + steps`` generator steps on the built-in tiny corpus with the GAN on from the
first step (discriminator + generator updates, the expensive case), and only the last ``steps``
are timed. Tiny configs keep their own batch; full-size configs run at a stated small batch (their
paper batches do not fit a CPU) so that rows are comparable per item-second of audio.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def measure(config_path: Path, steps: int, warmup: int, batch_size: int | None,
            segment_seconds: float | None, threads: int) -> dict:
    """Train ``warmup + steps`` generator steps for one config in this process; return one row."""
    import lightning.pytorch as pl
    import torch
    import yaml

    from audiotok.training.data import CodecDataModule
    from audiotok.training.module import CodecLightningModule

    torch.set_num_threads(threads)
    config = yaml.safe_load(config_path.read_text())
    model_args = {**config.get("model", {}), "warmup_steps": 0}
    model_args.pop("distill", None)
    data_args = dict(config.get("data", {}))
    data_args.update(train="builtin:tiny", num_workers=0)
    if batch_size is not None:
        data_args["batch_size"] = batch_size
    if segment_seconds is not None:
        data_args["segment_seconds"] = segment_seconds
    pl.seed_everything(0, verbose=False)
    module = CodecLightningModule(**model_args)
    data = CodecDataModule(**data_args)
    stamps: list[float] = []

    class Clock(pl.Callback):
        def on_train_batch_end(self, *args):
            stamps.append(time.perf_counter())

    trainer = pl.Trainer(max_steps=warmup + steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         limit_val_batches=0, use_distributed_sampler=False, callbacks=[Clock()])
    trainer.fit(module, data)
    seconds = stamps[-1] - stamps[warmup - 1] if warmup > 0 else float("nan")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {
        "config": config_path.stem,
        "codec": module.codec.config.name,
        "generator params (M)": round(module.codec.num_parameters() / 1e6, 2),
        "discriminator params (M)": round(sum(p.numel() for p in module.discriminator.parameters()) / 1e6, 2),
        "batch": f"{data.batch_size} x {data.segment_seconds:g} s",
        "generator steps/s": steps / seconds,
        "s/step": seconds / steps,
        "D steps": module.d_steps,
        "peak RSS (MB)": round(peak_mb),
        "threads": threads,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--configs", nargs="+", default=None,
                        help="config names or paths (default: every configs/*.yaml)")
    parser.add_argument("--steps", type=int, default=3, help="timed generator steps per config")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps (k-means init, allocations)")
    parser.add_argument("--full-batch", type=int, default=1, help="batch size for full-size configs")
    parser.add_argument("--full-segment", type=float, default=1.0, help="segment seconds for full-size configs")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", default="bench_out/training.json", help="JSON results file")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child mode: measure one config, print JSON


def _config_paths(names: list[str] | None) -> list[Path]:
    if not names:
        return sorted(CONFIG_DIR.glob("*.yaml"), key=lambda p: ("-tiny" not in p.stem, p.stem))
    paths = []
    for name in names:
        path = Path(name) if name.endswith(".yaml") else CONFIG_DIR / f"{name}.yaml"
        if not path.is_file():
            raise FileNotFoundError(f"no training config {path}; available: "
                                    f"{', '.join(p.stem for p in sorted(CONFIG_DIR.glob('*.yaml')))}")
        paths.append(path)
    return paths


def run(args: argparse.Namespace) -> int:
    if args.one:
        tiny = "-tiny" in Path(args.one).stem
        row = measure(Path(args.one), args.steps, args.warmup, None if tiny else args.full_batch,
                      None if tiny else args.full_segment, args.threads)
        print("ROW " + json.dumps(row))
        return 0
    from .results import emit

    rows = []
    for path in _config_paths(args.configs):
        command = [sys.executable, "-m", "audiotok.benchmarks.training_speed", "--one", str(path),
                   "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads),
                   "--full-batch", str(args.full_batch), "--full-segment", str(args.full_segment)]
        done = subprocess.run(command, check=False, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("ROW ")]
        if done.returncode != 0 or not lines:
            rows.append({"config": path.stem, "error": (done.stderr.strip().splitlines() or ["failed"])[-1]})
            continue
        rows.append(json.loads(lines[-1][4:]))
    emit(f"Training throughput on CPU ({args.threads} threads; GAN on; {args.steps} timed generator steps "
         f"after {args.warmup} untimed; full-size configs at batch {args.full_batch} x {args.full_segment:g} s)",
         rows, args.out, extra={"steps": args.steps, "warmup": args.warmup})
    return 0


if __name__ == "__main__":  # python -m audiotok.benchmarks.training_speed (= `audiotok bench training`)
    _parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
