"""Training: recipes, the GAN LightningModule (step counting, resume, export), data order, CLI configs."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from audiotok.codecs import Codec
from audiotok.codecs.families import get_config
from audiotok.training.checkpointing import AtomicCheckpointIO, atomic_torch_save
from audiotok.training.data import CodecDataModule, SeededOrderSampler
from audiotok.training.module import CodecLightningModule
from audiotok.discriminators import DISCRIMINATOR_PRESETS, build_discriminators
from audiotok.training.recipes import get_recipe
from audiotok.training.shared_random import shared_bernoulli, shared_rng
from audiotok.testing import spread_codebooks

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = {  # (codec, recipe, discriminator width)
    "speechtokenizer": ("speechtokenizer-tiny", "speechtokenizer", 0.0625),
    "mimi": ("mimi-tiny", "mimi", 0.125),
    "wavtokenizer": ("wavtokenizer-tiny", "wavtokenizer", 0.0625),
}


pytestmark = pytest.mark.usefixtures("one_thread")


class LossRecorder(pl.Callback):
    """Logged training losses per generator step, and how many training batches ran."""

    def __init__(self):
        self.losses: dict[int, dict[str, float]] = {}
        self.batches = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.batches += 1
        self.losses[trainer.global_step] = {
            k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")
        }


def make_module(family: str, **overrides) -> CodecLightningModule:
    codec, recipe, width = TINY[family]
    pl.seed_everything(0, verbose=False)
    return CodecLightningModule(codec=codec, recipe=recipe, discriminator_width=width, **overrides)


def make_data(**overrides) -> CodecDataModule:
    options = {"train": "builtin:tiny", "segment_seconds": 0.25, "val_segment_seconds": 0.5, "batch_size": 2}
    return CodecDataModule(**{**options, **overrides})


def make_trainer(root: Path, max_steps: int, recorder: LossRecorder, every: int | None = None, **kwargs):
    from lightning.pytorch.callbacks import ModelCheckpoint

    checkpoint = ModelCheckpoint(dirpath=root, filename="{step}", every_n_train_steps=every, save_last=True,
                                 save_top_k=-1)
    options = {"max_steps": max_steps, "accelerator": "cpu", "logger": False, "enable_progress_bar": False,
               "enable_model_summary": False, "num_sanity_val_steps": 0, "use_distributed_sampler": False,
               "limit_val_batches": 0, "plugins": [AtomicCheckpointIO()], "callbacks": [checkpoint, recorder],
               "default_root_dir": root}
    return pl.Trainer(**{**options, **kwargs})


# ---- recipes ------------------------------------------------------------------------------------
def test_recipes_reproduce_published_settings():
    st, mimi, wt = get_recipe("speechtokenizer"), get_recipe("mimi"), get_recipe("wavtokenizer")
    assert st["discriminators"] == "speechtokenizer" and st["adversarial"] == "speechtokenizer"  # preset names
    assert set(DISCRIMINATOR_PRESETS["speechtokenizer"]) == {"mpd", "msd", "msstft"}
    assert (st["losses"]["l1"], st["losses"]["commitment"], st["losses"]["distill"]) == (500.0, 10.0, 120.0)
    assert st["optim"]["generator"] == {"name": "adam", "lr": 1e-4, "betas": [0.9, 0.99], "weight_decay": 0.0,
                                        "transformer_weight_decay": None}
    assert mimi["losses"]["mel"] == 0 and mimi["losses"]["l1"] == 0 and mimi["discriminators"] == "encodec"
    # Mimi trains against audiocraft's MS-STFT with LeakyReLU 0.3 (the one place this fact lives: the preset)
    msstft = build_discriminators(mimi["discriminators"]).families["msstft"]
    assert {d.activation.negative_slope for d in msstft.discriminators} == {0.3}
    assert mimi["codec_overrides"]["quantizer"]["no_quantization_rate"] == 0.5 and mimi["ema_decay"] == 0.99
    assert mimi["optim"]["generator"]["transformer_weight_decay"] == 5e-2
    assert wt["discriminators"] == "vocos" and wt["adversarial"] == "vocos"
    assert set(DISCRIMINATOR_PRESETS["vocos"]) == {"mpd", "mrd"}
    assert (wt["losses"]["mel"], wt["losses"]["commitment"], wt["optim"]["generator"]["lr"]) == (45.0, 1000.0, 2e-4)


def test_recipe_overrides_merge_and_unknown_keys_fail():
    recipe = get_recipe({"base": "wavtokenizer", "optim": {"generator": {"lr": 1e-3}}},
                        {"discriminators": {"msstft": {}}})
    assert recipe["optim"]["generator"]["lr"] == 1e-3 and recipe["optim"]["generator"]["name"] == "adamw"
    assert recipe["discriminators"] == {"msstft": {}}  # replaced, not merged
    with pytest.raises(ValueError, match="unknown losses key"):
        get_recipe("mimi", {"losses": {"mell": 1.0}})
    with pytest.raises(ValueError, match="unknown recipe"):
        get_recipe("no-such-recipe")


def test_mimi_weight_decay_only_on_transformers():
    module = make_module("mimi")
    opt_g, _ = module.configure_optimizers()[0]
    decays = sorted(group["weight_decay"] for group in opt_g.param_groups)
    assert decays == [0.0, 0.05]
    transformer_group = next(g for g in opt_g.param_groups if g["weight_decay"] == 0.05)
    ids = {id(p) for p in module.codec.encoder_transformer.parameters()}
    assert ids <= {id(p) for p in transformer_group["params"]}


def test_warmup_needs_reconstruction_losses():
    with pytest.raises(ValueError, match="warmup_steps"):
        make_module("mimi", warmup_steps=5)


# ---- rank-shared randomness and data order ------------------------------------------------------
def test_shared_draws_depend_only_on_seed_and_step():
    module = make_module("mimi")
    wav = torch.randn(4, 1, 4800) * 0.1

    def kept(step):
        with shared_rng(0, step):
            return module.codec.quantizer(module.codec.encode_latent(wav).detach()).kept_levels

    kept(0)  # k-means init draws random numbers once; afterwards codebook state is the same per call
    module.codec.quantizer.set_update_ema(False)
    torch.manual_seed(123)
    first = kept(7)
    torch.rand(100)  # other RNG use (e.g. another rank's data pipeline) must not matter
    assert torch.equal(first, kept(7))
    assert [shared_bernoulli(0.5, 0, s) for s in range(20)] == [shared_bernoulli(0.5, 0, s) for s in range(20)]
    assert 0 < sum(shared_bernoulli(0.5, 0, s) for s in range(200)) < 200


def test_sampler_order_is_seeded_and_resumable():
    sampler = SeededOrderSampler(10, seed=3)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.start = 4
    assert list(sampler) == full[4:]
    assert sorted(i for i, _ in full) == list(range(10))
    assert len({seed for _, seed in full}) == 10  # every item gets its own crop seed
    sampler.start = 0
    sampler.set_epoch(3)
    assert list(sampler) != full  # a new epoch, a new order


# ---- fit, max_steps, resume, checkpoints -------------------------------------------------------
@pytest.mark.parametrize("family", sorted(TINY))
def test_tiny_recipe_fits_and_resumes(family, tmp_path):
    warmup = 0 if family == "mimi" else 1
    recorder = LossRecorder()
    make_trainer(tmp_path, 2, recorder, every=2).fit(make_module(family, warmup_steps=warmup), make_data())
    assert recorder.batches == 2  # max_steps counts generator steps, not optimizer steps
    checkpoint = torch.load(tmp_path / "step=2.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == 2
    assert checkpoint["audiotok_codec_config"]["name"] == get_config(TINY[family][0]).name
    codec_keys = [k for k in checkpoint["state_dict"] if k.startswith("codec.")]
    assert any(k.endswith("embed") for k in codec_keys) and any(k.startswith("discriminator.") for k in checkpoint["state_dict"])
    assert len(checkpoint["optimizer_states"]) == 2 and len(checkpoint["lr_schedulers"]) == 2
    assert checkpoint["audiotok_d_steps"] == 2 - warmup
    g_state, d_state = (next(iter(o["state"].values())) for o in checkpoint["optimizer_states"])
    assert int(g_state["step"]) == 2 and int(d_state["step"]) == 2 - warmup  # one D, one G update per batch
    assert all(math.isfinite(v) for v in recorder.losses[2].values())

    resumed = LossRecorder()
    make_trainer(tmp_path, 3, resumed, every=3).fit(make_module(family, warmup_steps=warmup), make_data(),
                                                    ckpt_path=str(tmp_path / "last.ckpt"))
    assert resumed.batches == 1 and list(resumed.losses) == [3]
    assert torch.load(tmp_path / "step=3.ckpt", weights_only=False)["audiotok_d_steps"] == 3 - warmup


def test_resume_gives_the_same_losses_as_an_uninterrupted_run(tmp_path):
    """Mimi recipe: weight EMA, balancer, 50 % quantisation and quantizer dropout all resume exactly."""
    torch.use_deterministic_algorithms(True)
    try:
        straight = LossRecorder()
        make_trainer(tmp_path / "a", 4, straight).fit(make_module("mimi"), make_data())
        first, second = LossRecorder(), LossRecorder()
        make_trainer(tmp_path / "b", 2, first, every=2).fit(make_module("mimi"), make_data())
        make_trainer(tmp_path / "b", 4, second).fit(make_module("mimi"), make_data(),
                                                   ckpt_path=str(tmp_path / "b" / "last.ckpt"))
    finally:
        torch.use_deterministic_algorithms(False)
    assert list(second.losses) == [3, 4]
    for step in (3, 4):
        assert second.losses[step].keys() == straight.losses[step].keys()
        for name, value in straight.losses[step].items():
            assert second.losses[step][name] == pytest.approx(value, rel=1e-5, abs=1e-7), (step, name)


def test_atomic_save_never_leaves_a_broken_file(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    atomic_torch_save({"step": 1}, target)

    def crash(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        AtomicCheckpointIO().save_checkpoint({"step": 2}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=False) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temp file left


def test_export_round_trip_uses_ema_weights(tmp_path):
    module = make_module("mimi")
    with torch.no_grad():  # make the EMA copy differ from the live weights
        for p in module.codec.parameters():
            p.add_(0.01)
    module.export_tokenizer(tmp_path / "tok")
    loaded = Codec.from_pretrained(tmp_path / "tok").eval()
    shadow = module.weight_ema.shadow.eval()
    wav = torch.randn(1, 1, 4800) * 0.1
    assert torch.equal(loaded.encode(wav), shadow.encode(wav))
    torch.testing.assert_close(loaded.decode(loaded.encode(wav)), shadow.decode(shadow.encode(wav)))


def test_distillation_slot_trains_a_head_against_a_teacher():
    from fractions import Fraction

    from audiotok.distill import Teacher

    class MeanTeacher(Teacher):  # a stand-in feature teacher: 4 features at 50 Hz on 16 kHz audio
        sample_rate, frame_rate, dim = 16000, Fraction(50), 4

        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Conv1d(1, 4, 320, stride=320)

        def forward(self, wav, lengths=None):
            return self.proj(wav)

        def config_dict(self):
            return {"kind": "mean"}

    module = make_module("speechtokenizer", distill={"teacher": MeanTeacher(), "kind": "d_axis"})
    assert module.weights["distill"] == 120.0
    wav = torch.randn(2, 1, 8000) * 0.1
    terms = module.generator_terms(wav, module.codec(wav), gan=False)
    terms["distill"].backward()
    assert module.distill.head.projection.weight.grad is not None
    assert module.distill.teacher.proj.weight.grad is None


# ---- CLI ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_print_config_resolves_every_config(config, capsys):
    from audiotok.cli.train import run_lightning_cli

    with pytest.raises(SystemExit) as done:
        run_lightning_cli(["fit", "--config", str(CONFIGS / config), "--print_config"])
    assert done.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "model:" in printed and "recipe:" in printed and "max_steps:" in printed


# ---- the GAN learns ------------------------------------------------------------------------------
@pytest.mark.slow
def test_gan_steps_start_after_the_warm_up():
    """Reconstruction warm-up then GAN steps: discriminator steps counted, every logged term finite.
    (Whether training *learns* is tested in test_training_learns.py, against baselines a collapsed codec hits.)"""
    steps, warmup = 6, 3
    module = make_module("speechtokenizer", warmup_steps=warmup)
    data = make_data(segment_seconds=0.5, val_segment_seconds=1.0, batch_size=2)
    recorder = LossRecorder()
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
                         use_distributed_sampler=False, limit_val_batches=0, callbacks=[recorder])
    trainer.fit(module, data)
    assert module.d_steps == steps - warmup
    gan_terms = recorder.losses[steps]
    assert {"train/adversarial", "train/feature", "train/d_loss"} <= set(gan_terms)
    assert all(math.isfinite(v) for step in recorder.losses.values() for v in step.values())


def test_cli_fit_exports_a_tokenizer_and_resumes(tmp_path, monkeypatch):
    from audiotok.cli.train import run_lightning_cli

    monkeypatch.chdir(tmp_path)
    config = str(CONFIGS / "wavtokenizer-tiny.yaml")
    fast = ["--data.segment_seconds", "0.25", "--checkpoint.every_n_train_steps", "2",
            "--trainer.enable_progress_bar", "false"]
    assert run_lightning_cli(["fit", "--config", config, "--trainer.max_steps", "2", *fast]) == 0
    run = tmp_path / "runs" / "wavtokenizer-tiny" / "version_0"
    assert {"last.ckpt", "step=2.ckpt"} <= {p.name for p in (run / "checkpoints").iterdir()}
    assert (run / "config.yaml").is_file()
    codec = Codec.from_pretrained(run / "tokenizer")
    assert codec.config.name == get_config("wavtokenizer-tiny").name
    assert run_lightning_cli(["fit", "--config", config, "--trainer.max_steps", "3", *fast,
                              "--ckpt_path", str(run / "checkpoints" / "last.ckpt")]) == 0
    resumed = torch.load(tmp_path / "runs" / "wavtokenizer-tiny" / "version_1" / "checkpoints" / "last.ckpt",
                         weights_only=False)
    assert resumed["global_step"] == 3


DDP_SCRIPT = '''
import torch, lightning.pytorch as pl
from audiotok.training.module import CodecLightningModule
from audiotok.training.data import CodecDataModule

class Check(pl.Callback):
    def on_train_end(self, trainer, module):
        codebook = module.codec.quantizer.codebooks()[0]
        summary = torch.stack([codebook.embed.sum(), sum(p.sum() for p in module.codec.parameters()),
                               sum(p.sum() for p in module.discriminator.parameters())])
        gathered = [torch.zeros_like(summary) for _ in range(2)]
        torch.distributed.all_gather(gathered, summary)
        # A file per rank: a child rank's stdout may be cut when rank 0 tears the group down.
        with open(f"rank{trainer.global_rank}.txt", "w") as f:
            f.write(f"RANK {trainer.global_rank} {trainer.global_step} {module.d_steps} "
                    f"{torch.equal(gathered[0], gathered[1])}")

if __name__ == "__main__":
    torch.set_num_threads(1)
    pl.seed_everything(0)
    module = CodecLightningModule(codec="mimi-tiny", recipe="mimi", discriminator_width=0.125)
    data = CodecDataModule(segment_seconds=0.25, batch_size=2)
    pl.Trainer(max_steps=3, accelerator="cpu", devices=2, strategy="ddp_find_unused_parameters_true",
               logger=False, enable_progress_bar=False, enable_checkpointing=False,
               enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
               use_distributed_sampler=False, callbacks=[Check()]).fit(module, data)
'''


@pytest.mark.slow
def test_ddp_two_ranks_stay_identical(tmp_path):
    """Two CPU ranks (gloo): shared draws + all-reduced codebooks keep weights and codebooks equal."""
    import subprocess
    import sys

    script = tmp_path / "ddp_fit.py"
    script.write_text(DDP_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600,
                          check=False, cwd=tmp_path)
    ranks = sorted(p.read_text().split()[1:] for p in tmp_path.glob("rank*.txt"))
    assert ranks == [["0", "3", "3", "True"], ["1", "3", "3", "True"]], done.stderr[-2000:]


# ---- fine-tuning from a saved tokenizer -------------------------------------------------------------
def test_init_from_a_saved_tokenizer_starts_from_its_weights(tmp_path):
    torch.manual_seed(1)
    saved = spread_codebooks(Codec(get_config("wavtokenizer-tiny")))
    saved.save_pretrained(tmp_path / "tok")
    module = CodecLightningModule(init_from=str(tmp_path / "tok"), recipe="wavtokenizer",
                                  discriminator_width=0.0625, quantizer_warmup_steps=100)
    assert module.codec.config.name == "wavtokenizer-tiny"
    own = module.codec.state_dict()
    for key, value in saved.state_dict().items():
        assert torch.equal(own[key], value), key
    assert module.quantizer_warmup_steps == 0  # trained codebooks: no bypass, no k-means re-init


def test_init_from_refuses_a_config_that_does_not_fit(tmp_path):
    Codec(get_config("wavtokenizer-tiny")).save_pretrained(tmp_path / "tok")
    with pytest.raises(ValueError, match="init_from"):
        CodecLightningModule(codec="mimi-tiny", init_from=str(tmp_path / "tok"), recipe="mimi")


def test_cli_fine_tunes_from_a_saved_tokenizer(tmp_path, monkeypatch):
    from audiotok.cli.train import run_lightning_cli

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(2)
    saved = spread_codebooks(Codec(get_config("wavtokenizer-tiny")))
    saved.save_pretrained(tmp_path / "tok")
    config = str(CONFIGS / "wavtokenizer-tiny.yaml")
    assert run_lightning_cli(["fit", "--config", config, "--model.codec", "null", "--model.init_from",
                              str(tmp_path / "tok"), "--trainer.max_steps", "1", "--data.segment_seconds", "0.25",
                              "--trainer.enable_progress_bar", "false"]) == 0
    tuned = Codec.from_pretrained(tmp_path / "runs" / "wavtokenizer-tiny" / "version_0" / "tokenizer")
    # one step of training moved the weights a little, from the saved ones (not from a fresh init)
    diffs = [float((a - tuned.state_dict()[k]).abs().max()) for k, a in saved.state_dict().items()
             if a.is_floating_point() and "codebook" not in k]
    assert max(diffs) < 0.05, max(diffs)


@pytest.mark.parametrize("name", ["wavtokenizer-tiny", "mimi-tiny", "speechtokenizer-tiny"])
def test_data_dependent_init_really_rescales_the_encoder(name):
    """The init works through forward hooks on the encoder's convs: a conv computed without calling its
    module (the inference fast paths) would skip them and leave the near-constant latent that collapses
    training (docs/training-postmortem.md). The latent must come out standardised."""
    from audiotok.codecs.families import build_codec
    from audiotok.training.init import standardize_encoder

    torch.manual_seed(0)
    codec = build_codec(name)
    wav = torch.randn(4, 1, codec.sample_rate) * 0.07
    result = standardize_encoder(codec, wav)
    assert result["spread_after"] > 0.9 > 0.3 > result["spread_before"], result
    with torch.no_grad():
        latent = codec.encoder(wav)  # the SEANet output (Mimi adds transformers and a resampler after it)
    std = latent.std(dim=(0, 2))
    assert torch.allclose(std, torch.ones_like(std), atol=0.05), std


def test_cli_resume_with_a_new_schedule_continues_it_and_says_what_changed(tmp_path, monkeypatch, capsys):
    """Phase 2 of a run: resume with the learning-rate schedule switched (exponential -> cosine).

    LightningCLI alone would replace the config's model settings by the checkpoint's (the run silently
    keeps decaying exponentially), and PyTorch cannot load an ExponentialLR state into a cosine
    LambdaLR. The resumed run must follow the new schedule from the saved step, and say what changed.
    """
    from audiotok.cli.train import run_lightning_cli

    monkeypatch.chdir(tmp_path)
    config = str(CONFIGS / "wavtokenizer-tiny.yaml")
    fast = ["--data.segment_seconds", "0.25", "--checkpoint.every_n_train_steps", "2",
            "--trainer.enable_progress_bar", "false", "--model.warmup_steps", "100"]
    assert run_lightning_cli(["fit", "--config", config, "--trainer.max_steps", "2", *fast,
                              "--model.optim", '{"scheduler": {"name": "exponential", "gamma": 0.5}}']) == 0
    first = tmp_path / "runs" / "wavtokenizer-tiny" / "version_0" / "checkpoints" / "last.ckpt"
    saved = torch.load(first, weights_only=False)
    base = saved["lr_schedulers"][0]["base_lrs"][0]
    assert saved["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(base * 0.5 ** 2)
    capsys.readouterr()
    assert run_lightning_cli(["fit", "--config", config, "--trainer.max_steps", "4", *fast,
                              "--model.optim", '{"scheduler": {"name": "cosine", "total_steps": 8}, '
                                               '"generator": {"lr": 4.0e-4, "betas": [0.5, 0.9]}}',
                              "--ckpt_path", str(first)]) == 0
    said = capsys.readouterr().err
    assert "model.optim.scheduler" in said and "cosine" in said, said
    assert "model.optim.generator.lr" in said, said
    resumed = torch.load(tmp_path / "runs" / "wavtokenizer-tiny" / "version_1" / "checkpoints" / "last.ckpt",
                         weights_only=False)
    assert resumed["global_step"] == 4
    # cosine over 8 steps at step 4 is half the (new) base rate; the old exponential would be at 1/16
    generator = resumed["optimizer_states"][0]["param_groups"][0]
    assert generator["lr"] == pytest.approx(0.5 * 4.0e-4)
    assert tuple(generator["betas"]) == (0.5, 0.9)
    discriminator = resumed["optimizer_states"][1]["param_groups"][0]
    assert discriminator["lr"] == pytest.approx(0.5 * resumed["lr_schedulers"][1]["base_lrs"][0])
