"""Training that learns: through ``CodecLightningModule``, each family's tiny codec overfits one utterance
and its decoded audio must depend on the codes.

A decoder that ignores its codes (the average spectrum) lowers the mel loss too, so every check here is
against a baseline such a decoder reaches:

(a) decoding the real codes is much closer to the input than decoding shuffled or random codes;
(b) the energy envelope of the decoded audio follows the input's;
(c) the mel distance is below what the codec's best *constant output* achieves: decoding one code repeated
    for every frame (the most used codes of the utterance, each level at its most used code), which is what a
    collapsed tokenizer emits. The ideal stationary output (noise with the input's average magnitude
    spectrum) is reported as ``mel_stationary`` for reference: the tiny decoders reach it only after
    thousands of steps (phase noise dominates their early error), too many for a unit test.
"""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from audiotok.data.audio_io import load_audio  # noqa: E402
from audiotok.training.data import CodecDataModule, resolve_source  # noqa: E402
from audiotok.training.health import shuffle_frames  # noqa: E402
from audiotok.training.losses import MultiScaleMelLoss  # noqa: E402
from audiotok.training.module import CodecLightningModule  # noqa: E402

# The tiny CPU settings every shipped tiny model trains with (configs/*-tiny-train.yaml): the family's
# recipe with the calibration loop's loss and optimiser (3-scale mel x1, commitment x1, Adam 1e-3
# (0.8, 0.99), constant), a short quantizer warm-up, and no GAN (its warm-up runs past the end): these tests
# are about whether the codes carry the input, which the reconstruction path decides.
CPU_OVERRIDES = {
    "losses": {"mel_preset": "three_scale", "mel": 1.0, "commitment": 1.0, "balancer": None},
    "optim": {"generator": {"name": "adam", "lr": 1e-3, "betas": [0.8, 0.99], "weight_decay": 0.0,
                            "transformer_weight_decay": None},
              "scheduler": {"name": "constant"}},
}
# family -> (codec, recipe, steps, quantizer warm-up steps, quantizer override)
OVERFIT = {
    "wavtokenizer": ("wavtokenizer-tiny", "wavtokenizer", 800, 0, None),
    "speechtokenizer": ("speechtokenizer-tiny", "speechtokenizer", 400, 0, None),
    "mimi": ("mimi-tiny", "mimi", 800, 0, None),
    "fsq": ("wavtokenizer-tiny", "wavtokenizer", 600, 0, {"type": "fsq", "dim": 64, "levels": [8, 5, 5, 5]}),
}


def envelope(audio: torch.Tensor, hop: int = 320) -> np.ndarray:
    a = audio.reshape(-1)
    return a[: len(a) // hop * hop].reshape(-1, hop).pow(2).mean(1).sqrt().numpy()


def constant_output_distance(metric: MultiScaleMelLoss, x: torch.Tensor, n_fft: int = 1024) -> float:
    """Mel distance to ``x [1, 1, T]`` of the best stationary output: the input's average magnitude
    spectrum with random phases (per-bin mean, median or geometric mean, whichever scores best)."""
    window = torch.hann_window(n_fft)
    spec = torch.stft(x[:, 0], n_fft, n_fft // 4, window=window, return_complex=True).abs()
    phase = torch.rand(spec.shape, generator=torch.Generator().manual_seed(0)) * 2 * torch.pi
    best = float("inf")
    for average in (spec.mean(-1), spec.median(-1).values, spec.clamp_min(1e-9).log().mean(-1).exp()):
        stationary = torch.polar(average[..., None].expand_as(spec).contiguous(), phase)
        audio = torch.istft(stationary, n_fft, n_fft // 4, window=window, length=x.shape[-1])[:, None]
        best = min(best, float(metric(audio, x)[0]))
    return best


@torch.no_grad()
def best_constant_codes_distance(codec, metric: MultiScaleMelLoss, codes: torch.Tensor, x: torch.Tensor,
                                 candidates: int = 8) -> float:
    """Lowest mel distance to ``x`` of decoding a constant code sequence ``[1, Q, F]``: level 0 at one of
    its ``candidates`` most used codes, the other levels at their most used code."""
    modes = codes[0].mode(dim=-1).values  # [Q]
    top = torch.bincount(codes[0, 0], minlength=codec.codebook_size).topk(candidates).indices
    best = float("inf")
    for code in top:
        constant = modes.clone()
        constant[0] = code
        audio = codec.decode(constant[None, :, None].expand_as(codes).contiguous())[..., :x.shape[-1]]
        best = min(best, float(metric(audio, x)[0]))
    return best


def utterance_folder(tmp_path: Path, sample_rate: int, copies: int = 4) -> tuple[Path, torch.Tensor]:
    """One ~2 s utterance of the built-in tiny corpus, copied ``copies`` times into a folder."""
    corpus = resolve_source("builtin:tiny")
    rows = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines()]
    row = min((r for r in rows if r.get("split") == "train"), key=lambda r: abs(r["duration"] - 2.0))
    folder = tmp_path / "one"
    folder.mkdir()
    for i in range(copies):
        shutil.copy(corpus / row["path"], folder / f"copy{i}.wav")
    audio, _ = load_audio(corpus / row["path"], sample_rate=sample_rate)
    return folder, audio


def overfit(family: str, tmp_path: Path, steps: int | None = None) -> dict[str, float]:
    """Train the family's tiny codec on one utterance through the module; return the evaluation."""
    codec, recipe, default_steps, q_warmup, quantizer = OVERFIT[family]
    steps = steps or default_steps
    if quantizer is not None:
        from audiotok.codecs.families import get_config

        codec = get_config(codec).replace(quantizer=quantizer).to_dict()
    pl.seed_everything(0, verbose=False)
    module = CodecLightningModule(codec=codec, recipe={"base": recipe, **CPU_OVERRIDES}, warmup_steps=10**9,
                                  quantizer_warmup_steps=q_warmup)
    folder, audio = utterance_folder(tmp_path, module.codec.sample_rate)
    data = CodecDataModule(train=str(folder), segment_seconds=1.0, batch_size=4)
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
                         use_distributed_sampler=False, limit_val_batches=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, data)
    return evaluate(module, audio)


@torch.no_grad()
def evaluate(module: CodecLightningModule, audio: torch.Tensor) -> dict[str, float]:
    codec = module.inference_codec.eval()
    x = audio[None]
    metric = MultiScaleMelLoss.wavtokenizer(codec.sample_rate)
    codes = codec.encode(x)
    length = x.shape[-1]
    real = codec.decode(codes)[..., :length]
    shuffled = codec.decode(shuffle_frames(codes, torch.Generator().manual_seed(0)))[..., :length]
    random = codec.decode(torch.randint(0, codec.codebook_size, codes.shape,
                                        generator=torch.Generator().manual_seed(0)))[..., :length]
    return {
        "mel_real": float(metric(real, x)[0]),
        "mel_shuffled": float(metric(shuffled, x)[0]),
        "mel_random": float(metric(random, x)[0]),
        "mel_constant": best_constant_codes_distance(codec, metric, codes, x),
        "mel_stationary": constant_output_distance(metric, x),
        "envelope_r": float(np.corrcoef(envelope(x), envelope(real))[0, 1]),
        "code_dependence": float((real - shuffled).abs().mean() / real.abs().mean().clamp_min(1e-9)),
        "codes_used": int(codes.unique().numel()),
    }


def assert_learned(result: dict[str, float]) -> None:
    assert result["mel_real"] < 0.8 * result["mel_shuffled"], result
    assert result["mel_real"] < 0.8 * result["mel_random"], result
    assert result["mel_real"] < 0.9 * result["mel_constant"], result
    assert result["envelope_r"] > 0.6, result
    assert result["code_dependence"] > 0.3, result


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(OVERFIT))
def test_tiny_codec_overfits_one_utterance_and_depends_on_its_codes(family, tmp_path):
    torch.set_num_threads(2)
    assert_learned(overfit(family, tmp_path))


def test_a_codec_that_ignores_its_codes_fails_the_learning_checks(tmp_path):
    """The checks above reject a collapsed codec: every codebook entry the same vector (what the old
    shipped models had), so the decoder's output cannot depend on the codes."""
    pl.seed_everything(0, verbose=False)
    module = CodecLightningModule(codec="wavtokenizer-tiny", recipe="wavtokenizer")
    for codebook in module.codec.quantizer.codebooks():
        codebook.embed.copy_(torch.randn(1, codebook.dim).expand_as(codebook.embed))
        codebook.initialized.fill_(1.0)
    _, audio = utterance_folder(tmp_path, module.codec.sample_rate, copies=1)
    result = evaluate(module, audio)
    assert result["code_dependence"] < 1e-6 and result["mel_real"] == pytest.approx(result["mel_constant"])
    with pytest.raises(AssertionError):
        assert_learned(result)


def test_health_monitor_warns_once_when_a_level_collapses():
    from audiotok.training.health import HealthMonitor, TrainingHealthWarning

    monitor = HealthMonitor(codebook_size=64, window=5, grace_steps=3)
    latent = torch.randn(2, 8, 50)
    spread = torch.randint(0, 64, (2, 2, 50))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(10):  # level 0 spread, level 1 spread: no warning
            metrics = monitor.update(spread, latent)
    assert metrics["health/usage/0"] > 0.5 and metrics["health/perplexity/1"] > 20
    collapsed = spread.clone()
    collapsed[:, 1] = 7
    with pytest.warns(TrainingHealthWarning, match="level 1 has collapsed") as record:
        for _ in range(10):
            metrics = monitor.update(collapsed, latent)
    assert len(record) == 1  # once, not every window
    assert metrics["health/perplexity/1"] == pytest.approx(1.0) and metrics["health/usage/1"] == 1 / 64
    with pytest.warns(TrainingHealthWarning, match="shuffled codes"):
        monitor.check_code_dependence(0.001, step=100)
    assert metrics["health/latent_spread"] > 0.5
    flat = torch.ones(2, 8, 50)
    assert monitor.update(collapsed, flat)["health/latent_spread"] < 1e-3


if __name__ == "__main__":  # calibration: python tests/training/test_training_learns.py FAMILY [STEPS]
    import sys
    import tempfile
    import time

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.time()
        result = overfit(sys.argv[1], Path(tmp), int(sys.argv[2]) if len(sys.argv) > 2 else None)
        print(json.dumps({**result, "seconds": round(time.time() - start, 1)}))
